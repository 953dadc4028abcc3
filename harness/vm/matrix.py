"""The kernel matrix: the suites in each offline box in turn, the cells' results labelled and merged.

``python -m harness matrix [--boxes ...] [-- <pytest args>]`` (``make matrix``): for each box
(one Debian release: its kernel and its builds of the implementations, harness/vm/box.py) the
driver brings the VM up, runs pytest there (the installed builds are the release's), brings the
results back into ``reports/matrix/BOX`` and destroys the VM. Each result is then labelled with
the cell it ran in (``kernel``: ``uname -r`` in the VM; ``builds``: the implementations' Debian versions
the VM's dpkg names; ``release``; ``vm``), each JUnit suite
gets the same as properties, and every cell's Allure results are copied into one directory,
``reports/matrix/allure-results``, for one report and the terminal view
(``harness.evidence.matrix.kernel_matrix_text``).

Cells run one after another: each VM takes both cores under TCG. A cell that cannot start is
one line in the view, and the others still run.
"""
from __future__ import annotations

import glob
import os
import shutil
from dataclasses import dataclass, field

from harness.errors import VmError
from harness.evidence.cells import builds_of, label_results  # noqa: F401 (the matrix's labels are the merge's)
from harness.vm import driver

DEFAULT_BOXES = ("bullseye", "bookworm", "trixie", "forky")
# The default run, chosen by measurement under TCG on 2 shared cores (bookworm's cell, the README's
# kernel matrix section): every document suite (194 tests, about 200 s, the kernel-gated vlan and
# ipvlan among them) and the CNI datapath suite for two profiles of the release's own plugin build
# (ipvlan-l2: the kernel-gated plugin, about 50 s; bridge-portmap: bridge, host-local and portmap's
# iptables, the commonest chain). Left out: netavark's datapath (346 s for 18 tests: its every
# call is slow under TCG), the other CNI profiles and the CNI spec suite (720 tests); ask for them
# after "--". The CNI protocol suites that judge plugin binaries alone, with no kernel state of their
# own to compare (the faulty requests, CNI_ARGS and args, the IPAM, STATUS, delegation, chaining, dhcp)
# are left out with test_spec.py (with them and the suites added beside them, the four cells' test runs took
# 625-959 s, against 200-357 s before); the kernel-observed ones (attachments, CHECK after a removal,
# capabilities, switching, MTU) stay.
PROTOCOL_ONLY = ("test_spec.py", "test_spec_errors.py", "test_spec_args.py", "test_spec_ipam.py", "test_spec_status.py",
                 "test_spec_delegation.py", "test_spec_chain.py", "test_spec_dhcp.py")
DEFAULT_ARGS = ["suites/", *(f"--ignore=suites/cni/{name}" for name in PROTOCOL_ONLY),
                "-k", "not test_datapath or ipvlan-l2 or bridge-portmap", "-rs", "--durations=20"]


@dataclass
class Cell:
    """One box's run: the driver's record, or the one line saying why it did not run."""
    box: str
    results: str
    record: driver.VmRun | None = None
    error: str | None = None
    labels: dict[str, str] = field(default_factory=dict)


def merge(cells: list[Cell], merged: str) -> None:
    """Every cell's Allure files in one directory (their names are UUIDs: nothing collides), and
    one environment.properties naming each cell's kernel."""
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    lines = []
    for cell in cells:
        source = os.path.join(cell.results, "allure-results")
        if cell.record is None or not os.path.isdir(source):
            continue
        for path in glob.glob(os.path.join(source, "*")):
            if os.path.basename(path) not in ("environment.properties", "categories.json"):
                shutil.copy2(path, merged)
        if os.path.exists(os.path.join(source, "categories.json")):
            shutil.copy2(os.path.join(source, "categories.json"), merged)
        lines += [f"{cell.box}.{name}={value}\n" for name, value in cell.labels.items()]
    with open(os.path.join(merged, "environment.properties"), "w", encoding="utf-8") as handle:
        handle.writelines(lines)


def run(boxes: list[str], pytest_args: list[str], project: str, root: str, out=None) -> list[Cell]:
    """Each box's cell in turn, then the merged results in ``root``/allure-results."""
    cells = []
    for box in boxes:
        cell = Cell(box, os.path.join(root, box))
        cells.append(cell)
        try:
            spec = driver.box_spec(box)
            cell.record = driver.run(box, pytest_args, project, results=cell.results, out=out)
        except VmError as exc:
            cell.error = str(exc)
            continue
        cell.labels = {"kernel": cell.record.kernel, "builds": builds_of(cell.results),
                       "release": spec.get("release", box), "vm": box}
        label_results(cell.results, cell.labels)
    merge(cells, os.path.join(root, "allure-results"))
    return cells
