"""python -m harness lab up / lab list: exploring a lab by hand."""
import subprocess
import sys

from harness.lab.file import bundled_labs


def harness_cli(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def test_lab_list_names_every_lab_with_its_document():
    done = harness_cli("lab", "list")
    assert done.returncode == 0, done.stderr
    listed = {line.split("\t")[0]: line for line in done.stdout.splitlines()}
    assert set(listed) == set(bundled_labs())
    assert "document 001" in listed["001-vbridge"]


def test_lab_up_runs_a_command_where_the_documents_commands_work():
    done = harness_cli("lab", "up", "001-vbridge", "--command",
                       "ip netns exec ns1 ping -c1 -W1 192.168.28.2 && ip netns exec ns2 ip -o addr show veth-2")
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 received" in done.stdout and "192.168.28.2/24" in done.stdout
    assert "flowchart" in done.stdout or "graph" in done.stdout  # the topology comes first


def test_lab_up_passes_the_commands_failure_on_and_still_cleans_up():
    done = harness_cli("lab", "up", "000-veth-basics", "--command", "ip netns exec my-namespace ping -c1 -W1 10.0.0.99")
    assert done.returncode != 0
    # The next sandbox starts empty whatever the last one did: the names are free again.
    again = harness_cli("lab", "up", "000-veth-basics", "--command", "ip netns")
    assert again.returncode == 0 and "my-namespace" in again.stdout


def test_lab_up_with_an_unknown_lab_is_one_line():
    done = harness_cli("lab", "up", "no-such-lab")
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1 and "no such lab" in done.stderr
