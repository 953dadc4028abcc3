"""What a plugin puts in its result and what a chained plugin accepts as prevResult, on real plugins: at
cniVersion 0.4.0 each ``ips`` entry carries every property the plugin knows (SPEC.md spec-v0.4.0, Well-known
Structures > IPs: "All properties known to the plugin should be provided, even if not strictly required":
SPEC-199); and a chained plugin agnostic of the interface type accepts a previous result whose interface is a
tap device (CONVENTIONS.md, Chained Plugins: "it should accept any previous result that includes a host-side
interface, including `tap` devices": CONV-021), its effect read back from the kernel.

The first is the interface plugin's (``interface_plugin``: the smallest chain holding it); the second is
tuning's, checked once per build in the first configuration holding it, in a network of the test's own
(tap, then tuning) over that configuration's lab, on builds that ship ``tap`` (cni-plugins 1.9.1; 0.9.0 and
1.1.1 have none).
"""
import dataclasses
import ipaddress
import os

import pytest

from harness.cni.runtime import CniError
from pytest_netconform.cni_spec import attach, chain, owned, show  # noqa: F401 - chain: a fixture
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
TAP_MTU, TUNED_MTU = 1500, 1400  # tap's default; what tuning is asked for


def unknown_properties(result: dict, ranges: list[dict]) -> list[str]:
    """SPEC-199: what the ``ips`` entries of an interface plugin's 0.4.0 result leave out that the plugin knows:
    ``interface`` (it put the address on one of its ``interfaces``), and ``gateway`` where the configuration
    states the gateway of the range the address is in (its IPAM gave it to the plugin)."""
    gateways = {ipaddress.ip_network(r["subnet"]): r["gateway"] for r in ranges if r.get("gateway")}
    missing = []
    for i, ip in enumerate(result.get("ips") or []):
        if "interface" not in ip:
            missing.append(f"SPEC-199: ips[{i}] ({ip.get('address')}) has no interface, the index of the interface "
                           f"the plugin put it on")
        address = ipaddress.ip_interface(ip["address"]).ip if isinstance(ip.get("address"), str) else None
        stated = next((gw for net, gw in gateways.items() if address is not None and address in net), None)
        if stated and "gateway" not in ip:
            missing.append(f"SPEC-199: ips[{i}] ({ip['address']}) has no gateway; the configuration states {stated}")
    return missing


@pytest.mark.parametrize("version", ["0.4.0"])
@pytest.mark.interface_plugin
@pytest.mark.spec("SPEC-199")
def test_ips_carry_every_property_the_plugin_knows(request, chain, version, add_pod):
    """The interface plugin's own ADD result (the first of the chain's runs), judged against its configuration.
    The twin: the same result with those properties removed is judged incomplete, so the check can fail."""
    attach(chain, add_pod("pod1"))
    first = next(run for run in chain.runtime.log if run.command == "ADD")
    plugin = chain.network.plugins[0]
    ranges = [r for rs in ((plugin.get("ipam") or {}).get("ranges") or []) for r in rs]
    if not first.result.get("ips"):
        pytest.skip(f"{plugin['type']}'s result has no ips: SPEC-199 (IPs) has nothing to judge")
    stripped = dict(first.result, ips=[{k: v for k, v in ip.items() if k not in ("interface", "gateway")}
                                       for ip in first.result["ips"]])
    assert unknown_properties(stripped, ranges), "the twin: a result without interface is not judged incomplete"
    problems = unknown_properties(first.result, ranges)
    verdict(request, chain, "ips-properties", version, {plugin["type"]: problems and [*problems, show([first])]})


def tap_network(network, tuned: bool):
    """A network of the test's own: ``tap`` (no IPAM: the tap device is its whole result), then tuning setting
    the MTU when ``tuned``."""
    plugins = [{"type": "tap"}] + ([{"type": "tuning", "mtu": TUNED_MTU}] if tuned else [])
    return dataclasses.replace(network, name="netconform-tap", plugins=plugins)


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
@pytest.mark.newest_version_only
@pytest.mark.spec("CONV-021")
def test_a_chained_plugin_accepts_a_tap_device_as_the_previous_result(
        request, cni_network, cni_config, cni_path, version):
    """tap makes the pod's eth0 a tap device; tuning, chained after it, must accept that result and set the MTU
    it was asked for (the kernel's eth0 reads TUNED_MTU). The twin: tap alone leaves TAP_MTU, so the MTU read
    back is tuning's doing."""
    if not any(os.access(os.path.join(folder, "tap"), os.X_OK) for folder in cni_path):
        pytest.skip(f"this build ships no tap plugin (none in {':'.join(cni_path)}): CONV-021 needs one")
    owned(request, cni_network, cni_config, cni_path, version, {"tuning"})
    chain, add_pod = request.getfixturevalue("chain"), request.getfixturevalue("add_pod")  # the lab: only now
    claims = chain.runtime.version("tap", version).result or {}
    if version not in claims.get("supportedVersions", []):
        pytest.skip(f"tap does not claim {version} ({claims})")
    mtus = {}
    for pod, tuned in (("pod1", False), ("pod2", True)):
        network = tap_network(chain.network, tuned)
        add_pod(pod)
        try:
            result = chain.runtime.add(network, chain.container_id(pod), chain.netns_path(pod), "eth0")
        except CniError as exc:
            problems = [f"CONV-021: the chain tap{', tuning' if tuned else ''} failed: {exc}",
                        show([exc.run] if exc.run else [])]
            if not tuned:
                pytest.fail("tap alone failed, so tuning after it cannot be judged:\n" + "\n".join(problems),
                            pytrace=False)
            verdict(request, chain, "tap-prev-result", version, {exc.run.plugin if exc.run else "tuning": problems})
            return
        ipr = chain.live.ipr(pod)
        link = ipr.get_links(chain.live.ifindex(pod, "eth0"))[0]
        kind = link.get_attr("IFLA_LINKINFO").get_attr("IFLA_INFO_KIND") if link.get_attr("IFLA_LINKINFO") else None
        mtus[tuned] = (link.get_attr("IFLA_MTU"), kind, result)
        chain.runtime.delete(network, chain.container_id(pod), chain.netns_path(pod), result)
    assert mtus[False][0] == TAP_MTU and mtus[False][1] == "tun", \
        f"the twin: tap alone made eth0 {mtus[False][1]} with MTU {mtus[False][0]}, not a tap with {TAP_MTU}"
    problems = [] if mtus[True][0] == TUNED_MTU else [
        f"CONV-021: after tap then tuning (mtu {TUNED_MTU}) the pod's eth0 has MTU {mtus[True][0]}; result "
        f"{mtus[True][2]}", show(chain.runtime.log[-4:])]
    verdict(request, chain, "tap-prev-result", version, {"tuning": problems})
