"""The two-host Flannel lab (issue 14, "Across two hosts") without VMs: the Vagrantfile's two
machines and their private network, and what a node programs (harness.vm.flannel_node), here on
two namespaces standing for the VMs, joined by a veth as their eth1.

The real run (two VMs, ``python -m harness vm twohost``) is ``test_the_two_host_flannel_suite_runs_
in_two_vms`` in tests/test_vm.py's style, marked ``vm``.
"""
import json
import os
import subprocess
import textwrap
import xml.etree.ElementTree as ET

import pytest

from harness.kernel import nsutil
from harness.vm import flannel_node, twohost
from harness.vm.flannel_node import NodePlan

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Vagrant's DSL stood in for: the Vagrantfile is evaluated by Ruby, its machines and networks recorded.
VAGRANT_STUB = textwrap.dedent("""
    require "json"
    class Recorder
      def initialize(into) @into = into end
      def method_missing(name, *args, **options, &block)
        key = name.to_s.chomp("=")
        if block
          child = {}
          (@into[key] ||= []) << {"args" => args, "options" => options, "body" => child}
          block.call(Recorder.new(child))
        elsif name.to_s.end_with?("=")
          @into[key] = args.first
        elsif [:vm, :ssh].include?(name) && args.empty?
          return Recorder.new(@into[key] ||= {})
        else
          (@into[key] ||= []) << {"args" => args, "options" => options}
        end
        self
      end
      def respond_to_missing?(*) true end
    end
    module Vagrant
      def self.configure(version)
        $config = {}
        yield Recorder.new($config)
      end
    end
    load ARGV[0]
    puts JSON.generate($config)
""")


def vagrant_config(env=None) -> dict:
    done = subprocess.run(["ruby", "-e", VAGRANT_STUB, os.path.join(PROJECT, "Vagrantfile")], capture_output=True,
                          text=True, timeout=60, env=dict(os.environ, **(env or {})))
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def machine(config, name) -> dict:
    defined = {entry["args"][0]: entry for entry in config["vm"]["define"]}
    return defined[name]


@pytest.mark.skipif(not __import__("shutil").which("ruby"), reason="requires ruby (Vagrant's, to read the Vagrantfile)")
def test_the_vagrantfile_defines_two_flannel_nodes_on_one_private_network():
    config = vagrant_config({"NETCONFORM_TWOHOST_BOX": "netconform/forky"})
    networks = {}
    for name, node in twohost.nodes().items():
        entry = machine(config, name)
        assert entry["options"] == {"autostart": False}, entry["options"]  # only when asked for
        body = entry["body"]["vm"]
        assert body["box"] == "netconform/forky", body  # the run's box, by environment
        (network,) = body["network"]
        assert network["args"] == ["private_network"], network
        options = network["options"]
        # A static underlay address, configured by the node program (not Vagrant's guest plugins), on an
        # isolated libvirt network of its own: no DHCP, no forwarding out of libvirtd's namespace.
        assert options["ip"] == node["public_ip"].split("/")[0] and options["auto_config"] is False, options
        assert (options["libvirt__dhcp_enabled"], options["libvirt__forward_mode"]) == (False, "none"), options
        networks[name] = options["libvirt__network_name"]
    assert len(set(networks.values())) == 1, networks  # one network: the underlay they share
    assert [node["public_ip"] for node in twohost.nodes().values()] == ["192.168.1.10/24", "192.168.1.11/24"]
    # The boxes' machines are still defined as before.
    assert machine(config, "bookworm")["body"]["vm"]["box"] == "netconform/bookworm"


def test_a_node_programs_flannel_1_and_its_peer_as_flanneld_does():
    plan = NodePlan(1, "192.168.1.10/24")
    vxlan = plan.vxlan(underlay_index=3)
    assert (vxlan["vxlan_id"], vxlan["vxlan_port"], vxlan["mtu"], vxlan["vxlan_learning"]) == (1, 8472, 1450, 0)
    assert (vxlan["vxlan_local"], vxlan["vxlan_link"], vxlan["ifname"]) == ("192.168.1.10", 3, "flannel.1")
    lease = flannel_node.lease_of(NodePlan(2, "192.168.1.11/24"), "02:00:00:00:02:00")
    entries = flannel_node.peer_entries(lease)
    assert entries["route"] == {"dst": "10.244.2.0/24", "gateway": "10.244.2.0", "flags": 4}  # RTNH_F_ONLINK
    assert entries["neighbour"] == {"dst": "10.244.2.0", "lladdr": "02:00:00:00:02:00", "state": 0x80}  # PERMANENT
    assert (entries["fdb"]["lladdr"], entries["fdb"]["dst"], entries["fdb"]["flags"]) == (
        "02:00:00:00:02:00", "192.168.1.11", 0x02)  # NTF_SELF: the VXLAN device's own table


def test_each_node_makes_its_own_random_vtep_mac():
    macs = {flannel_node.random_mac() for _ in range(8)}
    assert len(macs) == 8, macs
    assert all(int(mac[:2], 16) & 0x03 == 0x02 for mac in macs), macs  # locally administered, unicast


def two_nodes(vni2: int):
    """Two namespaces joined by a veth (each end eth1), programmed as node1 and node2."""
    from pyroute2 import IPRoute
    fds = [nsutil.create_netns(), nsutil.create_netns()]
    with IPRoute() as ipr:
        ipr.link("add", ifname="dev-n1", kind="veth", peer={"ifname": "dev-n2"})
        for fd, name in zip(fds, ("dev-n1", "dev-n2")):
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], net_ns_fd=fd)
    plans = [NodePlan(1, "192.168.1.10/24"), NodePlan(2, "192.168.1.11/24", vni=vni2)]
    leases = []
    for fd, plan, name in zip(fds, plans, ("dev-n1", "dev-n2")):
        with nsutil.entered(fd), IPRoute() as ipr:
            ipr.link("set", index=ipr.link_lookup(ifname=name)[0], ifname="eth1")
        with nsutil.entered(fd):
            leases.append(flannel_node.up(plan))
    for fd, plan, remote in zip(fds, plans, reversed(leases)):
        with nsutil.entered(fd):
            flannel_node.add_peer(plan, remote)
    return fds, plans


def ping(pod, address, wait=2):
    return subprocess.run(["nsenter", f"--net=/run/netns/{pod}", "ping", "-c", "1", "-W", str(wait), address],
                          capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize("vni2,delivered", [pytest.param(1, True, id="same-vni"),
                                            pytest.param(2, False, id="node2-on-vni-2")])
def test_two_programmed_nodes_carry_a_pods_ping_only_on_one_vni(vni2, delivered):
    fds, plans = two_nodes(vni2)
    try:
        with nsutil.entered(fds[0]):
            underlay = flannel_node.packet_socket("eth1")
        done = ping("pod1a", "10.244.2.2")
        frames = [f for f in flannel_node.collect({"eth1": underlay}, 0.2)["eth1"] if "vxlan" in f]
        underlay.close()
        assert (done.returncode == 0) is delivered, done.stdout + done.stderr
        # Either way node1 sent the echo in VNI 1 to node2's public IP, flannel.1 to flannel.1.
        echo = [f for f in frames if f["src"] == "192.168.1.10" and f["vxlan"].get("inner_dst") == "10.244.2.2"]
        assert echo and echo[0]["dst"] == "192.168.1.11" and echo[0]["vxlan"]["vni"] == 1, frames
        replies = [f for f in frames if f["src"] == "192.168.1.11"]
        assert bool(replies) is delivered, frames
    finally:
        for fd, plan in zip(fds, plans):
            with nsutil.entered(fd):
                flannel_node.down(plan)
            os.close(fd)


# -- the run's steps, with a stand-in for Vagrant and ssh (no VM) ------------------------------

class FakeVagrant:
    def __init__(self, calls, ssh_config):
        self.calls, self.text = calls, ssh_config

    def up(self, vm_name, provider):
        self.calls.append(("up", vm_name))

    def ssh_config(self, vm_name):
        return self.text

    def destroy(self, vm_name):
        self.calls.append(("destroy", vm_name))


@pytest.fixture
def fake_two_hosts(tmp_path, monkeypatch):
    from harness.vm import driver
    key = tmp_path / "insecure_private_key"
    key.write_bytes(b"vagrant's insecure key")
    text = "".join(f"Host {name}\n  HostName 192.168.121.{5 + number}\n  User vagrant\n  Port 22\n"
                   f"  IdentityFile \"{key}\"\n" for number, name in enumerate(twohost.nodes()))
    calls, fails = [], set()
    monkeypatch.setattr(twohost.shutil, "which", lambda name: f"/usr/bin/{name}")
    monkeypatch.setattr(twohost._TwoHostSession, "prepare",
                        lambda self: setattr(self, "machine", FakeVagrant(calls, text)))

    def ssh(argv, **kwargs):
        calls.append(("ssh", argv[argv.index("--") - 1], argv[-1], kwargs.get("input")))
        return subprocess.CompletedProcess(argv, 1 if "ssh" in fails else 0, b"", b"refused")

    def copy_back(ssh_argv, results):
        calls.append(("copy back", ssh_argv[ssh_argv.index("--") - 1]))
        with open(os.path.join(results, "kernel"), "w") as handle:
            handle.write("6.1.0-fake\n")

    monkeypatch.setattr(subprocess, "run", ssh)
    monkeypatch.setattr(driver, "_copy_back", copy_back)
    return calls, fails


def test_the_two_host_run_brings_both_up_arranges_node1_runs_there_and_destroys_both(fake_two_hosts, tmp_path):
    import io
    calls, _ = fake_two_hosts
    record = twohost.run(str(tmp_path), "bookworm", results=str(tmp_path / "results"), out=io.StringIO())
    both = "/^flannel-node[0-9]+$/"
    assert calls[0] == ("up", both) and calls[-1] == ("destroy", both), calls
    writes = {call[2].split()[-1]: call[3] for call in calls if call[0] == "ssh" and call[3] is not None}
    assert all(call[1] == "flannel-node1" for call in calls if call[0] in ("ssh", "copy back")), calls
    assert writes[twohost.PEER_KEY] == b"vagrant's insecure key"
    peer = json.loads(writes[flannel_node.PEER_FILE])
    assert peer["node"] == {"index": 1, "public_ip": "192.168.1.10/24"} and peer["underlay"] == "eth1", peer
    assert (peer["peer"]["host"], peer["peer"]["index"], peer["peer"]["key"]) == ("192.168.121.6", 2, twohost.PEER_KEY)
    (pytest_run,) = [call[2] for call in calls if call[0] == "ssh" and "pytest" in call[2]]
    assert "suites/test_flannel_two_hosts.py" in pytest_run and "--no-sandbox" in pytest_run, pytest_run
    assert list(record.times) == ["vagrant up", "arrange", "test run", "copy back", "destroy"], record.times
    assert (record.kernel, record.destroyed) == ("6.1.0-fake", True)


def test_a_failed_arrangement_is_one_line_and_both_vms_are_still_destroyed(fake_two_hosts, tmp_path):
    import io
    from harness.errors import VmError
    calls, fails = fake_two_hosts
    fails.add("ssh")
    with pytest.raises(VmError) as raised:
        twohost.run(str(tmp_path), "bookworm", results=str(tmp_path / "results"), out=io.StringIO())
    assert str(raised.value).startswith("vm twohost: writing /root/.ssh/netconform-peer on node1 failed: refused")
    assert calls[-1] == ("destroy", "/^flannel-node[0-9]+$/") and not any(c[0] == "copy back" for c in calls)


# -- the real run: two VMs ------------------------------------------------------------------------

def cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


@pytest.mark.vm
@pytest.mark.two_hosts
@pytest.mark.timeout(30 * 60 + 60)
def test_the_two_host_flannel_suite_runs_in_two_vms_and_leaves_the_machine_as_it_was(tmp_path):
    from test_isolation import differences, snapshot
    from test_vm import harness_cli, junit_outcomes, vm_processes
    from harness.kernel import sandbox
    env = dict(os.environ)
    env.pop(sandbox.OUTER_ENV, None)
    before = snapshot()
    done = harness_cli("vm", "twohost", "--results", str(tmp_path / "twohost"), env=env,
                       preexec_fn=sandbox.outside_preexec(), timeout=30 * 60)
    after = snapshot()
    print(done.stdout[-4000:], done.stderr[-2000:], sep="\n")
    assert done.returncode == 0, f"the two-host run failed:\n{done.stdout[-3000:]}{done.stderr[-2000:]}"
    assert after == before, differences(before, after)
    # Other sessions' VMs may be running: ours are the qemu of the flannel-node machines.
    left = [process for process in vm_processes() if "flannel-node" in cmdline(process.split()[0])]
    assert left == [], f"a node's VM outlived the two-host run: {left}"
    outcomes = junit_outcomes(str(tmp_path / "twohost" / "junit.xml"))
    ran = {name: status for name, status in outcomes.items() if "test_flannel_two_hosts" in name}
    assert len(ran) == 3 and set(ran.values()) == {"passed"}, ran
    with open(tmp_path / "twohost" / "kernel") as handle:
        kernel = handle.read().strip()
    properties = ET.parse(tmp_path / "twohost" / "junit.xml").getroot().iter("property")
    assert ("kernel", kernel) in {(p.get("name"), p.get("value")) for p in properties}, kernel
