"""The CNI spec on the dhcp IPAM plugin, the one whose work needs a service of the host (its daemon) and a
DHCP server on the pod's wire: DEL when its DHCP release cannot be done (spec-v1.0.0 and -v1.1.0, Section 2 >
DEL, SPEC-034; spec-v0.4.0, CNI Plugin > Parameters, SPEC-151), and STATUS when its daemon is down
(spec-v1.1.0, Section 2 > STATUS, SPEC-055).

They run on the profile macvlan-dhcp only (harness/cni/profiles, selected here and by no other suite): a
macvlan pod on the cni-host lab's eth0, whose peer in "internet" runs dnsmasq's DHCP server
(harness.cni.dhcp); the dhcp daemon runs in the host node, its socket under the sandbox's private /run. The
DHCP exchange is a real one, seen on the server's interface. The IPAM is judged exec'd alone, as macvlan
delegates to it (the same configuration, attachment and environment), so a verdict is the dhcp plugin's.
"""
import ipaddress
import os
import types

import pytest

from harness.cni.dhcp import DhcpDaemon, DhcpServer, dhcp_message, socket_path
from harness.cni.runtime import NO_ATTACHMENT, Here, Runtime
from harness.errors import CapabilityMissing
from harness.lab.live import delete_link
from harness.probe import Port
from pytest_netconform.cni_select import unclaimed, version_claims
from pytest_netconform.deviations import verdict

pytestmark = [pytest.mark.area("CNI spec"), pytest.mark.cni_profiles("macvlan-dhcp")]
LEASED = ("192.168.1.50", "192.168.1.59", "255.255.255.0")  # dnsmasq's range, in the lab's 192.168.1.0/24
SERVER = Port("internet", "eth0")  # the DHCP server's interface: the peer of the host's eth0, the macvlan's master
STATUS_VERSION = "1.1.0"  # STATUS is 1.1.0's


def evidence(runs, daemon) -> str:
    """What each plugin run answered, and the end of the daemon's log (lines start with two spaces)."""
    return "\n".join([*(f"  {r.describe()}: stdout {r.stdout.strip()[:300]!r} stderr {r.stderr.strip()[-200:]!r}"
                        for r in runs), f"  the dhcp daemon's log: {daemon.output()[-600:]!r}"])


@pytest.fixture
def dhcp(cni, tmp_path):
    """(the macvlan-dhcp backend, its DHCP server, its daemon): dnsmasq on internet's eth0, the daemon in the
    host node; both stop with the lab (after the backend's DELs), the daemon's socket removed."""
    live, ipam = cni.live, cni.network.plugins[0]["ipam"]
    try:
        server = DhcpServer(live, "internet", "eth0", *LEASED)
        live.on_teardown(server.close)
        daemon = DhcpDaemon(live, "host", cni.runtime.find(ipam["type"]), socket_path(ipam),
                            str(tmp_path / "dhcpd.log"))
    except CapabilityMissing as exc:
        pytest.skip(str(exc))
    live.on_teardown(daemon.close)
    live.probe.listen(SERVER)  # before any ADD: the whole exchange is seen
    return cni, server, daemon


def leased_by_the_server(net, pod: str) -> tuple[str, object]:
    """Attach ``pod``; (its IPv4 address, the plugin's result), once the server was seen ACKing that address
    to the pod's MAC: the lease is the server's, not one the harness or plugin made up."""
    attachment = net.attach(pod)
    address = str(ipaddress.ip_interface(attachment.result["ips"][0]["address"]).ip)
    ack = net.live.probe.expect(SERVER, dhcp_message("ack", yiaddr=address), inbound=False)
    assert ack, f"the ADD's address {address} was not ACKed by the lab's DHCP server on {SERVER}:\n{ack.format()}"
    return address, attachment


def release_by_the_ipam(net, pod: str, attachment):
    """The IPAM's DEL, exec'd as macvlan delegates it: the plugin's configuration, the pod's attachment."""
    plugin = net.network.plugins[0]
    conf = net.runtime.prepare(net.network, plugin, attachment.result, None)
    return net.runtime.exec("DEL", plugin["ipam"]["type"], conf, net.container_id(pod), net.netns_path(pod), "eth0")


def statement(net) -> str:
    return "SPEC-151" if net.network.cni_version == "0.4.0" else "SPEC-034"


@pytest.mark.spec("SPEC-034", "SPEC-151")
def test_del_with_the_server_up_sends_the_release_and_exits_0(dhcp, add_pod):
    """The twin of the next test: with the DHCP server up, the IPAM's DEL sends the release the spec speaks of
    ("DHCP may usually send a 'release' message on the container network interface", and the dhcp plugin's
    daemon does: DHCP.Release) and exits 0; the server sees the DHCPRELEASE of the pod's address."""
    net, _, daemon = dhcp
    address, attachment = leased_by_the_server(net, add_pod("pod1"))
    run = release_by_the_ipam(net, "pod1", attachment)
    release = net.live.probe.expect(SERVER, dhcp_message("release", ciaddr=address))
    assert run.returncode == 0 and run.problem is None and run.error is None, \
        f"{statement(net)}: DEL with the DHCP server up did not exit 0:\n{evidence([run], daemon)}"
    assert release, (f"{statement(net)}: DEL exited 0 but no DHCPRELEASE of {address} reached the server on "
                     f"{SERVER}:\n{release.format()}\n{evidence([run], daemon)}")


@pytest.mark.spec("SPEC-034", "SPEC-151")
def test_del_exits_0_when_the_release_cannot_reach_the_server(request, dhcp, add_pod):
    """"Since DHCP leases have a lifetime this release action would not be considered critical and no error
    should be returned if this action fails": the server stopped and its wire gone (the host's eth0 deleted,
    and with it the pod's macvlan, as the kernel shows) before the DEL; the DEL still exits 0. The twin, the
    same DEL with the server up, sends its release (the previous test)."""
    net, server, daemon = dhcp
    address, attachment = leased_by_the_server(net, add_pod("pod1"))
    server.close()
    delete_link(net.live, "host", "eth0")
    left = [m.get_attr("IFLA_IFNAME") for m in net.live.ipr("pod1").get_links()]
    if "eth0" in left:
        pytest.fail(f"the arrangement failed: the pod's macvlan eth0 outlived its master (pod1 has {left})",
                    pytrace=False)
    run = release_by_the_ipam(net, "pod1", attachment)
    problems = {"dhcp": [] if run.returncode == 0 and run.problem is None and run.error is None else [
        f"{statement(net)}: DEL of the lease of {address} with no wire left to send its release on: "
        f"{run.describe()}", evidence([run], daemon)]}
    verdict(request, net, "dhcp-release-fails", net.network.cni_version, problems)


@pytest.mark.spec("SPEC-055", "SPEC-053")
def test_status_errors_while_the_dhcp_daemon_is_down(request, cni_network, cni_path, cni_impl, tmp_path):
    """"If a plugin relies on an external service or daemon, it should return an error to STATUS if that service
    is unavailable": the dhcp IPAM's STATUS with no daemon on its socket is an error. The twin: with the daemon
    serving that socket, STATUS exits 0 ("ready to service ADD requests", SPEC-053, MUST). No lab: STATUS
    carries no attachment; the daemon runs in the sandbox's own namespace."""
    _, network = cni_network
    plugin = network.plugins[0]
    ipam = plugin["ipam"]
    runs = version_claims(network, cni_path)
    if runs.get(ipam["type"]) is None or unclaimed({ipam["type"]: runs[ipam["type"]]}, STATUS_VERSION):
        pytest.skip(f"STATUS is {STATUS_VERSION}'s: {ipam['type']} does not claim it here")
    runtime = Runtime(Here(), path=list(cni_path), state_dir=str(tmp_path))
    request.addfinalizer(runtime.close)
    conf = runtime.prepare(network, plugin, None, None, STATUS_VERSION)
    try:
        daemon = DhcpDaemon(Here(), "sandbox", runtime.find(ipam["type"]), socket_path(ipam),
                            str(tmp_path / "dhcpd.log"))
    except CapabilityMissing as exc:
        pytest.skip(str(exc))
    try:
        ready = runtime.exec("STATUS", ipam["type"], conf, env_override=NO_ATTACHMENT)
    finally:
        daemon.close()
    assert ready.returncode == 0 and ready.problem is None, \
        f"SPEC-053: STATUS with the dhcp daemon serving {daemon.path} did not exit 0:\n{evidence([ready], daemon)}"
    if os.path.exists(daemon.path):
        pytest.fail(f"the arrangement failed: {daemon.path} outlived the daemon", pytrace=False)
    down = runtime.exec("STATUS", ipam["type"], conf, env_override=NO_ATTACHMENT)
    problems = {ipam["type"]: [] if down.returncode != 0 and down.error is not None else [
        f"SPEC-055: STATUS with no dhcp daemon on {daemon.path} (the socket is gone): {down.describe()}",
        evidence([ready, down], daemon)]}
    build = cni_impl[0].id if cni_impl else None
    chain = types.SimpleNamespace(network=network, runtime=runtime, build=build)  # what verdict() reads
    verdict(request, chain, "status-daemon-down", STATUS_VERSION, problems)
