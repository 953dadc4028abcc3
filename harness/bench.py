"""The speed benchmark (``make bench``): building a lab, and probing one.

1. Lab 001-vbridge built and torn down two ways, interleaved iteration by iteration
   (alternating which goes first) so both see the same noise of a busy machine:
   - shell: the document's own commands, as a person pasting them would run them,
     one ``sh -e`` whose every command is a fork/exec, inside a fresh scratch network
     namespace standing in for the document's host (its creation is not timed);
   - harness: ``build(load_lab("001-vbridge"))`` then ``live.teardown()``.
2. Probe round trips in a harness-built 001-vbridge: ARP who-has/is-at, ICMP echo,
   and one ``expect_none`` quiet window.

Medians go to stdout as a table and to reports/bench.json; the exit status is 1 when
a bar is missed, so CI can gate on it (2 when a lab cannot be built or does not work).
Run it as ``python -m harness.bench``.
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

from . import nsutil, sandbox
from .errors import NetconformError
from .benchreport import bars, table
from .benchscale import bench_cni_add, bench_scale
from .suitetimes import bench_suites

LAB = "001-vbridge"
SEED = "001_bac7d6736c56b111"  # 使用veth和bridge搭建容器网络, section 实践

# The document's commands that change state, verbatim and in its order (steps 1-4).
# Left out: what only displays or tests (ip netns ls, bridge link, route -n, arp,
# `sysctl net.ipv4.ip_forward`, the pings).
SHELL_BUILD = """\
# the machine: the document's host has ens33 and its gateway as hardware; the lab (and
# so this script, for the same lab both ways) makes a stand-in in the same ip style
ip netns add upstream
ip link add ens33 type veth peer name eth0 netns upstream
ip addr add 192.168.17.10/24 dev ens33
ip link set ens33 up
ip netns exec upstream ip addr add 192.168.17.2/24 dev eth0
ip netns exec upstream ip addr add 8.8.8.8/32 dev eth0
ip netns exec upstream ip link set eth0 up
ip route add default via 192.168.17.2
# step 1: three network namespaces
ip netns add ns1
ip netns add ns2
ip netns add ns3
# step 2: the virtual switch, three veth pairs, addresses, links up
ip link add vbridge type bridge
ip link set dev vbridge up
ip link add veth-1 type veth peer name veth-1-br
ip link add veth-2 type veth peer name veth-2-br
ip link add veth-3 type veth peer name veth-3-br
ip link set veth-1 netns ns1
ip link set veth-1-br master vbridge
ip link set veth-2 netns ns2
ip link set veth-2-br master vbridge
ip link set veth-3 netns ns3
ip link set veth-3-br master vbridge
ip netns exec ns1 ip addr add 192.168.28.1/24 dev veth-1
ip netns exec ns2 ip addr add 192.168.28.2/24 dev veth-2
ip netns exec ns3 ip addr add 192.168.28.3/24 dev veth-3
ip netns exec ns1 ip link set veth-1 up
ip link set dev veth-1-br up
ip netns exec ns2 ip link set veth-2 up
ip link set dev veth-2-br up
ip netns exec ns3 ip link set veth-3 up
ip link set dev veth-3-br up
# step 3: the bridge as the namespaces' gateway
ip addr add 192.168.28.5/24 dev vbridge
ip netns exec ns1 ip route add default via 192.168.28.5
ip netns exec ns2 ip route add default via 192.168.28.5
ip netns exec ns3 ip route add default via 192.168.28.5
# step 4: forwarding and NAT to the outside
sysctl -w net.ipv4.ip_forward=1
iptables -t nat -A POSTROUTING -s 192.168.28.0/24 -j MASQUERADE
"""

# How the document's family takes such a lab down again.
SHELL_TEARDOWN = """\
ip netns del upstream
ip netns del ns1
ip netns del ns2
ip netns del ns3
ip link del vbridge
iptables -t nat -F POSTROUTING
"""



class BenchError(Exception):
    """A method did not produce a working lab, or a command failed."""


def commands(script: str) -> int:
    return sum(1 for line in script.splitlines() if line.strip() and not line.lstrip().startswith("#"))


def ms(seconds: float) -> float:
    return seconds * 1000.0


def median(values: list[float]) -> float:
    return statistics.median(values)


def p90(values: list[float]) -> float:
    return statistics.quantiles(values, n=10, method="inclusive")[-1] if len(values) > 1 else values[0]


# -- the shell way ---------------------------------------------------------------------
def sh(script: str, what: str, errexit: bool = True) -> None:
    argv = ["sh", "-e", "-c", script] if errexit else ["sh", "-c", script]
    done = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
    if errexit and done.returncode != 0:
        raise BenchError(f"shell {what} failed (exit {done.returncode}): {done.stderr.strip()}")


def shell_once(check: bool = False) -> tuple[float, float]:
    """Build and tear down with the document's commands in a fresh scratch namespace."""
    scratch = nsutil.create_netns()
    try:
        with nsutil.entered(scratch):
            start = time.perf_counter()
            try:
                sh(SHELL_BUILD, "build")
            except BenchError:
                sh(SHELL_TEARDOWN, "teardown", errexit=False)  # leave no names for the harness
                raise
            built = time.perf_counter()
            if check:
                try:
                    shell_check()
                except BenchError:
                    sh(SHELL_TEARDOWN, "teardown", errexit=False)
                    raise
            start_down = time.perf_counter()
            sh(SHELL_TEARDOWN, "teardown")
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
def harness_once(steps: dict[str, list[float]] | None = None, check: bool = False) -> tuple[float, float]:
    from .builder import build
    from .labfile import load_lab
    from .probe import Probe

    start = time.perf_counter()
    live = build(load_lab(LAB))
    built = time.perf_counter()
    try:
        if check:
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


def bench_build(iterations: int, warmup: int) -> dict:
    shell_once(check=True)
    harness_once(check=True)
    for _ in range(warmup):
        shell_once()
        harness_once()
    shell_b, shell_t, harn_b, harn_t, steps = [], [], [], [], {}
    for i in range(iterations):
        # Alternate which goes first, so neither always inherits the other's leftovers
        # (the kernel frees dead namespaces asynchronously).
        order = (0, 1) if i % 2 == 0 else (1, 0)
        for which in order:
            if which == 0:
                b, t = shell_once()
                shell_b.append(b)
                shell_t.append(t)
            else:
                b, t = harness_once(steps)
                harn_b.append(b)
                harn_t.append(t)

    def method(builds, teardowns):
        return {"build_ms": ms(median(builds)), "teardown_ms": ms(median(teardowns)),
                "total_ms": ms(median([b + t for b, t in zip(builds, teardowns)]))}

    shell, harness = method(shell_b, shell_t), method(harn_b, harn_t)
    harness["steps_ms"] = {stage: ms(median(values)) for stage, values in steps.items()}
    return {"shell": shell, "harness": harness,
            "ratio_build": shell["build_ms"] / harness["build_ms"],
            "ratio_total": shell["total_ms"] / harness["total_ms"]}


# -- probes ------------------------------------------------------------------------------
def bench_probe(iterations: int, windows: int) -> dict:
    from scapy.layers.l2 import Ether

    from .builder import build
    from .labfile import load_lab
    from .probe import ETH_P_LOCAL_EXPERIMENTAL, QUIET_WINDOW, Port, Probe

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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness.bench", description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=30, help="timed builds per method (default 30)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed builds per method first (default 3)")
    parser.add_argument("--arp-iterations", type=int, default=500,
                        help="timed ARP and ICMP round trips (default 500)")
    parser.add_argument("--window-iterations", type=int, default=20,
                        help="expect_none quiet windows to time (default 20)")
    parser.add_argument("--no-suites", action="store_true", help="skip timing the suites (minutes)")
    parser.add_argument("--no-scale", action="store_true", help="skip the 10/100/1000-pod bridge and CNI ADD cost")
    parser.add_argument("--scale-sizes", default="10,100,1000", help="pods on the bridge (default 10,100,1000)")
    parser.add_argument("--json", default=os.path.join("reports", "bench.json"),
                        help="where to write the JSON report (default reports/bench.json)")
    args = parser.parse_args(argv)
    if min(args.iterations, args.arp_iterations, args.window_iterations) < 1 or args.warmup < 0:
        parser.error("iteration counts must be positive")
    try:
        # First, before anything could start a thread: a user namespace refuses threaded processes.
        state = sandbox.enter()
        results = {"lab": LAB, "seed": SEED,
                   "commands": {"build": commands(SHELL_BUILD), "teardown": commands(SHELL_TEARDOWN)},
                   LAB: bench_build(args.iterations, args.warmup),
                   "probe": bench_probe(args.arp_iterations, args.window_iterations)}
        if not args.no_scale:
            sizes = tuple(int(n) for n in args.scale_sizes.split(","))
            results["scale"] = bench_scale(sizes)
            results["cni_add"] = bench_cni_add()
        if not args.no_suites:
            results["suites"] = bench_suites(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    except (BenchError, NetconformError) as exc:  # exit 1 is kept for a missed bar
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
