"""Netavark (podman's network stack) as an implementation under test.

Driven through its CLI, as podman does (netavark 1.4, ``docs/netavark.1.md`` and
``src/network/types.rs`` at containers/netavark v1.4.0)::

    netavark --config DIR --rootless false --aardvark-binary PATH -f OPTIONS.json setup NETNS_PATH
    netavark ... -f OPTIONS.json teardown NETNS_PATH

OPTIONS.json is the per-container ``NetworkOptions``: ``container_id``,
``container_name``, ``networks`` (per network: ``interface_name``, ``static_ips``),
``network_info`` (the network definitions: ``driver``, ``network_interface``,
``subnets`` with ``gateway``, ``internal``, ``options``, ``ipam_options``...) and
``port_mappings`` (``host_ip``, ``host_port``, ``container_port``, ``protocol``,
``range``). Netavark allocates nothing: the caller (podman, here this backend) picks
the addresses, so the backend hands out the subnet's addresses in order. Setup prints
``{network: StatusBlock}`` (``interfaces: {name: {mac_address, subnets: [{ipnet,
gateway}]}}``), which becomes the CNI-shaped result the datapath suite reads; an
error is ``{"error": "..."}`` on stdout and a non-zero exit.

A profile is a JSON file with ``"netconformBackend": "netavark"``, a ``name`` and the
``network`` definition (``driver``, ``network_interface``, ``subnets``, ``internal``,
``options``). Netavark runs in the lab's host node, its config dir in the run's
directory, with the iptables firewall driver and DNS (aardvark-dns) off.
"""
from __future__ import annotations

import ipaddress
import json
import os
import shutil
import subprocess

from harness.errors import CapabilityMissing
from harness.backends.base import Attachment, NetworkBackend
from harness.kernel import sandbox
from .conf import ConfError, NetworkConfig
from .runtime import PLUGIN_TIMEOUT, CniError

CANDIDATES = ("/usr/libexec/podman/netavark", "/usr/lib/podman/netavark", "/usr/local/libexec/podman/netavark")
NO_AARDVARK = "/nonexistent/aardvark-dns"  # DNS off: netavark skips aardvark when the binary is absent


def find_binary(path: list[str] | None = None) -> str | None:
    """NETAVARK_BINARY, then the backend's path (a catalogue build's directory), podman's usual places, PATH."""
    in_path = [os.path.join(directory, "netavark") for directory in path or ()]
    for candidate in (os.environ.get("NETAVARK_BINARY"), *in_path, *CANDIDATES, shutil.which("netavark")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    return None


class NetavarkBackend(NetworkBackend):
    """Netavark's bridge driver, with static addresses and port mappings from the runtime args."""

    NAME = "netavark"

    def __init__(self, live, network, state_dir, path=None):
        super().__init__(live, network, state_dir, path)
        self.binary = find_binary(path)
        self.config_dir = os.path.join(state_dir, "netavark")
        os.makedirs(self.config_dir, exist_ok=True)
        self.options: dict[tuple[str, str], dict] = {}  # what setup was given, teardown gets again
        self.log: list[dict] = []  # every run: argv, options, exit, stdout, stderr

    def contained(self) -> bool:
        """Its config dir is in the run's state directory, anything under /run is the sandbox's, and
        its interfaces and firewall rules are in the lab's namespaces."""
        return sandbox.private_files()

    # -- configuration ----------------------------------------------------------------
    @classmethod
    def claims(cls, source: str, data: dict) -> bool:
        return data.get("netconformBackend") == cls.NAME

    @classmethod
    def network_of(cls, source: str, data: dict) -> NetworkConfig:
        """The profile as a NetworkConfig: one pseudo-plugin ``netavark`` carrying the network."""
        network = data.get("network")
        if not isinstance(data.get("name"), str) or not data["name"]:
            raise ConfError(f"{source}: name: missing or not a string")
        if not isinstance(network, dict):
            raise ConfError(f"{source}: network: missing (netavark's network definition)")
        if network.get("driver", "bridge") != "bridge" or not network.get("network_interface"):
            raise ConfError(f"{source}: network: this backend drives netavark's bridge driver "
                            "(driver: bridge, network_interface: the bridge's name)")
        for i, subnet in enumerate(network.get("subnets") or []):
            try:
                ipaddress.ip_network(subnet["subnet"])
            except (KeyError, ValueError) as exc:
                raise ConfError(f"{source}: network.subnets[{i}].subnet: {exc}") from None
        # netavark sets up no firewall (so no port mappings) for an internal network
        plugin = {"type": "netavark", "driver": "bridge", **network,
                  "capabilities": {"portMappings": not network.get("internal", False)}}
        return NetworkConfig(name=data["name"], cni_version=data.get("cniVersion", "1.0.0"), plugins=[plugin],
                             source=source, raw=data)

    def unavailable(self) -> str | None:
        if self.binary is None:
            return f"netavark not installed (looked in {', '.join(CANDIDATES)} and PATH; apt-get install netavark)"
        return None

    @property
    def label(self) -> str:
        return f"{self.NAME}:{self.definition.get('driver', 'bridge')}" + (f" ({self.build})" if self.build else "")

    @property
    def definition(self) -> dict:
        """Netavark's network definition (``network_info`` entry) for this network."""
        plugin = {k: v for k, v in self.network.plugins[0].items() if k not in ("type", "capabilities")}
        return {"name": self.network.name, "id": (self.network.name.encode().hex() * 64)[:64],
                "driver": "bridge", "ipv6_enabled": False, "internal": False, "dns_enabled": False,
                "ipam_options": {"driver": "host-local"}, **plugin}

    def container_id(self, pod: str) -> str:
        return f"netconform-{pod}"

    def _static_ips(self) -> list[str]:
        """The lowest free address of each subnet (not the gateway nor one already attached)."""
        taken = {ip for opts in self.options.values() for net in opts["networks"].values()
                 for ip in net["static_ips"]}
        chosen = []
        for subnet in self.definition.get("subnets") or []:
            net = ipaddress.ip_network(subnet["subnet"])
            gateway = subnet.get("gateway")
            free = next((str(ip) for ip in net.hosts() if str(ip) != gateway and str(ip) not in taken), None)
            if free is None:
                raise CniError(f"{self.network.source}: subnet {net} is full")
            chosen.append(free)
        return chosen

    # -- the operations ----------------------------------------------------------------
    def _run(self, command: str, pod: str, options: dict) -> dict | None:
        if self.binary is None:
            raise CapabilityMissing(self.unavailable())
        path = os.path.join(self.config_dir, f"{pod}-{command}.json")
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(options, handle, indent=1)
        argv = [self.binary, "--config", self.config_dir, "--rootless", "false", "--aardvark-binary", NO_AARDVARK,
                "-f", path, command, self.netns_path(pod)]
        env = {"PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"), "NETAVARK_FW": "iptables"}
        try:
            with self.live.entered("host"):
                done = subprocess.run(argv, capture_output=True, text=True, env=env, timeout=PLUGIN_TIMEOUT,
                                      cwd=self.state_dir)
        except subprocess.TimeoutExpired:
            raise CniError(f"netavark {command} {pod}: no answer within {PLUGIN_TIMEOUT:g} s (killed)") from None
        self.log.append({"argv": argv, "options": options, "returncode": done.returncode,
                         "stdout": done.stdout, "stderr": done.stderr})
        text = done.stdout.strip()
        try:
            parsed = json.loads(text) if text else None
        except json.JSONDecodeError:
            raise CniError(f"netavark {command} {pod}: stdout is not JSON: {text[:80]!r}") from None
        if done.returncode != 0:
            why = parsed.get("error") if isinstance(parsed, dict) else (done.stderr.strip() or "no error message")
            raise CniError(f"netavark {command} {pod}: exit {done.returncode}: {why}")
        return parsed

    def attach(self, pod, ifname="eth0", **runtime_args):
        options = {"container_id": self.container_id(pod), "container_name": pod,
                   "networks": {self.network.name: {"interface_name": ifname, "static_ips": self._static_ips()}},
                   "network_info": {self.network.name: self.definition}}
        mappings = runtime_args.get("portMappings")
        if mappings and self.network.plugins[0].get("capabilities", {}).get("portMappings"):
            options["port_mappings"] = [
                {"host_ip": m.get("hostIP", ""), "host_port": int(m["hostPort"]),
                 "container_port": int(m["containerPort"]), "protocol": m.get("protocol", "tcp"), "range": 1}
                for m in mappings]
        status = self._run("setup", pod, options)
        block = (status or {}).get(self.network.name)
        if not isinstance(block, dict) or ifname not in (block.get("interfaces") or {}):
            raise CniError(f"netavark setup {pod}: no status for interface {ifname} of {self.network.name}: {status}")
        self.options[(pod, ifname)] = options
        attachment = Attachment(pod, ifname, self.container_id(pod), self.netns_path(pod),
                                self._result(block, ifname, pod), runtime_args)
        self.attached[(pod, ifname)] = attachment
        return attachment

    def _result(self, block: dict, ifname: str, pod: str) -> dict:
        """Netavark's StatusBlock in the shape of a CNI result (interfaces, ips with gateway)."""
        iface = block["interfaces"][ifname]
        subnets = iface.get("subnets") or []
        result = {"cniVersion": "1.0.0",
                  "interfaces": [{"name": self.definition["network_interface"]},
                                 {"name": ifname, "mac": iface.get("mac_address"), "sandbox": self.netns_path(pod)}],
                  "ips": [{"interface": 1, "address": s["ipnet"], **({"gateway": s["gateway"]} if s.get("gateway")
                                                                      else {})} for s in subnets],
                  "dns": {"nameservers": [str(ip) for ip in block.get("dns_server_ips") or []],
                          "search": list(block.get("dns_search_domains") or [])}}
        if not self.definition.get("internal"):
            result["routes"] = [{"dst": "0.0.0.0/0", "gw": s["gateway"]} for s in subnets if s.get("gateway")]
        return result

    def detach(self, pod, ifname="eth0"):
        options = self.options.get((pod, ifname))
        if options is None:  # never attached (or already detached): nothing netavark could undo
            return
        self._run("teardown", pod, options)
        del self.options[(pod, ifname)]
        self.attached.pop((pod, ifname), None)
