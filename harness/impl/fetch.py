"""A catalogue build, fetched: apt against a private state directory, then ``dpkg-deb -x``.

Nothing is installed and the machine's apt is never changed: netconform reads which Debian
archive the machine already uses (its apt sources), writes a sources list of its own naming the
build's release, and runs ``apt-get update`` and ``apt-get download`` with every state directory
(lists, cache, status) pointed into ``CACHE/impl/apt/RELEASE``. The package is unpacked into
``CACHE/impl/NAME@VERSION/root`` beside a manifest.json saying what it is, and whether it can
run on this machine: a build linked against a newer glibc than the machine's says so in one
line, and runs in its own release's VM instead.
"""
from __future__ import annotations

import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
from dataclasses import asdict, dataclass

from harness import paths
from harness.errors import NetconformError
from harness.impl import catalogue
from harness.impl.catalogue import Build

DEFAULT_KEYRING = "/usr/share/keyrings/debian-archive-keyring.gpg"
APT_TIMEOUT = 300  # seconds for one apt-get (a release's package lists are ~10 MB)
MANIFEST = "manifest.json"


class FetchError(NetconformError):
    """A build could not be fetched (one line: which build, which step, apt's own words)."""


@dataclass(frozen=True)
class Fetched:
    """A build unpacked in the cache."""
    id: str
    package: str
    version: str  # the Debian version apt served
    release: str
    root: str  # the unpacked package
    bin_dir: str  # what the backend executes (the CNI plugins' directory, netavark's)
    sha256: str  # of the .deb
    needs_glibc: str | None
    runs_here: bool
    why_not: str | None  # one line when it cannot run here

    @staticmethod
    def read(directory: str) -> "Fetched | None":
        try:
            with open(os.path.join(directory, MANIFEST), encoding="utf-8") as handle:
                return Fetched(**json.load(handle))
        except (OSError, ValueError, TypeError):
            return None


def cache_dir() -> str:
    return os.path.join(paths.cache_dir(), "impl")


def build_dir(build: Build) -> str:
    return os.path.join(cache_dir(), build.id)


def fetched(build: Build) -> Fetched | None:
    """The build if it is in the cache, else None (nothing is fetched)."""
    return Fetched.read(build_dir(build))


# ------------------------------------------------------------------ the machine's own archive

def _os_codename() -> str:
    try:
        with open("/etc/os-release", encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                if key == "VERSION_CODENAME":
                    return value.strip('"')
    except OSError:
        pass
    raise FetchError("cannot tell this machine's Debian release (/etc/os-release has no VERSION_CODENAME)")


def _source_entries(apt_dir: str = "/etc/apt"):
    """(types, uris, suites, components, signed_by) of every enabled apt source, read-only."""
    one_line = [os.path.join(apt_dir, "sources.list")] + sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.list")))
    for path in one_line:
        try:
            lines = open(path, encoding="utf-8").read().splitlines()
        except OSError:
            continue
        for line in lines:
            match = re.match(r"^\s*(deb|deb-src)\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s*(.*)$", line.split("#", 1)[0])
            if match:
                options = dict(re.findall(r"([\w-]+)=(\S+)", match.group(2) or ""))
                yield ([match.group(1)], [match.group(3)], [match.group(4)], match.group(5).split(),
                       options.get("signed-by"))
    for path in sorted(glob.glob(os.path.join(apt_dir, "sources.list.d", "*.sources"))):
        try:
            text = open(path, encoding="utf-8").read()
        except OSError:
            continue
        for stanza in re.split(r"\n\s*\n", text):
            fields: dict[str, str] = {}
            for line in stanza.splitlines():
                if line.startswith("#") or ":" not in line or line[:1].isspace():
                    continue
                key, _, value = line.partition(":")
                fields[key.strip().lower()] = value.strip()
            if fields.get("enabled", "yes").lower() == "no" or "uris" not in fields:
                continue
            yield (fields.get("types", "").split(), fields["uris"].split(), fields.get("suites", "").split(),
                   fields.get("components", "").split(), fields.get("signed-by"))


def machine_archive(apt_dir: str = "/etc/apt") -> tuple[str, str]:
    """(URI, keyring) of the Debian archive that serves this machine's own release, from its apt sources."""
    codename = _os_codename()
    for types, uris, suites, components, signed_by in _source_entries(apt_dir):
        if "deb" in types and codename in suites and "main" in components and uris:
            keyring = signed_by if signed_by and os.path.isfile(signed_by) else DEFAULT_KEYRING
            return uris[0], keyring
    raise FetchError(f"no apt source of this machine serves '{codename} main': netconform fetches builds from "
                     "the Debian archive the machine already uses")


# ------------------------------------------------------------------ apt, privately

def apt_options(release: str, status: str = "/dev/null") -> list[str]:
    """apt's options for ``release``'s private state directory; ``status`` is the dpkg status apt
    resolves against (none by default; a box's rootfs when the box builder installs there)."""
    state = os.path.join(cache_dir(), "apt", release)
    return ["-o", f"Dir::Etc::sourcelist={state}/sources.list", "-o", "Dir::Etc::sourceparts=-",
            "-o", f"Dir::State::lists={state}/lists", "-o", f"Dir::Cache={state}/cache",
            "-o", f"Dir::State::status={status}", "-o", "APT::Sandbox::User=root",
            "-o", "Acquire::Languages=none", "-q"]



def run_apt(argv: list[str], what: str, who: str, preexec=None, cwd: str | None = None) -> str:
    """Run apt; its failure is one line naming ``who`` (a build, a box) and apt's own last error."""
    if preexec is not None and cwd is not None:
        outer = preexec

        def preexec():  # entering another mount namespace resets the working directory: set it again
            outer()
            os.chdir(cwd)
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=APT_TIMEOUT, cwd=cwd,
                              preexec_fn=preexec, env=dict(os.environ, LANG="C", DEBIAN_FRONTEND="noninteractive"))
    except FileNotFoundError:
        raise FetchError(f"{who}: {argv[0]} is not installed (netconform fetches builds with apt)") from None
    except subprocess.TimeoutExpired:
        raise FetchError(f"{who}: {what} took longer than {APT_TIMEOUT} s") from None
    if done.returncode != 0:
        errors = [line for line in done.stderr.splitlines() if line.startswith(("E:", "W:"))] or done.stderr.splitlines()
        raise FetchError(f"{who}: {what} failed: {(errors or ['exit %d' % done.returncode])[-1].strip()}")
    return done.stdout



def _lists_ready(release: str) -> bool:
    return bool(glob.glob(os.path.join(cache_dir(), "apt", release, "lists", f"*_dists_{release}_main_*Packages*")))


def update(build: Build, refresh: bool = False, preexec=None) -> None:
    """The build's release's package lists in the private state directory."""
    update_release(build.release, build.id, refresh, preexec)


def update_release(release: str, who: str, refresh: bool = False, preexec=None) -> None:
    """A release's package lists in the private state directory (downloaded once, or again on refresh)."""
    if _lists_ready(release) and not refresh:
        return
    uri, keyring = machine_archive()
    state = os.path.join(cache_dir(), "apt", release)
    for sub in ("lists/partial", "cache/archives/partial"):
        os.makedirs(os.path.join(state, sub), exist_ok=True)
    with open(os.path.join(state, "sources.list"), "w", encoding="utf-8") as handle:
        handle.write(f"deb [signed-by={keyring}] {uri} {release} main\n")
    run_apt(["apt-get", *apt_options(release), "update"], f"apt-get update ({release})", who, preexec)


def candidate(build: Build, preexec=None) -> str:
    """The Debian version of the build's package that its release serves (its upstream version must match)."""
    out = run_apt(["apt-cache", *apt_options(build.release), "madison", build.package], "apt-cache madison",
                  build.id, preexec)
    served = [parts[1] for parts in (line.split("|") for line in out.splitlines()) if len(parts) >= 3]
    served = [version.strip() for version in served]
    return pick_version(build, served)


def pick_version(build: Build, served: list[str]) -> str:
    """The served Debian version whose upstream part is the build's, or one line saying what is served."""
    for version in served:
        if catalogue.upstream_of(version) == build.upstream:
            return version
    raise FetchError(f"{build.id}: {build.release} serves {build.package} {', '.join(served) or 'not at all'}, "
                     f"not upstream {build.upstream}")


def machine_glibc() -> str | None:
    """This machine's glibc version (libc6's Debian version), or None if dpkg cannot say."""
    try:
        done = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "libc6"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() or None


def glibc_needed(depends: str) -> str | None:
    """The glibc version a package's Depends asks for (``libc6 (>= 2.39)``), or None."""
    match = re.search(r"\blibc6\s*\(>=\s*([^)\s]+)\s*\)", depends or "")
    return match.group(1) if match else None


def runs_here(needs: str | None, have: str | None) -> bool:
    if needs is None or have is None:
        return True
    return subprocess.run(["dpkg", "--compare-versions", have, "ge", needs]).returncode == 0


def fetch(build: Build, refresh: bool = False, preexec=None) -> Fetched:
    """The build, unpacked in the cache: fetched once, then read from its manifest.

    ``preexec`` runs apt in other namespaces (a sandboxed test session has no network: it passes
    ``harness.kernel.sandbox.outside_preexec()``)."""
    os.makedirs(cache_dir(), exist_ok=True)
    with open(os.path.join(cache_dir(), f".lock-{build.id}"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # two xdist workers asking for one build fetch it once
        have = fetched(build)
        if have is not None and not refresh:
            return have
        update(build, refresh=refresh, preexec=preexec)
        version = candidate(build, preexec)
        # Unpacked beside the cache and renamed into place: a fetch cut short leaves no half build.
        scratch = tempfile.mkdtemp(dir=cache_dir(), prefix=f".fetch-{build.id}-")
        try:
            run_apt(["apt-get", *apt_options(build.release), "download", f"{build.package}={version}"],
                    f"apt-get download {build.package}={version}", build.id, preexec, cwd=scratch)
            debs = glob.glob(os.path.join(scratch, "*.deb"))
            if len(debs) != 1:
                raise FetchError(f"{build.id}: apt-get download left {len(debs)} .deb files, not one")
            deb = debs[0]
            depends = subprocess.run(["dpkg-deb", "-f", deb, "Depends"], capture_output=True, text=True,
                                     timeout=60).stdout.strip()
            with open(deb, "rb") as handle:
                digest = hashlib.sha256(handle.read()).hexdigest()
            unpacked = os.path.join(scratch, "root")
            done = subprocess.run(["dpkg-deb", "-x", deb, unpacked], capture_output=True, text=True, timeout=300)
            if done.returncode != 0:
                raise FetchError(f"{build.id}: dpkg-deb -x failed: {done.stderr.strip().splitlines()[-1:]}")
            if not os.path.isdir(os.path.join(unpacked, build.bin)):
                raise FetchError(f"{build.id}: the package has no {build.bin}/ (the catalogue's bin)")
            needs, glibc = glibc_needed(depends), machine_glibc()
            ok = runs_here(needs, glibc)
            why = None if ok else (f"{build.id} needs glibc >= {needs} and this machine has {glibc}: it runs in "
                                   f"its own release's VM ({build.release}, kernel {build.kernel})")
            target = build_dir(build)
            record = Fetched(id=build.id, package=build.package, version=version, release=build.release,
                             root=os.path.join(target, "root"), bin_dir=os.path.join(target, "root", build.bin),
                             sha256=digest, needs_glibc=needs, runs_here=ok, why_not=why)
            with open(os.path.join(scratch, MANIFEST), "w", encoding="utf-8") as handle:
                json.dump(asdict(record), handle, indent=1)
            os.remove(deb)
            shutil.rmtree(target, ignore_errors=True)
            os.rename(scratch, target)
        except BaseException:
            shutil.rmtree(scratch, ignore_errors=True)
            raise
        return record
