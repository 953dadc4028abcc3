"""What the dhcp IPAM plugin needs of a host: its daemon, and a DHCP server on the pod's wire.

The plugin binary of containernetworking/plugins is also its daemon (``dhcp daemon``): ADD, DEL and CHECK
are RPCs to it over a unix socket (the configuration's ``ipam.daemonSocketPath``, else /run/cni/dhcp.sock),
and the daemon runs the DHCP client inside the pod's namespace (DISCOVER, REQUEST, and on DEL a RELEASE).
``DhcpDaemon`` starts it as systemd's cni-dhcp.socket does (socket activation: the socket is listening
before the daemon runs, so a plugin exec'd at once is served, with no wait for the daemon to bind), in a
lab node, its socket under the sandbox's private /run; closing it kills it and removes the socket.
``DhcpServer`` is dnsmasq's DHCP server (DNS off) on one interface of a lab node: a real DHCP exchange on
the lab's wire, whose frames a probe sees. Both are ordinary processes of the run: closed with the lab.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys

from harness.errors import CapabilityMissing, LabError
from harness.kernel import fdwait, sandbox
from harness.kernel.deadline import Deadline

DEFAULT_SOCKET = "/run/cni/dhcp.sock"  # the plugin's, without ipam.daemonSocketPath
PRIVATE_RUN = "/run"  # the sandbox's own tmpfs: the only place the harness puts the daemon's socket
STARTUP = 2.0  # seconds dnsmasq has to bind its DHCP socket (it says so on stderr at once)
STOP = 5.0  # seconds a process has to exit after SIGTERM before it is killed
# Socket activation (sd_listen_fds): the listener is fd 3 and LISTEN_PID must be the daemon's own pid, which
# only the child knows; this sets it and execs the daemon (argv[1:]) with the listener as fd 3.
ACTIVATE = ("import os, sys; os.environ['LISTEN_PID'] = str(os.getpid()); os.environ['LISTEN_FDS'] = '1'; "
            "fd = int(os.environ.pop('NETCONFORM_LISTENER')); fd != 3 and (os.dup2(fd, 3), os.close(fd)); "
            "os.execv(sys.argv[1], sys.argv[1:])")


def socket_path(ipam: dict) -> str:
    """Where the plugin configured by ``ipam`` calls its daemon."""
    return ipam.get("daemonSocketPath") or DEFAULT_SOCKET


def _stopped(process: subprocess.Popen) -> None:
    """SIGTERM to the process's group (it is a session leader), SIGKILL if it does not go within STOP."""
    for sig, wait in ((signal.SIGTERM, STOP), (signal.SIGKILL, None)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        try:
            process.wait(wait)
            return
        except subprocess.TimeoutExpired:
            continue


class DhcpDaemon:
    """``binary daemon`` in ``node`` of ``live``, serving the unix socket ``path`` (under the sandbox's /run);
    its log (stderr) in ``log``, read by ``output()``."""

    def __init__(self, live, node: str, binary: str, path: str, log: str):
        path = os.path.abspath(path)
        if os.path.commonpath([PRIVATE_RUN, path]) != PRIVATE_RUN or not sandbox.private_files():
            raise CapabilityMissing(f"the dhcp daemon's socket {path}: the harness makes it only under its sandbox's "
                                    f"private {PRIVATE_RUN} (not with --no-sandbox)")
        self.path, self.log, self.process = path, log, None
        directory = os.path.dirname(path)
        self._made = None if os.path.isdir(directory) else directory
        if self._made:  # the topmost directory made, removed at close
            top = directory
            while not os.path.isdir(os.path.dirname(top)):
                top = os.path.dirname(top)
            self._made = top
            os.makedirs(directory, mode=0o700)
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            listener.bind(path)
            listener.listen(16)
            env = {**os.environ, "NETCONFORM_LISTENER": str(listener.fileno())}
            with open(log, "wb") as err, live.entered(node):
                self.process = subprocess.Popen(
                    [sys.executable, "-I", "-S", "-c", ACTIVATE, binary, "daemon", "-socketpath", path],
                    stdin=subprocess.DEVNULL, stdout=err, stderr=err, env=env, pass_fds=(listener.fileno(),),
                    start_new_session=True)
        except BaseException:
            self.close()
            raise
        finally:
            listener.close()  # the daemon holds it now

    def output(self) -> str:
        with open(self.log, encoding="utf-8", errors="replace") as handle:
            return handle.read()

    def close(self) -> None:
        if self.process is not None:
            _stopped(self.process)
            self.process = None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.path)
        if self._made:
            shutil.rmtree(self._made, ignore_errors=True)
            self._made = None


class DhcpServer:
    """dnsmasq's DHCP server on ``interface`` of ``node``, leasing ``first``..``last`` (a /``prefix``) for an
    hour, nothing written to disk (its leases in memory); started once it says its DHCP socket is bound."""

    def __init__(self, live, node: str, interface: str, first: str, last: str, netmask: str):
        binary = shutil.which("dnsmasq", path=os.environ.get("PATH", "") + ":/usr/sbin:/sbin")
        if binary is None:
            raise CapabilityMissing("no DHCP server: dnsmasq is not installed (apt-get install dnsmasq-base)")
        argv = [binary, "--conf-file=/dev/null", "--no-daemon", "--log-facility=-", "--port=0", "--no-hosts",
                "--no-resolv", f"--interface={interface}", "--bind-interfaces", "--leasefile-ro", "--pid-file=",
                f"--dhcp-range={first},{last},{netmask},1h", "--no-ping", "--dhcp-authoritative"]
        # --no-daemon: dnsmasq neither forks nor changes user (a user namespace maps no "nobody", nor lets
        # it drop supplementary groups); --no-ping: it offers at once, not after pinging the address.
        with live.entered(node):
            self.process = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=subprocess.PIPE, start_new_session=True)
        self.said = b""
        os.set_blocking(self.process.stderr.fileno(), False)
        wait = Deadline(STARTUP, "dnsmasq")
        while b"DHCP, IP range" not in self.said and self.process.poll() is None and not wait.passed:
            fdwait.select([self.process.stderr], [], [], wait.left())
            self.said += self.process.stderr.read() or b""
        if b"DHCP, IP range" not in self.said:
            self.close()
            raise LabError(f"dnsmasq did not start its DHCP server on {node}/{interface}: {self.output()[-300:]}")
        wait.met()

    def output(self) -> str:
        if self.process.stderr is not None and not self.process.stderr.closed:
            with contextlib.suppress(BlockingIOError, ValueError, OSError):
                self.said += self.process.stderr.read() or b""
        return self.said.decode(errors="replace")

    def close(self) -> None:
        if self.process.returncode is None:
            _stopped(self.process)
        self.output()
        self.process.stderr.close()


MESSAGE_TYPES = {"discover": 1, "offer": 2, "request": 3, "ack": 5, "nak": 6, "release": 7}


def dhcp_message(kind: str, **bootp):
    """A probe match: a DHCP message of type ``kind`` (RFC 2132, option 53) whose BOOTP fields are ``bootp``
    (``yiaddr="192.168.1.50"``: the address it leases; ``ciaddr``: the address a RELEASE gives back)."""
    wanted = MESSAGE_TYPES[kind]

    def matches(packet) -> bool:
        from scapy.layers.dhcp import BOOTP, DHCP
        if not packet.haslayer(DHCP):
            return False
        options = dict(o for o in packet[DHCP].options if isinstance(o, tuple) and len(o) == 2)
        return options.get("message-type") == wanted and all(
            getattr(packet[BOOTP], name) == value for name, value in bootp.items())
    matches.__name__ = f"DHCP {kind.upper()}" + "".join(f" {name}={value}" for name, value in bootp.items())
    return matches
