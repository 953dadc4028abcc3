"""An installed netconform: the wheel, in a fresh virtualenv outside this checkout.

The wheel carries every subpackage and the package data (the labs, the documents' shell
commands, the CNI profiles, the VM boxes), the console script ``netconform`` and
``python -m harness`` work from it, and the installed suites run with ``pytest --pyargs``.
And the plugin minds its own business: a session that did not ask for netconform (no ini
key, no flag, none of our suites) stays in the network namespace it started in, with or
without xdist; asking for it moves the session into a sandbox.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap

import pytest

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OWN = ("harness", "pytest_netconform", "netconform_suites", "__editable__", "netconform-")


def run(argv, cwd, timeout=120, **kwargs):
    done = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, timeout=timeout, **kwargs)
    assert done.returncode == 0, f"{' '.join(map(str, argv))}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """A fresh venv with only the wheel of this checkout installed; its dependencies are this
    venv's (linked one by one, netconform's own editable install left out), so no network."""
    root = tmp_path_factory.mktemp("installed")
    source = root / "source"  # a copy: building writes build/ and *.egg-info next to the sources
    shutil.copytree(PROJECT, source, ignore=shutil.ignore_patterns(
        ".git", ".venv", ".tools", "reports", "build", "*.egg-info", "__pycache__"))
    wheels = root / "wheels"
    run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
         "--disable-pip-version-check", "-w", str(wheels), str(source)], cwd=root, timeout=300)
    venv = root / "venv"
    run([sys.executable, "-m", "venv", "--without-pip", str(venv)], cwd=root)
    python = venv / "bin" / "python"
    deps = root / "deps"
    deps.mkdir()
    ours = sysconfig.get_paths()["purelib"]
    for name in os.listdir(ours):
        if not name.startswith(OWN) and not name.endswith(".pth"):
            os.symlink(os.path.join(ours, name), deps / name)
    site = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"], cwd=root).stdout.strip()
    with open(os.path.join(site, "netconform-test-deps.pth"), "w") as handle:
        handle.write(f"{deps}\n")
    wheel = next(wheels.glob("netconform-*.whl"))
    run([sys.executable, "-m", "pip", "--python", str(python), "install", "-q", "--no-deps",
         "--disable-pip-version-check", str(wheel)], cwd=root, timeout=300)
    elsewhere = root / "elsewhere"
    elsewhere.mkdir()
    return venv, elsewhere, site


def test_the_wheel_holds_every_room_and_its_data(installed):
    venv, elsewhere, site = installed
    where = run([str(venv / "bin" / "python"), "-c", "import harness, pytest_netconform, netconform_suites; "
                 "print(harness.__file__)"], cwd=elsewhere).stdout.strip()
    assert where.startswith(site), f"harness imported from {where}, not from the installed wheel in {site}"
    for relative in ("harness/lab/data/001-vbridge.yaml", "harness/lab/data/shell/001-vbridge.sh",
                     "harness/vm/boxes.json", "harness/cni/profiles/bridge-portmap.conflist", "harness/cni/semantics.yaml",
                     "harness/cni/corpus/kubenet.conflist", "harness/impl/catalogue.yaml",
                     "harness/impl/expectations/cni-plugins@1.1.1.yaml", "harness/cni/spec/statements.yaml",
                     "harness/kernel/sandbox.py", "harness/probe/engine.py", "harness/evidence/dump.py",
                     "harness/bench/run.py", "harness/vm/driver.py", "pytest_netconform/plugin.py",
                     "netconform_suites/test_veth.py", "netconform_suites/cni/test_spec.py"):
        assert os.path.exists(os.path.join(site, relative)), f"the wheel lacks {relative}"
    assert not os.path.exists(os.path.join(site, "fixtures")), "the wheel installs a top-level 'fixtures' (PyPI's name)"


@pytest.mark.parametrize("command", [["netconform"], ["python", "-m", "harness"]], ids=["netconform", "python-m"])
def test_the_command_line_works_from_the_wheel(installed, command):
    venv, elsewhere, _ = installed
    argv = [str(venv / "bin" / command[0]), *command[1:]]
    labs = run([*argv, "lab", "list"], cwd=elsewhere).stdout
    assert "001-vbridge\tdocument 001" in labs and "004-flannel-vxlan" in labs, labs
    claims = run([*argv, "lab", "claims"], cwd=elsewhere).stdout  # the installed suites' document markers
    assert "\t000-lpm\ttest_routing.py::test_the_longest_matching_prefix_picks_the_exit" in claims \
        and "netconform_suites" not in claims, claims[-2000:]
    script = run([*argv, "script", "001-vbridge"], cwd=elsewhere).stdout
    assert "ip netns add ns1" in script and "vbridge" in script, script
    boxes = run([*argv, "vm", "list"], cwd=elsewhere).stdout
    assert "debian12" in boxes, boxes
    builds = run([*argv, "impl", "list"], cwd=elsewhere).stdout
    assert "cni-plugins@1.9.1\tDebian forky" in builds, builds
    # What needs a checkout says so in one line, rather than failing somewhere inside.
    done = subprocess.run([*argv, "vm", "box"], cwd=elsewhere, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "runs from a netconform checkout" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert "usage:" in run([*argv, "bench", "--help"], cwd=elsewhere).stdout
    coverage = run([*argv, "spec", "coverage"], cwd=elsewhere).stdout  # the installed suites' markers
    assert "netconform_suites" not in coverage and "cni/test_spec.py::test_version_answers" in coverage \
        and " 0 uncovered (of " in coverage.splitlines()[-6], coverage[-2000:]


def test_the_installed_suites_run_with_pyargs(installed):
    venv, elsewhere, _ = installed
    done = run([str(venv / "bin" / "python"), "-m", "pytest", "--pyargs", "netconform_suites.test_veth",
                "netconform_suites.test_bridge", "-n", "2", "-q", "-p", "no:cacheprovider"], cwd=elsewhere, timeout=300)
    assert " passed" in done.stdout and "failed" not in done.stdout and "error" not in done.stdout, done.stdout


UNRELATED_TEST = textwrap.dedent("""\
    import os
    import sys

    def test_runs_where_it_started():
        here = os.stat("/proc/self/ns/net").st_ino
        assert here == int(os.environ["STARTED_IN"]), "moved into another network namespace"
        assert "NETCONFORM_MACHINE_NS" not in os.environ, "netconform entered its sandbox"
        assert "harness" not in sys.modules, "the plugin imported the harness (scapy, pyroute2) unasked"
""")


def unrelated_session(installed, *args, ini: str | None = None):
    """pytest on someone else's project in the venv where netconform is installed."""
    venv, elsewhere, _ = installed
    project = elsewhere / f"project-{abs(hash((args, ini)))}"
    project.mkdir(exist_ok=True)
    (project / "test_mine.py").write_text(UNRELATED_TEST)
    if ini is not None:
        (project / "pytest.ini").write_text(ini)
    env = dict(os.environ, STARTED_IN=str(os.stat("/proc/self/ns/net").st_ino))
    env.pop("NETCONFORM_MACHINE_NS", None)
    return subprocess.run([str(venv / "bin" / "python"), "-m", "pytest", "-q", "-p", "no:cacheprovider", *args],
                          cwd=project, capture_output=True, text=True, timeout=120, env=env)


@pytest.mark.parametrize("args", [(), ("-n", "2")], ids=["serial", "xdist"])
def test_a_session_that_did_not_ask_is_not_sandboxed(installed, args):
    done = unrelated_session(installed, *args)
    assert done.returncode == 0, f"netconform acted in a session that did not ask for it:\n{done.stdout}\n{done.stderr}"


@pytest.mark.parametrize("args,ini", [(("--netconform",), None), (("-n", "2", "--netconform"), None),
                                      ((), "[pytest]\nnetconform = true\n")], ids=["flag", "flag-xdist", "ini"])
def test_a_session_that_asks_is_sandboxed(installed, args, ini):
    done = unrelated_session(installed, *args, ini=ini)
    assert done.returncode == 1 and "moved into another network namespace" in done.stdout, (
        f"asking for netconform did not move the session into its sandbox:\n{done.stdout}\n{done.stderr}")
