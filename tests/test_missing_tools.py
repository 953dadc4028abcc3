"""Missing system tools: iptables, nft, tcpdump, CNI plugins. Each absence is one line that
names the tool and how to get it (a lab that needs it), a skip with that reason (a suite),
or nothing at all (what does not need it) -- never a traceback, never state left behind.

The tools are hidden by running the command with a PATH made of links to everything on
the real PATH except them.
"""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HIDDEN = {  # what "not installed" hides: the package's commands
    "iptables": ("iptables", "ip6tables", "arptables", "ebtables", "xtables"),
    "nft": ("nft",),
    "tcpdump": ("tcpdump",),
}


@pytest.fixture
def path_without(tmp_path):
    """path_without("iptables") -> a PATH on which that tool's commands do not exist."""
    def make(*tools: str) -> str:
        directory = tmp_path / ("bin-without-" + "-".join(tools))
        directory.mkdir()
        prefixes = tuple(prefix for tool in tools for prefix in HIDDEN[tool])
        for entry in os.environ.get("PATH", "/usr/bin:/bin").split(os.pathsep):
            if not os.path.isdir(entry):
                continue
            for name in os.listdir(entry):
                target, link = os.path.join(entry, name), directory / name
                if name.startswith(prefixes) or link.exists() or not os.access(target, os.X_OK):
                    continue
                link.symlink_to(target)
        return str(directory)
    return make


def run(argv: list[str], path: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run(argv, cwd=PROJECT, env=dict(os.environ, PATH=path), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def one_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in text, f"not one line:\n{text}"
    return lines[0]


@pytest.mark.parametrize("lab,tool,words", [
    ("004-docker-nat", "iptables", "iptables is not installed (no iptables-restore on PATH); apt-get install iptables"),
    ("004-docker-nat-nft", "nft", "nftables is not installed (no nft on PATH); apt-get install nftables"),
])
def test_a_lab_needing_a_missing_tool_is_one_line_naming_lab_and_tool(path_without, lab, tool, words):
    done = run([sys.executable, "-m", "harness", "lab", "up", lab, "--command", "echo SHELL-REACHED"],
               path_without(tool))
    assert done.returncode == 2, (done.returncode, done.stdout, done.stderr)
    assert one_line(done.stderr) == f"lab {lab}: {words}"
    assert "SHELL-REACHED" not in done.stdout


def test_the_same_lab_with_the_tool_builds(path_without):
    """The twin: hiding an unrelated tool changes nothing."""
    done = run([sys.executable, "-m", "harness", "lab", "up", "004-docker-nat", "--command", "echo SHELL-REACHED"],
               path_without("tcpdump"))
    assert done.returncode == 0 and "SHELL-REACHED" in done.stdout, done.stderr


def test_suites_needing_a_missing_tool_skip_with_its_name_and_leave_nothing(path_without, tmp_path):
    """004's iptables lab skips naming iptables; its nftables twin (same suite) still runs."""
    done = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs", "suites/test_docker_nat.py",
                "--basetemp", str(tmp_path / "run")], path_without("iptables"))
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-2000:]
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert skips and all("iptables is not installed" in line for line in skips), done.stdout[-3000:]
    assert "failed" not in done.stdout.splitlines()[-1] and "error" not in done.stdout.splitlines()[-1]


def test_tcpdump_is_not_needed_the_probe_writes_its_own_pcaps(path_without, tmp_path):
    captures = tmp_path / "pcaps"
    done = run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "suites/test_veth.py",
                "--capture-dir", str(captures), "--basetemp", str(tmp_path / "run")], path_without("tcpdump"))
    assert done.returncode == 0 and " passed" in done.stdout.splitlines()[-1], done.stdout[-3000:]
    pcaps = list(captures.glob("*.pcapng"))
    assert pcaps and all(p.read_bytes()[:4] == b"\x0a\x0d\x0d\x0a" for p in pcaps), pcaps


@pytest.mark.parametrize("suite", ["suites/cni/test_datapath.py", "suites/cni/test_spec.py"])
def test_a_users_conflist_whose_plugins_are_missing_fails_in_one_line(tmp_path, suite):
    """--cni-conf is the user's own network: a missing plugin fails (a bundled profile would skip),
    naming the file, the field and the directory searched; no traceback."""
    empty = tmp_path / "no-plugins"
    empty.mkdir()
    profile = os.path.join(PROJECT, "harness", "cni", "profiles", "ptp.conflist")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE", "-x",
                           suite, "--cni-conf", profile, "--cni-path", str(empty), "--basetemp", str(tmp_path / "run")],
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    failed = [line for line in done.stdout.splitlines() if line.startswith(("FAILED", "ERROR"))]
    assert done.returncode == 1 and len(failed) == 1, done.stdout[-3000:]
    assert f"{profile}: plugins[0].type: CNI plugin 'ptp' not found in {empty}" in done.stdout, done.stdout[-3000:]
    assert "Traceback" not in done.stdout and "harness/cni/runtime.py" not in done.stdout, done.stdout[-3000:]


def test_a_bundled_profile_whose_plugin_is_missing_skips_naming_it(tmp_path):
    """The twin: without --cni-conf a profile this machine cannot run is skipped, with the plugin named."""
    only_ipam = tmp_path / "only-host-local"
    only_ipam.mkdir()
    (only_ipam / "host-local").symlink_to("/usr/lib/cni/host-local")
    done = subprocess.run([sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
                           "suites/cni/test_datapath.py", "-k", "ptp", "--cni-path", str(only_ipam),
                           "--basetemp", str(tmp_path / "run")], env=dict(os.environ, COLUMNS="1000"),
                          cwd=PROJECT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL)
    skips = [line for line in done.stdout.splitlines() if line.startswith("SKIPPED")]
    assert done.returncode in (0, 5) and skips, done.stdout[-3000:]
    missing = [line for line in skips if f"plugins[0].type: CNI plugin 'ptp' not found in {only_ipam}" in line]
    assert missing and done.stdout.strip().splitlines()[-1].split()[1].startswith("skipped"), done.stdout[-3000:]
