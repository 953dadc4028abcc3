"""The one-screen conformance matrix (area x passed/failed/skipped) and the HTML report.

Reads allure-pytest's results (``*-result.json``); renders HTML with Allure 3 (the npm
package ``allure``, run with the machine's Node).
"""
from __future__ import annotations

import glob
import json
import os
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


def matrix(results_dir: str, by: str = "epic") -> dict[str, Counter]:
    """Outcome counts per row: per area (the ``epic`` label) or per ``implementation``."""
    table: dict[str, Counter] = defaultdict(Counter)
    for path in glob.glob(os.path.join(results_dir, "*-result.json")):
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        fallback = "other" if by == "epic" else "reference labs"
        row = next((label["value"] for label in result.get("labels", []) if label["name"] == by), fallback)
        table[row][outcome(result)] += 1
    return dict(sorted(table.items()))


def matrix_text(table: dict[str, Counter], heading: str = "area") -> str:
    width = max([len(heading)] + [len(row) for row in table])
    lines = [f"{heading:<{width}}  " + "  ".join(f"{s:>9}" for s in STATUSES)]
    totals: Counter = Counter()
    for row, counts in table.items():
        totals.update(counts)
        lines.append(f"{row:<{width}}  " + "  ".join(f"{counts.get(s, 0):>9}" for s in STATUSES))
    lines.append(f"{'total':<{width}}  " + "  ".join(f"{totals.get(s, 0):>9}" for s in STATUSES))
    return "\n".join(lines)


def matrices_text(results_dir: str) -> str:
    """The terminal view: area x outcome, then implementation x outcome."""
    return "\n\n".join([matrix_text(matrix(results_dir), "area"),
                        matrix_text(matrix(results_dir, "implementation"), "implementation")])


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
