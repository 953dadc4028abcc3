"""The CNI spec's STATUS (spec-v1.1.0, Section 2: Execution Protocol > STATUS) on real plugins: a ready
plugin exits 0; a plugin that delegates to an IPAM plugin executes STATUS on it and turns its error into
an error of its own; an IPAM plugin whose addresses are exhausted says so.

STATUS carries no attachment (CNI_COMMAND and CNI_PATH only) and touches no network: each check runs with no
lab, once per plugin binary (pytest_netconform.cni_select.owners: the first configuration of the run holding it),
at cniVersion 1.1.0 only, on builds whose plugins claim it (cni-plugins@1.9.1 here). The forwarding is
observed with an IPAM plugin of the test's own (harness.cni.recorder, alone in a directory on CNI_PATH) put in
the plugin's ``ipam.type``: what it was sent, and its error surfacing through the plugin. Known deviations go
through verdict() (harness/impl/expectations/<build>.yaml).
"""
import types

import pytest

from harness.cni import recorder as ipam_recorder
from harness.cni.runtime import NO_ATTACHMENT, Here, Runtime, evidence
from harness.cni.schema import validate_error
from pytest_netconform.cni_select import ipam_checks, owners, unclaimed, version_claims
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
VERSION = "1.1.0"  # STATUS is 1.1.0's


@pytest.fixture
def status(request, cni_network, cni_config, cni_path, cni_impl, tmp_path):
    """(network, the plugin types this configuration checks, a lab-less runtime whose CNI_PATH ends with the
    recorder's directory, the recorder, the build's id): skipped unless every plugin claims 1.1.0."""
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
    runs = version_claims(network, cni_path)
    if any(runs[plugin] is None for plugin in network.types) or unclaimed(runs, VERSION):
        pytest.skip(f"STATUS is 1.1.0's: {'; '.join(unclaimed(runs, VERSION)) or 'a plugin is not on the path'}")
    build = cni_impl[0].id if cni_impl else None
    found = owners(request.config, build, cni_path, VERSION)
    mine = [plugin for plugin in network.types if found.get(plugin) == cni_config]
    recorder = ipam_recorder.Recorder(tmp_path / "recorder")
    runtime = Runtime(Here(), path=[*cni_path, str(recorder.directory)], state_dir=str(tmp_path))
    yield network, mine, runtime, recorder, build
    runtime.close()


def ask(runtime, network, plugin: dict):
    return runtime.exec("STATUS", plugin["type"], runtime.prepare(network, plugin, None, None, VERSION),
                        env_override=NO_ATTACHMENT)


def judged(network, runtime, build):
    """What verdict() needs of a chain: its network, runtime and build."""
    return types.SimpleNamespace(network=network, runtime=runtime, build=build)


@pytest.mark.spec("SPEC-053")
def test_status_of_a_ready_plugin_exits_0(status):
    """"A plugin must exit with a zero (success) return code if the plugin is ready to service ADD requests":
    each binary, in its configuration, its IPAM in the run's own /var/lib/cni. The twin, a plugin made not
    ready by its IPAM's answer, is the next test's."""
    network, mine, runtime, _, _ = status
    if not mine:
        pytest.skip("each plugin binary's STATUS is checked in the first configuration holding it")
    runs = [ask(runtime, network, plugin) for plugin in network.plugins if plugin["type"] in mine]
    failed = [run for run in runs if run.returncode != 0 or run.problem]
    assert not failed, f"SPEC-053: STATUS of a ready plugin did not exit 0:\n{evidence(failed)}"


@pytest.mark.spec("SPEC-060", "SPEC-061", "SPEC-054")
def test_status_is_forwarded_to_the_delegated_ipam_and_its_error_returned(request, status):
    """A plugin that delegates to an IPAM plugin "must also execute a STATUS request to that plugin" (SPEC-060:
    the recorder in its ipam.type was sent STATUS with the plugin's configuration), and when that one answers
    an error (code 50, "the plugin is not available"), "should return an error result" (SPEC-061) on stdout
    with a non-zero exit (SPEC-054). The twin: the same plugin with the recorder ready exits 0."""
    network, mine, runtime, recorder, build = status
    delegating = [p for p in network.plugins if p["type"] in mine and isinstance(p.get("ipam"), dict)]
    if not delegating:
        pytest.skip("no plugin of this configuration that delegates to an IPAM is checked here")
    problems = {}
    for plugin in delegating:
        mimic = {**plugin, "ipam": {**plugin["ipam"], "type": ipam_recorder.TYPE}}
        found, runs = [], []
        for code in (None, 50):
            recorder.answer(STATUS=(code, "told to be unavailable") if code else None)
            recorder.clear()
            runs.append(run := ask(runtime, network, mimic))
            sent = recorder.record()
            if [s["command"] for s in sent] != ["STATUS"]:
                found.append(f"SPEC-060: STATUS {plugin['type']} with its IPAM {'unavailable' if code else 'ready'}: "
                             f"the IPAM was sent {[s['command'] for s in sent]}, not one STATUS")
            elif sent[0]["stdin"].get("ipam", {}).get("type") != ipam_recorder.TYPE:
                found.append(f"SPEC-060: the IPAM's STATUS was not sent the plugin's configuration: {sent[0]['stdin']}")
            if code is None and (run.returncode != 0 or run.problem):
                found.append(f"SPEC-053: STATUS {plugin['type']} with a ready IPAM: {run.describe()}")
            elif code is not None and (run.returncode == 0 or run.error is None):
                found.append(f"SPEC-061, SPEC-054: STATUS {plugin['type']} with its IPAM answering code 50: "
                             f"{run.describe()}, not an error object")
            elif code is not None:
                found += [f"SPEC-054: {p}" for p in validate_error(run.error, VERSION, require_version=False)]
        problems[plugin["type"]] = [*found, evidence(runs)] if found else []
    verdict(request, judged(network, runtime, build), "status-forwarded", VERSION, problems)


@pytest.mark.spec("SPEC-056")
def test_status_of_an_ipam_whose_addresses_are_exhausted_is_an_error(request, status, cni_config):
    """"If a plugin has a limited number of resources (e.g. IP addresses, hardware queues), it should return an
    error if those resources are exhausted and no new ADD requests can be serviced": host-local with a range of
    one address, taken. The twin: the ADD after it fails (the range is exhausted), and STATUS before it is
    ready (the previous tests)."""
    network, _, runtime, _, build = status
    mine = ipam_checks(request.config, cni_config, network)
    problems = {}
    for ipam_type in (t for t in mine if t == "host-local"):
        plugin = next(p for p in network.plugins if (p.get("ipam") or {}).get("type") == ipam_type)
        one = {**plugin, "ipam": {"type": ipam_type, "ranges": [[{"subnet": "10.77.0.0/30"}]]}}  # .2 alone
        conf = runtime.prepare(network, one, None, None, VERSION)
        taken = runtime.exec("ADD", ipam_type, conf, "netconform-status-1", "/run/netns/dev-none", "eth0")
        refused = runtime.exec("ADD", ipam_type, conf, "netconform-status-2", "/run/netns/dev-none", "eth0")
        assert taken.returncode == 0 and refused.returncode != 0, \
            f"the range of one address is not exhausted after one ADD:\n{evidence([taken, refused])}"
        run = runtime.exec("STATUS", ipam_type, conf, env_override=NO_ATTACHMENT)
        problems[ipam_type] = [] if run.returncode != 0 and run.error is not None else [
            f"SPEC-056: STATUS with no address left in its range: {run.describe()}", evidence([taken, refused, run])]
    if not problems:
        pytest.skip("no host-local IPAM checked in this configuration (the first delegating to it checks it)")
    verdict(request, judged(network, runtime, build), "status-exhausted", VERSION, problems)
