"""Where netconform's files are: the lab data inside the package, and the project checkout
(pyproject.toml, suites/, the Vagrantfile) when the harness runs from one rather than from an
installed wheel."""
from __future__ import annotations

import os

from harness.errors import NetconformError

PACKAGE = os.path.dirname(os.path.abspath(__file__))
LAB_DATA = os.path.join(PACKAGE, "lab", "data")  # the bundled labs (*.yaml) and the documents' commands (shell/)
SHELL_DIR = os.path.join(LAB_DATA, "shell")


def cache_dir() -> str:
    """netconform's cache (VM boxes, fetched builds): $NETCONFORM_CACHE, else /var/cache/netconform as root,
    else ~/.cache/netconform."""
    if os.environ.get("NETCONFORM_CACHE"):
        return os.environ["NETCONFORM_CACHE"]
    if os.geteuid() == 0:
        return "/var/cache/netconform"
    return os.path.join(os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "netconform")


def checkout() -> str | None:
    """The project checkout this harness is part of, or None for an installed copy."""
    project = os.path.dirname(PACKAGE)
    if all(os.path.exists(os.path.join(project, name)) for name in ("pyproject.toml", "suites", "fixtures")):
        return project
    return None


def require_checkout(what: str) -> str:
    """The checkout, or one line saying that ``what`` needs one."""
    project = checkout()
    if project is None:
        raise NetconformError(f"{what} runs from a netconform checkout (it needs the project's files: "
                              f"pyproject.toml, suites/, the Vagrantfile); this is an installed copy in {PACKAGE}")
    return project


def suites_folder(what: str) -> str:
    """The suites: the installed ``netconform_suites`` package, else the checkout's suites/."""
    import importlib.util
    try:
        found = importlib.util.find_spec("netconform_suites")
    except (ImportError, ValueError):
        found = None
    if found is not None and found.submodule_search_locations:
        return list(found.submodule_search_locations)[0]
    return os.path.join(require_checkout(what), "suites")
