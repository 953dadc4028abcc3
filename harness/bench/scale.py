"""make bench, scale and cost: one bridge with 10, 100 and 1000 pods, and a CNI ADD
through the harness against the plugin alone.

Scale: the lab is a host with bridge ``br0`` and N pods, each a namespace with
``eth0`` (10.128.0.0/16) whose veth peer is a port of ``br0`` -- the shape of a
node running N containers. Timed: ``build()`` (namespaces, links, addresses, every
link waited for until running) and ``teardown()``; memory: this process's resident
set and the machine's MemAvailable, before and after the build.

CNI ADD: the bundled bridge-host-local profile over a cni-host lab; pods attached
alternately through ``CniBackend.attach`` and by exec'ing the same plugin with the
same configuration from a bare loop (``subprocess.run`` in the host namespace: the
plugin alone, as a shell would), so both see the same noise and the same growing
bridge. The harness's overhead is the ratio of the medians, minus one.
"""
from __future__ import annotations

import json
import os
import resource
import statistics
import subprocess
import tempfile
import time

from harness.errors import NetconformError
from harness.lab.model import Lab, Link, Node, Peer
from harness.kernel.netnsgc import cleanup_barrier

SIZES = (10, 100, 1000)
POD_SUBNET = "10.128.0.0/16"
CNI_PROFILE = "bridge-host-local.conflist"


def _ms(seconds: float) -> float:
    return round(seconds * 1000.0, 3)


def bridge_lab(pods: int) -> Lab:
    """A host bridge with ``pods`` pods on it, addressed from 10.128.0.2 up."""
    nodes = [Node("host", links=[Link("br0", "bridge", addresses=["10.128.0.1/16"])])]
    for i in range(pods):
        host = i + 2
        nodes.append(Node(f"pod{i}", links=[Link("eth0", "veth", addresses=[f"10.128.{host // 256}.{host % 256}/16"],
                                                 peer=Peer(f"veth{i}", node="host", master="br0"))]))
    return Lab(f"scale-{pods}", nodes=nodes, summary=f"one bridge, {pods} pods")


def _rss_mb() -> float:
    with open("/proc/self/statm", encoding="ascii") as handle:
        return int(handle.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _available_mb() -> float:
    with open("/proc/meminfo", encoding="ascii") as handle:
        for line in handle:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def _enough_fds(pods: int) -> None:
    """A lab keeps a namespace fd and a netlink socket per node: lift the soft limit to the hard one."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < 3 * pods + 256:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def bench_scale(sizes=SIZES, repeats: int = 3) -> dict:
    """Build and teardown of one bridge with each number of pods: medians of ``repeats``."""
    from harness.lab.build import build
    from harness.probe import Probe

    _enough_fds(max(sizes))
    out = {}
    for pods in sizes:
        lab = bridge_lab(pods)
        builds, teardowns, rss, kernel = [], [], [], []
        for _ in range(repeats):
            cleanup_barrier()  # the last repeat's namespaces destroyed first (see harness.kernel.netnsgc)
            available_before = _available_mb()
            start = time.perf_counter()
            live = build(lab)
            built = time.perf_counter()
            try:
                rss.append(_rss_mb())
                kernel.append(available_before - _available_mb())
                last = f"10.128.{(pods + 1) // 256}.{(pods + 1) % 256}"
                result = Probe(live).ping("pod0", last)  # the lab works end to end (untimed)
                if not result:
                    raise NetconformError(f"scale-{pods}: pod0 cannot ping {last}: {result.error}")
            finally:
                start_down = time.perf_counter()
                live.teardown()
                teardowns.append(time.perf_counter() - start_down)
            builds.append(built - start)
        build_s = statistics.median(builds)
        out[str(pods)] = {"pods": pods, "build_s": round(build_s, 6), "per_pod_ms": _ms(build_s / pods),
                          "teardown_s": round(statistics.median(teardowns), 4),
                          "process_rss_mb": round(statistics.median(rss), 1),
                          "machine_memory_mb": round(statistics.median(kernel), 1), "repeats": repeats}
    smallest, largest = out[str(min(sizes))], out[str(max(sizes))]
    return {"sizes": out, "largest": max(sizes),
            "per_pod_growth": round(largest["per_pod_ms"] / smallest["per_pod_ms"], 2)}


def bench_cni_add(pods: int = 30) -> dict:
    """Median wall time of one ADD: through the harness's CNI runtime vs the plugin exec'd bare."""
    from harness.kernel import nsutil
    from harness.lab.build import build
    from harness.cni.backend import CniBackend
    from harness.cni.conf import load, profile_dir
    from harness.lab.file import load_lab

    network = load(os.path.join(profile_dir(), CNI_PROFILE))
    live = build(load_lab("cni-host"))
    state = tempfile.mkdtemp(prefix="netconform-bench-cni-")
    try:
        backend = CniBackend(live, network, state)
        binary = backend.runtime.find(network.types[0])
        plugin = network.plugins[0]
        harness_s, bare_s = [], []
        for i in range(2 * pods + 2):
            name = f"pod{i}"
            live.add_node(name)
            if i % 2 == (i // 2) % 2:  # alternate which method goes first in each pair
                start = time.perf_counter()
                backend.attach(name)
                harness_s.append(time.perf_counter() - start)
            else:
                conf = backend.runtime.prepare(network, plugin, None, None)
                env = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": f"bare-{name}", "CNI_NETNS": f"/run/netns/{name}",
                       "CNI_IFNAME": "eth0", "CNI_PATH": ":".join(backend.runtime.path),
                       "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
                payload = json.dumps(conf)
                start = time.perf_counter()
                with nsutil.entered(live.fd("host")):
                    done = subprocess.run([binary], input=payload, env=env, cwd=state, capture_output=True, check=False,
                                          text=True)
                bare_s.append(time.perf_counter() - start)
                if done.returncode != 0:
                    raise NetconformError(f"{binary} ADD {name}: exit {done.returncode}: {done.stdout.strip()[:200]}")
        harness_s, bare_s = harness_s[1:], bare_s[1:]  # the first of each made cni0: not a steady ADD
    finally:
        live.teardown()
        subprocess.run(["rm", "-rf", state], check=False)
    harness_ms, bare_ms = _ms(statistics.median(harness_s)), _ms(statistics.median(bare_s))
    return {"profile": CNI_PROFILE, "plugin": binary, "pods_each": len(harness_s), "harness_ms": harness_ms,
            "plugin_alone_ms": bare_ms, "overhead": round(harness_ms / bare_ms - 1.0, 4)}
