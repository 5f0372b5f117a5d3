"""Time two experiments queued with `dvc queue start -j 2` against the same two run one
after the other, each in a fresh temp copy of the project (tiny params, temp MLflow store
at the copy's root), and check that both ways give identical metrics.

    python bench/queued_experiments.py      # inside the venv; prints the timings as JSON
"""

from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests.helpers import GIT_ENV, ROOT, TINY_PARAMS, project_env, tracked_files, write_params

log = logging.getLogger("measure_queue")
EXPERIMENTS = {"exp-units32": ["-S", "train.units=[32,32]"], "exp-epochs3": ["-S", "train.epochs=3"]}


def make_copy(where: Path) -> Path:
    work = where / "project"
    for rel in tracked_files():
        (work / rel).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, work / rel)
    write_params(work, {**TINY_PARAMS, "train": {**TINY_PARAMS["train"], "epochs": 2}})
    env = {**project_env(work), **GIT_ENV}
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "init"]):
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    return work


def sh(cmd: list[str], cwd: Path) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=project_env(cwd), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


def exp_metrics(cwd: Path) -> dict[str, Any]:
    shown = json.loads(sh(["dvc", "exp", "show", "--json"], cwd))
    out: dict[str, Any] = {}
    for commit in shown:
        for exp in commit.get("experiments") or []:
            for rev in exp.get("revs", []):
                name = rev.get("name")
                if name in EXPERIMENTS:
                    out[name] = rev["data"]["metrics"]["reports/metrics.json"]["data"]
    return out


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    with tempfile.TemporaryDirectory() as tmp:
        seq = make_copy(Path(tmp) / "seq")
        queue = make_copy(Path(tmp) / "queue")
        t0 = time.perf_counter()
        for name, args in EXPERIMENTS.items():
            sh(["dvc", "exp", "run", "-n", name, *args], seq)
        sequential_s = time.perf_counter() - t0
        log.info("sequential: %.1f s", sequential_s)

        for name, args in EXPERIMENTS.items():
            sh(["dvc", "exp", "run", "--queue", "-n", name, *args], queue)
        t0 = time.perf_counter()
        sh(["dvc", "queue", "start", "-j", "2"], queue)
        while any(w in sh(["dvc", "queue", "status"], queue) for w in ("Queued", "Running")):
            time.sleep(2)
        queued_s = time.perf_counter() - t0
        log.info("queue -j 2: %.1f s", queued_s)
        failed = sh(["dvc", "queue", "status"], queue)

        a, b = exp_metrics(seq), exp_metrics(queue)
        identical = a == b and set(a) == set(EXPERIMENTS)
        report = {"sequential_s": round(sequential_s, 1), "queue_j2_s": round(queued_s, 1),
                  "ratio_queue_over_sequential": round(queued_s / sequential_s, 2),
                  "queue_status": failed.strip().splitlines(),
                  "metrics_identical_queue_vs_sequential": identical,
                  "rmse_h1": {k: v["rmse_h1"] for k, v in b.items()}}
        sys.stdout.write(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
