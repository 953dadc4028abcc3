"""make bench's verdicts and its table: bars against the measured results, and why a
missed bar was missed (from the measurements, not guessed)."""
from __future__ import annotations

import os

from harness.bench.suitetimes import PARALLEL_SPEEDUP, SUITE_SECONDS

BUILD_SPEEDUP = 5.0  # the harness builds the lab at least this many times faster than the document
ARP_MS = ICMP_MS = 1.0
EXPECT_NONE_MS = 50.0
SCALE_LARGEST_S = 10.0  # 1000 pods on one bridge, built
PER_POD_GROWTH = 2.0  # "flat": the largest lab's cost per pod within this factor of the smallest's
CNI_OVERHEAD = 0.10  # a CNI ADD through the harness against the plugin alone


def bars(results: dict) -> dict:
    lab, probe = results[results['lab']], results["probe"]

    def bar(value, limit, at_least=False):
        return {"value": value, "bar": limit, "op": ">=" if at_least else "<=",
                "pass": value >= limit if at_least else value <= limit}

    out = {f"{results['lab']}.ratio_build": bar(lab["ratio_build"], BUILD_SPEEDUP, at_least=True),
           "probe.arp_ms": bar(probe["arp_ms"], ARP_MS),
           "probe.icmp_ms": bar(probe["icmp_ms"], ICMP_MS),
           "probe.expect_none_ms": bar(probe["expect_none_ms"], EXPECT_NONE_MS)}
    for name, entry in (results.get("labs") or {}).items():
        if "skipped" not in entry:
            out[f"lab.{name}.ratio_build"] = bar(entry["ratio_build"], BUILD_SPEEDUP, at_least=True)
    scale, cni = results.get("scale"), results.get("cni_add")
    if scale:
        largest = scale["sizes"][str(scale["largest"])]
        out[f"scale.{scale['largest']}_pods_build_s"] = bar(largest["build_s"], SCALE_LARGEST_S)
        out["scale.per_pod_growth"] = bar(scale["per_pod_growth"], PER_POD_GROWTH)
    if cni:
        out["cni_add.overhead"] = bar(cni["overhead"], CNI_OVERHEAD)
    suites = results.get("suites")
    if suites:
        out["suites.documents_serial_s"] = bar(suites["documents_serial_s"], SUITE_SECONDS)
        out["suites.speedup_n2"] = bar(suites["speedup"], PARALLEL_SPEEDUP, at_least=True)
        for name, entry in suites["per_file_n2"].items():
            out[f"suite.{name.removeprefix('suites/')}"] = bar(entry["seconds"], SUITE_SECONDS)
    for name, entry in (results.get("implementations") or {}).items():
        if "seconds" in entry:
            out[f"cni.{name}"] = bar(entry["seconds"], SUITE_SECONDS)
    return out


def table(report: dict) -> str:
    m, r = report["machine"], report["results"]
    lab, probe = r[r['lab']], r["probe"]
    shell, harness = lab["shell"], lab["harness"]
    out = [f"netconform bench: kernel {m['kernel']}, {m['cpus']} CPUs, Python {m['python']}, "
           f"sandbox {report['sandbox']}",
           f"lab {r['lab']} (document {r['seed']}): {report['iterations']} iterations each, after "
           f"{report['warmup']} warm-up, interleaved; medians",
           "",
           f"  {'method':<44}{'build ms':>10}{'teardown ms':>13}{'total ms':>10}",
           f"  {'shell: the document, sh -e, %d + %d commands' % (lab['commands']['build'], lab['commands']['teardown']):<44}"
           f"{shell['build_ms']:>10.2f}{shell['teardown_ms']:>13.2f}{shell['total_ms']:>10.2f}",
           f"  {'harness: build(load_lab()), teardown()':<44}"
           f"{harness['build_ms']:>10.2f}{harness['teardown_ms']:>13.2f}{harness['total_ms']:>10.2f}",
           f"  {'shell / harness':<44}{lab['ratio_build']:>9.2f}x{'':>13}{lab['ratio_total']:>9.2f}x",
           "",
           "  The shell figure includes no readiness wait (its links may still be settling when",
           "  it returns); the harness figure includes waiting until every link is running.",
           "  The shell's scratch host namespace is made untimed; the harness's host node is timed.",
           "  Every timed build starts once the kernel has destroyed the last teardown's namespaces",
           "  (harness.kernel.netnsgc): neither method pays for the other's cleanup.",
           "  harness build by stage (median ms): "
           + ", ".join(f"{stage} {value:.2f}" for stage, value in harness["steps_ms"].items()),
           "",
           f"probe in {r['lab']} ({probe['arp_iterations']} ARP and ICMP round trips after warm-up, "
           f"{probe['expect_none_iterations']} quiet windows); wall time of the call",
           f"  {'probe':<44}{'median ms':>10}{'p90 ms':>13}{'on wire ms':>12}",
           f"  {'arp(ns1/veth-1, 192.168.28.2)':<44}{probe['arp_ms']:>10.3f}{probe['arp_p90_ms']:>13.3f}"
           f"{probe['arp_rtt_ms']:>12.3f}",
           f"  {'ping(ns1, 192.168.28.2)':<44}{probe['icmp_ms']:>10.3f}{probe['icmp_p90_ms']:>13.3f}"
           f"{probe['icmp_rtt_ms']:>12.3f}",
           f"  {'expect_none(ns3/veth-3), %g ms window' % probe['quiet_window_ms']:<44}"
           f"{probe['expect_none_ms']:>10.3f}",
           ""]
    labs = r.get("labs")
    if labs:
        measured = [e for e in labs.values() if "skipped" not in e]
        out += [f"every other document lab, {measured[0]['iterations'] if measured else 0} iterations each, "
                "interleaved; medians (ms); source: the document's commands, or (lab) the lab's own where "
                "the document gives none",
                f"  {'lab':<22}{'commands':>9}{'shell build':>12}{'harness':>9}{'ratio':>8}"
                f"{'shell total':>12}{'harness':>9}{'ratio':>8}  source"]
        for name, e in labs.items():
            if "skipped" in e:
                out.append(f"  {name:<22}  not built here: {e['skipped']}")
                continue
            commands = f"{e['commands']['build']}+{e['commands']['teardown']}"
            out.append(f"  {name:<22}{commands:>9}{e['shell']['build_ms']:>12.1f}{e['harness']['build_ms']:>9.1f}"
                       f"{e['ratio_build']:>7.1f}x{e['shell']['total_ms']:>12.1f}{e['harness']['total_ms']:>9.1f}"
                       f"{e['ratio_total']:>7.1f}x  {e['source']}")
        out.append("")
    scale, cni = r.get("scale"), r.get("cni_add")
    if scale:
        out += ["scale: one bridge, N pods (a namespace each, veth to a bridge port, an address); medians of "
                f"{next(iter(scale['sizes'].values()))['repeats']} builds",
                f"  {'pods':>6}{'build s':>10}{'per pod ms':>12}{'teardown s':>12}{'RSS MB':>9}{'machine MB':>12}"]
        out += [f"  {e['pods']:>6}{e['build_s']:>10.3f}{e['per_pod_ms']:>12.3f}{e['teardown_s']:>12.3f}"
                f"{e['process_rss_mb']:>9.1f}{e['machine_memory_mb']:>12.1f}" for e in scale["sizes"].values()]
        out += [f"  per-pod cost, largest / smallest: {scale['per_pod_growth']:.2f}x", ""]
    if cni:
        out += [f"CNI ADD ({cni['profile']}, {cni['pods_each']} pods each way, interleaved; median wall ms)",
                f"  through the harness (CniBackend.attach) {cni['harness_ms']:>9.2f}",
                f"  the plugin alone ({os.path.basename(cni['plugin'])} exec'd bare) {cni['plugin_alone_ms']:>9.2f}",
                f"  harness overhead {100 * cni['overhead']:+.1f} %", ""]
    suites = r.get("suites")
    if suites:
        out += [f"suites (wall time, pytest in a subprocess): document suites serial {suites['documents_serial_s']:.1f} s, "
                f"-n 2 {suites['documents_n2_s']:.1f} s, speedup {suites['speedup']:.2f}x; each file with -n 2:"]
        out += [f"  {name:<44}{entry['seconds']:>8.1f} s" + ("" if entry["exit"] in (0, 5) else
                                                            f"  (pytest exit {entry['exit']})")
                for name, entry in suites["per_file_n2"].items()]
        out.append("")
    out += implementation_lines(r.get("implementations") or {})
    out.append("bars")
    for name, b in report["bars"].items():
        out.append(f"  {'PASS' if b['pass'] else 'FAIL'}  {name:<28}{b['value']:>10.3f} {b['op']} {b['bar']:g}")
        if not b["pass"]:
            out += [f"        {line}" for line in why(name, r)]
    return "\n".join(out)


def implementation_lines(implementations: dict) -> list[str]:
    """The CNI suites' wall time per implementation, with pytest's summary; a build that cannot run here, why."""
    if not implementations:
        return []
    return (["CNI suites (suites/cni -n 2) per implementation:"]
            + [f"  {name:<22}" + (f"{entry['seconds']:>8.1f} s  {entry['summary']}" if "seconds" in entry
                                  else f"  skipped: {entry['skipped']}") for name, entry in implementations.items()]
            + [""])


def why(name: str, results: dict) -> list[str]:
    """Where the time went, for a missed bar (from the measurements, not guessed)."""
    lab, probe = results[results['lab']], results["probe"]
    if name == "probe.arp_ms":
        return [f"on the wire {probe['arp_rtt_ms']:.3f} ms; the rest is the call itself "
                f"({probe['arp_ms'] - probe['arp_rtt_ms']:.3f} ms: draining the lab's sockets, building the frame)"]
    if name == "probe.expect_none_ms":
        return [f"the quiet window itself is {probe['quiet_window_ms']:g} ms (probe.QUIET_WINDOW): a call "
                f"cannot return sooner; beyond the window {probe['expect_none_ms'] - probe['quiet_window_ms']:.3f} ms"]
    if name.endswith("ratio_build"):
        if name.startswith("lab."):
            lab = results["labs"][name.split(".", 1)[1].rsplit(".", 1)[0]]
        stages = sorted(lab["harness"]["steps_ms"].items(), key=lambda item: -item[1])
        return ["harness build, slowest stages: " + ", ".join(f"{s} {v:.2f} ms" for s, v in stages[:3])]
    return []


