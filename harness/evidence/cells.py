"""Cells' results labelled and merged into one: a matrix run's boxes here, or a CI matrix's jobs.

A cell is one run's results as the harness writes them: ``allure-results/`` (allure-pytest's
files and ``environment.properties``, written where the tests ran: its kernel and its builds),
``junit.xml`` and, from a VM, ``kernel``. ``python -m harness matrix`` writes one per box under its
results root; ``vm run`` writes one in reports/vm/NAME; a CI job uploads one of those.
``merge(dirs, out)`` takes any of them (a cell, a matrix root holding cells, or a bare Allure
results directory), labels each result with its cell (``kernel``, ``builds``, ``release``, ``vm``;
a label the result already has is kept), and writes ``out/allure-results`` (one report) and
``out/junit.xml`` (each cell's suites, with the labels as properties).
"""
from __future__ import annotations

import glob
import json
import os
import shutil
import xml.etree.ElementTree as ET

CELL_LABELS = ("kernel", "builds", "release", "vm")
NOT_COPIED = ("environment.properties", "categories.json")


def environment(allure_dir: str) -> dict[str, str]:
    """``environment.properties`` of one Allure results directory, as a dict (empty if none)."""
    found = {}
    try:
        with open(os.path.join(allure_dir, "environment.properties"), encoding="utf-8") as handle:
            for line in handle:
                key, _, value = line.strip().partition("=")
                found[key] = value
    except OSError:
        pass
    return found


def builds_of(results: str) -> str:
    """The cell's builds of the implementations, as the dpkg where it ran named them (environment.properties):
    ``cni-plugins 1.9.1+ds1-1, netavark 1.17.2-3``; a package that was not installed is none."""
    found = environment(os.path.join(results, "allure-results"))
    if not found:
        return "unknown"

    def version(key: str) -> str:
        value = found.get(key, "unknown")
        return "none" if value.startswith("dpkg-query") or value == "not installed" else value
    return f"cni-plugins {version('cni-plugins')}, netavark {version('netavark')}"


def labels_of(results: str) -> dict[str, str]:
    """The labels a cell's own files give it: its kernel (``kernel`` from the VM, else the one
    environment.properties names), its builds, and its VM and release when it ran in one."""
    env = environment(os.path.join(results, "allure-results"))
    kernel = env.get("vm.kernel") or env.get("kernel", "")
    try:
        with open(os.path.join(results, "kernel"), encoding="utf-8") as handle:
            kernel = handle.read().strip() or kernel
    except OSError:
        pass
    labels = {"kernel": kernel or "unknown", "builds": builds_of(results)}
    if env.get("vm"):
        labels["vm"] = env["vm"]
        labels["release"] = env.get("vm.box", env["vm"]).rpartition("/")[2]
    return labels


def label_results(results: str, labels: dict[str, str], keep_own: bool = False) -> int:
    """Add the cell's labels to every Allure result of ``results`` (and properties to its JUnit
    suites); with ``keep_own`` a label a result already has wins. Returns how many results there were."""
    count = 0
    for path in glob.glob(os.path.join(results, "allure-results", "*-result.json")):
        with open(path, encoding="utf-8") as handle:
            result = json.load(handle)
        own = {label.get("name") for label in result.get("labels", [])}
        adding = {name: value for name, value in labels.items() if not (keep_own and name in own)}
        kept = [label for label in result.get("labels", []) if label.get("name") not in adding]
        result["labels"] = kept + [{"name": name, "value": value} for name, value in adding.items()]
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(result, handle)
        count += 1
    junit = os.path.join(results, "junit.xml")
    if os.path.exists(junit):
        tree = ET.parse(junit)
        for suite in tree.getroot().iter("testsuite"):
            properties = suite.find("properties")
            if properties is None:
                properties = ET.Element("properties")
                suite.insert(0, properties)
            have = {prop.get("name") for prop in properties.iter("property")}
            for name, value in labels.items():
                if name not in have:
                    ET.SubElement(properties, "property", name=name, value=value)
        tree.write(junit, encoding="utf-8", xml_declaration=True)
    return count


def _has_results(allure_dir: str) -> bool:
    return bool(glob.glob(os.path.join(allure_dir, "*-result.json")))


def find_cells(dirs: list[str]) -> list[str]:
    """The cells in ``dirs``: a directory with ``allure-results/`` of its own is a cell unless it holds
    cells (a matrix root: its own allure-results is their copy); a bare results directory is one too."""
    cells = []
    for top in dirs:
        if not os.path.isdir(top):
            raise FileNotFoundError(f"{top}: no such directory")
        found = []
        for folder, subdirs, _ in os.walk(top):
            subdirs.sort()
            if _has_results(os.path.join(folder, "allure-results")):
                found.append(folder)
        inner = [cell for cell in found if cell != top]
        if inner:
            found = [cell for cell in inner if not any(cell != other and cell.startswith(other + os.sep)
                                                       for other in inner)]
        elif not found and _has_results(top):
            found = [top]
        if not found:
            raise FileNotFoundError(f"{top}: no Allure results (*-result.json) in it or under it")
        cells += found
    return cells


def merge(dirs: list[str], out: str) -> list[tuple[str, dict[str, str]]]:
    """Every cell of ``dirs`` labelled (a copy: the inputs are not changed) and merged into ``out``:
    ``allure-results`` (the files' names are UUIDs: nothing collides), ``junit.xml`` and one
    environment.properties naming each cell. Returns each cell's path and labels."""
    merged = os.path.join(out, "allure-results")
    shutil.rmtree(merged, ignore_errors=True)
    os.makedirs(merged)
    staging = os.path.join(out, ".cell")
    root = ET.Element("testsuites")
    cells, lines = [], []
    for number, cell in enumerate(find_cells(dirs)):
        bare = os.path.basename(cell) != "allure-results" and not os.path.isdir(os.path.join(cell, "allure-results"))
        source = cell if bare else os.path.join(cell, "allure-results")
        shutil.rmtree(staging, ignore_errors=True)
        shutil.copytree(source, os.path.join(staging, "allure-results"))
        if os.path.exists(os.path.join(cell, "junit.xml")):
            shutil.copy2(os.path.join(cell, "junit.xml"), staging)
        if os.path.exists(os.path.join(cell, "kernel")):
            shutil.copy2(os.path.join(cell, "kernel"), staging)
        labels = labels_of(staging)
        label_results(staging, labels, keep_own=True)
        for path in glob.glob(os.path.join(staging, "allure-results", "*")):
            if os.path.basename(path) not in NOT_COPIED:
                shutil.copy2(path, merged)
        categories = os.path.join(staging, "allure-results", "categories.json")
        if os.path.exists(categories):
            shutil.copy2(categories, merged)
        junit = os.path.join(staging, "junit.xml")
        if os.path.exists(junit):
            root.extend(ET.parse(junit).getroot().iter("testsuite"))
        name = labels.get("vm") or os.path.basename(os.path.abspath(cell))
        lines += [f"cell{number}.{key}={value}\n" for key, value in {"name": name, **labels}.items()]
        cells.append((cell, labels))
    shutil.rmtree(staging, ignore_errors=True)
    ET.ElementTree(root).write(os.path.join(out, "junit.xml"), encoding="utf-8", xml_declaration=True)
    with open(os.path.join(merged, "environment.properties"), "w", encoding="utf-8") as handle:
        handle.writelines(lines)
    return cells
