"""Network configurations: a ``.conflist`` (a chain) or a single-plugin ``.conf``."""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from importlib import resources

from harness.errors import NetconformError


class ConfError(NetconformError):
    """A network configuration is unusable: one line naming the file and the field."""


@dataclass
class NetworkConfig:
    name: str
    cni_version: str
    plugins: list[dict]
    source: str
    disable_check: bool = False
    raw: dict = field(default_factory=dict)
    # plugin type -> the known type whose config semantics it has (--cni-semantics; harness.cni.expect)
    semantics: dict = field(default_factory=dict)

    @property
    def types(self) -> list[str]:
        return [plugin["type"] for plugin in self.plugins]

    @property
    def profile(self) -> str:
        """What a report calls this implementation: the chain of plugin types (bridge+portmap)."""
        return "+".join(self.types)


def parse(data, source: str) -> NetworkConfig:
    if not isinstance(data, dict):
        raise ConfError(f"{source}: (top): a network configuration is a JSON object")
    if "plugins" not in data:  # a single-plugin .conf: the network is the plugin
        if "type" not in data:
            raise ConfError(f"{source}: type: missing (a .conf needs the plugin type; a .conflist needs plugins)")
        data = {"cniVersion": data.get("cniVersion"), "name": data.get("name"), "plugins": [data]}
    for key in ("cniVersion", "name"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ConfError(f"{source}: {key}: missing or not a string")
    plugins = data["plugins"]
    if not isinstance(plugins, list) or not plugins:
        raise ConfError(f"{source}: plugins: must be a non-empty list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise ConfError(f"{source}: plugins[{i}]: a plugin configuration is a JSON object")
        if not isinstance(plugin.get("type"), str) or not plugin["type"]:
            raise ConfError(f"{source}: plugins[{i}].type: missing")
        if "/" in plugin["type"]:
            raise ConfError(f"{source}: plugins[{i}].type: {plugin['type']!r} is a path, not a plugin name")
    return NetworkConfig(name=data["name"], cni_version=data["cniVersion"], plugins=plugins, source=source,
                         disable_check=bool(data.get("disableCheck", False)), raw=data)


def read(path: str):
    """The JSON in ``path`` (any backend's configuration file); one line when it cannot be read."""
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except OSError as exc:
        raise ConfError(f"{path}: cannot read: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfError(f"{path}: line {exc.lineno}, column {exc.colno}: broken JSON: {exc.msg}") from None


def load(path: str) -> NetworkConfig:
    return parse(read(path), path)


def profile_dir() -> str:
    return str(resources.files("harness.cni") / "profiles")


def corpus_dir() -> str:
    """Our versions of real runtimes' default configurations (containerd, CRI-O, Podman, kubenet, kind,
    k3s); each file's ``_comment`` says where it comes from, corpus/README.md lists them."""
    return str(resources.files("harness.cni") / "corpus")


def configurations_in(folder: str) -> list[str]:
    return sorted(os.path.join(folder, name) for name in os.listdir(folder)
                  if name.endswith((".conflist", ".conf", ".json")))


def bundled_profiles() -> list[str]:
    return configurations_in(profile_dir())


def corpus() -> list[str]:
    return configurations_in(corpus_dir())
