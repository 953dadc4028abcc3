"""The one-screen conformance matrix (area x passed/failed/skipped) and the HTML report.

Reads allure-pytest's results (``*-result.json``); renders HTML with Allure 3 (the npm
package ``allure``, run with the machine's Node).
"""
from __future__ import annotations

import glob
import json
import os
import re
import shutil
import subprocess
from collections import Counter, defaultdict

STATUSES = ("passed", "failed", "broken", "skipped", "deviation")
KNOWN_DEVIATION = "known deviation"  # the label of a result that met a known deviation (fixtures/report.py)
SHOULD_DEVIATION = "deviation at SHOULD level"  # the label of a failed SHOULD, SHOULD NOT or MAY (fixtures/spec.py)
DEVIATIONS = (KNOWN_DEVIATION, SHOULD_DEVIATION)


def outcome(result: dict) -> str:
    """A result's column: its Allure status, or ``deviation`` for a known deviation or a deviation at
    SHOULD level (written with Allure's status "unknown" and its label, never as skipped)."""
    if any(label["name"] in DEVIATIONS for label in result.get("labels", [])):
        return "deviation"
    return result.get("status", "unknown")


def results(results_dir: str):
    """allure-pytest's results in ``results_dir``, one dict each."""
    for path in sorted(glob.glob(os.path.join(results_dir, "*-result.json"))):
        with open(path, encoding="utf-8") as handle:
            yield json.load(handle)


def label_of(result: dict, name: str) -> str:
    fallback = {"epic": "other", "implementation": "reference labs"}.get(name, "unknown")
    return next((label["value"] for label in result.get("labels", []) if label["name"] == name), fallback)


def matrix(results_dir: str, by: str | tuple[str, ...] = "epic") -> dict[str, Counter]:
    """Outcome counts per row: per area (the ``epic`` label), per ``implementation``, per any label,
    or per a tuple of labels (``("kernel", "epic")``: kernel x area, one row per pair)."""
    names = (by,) if isinstance(by, str) else by
    table: dict[str, Counter] = defaultdict(Counter)
    for result in results(results_dir):
        table[" | ".join(label_of(result, name) for name in names)][outcome(result)] += 1
    return dict(sorted(table.items()))


def test_key(result: dict) -> str:
    """A test across cells: its full name and parameters (allure-pytest's own identity of it)."""
    parameters = ",".join(f"{p['name']}={p['value']}" for p in result.get("parameters", []))
    return result.get("fullName", result.get("name", "?")) + (f"[{parameters}]" if parameters else "")


def family(result: dict) -> str:
    """The implementation a test is of, without its profile or build (``cni``, ``netavark``,
    ``reference labs``): cells of a CI matrix each run one, and a test counts as not run only
    where its family ran."""
    return re.split(r"[:(]", label_of(result, "implementation"))[0].strip()


def _column(result: dict, across: str | tuple[str, ...]) -> str:
    names = (across,) if isinstance(across, str) else across
    return " | ".join(label_of(result, name) for name in names)


def _plural(across: str | tuple[str, ...]) -> str:
    names = (across,) if isinstance(across, str) else across
    return " or ".join(name if name.endswith("s") else f"{name}s" for name in names)


def differences(results_dir: str, across: str | tuple[str, ...] = "kernel") -> dict[str, dict[str, str]]:
    """Every test whose outcome is not the same in every value of ``across`` (a kernel, a build, or
    a tuple of labels: a cell): test -> {value: outcome}. A test missing where its implementation
    (``family``) ran counts as ``not run`` there; where its implementation did not run, it is not compared."""
    seen: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    ran: dict[str, set] = defaultdict(set)
    families: dict[str, str] = {}
    for result in results(results_dir):
        value = _column(result, across)
        ran[family(result)].add(value)
        families[test_key(result)] = family(result)
        seen[test_key(result)][value].add(outcome(result))
    differing = {}
    for test, by_value in sorted(seen.items()):
        row = {value: "/".join(sorted(by_value.get(value, {"not run"}))) for value in sorted(ran[families[test]])}
        if len(set(row.values())) > 1:
            differing[test] = row
    return differing


def differences_text(differing: dict[str, dict[str, str]], across: str | tuple[str, ...] = "kernel") -> str:
    if not differing:
        return f"no test's outcome differs between {_plural(across)}"
    lines = [f"{len(differing)} tests whose outcome differs between {_plural(across)}:"]
    for test, row in differing.items():
        lines.append(f"  {test}")
        lines.append("    " + "; ".join(f"{value}: {result}" for value, result in row.items()))
    return "\n".join(lines)


def kernel_matrix_text(results_dir: str, across: str | tuple[str, ...] = "kernel",
                       sentences: dict[str, str] | None = None) -> str:
    """The matrix run's terminal view: the tests whose outcome differs between the values of
    ``across`` first (kernels, each with its release's builds; or ``("kernel", "builds")``: cells),
    then kernel x area, kernel x builds, kernel x implementation."""
    views = [differences_text(differences(results_dir, across), across),
             matrix_text(matrix(results_dir, ("kernel", "epic")), "kernel | area"),
             matrix_text(matrix(results_dir, ("kernel", "builds")), "kernel | builds"),
             matrix_text(matrix(results_dir, ("kernel", "implementation")), "kernel | implementation")]
    clauses = clause_matrix(results_dir, sentences)
    return "\n\n".join(views + ([clause_matrix_text(clauses)] if clauses else []))


def matrix_text(table: dict[str, Counter], heading: str = "area") -> str:
    width = max([len(heading)] + [len(row) for row in table])
    lines = [f"{heading:<{width}}  " + "  ".join(f"{s:>9}" for s in STATUSES)]
    totals: Counter = Counter()
    for row, counts in table.items():
        totals.update(counts)
        lines.append(f"{row:<{width}}  " + "  ".join(f"{counts.get(s, 0):>9}" for s in STATUSES))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals.get(s, 0):>9}" for s in STATUSES))
    return "\n".join(lines)


# A statement's cell in a build: the worst of the outcomes of the tests that check it there.
WORST_FIRST = ("failed", "broken", "deviation", "passed")


def build_of(result: dict) -> str:
    """The build a result judged: the parenthesised part of its implementation label
    (``cni:bridge (cni-plugins@1.9.1)``), else the label itself (the installed build's chain, ``cni:bridge``),
    with the cell's kernel when it has one."""
    labelled = any(label["name"] == "implementation" for label in result.get("labels", []))
    implementation = label_of(result, "implementation") if labelled else "no backend (a plugin exec'd alone)"
    found = re.search(r"\(([^()]*)\)\s*$", implementation) if labelled else None
    build = found.group(1) if found else implementation
    kernel = label_of(result, "kernel")
    return build if kernel == "unknown" else f"{build} on {kernel}"


def names(message: str, statement: str, sentences: dict[str, str]) -> bool:
    """Whether a deviation's text names ``statement`` (``SPEC-022 MUST``): its id, or the start of its
    sentence (``sentences``: id -> sentence, harness.cni.spec's)."""
    ident = statement.split()[0]
    start = " ".join(sentences.get(ident, "").split())[:60]
    return ident in message or bool(start) and start in message


def clause_matrix(results_dir: str, sentences: dict[str, str] | None = None) -> dict[str, dict[str, str]]:
    """Implementation x spec statement: statement (``SPEC-022 MUST``, the ``spec_level`` labels a test
    carries) -> build -> the worst outcome among the tests that check it in that build. A skipped test
    checked nothing: a statement no test of a build checked has no cell there. ``sentences`` (id ->
    sentence) lets a deviation that quotes its clause, not its id, be placed."""
    cells: dict[str, dict[str, set]] = defaultdict(lambda: defaultdict(set))
    for result in results(results_dir):
        seen = outcome(result)
        if seen == "skipped":
            continue
        message = " ".join(str((result.get("statusDetails") or {}).get("message", "")).split())
        for statement in {label["value"] for label in result.get("labels", []) if label["name"] == "spec_level"}:
            # A deviation is the statements its text names (by id, or by quoting the sentence); the test's
            # other statements held (a known deviation applies only when all else passed).
            cells[statement][build_of(result)].add(
                seen if seen != "deviation" or names(message, statement, sentences or {}) else "passed")
    key = lambda statement: (statement.split()[0].split("-")[0], int(statement.split()[0].split("-")[1]))  # noqa: E731
    return {statement: {build: next(o for o in WORST_FIRST + (min(seen),) if o in seen)
                        for build, seen in sorted(by_build.items())}
            for statement, by_build in sorted(cells.items(), key=lambda item: key(item[0]))}


def clause_matrix_text(table: dict[str, dict[str, str]]) -> str:
    """The statements whose cells are not all passed first (what a build breaks, or where builds differ),
    then a count of the statements every build passed."""
    builds = sorted({build for row in table.values() for build in row})
    if not builds:
        return "implementation x spec statement: no result names a spec statement"
    notable = {s: row for s, row in table.items() if set(row.values()) - {"passed"}}
    width = max([len("statement")] + [len(s) for s in notable])
    lines = [f"implementation x spec statement (the worst outcome of the tests checking it): {len(table)} "
             f"statements, {len(table) - len(notable)} passed wherever checked",
             f"{'statement':<{width}}  " + "  ".join(f"{b:>{max(len(b), 9)}}" for b in builds)]
    for statement, row in notable.items():
        lines.append(f"{statement:<{width}}  " + "  ".join(f"{row.get(b, '-'):>{max(len(b), 9)}}" for b in builds))
    return "\n".join(lines)


def matrices_text(results_dir: str, sentences: dict[str, str] | None = None) -> str:
    """The terminal view: area x outcome, then implementation x outcome, then implementation x spec
    statement where results name statements."""
    views = [matrix_text(matrix(results_dir), "area"), matrix_text(matrix(results_dir, "implementation"), "implementation")]
    clauses = clause_matrix(results_dir, sentences)
    return "\n\n".join(views + ([clause_matrix_text(clauses)] if clauses else []))


def allure_cli(tools_dir: str) -> str | None:
    local = os.path.join(tools_dir, "node_modules", ".bin", "allure")
    return local if os.access(local, os.X_OK) else shutil.which("allure")


def render_html(results_dir: str, html_dir: str, tools_dir: str = ".tools", timeout: float = 300) -> str:
    """Render the HTML report; return the path of its index.html."""
    cli = allure_cli(tools_dir)
    if cli is None:
        raise FileNotFoundError(f"Allure 3 is not installed (npm install --prefix {tools_dir} allure@3)")
    done = subprocess.run([cli, "generate", results_dir, "--output", html_dir, "--report-name", "netconform"],
                          capture_output=True, text=True, timeout=timeout, env=dict(os.environ, NO_COLOR="1"))
    index = os.path.join(html_dir, "index.html")
    if done.returncode != 0 or not os.path.exists(index):
        tail = (done.stderr or done.stdout).strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise RuntimeError(f"allure generate failed: {tail[0]}")
    return os.path.abspath(index)
