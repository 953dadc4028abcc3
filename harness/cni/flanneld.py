"""What flanneld leaves on a node for the flannel CNI plugin (document 004, lines 338-347): its lease
in subnet.env, and a CNI runtime that execs the plugin in that node with a /var/lib/cni of its own.

Each node's subnet.env is written where the plugin's ``subnetFile`` names it (``flanneld
--subnet-file``), under the sandbox's private /run only (``backend.provide_file``); each node's
runtime keeps the plugins' files (flannel's dataDir /var/lib/cni/flannel/<id>, host-local's
reservations) in its own state directory, never the machine's /var/lib/cni. The configuration is the
flannel entry of the corpus's k3s-flannel.conflist (its portmap left out).
"""
from __future__ import annotations

import os

from harness.errors import CapabilityMissing
from .backend import provide_file
from .conf import corpus_dir, parse, read
from .runtime import PLUGIN_STATE_DIR, Runtime

CORPUS_FILE = "k3s-flannel.conflist"


def subnet_env(lease: str, mtu: int, network: str = "10.244.0.0/16", ipmasq: bool = False) -> str:
    """subnet.env as flanneld writes it (FLANNEL_NETWORK, FLANNEL_SUBNET: the lease with its .1, FLANNEL_MTU,
    FLANNEL_IPMASQ)."""
    return (f"FLANNEL_NETWORK={network}\nFLANNEL_SUBNET={lease}\nFLANNEL_MTU={mtu}\n"
            f"FLANNEL_IPMASQ={str(ipmasq).lower()}\n")


class FlannelNode:
    """One node: flanneld's subnet.env for it, and a runtime exec'ing the flannel plugin there."""

    def __init__(self, live, node: str, state_dir: str, bin_dir: str, env: str, run_dir: str):
        self.live, self.node = live, node
        os.makedirs(state_dir, exist_ok=True)
        self.runtime = Runtime(live, path=[bin_dir], state_dir=state_dir, host_node=node)
        self.data_dir = os.path.join(state_dir, PLUGIN_STATE_DIR, "flannel")  # the plugin's /var/lib/cni/flannel
        self.subnet_file = os.path.join(run_dir, node, "subnet.env")
        missing = provide_file(self.subnet_file, env)
        if missing:
            raise CapabilityMissing(missing)
        data = read(os.path.join(corpus_dir(), CORPUS_FILE))
        flannel = next(p for p in data["plugins"] if p["type"] == "flannel")
        self.network = parse({**data, "plugins": [{**flannel, "subnetFile": self.subnet_file}]}, CORPUS_FILE)

    def add(self, pod: str) -> str:
        """The pod's ADD (its namespace /run/netns/POD); its IPv4 address as the result gives it."""
        result = self.runtime.add(self.network, f"netconform-{pod}", f"/run/netns/{pod}")
        return result["ips"][0]["address"].split("/")[0]

    def close(self) -> None:
        self.runtime.close()
