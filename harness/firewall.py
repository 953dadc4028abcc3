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
