"""Executing CNI plugins exactly as the spec says a runtime must.

SPEC.md, "Execution protocol": parameters in environment variables (CNI_COMMAND,
CNI_CONTAINERID, CNI_NETNS, CNI_IFNAME, CNI_ARGS, CNI_PATH), the plugin's
configuration on stdin, the result (or an error object) on stdout. "Execution of
network configurations": ADD runs the chain in order, each plugin getting the
previous one's result as ``prevResult``; DEL runs it in reverse and CHECK in order,
with the cached ADD result as ``prevResult``; ``cniVersion`` and ``name`` come from
the list; ``runtimeConfig`` carries the capability arguments a plugin declares.

Plugins run in the lab's host node, so everything they do to "the host" happens in
a namespace of the sandbox. Their configuration reaches them as the spec says, unchanged but for
what the runtime sets (cniVersion, name, prevResult, runtimeConfig); their files go to a
/var/lib/cni of the run's own (STATE_DIR/var-lib-cni, bind-mounted in the plugin's mount
namespace), so host-local's defaults and flannel's delegation keep their state in the run.

What else the spec asks of a runtime, each proven in tests/test_cni_runtime.py against plugins that record
what they were sent: the version selected from ``cniVersions`` and ``disableCheck``/``disableGC`` read
(harness.cni.conf); a DEL after a failed ADD; GC continuing past an error and returning every error; and a
plugin binary that once gave no answer not run again in this process (one timeout, not one per test).
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
from dataclasses import dataclass, field

from harness.kernel import sandbox
from harness.errors import CapabilityMissing, NetconformError
from harness.kernel.deadline import Deadline
from .conf import NetworkConfig, version_key

DEFAULT_PATH = ("/opt/cni/bin", "/usr/lib/cni", "/usr/libexec/cni")
PLUGIN_TIMEOUT = 20.0  # seconds: a plugin that has not answered by then is hung
PLUGIN_STATE_DIR = "var-lib-cni"  # in the runtime's state directory: the plugins' /var/lib/cni
# GC's list of the still valid attachments: spec-v1.1.0 names it cni.dev/attachments, the spec after it (and
# libcni, containernetworking/cni#1101) cni.dev/valid-attachments; libcni sends both, and so do we.
GC_ATTACHMENTS = ("cni.dev/attachments", "cni.dev/valid-attachments")
NO_ATTACHMENT = {"CNI_CONTAINERID": None, "CNI_NETNS": None, "CNI_IFNAME": None, "CNI_ARGS": None}

# Plugin binaries (their real paths) that gave no answer within the timeout, with that first line: in this
# process (each pytest-xdist worker learns it once) they are not run again, so a hung plugin costs one
# timeout, not one per test.
_hung: dict[str, str] = {}


class CniError(NetconformError):
    """A plugin failed or broke the protocol; the message says which operation and why."""

    def __init__(self, message: str, run: "PluginRun | None" = None):
        super().__init__(message)
        self.run = run
        self.code = run.error.get("code") if run is not None and isinstance(run.error, dict) else None
        self.del_failure: CniError | None = None  # a failed ADD: the DEL after it, had it failed too
        self.errors: list[CniError] = [self]  # GC: every plugin's error (it continues past each)


@dataclass
class PluginRun:
    """One execution of one plugin: what went in, what came out (evidence for reports)."""
    command: str
    plugin: str
    env: dict
    stdin: dict | str
    returncode: int | None = None
    stdout: str = ""
    stderr: str = ""
    seconds: float = 0.0
    result: dict | None = None
    error: dict | None = None
    problem: str | None = None  # a protocol violation: hang, crash, garbage

    def describe(self) -> str:
        what = f"{self.command} {self.plugin}"
        if self.problem:
            return f"{what}: {self.problem}"
        if self.error:
            return f"{what}: error code {self.error.get('code')}: {self.error.get('msg')}"
        return f"{what}: exit {self.returncode}"


def evidence(runs) -> str:
    """What each plugin run printed, a line each starting with two spaces (verdict() keeps such lines as
    evidence, not claims)."""
    return "\n".join(f"  {r.command} {r.plugin} exit {r.returncode} {r.problem or ''}: stdout "
                     f"{r.stdout.strip()[:400]!r} stderr {r.stderr.strip()[-200:]!r}" for r in runs)


class Here:
    """No lab: plugins exec'd in the caller's namespaces (for VERSION, which touches no network)."""

    @staticmethod
    def entered(node: str):
        return contextlib.nullcontext()


@dataclass
class Runtime:
    """A CNI runtime over a live lab: plugins exec'd inside ``host_node`` (``live=Here()``: no lab)."""
    live: object
    path: list[str] = field(default_factory=lambda: list(DEFAULT_PATH))
    state_dir: str = "/tmp"
    host_node: str = "host"
    timeout: float = PLUGIN_TIMEOUT
    log: list[PluginRun] = field(default_factory=list)
    plugin_state: sandbox.PluginState = field(init=False, repr=False)  # the plugins' own /var/lib/cni

    def __post_init__(self):
        self.plugin_state = sandbox.PluginState(os.path.join(self.state_dir, PLUGIN_STATE_DIR))

    def close(self) -> None:
        self.plugin_state.close()

    def binaries(self, network: NetworkConfig) -> list[str]:
        """Every plugin binary of the chain, looked up before any runs (spec: a missing one is an
        error); the error names the file and the field."""
        found = []
        for i, plugin in enumerate(network.plugins):
            try:
                found.append(self.find(plugin["type"]))
            except CapabilityMissing as exc:
                raise CapabilityMissing(f"{network.source}: plugins[{i}].type: {exc}") from None
        return found

    def find(self, plugin: str) -> str:
        for directory in self.path:
            candidate = os.path.join(directory, plugin)
            if os.access(candidate, os.X_OK):
                return candidate
        raise CapabilityMissing(f"CNI plugin {plugin!r} not found in {':'.join(self.path)} "
                                "(apt-get install containernetworking-plugins, or pass --cni-path)")

    def prepare(self, network: NetworkConfig, plugin: dict, prev_result: dict | None,
                runtime_args: dict | None, cni_version: str | None = None) -> dict:
        conf = dict(plugin)
        conf.pop("capabilities", None)  # spec: "capabilities: must not be set" (removed by the runtime)
        conf["cniVersion"] = cni_version or network.cni_version
        conf["name"] = network.name
        if prev_result is not None:
            conf["prevResult"] = prev_result
        wanted = {cap for cap, on in (plugin.get("capabilities") or {}).items() if on}
        given = {cap: value for cap, value in (runtime_args or {}).items() if cap in wanted}
        if given:
            conf["runtimeConfig"] = given
        return conf

    def exec(self, command: str, plugin_type: str, conf: dict, container_id: str = "", netns: str = "",
             ifname: str = "", args: str = "", env_override: dict | None = None) -> PluginRun:
        binary = self.find(plugin_type)
        env = {"CNI_COMMAND": command, "CNI_CONTAINERID": container_id, "CNI_NETNS": netns,
               "CNI_IFNAME": ifname, "CNI_ARGS": args, "CNI_PATH": ":".join(self.path),
               "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")}
        if env_override is not None:
            env = {k: v for k, v in {**env, **env_override}.items() if v is not None}
        run = PluginRun(command, plugin_type, env, conf)
        real = os.path.realpath(binary)
        if real in _hung:
            run.problem = f"not run: {real} hung earlier in this process ({_hung[real]})"
            self.log.append(run)
            return run
        os.makedirs(self.plugin_state.directory, exist_ok=True)
        wait = Deadline(self.timeout, "cni plugin")
        try:
            with self.live.entered(self.host_node), self.plugin_state.entered():
                # A session of its own, so that a hung plugin is killed with whatever it started; the
                # run's own /var/lib/cni (host-local's reservations, flannel's files), as a host would have.
                process = subprocess.Popen([binary], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                           stderr=subprocess.PIPE, text=True, env=env, cwd=self.state_dir,
                                           start_new_session=True)
        except OSError as exc:
            run.problem = f"cannot execute {binary}: {exc.strerror}"
            self.log.append(run)
            return run
        with process:
            try:  # a str conf goes to stdin as it is (a decoding test's garbage)
                stdout, stderr = process.communicate(conf if isinstance(conf, str) else json.dumps(conf),
                                                     timeout=self.timeout)
            except subprocess.TimeoutExpired as exc:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                run.seconds = wait.elapsed()
                run.problem = f"no answer within {self.timeout:g} s (killed)"
                _hung[real] = f"{command}: {run.problem}"
                run.stdout, run.stderr = (
                    (out or b"").decode(errors="replace") if isinstance(out, bytes) else (out or "")
                    for out in (exc.stdout, exc.stderr))
                self.log.append(run)
                return run
        done = subprocess.CompletedProcess(process.args, process.returncode, stdout, stderr)
        run.seconds = wait.met()
        run.returncode, run.stdout, run.stderr = done.returncode, done.stdout, done.stderr
        text = done.stdout.strip()
        if done.returncode < 0:
            run.problem = f"killed by signal {-done.returncode} ({signal.strsignal(-done.returncode)})"
        elif text:
            try:
                parsed = json.loads(text)
            except json.JSONDecodeError:
                run.problem = f"stdout is not JSON: {text[:80]!r}"
            else:
                if done.returncode == 0:
                    run.result = parsed
                elif isinstance(parsed, dict) and "code" in parsed:
                    run.error = parsed
                else:
                    run.problem = f"exit {done.returncode} with a stdout that is not an error object: {text[:80]!r}"
        elif done.returncode != 0:
            run.problem = f"exit {done.returncode} with no error object on stdout" + (
                f" (stderr: {done.stderr.strip().splitlines()[-1][:120]})" if done.stderr.strip() else "")
        self.log.append(run)
        return run

    # -- the network configuration operations ----------------------------------------
    def add(self, network: NetworkConfig, container_id: str, netns: str, ifname: str = "eth0",
            runtime_args: dict | None = None) -> dict:
        """The chain's ADD; when it fails, the DEL after it (SPEC-083, SPEC.md 1.0.0 and 1.1.0, Section 3 >
        Lifecycle & Ordering, MUST: "A _delete_ must still be executed even if the _add_ fails."; SPEC-188,
        spec-v0.4.0, Network Configuration List Error Handling, SHOULD: the DEL "for all plugins in the list,
        even if some were not called during the ADD action"), then the ADD's error, with the DEL's failure
        (if it failed too) as its ``del_failure``."""
        self.binaries(network)
        result = None
        for plugin in network.plugins:
            conf = self.prepare(network, plugin, result, runtime_args)
            run = self.exec("ADD", plugin["type"], conf, container_id, netns, ifname)
            failure = None
            if run.problem or run.error or run.returncode != 0:
                failure = CniError(f"ADD {container_id}: {run.describe()}", run)
            elif run.result is None:
                failure = CniError(f"ADD {container_id}: {plugin['type']} printed no result", run)
            if failure is not None:
                try:  # no result to give as prevResult: "it may be omitted for DEL if not available" (SPEC-182)
                    self.delete(network, container_id, netns, None, ifname, runtime_args)
                except CniError as undo:
                    failure.del_failure = undo
                raise failure
            result = run.result
        return result

    def check(self, network: NetworkConfig, container_id: str, netns: str, prev_result: dict,
              ifname: str = "eth0", runtime_args: dict | None = None) -> None:
        """The chain's CHECK; with ``disableCheck`` none (SPEC-005, SPEC-046, SPEC-157, MUST NOT: "runtimes
        must not call CHECK for this network configuration list"; SPEC.md 1.0.0, 1.1.0, Section 3 > Checking
        an attachment: "always return success to the caller")."""
        if network.disable_check:
            return
        self.binaries(network)
        for plugin in network.plugins:
            conf = self.prepare(network, plugin, prev_result, runtime_args)
            run = self.exec("CHECK", plugin["type"], conf, container_id, netns, ifname)
            if run.problem or run.error or run.returncode != 0:
                raise CniError(f"CHECK {container_id}: {run.describe()}", run)

    def delete(self, network: NetworkConfig, container_id: str, netns: str, prev_result: dict | None,
               ifname: str = "eth0", runtime_args: dict | None = None) -> None:
        self.binaries(network)
        for plugin in reversed(network.plugins):
            conf = self.prepare(network, plugin, prev_result, runtime_args)
            run = self.exec("DEL", plugin["type"], conf, container_id, netns, ifname)
            if run.problem or run.error or run.returncode != 0:
                raise CniError(f"DEL {container_id}: {run.describe()}", run)

    def gc(self, network: NetworkConfig, valid: list[tuple[str, str]]) -> None:
        """The network's GC, ``valid`` the (container id, ifname) of the attachments still valid.

        SPEC.md 1.1.0, Section 3 > Garbage-collecting a network: every plugin, in order, with no attachment
        parameters (CNI_COMMAND and CNI_PATH only, SPEC-073), its configuration with cniVersion, name and
        the valid attachments (no runtimeConfig, prevResult: those are for ADD, DEL, CHECK); "If the plugin
        returns an error, **continue** with execution, returning all errors to the caller": one CniError
        naming each, all of them in its ``errors``. Nothing runs with ``disableGC`` (SPEC.md after
        spec-v1.1.0, 1125b83, Section 1 > Configuration format: "If `disableGC` is `true`, runtimes must not
        call `GC` for this network configuration list"), nor below cniVersion 1.1.0, which has no GC (libcni's
        GCNetworkList does the same)."""
        if network.disable_gc or (version_key(network.cni_version) or (0, 0, 0)) < (1, 1, 0):
            return
        self.binaries(network)
        attachments = [{"containerID": container_id, "ifname": ifname} for container_id, ifname in valid]
        errors = []
        for plugin in network.plugins:
            conf = {**plugin, "cniVersion": network.cni_version, "name": network.name,
                    **{key: attachments for key in GC_ATTACHMENTS}}
            run = self.exec("GC", plugin["type"], conf, env_override=NO_ATTACHMENT)
            if run.problem or run.error or run.returncode != 0:
                errors.append(CniError(f"GC {network.name}: {run.describe()}", run))
        if errors:
            failure = CniError("; ".join(str(e) for e in errors), errors[0].run)
            failure.errors = errors
            raise failure

    def version(self, plugin_type: str, cni_version: str = "1.0.0") -> PluginRun:
        return self.exec("VERSION", plugin_type, {"cniVersion": cni_version})
