"""The benchmark runs end to end and writes a complete report.

Speed itself is never asserted here (a test is no place to measure it): a missed
bar (exit status 1) is accepted, but the table and the JSON must be complete.
"""
from __future__ import annotations

import json
import math
import os
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
METHOD_KEYS = {"build_ms", "teardown_ms", "total_ms"}
PROBE_KEYS = {"arp_ms", "arp_p90_ms", "icmp_ms", "expect_none_ms"}
BARS = {"001-vbridge.ratio_build", "probe.arp_ms", "probe.icmp_ms", "probe.expect_none_ms",
        "scale.20_pods_build_s", "scale.per_pod_growth", "cni_add.overhead", "lab.000-veth-basics.ratio_build"}
SCALE_KEYS = {"pods", "build_s", "per_pod_ms", "teardown_s", "process_rss_mb", "machine_memory_mb"}


def positive(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def test_bench_writes_table_and_complete_json(tmp_path):
    report_path = tmp_path / "out" / "bench.json"  # the directory is made by the bench
    done = subprocess.run(
        [sys.executable, "-m", "harness.bench", "--iterations", "3", "--warmup", "1",
         "--arp-iterations", "20", "--window-iterations", "3", "--no-suites", "--scale-sizes", "5,20",
         "--lab-iterations", "2", "--labs", "000-veth-basics,004-ipvlan-l2",
         "--json", str(report_path)],
        cwd=ROOT, capture_output=True, text=True, timeout=200)
    assert done.returncode in (0, 1), f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"

    out = done.stdout
    for text in ("001-vbridge", "shell", "harness", "build ms", "teardown ms", "total ms", "shell / harness",
                 "no readiness wait", "arp(", "ping(", "expect_none(", "scale: one bridge", "per pod ms",
                 "CNI ADD", "harness overhead", "bars"):
        assert text in out, f"{text!r} missing from the table:\n{out}"
    if done.returncode == 1:
        assert "FAIL" in out and "FAIL" in done.stderr
    else:
        assert "FAIL" not in out

    report = json.loads(report_path.read_text())
    assert report["schema"] == 1
    machine = report["machine"]
    assert set(machine) >= {"kernel", "cpus", "python"}
    assert machine["kernel"] and machine["python"] and positive(machine["cpus"])
    assert report["iterations"] == 3

    lab = report["results"]["001-vbridge"]
    for method in ("shell", "harness"):
        assert METHOD_KEYS <= set(lab[method]), lab[method]
        for key in METHOD_KEYS:
            assert positive(lab[method][key]), (method, key, lab[method][key])
        assert lab[method]["total_ms"] >= lab[method]["build_ms"] * 0.5  # a median of sums, roughly
    assert positive(lab["ratio_build"]) and positive(lab["ratio_total"])
    assert math.isclose(lab["ratio_build"], lab["shell"]["build_ms"] / lab["harness"]["build_ms"])
    steps = lab["harness"]["steps_ms"]
    assert "ready" in steps and all(isinstance(v, float) and v >= 0 for v in steps.values()), steps

    probe = report["results"]["probe"]
    assert PROBE_KEYS <= set(probe), probe
    for key in PROBE_KEYS:
        assert positive(probe[key]), (key, probe[key])
    assert probe["arp_p90_ms"] >= probe["arp_ms"]

    labs = report["results"]["labs"]
    assert set(labs) == {"000-veth-basics", "004-ipvlan-l2"}, labs
    basics = labs["000-veth-basics"]
    assert basics["source"] == "document" and basics["commands"] == {"build": 7, "teardown": 1}, basics
    assert math.isclose(basics["ratio_build"], basics["shell"]["build_ms"] / basics["harness"]["build_ms"])
    ipvlan = labs["004-ipvlan-l2"]  # a kernel without ipvlan lists it with the reason; one with it measures it
    if "skipped" in ipvlan:
        assert set(ipvlan) == {"skipped"} and "ipvlan" in ipvlan["skipped"], ipvlan
    else:
        assert ipvlan["source"] == "lab", ipvlan
    assert "000-veth-basics" in out and "7+1" in out

    scale = report["results"]["scale"]
    assert set(scale["sizes"]) == {"5", "20"} and scale["largest"] == 20, scale
    for size, entry in scale["sizes"].items():
        assert SCALE_KEYS <= set(entry) and entry["pods"] == int(size), entry
        assert positive(entry["build_s"]) and positive(entry["per_pod_ms"]) and positive(entry["process_rss_mb"])
        assert math.isclose(entry["per_pod_ms"], entry["build_s"] * 1000 / entry["pods"], rel_tol=1e-2), entry
    assert math.isclose(scale["per_pod_growth"], scale["sizes"]["20"]["per_pod_ms"] / scale["sizes"]["5"]["per_pod_ms"],
                        rel_tol=1e-2, abs_tol=0.005)  # rounded to 2 decimals: 0.40 for 0.4047
    cni = report["results"]["cni_add"]
    assert positive(cni["harness_ms"]) and positive(cni["plugin_alone_ms"]) and cni["pods_each"] >= 10, cni
    assert math.isclose(cni["overhead"], cni["harness_ms"] / cni["plugin_alone_ms"] - 1, abs_tol=1e-3), cni

    bars = report["bars"]
    assert set(bars) == BARS
    for name, bar in bars.items():
        assert {"value", "bar", "pass"} <= set(bar), (name, bar)
        assert isinstance(bar["value"], float | int) and positive(bar["bar"]) and isinstance(bar["pass"], bool)
        assert bar["pass"] == (bar["value"] >= bar["bar"] if bar["op"] == ">=" else bar["value"] <= bar["bar"]), bar
    assert (done.returncode == 0) == all(bar["pass"] for bar in bars.values())


def test_bars_fail_when_a_figure_misses_them():
    """The verdicts can say FAIL: a 1000-pod build of 11 s, a per-pod cost that triples, a 15 % overhead."""
    from harness.bench.report import bars

    results = {"lab": "001-vbridge", "001-vbridge": {"ratio_build": 6.0},
               "probe": {"arp_ms": 0.1, "icmp_ms": 0.1, "expect_none_ms": 41.0},
               "scale": {"largest": 1000, "per_pod_growth": 3.0, "sizes": {"1000": {"build_s": 11.0}}},
               "cni_add": {"overhead": 0.15}}
    verdicts = {name: bar["pass"] for name, bar in bars(results).items()}
    assert verdicts == {"001-vbridge.ratio_build": True, "probe.arp_ms": True, "probe.icmp_ms": True,
                        "probe.expect_none_ms": True, "scale.1000_pods_build_s": False,
                        "scale.per_pod_growth": False, "cni_add.overhead": False}


def test_each_implementations_cni_suites_get_a_bar_and_a_line():
    """make bench times suites/cni -n 2 per catalogue build: over 30 s fails its bar; a build that cannot
    run here gets its one line and no bar."""
    from harness.bench.report import bars, implementation_lines

    results = {"lab": "001-vbridge", "001-vbridge": {"ratio_build": 6.0},
               "probe": {"arp_ms": 0.1, "icmp_ms": 0.1, "expect_none_ms": 41.0},
               "implementations": {"installed": {"seconds": 21.0, "exit": 0, "summary": "355 passed in 20.1s"},
                                   "cni-plugins@1.9.1": {"seconds": 31.5, "exit": 0, "summary": "488 passed"},
                                   "netavark@1.17.2": {"skipped": "needs glibc >= 2.39"}}}
    verdicts = {name: bar["pass"] for name, bar in bars(results).items() if name.startswith("cni.")}
    assert verdicts == {"cni.installed": True, "cni.cni-plugins@1.9.1": False}, verdicts
    text = "\n".join(implementation_lines(results["implementations"]))
    assert "cni-plugins@1.9.1         31.5 s  488 passed" in text, text
    assert "netavark@1.17.2         skipped: needs glibc >= 2.39" in text, text
