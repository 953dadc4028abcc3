"""Deliberately broken CNI plugins (tests/cni_plugins) against the runtime and the spec
suite's checks (harness.cni.reality): each fault is caught with a message naming the
operation, the plugin and what was wrong; the harness never hangs, and the sandbox is
clean afterwards (no plugin process left, /run/netns empty once the lab is gone).

The plugins run from a temporary directory used as the runtime's path (as --cni-path),
in a cni-host lab built directly.
"""
import hashlib
import os
import select
import shutil
import time
import uuid
from pathlib import Path

import pytest

from harness.lab.build import build
from harness.cni.backend import Attachment
from harness.cni.conf import parse
from harness.cni.reality import leftovers, mismatches, snapshot
from harness.cni.runtime import CniError, Runtime
from harness.errors import CapabilityMissing
from harness.lab.file import load_lab

PLUGINS = Path(__file__).parent / "cni_plugins"
TIMEOUT = 2.0  # seconds the runtime gives a plugin here
NETNS = "/run/netns/pod1"


def named_netns() -> list[str]:
    return sorted(os.listdir("/run/netns")) if os.path.isdir("/run/netns") else []


@pytest.fixture
def lab():
    live = build(load_lab("cni-host"))
    live.add_node("pod1")
    try:
        yield live
    finally:
        live.teardown()
    assert named_netns() == [], "the lab's teardown left named namespaces"


@pytest.fixture
def state_dir(tmp_path) -> str:
    path = tmp_path / "state"
    path.mkdir()
    return str(path)


@pytest.fixture
def runtime(lab, tmp_path, state_dir) -> Runtime:
    cni_path = tmp_path / "cni-bin"
    shutil.copytree(PLUGINS, cni_path)  # keeps the modes: the plugins are executable
    return Runtime(lab, path=[str(cni_path)], state_dir=state_dir, timeout=TIMEOUT)


def network(plugin: str, **options):
    return parse({"cniVersion": "1.0.0", "name": "misbehaving", "plugins": [{"type": plugin, **options}]},
                 f"<{plugin}>")


def container_id(plugin: str) -> str:
    return f"{plugin}-{uuid.uuid4().hex[:12]}"


def processes_of(container: str) -> list[int]:
    """Processes whose environment says CNI_CONTAINERID=container (a plugin and its children)."""
    marker, found = f"CNI_CONTAINERID={container}".encode(), []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as handle:
                if marker in handle.read().split(b"\0"):
                    found.append(int(pid))
        except OSError:  # gone meanwhile, or a zombie
            continue
    return found


def still_running(pids: list[int], within: float = 1.0) -> list[int]:
    """Those of ``pids`` that have not exited ``within`` seconds (waiting on pidfds, no polling)."""
    left = []
    for pid in pids:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            continue
        try:
            if not select.select([fd], [], [], within)[0]:
                left.append(pid)
        finally:
            os.close(fd)
    return left


def operate(runtime, operation: str, net, container: str):
    if operation == "ADD":
        return runtime.add(net, container, NETNS)
    if operation == "CHECK":
        return runtime.check(net, container, NETNS, {"cniVersion": "1.0.0"})
    return runtime.delete(net, container, NETNS, None)


# ---------------------------------------------------------------- the runtime's protocol checks
def test_a_hung_plugin_is_killed_after_the_timeout_with_what_it_started(lab, runtime):
    container = container_id("hang")
    start = time.monotonic()
    with pytest.raises(CniError) as failed:
        runtime.add(network("hang"), container, NETNS)
    elapsed = time.monotonic() - start
    assert str(failed.value) == f"ADD {container}: ADD hang: no answer within 2 s (killed)", failed.value
    assert TIMEOUT <= elapsed < TIMEOUT + 1.5, f"{elapsed:.2f} s for a {TIMEOUT} s timeout"
    assert still_running(processes_of(container)) == [], "the hung plugin's child (sleep) survived"
    lab.teardown()
    assert named_netns() == []


@pytest.mark.parametrize("operation", ["ADD", "CHECK", "DEL"])
@pytest.mark.parametrize("plugin,what", [
    ("crash", "killed by signal 11 (Segmentation fault)"),
    ("garbage", "stdout is not JSON: 'Adding interface... done! {not json'"),
    ("silent-failure", "exit 3 with no error object on stdout (stderr: silent-failure: something went wrong)"),
], ids=["crash", "garbage", "no-error-object"])
def test_a_broken_plugin_fails_the_operation_saying_what_was_wrong(runtime, operation, plugin, what):
    container = container_id(plugin)
    with pytest.raises(CniError) as failed:
        operate(runtime, operation, network(plugin), container)
    run = failed.value.run
    assert str(failed.value) == f"{operation} {container}: {operation} {plugin}: {what}", \
        f"{failed.value}\nstdout {run.stdout!r}\nstderr {run.stderr!r}"
    assert run in runtime.log and run.command == operation and run.seconds < TIMEOUT


def test_a_missing_plugin_is_named_with_its_file_and_field(runtime):
    with pytest.raises(CapabilityMissing) as failed:
        runtime.add(network("no-such-plugin"), container_id("missing"), NETNS)
    assert str(failed.value).startswith("<no-such-plugin>: plugins[0].type: CNI plugin 'no-such-plugin' not found")
    assert "\n" not in str(failed.value) and runtime.log == []


# ---------------------------------------------------------------- the spec suite's reality checks
@pytest.mark.parametrize("lie,expected", [
    ("mac", "interfaces[0] (eth0): mac: the result says 02:00:00:00:00:99, pod1 has 02:00:00:00:00:01"),
    ("sandbox", ("interfaces[0] (eth0): sandbox is '/run/netns/somewhere-else', but CNI_NETNS was "
                 "'/run/netns/pod1'")),
    ("address", "ips[0]: 10.99.0.3/24 is not on eth0 in pod1 (it has 10.99.0.2/24)"),
])
def test_a_lying_add_result_is_caught_by_the_reality_check(lab, runtime, lie, expected):
    container = container_id("liar")
    result = runtime.add(network("liar", lie=lie), container, NETNS)
    problems = mismatches(lab, Attachment("pod1", "eth0", container, NETNS, result))
    assert expected in problems, f"ADD liar ({lie}): {problems}\nresult {result}"


def test_an_honest_add_result_passes_the_reality_check(lab, runtime):
    container = container_id("liar")
    result = runtime.add(network("liar", lie="none"), container, NETNS)
    assert mismatches(lab, Attachment("pod1", "eth0", container, NETNS, result)) == [], result


def test_a_del_that_leaves_state_is_caught_by_the_leftovers_check(lab, runtime, state_dir):
    container, net = container_id("leaky"), network("leaky")
    before = snapshot(lab, state_dir)
    result = runtime.add(net, container, NETNS)
    runtime.delete(net, container, NETNS, result)
    host_link = "lk-" + hashlib.sha1(container.encode()).hexdigest()[:10]
    assert leftovers(lab, before) == [f"host: link {host_link} (bridge)", f"state: file leaky-{container}"], \
        f"DEL leaky: {leftovers(lab, before)}"


def test_a_del_that_removes_everything_leaves_nothing(lab, runtime, state_dir):
    container, net = container_id("liar"), network("liar", lie="none")
    before = snapshot(lab, state_dir)
    result = runtime.add(net, container, NETNS)
    assert "pod1: link eth0 (bridge)" in leftovers(lab, before)
    runtime.delete(net, container, NETNS, result)
    assert leftovers(lab, before) == []
