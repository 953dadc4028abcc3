"""Network configurations: a ``.conflist`` (a chain) or a single-plugin ``.conf``."""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from importlib import resources

from harness.errors import NetconformError
from .schema import VERSIONS

# SPEC.md 1.0.0, 1.1.0, Section 1 > Configuration format, MUST (SPEC-004): the network name "must start with
# an alphanumeric character, optionally followed by any combination of one or more alphanumeric characters,
# underscore, dot (.) or hyphen (-)" (libcni's ValidateNetworkName).
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
NEWEST = VERSIONS[-1]  # the newest spec this runtime implements: cniVersions above it are not selected


class ConfError(NetconformError):
    """A network configuration is unusable: one line naming the file and the field."""


@dataclass
class NetworkConfig:
    name: str
    cni_version: str
    plugins: list[dict]
    source: str
    disable_check: bool = False
    disable_gc: bool = False
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


def version_key(version: str) -> tuple[int, int, int] | None:
    """A spec version (``1.0.0``) as a comparable tuple; None when it is not MAJOR.MINOR.PATCH."""
    parts = version.split(".") if isinstance(version, str) else []
    return tuple(map(int, parts)) if len(parts) == 3 and all(p.isdigit() for p in parts) else None


def selected_version(data: dict, source: str) -> str:
    """SPEC.md 1.1.0, Section 1 > Version considerations, MUST (SPEC-014): "CNI runtimes MUST select the
    highest supported version from the set of network configuration versions given by the `cniVersion`
    and `cniVersions` fields": the highest of them this runtime implements (not above NEWEST, as libcni
    skips those above its own); without ``cniVersions``, ``cniVersion`` as it is."""
    listed = data.get("cniVersions")
    if listed is None:
        if not isinstance(data.get("cniVersion"), str) or not data["cniVersion"]:
            raise ConfError(f"{source}: cniVersion: missing or not a string")
        return data["cniVersion"]
    if not isinstance(listed, list) or not listed:
        raise ConfError(f"{source}: cniVersions: must be a non-empty list of versions (SPEC.md 1.1.0, Section 1)")
    named = [(f"cniVersions[{i}]", v) for i, v in enumerate(listed)]
    if data.get("cniVersion") is not None:
        named.append(("cniVersion", data["cniVersion"]))
    for field_name, version in named:
        if version_key(version) is None:
            raise ConfError(f"{source}: {field_name}: {version!r} is not a version (MAJOR.MINOR.PATCH)")
    usable = [v for _, v in named if version_key(v) <= version_key(NEWEST)]
    if not usable:
        raise ConfError(f"{source}: cniVersions: none of {[v for _, v in named]} is one this runtime implements "
                        f"(up to {NEWEST})")
    return max(usable, key=version_key)


def flag(data: dict, key: str, source: str) -> bool:
    """A list's boolean: ``true``/``false``, or spec-v0.4.0's string form (``disableCheck`` (string):
    "Either `true` or `false`"), case-insensitive as libcni reads it; anything else is one line naming it."""
    value = data.get(key, False)
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise ConfError(f"{source}: {key}: {value!r} is neither true nor false")


def plugin_name_problem(value) -> str | None:
    """SPEC.md 1.0.0, 1.1.0, Section 1 > Plugin configuration objects, MUST NOT (SPEC-008): ``type`` and
    ``ipam.type`` "must not contain characters disallowed in file paths for the system (e.g. / or \\)"."""
    if not isinstance(value, str) or not value:
        return "missing"
    if "/" in value or "\\" in value:
        return f"{value!r} is a path, not a plugin name (no / or \\)"
    return None


def parse(data, source: str) -> NetworkConfig:
    if not isinstance(data, dict):
        raise ConfError(f"{source}: (top): a network configuration is a JSON object")
    if "plugins" not in data:  # a single-plugin .conf: the network is the plugin
        if "type" not in data:
            raise ConfError(f"{source}: type: missing (a .conf needs the plugin type; a .conflist needs plugins)")
        data = {"cniVersion": data.get("cniVersion"), "name": data.get("name"), "plugins": [data]}
    version = selected_version(data, source)
    if not isinstance(data.get("name"), str) or not data["name"]:
        raise ConfError(f"{source}: name: missing or not a string")
    if not NAME.fullmatch(data["name"]):
        raise ConfError(f"{source}: name: {data['name']!r} must start with a letter or digit, then only letters, "
                        "digits, _ . - (SPEC.md 1.0.0, 1.1.0, Section 1, MUST)")
    plugins = data["plugins"]
    if not isinstance(plugins, list) or not plugins:
        raise ConfError(f"{source}: plugins: must be a non-empty list")
    for i, plugin in enumerate(plugins):
        if not isinstance(plugin, dict):
            raise ConfError(f"{source}: plugins[{i}]: a plugin configuration is a JSON object")
        problem = plugin_name_problem(plugin.get("type"))
        if problem:
            raise ConfError(f"{source}: plugins[{i}].type: {problem}")
        ipam = plugin.get("ipam")
        problem = plugin_name_problem(ipam.get("type")) if isinstance(ipam, dict) and "type" in ipam else None
        if problem:
            raise ConfError(f"{source}: plugins[{i}].ipam.type: {problem}")
    return NetworkConfig(name=data["name"], cni_version=version, plugins=plugins, source=source,
                         disable_check=flag(data, "disableCheck", source),
                         disable_gc=flag(data, "disableGC", source), raw=data)


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


# Profiles no suite runs unless it selects them (``pytest.mark.cni_profiles``): each needs a component of the
# host that only its suite provides (macvlan-dhcp: the dhcp IPAM's daemon and a DHCP server on the lab's wire).
SELECTED_ONLY = ("macvlan-dhcp.conflist",)


def bundled_profiles() -> list[str]:
    """The profiles every CNI suite runs on (all but SELECTED_ONLY)."""
    return [path for path in configurations_in(profile_dir()) if os.path.basename(path) not in SELECTED_ONLY]


def ours(path: str) -> bool:
    """Whether ``path`` is a profile of ours (bundled or selected only): its cniVersion is ours to lower."""
    return os.path.dirname(os.path.abspath(path)) == os.path.abspath(profile_dir())


def corpus() -> list[str]:
    return configurations_in(corpus_dir())
