"""The kernel matrix's merge (issue 14): cells' results labelled, merged, differences listed first.

No VM here: two cells' results are written as allure-pytest and pytest's JUnit write them,
and the matrix run's own steps (label, merge, view) are checked on them. The real cells run
in tests/test_vm.py's VM job.
"""
import json
import os
import xml.etree.ElementTree as ET

import pytest

from harness.evidence import matrix as view
from harness.vm import box, matrix
from harness.vm.driver import VmRun, boxes


def write_cell(root, name, outcomes):
    """A cell's results: ``outcomes`` maps (fullName, area) -> status (or "deviation")."""
    results = root / name
    allure = results / "allure-results"
    allure.mkdir(parents=True)
    for number, ((full_name, area), status) in enumerate(outcomes.items()):
        labels = [{"name": "epic", "value": area}, {"name": "implementation", "value": f"cni-plugins ({name})"}]
        if status == "deviation":
            labels.append({"name": view.KNOWN_DEVIATION, "value": "a known one"})
            status = "unknown"
        (allure / f"{name}-{number}-result.json").write_text(json.dumps(
            {"name": full_name, "fullName": full_name, "status": status, "labels": labels}))
    (allure / "environment.properties").write_text("kernel=ignored\ncni-plugins=0.9.0-1+b6\n"
                                                   "netavark=dpkg-query: no packages found matching netavark\n")
    (results / "junit.xml").write_text('<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="1">'
                                       '<testcase classname="suites.test_vlan" name="test_x"/></testsuite></testsuites>')
    return matrix.Cell(name, str(results), record=VmRun(name, exit_code=0, kernel=f"{name}-kernel"))


def test_each_cells_results_carry_its_kernel_and_the_view_lists_differences_first(tmp_path):
    older = write_cell(tmp_path, "bullseye", {("suites.test_vlan#test_a", "VLAN"): "passed",
                                              ("suites.test_vlan#test_b", "VLAN"): "failed",
                                              ("suites.cni#test_c", "CNI"): "deviation"})
    newer = write_cell(tmp_path, "forky", {("suites.test_vlan#test_a", "VLAN"): "passed",
                                           ("suites.test_vlan#test_b", "VLAN"): "passed",
                                           ("suites.cni#test_c", "CNI"): "passed"})
    assert matrix.builds_of(older.results) == "cni-plugins 0.9.0-1+b6, netavark none"  # as the VM's dpkg says
    for cell in (older, newer):
        cell.labels = {"kernel": cell.record.kernel, "release": cell.box, "vm": cell.box}
        assert matrix.label_results(cell.results, cell.labels) == 3
    properties = {p.get("name"): p.get("value") for p in
                  ET.parse(os.path.join(older.results, "junit.xml")).getroot().iter("property")}
    assert properties == {"kernel": "bullseye-kernel", "release": "bullseye", "vm": "bullseye"}

    merged = tmp_path / "allure-results"
    matrix.merge([older, newer, matrix.Cell("trixie", str(tmp_path / "trixie"), error="vagrant up failed")],
                 str(merged))
    assert len(list(merged.glob("*-result.json"))) == 6
    assert (merged / "environment.properties").read_text().splitlines() == [
        "bullseye.kernel=bullseye-kernel", "bullseye.release=bullseye", "bullseye.vm=bullseye",
        "forky.kernel=forky-kernel", "forky.release=forky", "forky.vm=forky"]

    table = view.matrix(str(merged), ("kernel", "epic"))
    assert table["bullseye-kernel | VLAN"] == {"passed": 1, "failed": 1}
    assert table["bullseye-kernel | CNI"] == {"deviation": 1}
    assert table["forky-kernel | CNI"] == {"passed": 1}
    differing = view.differences(str(merged), "kernel")
    assert differing == {
        "suites.cni#test_c": {"bullseye-kernel": "deviation", "forky-kernel": "passed"},
        "suites.test_vlan#test_b": {"bullseye-kernel": "failed", "forky-kernel": "passed"},
    }
    text = view.kernel_matrix_text(str(merged))
    assert text.startswith("2 tests whose outcome differs between kernels:"), text
    assert text.index("suites.test_vlan#test_b") < text.index("kernel | area")


def test_a_test_one_kernel_did_not_run_is_a_difference_and_equal_outcomes_are_none(tmp_path):
    one = write_cell(tmp_path, "a", {("t#only_here", "x"): "passed", ("t#both", "x"): "skipped"})
    two = write_cell(tmp_path, "b", {("t#both", "x"): "skipped"})
    for cell in (one, two):
        matrix.label_results(cell.results, {"kernel": cell.box})
    matrix.merge([one, two], str(tmp_path / "merged"))
    assert view.differences(str(tmp_path / "merged")) == {"t#only_here": {"a": "passed", "b": "not run"}}


def test_every_offline_box_names_a_release_of_the_builder_and_debian12_is_bookworm():
    offline = {name: spec for name, spec in boxes().items() if spec.get("offline")}
    assert set(matrix.DEFAULT_BOXES) <= set(offline)
    for name, spec in offline.items():
        release = box.release(spec["release"])
        assert spec["box"] == release.box, name
    assert box.release("debian12") is box.RELEASES["bookworm"]
    with pytest.raises(Exception, match="'etch'.*known: bullseye"):
        box.release("etch")


def test_a_release_whose_python_is_too_old_gets_a_newer_userland_and_its_own_kernel_and_builds():
    bullseye = box.RELEASES["bullseye"]
    assert bullseye.userland == "bookworm" and "linux-image-amd64" in bullseye.foreign
    assert "linux-image-amd64" not in bullseye.packages and "containernetworking-plugins" not in bullseye.packages
    assert "netavark" not in bullseye.foreign  # bullseye has none: the box carries none
    assert "Python 3.9" in bullseye.about
    for name in ("bookworm", "trixie", "forky"):
        own = box.RELEASES[name]
        assert own.foreign == () and {"linux-image-amd64", "netavark"} <= set(own.packages), name


def test_vm_clean_removes_only_what_this_checkouts_inputs_no_longer_make(tmp_path, monkeypatch):
    from harness.vm import cache
    project = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    monkeypatch.setattr(box, "CACHE", str(tmp_path))
    boxes_dir, vagrant_boxes = tmp_path / "boxes", tmp_path / "vagrant.d" / "boxes"
    boxes_dir.mkdir()
    (tmp_path / "debs").mkdir()
    forky = box.RELEASES["forky"]
    current = boxes_dir / f"netconform-forky-{box.box_key(project, forky)}.box"
    old = [boxes_dir / "netconform-forky-000000000000.box", boxes_dir / "netconform-debian12-ead7ebbbca21.box"]
    for path in (current, *old):
        path.write_bytes(b"x" * 1024)
    for release, key in (("forky", box.box_key(project, forky)), ("trixie", "000000000000")):
        added = vagrant_boxes / f"netconform-VAGRANTSLASH-{release}" / "0" / "libvirt"
        added.mkdir(parents=True)
        (added / "netconform-box-key").write_text(key)
    removed = [path for path, _ in cache.clean(project)]
    assert removed == [str(old[1]), str(old[0]), str(vagrant_boxes / "netconform-VAGRANTSLASH-trixie")]
    assert current.exists() and (vagrant_boxes / "netconform-VAGRANTSLASH-forky").exists()
    assert cache.clean(project) == []  # nothing stale is left
    everything = [path for path, _ in cache.clean(project, everything=True)]
    assert everything == [str(current), str(vagrant_boxes / "netconform-VAGRANTSLASH-forky"), str(tmp_path / "debs")]


def ci_cell(artifacts, job, box, kernel, outcomes, implementation="cni:bridge"):
    """A CI job's artifact: the matrix root it uploaded (its cell BOX, unlabelled as `vm run` leaves
    it, and the root's merged copy of it, which the merge must not count twice)."""
    cell = artifacts / job / box
    allure = cell / "allure-results"
    allure.mkdir(parents=True)
    for number, (full_name, status) in enumerate(outcomes.items()):
        labels = [{"name": "epic", "value": "CNI datapath"}, {"name": "implementation", "value": implementation}]
        (allure / f"{job}-{number}-result.json").write_text(json.dumps(
            {"name": full_name, "fullName": full_name, "status": status, "labels": labels}))
    (allure / "environment.properties").write_text(f"kernel={kernel}\ncni-plugins=1.1.1\nnetavark=1.4.0\n"
                                                   f"vm={box}\nvm.box=netconform/{box}\nvm.kernel={kernel}\n")
    (cell / "kernel").write_text(kernel + "\n")
    (cell / "junit.xml").write_text(f'<?xml version="1.0"?><testsuites><testsuite name="pytest" tests="{len(outcomes)}">'
                                    '<testcase classname="suites.cni" name="t"/></testsuite></testsuites>')
    import shutil
    shutil.copytree(allure, artifacts / job / "allure-results")
    return cell


def test_report_merges_ci_cells_labels_them_from_their_own_files_and_lists_differences_first(tmp_path, capsys):
    from harness.cli import main
    artifacts = tmp_path / "artifacts"
    bookworm = ci_cell(artifacts, "cell-bookworm-cni", "bookworm", "6.1.0-50-amd64",
                       {"suites.cni#test_a": "passed", "suites.cni#test_b": "failed"})
    ci_cell(artifacts, "cell-forky-cni", "forky", "7.2.12", {"suites.cni#test_a": "passed", "suites.cni#test_b": "passed"})
    # Another implementation's cell ran other tests: they are not "not run" in the cni cells.
    ci_cell(artifacts, "cell-forky-netavark", "forky", "7.2.12", {"suites.cni#test_n": "skipped"},
            implementation="netavark:netavark-portmap")
    before = (bookworm / "allure-results" / "cell-bookworm-cni-0-result.json").read_text()
    merged = tmp_path / "merged"
    assert main(["report", "--results", *sorted(str(p) for p in artifacts.iterdir()), "--merged", str(merged),
                 "--html", str(tmp_path / "html"), "--tools", str(tmp_path / "no-tools")]) == 0
    out = capsys.readouterr().out
    assert "merged 3 cells" in out and "no HTML report: Allure 3 is not installed" in out, out
    view_text = out.split("cells into", 1)[1]
    assert view_text.split("\n\n", 1)[1].startswith("1 tests whose outcome differs between kernels or builds:"), out
    assert "suites.cni#test_b" in out and "suites.cni#test_n" not in out.split("kernel | area")[0], out
    assert "6.1.0-50-amd64 | CNI datapath" in out and out.index("suites.cni#test_b") < out.index("kernel | area")
    assert len(list((merged / "allure-results").glob("*-result.json"))) == 5  # the roots' copies not counted
    table = view.matrix(str(merged / "allure-results"), ("release", "kernel"))
    assert table == {"bookworm | 6.1.0-50-amd64": {"passed": 1, "failed": 1},
                     "forky | 7.2.12": {"passed": 2, "skipped": 1}}
    suites = ET.parse(merged / "junit.xml").getroot().findall("testsuite")
    assert [{p.get("name"): p.get("value") for p in suite.iter("property")}["kernel"] for suite in suites] == [
        "6.1.0-50-amd64", "7.2.12", "7.2.12"]
    assert (bookworm / "allure-results" / "cell-bookworm-cni-0-result.json").read_text() == before  # inputs unchanged


def test_report_of_a_directory_with_no_results_is_one_line(tmp_path):
    from harness.cli import main
    (tmp_path / "empty").mkdir()
    assert main(["report", "--results", str(tmp_path / "empty"), str(tmp_path / "empty"),
                 "--merged", str(tmp_path / "m")]) == 2


def test_vm_clean_dry_run_names_what_clean_would_remove_and_removes_nothing(tmp_path, monkeypatch, capsys):
    from harness.cli import main
    monkeypatch.setattr(box, "CACHE", str(tmp_path))
    (tmp_path / "boxes").mkdir()
    old = tmp_path / "boxes" / "netconform-forky-000000000000.box"
    old.write_bytes(b"x" * 2**20)
    assert main(["vm", "clean", "--dry-run"]) == 0
    assert capsys.readouterr().out == (f"would remove {old} (1 MiB)\n"
                                       "netconform: vm clean --dry-run: 1 to remove, 0.0 GiB\n")
    assert old.exists()
    assert main(["vm", "clean"]) == 0
    assert f"removed {old} (1 MiB)" in capsys.readouterr().out and not old.exists()
