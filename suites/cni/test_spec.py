"""The CNI spec (SPEC.md of containernetworking/cni, spec-v0.4.0, -v1.0.0, -v1.1.0) on the
plugin chain under test: every bundled profile, or ``--cni-conf``; every cniVersion
among 0.4.0, 1.0.0 and 1.1.0 that all the chain's plugins (and their IPAM) claim.

Each test names the spec statements it checks (``pytest.mark.spec``, ids of harness/cni/spec/statements.yaml,
where each one's versions, section, level and sentence are stated once), and each failure message names the
statements it breaks: a failed MUST fails its test; a failed SHOULD, SHOULD NOT or MAY is a deviation at SHOULD
level (fixtures/spec.py), a failure only with --strict. An implementation's known deviations (its expectations file,
harness/impl/expectations/<build>.yaml, or the user's --expectations FILE) are reported as
KNOWN DEVIATION, saying what it does, the spec's clause and the upstream issue; one is applied
only when everything else in the test passed and the failure is the one listed, so a new fault
is not hidden, and a listed one that no longer happens fails ("fixed: remove it").
"""
import itertools
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor

import pytest

from harness.cni.reality import leftovers, mismatches, snapshot
from harness.cni.runtime import CniError
from harness.cni.schema import validate_result, validate_version
from pytest_netconform.deviations import verdict
from pytest_netconform.cni_spec import (SPEC_VERSIONS, attach, chain, checked, error_problems,  # noqa: F401 - chain:
                                        refusal, requests, runtime_args, show)             # a fixture

pytestmark = pytest.mark.area("CNI spec")
VERSIONS = pytest.mark.parametrize("version", SPEC_VERSIONS)
ABSENT_NETNS = "/run/netns/netconform-absent"
NO_ATTACHMENT = {"CNI_CONTAINERID": None, "CNI_NETNS": None, "CNI_IFNAME": None, "CNI_ARGS": None}


# ---------------------------------------------------------------- VERSION and versions
@VERSIONS
@pytest.mark.once_per_binary
@pytest.mark.spec("SPEC-062", "SPEC-122", "SPEC-111", "SPEC-112", "SPEC-142", "SPEC-144")
def test_version_answers_the_supported_versions(request, chain, version):
    problems = {}
    for plugin in checked(request, chain):
        run = chain.runtime.version(plugin, version)
        found = validate_version(run.result, version) if run.result else [run.describe()]
        if run.result and version not in run.result.get("supportedVersions", []):
            found.append(f"supportedVersions does not hold {version}")
        problems[plugin] = found + [show([run])] if found else []
    verdict(request, chain, "version", version, problems)


# ---------------------------------------------------------------- ADD: the result, and reality
@VERSIONS
@pytest.mark.spec("SPEC-025", "SPEC-113", "SPEC-165", "SPEC-022", "SPEC-111", "SPEC-112", "SPEC-116", "SPEC-141",
                  "SPEC-144", "SPEC-167", "SPEC-200", "SPEC-202", "SPEC-021", "SPEC-169", "SPEC-172", "SPEC-114",
                  "SPEC-170", "SPEC-058", "SPEC-024", "SPEC-143", "SPEC-203")
def test_add_result_is_valid_against_the_schema_and_true_of_the_namespaces(chain, version, add_pod):
    """ADD's result is valid against the asked version's schema, names CNI_IFNAME with CNI_NETNS as its
    sandbox, and is true: each interface, address and route it claims is there. A sandbox other than
    CNI_NETNS is a SHOULD (the claims naming CNI_NETNS); any other untrue claim breaks the result's
    definition, which a plugin must output. Every problem is its own line, naming its statements."""
    attachment = attach(chain, add_pod("pod1"))  # no STATUS first: a plugin must not rely on it (SPEC-058)
    problems = [f"SPEC-113, SPEC-165: {p}" for p in validate_result(attachment.result, version)]
    inside = [i for i in attachment.result.get("interfaces", []) if isinstance(i, dict) and i.get("sandbox")]
    if attachment.ifname not in [i.get("name") for i in inside]:
        problems.append(f"SPEC-021, SPEC-169, SPEC-172: no interface {attachment.ifname} (CNI_IFNAME) with a "
                        f"sandbox: {inside}")
    if {i["sandbox"] for i in inside} != {attachment.netns}:
        problems.append(f"SPEC-114, SPEC-170: sandbox interfaces {inside}, CNI_NETNS {attachment.netns}")
    if not problems:  # a result that is not the schema's cannot be compared with the kernel
        problems = [f"{'SPEC-114, SPEC-170' if 'CNI_NETNS' in p else 'SPEC-113, SPEC-165'}: the result is not "
                    f"what is there: {p}" for p in mismatches(chain.live, attachment)]
    assert not problems, "\n".join([*problems, json.dumps(attachment.result), show(chain.runtime.log)])


# ---------------------------------------------------------------- CHECK
@VERSIONS
@pytest.mark.older_versions_once_per_binary
@pytest.mark.spec("SPEC-043", "SPEC-038", "SPEC-155", "SPEC-154", "SPEC-144")
def test_check_right_after_add_succeeds(request, chain, version, add_pod):
    if chain.network.disable_check:
        pytest.skip("disableCheck: a runtime must not call CHECK for this network")
    attachment = attach(chain, add_pod("pod1"))
    problems = {}
    for plugin in chain.network.plugins:  # each plugin, not stopping at the first refusal
        conf = chain.runtime.prepare(chain.network, plugin, attachment.result, attachment.runtime_args)
        run = chain.runtime.exec("CHECK", plugin["type"], conf, attachment.container_id, attachment.netns, "eth0")
        found = [] if run.returncode == 0 and not run.problem else [f"SPEC-043, SPEC-038, SPEC-155: {run.describe()}"]
        if version == "0.4.0" and run.returncode == 0 and run.stdout.strip():
            found.append("SPEC-154: CHECK succeeded and printed something (0.4.0: nothing or an error)")
        problems[plugin["type"]] = found + [show([run])] if found else []
    verdict(request, chain, "check-after-add", version, problems)


@VERSIONS
@pytest.mark.interface_plugin
@pytest.mark.parametrize("tamper", ["address", "mac"])
@pytest.mark.spec("SPEC-039", "SPEC-156", "SPEC-022", "SPEC-023", "SPEC-123", "SPEC-174")
def test_check_after_tampering_fails_with_an_error_object(request, chain, version, add_pod, tamper):
    """SPEC.md CHECK: "The plugin should return an error if a resource included in the CNI Result type
    (interface, address or route) was created by the plugin, and is listed in prevResult, and does not
    exist, or is in an invalid state" (the interface plugin made the pod's address and MAC)."""
    if chain.network.disable_check:
        pytest.skip("disableCheck: a runtime must not call CHECK for this network")
    attachment = attach(chain, add_pod("pod1"))
    ipr, index = chain.live.ipr("pod1"), chain.live.ifindex("pod1", "eth0")
    if tamper == "address":
        address, prefix = attachment.addresses()[0].split("/")
        ipr.addr("del", index=index, address=address, prefixlen=int(prefix))
    else:
        try:
            ipr.link("set", index=index, address="02:00:5e:c0:ff:ee")
        except Exception as exc:  # noqa: BLE001 - an ipvlan slave keeps its master's MAC
            pytest.skip(f"the kernel refuses to change the MAC of the pod's eth0: {exc}")
    run = refusal(lambda: chain.check("pod1"))
    if run is None:
        problems = {chain.network.plugins[0]["type"]: [
            f"SPEC-039, SPEC-156: CHECK succeeded after the pod's {tamper} changed",
            show(chain.runtime.log[-len(chain.network.plugins):])]}
    else:
        problems = {run.plugin: error_problems(run, version)}
    verdict(request, chain, "check-after-tampering", version, problems)


# ---------------------------------------------------------------- DEL
@VERSIONS
@pytest.mark.older_versions_once_per_binary
@pytest.mark.spec("SPEC-031", "SPEC-147", "SPEC-021", "SPEC-169", "SPEC-144", "SPEC-036", "SPEC-137", "SPEC-032",
                  "SPEC-149")
def test_del_removes_what_add_made_and_a_del_of_what_is_not_there_succeeds(chain, version, add_pod):
    """The attachment's DEL removes what its ADD made (SPEC-031, SPEC-147); then a second DEL of it, and a
    DEL for a container never added, without CNI_NETNS (optional on DEL), must each succeed (SPEC-036,
    SPEC-137, SPEC-032, SPEC-149). One ADD serves both; every problem is reported, not only the first. A DEL
    of an unknown container with CNI_NETNS is not run apart: the second DEL meets what it would, a netns
    without the interface and no reservation."""
    add_pod("pod1")
    attach(chain, add_pod("pod0"))  # the network's shared infrastructure (bridge, shared chains) now exists
    before = snapshot(chain.live, chain.state_dir)
    attachment = attach(chain, "pod1")
    made = leftovers(chain.live, before)
    assert any(fact.startswith("pod1: link eth0") for fact in made), \
        f"SPEC-021, SPEC-169: ADD made no eth0 (CNI_IFNAME) in pod1 that the snapshot sees: {made}"
    chain.detach("pod1")
    after = snapshot(chain.live, chain.state_dir)
    mentions = [f for f in sorted(after.facts) if attachment.container_id in f or any(
        re.search(rf"(?<![\d.]){re.escape(a.split('/')[0])}(?![\d])", f) for a in attachment.addresses())]
    left = leftovers(chain.live, before, after) + mentions
    problems = ["SPEC-031, SPEC-147: DEL left behind:", *left, "ADD had made:", *made] if left else []
    dels = {"SPEC-036, SPEC-137: a second DEL": (attachment.container_id, attachment.netns, attachment.result,
                                                 attachment.runtime_args),
            "SPEC-032, SPEC-149: DEL of an unknown container without CNI_NETNS": ("netconform-never-added", "", None,
                                                                                  runtime_args(chain))}
    for what, (container_id, netns, prev, args) in dels.items():
        try:
            chain.runtime.delete(chain.network, container_id, netns, prev, runtime_args=args)
        except CniError as exc:
            problems.append(f"{what}: {exc}\n{show([exc.run] if exc.run else [])}")
    assert not problems, "\n".join(problems)


@VERSIONS
@pytest.mark.older_versions_once_per_binary
@pytest.mark.spec("SPEC-022", "SPEC-023", "SPEC-123", "SPEC-174", "SPEC-032", "SPEC-031", "SPEC-147")
def test_add_into_a_nonexistent_netns_fails_and_a_del_after_it_leaves_nothing(request, chain, version, add_pod):
    attach(chain, add_pod("pod0"))
    before = snapshot(chain.live, chain.state_dir)
    run = refusal(lambda: chain.runtime.add(chain.network, "netconform-failed", ABSENT_NETNS, "eth0",
                                            runtime_args(chain)))
    assert run is not None, f"SPEC-022: ADD into {ABSENT_NETNS}, which does not exist, succeeded:\n" \
        f"{show(chain.runtime.log[-3:])}"
    problems = error_problems(run, version)
    assert not problems, "\n".join(problems)
    refused = dict.fromkeys(chain.network.types, [])
    try:
        chain.runtime.delete(chain.network, "netconform-failed", ABSENT_NETNS, None, runtime_args=runtime_args(chain))
    except CniError as exc:
        refused[exc.run.plugin if exc.run else "the chain"] = [f"SPEC-032: DEL refused: {exc}",
                                                               show([exc.run] if exc.run else [])]
    verdict(request, chain, "del-after-failed-add", version, refused)
    left = leftovers(chain.live, before)
    assert not left, "\n".join(["SPEC-031, SPEC-147: DEL after a failed ADD left:", *left,
                                 show(chain.runtime.log[-4:])])


# ---------------------------------------------------------------- errors
@pytest.mark.parametrize("version", ["1.0.0", "1.1.0"])  # code 6 is 1.0.0's; garbage has no version
@pytest.mark.parametrize("stdin", ["this is not JSON", '"a JSON string, not an object"'], ids=["text", "string"])
@pytest.mark.once_per_binary
@pytest.mark.spec("SPEC-022", "SPEC-023", "SPEC-123")
def test_undecodable_config_is_refused_with_code_6(request, chain, version, add_pod, stdin):
    add_pod("pod1")
    problems = {plugin: error_problems(chain.runtime.exec("ADD", plugin, stdin, "netconform-pod1", "/run/netns/pod1",
                                                          "eth0"), version, {6}) for plugin in checked(request, chain)}
    verdict(request, chain, "undecodable", version, problems)


@VERSIONS
@pytest.mark.once_per_binary
@pytest.mark.spec("SPEC-123", "SPEC-174")
def test_error_objects_carry_the_cni_version(request, chain, version, add_pod):
    problems = {}
    for plugin, conf in requests(request, chain, add_pod):
        run = chain.runtime.exec("ADD", plugin, conf, "netconform-pod1", "/run/netns/pod1", "eth0",
                                 env_override={"CNI_CONTAINERID": None})
        got = run.error.get("cniVersion") if run.error else None
        problems[plugin] = [] if got == version else [f"SPEC-123, SPEC-174: error cniVersion {got!r}, asked in {version}",
                                                      show([run])]
    verdict(request, chain, "error-cni-version", version, problems)


# ---------------------------------------------------------------- chaining and concurrency
@VERSIONS
@pytest.mark.older_versions_once_per_binary
@pytest.mark.spec("SPEC-026", "SPEC-118", "SPEC-119", "SPEC-183", "SPEC-184", "CONV-019")
def test_prev_result_is_passed_along_the_chain(chain, version, add_pod):
    if len(chain.network.plugins) < 2:
        pytest.skip(f"{chain.network.profile}: a chain of one plugin has no prevResult to pass")
    attachment = attach(chain, add_pod("pod1"))
    adds = [run for run in chain.runtime.log if run.command == "ADD"]
    assert [run.plugin for run in adds] == chain.network.types and "prevResult" not in adds[0].stdin, show(adds)
    for prev, run in itertools.pairwise(adds):
        assert run.stdin["prevResult"] == prev.result, \
            f"the harness as a runtime: {run.plugin} did not get {prev.plugin}'s result\n{show(adds)}"
        kept = {i["name"] for i in run.result.get("interfaces", [])} >= {i["name"] for i in prev.result["interfaces"]}
        assert kept and run.result.get("ips") == prev.result.get("ips"), \
            f"SPEC-026, SPEC-118, SPEC-119, SPEC-183: {run.plugin} dropped what {prev.plugin} reported (output " \
            f"prevResult, modified)\n{show(adds)}"
    for plugin, run in zip(chain.network.plugins, adds):  # the runtime's part: capabilities -> runtimeConfig
        declared = {c for c, on in (plugin.get("capabilities") or {}).items() if on}
        assert "capabilities" not in run.stdin and set(run.stdin.get("runtimeConfig", {})) <= declared, run.stdin
    chain.detach("pod1")
    dels = [run for run in chain.runtime.log if run.command == "DEL"]
    assert [run.plugin for run in dels] == chain.network.types[::-1] and \
        all(run.stdin.get("prevResult") == attachment.result for run in dels), show(dels)


@VERSIONS
@pytest.mark.newest_version_only
@pytest.mark.spec("SPEC-080", "SPEC-081", "SPEC-031", "SPEC-147")
def test_parallel_adds_and_dels_get_distinct_addresses_and_leave_nothing(chain, version, add_pod):
    """Plugins must handle being executed concurrently across different containers, locking what they
    share (SPEC-080, SPEC-081): three ADDs run at once while pod0's DEL runs beside them (a pod leaving as
    others arrive), then the three DELs at once. Each must succeed (an error fails the test with its run,
    never suppressed), the addresses must be distinct and true, and once all are deleted nothing of any
    pod is left (SPEC-031, SPEC-147)."""
    # The network is up first: bridge 1.1.1's first ADDs race (each reports cni0's MAC as it read it, before
    # the first to finish pins it), so concurrent first ADDs can report a MAC cni0 no longer has.
    attach(chain, add_pod("pod0"))
    pods = [add_pod(f"pod{i}") for i in range(1, 4)]  # before the snapshot: what a new namespace has is no leftover
    before = snapshot(chain.live, chain.state_dir)
    home = os.stat("/proc/thread-self/ns/net").st_ino
    with ThreadPoolExecutor(len(pods) + 1) as pool:  # Runtime.exec enters the host node on the calling thread
        adds = [pool.submit(attach, chain, pod) for pod in pods]
        leaving = pool.submit(chain.detach, "pod0")
        attachments = [add.result() for add in adds]
        leaving.result()
    assert os.stat("/proc/thread-self/ns/net").st_ino == home, "a worker thread's setns leaked into this thread"
    addresses = [address for a in attachments for address in a.addresses()]
    assert len(addresses) >= len(pods) and len(set(addresses)) == len(addresses), addresses
    for attachment in attachments:
        assert not mismatches(chain.live, attachment), (attachment.pod, mismatches(chain.live, attachment))
    with ThreadPoolExecutor(len(pods)) as pool:
        list(pool.map(chain.detach, pods))
    left = leftovers(chain.live, before)
    assert not left, "\n".join(["SPEC-031, SPEC-147: after the concurrent DELs, left behind:", *left])


# ---------------------------------------------------------------- 1.1.0: GC and STATUS
@pytest.mark.parametrize("version", ["1.1.0"])
@pytest.mark.spec("SPEC-065", "SPEC-066", "SPEC-068")
def test_gc_releases_only_what_is_not_a_valid_attachment(request, chain, version, add_pod):
    keep, drop = attach(chain, add_pod("pod1")), attach(chain, add_pod("pod2"))
    state_files = lambda: {os.path.basename(f.removeprefix("state: file "))  # noqa: E731
                           for f in snapshot(chain.live, chain.state_dir).facts if f.startswith("state: file ")}
    before = state_files()
    valid = [{"containerID": keep.container_id, "ifname": keep.ifname}]
    for plugin in chain.network.plugins:
        conf = chain.runtime.prepare(chain.network, plugin, None, None)
        conf["cni.dev/valid-attachments"] = conf["cni.dev/attachments"] = valid  # spec HEAD / spec-v1.1.0 name
        run = chain.runtime.exec("GC", plugin["type"], conf, env_override=NO_ATTACHMENT)
        assert run.returncode == 0 and not run.stdout.strip(), f"SPEC-068: GC (no output on success):\n{show([run])}"
    kept, dropped = (a.addresses()[0].split("/")[0] for a in (keep, drop))
    if {kept, dropped} <= before:  # reservations kept as files named by the address (host-local's way)
        after = state_files()
        if kept not in after:  # beyond what GC may remove (SPEC-063): a failure at any level, not a deviation
            pytest.fail(f"GC released {kept}, the reservation of a valid attachment ({keep.container_id}); "
                        "SPEC-063 lets GC remove only what is not in cni.dev/valid-attachments", pytrace=False)
        ipams = [p["ipam"]["type"] for p in chain.network.plugins if isinstance(p.get("ipam"), dict)]
        holder = ipams[0] if len(set(ipams)) == 1 else "the chain"  # whose reservations they are
        verdict(request, chain, "gc-releases", version, {holder: [] if dropped not in after else [
            f"SPEC-065, SPEC-066: GC kept {dropped}, reserved for {drop.container_id}, not a valid attachment "
            f"({sorted(after)})"]})


@pytest.mark.parametrize("version", ["1.1.0"])
@pytest.mark.spec("SPEC-054")
def test_status_answers_ready_or_an_error_object(chain, version):
    for plugin in chain.network.plugins:
        run = chain.runtime.exec("STATUS", plugin["type"], chain.runtime.prepare(chain.network, plugin, None, None),
                                 env_override=NO_ATTACHMENT)
        if run.returncode == 0 and not run.problem:
            continue
        problems = error_problems(run, version)  # the statements it names are the marker's only through SPEC-054
        assert not problems, "\n".join(["SPEC-054: a STATUS that fails must exit non-zero with an error", *problems])
