"""A lab's firewall: iptables rules as one iptables-restore document per node (started
while the rest of the lab is built, waited for at its end), nftables rulesets."""
from __future__ import annotations

import contextlib
import shlex
import shutil
import subprocess

from harness.errors import BuildError, CapabilityMissing

IPTABLES_TIMEOUT = 30.0  # seconds for iptables-restore; normally 5-20 ms


def _restore_quote(arg: str) -> str:
    """Quote a word for iptables-restore, which understands double quotes only."""
    if arg and not any(c in arg for c in ' \t"\\\'#'):
        return arg
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


def iptables_restore_input(rules: list[str]) -> tuple[str, list[str]]:
    """Group ``iptables`` argument strings into one iptables-restore document."""
    by_table: dict[str, tuple[list[str], list[str]]] = {}
    for rule in rules:
        argv = shlex.split(rule)
        table = "filter"
        if "-t" in argv:
            at = argv.index("-t")
            table = argv[at + 1]
            del argv[at:at + 2]
        heads, lines = by_table.setdefault(table, ([], []))
        if argv[0] in ("-N", "--new-chain"):
            heads.append(f":{argv[1]} - [0:0]")
        elif argv[0] in ("-P", "--policy"):
            heads.append(f":{argv[1]} {argv[2]} [0:0]")
        else:
            lines.append(" ".join(_restore_quote(arg) for arg in argv))
    text = ""
    for table, (heads, lines) in by_table.items():
        text += f"*{table}\n" + "".join(h + "\n" for h in heads) + "".join(l + "\n" for l in lines) + "COMMIT\n"
    return text, list(by_table)


FILTER_HOOKS = {"INPUT": "input", "FORWARD": "forward", "OUTPUT": "output"}


def filter_policies(rules: list[str]) -> tuple[str | None, list[str]]:
    """(an nft script, the rest of ``rules``): the script makes the filter table's built-in
    chains whose policy the rules set, with that policy from the start, as iptables-nft would
    have made them (table ip filter, hook, priority 0); the rest go to iptables-restore.

    Why: iptables-nft sets a policy by updating the base chain it has just made, which costs
    the kernel a grace period (~15 ms; 003-example2's `-P FORWARD DROP`), where a base chain
    made with its policy costs ~3 ms. iptables-save, iptables -S and nft list ruleset read the
    same afterwards (tests/test_doc_shell.py compares them with the document's own commands).
    """
    policies, rest = {}, []
    for rule in rules:
        argv = shlex.split(rule)
        if argv[:2] == ["-t", "filter"]:
            argv = argv[2:]
        if (len(argv) == 3 and argv[0] in ("-P", "--policy") and argv[1] in FILTER_HOOKS
                and argv[2] in ("ACCEPT", "DROP")):
            policies[argv[1]] = argv[2].lower()
        else:
            rest.append(rule)
    if not policies:
        return None, rules
    script = "add table ip filter\n" + "".join(
        f"add chain ip filter {chain} {{ type filter hook {FILTER_HOOKS[chain]} priority 0; policy {policy}; }}\n"
        for chain, policy in policies.items())
    return script, rest


def _refused(lab, node, what: str, code: int, stderr: str) -> BuildError:
    message = (stderr.strip().splitlines() or [f"exit {code}"])[0]
    return BuildError(f"lab {lab.name} ({lab.source}): node {node.name}: {what}: {message}")


def start_iptables(live, lab, node) -> subprocess.Popen | None:
    """iptables-restore of ``node``'s rules, started in its namespace (finish_iptables waits);
    built-in filter chains with a policy are made first, with it (filter_policies)."""
    tool = shutil.which("iptables-restore")
    if tool is None:
        raise CapabilityMissing("iptables is not installed (no iptables-restore on PATH); apt-get install iptables")
    script, rules = filter_policies(node.iptables)
    nft = shutil.which("nft") if script else None
    if nft is None:
        rules = node.iptables
    else:
        done = live.run(node.name, [nft, "-f", "-"], input=script)
        if done.returncode != 0:
            raise _refused(lab, node, "iptables policy (nft)", done.returncode, done.stderr)
        if not rules:
            return None
    text, _ = iptables_restore_input(rules)
    with live.entered(node.name):
        process = subprocess.Popen([tool, "--noflush"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True)
    stdin, process.stdin = process.stdin, None  # all of it now; communicate() later reads the answers
    try:
        stdin.write(text)
        stdin.close()
    except BrokenPipeError:  # it stopped reading: a refused line; finish_iptables says which
        with contextlib.suppress(BrokenPipeError):
            stdin.close()
    return process


def finish_iptables(lab, node, process: subprocess.Popen | None) -> None:
    if process is None:
        return
    try:
        _, stderr = process.communicate(timeout=IPTABLES_TIMEOUT)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        raise BuildError(f"lab {lab.name}: node {node.name}: iptables-restore gave no answer within "
                         f"{IPTABLES_TIMEOUT:g} s") from None
    if process.returncode != 0:
        raise _refused(lab, node, "iptables", process.returncode, stderr)


def load_nftables(live, lab, node) -> None:
    tool = shutil.which("nft")
    if tool is None:
        raise CapabilityMissing("nftables is not installed (no nft on PATH); apt-get install nftables")
    done = live.run(node.name, [tool, "-f", "-"], input=node.nftables)
    if done.returncode != 0:
        raise _refused(lab, node, "nft", done.returncode, done.stderr)
