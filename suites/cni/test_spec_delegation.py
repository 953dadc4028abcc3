"""The CNI spec's plugin delegation (SPEC.md of containernetworking/cni; spec-v1.0.0 and -v1.1.0 Section 4:
Plugin Delegation; spec-v0.4.0 IP Address Management (IPAM) Interface), and what Section 2 says of the
delegated plugin on CHECK, GC and STATUS, on the plugins that delegate to an IPAM plugin (bridge, ptp,
macvlan, ipvlan).

How a plugin executes its IPAM is the plugin binary's: each check runs once per binary
(pytest_netconform.cni.owners: the first configuration of the run holding it), at the newest cniVersion
its build claims (1.1.0's GC and STATUS only where claimed: cni-plugins@1.9.1 here), never per chain. The
IPAM is one of the test's own (harness.cni.recorder, alone in a directory on CNI_PATH, put in the plugin's
``ipam.type``): it records the environment, configuration and path it was executed with, and answers as the
test tells it, ADD with an address of the plugin's own ``ipam`` range. Every call carries a token of its own
(in CNI_ARGS and in a variable of the test's own, EXTRA), so each record is matched to the call that made
it. Known deviations go through verdict() (harness/impl/expectations/<build>.yaml).
"""
import os
import types

import pytest

from harness.cni import recorder as ipam_recorder
from harness.cni.runtime import GC_ATTACHMENTS, NO_ATTACHMENT, Here, Runtime, evidence
from pytest_netconform.cni_select import backend_class_of, id_of, kernel_lacks, newest_claimed, owners, version_claims
from pytest_netconform.deviations import verdict

pytestmark = pytest.mark.area("CNI spec")
VERSIONS = ("1.1.0", "1.0.0", "0.4.0")  # the spec versions with statements here, newest first
EXTRA = "NETCONFORM_DELEGATION_CALL"  # a variable of the test's own, besides the CNI_* ones
POD, IFNAME = "pod1", "eth0"
FAILED = 117  # the recorder's error code when told to fail (>= 100: its own, SPEC.md Error)


@pytest.fixture
def delegation(request, cni_network, cni_config, cni_path, cni_impl, tmp_path):
    """What the checks need: the network, the cniVersion asked (the newest every plugin claims), the build, the
    recorder, the interface plugin's type and its configuration delegating to the recorder (``mimic``), and a
    lab-less runtime with the recorder's directory last on CNI_PATH; skipped (before any lab) unless this
    configuration is the one checking that binary."""
    backend_class, network = cni_network
    if backend_class.NAME != "cni":
        pytest.skip(f"{network.profile}: backend {backend_class.NAME!r} is not a CNI plugin chain")
    runs = version_claims(network, cni_path)
    version = newest_claimed(runs, VERSIONS) if all(runs[p] is not None for p in network.types) else None
    if version is None:
        pytest.skip(f"{network.profile}: a plugin is not on the path or claims none of {', '.join(VERSIONS)}")
    build = cni_impl[0].id if cni_impl else None
    found = owners(request.config, build, cni_path, version)
    first = network.plugins[0]  # the plugin that makes the pod's interface and delegates its addresses
    if not isinstance(first.get("ipam"), dict):
        pytest.skip(f"{network.profile}: its interface plugin {first['type']} delegates to no IPAM plugin")
    if first["type"] not in found:
        pytest.skip(f"{network.profile}: {kernel_lacks(network) or 'cannot run here'}")
    if found[first["type"]] != cni_config:
        pytest.skip(f"how {first['type']} executes its IPAM is checked once per binary, at cniVersion {version} in "
                    f"{id_of(found[first['type']], backend_class_of(found[first['type']]))}")
    result = ipam_recorder.result_for(first["ipam"])
    if result is None:
        pytest.skip(f"{first['type']}'s ipam names no IPv4 subnet: the harness has no address its config promises")
    recorder = ipam_recorder.Recorder(tmp_path / "recorder", result)
    # Its IPAM the recorder; without ipMasq, whose iptables work (a third of an ADD here) is not delegation.
    mimic = {**{k: v for k, v in first.items() if k != "ipMasq"}, "ipam": {**first["ipam"], "type": ipam_recorder.TYPE}}
    runtime = Runtime(Here(), path=[*cni_path, str(recorder.directory)], state_dir=str(tmp_path))
    yield types.SimpleNamespace(network=network, version=version, build=build, recorder=recorder,
                                plugin=first["type"], mimic=mimic, runtime=runtime, net=None)
    runtime.close()


@pytest.fixture
def lab(request, delegation, add_pod):
    """``delegation`` over a cni-host lab with a pod: its runtime (the lab's) has the recorder's directory last
    on its CNI_PATH, as the lab-less one has."""
    net = request.getfixturevalue("cni")
    net.runtime.path.append(str(delegation.recorder.directory))
    add_pod(POD)
    delegation.net, delegation.runtime = net, net.runtime
    return delegation


def call(case, command: str, prev_result: dict | None = None, **env):
    """``command`` of the plugin under test (delegating to the recorder) on the pod, its own token in CNI_ARGS
    and EXTRA; (the run, what the recorder recorded during it)."""
    case.recorder.clear()
    token = f"{command}-{len(case.runtime.log)}"
    conf = case.runtime.prepare(case.network, case.mimic, prev_result, None, case.version)
    if command in ("GC", "STATUS"):  # no attachment (SPEC-073), and GC's valid attachments: none
        conf.update({key: [] for key in GC_ATTACHMENTS} if command == "GC" else {})
        env = {**NO_ATTACHMENT, **env}
    attachment = (case.net.container_id(POD), case.net.netns_path(POD), IFNAME) if case.net else ("", "", "")
    run = case.runtime.exec(command, case.plugin, conf, *attachment, f"IgnoreUnknown=1;NETCONFORM_TOKEN={token}",
                            env_override={EXTRA: token, **env})
    return run, case.recorder.record()


def judged(case):
    """What verdict() needs of a chain: its network, runtime and build."""
    return types.SimpleNamespace(network=case.network, runtime=case.runtime, build=case.build)


def failed(run) -> bool:
    return run.returncode != 0 or run.problem is not None or run.error is not None


def said(run) -> str:
    """What the plugin's error object says (msg and details), or nothing."""
    return f"{(run.error or {}).get('msg') or ''} {(run.error or {}).get('details') or ''}"


def as_executed(case, run, records, env_statement: str) -> list[str]:
    """What is wrong in how ``run`` executed the recorder: not once with the same command, an environment
    variable the runtime passed missing or changed (``env_statement``), and from 1.0.0 (SPEC-107) another
    configuration on stdin, a path not on CNI_PATH, its stderr not in the plugin's."""
    if [r["command"] for r in records] != [run.command]:
        return [f"{env_statement}: {run.command}: the IPAM was executed for {[r['command'] for r in records]}, "
                f"not once with CNI_COMMAND={run.command}"]
    record, found = records[0], []
    changed = {k: (v, record["env"].get(k)) for k, v in run.env.items() if record["env"].get(k) != v}
    if changed:
        found.append(f"{env_statement}: {run.command}: the IPAM's environment is not the plugin's "
                     f"(variable: (passed to the plugin, received by the IPAM)): {changed}")
    if case.version == "0.4.0":
        return found  # spec-v0.4.0 has no delegated execution procedure (SPEC-107 is 1.0.0's)
    if record["stdin"] != run.stdin:
        found.append(f"SPEC-107: {run.command}: the IPAM's configuration is not the plugin's: {record['stdin']}")
    where = os.path.dirname(record["executed_as"])
    if where not in run.env["CNI_PATH"].split(":"):
        found.append(f"SPEC-107: {run.command}: the IPAM was executed as {record['executed_as']}, not from CNI_PATH")
    if f"{ipam_recorder.STDERR_LINE} {run.command}" not in run.stderr:
        found.append(f"SPEC-107: {run.command}: the IPAM's stderr is not in the plugin's: {run.stderr[-200:]!r}")
    return found


@pytest.mark.spec("SPEC-106", "SPEC-190", "SPEC-107")
def test_delegated_ipam_is_executed_from_cni_path_with_the_callers_environment_and_config(request, lab):
    """"The delegated plugin must receive all the same environment variables that were passed in to the CNI
    plugin" (1.0.0, 1.1.0: SPEC-106; 0.4.0's IPAM plugin: SPEC-190), EXTRA and CNI_ARGS included; and from
    1.0.0, "When a plugin executes a delegated plugin, it should: Look up the plugin binary by searching the
    directories provided in CNI_PATH [...] Execute that plugin with the same environment and configuration
    that it received. Ensure that the delegated plugin's stderr is output to the calling plugin's stderr"
    (SPEC-107), on ADD and DEL, each record matched to its call by the call's own token (EXTRA, CNI_ARGS). The
    twin (from 1.0.0): with the recorder's directory on PATH but not on CNI_PATH, the ADD of a second interface
    fails, the recorder not executed and its stderr line absent."""
    env_statement = "SPEC-190" if lab.version == "0.4.0" else "SPEC-106"
    add, added = call(lab, "ADD")
    found = [f"ADD failed: {add.describe()}"] if failed(add) else as_executed(lab, add, added, env_statement)
    delete, deleted = call(lab, "DEL", add.result)
    found += [f"DEL failed: {delete.describe()}"] if failed(delete) else as_executed(lab, delete, deleted,
                                                                                      env_statement)
    runs = [add, delete]
    if lab.version != "0.4.0":  # the twin of SPEC-107's lookup (0.4.0 has no such statement)
        directory = lab.runtime.path.pop()
        moved = {"PATH": f"{directory}:{os.environ.get('PATH', '/usr/bin:/bin')}", "CNI_IFNAME": "eth1"}
        elsewhere, executed = call(lab, "ADD", **moved)
        runs.append(elsewhere)
        if not failed(elsewhere) or executed or ipam_recorder.STDERR_LINE in elsewhere.stderr:
            found.append(f"SPEC-107: the IPAM, on PATH but not on CNI_PATH, was found: {elsewhere.describe()}, "
                         f"executed for {[r['command'] for r in executed]}")
    problems = {lab.plugin: [*found, evidence(runs)] if found else []}
    verdict(request, judged(lab), "delegated-execution", lab.version, problems)


@pytest.mark.spec("SPEC-108", "SPEC-130", "SPEC-070")
def test_check_del_and_gc_execute_the_delegated_ipam(request, lab):
    """"If a plugin is executed with CNI_COMMAND=CHECK, DEL, or GC, it must also execute any delegated
    plugins" (1.1.0: SPEC-108; 1.0.0, without GC: SPEC-130), and "Plugins MUST, additionally, forward any GC
    calls to delegated plugins they are configured to use" (SPEC-070): each call executes the recorder once,
    for that command, with that call's own token. The twin: VERSION, which a plugin answers itself, executes
    it not at all (the record is per call)."""
    if lab.version == "0.4.0":
        pytest.skip("SPEC-108 and SPEC-130 are 1.0.0's and 1.1.0's (0.4.0's CHECK forwarding: SPEC-044's test)")
    statement = "SPEC-108" if lab.version == "1.1.0" else "SPEC-130"
    add, _ = call(lab, "ADD")
    assert not failed(add), f"ADD, the recorder answering an address: {add.describe()}\n{evidence([add])}"
    runs, found = [add], []
    for command in ("CHECK", "DEL", "GC") if lab.version == "1.1.0" else ("CHECK", "DEL"):
        run, records = call(lab, command, None if command == "GC" else add.result)
        runs.append(run)
        executed = [(r["command"], r["env"].get(EXTRA)) for r in records]
        if executed != [(command, run.env[EXTRA])]:
            found.append(f"{statement}{', SPEC-070' if command == 'GC' else ''}: {run.describe()}: the IPAM was "
                         f"executed for {executed} (command, token), not once for this {command}")
    version, records = call(lab, "VERSION")
    runs.append(version)
    assert not records, f"VERSION of {lab.plugin} executed the recorder: {records}"  # the twin
    verdict(request, judged(lab), "delegated-commands", lab.version,
            {lab.plugin: [*found, evidence(runs)] if found else []})


@pytest.mark.spec("SPEC-044")
def test_check_passes_the_delegated_ipams_error_on_to_its_caller(request, lab):
    """CHECK: "The plugin should call CHECK on any delegated (e.g. IPAM) plugins and pass any errors on to its
    caller": the recorder answers CHECK with an error of its own code, and the plugin's CHECK fails with an
    error object carrying its message. The twin: the same CHECK with the recorder answering success passes."""
    add, _ = call(lab, "ADD")
    assert not failed(add), f"ADD, the recorder answering an address: {add.describe()}\n{evidence([add])}"
    passing, _ = call(lab, "CHECK", add.result)
    lab.recorder.answer(CHECK=(FAILED, "told to fail CHECK"))
    failing, records = call(lab, "CHECK", add.result)
    lab.recorder.answer()
    found = [f"SPEC-044: CHECK with the IPAM answering success: {passing.describe()}"] if failed(passing) else []
    if "told to fail CHECK" not in said(failing):
        found.append(f"SPEC-044: CHECK with the IPAM answering error {FAILED} (executed for "
                     f"{[r['command'] for r in records]}): {failing.describe()}, not an error object passing it on")
    delete, _ = call(lab, "DEL", add.result)
    verdict(request, judged(lab), "check-delegated-error", lab.version,
            {lab.plugin: [*found, evidence([add, passing, failing, delete])] if found else []})


@pytest.mark.spec("SPEC-070", "SPEC-069")
def test_gc_reports_the_delegated_ipams_error_back(request, delegation):
    """GC (1.1.0): "If an error is encountered, a plugin should continue; removing as many resources as
    possible, and report the errors back to the runtime" (SPEC-069), the error here the delegated IPAM's GC
    (forwarded: SPEC-070): the plugin's GC fails with an error object carrying the recorder's message. The
    twin: with the recorder answering success, the same GC exits 0. (What "continue" removes besides is the
    plugin's own: these plugins keep nothing of their own for GC to remove.)"""
    if delegation.version != "1.1.0":
        pytest.skip(f"GC is 1.1.0's: the plugins are asked in {delegation.version}, the newest they claim")
    passing, passed = call(delegation, "GC")
    delegation.recorder.answer(GC=(FAILED, "told to fail GC"))
    failing, records = call(delegation, "GC")
    found = [f"SPEC-070: GC with the IPAM answering success: {passing.describe()}"] if failed(passing) else []
    if [r["command"] for r in records] != ["GC"]:
        found.append(f"SPEC-070: GC was not forwarded to the IPAM (executed for {[r['command'] for r in records]}; "
                     f"{failing.describe()}): its error cannot reach the runtime, SPEC-069 not judged")
    elif "told to fail GC" not in said(failing):
        found.append(f"SPEC-069: GC with the IPAM answering error {FAILED}: {failing.describe()}, not an error "
                     "object reporting it")
    verdict(request, judged(delegation), "gc-delegated-error", delegation.version,
            {delegation.plugin: [*found, evidence([passing, failing])] if found else []})


@pytest.mark.spec("SPEC-059")
def test_add_and_del_still_work_after_status_said_not_ready(request, lab):
    """STATUS (1.1.0): "Plugins should always expect other CNI operations (like ADD, DEL, etc) even if STATUS
    returns an error": the recorder answers STATUS with code 50 ("The plugin is not available") and ADD with an
    address; the plugin's STATUS errors, then its ADD gives the recorder's address and its DEL succeeds. The
    twin: STATUS asked again after them still errors (the plugin is still "not ready")."""
    if lab.version != "1.1.0":
        pytest.skip(f"STATUS is 1.1.0's: the plugins are asked in {lab.version}, the newest they claim")
    lab.recorder.answer(STATUS=(50, "told to be unavailable"))
    status, _ = call(lab, "STATUS")
    if not failed(status):
        pytest.skip(f"{lab.plugin}'s STATUS did not fail with its IPAM unavailable ({status.describe()}; SPEC-060's "
                    "test in test_spec_status.py judges that): no error to go on past")
    add, _ = call(lab, "ADD")
    delete, _ = call(lab, "DEL", add.result)
    again, _ = call(lab, "STATUS")
    wanted = lab.recorder.result["ips"][0]["address"]
    given = [ip.get("address") for ip in (add.result or {}).get("ips", [])]
    found = [f"SPEC-059: ADD after STATUS said not ready: {add.describe()}, addresses {given}, not {wanted}"] \
        if failed(add) or wanted not in given else []
    found += [f"SPEC-059: DEL after STATUS said not ready: {delete.describe()}"] if failed(delete) else []
    assert failed(again), f"STATUS after the ADD and DEL no longer fails: {again.describe()}"  # the twin
    verdict(request, judged(lab), "status-then-add", lab.version,
            {lab.plugin: [*found, evidence([status, add, delete, again])] if found else []})
