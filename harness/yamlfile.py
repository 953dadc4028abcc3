"""YAML read with libyaml's safe loader where PyYAML has it (about ten times faster than the pure-Python
one: statements.yaml, read by the controller and each worker, took 0.38 s), else the pure-Python one."""
from __future__ import annotations

import yaml

LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def load(stream):
    """The document in ``stream`` (text or an open file), as ``yaml.safe_load`` reads it."""
    return yaml.load(stream, Loader=LOADER)  # noqa: S506 - a safe loader
