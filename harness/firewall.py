"""iptables rules of a lab, as one iptables-restore document per node."""
from __future__ import annotations

import shlex


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
