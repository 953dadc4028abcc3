"""netconform's command line: lab files as scripts and diagrams, without building anything.

    python -m harness labs                          the bundled labs
    python -m harness check LAB_FILE                validate a lab file (exit 2 if it is wrong)
    python -m harness script LAB                    the shell reproducer of a lab
    python -m harness teardown LAB                  the script that removes it again
    python -m harness topology LAB [--format dot]   a Mermaid (default) or Graphviz diagram

LAB is a bundled lab's name (``001-vbridge``) or a lab file's path.
"""
from __future__ import annotations

import argparse
import sys

from .errors import LabError
from .labfile import bundled_labs, load_lab, load_lab_file
from .render import FORMATS, shell_script, teardown_script, topology


def _labs(args) -> str:
    lines = []
    for name in bundled_labs():
        lab = load_lab(name)
        lines.append(f"{name}\tdocument {lab.document or '-'}: {' '.join((lab.section or '').split())}")
    return "\n".join(lines) + "\n"


def _check(args) -> str:
    lab = load_lab_file(args.lab_file)
    count = sum(1 for _ in lab.interfaces())
    return f"{args.lab_file}: OK (lab {lab.name}, {len(lab.nodes)} nodes, {count} interfaces)\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m harness", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("labs", help="list the bundled labs").set_defaults(run=_labs)
    check = commands.add_parser("check", help="validate a lab file: one line, OK or what is wrong")
    check.add_argument("lab_file")
    check.set_defaults(run=_check)
    for name, render, text in (("script", shell_script, "the shell script that builds LAB"),
                               ("teardown", teardown_script, "the shell script that removes LAB")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("lab", help="a bundled lab's name or a lab file's path")
        sub.set_defaults(run=lambda args, render=render: render(load_lab(args.lab)))
    draw = commands.add_parser("topology", help="LAB's namespaces and links as a diagram")
    draw.add_argument("lab", help="a bundled lab's name or a lab file's path")
    draw.add_argument("--format", choices=FORMATS, default="mermaid")
    draw.set_defaults(run=lambda args: topology(load_lab(args.lab), args.format))
    args = parser.parse_args(argv)
    try:
        sys.stdout.write(args.run(args))
        sys.stdout.flush()
    except LabError as exc:
        print(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, file=sys.stderr)
        return 2
    except BrokenPipeError:  # `... | head`
        sys.stderr.close()
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
