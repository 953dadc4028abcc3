"""The harness as a CNI runtime follows the spec (issue 13, "The harness as a runtime follows the spec").

Each rule is proven against small plugins of ours, written into tmp_path: one Python script, copied under
each plugin name, that records what it was sent (CNI_COMMAND and the other variables, its stdin) and
answers as the test tells it (a result, an error object, a crash, a hang, a file written to /var/lib/cni).
No lab: the plugins touch no network, so they run in the test's own namespaces (runtime.Here). Each rule's
test has a twin showing that the rule is what decides the outcome.

Statements proven here are runtime duties, judged "untestable" on a plugin binary in
harness/cni/spec/statements.yaml, whose judgement names the test below that proves each
(test_every_runtime_judgement_names_a_test_here checks that the names resolve).
"""
from __future__ import annotations

import json
import os
import re
import sys

import pytest

from harness.cni import spec
from harness.cni.backend import CniBackend
from harness.cni.conf import ConfError, parse
from harness.cni.runtime import CniError, Here, Runtime
from harness.kernel import sandbox

TIMEOUT = 1.0  # seconds the runtime gives a plugin here
NETNS = "/run/netns/dev-none"  # the recording plugin never opens it

RECORDER = f"""#!{sys.executable}
# A CNI plugin of the test's: records what it was sent, answers as told (answers.json next to it).
import json, os, sys, time
here = os.path.dirname(os.path.abspath(__file__))
name, command = os.path.basename(__file__), os.environ.get("CNI_COMMAND", "")
text = sys.stdin.read()
try:
    conf = json.loads(text)
except ValueError:
    conf = text
with open(os.path.join(here, "record.jsonl"), "a") as log:
    log.write(json.dumps({{"plugin": name, "command": command, "stdin": conf,
                          "env": {{k: v for k, v in os.environ.items() if k.startswith("CNI_") or k == "PATH"}}}}) + "\\n")
try:
    with open(os.path.join(here, "answers.json")) as answers:
        told = json.load(answers).get(f"{{name}} {{command}}", {{}})
except FileNotFoundError:
    told = {{}}
version = conf.get("cniVersion", "1.1.0") if isinstance(conf, dict) else "1.1.0"
if told.get("hang"):
    time.sleep(3600)
if told.get("crash"):
    os.kill(os.getpid(), 11)
if "write" in told:
    os.makedirs(os.path.dirname(told["write"]), exist_ok=True)
    with open(told["write"], "w") as state:
        state.write(os.environ.get("CNI_CONTAINERID", ""))
if "code" in told:
    print(json.dumps({{"cniVersion": version, "code": told["code"], "msg": f"{{name}} told to fail {{command}}"}}))
    sys.exit(1)
if command == "ADD":
    print(json.dumps({{"cniVersion": version, "interfaces": [{{"name": name}}], "ips": []}}))
elif command == "VERSION":
    print(json.dumps({{"cniVersion": version, "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]}}))
"""


class Plugins:
    """The recording plugins in ``folder`` (the runtime's CNI_PATH): ``make`` them, ``tell`` one how to
    answer a command, read what they were ``sent``."""

    def __init__(self, folder):
        self.folder = folder
        folder.mkdir()

    def make(self, *names: str) -> None:
        for name in names:
            path = self.folder / name
            path.write_text(RECORDER)
            path.chmod(0o755)

    def tell(self, name: str, command: str, **answer) -> None:
        path = self.folder / "answers.json"
        answers = json.loads(path.read_text()) if path.exists() else {}
        answers[f"{name} {command}"] = answer
        path.write_text(json.dumps(answers))

    def sent(self) -> list[dict]:
        path = self.folder / "record.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def calls(self) -> list[tuple[str, str]]:
        return [(record["command"], record["plugin"]) for record in self.sent()]


@pytest.fixture
def plugins(tmp_path) -> Plugins:
    return Plugins(tmp_path / "bin")


@pytest.fixture
def runtime(plugins, tmp_path) -> Runtime:
    state = tmp_path / "state"
    state.mkdir()
    runtime = Runtime(Here(), path=[str(plugins.folder)], state_dir=str(state), timeout=TIMEOUT)
    yield runtime
    runtime.close()


def network(*plugins, **top):
    """A conflist of ``plugins`` (names, or plugin objects), cniVersion 1.1.0 unless ``top`` says."""
    objects = [{"type": p} if isinstance(p, str) else p for p in plugins]
    return parse({"cniVersion": "1.1.0", "name": "dev-rec", **top, "plugins": objects}, "<dev-rec>")


def one_line(exc: Exception) -> str:
    assert "\n" not in str(exc), f"not one line: {exc}"
    return str(exc)


# ---------------------------------------------------------------- version selection
def test_the_highest_supported_version_of_cni_versions_is_selected_and_sent(plugins, runtime):
    """SPEC-014 MUST (SPEC.md 1.1.0, Section 1 > Version considerations): "CNI runtimes MUST select the highest
    supported version from the set of network configuration versions given by the `cniVersion` and
    `cniVersions` fields". 1.2.0 is above what this runtime implements (1.1.0), so it is not selected."""
    plugins.make("rec-a")
    net = network("rec-a", cniVersion="0.4.0", cniVersions=["1.1.0", "0.3.1", "1.2.0", "1.0.0"])
    assert net.cni_version == "1.1.0"
    runtime.add(net, "dev-c1", NETNS)
    assert [r["stdin"]["cniVersion"] for r in plugins.sent()] == ["1.1.0"], plugins.sent()
    # The twins: without cniVersions, cniVersion as it is; with cniVersions, the highest even if listed first
    # or given as cniVersion, never the list's last entry or the largest string.
    assert network("rec-a", cniVersion="0.4.0").cni_version == "0.4.0"
    assert network("rec-a", cniVersion="1.0.0", cniVersions=["0.4.0", "0.3.1"]).cni_version == "1.0.0"
    assert network("rec-a", cniVersion="0.4.0", cniVersions=["0.10.0", "0.9.0"]).cni_version == "0.10.0"


@pytest.mark.parametrize("top,says", [
    ({"cniVersions": ["1.0.0", "one"]}, "cniVersions[1]: 'one' is not a version (MAJOR.MINOR.PATCH)"),
    ({"cniVersions": "1.0.0"}, "cniVersions: must be a non-empty list of versions"),
    ({"cniVersion": "2.0.0", "cniVersions": ["1.2.0"]}, "cniVersions: none of ['1.2.0', '2.0.0'] is one this "
                                                         "runtime implements (up to 1.1.0)"),
], ids=["not-a-version", "not-a-list", "none-supported"])
def test_a_bad_cni_versions_is_one_line_naming_the_field(top, says):
    with pytest.raises(ConfError) as failed:
        network("rec-a", **top)
    assert one_line(failed.value).startswith(f"<dev-rec>: {says}"), failed.value


# ---------------------------------------------------------------- disableCheck, disableGC
FLAGS = [(True, True), ("true", True), ("TRUE", True), (False, False), ("false", False), (None, False)]


@pytest.mark.parametrize("value,disabled", FLAGS, ids=[repr(v) for v, _ in FLAGS])
def test_disable_check_is_honoured_in_both_its_forms(plugins, runtime, value, disabled):
    """SPEC-005, SPEC-046, SPEC-157 MUST NOT (SPEC.md 0.4.0, 1.0.0, 1.1.0): "If `disableCheck` is `true`,
    runtimes must not call `CHECK` for this network configuration list"; spec-v0.4.0 types it (string),
    "Either `true` or `false`". The twin is the string "false" (``bool("false")`` is True): CHECK runs."""
    plugins.make("rec-a")
    net = network("rec-a", **({} if value is None else {"disableCheck": value}))
    assert net.disable_check is disabled
    runtime.check(net, "dev-c1", NETNS, {"cniVersion": "1.1.0"})
    assert plugins.calls() == ([] if disabled else [("CHECK", "rec-a")]), plugins.calls()


@pytest.mark.parametrize("value,disabled", FLAGS, ids=[repr(v) for v, _ in FLAGS])
def test_disable_gc_is_honoured_in_both_its_forms(plugins, runtime, value, disabled):
    """SPEC.md after spec-v1.1.0 (1125b83 "Spec: add disableGC flag"), Section 1 > Configuration format, MUST NOT:
    "If `disableGC` is `true`, runtimes must not call `GC` for this network configuration list" (libcni reads it
    as disableCheck, strings too). The twin is the string "false": GC runs."""
    plugins.make("rec-a")
    net = network("rec-a", **({} if value is None else {"disableGC": value}))
    assert net.disable_gc is disabled
    runtime.gc(net, [])
    assert plugins.calls() == ([] if disabled else [("GC", "rec-a")]), plugins.calls()


@pytest.mark.parametrize("key", ["disableCheck", "disableGC"])
@pytest.mark.parametrize("value", ["yes", 1, None], ids=["yes", "one", "null"])
def test_a_wrong_disable_flag_is_one_line_naming_the_field(key, value):
    with pytest.raises(ConfError) as failed:
        network("rec-a", **{key: value})
    assert one_line(failed.value) == f"<dev-rec>: {key}: {value!r} is neither true nor false"


def test_gc_runs_nothing_below_cni_version_1_1_0(plugins, runtime):
    """GC is a 1.1.0 verb (SPEC.md 1.1.0, Section 2 > GC); libcni's GCNetworkList runs no plugin GC below it.
    The twin: the same network at 1.1.0 runs it."""
    plugins.make("rec-a")
    runtime.gc(network("rec-a", cniVersion="1.0.0"), [])
    assert plugins.calls() == []
    runtime.gc(network("rec-a"), [])
    assert plugins.calls() == [("GC", "rec-a")]


# ---------------------------------------------------------------- the configuration passed through
FIRST = {"type": "rec-a", "name": "overridden", "cniVersion": "0.1.0", "bridge": "dev-br0", "keyA": ["some", "more"],
         "ipam": {"type": "host-local", "subnet": "10.1.0.0/16", "routes": [{"dst": "0.0.0.0/0"}]},
         "dns": {"nameservers": ["10.1.0.1"]}, "cni.dev/reserved": {"x": 1},
         "capabilities": {"portMappings": True, "bandwidth": False}}
SECOND = {"type": "rec-b", "sysctl": {"net.core.somaxconn": "500"}}


def test_each_plugin_gets_its_configuration_unchanged_but_for_what_the_runtime_adds(plugins, runtime, tmp_path):
    """SPEC-007 MUST (SPEC.md 1.0.0, 1.1.0, Section 1 > Plugin configuration objects): "The runtime MUST pass
    through these fields, unchanged, to the plugin"; SPEC-012 MUST: "Runtimes must preserve unknown fields";
    SPEC-094 MUST, SPEC-127, SPEC-128, SPEC-129 (1.0.0), SPEC-099 SHOULD (Section 3 > Deriving request
    configuration): cniVersion and name inserted, runtimeConfig the union of capabilities declared and given
    (SPEC-095, SPEC-100, SPEC-180), prevResult for all but the first ADD (SPEC-096, SPEC-097, SPEC-181),
    capabilities removed (SPEC-098); SPEC-178 (0.4.0): the list's name and cniVersion replace the plugin's. No
    dataDir or other key is injected: the plugins' /var/lib/cni is the runtime's own directory
    (harness.kernel.sandbox.PluginState), where a plugin's write there lands. CHECK and DEL get the same, with
    the ADD's final result as prevResult (SPEC-047, SPEC-148, SPEC-182)."""
    plugins.make("rec-a", "rec-b")
    mine = tmp_path / "state" / "var-lib-cni" / "rec" / "dev-c1"
    plugins.tell("rec-a", "ADD", write="/var/lib/cni/rec/dev-c1")
    net = network(FIRST, SECOND, name="dev-pass")
    given = {"portMappings": [{"hostPort": 8080, "containerPort": 80, "protocol": "tcp"}], "bandwidth": {"x": 1},
             "ips": ["10.1.0.5/16"]}
    result = runtime.add(net, "dev-c1", NETNS, "eth0", given)
    first, second = (r["stdin"] for r in plugins.sent())
    expected_first = {k: v for k, v in FIRST.items() if k != "capabilities"}
    expected_first.update(name="dev-pass", cniVersion="1.1.0", runtimeConfig={"portMappings": given["portMappings"]})
    assert first == expected_first, first
    expected_second = {**SECOND, "name": "dev-pass", "cniVersion": "1.1.0"}
    first_result = {"cniVersion": "1.1.0", "interfaces": [{"name": "rec-a"}], "ips": []}
    assert second == {**expected_second, "prevResult": first_result}, second
    assert result == {"cniVersion": "1.1.0", "interfaces": [{"name": "rec-b"}], "ips": []}
    # The twins: rec-b declares no capability, so no runtimeConfig (a given arg it did not declare is not
    # sent); bandwidth is declared false, so not sent either; and the plugin's write is in the runtime's own
    # directory, not in the sandbox's /var/lib/cni (where a plugin run without it would write).
    assert "runtimeConfig" not in second and "bandwidth" not in first["runtimeConfig"]
    assert mine.read_text() == "dev-c1", os.listdir(tmp_path / "state" / "var-lib-cni")
    if os.path.isdir(sandbox.PLUGIN_STATE):
        assert not os.path.exists(os.path.join(sandbox.PLUGIN_STATE, "rec", "dev-c1"))
    runtime.check(net, "dev-c1", NETNS, result, "eth0", given)
    runtime.delete(net, "dev-c1", NETNS, result, "eth0", given)
    later = plugins.sent()[2:]
    assert [(r["command"], r["plugin"]) for r in later] == \
        [("CHECK", "rec-a"), ("CHECK", "rec-b"), ("DEL", "rec-b"), ("DEL", "rec-a")]
    assert [r["stdin"] for r in later] == [{**expected, "prevResult": result} for expected in
                                           (expected_first, expected_second, expected_second, expected_first)]


def test_gc_gets_the_configuration_and_the_valid_attachments_and_no_attachment_parameters(plugins, runtime):
    """SPEC.md 1.1.0, Section 3 > Deriving request configuration: for GC, cniVersion, name and
    ``cni.dev/attachments`` (the spec after 1.1.0: ``cni.dev/valid-attachments``; libcni sends both); no
    runtimeConfig or prevResult (those are "for attachment-specific operations"); "All other fields not
    prefixed with `cni.dev/` should be passed through unaltered" (SPEC-099), capabilities among them; Section 2
    > GC: CNI_COMMAND and CNI_PATH, no attachment parameters (SPEC-073)."""
    plugins.make("rec-a")
    runtime.gc(network(FIRST, name="dev-pass"), [("dev-c1", "eth0"), ("dev-c2", "net1")])
    (record,) = plugins.sent()
    valid = [{"containerID": "dev-c1", "ifname": "eth0"}, {"containerID": "dev-c2", "ifname": "net1"}]
    assert record["stdin"] == {**FIRST, "name": "dev-pass", "cniVersion": "1.1.0", "cni.dev/attachments": valid,
                               "cni.dev/valid-attachments": valid}, record["stdin"]
    assert sorted(record["env"]) == ["CNI_COMMAND", "CNI_PATH", "PATH"] and record["env"]["CNI_COMMAND"] == "GC"


# ---------------------------------------------------------------- DEL after a failed ADD
@pytest.mark.parametrize("failing", ["rec-a", "rec-b"])
def test_a_failed_add_is_followed_by_a_del_of_every_plugin_in_reverse(plugins, runtime, failing):
    """SPEC-083 MUST (SPEC.md 1.0.0, 1.1.0, Section 3 > Lifecycle & Ordering): "A _delete_ must still be executed
    even if the _add_ fails."; SPEC-188 SHOULD (spec-v0.4.0, Network Configuration List Error Handling): "it should
    execute the DEL action (in reverse order from the ADD as specified above) for all plugins in the list, even if
    some were not called during the ADD action". The DEL has no prevResult (none is available, SPEC-182), the
    ADD's parameters, and the caller gets the ADD's error."""
    plugins.make("rec-a", "rec-b")
    plugins.tell(failing, "ADD", code=11)
    with pytest.raises(CniError) as failed:
        runtime.add(network("rec-a", "rec-b"), "dev-c1", NETNS, "net1", {"portMappings": []})
    assert one_line(failed.value) == f"ADD dev-c1: ADD {failing}: error code 11: {failing} told to fail ADD"
    assert failed.value.run.command == "ADD" and failed.value.del_failure is None
    adds = [("ADD", "rec-a")] + ([("ADD", "rec-b")] if failing == "rec-b" else [])
    assert plugins.calls() == adds + [("DEL", "rec-b"), ("DEL", "rec-a")], plugins.calls()
    dels = plugins.sent()[len(adds):]
    assert all("prevResult" not in r["stdin"] for r in dels)
    assert {(r["env"]["CNI_CONTAINERID"], r["env"]["CNI_NETNS"], r["env"]["CNI_IFNAME"]) for r in dels} == \
        {("dev-c1", NETNS, "net1")}
    # The twin: an ADD that succeeds runs no DEL.
    plugins.tell(failing, "ADD")
    runtime.add(network("rec-a", "rec-b"), "dev-c2", NETNS)
    assert plugins.calls()[len(adds) + 2:] == [("ADD", "rec-a"), ("ADD", "rec-b")]


def test_a_del_that_fails_after_a_failed_add_is_kept_and_retried(plugins, tmp_path):
    """SPEC-082 MUST (SPEC.md 1.0.0, 1.1.0, Section 3 > Lifecycle & Ordering): "The container runtime must ensure
    that _add_ is eventually followed by a corresponding _delete_": when the DEL after a failed ADD fails too, the
    backend still owes it, and its next detach runs it."""
    plugins.make("rec-a")
    plugins.tell("rec-a", "ADD", code=11)
    plugins.tell("rec-a", "DEL", crash=True)
    backend = backend_of(plugins, tmp_path)
    with pytest.raises(CniError) as failed:
        backend.attach("pod1")
    assert failed.value.del_failure is not None and failed.value.del_failure.run.command == "DEL"
    assert one_line(failed.value.del_failure) == "DEL netconform-pod1: DEL rec-a: killed by signal 11 " \
        "(Segmentation fault)"
    assert list(backend.attached) == [("pod1", "eth0")]
    plugins.tell("rec-a", "DEL")
    backend.detach("pod1")
    assert backend.attached == {} and plugins.calls() == [("ADD", "rec-a"), ("DEL", "rec-a"), ("DEL", "rec-a")]
    assert "prevResult" not in plugins.sent()[-1]["stdin"]
    # The twin: when the DEL after the failed ADD succeeds, nothing is owed.
    plugins.tell("rec-a", "DEL")
    with pytest.raises(CniError):
        backend.attach("pod2")
    assert backend.attached == {}


# ---------------------------------------------------------------- the result kept until a DEL succeeds
def backend_of(plugins, tmp_path) -> CniBackend:
    state = tmp_path / "backend-state"
    state.mkdir(exist_ok=True)
    return CniBackend(Here(), network("rec-a"), str(state), path=[str(plugins.folder)])


def test_the_result_is_kept_until_a_del_succeeds_and_a_failed_del_is_retried_with_it(plugins, tmp_path):
    """SPEC-090 MUST (SPEC.md 1.0.0, 1.1.0, Section 3 > Adding an attachment): "The runtime must store the result
    returned by the final plugin persistently, as it is required for _check_ and _delete_ operations"; SPEC-150
    MUST (spec-v0.4.0): the cached result is deleted "on a successful `DEL`"; SPEC-084 MAY: "_delete_ may be
    followed by additional _deletes_". A DEL that failed is retried with the cached prevResult."""
    plugins.make("rec-a")
    backend = backend_of(plugins, tmp_path)
    attachment = backend.attach("pod1")
    plugins.tell("rec-a", "DEL", code=11)
    with pytest.raises(CniError):
        backend.detach("pod1")
    assert backend.attached == {("pod1", "eth0"): attachment}, "a failed DEL dropped the cached result"
    plugins.tell("rec-a", "DEL")
    backend.detach("pod1")
    dels = [r["stdin"] for r in plugins.sent() if r["command"] == "DEL"]
    assert [d.get("prevResult") for d in dels] == [attachment.result] * 2, dels
    # The twin: after the DEL that succeeded the result is gone, so a further DEL has no prevResult.
    assert backend.attached == {}
    backend.detach("pod1")
    assert "prevResult" not in plugins.sent()[-1]["stdin"]


# ---------------------------------------------------------------- names
BAD_NAMES = [
    ({"name": "-dash-first"}, "name: '-dash-first' must start with a letter or digit"),
    ({"name": "has space"}, "name: 'has space' must start with a letter or digit"),
    ({"name": "dev/net"}, "name: 'dev/net' must start with a letter or digit"),
    ({"plugins": [{"type": "bin\\bridge"}]}, "plugins[0].type: 'bin\\\\bridge' is a path, not a plugin name"),
    ({"plugins": [{"type": "../bridge"}]}, "plugins[0].type: '../bridge' is a path, not a plugin name"),
    ({"plugins": [{"type": "bridge", "ipam": {"type": "/opt/host-local"}}]},
     "plugins[0].ipam.type: '/opt/host-local' is a path, not a plugin name"),
    ({"plugins": [{"type": "bridge", "ipam": {"type": "a\\b"}}]},
     "plugins[0].ipam.type: 'a\\\\b' is a path, not a plugin name"),
]


@pytest.mark.parametrize("change,says", BAD_NAMES, ids=[says.split(":")[0] + str(i) for i, (_, says) in
                                                         enumerate(BAD_NAMES)])
def test_a_bad_network_name_or_plugin_type_is_one_line_naming_the_field(change, says):
    """SPEC-004 MUST (SPEC.md 1.0.0, 1.1.0, Section 1 > Configuration format): the name "Must start with an
    alphanumeric character, optionally followed by any combination of one or more alphanumeric characters,
    underscore, dot (.) or hyphen (-)"; SPEC-008 MUST NOT: ``type`` and ``ipam.type`` "Must not contain characters
    disallowed in file paths for the system (e.g. / or \\\\)"."""
    with pytest.raises(ConfError) as failed:
        parse({"cniVersion": "1.0.0", "name": "dev-net", "plugins": [{"type": "bridge"}], **change}, "<bad>")
    assert one_line(failed.value).startswith(f"<bad>: {says}"), failed.value


@pytest.mark.parametrize("name", ["a", "9", "dev_net.v1-2", "cbr0", "k8s-pod-network"])
def test_a_good_network_name_and_plugin_types_load(name):
    """The twin: names the pattern allows, with plain type and ipam.type, load."""
    net = parse({"cniVersion": "1.0.0", "name": name, "plugins": [
        {"type": "bridge", "ipam": {"type": "host-local"}}, {"type": "port.map_2"}]}, "<good>")
    assert net.name == name and net.types == ["bridge", "port.map_2"]


# ---------------------------------------------------------------- the judgements name these tests
def test_every_runtime_judgement_names_a_test_here():
    """statements.yaml judges the runtime's duties "untestable" on a plugin binary; those proven here name the
    test (``tests/test_cni_runtime.py::test_x``). Each name must be a test of this file whose docstring cites
    the statement's id. (disableGC is after spec-v1.1.0, so statements.yaml holds no statement of it.)"""
    with open(__file__, encoding="utf-8") as handle:
        source = handle.read()
    proven = {s.id: re.findall(r"tests/test_cni_runtime\.py::(\w+)", s.untestable or "")
              for s in spec.statements().values()}
    proven = {sid: names for sid, names in proven.items() if names}
    assert len(proven) >= 20, f"only {sorted(proven)} name a test here"
    for sid, names in proven.items():
        for name in names:
            found = re.search(rf'\ndef {name}\(.*?""".*?"""', source, re.S)
            assert found and re.search(rf"{sid}\b", found.group(0)), \
                f"{sid}: {name} is not a test here, or its docstring does not cite {sid}"
