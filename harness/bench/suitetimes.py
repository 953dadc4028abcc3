"""How long the suites take (make bench): each suite file with two workers, the document
suites serially and with two workers, and the CNI suites against each implementation of the
catalogue that runs on this machine (``--impl``), each pytest run in a subprocess."""
from __future__ import annotations

import glob
import os
import subprocess
import sys
import time

SUITE_SECONDS = 30.0  # every suite, on this machine's cores; and the document suites serially
PARALLEL_SPEEDUP = 1.6  # the document suites with two workers against one


def _pytest_run(project: str, *args: str) -> tuple[float, int, str]:
    """(wall seconds, exit status, pytest's summary line)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args], cwd=project,
                          stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL, text=True)
    summary = (done.stdout.strip().splitlines() or [""])[-1].strip("= ")
    return time.perf_counter() - start, done.returncode, summary


def _pytest_seconds(project: str, *args: str) -> tuple[float, int]:
    seconds, code, _ = _pytest_run(project, *args)
    return seconds, code


def bench_suites(project: str) -> dict:
    """Wall time of each suite file with -n 2, and of the document suites serial vs -n 2."""
    files = sorted(glob.glob(os.path.join(project, "suites", "**", "test_*.py"), recursive=True))
    per_file = {}
    for path in files:
        seconds, code = _pytest_seconds(project, os.path.relpath(path, project), "-n", "2")
        per_file[os.path.relpath(path, project)] = {"seconds": round(seconds, 2), "exit": code}
    serial, code_serial = _pytest_seconds(project, "suites", "--ignore=suites/cni", "-p", "no:xdist")
    parallel, code_parallel = _pytest_seconds(project, "suites", "--ignore=suites/cni", "-n", "2")
    return {"per_file_n2": per_file, "documents_serial_s": round(serial, 2),
            "documents_n2_s": round(parallel, 2), "speedup": round(serial / parallel, 2),
            "exit": {"serial": code_serial, "n2": code_parallel}}


def bench_implementations(project: str, builds: dict) -> dict:
    """Wall time of ``suites/cni -n 2`` against the installed implementations (no ``--impl``) and each
    catalogue build: ``builds`` maps a build id to its harness.impl Fetched, or to a one-line reason it
    cannot run here (not fetched, another glibc), which is reported instead of a time."""
    out = {}
    for name, got in {"installed": None, **builds}.items():
        if isinstance(got, str):
            out[name] = {"skipped": got}
            continue
        if got is not None and not got.runs_here:
            out[name] = {"skipped": got.why_not}
            continue
        seconds, code, summary = _pytest_run(project, "suites/cni", "-n", "2",
                                             *(() if got is None else ("--impl", name)))
        out[name] = {"seconds": round(seconds, 2), "exit": code, "summary": summary}
    return out
