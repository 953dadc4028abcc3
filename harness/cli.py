"""netconform's command line (``netconform``, or ``python -m harness``): labs, reports, VMs, the bench.

    python -m harness lab list                      the bundled labs, with document and section
    python -m harness lab claims                    the documents' claims the suites check: document, claim,
                                                    lab, tests (read from their document markers)
    python -m harness lab up LAB [--command CMD]    build LAB in a private sandbox and open a shell in
                                                    its host (or run CMD there); leaving removes it all
    python -m harness labs                          the bundled labs
    python -m harness report [--results D [D..]] [--html D]  render the HTML report, print the matrix;
                                                    several D (cells: matrix, vm run, CI jobs) are merged
    python -m harness check LAB_FILE                validate a lab file (exit 2 if it is wrong)
    python -m harness script LAB                    the shell reproducer of a lab
    python -m harness teardown LAB                  the script that removes it again
    python -m harness topology LAB [--format dot]   a Mermaid (default) or Graphviz diagram
    python -m harness vm list                       the VM boxes (harness/vm/boxes.json)
    python -m harness vm box [RELEASE...]           build (or reuse) the offline boxes netconform/RELEASE
    python -m harness vm clean [--all] [--dry-run]    remove stale boxes from the cache (--all: every box, the .debs)
    python -m harness vm run NAME [--keep-vm] -- ARGS  run pytest ARGS in VM NAME; results in reports/vm/NAME
    python -m harness vm twohost [--box B] [-- ARGS]  document 004's Flannel across two VMs (VXLAN between them)
    python -m harness matrix [--boxes B..] [-- ARGS]  the suites in each offline box (kernel x builds), merged
    python -m harness impl list                     the implementations' builds (Debian releases) and their state
    python -m harness impl fetch NAME@VERSION       fetch one into the cache (private apt state; nothing installed)
    python -m harness spec coverage                 every normative statement of the CNI spec and the tests
                                                    that check it (or why none can, or the item that will)
    python -m harness bench [ARGS]                  the speed benchmark (python -m harness.bench)
    python -m harness soak [ARGS]                   the suites N times under load (python -m harness.bench.soak)

LAB is a bundled lab's name (``001-vbridge``) or a lab file's path.
"""
from __future__ import annotations

import argparse
import os
import sys

from harness import paths
from harness.errors import LabError, NetconformError
from harness.lab.file import bundled_labs, load_lab, load_lab_file
from harness.lab.script import shell_script, teardown_script
from harness.lab.topology import FORMATS, topology


def _labs(args) -> str:
    lines = []
    for name in bundled_labs():
        lab = load_lab(name)
        lines.append(f"{name}\tdocument {lab.document or '-'}: {' '.join((lab.section or '').split())}")
    return "\n".join(lines) + "\n"


def _lab_claims(args) -> str:
    from harness.lab import claims
    return claims.text(claims.claims())


def _check(args) -> str:
    lab = load_lab_file(args.lab_file)
    count = sum(1 for _ in lab.interfaces())
    return f"{args.lab_file}: OK (lab {lab.name}, {len(lab.nodes)} nodes, {count} interfaces)\n"


def _lab_up(args) -> str:
    """Build a lab in a sandbox of its own and hand the user a shell in its host node."""
    import os
    import signal
    import subprocess
    import tempfile

    from harness.kernel import sandbox
    from harness.lab.build import build
    from harness.errors import NetconformError

    lab = load_lab(args.lab)
    try:
        sandbox.enter()  # first, while this process has no thread: a user namespace needs that
        live = build(lab)
    except NetconformError as exc:
        raise LabError(f"lab {lab.name}: {exc}") from None
    try:
        with tempfile.NamedTemporaryFile("w", prefix=f"{lab.name}-", suffix=".sh", delete=False) as script:
            script.write(shell_script(lab))
        print(topology(lab, "mermaid"))
        print(f"lab {lab.name} is up (document {lab.document or '-'}: {' '.join((lab.section or '').split())})")
        print(f"nodes: {', '.join(live.nodes)}; try: ip netns exec {live.nodes[-1]} ip -br addr")
        print(f"reproducer: {script.name}; leave the shell to remove everything", flush=True)
        argv = ["sh", "-c", args.command] if args.command else [os.environ.get("SHELL", "/bin/bash")]
        env = dict(os.environ, NETCONFORM_LAB=lab.name, PS1=f"[{lab.name}] \\w# ")
        previous = signal.signal(signal.SIGINT, signal.SIG_IGN)  # ^C belongs to the shell
        try:
            with live.entered("host"):
                code = subprocess.run(argv, env=env).returncode
        finally:
            signal.signal(signal.SIGINT, previous)
            os.unlink(script.name)
    finally:
        live.teardown()
    if code:
        raise SystemExit(code)
    return ""


def _report(args) -> str:
    """One results directory: its matrices. Several, or cells (a matrix run's, CI jobs'): merged into
    ``--merged`` first, and the view lists the tests whose outcome differs between cells first."""
    import glob

    from harness.cni import spec
    from harness.evidence import cells
    from harness.evidence.matrix import kernel_matrix_text, matrices_text, render_html
    sentences = {ident: statement.sentence for ident, statement in spec.statements().items()}
    dirs = args.results or ["reports/allure-results"]
    for path in dirs:
        if not os.path.isdir(path):
            raise LabError(f"{path}: no Allure results (run pytest with --alluredir {path})")
    if len(dirs) == 1 and glob.glob(os.path.join(dirs[0], "*-result.json")):
        results, merged = dirs[0], ""
        table = matrices_text(results, sentences)
    else:
        try:
            found = cells.merge(dirs, args.merged)
        except FileNotFoundError as exc:
            raise LabError(str(exc)) from None
        results = os.path.join(args.merged, "allure-results")
        merged = "".join(f"cell {path}: kernel {labels['kernel']}; {labels['builds']}\n" for path, labels in found)
        merged += f"merged {len(found)} cells into {results} and {os.path.join(args.merged, 'junit.xml')}\n\n"
        table = kernel_matrix_text(results, ("kernel", "builds"), sentences)
    try:
        index = render_html(results, args.html, args.tools)
    except (FileNotFoundError, RuntimeError) as exc:
        if not merged:
            raise LabError(str(exc)) from None
        return f"{merged}{table}\n\nno HTML report: {exc}\n"
    return f"{merged}{table}\n\nHTML report: {index}\n"


def _vm_list(args) -> str:
    from harness.vm.driver import boxes
    return "".join(f"{name}\t{spec['box']} ({', '.join(spec['providers'])}): {spec['about']}\n"
                   for name, spec in boxes().items())


def _vm_box(args) -> str:
    import time

    from harness.errors import VmError
    from harness.vm import box
    lines = []
    for name in args.releases or ["bookworm"]:
        start = time.monotonic()
        try:
            spec = box.release(name)
            path = box.build(paths.require_checkout("vm box"), spec.name)
        except VmError as exc:
            raise LabError(f"vm box: {exc}") from None
        lines.append(f"{spec.box}: {path} ({time.monotonic() - start:.0f} s; added to Vagrant by `vm run {spec.name}`)\n")
    return "".join(lines)


def _vm_clean(args) -> str:
    from harness.vm import cache
    project = paths.require_checkout("vm clean")
    if args.dry_run:
        stale = [(path, cache.size(path)) for path in cache.stale(project, everything=args.all)]
        lines = [f"would remove {path} ({size / 2**20:.0f} MiB)\n" for path, size in stale]
        total = sum(size for _, size in stale)
        return "".join(lines) + f"netconform: vm clean --dry-run: {len(stale)} to remove, {total / 2**30:.1f} GiB\n"
    removed = cache.clean(project, everything=args.all)
    lines = [f"removed {path} ({size / 2**20:.0f} MiB)\n" for path, size in removed]
    total = sum(size for _, size in removed)
    return "".join(lines) + f"netconform: vm clean: {len(removed)} removed, {total / 2**30:.1f} GiB freed\n"


def _vm_run(args) -> str:
    import signal

    from harness.errors import VmError
    from harness.vm import driver

    def terminated(signum, frame):  # a CI timeout: still destroy the VM and stop libvirtd (finally)
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminated)
    # argparse's REMAINDER takes everything after NAME: the run's own options are those before "--".
    rest = args.pytest_args
    split = rest.index("--") if "--" in rest else 0
    options = argparse.ArgumentParser(prog="python -m harness vm run NAME")
    options.add_argument("--keep-vm", action="store_true")
    options.add_argument("--results")
    own = options.parse_args(rest[:split])
    args.keep_vm, args.results = args.keep_vm or own.keep_vm, args.results or own.results
    pytest_args = rest[split + 1:] if "--" in rest else rest
    try:
        record = driver.run(args.name, pytest_args, paths.require_checkout("vm run"), results=args.results, keep=args.keep_vm)
    except VmError as exc:
        print(f"netconform: {exc}", file=sys.stderr)
        raise SystemExit(driver.EXIT_VM_FAILED) from None
    times = ", ".join(f"{what} {seconds:g} s" for what, seconds in record.times.items())
    fate = "VM destroyed" if record.destroyed else "VM kept"
    print(f"netconform: vm {record.name} (kernel {record.kernel}): pytest exit {record.exit_code}; {times}; "
          f"results in {record.results}; {fate}", file=sys.stderr)
    if record.exit_code:
        raise SystemExit(record.exit_code)
    return ""


def _matrix(args) -> str:
    import signal

    from harness.evidence.matrix import kernel_matrix_text, render_html
    from harness.vm import matrix

    def terminated(signum, frame):  # a CI timeout: the running cell still destroys its VM (finally)
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminated)
    rest = args.pytest_args
    pytest_args = rest[rest.index("--") + 1:] if "--" in rest else matrix.DEFAULT_ARGS
    project = paths.require_checkout("matrix")
    root = os.path.abspath(args.results)
    cells = matrix.run(args.boxes or list(matrix.DEFAULT_BOXES), list(pytest_args), project, root)
    lines = []
    for cell in cells:
        if cell.record is None:
            lines.append(f"{cell.box}: did not run: {cell.error}")
            continue
        times = ", ".join(f"{what} {seconds:g} s" for what, seconds in cell.record.times.items())
        lines.append(f"{cell.box} (kernel {cell.record.kernel}): pytest exit {cell.record.exit_code}; {times}")
    merged = os.path.join(root, "allure-results")
    view = kernel_matrix_text(merged)
    try:
        html = f"HTML report: {render_html(merged, os.path.join(root, 'html'), args.tools)}"
    except (FileNotFoundError, RuntimeError) as exc:
        html = f"no HTML report: {exc}"
    print("\n".join(lines) + f"\n\n{view}\n\n{html}")
    failed = [cell for cell in cells if cell.record is None or cell.record.exit_code not in (0, None)]
    if failed:
        raise SystemExit(3 if any(cell.record is None for cell in failed) else 1)
    return ""


def _impl_list(args) -> str:
    from harness.impl import catalogue, fetch
    lines = []
    for build in catalogue.load().values():
        have = fetch.fetched(build)
        if have is None:
            state = "not fetched"
        elif have.runs_here:
            state = f"fetched: {have.package} {have.version}, {have.bin_dir}"
        else:
            state = f"fetched, cannot run here: {have.why_not}"
        note = f"; {build.note}" if build.note else ""
        lines.append(f"{build.id}\tDebian {build.release} (kernel {build.kernel}){note}\n\t{state}\n")
    return "".join(lines)


def _impl_fetch(args) -> str:
    from harness.impl import catalogue, fetch
    build = catalogue.build_named(args.build)
    have = fetch.fetch(build, refresh=args.refresh)
    where = f"{have.bin_dir}" if have.runs_here else f"(unpacked in {have.root}); {have.why_not}"
    return f"{build.id}: {have.package} {have.version} from Debian {have.release}: {where}\n"


def _spec_coverage(args) -> str:
    from harness.cni.spec import coverage
    return coverage.text(coverage.rows())


def _passed_on(module: str):
    """A command that is its own program (bench, soak): the rest of the line is its arguments."""
    def run(args) -> str:
        import importlib
        code = importlib.import_module(module).main(args.rest)
        if code:
            raise SystemExit(code)
        return ""
    return run


def main(argv: list[str] | None = None) -> int:
    prog = "netconform" if os.path.basename(sys.argv[0]) == "netconform" else "python -m harness"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("labs", help="list the bundled labs").set_defaults(run=_labs)
    lab = commands.add_parser("lab", help="explore a lab by hand").add_subparsers(dest="action", required=True)
    lab.add_parser("list", help="the bundled labs, with document and section").set_defaults(run=_labs)
    lab.add_parser("claims", help="the documents' claims the suites check, with their labs and tests (one line "
                   "each, tab-separated), then a line per document").set_defaults(run=_lab_claims)
    up = lab.add_parser("up", help="build LAB in a private sandbox and open a shell in its host")
    up.add_argument("lab", help="a bundled lab's name or a lab file's path")
    up.add_argument("--command", help="run this shell command there instead of an interactive shell")
    up.set_defaults(run=_lab_up)
    check = commands.add_parser("check", help="validate a lab file: one line, OK or what is wrong")
    check.add_argument("lab_file")
    check.set_defaults(run=_check)
    for name, render, text in (("script", shell_script, "the shell script that builds LAB"),
                               ("teardown", teardown_script, "the shell script that removes LAB")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("lab", help="a bundled lab's name or a lab file's path")
        sub.set_defaults(run=lambda args, render=render: render(load_lab(args.lab)))
    report = commands.add_parser("report", help="render the HTML report and print the conformance matrix")
    report.add_argument("--results", nargs="+", metavar="DIR", help="Allure results (default reports/allure-results); "
                        "several, or cells' directories (matrix, vm run, CI jobs): merged into --merged first")
    report.add_argument("--merged", default="reports/merged", help="where several cells' results are merged")
    report.add_argument("--html", default="reports/html")
    report.add_argument("--tools", default=".tools", help="where npm installed allure")
    report.set_defaults(run=_report)
    draw = commands.add_parser("topology", help="LAB's namespaces and links as a diagram")
    draw.add_argument("lab", help="a bundled lab's name or a lab file's path")
    draw.add_argument("--format", choices=FORMATS, default="mermaid")
    draw.set_defaults(run=lambda args: topology(load_lab(args.lab), args.format))
    vm = commands.add_parser("vm", help="run the suites in Vagrant VMs").add_subparsers(dest="action", required=True)
    vm.add_parser("list", help="the VM boxes").set_defaults(run=_vm_list)
    vm_box = vm.add_parser("box", help="build (or reuse) the offline boxes netconform/RELEASE")
    vm_box.add_argument("releases", nargs="*", metavar="RELEASE",
                        help="bullseye, bookworm (alias debian12), trixie, forky (default bookworm)")
    vm_box.set_defaults(run=_vm_box)
    vm_clean = vm.add_parser("clean", help="remove the boxes this checkout's inputs no longer make (--all: every "
                             "box and the cached .debs)")
    vm_clean.add_argument("--all", action="store_true")
    vm_clean.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    vm_clean.set_defaults(run=_vm_clean)
    vm_run = vm.add_parser("run", help="bring VM NAME up, run pytest there, bring the results back, destroy it")
    vm_run.add_argument("name", help="a box of `vm list` (bullseye, bookworm, trixie, forky: offline boxes built here)")
    vm_run.add_argument("--keep-vm", action="store_true", help="leave the VM running afterwards")
    vm_run.add_argument("--results", help="where the results go (default reports/vm/NAME)")
    vm_run.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's arguments")
    vm_run.set_defaults(run=_vm_run)
    two = vm.add_parser("twohost", help="document 004's Flannel across two VMs (harness/vm/twohost.py)")
    two.add_argument("--box", default="bookworm", help="the offline box of both VMs (default bookworm)")
    two.add_argument("--keep-vm", action="store_true", help="leave both VMs running afterwards")
    two.add_argument("--results", help="where the results go (default reports/vm/twohost)")
    two.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's arguments (run on node1)")
    two.set_defaults(run=lambda args: __import__("harness.vm.twohost", fromlist=["command"]).command(args))
    kernels = commands.add_parser("matrix", help="the suites in each offline box (a kernel and its release's "
                                  "builds), merged into one report and one kernel x area view")
    kernels.add_argument("--boxes", nargs="+", metavar="BOX", help="default: bullseye bookworm trixie forky")
    kernels.add_argument("--results", default="reports/matrix", help="where the cells' results go")
    kernels.add_argument("--tools", default=".tools", help="where npm installed allure")
    kernels.add_argument("pytest_args", nargs=argparse.REMAINDER, help="-- then pytest's arguments (default: "
                         "the measured TCG subset, harness/vm/matrix.py)")
    kernels.set_defaults(run=_matrix)
    impl = commands.add_parser("impl", help="the implementations' builds netconform validates").add_subparsers(
        dest="action", required=True)
    impl.add_parser("list", help="every build of the catalogue, and whether it is fetched").set_defaults(run=_impl_list)
    fetch = impl.add_parser("fetch", help="fetch NAME@VERSION from its Debian release into the cache (nothing installed)")
    fetch.add_argument("build", metavar="NAME@VERSION")
    fetch.add_argument("--refresh", action="store_true", help="read the release's package lists and fetch again")
    fetch.set_defaults(run=_impl_fetch)
    spec = commands.add_parser("spec", help="the CNI spec's normative statements").add_subparsers(
        dest="action", required=True)
    spec.add_parser("coverage", help="every statement with the tests that check it, or why none can, or the "
                    "issue-13 item that will; a summary per level").set_defaults(run=_spec_coverage)
    for name, module, text in (("bench", "harness.bench.run", "the speed benchmark (make bench); --help for its options"),
                               ("soak", "harness.bench.soak", "the suites N times under full CPU load (make soak)")):
        sub = commands.add_parser(name, help=text, add_help=False)
        sub.add_argument("rest", nargs=argparse.REMAINDER)
        sub.set_defaults(run=_passed_on(module))
    argv = sys.argv[1:] if argv is None else argv
    if argv and argv[0] in ("bench", "soak"):  # argparse's REMAINDER would not take a leading --option
        args = argparse.Namespace(run=_passed_on(f"harness.bench.{'run' if argv[0] == 'bench' else 'soak'}"),
                                  rest=argv[1:])
    else:
        args = parser.parse_args(argv)
    try:
        sys.stdout.write(args.run(args))
        sys.stdout.flush()
    except NetconformError as exc:
        print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
