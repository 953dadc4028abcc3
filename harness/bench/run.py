"""The speed benchmark (``make bench``): building labs, probing one, scale, the suites.

1. Lab 001-vbridge built and torn down two ways, interleaved iteration by iteration
   (alternating which goes first) so both see the same noise of a busy machine:
   - shell: the document's own commands (harness/lab/data/shell/001-vbridge.sh), as a
     person pasting them would run them, one ``sh -e`` whose every command is a
     fork/exec, inside a fresh scratch network namespace standing in for the
     document's host (its creation is not timed);
   - harness: ``build(load_lab("001-vbridge"))`` then ``live.teardown()``.
   Then every other document lab the same way, with fewer iterations.
2. Probe round trips in a harness-built 001-vbridge: ARP who-has/is-at, ICMP echo,
   and one ``expect_none`` quiet window.
3. Scale (one bridge, 10/100/1000 pods) and a CNI ADD's cost (harness.bench.scale).
4. The suites' wall time (harness.bench.suitetimes), and the CNI suites' against each
   implementation of the catalogue (harness/impl) that runs here.

Medians go to stdout as a table and to reports/bench.json; the exit status is 1 when
a bar is missed, so CI can gate on it (2 when a lab cannot be built or does not work).
Run it as ``python -m harness.bench`` (or ``netconform bench``).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

from harness.lab import docshell
from harness.kernel import nsutil
from harness.kernel import sandbox
from harness import paths
from harness.errors import NetconformError
from harness.kernel.netnsgc import cleanup_barrier
from harness.bench.report import bars, table
from harness.bench.scale import bench_cni_add, bench_scale
from harness.bench.suitetimes import bench_implementations, bench_suites

LAB = "001-vbridge"
SEED = "001_bac7d6736c56b111"  # 使用veth和bridge搭建容器网络, section 实践

# Each document lab's own commands: harness/lab/data/shell/LAB.sh (harness.lab.docshell), proved to
# build what the harness builds by tests/test_doc_shell.py. These labs' files are the lab's
# own commands in the documents' ip style, the document giving none (a description, a heading,
# or etcd/flanneld): their ratio is against the lab's commands, and the table says so.
NOT_THE_DOCUMENTS = {"004-tuntap", "004-flannel-udp", "004-flannel-vxlan", "004-ipvlan-l2", "004-ipvlan-l3",
                     "004-docker-nat-nft"}


class BenchError(Exception):
    """A method did not produce a working lab, or a command failed."""


def ms(seconds: float) -> float:
    return seconds * 1000.0


def median(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


def quiesce() -> None:
    """Before a timed build: the namespaces of the last teardown (either method's) destroyed,
    so no build pays for another's cleanup (the kernel does it later, under the RTNL lock)."""
    if not cleanup_barrier():
        raise BenchError("the kernel did not finish destroying the last lab's namespaces within 5 s")


# -- the shell way ---------------------------------------------------------------------
def shell_once(lab: str, check: bool = False) -> tuple[float, float]:
    """Build and tear down with the document's commands in a fresh scratch namespace
    (standing in for the document's host; its creation is not timed)."""
    build_script, teardown_script = docshell.parts(docshell.scripts()[lab])
    scratch = nsutil.create_netns()
    try:
        quiesce()
        with nsutil.entered(scratch):
            start = time.perf_counter()
            try:
                docshell.run(build_script, f"{lab}: the document's build")
            except docshell.ScriptError as exc:
                docshell.run(teardown_script, "teardown", errexit=False)  # leave no names for the harness
                raise BenchError(str(exc)) from None
            built = time.perf_counter()
            if check and lab == LAB:
                try:
                    shell_check()
                except BenchError:
                    docshell.run(teardown_script, "teardown", errexit=False)
                    raise
            start_down = time.perf_counter()
            docshell.run(teardown_script, f"{lab}: the document's teardown")
            done = time.perf_counter()
    finally:
        os.close(scratch)
    return built - start, done - start_down


def shell_check() -> None:
    # The shell build has no readiness wait, so a first ping may meet links still
    # settling: allow a few one-second attempts (this is outside the timed region).
    for dst in ("192.168.28.2", "192.168.28.5"):
        argv = ["ip", "netns", "exec", "ns1", "ping", "-n", "-q", "-c1", "-W1", dst]
        for _ in range(3):
            if subprocess.run(argv, stdin=subprocess.DEVNULL, capture_output=True).returncode == 0:
                break
        else:
            raise BenchError(f"shell-built {LAB}: ns1 cannot ping {dst}")


# -- the harness way -------------------------------------------------------------------
def harness_once(lab: str, steps: dict[str, list[float]] | None = None, check: bool = False) -> tuple[float, float]:
    from harness.lab.build import build
    from harness.lab.file import load_lab
    from harness.probe import Probe

    quiesce()
    start = time.perf_counter()
    live = build(load_lab(lab))
    built = time.perf_counter()
    try:
        if check and lab == LAB:
            for dst in ("192.168.28.2", "192.168.28.5"):
                result = Probe(live).ping("ns1", dst)
                if not result:
                    raise BenchError(f"harness-built {LAB}: ns1 cannot ping {dst}: {result.error}")
    except BaseException:
        live.teardown()
        raise
    if steps is not None:
        accounted = 0.0
        for stage, seconds in live.steps:
            steps.setdefault(stage, []).append(seconds)
            accounted += seconds
        steps.setdefault("load_lab + other", []).append(built - start - accounted)
    start_down = time.perf_counter()
    live.teardown()
    done = time.perf_counter()
    return built - start, done - start_down


def bench_build(lab: str, iterations: int, warmup: int) -> dict:
    """Lab ``lab`` built and torn down both ways, interleaved; medians and ratios."""
    shell_once(lab, check=True)
    harness_once(lab, check=True)
    for _ in range(warmup):
        shell_once(lab)
        harness_once(lab)
    shell_b, shell_t, harn_b, harn_t, steps = [], [], [], [], {}
    for i in range(iterations):
        # Alternate which goes first, so neither always inherits the other's leftovers
        # (the kernel frees dead namespaces asynchronously).
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                b, t = shell_once(lab)
                shell_b.append(b)
                shell_t.append(t)
            else:
                b, t = harness_once(lab, steps)
                harn_b.append(b)
                harn_t.append(t)

    def method(builds, teardowns):
        return {"build_ms": ms(median(builds)), "teardown_ms": ms(median(teardowns)),
                "total_ms": ms(median([b + t for b, t in zip(builds, teardowns)]))}

    shell, harness = method(shell_b, shell_t), method(harn_b, harn_t)
    harness["steps_ms"] = {stage: ms(median(values)) for stage, values in steps.items()}
    build_script, teardown_script = docshell.parts(docshell.scripts()[lab])
    return {"shell": shell, "harness": harness, "iterations": iterations,
            "commands": {"build": docshell.commands(build_script), "teardown": docshell.commands(teardown_script)},
            "source": "lab" if lab in NOT_THE_DOCUMENTS else "document",
            "ratio_build": shell["build_ms"] / harness["build_ms"],
            "ratio_total": shell["total_ms"] / harness["total_ms"]}


# -- probes ------------------------------------------------------------------------------
def bench_labs(iterations: int, warmup: int, only: set[str] | None = None) -> dict:
    """Every other document lab, as bench_build; a lab this kernel cannot build is listed with why."""
    from harness.kernel.capabilities import missing
    from harness.lab.file import load_lab

    out = {}
    unknown = (only or set()) - set(docshell.scripts())
    if unknown:
        raise BenchError(f"--labs: no shell file for {', '.join(sorted(unknown))} (harness/lab/data/shell/)")
    for lab in docshell.scripts():
        if lab == LAB or (only and lab not in only):
            continue
        kinds = sorted({link.kind for node in load_lab(lab).nodes for link in node.links} & {"ipvlan", "vlan", "vrf"})
        reason = next((f"{kind}: {missing(kind)}" for kind in kinds if missing(kind)), None)
        out[lab] = {"skipped": reason} if reason else bench_build(lab, iterations, warmup)
    return out


def bench_probe(iterations: int, windows: int) -> dict:
    from scapy.layers.l2 import Ether

    from harness.lab.build import build
    from harness.lab.file import load_lab
    from harness.probe.engine import ETH_P_LOCAL_EXPERIMENTAL, QUIET_WINDOW, Port, Probe

    live = build(load_lab(LAB))
    try:
        probe = Probe(live)
        port = Port("ns1", "veth-1")
        arp, arp_rtt, icmp, icmp_rtt, quiet = [], [], [], [], []
        warm = max(10, iterations // 10)
        for i in range(warm + iterations):
            start = time.perf_counter()
            reply = probe.arp(port, "192.168.28.2")
            middle = time.perf_counter()
            pong = probe.ping("ns1", "192.168.28.2")
            end = time.perf_counter()
            if reply is None:
                raise BenchError(f"{LAB}: no ARP reply for 192.168.28.2 on {port}")
            if not pong:
                raise BenchError(f"{LAB}: ns1 cannot ping 192.168.28.2: {pong.error}")
            if i >= warm:
                arp.append(middle - start)
                arp_rtt.append(reply.rtt)
                icmp.append(end - middle)
                icmp_rtt.append(pong.rtt)
        nothing = Ether(type=ETH_P_LOCAL_EXPERIMENTAL)  # no stack sends it: the window stays quiet
        for _ in range(windows):
            start = time.perf_counter()
            probe.expect_none(Port("ns3", "veth-3"), nothing)
            quiet.append(time.perf_counter() - start)
    finally:
        live.teardown()
    return {"arp_ms": ms(median(arp)), "arp_p90_ms": ms(p90(arp)), "arp_rtt_ms": ms(median(arp_rtt)),
            "icmp_ms": ms(median(icmp)), "icmp_p90_ms": ms(p90(icmp)), "icmp_rtt_ms": ms(median(icmp_rtt)),
            "expect_none_ms": ms(median(quiet)), "quiet_window_ms": ms(QUIET_WINDOW),
            "arp_iterations": iterations, "expect_none_iterations": windows}


def fetch_builds() -> dict:
    """Every catalogue build, fetched (into the cache, once) while the machine's network is still
    ours: build id -> Fetched, or the one line saying why it cannot be had."""
    from harness.impl import catalogue, fetch
    builds = {}
    for build in catalogue.load().values():
        try:
            builds[build.id] = fetch.fetch(build)
        except NetconformError as exc:
            builds[build.id] = str(exc)
    return builds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="timed builds per method (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed builds per method first (default 3)")
    parser.add_argument("--arp-iterations", type=int, default=500,
                        help="timed ARP and ICMP round trips (default 500)")
    parser.add_argument("--window-iterations", type=int, default=20,
                        help="expect_none quiet windows to time (default 20)")
    parser.add_argument("--lab-iterations", type=int, default=7,
                        help="timed builds per method of each other document lab (default 7)")
    parser.add_argument("--no-labs", action="store_true", help="only 001-vbridge, not every document lab")
    parser.add_argument("--labs", default=None, metavar="LAB,LAB", help="only these other document labs")
    parser.add_argument("--no-suites", action="store_true", help="skip timing the suites (minutes)")
    parser.add_argument("--no-implementations", action="store_true",
                        help="skip timing the CNI suites against each catalogue build (minutes)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10/100/1000-pod bridge and CNI ADD cost")
    parser.add_argument("--scale-sizes", default="10,100,1000", help="pods on the bridge (default 10,100,1000)")
    parser.add_argument("--json", default=os.path.join("reports", "bench.json"),
                        help="where to write the JSON report (default reports/bench.json)")
    args = parser.parse_args(argv)
    if min(args.iterations, args.arp_iterations, args.window_iterations) < 1 or args.warmup < 0:
        parser.error("iteration counts must be positive")
    builds = {} if args.no_suites or args.no_implementations else fetch_builds()
    try:
        # First, before anything could start a thread: a user namespace refuses threaded processes.
        state = sandbox.enter()
        results = {"lab": LAB, "seed": SEED,
                   LAB: bench_build(LAB, args.iterations, args.warmup),
                   "probe": bench_probe(args.arp_iterations, args.window_iterations)}
        if not args.no_labs:
            results["labs"] = bench_labs(args.lab_iterations, 1, set(args.labs.split(",")) if args.labs else None)
        if not args.no_scale:
            sizes = tuple(int(n) for n in args.scale_sizes.split(","))
            results["scale"] = bench_scale(sizes)
            results["cni_add"] = bench_cni_add()
        if not args.no_suites:
            results["suites"] = bench_suites(paths.require_checkout("the suites' bench"))
        if builds:
            results["implementations"] = bench_implementations(paths.require_checkout("the suites' bench"), builds)
    except (BenchError, NetconformError, docshell.ScriptError) as exc:  # exit 1 is kept for a missed bar
        print(f"bench: {exc}", file=sys.stderr)
        return 2
    report = {"schema": 1,
              "machine": {"kernel": platform.release(), "cpus": os.cpu_count(), "python": platform.python_version()},
              "sandbox": state.mode, "iterations": args.iterations, "warmup": args.warmup,
              "results": results}
    report["bars"] = bars(results)
    print(table(report))
    directory = os.path.dirname(args.json)
    if directory:
        os.makedirs(directory, exist_ok=True)
    with open(args.json, "w", encoding="utf-8") as handle:
        json.dump(report, handle, indent=2)
        handle.write("\n")
    print(f"\nwritten: {args.json}")
    failed = [name for name, b in report["bars"].items() if not b["pass"]]
    if failed:
        for name in failed:
            b = report["bars"][name]
            print(f"bench: FAIL {name}: {b['value']:.3f} is not {b['op']} {b['bar']:g}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
