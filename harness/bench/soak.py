"""Flake-free under load: the suites, run again and again with every core kept busy.

``python -m harness.bench.soak --runs 20`` starts one busy loop per CPU (plain ``sh``
spinning at the same priority as the suites, so they compete for every core), runs
``pytest suites/ -n 2`` that many times in a row, and stops at nothing: each run's
verdict, duration and counts are kept, and the load generator's own CPU time is read
back to show the cores really were saturated. No retries: pytest runs each test once
(no rerun plugin is loaded, and a test id seen twice in a run's JUnit is reported).
Each test process notes how close its successful waits came to their deadlines
(``harness.evidence.margins``); the soak prints the worst, so "nothing needed a retry" comes
with how far it was from needing one.

Results: a table on stdout and ``reports/soak.json``; exit 1 if any run failed.
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET

from harness import paths
from harness.evidence import margins

PROJECT = paths.checkout() or os.getcwd()  # the suites are run from here


class Load:
    """One busy loop per CPU, in a process group of its own; CPU time read back at stop."""

    def __init__(self, processes: int):
        self.processes = processes
        self.children: list[subprocess.Popen] = []
        self.started = 0.0
        self.cpu_seconds = 0.0
        self.wall_seconds = 0.0
        self.machine_start = (0, 0)
        self.machine_busy = 0.0  # the fraction of all CPUs' time not idle, over the soak

    @staticmethod
    def _machine() -> tuple[int, int]:
        """(busy, total) jiffies of all CPUs since boot, from /proc/stat."""
        with open("/proc/stat", encoding="ascii") as handle:
            values = [int(v) for v in handle.readline().split()[1:]]
        idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
        return sum(values) - idle, sum(values)

    def __enter__(self):
        self.started = time.monotonic()
        self.machine_start = self._machine()
        for _ in range(self.processes):
            self.children.append(subprocess.Popen(["sh", "-c", "while :; do :; done"], start_new_session=True,
                                                  stdin=subprocess.DEVNULL))
        return self

    def _cpu(self, pid: int) -> float:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime

    def __exit__(self, *exc):
        self.wall_seconds = time.monotonic() - self.started
        busy, total = (end - start for end, start in zip(self._machine(), self.machine_start))
        self.machine_busy = busy / total if total else 0.0
        for child in self.children:
            try:
                self.cpu_seconds += self._cpu(child.pid)
            except OSError:
                pass
            try:
                os.killpg(child.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            child.wait()


def junit_counts(path: str) -> dict:
    root = ET.parse(path).getroot()
    cases = list(root.iter("testcase"))
    ids = [f"{c.get('classname')}::{c.get('name')}" for c in cases]
    failed = [i for i, c in zip(ids, cases) if c.find("failure") is not None or c.find("error") is not None]
    skipped = sum(1 for c in cases if c.find("skipped") is not None)
    return {"tests": len(cases), "failed": len(failed), "skipped": skipped,
            "passed": len(cases) - len(failed) - skipped, "failed_ids": failed[:20],
            "ran_twice": sorted({i for i in ids if ids.count(i) > 1})[:20]}


def one_run(index: int, work: str, pytest_args: list[str]) -> dict:
    junit = os.path.join(work, f"run-{index}.xml")
    margin_dir = os.path.join(work, f"margins-{index}")
    argv = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--junitxml", junit, *pytest_args]
    start = time.monotonic()
    done = subprocess.run(argv, cwd=PROJECT, env=dict(os.environ, **{margins.ENV: margin_dir}),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL)
    seconds = time.monotonic() - start
    run = {"run": index, "exit": done.returncode, "seconds": round(seconds, 2)}
    if os.path.exists(junit):
        run.update(junit_counts(junit))
    else:
        run.update(tests=0, failed=0, skipped=0, passed=0, failed_ids=[], ran_twice=[],
                   output=done.stdout[-2000:])
    run["margins"] = margins.merge(glob.glob(os.path.join(margin_dir, "*.json")))
    return run


def worst_margins(runs: list[dict]) -> dict:
    """Per kind, the closest call over all runs, with the run it came in."""
    return margins.worst_of({kind: dict(entry, run=run["run"]) for kind, entry in run["margins"].items()}
                            for run in runs)


def table(report: dict) -> str:
    load = report["load"]
    out = [f"netconform soak: {len(report['runs'])} runs of pytest {' '.join(report['pytest_args'])}, "
           f"{load['processes']} busy loops on {report['cpus']} CPUs",
           f"  {'run':>4}{'exit':>6}{'seconds':>9}{'passed':>8}{'failed':>8}{'skipped':>9}"]
    out += [f"  {r['run']:>4}{r['exit']:>6}{r['seconds']:>9.1f}{r['passed']:>8}{r['failed']:>8}{r['skipped']:>9}"
            + (f"  failed: {', '.join(r['failed_ids'][:3])}" if r["failed_ids"] else "")
            + (f"  ran twice: {', '.join(r['ran_twice'][:3])}" if r["ran_twice"] else "")
            for r in report["runs"]]
    out += ["", f"load: the busy loops got {load['cpu_seconds']:.0f} CPU-seconds over {load['wall_seconds']:.0f} s "
                f"({load['busy_cores']:.2f} cores); all CPUs were busy {100 * load['machine_busy']:.1f} % of the time",
            f"retries: none asked for (each test runs once per run); tests seen twice in a run: "
            f"{sum(len(r['ran_twice']) for r in report['runs'])}",
            "timing margins (the successful wait that came closest to its deadline, per kind, over all runs):"]
    out += [f"  {kind:<12}{1000 * m['used']:>9.1f} ms of {1000 * m['allowed']:>7.0f} ms "
            f"({100 * m['used'] / m['allowed']:5.1f} %)  run {m['run']}: {m['where']}"
            for kind, m in sorted(report["margins"].items())]
    passed = sum(1 for r in report["runs"] if r["exit"] == 0)
    out += ["", f"verdict: {passed}/{len(report['runs'])} runs passed"
                + ("" if passed == len(report["runs"]) else " -- FLAKY OR BROKEN")]
    return "\n".join(out)


def soak(runs: int, load_processes: int, pytest_args: list[str]) -> dict:
    work = tempfile.mkdtemp(prefix="netconform-soak-")
    results = []
    with Load(load_processes) as load:
        for index in range(1, runs + 1):
            results.append(one_run(index, work, pytest_args))
            print(f"soak: run {index}/{runs}: exit {results[-1]['exit']} in {results[-1]['seconds']:.1f} s",
                  file=sys.stderr, flush=True)
    subprocess.run(["rm", "-rf", work], check=False)
    return {"schema": 1, "cpus": os.cpu_count(), "pytest_args": pytest_args, "runs": results,
            "load": {"processes": load_processes, "pids": [child.pid for child in load.children],
                     "cpu_seconds": round(load.cpu_seconds, 1),
                     "wall_seconds": round(load.wall_seconds, 1),
                     "busy_cores": round(load.cpu_seconds / max(load.wall_seconds, 1e-9), 2),
                     "machine_busy": round(load.machine_busy, 4)},
            "margins": worst_margins(results)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench.soak", description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs in a row (default 20)")
    parser.add_argument("--load", type=int, default=os.cpu_count() or 1,
                        help="busy loops beside the suites (default: one per CPU)")
    parser.add_argument("--json", default=os.path.join("reports", "soak.json"), help="default reports/soak.json")
    parser.add_argument("pytest_args", nargs="*", default=None,
                        help="what each run passes to pytest (default: suites -n 2); put them after --")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.load < 0:
        parser.error("--runs must be positive and --load not negative")
    report = soak(args.runs, args.load, args.pytest_args or ["suites", "-n", "2"])
    print(table(report))
    if os.path.dirname(args.json):
        os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=1)
    print(f"\nwritten: {args.json}")
    return 0 if all(r["exit"] == 0 for r in report["runs"]) else 1


if __name__ == "__main__":
    sys.exit(main())
