"""The catalogue of builds netconform validates (catalogue.yaml beside this file), as data."""
from __future__ import annotations

import functools
import os
from dataclasses import dataclass

from harness import yamlfile
from harness.errors import NetconformError

CATALOGUE_FILE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "catalogue.yaml")
FIELDS = {"package", "kind", "bin", "about", "builds"}
BUILD_FIELDS = {"release", "kernel", "note"}


@dataclass(frozen=True)
class Build:
    """One build of one implementation: ``cni-plugins@1.9.1`` from Debian forky."""
    name: str
    upstream: str
    package: str
    kind: str  # the backend that drives it
    bin: str  # relative to the unpacked package: what the backend executes
    release: str  # the Debian release that serves it
    kernel: str  # that release's kernel (its VM's)
    note: str = ""

    @property
    def id(self) -> str:
        return f"{self.name}@{self.upstream}"


def load(path: str = CATALOGUE_FILE) -> dict[str, Build]:
    """Every build, by id; a malformed catalogue is one line naming the entry."""
    with open(path, encoding="utf-8") as handle:
        data = yamlfile.load(handle) or {}
    builds: dict[str, Build] = {}
    for name, entry in data.items():
        if not isinstance(entry, dict) or not FIELDS <= set(entry) or set(entry) - FIELDS:
            raise NetconformError(f"{path}: {name}: an implementation has exactly {', '.join(sorted(FIELDS))}")
        for upstream, spec in entry["builds"].items():
            if not isinstance(spec, dict) or not {"release", "kernel"} <= set(spec) or set(spec) - BUILD_FIELDS:
                raise NetconformError(f"{path}: {name}@{upstream}: a build has release, kernel and maybe a note")
            build = Build(name=name, upstream=str(upstream), package=entry["package"], kind=entry["kind"],
                          bin=entry["bin"], release=spec["release"], kernel=str(spec["kernel"]),
                          note=spec.get("note", ""))
            builds[build.id] = build
    return builds


def upstream_of(debian_version: str) -> str:
    """The upstream part of a Debian version: ``1.1.1`` of ``1.1.1+ds1-3+b17``, of ``1:1.9.1-1``."""
    return debian_version.split(":", 1)[-1].rsplit("-", 1)[0].split("+", 1)[0]


def build_named(spec: str, path: str = CATALOGUE_FILE) -> Build:
    """``NAME@VERSION`` from the catalogue, or one line listing what it has."""
    builds = load(path)
    if spec not in builds:
        raise NetconformError(f"no build {spec!r} in the catalogue; it has {', '.join(builds)}")
    return builds[spec]


@functools.lru_cache(maxsize=None)  # dpkg is asked once per binary and process
def installed(binary: str, path: str = CATALOGUE_FILE) -> str | None:
    """The catalogue build ``binary`` belongs to when the machine's own package put it there (Debian's
    dpkg says which upstream version is installed, and the binary is in that package's directory),
    else None: a binary anywhere else is no catalogue build's."""
    import subprocess  # only asked once per plugin binary and run
    binary = os.path.realpath(binary)
    for build in load(path).values():
        if not binary.startswith(f"/{build.bin}/"):
            continue
        try:
            done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", build.package],
                                  capture_output=True, text=True, check=False, timeout=30)
        except (OSError, subprocess.SubprocessError):
            return None
        if done.returncode == 0 and done.stdout.strip() and upstream_of(done.stdout.strip()) == build.upstream:
            return build.id
    return None
