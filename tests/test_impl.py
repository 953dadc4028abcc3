"""The implementations' catalogue and fetching real Debian builds privately (harness/impl).

A fetched build is the real thing (its own plugins answer VERSION as that release's build does),
a build that cannot run on this machine says why in one line, and the machine's apt state is
byte-for-byte what it was.
"""
from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys

import pytest

from harness.errors import NetconformError
from harness.impl import catalogue, fetch
from harness.kernel import sandbox

MACHINE_APT = ("/etc/apt", "/var/lib/apt/lists", "/var/lib/dpkg/status", "/var/cache/apt/archives")


def test_the_catalogue_names_every_build_with_its_release():
    builds = catalogue.load()
    assert {"cni-plugins@0.9.0", "cni-plugins@1.1.1", "cni-plugins@1.9.1",
            "netavark@1.4.0", "netavark@1.14.0", "netavark@1.17.2"} <= set(builds)
    assert builds["cni-plugins@0.9.0"].release == "bullseye" and builds["netavark@1.14.0"].release == "trixie"
    assert all(b.kind in ("cni", "netavark") and b.bin and b.kernel for b in builds.values())


def test_an_unknown_build_is_one_line_listing_the_catalogue():
    with pytest.raises(NetconformError) as caught:
        catalogue.build_named("cni-plugins@9.9.9")
    assert "no build 'cni-plugins@9.9.9'" in str(caught.value) and "cni-plugins@1.9.1" in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_malformed_catalogue_is_one_line_naming_the_entry(tmp_path):
    bad = tmp_path / "catalogue.yaml"
    bad.write_text("cni-plugins:\n  package: x\n  kind: cni\n  bin: usr/lib/cni\n  about: y\n"
                   "  builds:\n    '1.0': {kernel: '6.1'}\n")
    with pytest.raises(NetconformError, match=r"cni-plugins@1.0: a build has release, kernel"):
        catalogue.load(str(bad))


@pytest.mark.parametrize("served,picked", [
    (["1.9.1+ds1-1"], "1.9.1+ds1-1"),
    (["1.1.1+ds1-3+b17", "1.9.1+ds1-2"], "1.9.1+ds1-2"),
    (["1:1.9.1-1"], "1:1.9.1-1"),
])
def test_the_release_version_is_chosen_by_its_upstream_part(served, picked):
    build = catalogue.load()["cni-plugins@1.9.1"]
    assert fetch.pick_version(build, served) == picked


def test_a_release_that_moved_on_says_what_it_serves():
    build = catalogue.load()["cni-plugins@1.9.1"]
    with pytest.raises(fetch.FetchError, match=r"forky serves containernetworking-plugins 1.10.0-1, not upstream 1.9.1"):
        fetch.pick_version(build, ["1.10.0-1"])


def test_glibc_need_is_read_from_depends_and_compared_with_dpkg():
    assert fetch.glibc_needed("libc6 (>= 2.39), libgcc-s1 (>= 4.2)") == "2.39"
    assert fetch.glibc_needed("libgcc-s1 (>= 4.2)") is None
    assert fetch.runs_here("2.36", "2.36-9+deb12u14") and fetch.runs_here(None, "2.36-9")
    assert not fetch.runs_here("2.39", "2.36-9+deb12u14")


def test_the_archive_is_the_one_the_machine_already_uses(tmp_path, monkeypatch):
    apt = tmp_path / "apt"
    (apt / "sources.list.d").mkdir(parents=True)
    (apt / "sources.list.d" / "other.sources").write_text(
        "Types: deb\nURIs: http://example.invalid/other\nSuites: nodistro\nComponents: main\n")
    (apt / "sources.list.d" / "debian.sources").write_text(
        "Types: deb\nURIs: http://mirror.invalid/debian\nSuites: bookworm bookworm-updates\nComponents: main\n"
        "Signed-By: /nonexistent.gpg\n\nTypes: deb\nURIs: http://mirror.invalid/security\n"
        "Suites: bookworm-security\nComponents: main\n")
    monkeypatch.setattr(fetch, "_os_codename", lambda: "bookworm")
    assert fetch.machine_archive(str(apt)) == ("http://mirror.invalid/debian", fetch.DEFAULT_KEYRING)
    monkeypatch.setattr(fetch, "_os_codename", lambda: "trixie")
    with pytest.raises(fetch.FetchError, match="no apt source of this machine serves 'trixie main'"):
        fetch.machine_archive(str(apt))


def _digest(paths) -> dict[str, str]:
    out = {}
    for top in paths:
        if os.path.isfile(top):
            out[top] = hashlib.sha256(open(top, "rb").read()).hexdigest()
            continue
        for folder, _, files in os.walk(top):
            for name in files:
                path = os.path.join(folder, name)
                try:
                    st = os.lstat(path)
                except OSError:
                    continue
                out[path] = f"{st.st_size}:{st.st_mtime_ns}"
    return out


@pytest.fixture
def outside():
    """apt needs the machine's network: a sandboxed session runs it in the machine's namespaces (root only)."""
    if os.geteuid() != 0:
        pytest.skip("fetching needs the machine's network namespace, which only root can enter from the sandbox")
    return sandbox.outside_preexec()


@pytest.fixture
def private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("NETCONFORM_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def test_a_real_build_is_fetched_privately_and_is_that_build(private_cache, outside, monkeypatch):
    before = _digest(MACHINE_APT)
    build = catalogue.build_named("cni-plugins@0.9.0")
    got = fetch.fetch(build, preexec=outside)
    assert got.runs_here and got.version.startswith("0.9.0") and got.release == "bullseye"
    assert got.bin_dir.startswith(str(private_cache)) and os.access(os.path.join(got.bin_dir, "flannel"), os.X_OK)
    answer = subprocess.run([os.path.join(got.bin_dir, "bridge")], input='{"cniVersion": "0.4.0"}',
                            env={"CNI_COMMAND": "VERSION"}, capture_output=True, text=True, timeout=30)
    versions = json.loads(answer.stdout)["supportedVersions"]
    assert "0.4.0" in versions and "1.0.0" not in versions, f"not the 0.9.0 build: {answer.stdout}"
    assert _digest(MACHINE_APT) == before, "fetching changed the machine's apt state"
    # Fetched once: the second call reads the manifest and runs no apt at all.
    monkeypatch.setenv("PATH", "/nonexistent")
    assert fetch.fetch(build) == got


def test_a_build_for_a_newer_glibc_says_where_it_runs(private_cache, outside):
    got = fetch.fetch(catalogue.build_named("netavark@1.14.0"), preexec=outside)
    assert not got.runs_here
    assert got.why_not == (f"netavark@1.14.0 needs glibc >= 2.39 and this machine has {fetch.machine_glibc()}: "
                           "it runs in its own release's VM (trixie, kernel 6.12)")


PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_suites(*args):
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", *args],
                          cwd=PROJECT, capture_output=True, text=True, timeout=600)


def test_the_cni_suites_run_a_catalogue_build_named_in_each_test_id(outside):
    fetch.fetch(catalogue.build_named("cni-plugins@0.9.0"), preexec=outside)  # the cache: the run has no network
    # A check of the chain (not of the binary alone, which runs once per binary in another profile).
    done = run_suites("suites/cni/test_spec.py", "-k", "test_add_result_is_valid_against_the_schema and bridge-host-local",
                      "--impl", "cni-plugins@0.9.0", "-vv")
    out = done.stdout
    assert "[cni://bridge-host-local+cni-plugins@0.9.0-0.4.0] PASSED" in out, out
    # 0.9.0 claims no CNI 1.0.0: that case is not asked of it (and the installed build is not run at all).
    assert "[cni://bridge-host-local+cni-plugins@0.9.0-1.0.0] SKIPPED" in out, out
    assert "[cni://bridge-host-local-0.4.0]" not in out, out


def test_a_build_that_cannot_run_here_skips_its_tests_saying_why(outside):
    fetch.fetch(catalogue.build_named("netavark@1.14.0"), preexec=outside)
    done = run_suites("suites/cni/test_datapath.py", "-k", "netavark-portmap and gateway", "--impl", "netavark@1.14.0")
    assert done.returncode == 0 and "needs glibc >= 2.39" in done.stdout and "passed" not in done.stdout, done.stdout


def test_an_unknown_build_stops_the_run_in_one_line():
    done = run_suites("suites/cni/test_spec.py", "--impl", "cni-plugins@9.9.9", "--collect-only")
    assert done.returncode == 4 and "--impl cni-plugins@9.9.9: no build 'cni-plugins@9.9.9'" in done.stderr, (
        done.stdout, done.stderr)
