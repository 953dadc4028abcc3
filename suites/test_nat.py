"""NAT: MASQUERADE source rewriting and its reverse - document 000 (routed containers,
step 6). The document's internet (8.8.8.8) is the lab namespace "internet".
"""
import pytest

from pytest_netconform import lab_fixture
from harness import QUIET_WINDOW

pytestmark = pytest.mark.area("NAT")

routed = lab_fixture("000-routed-containers")


def flush_masquerade(lab):
    done = lab.run("host", ["iptables", "-t", "nat", "-F", "POSTROUTING"])
    assert done.returncode == 0, done.stderr


@pytest.mark.document("000", "步骤 6: ping 8.8.8.8")
def test_container1_pings_the_internet(routed):
    result = routed.probe.ping("container1", "8.8.8.8")
    assert result, result.error


@pytest.mark.document("000", "步骤 6: MASQUERADE -s 10.0.1.0/24 -o eth0")
@pytest.mark.parametrize("exchange", ["udp", "tcp"])
def test_masquerade_rewrites_the_source_and_reverses_it_for_the_reply(routed, exchange):
    result = getattr(routed.probe, exchange)("container1", "internet", "8.8.8.8", 53)
    assert result, result.error
    assert result.server_saw[0] == "192.168.1.100", f"the internet saw {result.server_saw}"
    assert result.client_saw == ("8.8.8.8", 53) and result.reply == b"netconform"


@pytest.mark.document("000", "步骤 6")
def test_without_masquerade_the_private_source_leaves_and_no_reply_returns(routed):
    flush_masquerade(routed)
    result = routed.probe.udp("container1", "internet", "8.8.8.8", 53, timeout=QUIET_WINDOW)
    assert not result
    assert result.server_saw and result.server_saw[0] == "10.0.1.2", result


@pytest.mark.document("000", "步骤 6: -o eth0")
def test_traffic_between_containers_is_not_masqueraded(routed):
    result = routed.probe.udp("container1", "container2", "10.0.2.2", 53)
    assert result, result.error
    assert result.server_saw[0] == "10.0.1.2", f"container2 saw {result.server_saw}"
