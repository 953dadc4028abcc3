"""The implementations under test are one idea (harness.backends): one base with a NAME, test ids
``NAME://what``, found through the ``netconform.backends`` entry points, each checked; a broken
third-party backend is one line and left out, never the end of the run."""
from __future__ import annotations

import glob
import json
import os
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path
from importlib.metadata import EntryPoint

import pytest

from harness.backends import Backend, NetworkBackend, ReferenceBackend
from harness.backends.registry import GROUP, load
from harness.cni.backend import CniBackend, backend_for
from harness.cni.netavark import NetavarkBackend
from harness.errors import NetconformError
from harness.lab.build import build
from harness.lab.file import load_lab

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PROFILES = os.path.join(PROJECT, "harness", "cni", "profiles")

GOOD = '''
from harness.backends.base import NetworkBackend
from harness.cni.conf import NetworkConfig


class FakeBackend(NetworkBackend):
    """A third party's backend: it claims *.fake files and attaches nothing."""
    NAME = "fake"

    @classmethod
    def claims(cls, source, data):
        return source.endswith(".fake")

    @classmethod
    def network_of(cls, source, data):
        return NetworkConfig(name=data["name"], cni_version="1.0.0", plugins=[{"type": "fake"}], source=source,
                             raw=data)

    def unavailable(self):
        return "fake: a test backend, it attaches nothing"

    def attach(self, pod, ifname="eth0", **runtime_args):
        raise NotImplementedError("fake")

    def detach(self, pod, ifname="eth0"):
        pass


class NotABackend:
    NAME = "notone"


class Misnamed(FakeBackend):
    NAME = "something-else"


class Half(NetworkBackend):
    NAME = "half"

    @classmethod
    def network_of(cls, source, data):
        return None
'''
THIRD_PARTY = {  # entry point -> object it names (in the modules written by third_party)
    "fake": "netconform_fake:FakeBackend",
    "missing": "netconform_fake_missing:Backend",  # its module imports a package that is not there
    "raising": "netconform_fake_raising:Backend",  # its module raises while imported
    "notone": "netconform_fake:NotABackend",
    "misnamed": "netconform_fake:Misnamed",
    "half": "netconform_fake:Half",  # abstract: attach and detach are missing
}
WHY = {  # entry point -> what its one line says
    "missing": "cannot be loaded: ModuleNotFoundError: No module named 'netconform_no_such_dependency'",
    "raising": "cannot be loaded: RuntimeError: the vendor's backend needs a licence file",
    "notone": "not a subclass of harness.backends.Backend",
    "misnamed": "Misnamed.NAME is 'something-else', not the entry point's name 'misnamed'",
    "half": "Half is abstract (no attach, detach)",
}


def third_party(folder) -> None:
    """The modules of a third party's distribution, written into ``folder``."""
    (folder / "netconform_fake.py").write_text(GOOD)
    (folder / "netconform_fake_missing.py").write_text("import netconform_no_such_dependency\n")
    (folder / "netconform_fake_raising.py").write_text(
        "raise RuntimeError('the vendor\\'s backend needs a licence file\\nsee /opt/vendor')\n")


def ours() -> dict[str, str]:
    with open(os.path.join(PROJECT, "pyproject.toml"), "rb") as handle:
        return tomllib.load(handle)["project"]["entry-points"][GROUP]


def entry(name: str, value: str) -> EntryPoint:
    return EntryPoint(name=name, value=value, group=GROUP)


def test_our_entry_points_are_backends_named_as_their_entry_point():
    """pyproject's own entry points (read from the file, so a stale install does not hide one)."""
    registry = load([entry(name, value) for name, value in ours().items()])
    assert registry.problems == []
    assert registry.backends == {"cni": CniBackend, "netavark": NetavarkBackend, "lab": ReferenceBackend}
    assert registry.network_backends() == {"cni": CniBackend, "netavark": NetavarkBackend}


def test_a_good_third_party_backend_is_found(tmp_path, monkeypatch):
    third_party(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load([entry("cni", ours()["cni"]), entry("fake", THIRD_PARTY["fake"])])
    assert registry.problems == [] and set(registry.backends) == {"cni", "fake"}, registry
    fake = registry.backends["fake"]
    assert issubclass(fake, NetworkBackend) and fake.id_for("my-net") == "fake://my-net"
    path = tmp_path / "my-net.fake"
    path.write_text(json.dumps({"name": "my-net"}))
    chosen, network = backend_for(str(path), registry)
    assert chosen is fake and network.name == "my-net"


@pytest.mark.parametrize("broken", sorted(WHY))
def test_a_broken_third_party_backend_is_one_line_and_the_others_still_load(tmp_path, monkeypatch, caplog, broken):
    third_party(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    entries = [entry("cni", ours()["cni"]), entry(broken, THIRD_PARTY[broken]), entry("fake", THIRD_PARTY["fake"])]
    registry = load(entries)
    assert set(registry.backends) == {"cni", "fake"}, registry
    assert registry.problems == [f"backend {broken} ({THIRD_PARTY[broken]}): {WHY[broken]}"]
    assert [record.getMessage() for record in caplog.records] == [f"netconform: {registry.problems[0]}"]


def test_a_second_backend_of_the_same_name_is_left_out(tmp_path, monkeypatch):
    third_party(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    registry = load([entry("cni", ours()["cni"]), entry("cni", THIRD_PARTY["fake"])])
    assert registry.backends == {"cni": CniBackend}
    assert registry.problems == [f"backend cni ({THIRD_PARTY['fake']}): left out: 'cni' is already "
                                 "harness.cni.backend"]


def test_a_configuration_naming_a_backend_that_is_not_installed_is_one_line(tmp_path):
    path = tmp_path / "vendor.json"
    path.write_text(json.dumps({"netconformBackend": "vendor", "name": "x"}))
    registry = load([entry(name, value) for name, value in ours().items()])
    with pytest.raises(NetconformError) as choosing:
        backend_for(str(path), registry)
    assert str(choosing.value) == (f"{path}: netconformBackend: 'vendor' is not an installed backend "
                                   "(installed: cni, netavark)")


def test_a_configuration_two_backends_claim_must_name_one(tmp_path, monkeypatch):
    third_party(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / "both.conf.fake"  # .fake for the fake backend; "type" for cni
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "both", "type": "bridge"}))
    registry = load([entry("cni", ours()["cni"]), entry("fake", THIRD_PARTY["fake"])])
    with pytest.raises(NetconformError) as choosing:
        backend_for(str(path), registry)
    assert str(choosing.value) == f'{path}: backends cni, fake all claim this configuration: name one with ' \
                                  '"netconformBackend"'
    path.write_text(json.dumps({"cniVersion": "1.0.0", "name": "both", "type": "bridge", "netconformBackend": "cni"}))
    assert backend_for(str(path), registry)[0] is CniBackend


def test_every_backend_declares_its_methods_on_the_base():
    """Nothing a suite or fixture calls on a backend is found by hasattr: each is on the base."""
    for cls in (CniBackend, NetavarkBackend, ReferenceBackend):
        public = {name for klass in cls.__mro__[:-1] if klass not in (Backend, NetworkBackend, object)
                  for name in vars(klass) if not name.startswith("_")}
        base = NetworkBackend if issubclass(cls, NetworkBackend) else Backend
        extra = {name for name in public if not hasattr(base, name) and name not in Backend.__annotations__}
        allowed = {CniBackend: {"container_id"}, NetavarkBackend: {"container_id", "definition"},
                   ReferenceBackend: {"LABEL"}}[cls]
        assert extra <= allowed, f"{cls.__name__} has {sorted(extra - allowed)} the base does not declare"


def test_a_reference_lab_is_a_backend_named_after_its_lab():
    live = build(load_lab("002-veth-pair"))
    backend = ReferenceBackend(live)
    try:
        assert (backend.test_id, backend.label, backend.unavailable()) == ("lab://002-veth-pair", "reference labs",
                                                                           None)
        assert not live.closed
    finally:
        backend.close()
    assert live.closed


def test_configuration_backends_name_their_profile():
    ids = {os.path.basename(p): backend_for(p)[0].id_for(os.path.basename(p).rsplit(".", 1)[0])
           for p in glob.glob(os.path.join(PROFILES, "*"))}
    assert ids["bridge-portmap.conflist"] == "cni://bridge-portmap"
    assert ids["netavark-portmap.json"] == "netavark://netavark-portmap"


def pytest_run(tmp_path, *args, pythonpath=None) -> subprocess.CompletedProcess:
    env = dict(os.environ, COLUMNS="300")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    return subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args,
                           "--basetemp", str(tmp_path / "run")], cwd=PROJECT, capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env=env)


def test_an_installed_third_party_backend_runs_beside_a_broken_one(tmp_path):
    """A real distribution (a *.dist-info with entry_points.txt on sys.path): its configuration's tests
    are named after it, and the broken backend beside it is one line in the header, not fatal."""
    site = tmp_path / "site"
    site.mkdir()
    third_party(site)
    dist = site / "netconform_fake-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: netconform-fake\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text(textwrap.dedent(f"""\
        [{GROUP}]
        fake = {THIRD_PARTY['fake']}
        missing = {THIRD_PARTY['missing']}
        """))
    profile = tmp_path / "my-net.json"
    profile.write_text(json.dumps({"netconformBackend": "fake", "name": "my-net"}))
    done = pytest_run(tmp_path, "suites/cni/test_datapath.py", "-rE", "-k", "test_a_pod_reaches_its_gateway",
                      "--cni-conf", str(profile), pythonpath=str(site))
    lines = done.stdout.splitlines()
    assert done.returncode == 1, done.stdout[-3000:]  # --cni-conf: a backend that cannot run fails its tests
    assert any(line.startswith("netconform: backends ") and "fake" in line and "missing" not in line
               for line in lines), done.stdout[:2000]
    assert f"netconform: backend missing ({THIRD_PARTY['missing']}): {WHY['missing']}" in lines, done.stdout[:2000]
    assert "ERROR suites/cni/test_datapath.py::test_a_pod_reaches_its_gateway_and_the_expected_node_answers" \
           "[fake://my-net-ipv4] - Failed: fake: a test backend, it attaches nothing" in done.stdout, done.stdout[-3000:]


def test_the_report_labels_come_from_the_backend(tmp_path):
    """Allure results: a document test is labelled by its reference lab, a CNI test by its backend."""
    results = tmp_path / "allure"
    done = pytest_run(tmp_path, "suites/test_veth.py", "suites/cni/test_datapath.py", "-q", "-k",
                      "test_a_pod_reaches_its_gateway and bridge-portmap and ipv4 or test_veth and ping", f"--alluredir={results}")
    assert done.returncode == 0, done.stdout[-3000:]
    labelled = {}
    for path in results.glob("*-result.json"):
        result = json.loads(path.read_text())
        labels = result["labels"]
        labelled[result["fullName"]] = ({label["value"] for label in labels if label["name"] == "implementation"},
                                        {label["value"] for label in labels if label["name"] == "backend"})
    cni = [value for name, value in labelled.items() if "test_datapath" in name]
    documents = [value for name, value in labelled.items() if "test_veth" in name]
    assert cni == [({"cni:bridge+portmap"}, {"cni://bridge-portmap"})], labelled
    assert documents and all(implementation == {"reference labs"} and len(ids) == 1
                             and next(iter(ids)).startswith("lab://") for implementation, ids in documents), labelled


# ---------------------------------------------------------------- teardown: no DEL for what the lab takes away
def _attached_bridge(tmp_path, data_dir=None):
    from harness.cni.conf import parse
    ipam = {"type": "host-local", "ranges": [[{"subnet": "10.97.0.0/24"}]]}
    data = {"cniVersion": "1.0.0", "name": "dev-close", "plugins": [
        {"type": "bridge", "bridge": "cni0", "isGateway": True,
         "ipam": dict(ipam, dataDir=data_dir) if data_dir else ipam}]}
    live = build(load_lab("cni-host"))
    live.add_node("pod1")
    backend = CniBackend(live, parse(data, "dev-close.conflist"), str(tmp_path))
    backend.attach("pod1")
    reservation = (Path(data_dir) if data_dir else tmp_path / "var-lib-cni" / "networks") / "dev-close" / "10.97.0.2"
    assert reservation.exists(), f"host-local's reservation is not in {reservation.parent}"
    return live, backend, reservation


@pytest.mark.parametrize("sandboxed", [True, False], ids=["contained", "not-contained"])
def test_closing_before_the_lab_goes_dels_only_what_the_lab_would_not_take(tmp_path, monkeypatch, sandboxed):
    """In the sandbox everything a CNI chain makes is in the lab's namespaces and the run's files, so
    close(lab_goes=True) runs no DEL; where the files are the machine's (--no-sandbox), it still DELs."""
    from harness.kernel import sandbox
    if not sandboxed:
        monkeypatch.setattr(sandbox, "_state", sandbox.SandboxInfo("none", 0, 0))
    live, backend, reservation = _attached_bridge(tmp_path)
    try:
        assert backend.contained() is sandboxed
        backend.close(lab_goes=True)
        dels = [run.plugin for run in backend.runtime.log if run.command == "DEL"]
        assert backend.attached == {}
        assert (dels, reservation.exists()) == (([], True) if sandboxed else (["bridge"], False))
    finally:
        live.teardown()


def test_closing_a_lab_that_stays_dels_every_pod(tmp_path):
    live, backend, reservation = _attached_bridge(tmp_path)
    try:
        backend.close()
        assert [run.plugin for run in backend.runtime.log if run.command == "DEL"] == ["bridge"]
        assert not reservation.exists()
    finally:
        live.teardown()


def test_closing_before_the_lab_goes_removes_what_plugins_left_in_the_sandboxs_run(tmp_path):
    """kindnet's conflist keeps host-local's reservations in /run/cni-ipam-state: with no DEL, the next
    test of the worker would find this one's addresses taken ("duplicate allocation"). close removes
    what came under the sandbox's /run since the backend was made, and only that."""
    kept = Path("/run/dev-kept-by-the-harness")
    kept.write_text("made before the backend")
    live, backend, reservation = _attached_bridge(tmp_path, data_dir="/run/dev-close-ipam")
    try:
        backend.close(lab_goes=True)
        assert [run.command for run in backend.runtime.log if run.command == "DEL"] == []
        assert not reservation.exists() and not Path("/run/dev-close-ipam").exists()
        assert kept.exists() and os.path.isdir("/run/netns")
    finally:
        kept.unlink()
        live.teardown()
