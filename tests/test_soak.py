"""The soak (python -m harness.bench.soak) says FLAKY when one run in several fails, keeps every
core busy while it runs, stops its load generator, and reports the timing margins the
suites' own waits noted."""
from __future__ import annotations

import json
import os
import subprocess
import sys

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FLAKY = '''
import pathlib

def test_fails_on_the_second_run():
    counter = pathlib.Path(__file__).with_name("runs")
    runs = int(counter.read_text()) + 1 if counter.exists() else 1
    counter.write_text(str(runs))
    assert runs != 2, "the second run fails"
'''


def soak(tmp_path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    report = tmp_path / "soak.json"
    done = subprocess.run([sys.executable, "-m", "harness.bench.soak", "--json", str(report), *args], cwd=PROJECT,
                          capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL)
    return done, json.loads(report.read_text())


def alive(pid: int) -> bool:
    """Whether ``pid`` is a live process (not a zombie)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except FileNotFoundError:
        return False


def test_one_failing_run_in_three_makes_the_soak_fail_and_names_it(tmp_path):
    test_file = tmp_path / "flaky" / "test_flaky.py"
    test_file.parent.mkdir()
    test_file.write_text(FLAKY)
    done, report = soak(tmp_path, "--runs", "3", "--", str(test_file))
    assert done.returncode == 1, done.stdout + done.stderr
    assert [run["exit"] for run in report["runs"]] == [0, 1, 0], report["runs"]
    assert report["runs"][1]["failed"] == 1 and "test_fails_on_the_second_run" in report["runs"][1]["failed_ids"][0]
    assert "verdict: 2/3 runs passed -- FLAKY OR BROKEN" in done.stdout
    assert report["load"]["processes"] == os.cpu_count() and report["load"]["machine_busy"] > 0.9, report["load"]
    pids = report["load"]["pids"]
    assert len(pids) == os.cpu_count() and not any(map(alive, pids)), f"the soak left its load running: {pids}"


def test_a_suite_soaked_once_passes_and_reports_its_margins(tmp_path):
    done, report = soak(tmp_path, "--runs", "1", "--load", "1", "--", "suites/test_veth.py")
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    run = report["runs"][0]
    assert run["passed"] > 0 and run["failed"] == 0 and run["ran_twice"] == [], run
    assert {"expect", "link wait"} <= set(report["margins"]), report["margins"]
    for kind, margin in report["margins"].items():
        assert 0 < margin["used"] < margin["allowed"] and margin["where"].startswith("suites/test_veth.py"), margin
    assert "verdict: 1/1 runs passed" in done.stdout and "timing margins" in done.stdout


def test_the_worst_margin_is_the_largest_share_of_its_deadline_not_the_longest_wait():
    from harness.evidence.margins import worst_of
    short_deadline = {"expect": {"used": 0.03, "allowed": 0.04, "where": "a"}}  # 75 %
    long_wait = {"expect": {"used": 0.5, "allowed": 2.0, "where": "b"}, "arp": {"used": 0.1, "allowed": 1.0,
                                                                           "where": "c"}}  # 25 %
    assert worst_of([long_wait, short_deadline]) == {"expect": short_deadline["expect"], "arp": long_wait["arp"]}
    assert worst_of([short_deadline, long_wait])["expect"]["where"] == "a"
