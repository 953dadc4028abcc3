"""The harness as a CNI runtime when plugins fail (issue 13, "The harness as a runtime follows the spec"):
GC continues past an error and returns them all, and a plugin that hangs costs one timeout per process.
Against the recording plugins of tests/test_cni_runtime.py (its ``plugins`` and ``runtime`` fixtures)."""
from __future__ import annotations

import os
import shutil
import time

import pytest
from test_cni_runtime import NETNS, TIMEOUT, network, one_line, plugins, runtime  # noqa: F401 (fixtures)

from harness.cni.runtime import CniError, Here, Runtime


# ---------------------------------------------------------------- GC continues past an error
def test_gc_continues_past_an_error_and_returns_every_error(plugins, runtime):
    """SPEC.md 1.1.0, Section 3 > Garbage-collecting a network: "If the plugin returns an error, **continue**
    with execution, returning all errors to the caller." (DEL and CHECK halt at the first; the twin below)."""
    plugins.make("rec-a", "rec-b", "rec-c")
    plugins.tell("rec-a", "GC", code=11)
    plugins.tell("rec-b", "GC", crash=True)
    net = network("rec-a", "rec-b", "rec-c")
    with pytest.raises(CniError) as failed:
        runtime.gc(net, [])
    assert plugins.calls() == [("GC", "rec-a"), ("GC", "rec-b"), ("GC", "rec-c")], plugins.calls()
    assert [str(e) for e in failed.value.errors] == [
        "GC dev-rec: GC rec-a: error code 11: rec-a told to fail GC",
        "GC dev-rec: GC rec-b: killed by signal 11 (Segmentation fault)"]
    assert one_line(failed.value) == "; ".join(str(e) for e in failed.value.errors)
    # The twin: DEL halts at its first error (Section 3 > Deleting an attachment, step 4).
    plugins.tell("rec-c", "DEL", code=11)
    with pytest.raises(CniError):
        runtime.delete(net, "dev-c1", NETNS, None)
    assert plugins.calls()[3:] == [("DEL", "rec-c")]
    runtime.gc(network("rec-c"), [])  # and a GC with no error raises nothing


# ---------------------------------------------------------------- a hung plugin costs one timeout
def test_a_hung_plugin_costs_one_timeout_then_fails_at_once(plugins, runtime, tmp_path):
    """A plugin that gave no answer within the timeout is killed and its binary (its real path) marked hung
    for this process: later execs of it, by any runtime (any test of this pytest process), fail at once with
    one line, without waiting. The twin: the same script under another path still runs."""
    plugins.make("rec-hang")
    plugins.tell("rec-hang", "ADD", hang=True)
    start = time.monotonic()
    with pytest.raises(CniError) as failed:
        runtime.add(network("rec-hang"), "dev-c1", NETNS)
    first = time.monotonic() - start
    assert one_line(failed.value) == f"ADD dev-c1: ADD rec-hang: no answer within {TIMEOUT:g} s (killed)"
    assert TIMEOUT <= first < TIMEOUT + 1.0, f"{first:.2f} s for a {TIMEOUT} s timeout and an at-once DEL"
    binary = os.path.realpath(plugins.folder / "rec-hang")
    hung = f"not run: {binary} hung earlier in this process (ADD: no answer within {TIMEOUT:g} s (killed))"
    assert str(failed.value.del_failure) == f"DEL dev-c1: DEL rec-hang: {hung}"
    other = Runtime(Here(), path=[str(plugins.folder)], state_dir=runtime.state_dir, timeout=30.0)
    start = time.monotonic()
    run = other.version("rec-hang")
    assert run.problem == hung and time.monotonic() - start < 0.5, (run.problem, time.monotonic() - start)
    assert plugins.calls() == [("ADD", "rec-hang")], "a plugin marked hung was executed again"
    # The twin: a copy at another path is another binary, not marked.
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    shutil.copy2(plugins.folder / "rec-hang", elsewhere / "rec-hang")
    (elsewhere / "answers.json").write_text("{}")
    run = Runtime(Here(), path=[str(elsewhere)], state_dir=runtime.state_dir, timeout=TIMEOUT).version("rec-hang")
    assert run.problem is None and run.result["supportedVersions"], run.describe()
