"""Team-mode speed (tiny params, fresh temp copies of the project):

1. 4 tiny experiments through the sweep's DVC queue with `-j 2` vs the same 4 one after
   another (`dvc exp run`), and the overhead per experiment beyond its stages' own time
   (wall x parallel jobs - sum of the stages' "done in" seconds, per experiment);
2. one training run logged with its model to the Postgres-backed team server vs the
   local SQLite store (the train stage's wall time, second run of each, so neither pays
   a fresh store's migrations).

    python bench/team.py      # inside the venv (make bench-team); prints a Markdown table
"""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

# The repo root instead of bench/ (whose queue.py would shadow the stdlib `queue`).
sys.path[0] = str(Path(__file__).resolve().parents[1])
from crypto_forecast.team import server as team  # noqa: E402
from tests.helpers import new_project, project_env  # noqa: E402

SEEDS = (1, 2, 3, 4)
DONE = re.compile(r"stages\.\w+ INFO done in ([0-9.]+) s")


def sh(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> str:
    done = subprocess.run(cmd, cwd=cwd, env=env or project_env(cwd), capture_output=True, text=True)
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return done.stdout + done.stderr


def stage_seconds(text: str) -> float:
    return sum(float(s) for s in DONE.findall(text))


def sequential(work: Path) -> tuple[float, float]:
    t0, stages = time.perf_counter(), 0.0
    for seed in SEEDS:
        stages += stage_seconds(sh(["dvc", "exp", "run", "-n", f"seq-{seed}", "-S",
                                    f"train.seed={seed}"], work))
    return time.perf_counter() - t0, stages


def queued(work: Path, jobs: int) -> tuple[float, float]:
    t0 = time.perf_counter()
    out = sh([sys.executable, "-m", "crypto_forecast.team.sweep", "--grid",
              "train.seed=" + ",".join(map(str, SEEDS)), "-j", str(jobs), "--no-push",
              "--name", "q"], work)
    wall = time.perf_counter() - t0
    names = [line for line in out.splitlines() if line.startswith("q-")]
    stages = sum(stage_seconds(sh(["dvc", "queue", "logs", n], work)) for n in names)
    return wall, stages


def train_seconds(work: Path, env: dict[str, str]) -> float:
    sh(["python", "-m", "stages.train"], work, env)  # first run: store/experiment creation
    t0 = time.perf_counter()
    sh(["python", "-m", "stages.train"], work, env)
    return time.perf_counter() - t0


class Rows(list[tuple[str, str, str]]):
    """Table rows, each also printed as it is measured (a late failure keeps the rest)."""

    def __iadd__(self, new: object) -> Rows:  # type: ignore[override,misc]
        for row in new:  # type: ignore[attr-defined]
            print("  " + " | ".join(row), flush=True)
            self.append(row)
        return self


def main() -> None:
    rows = Rows()
    with tempfile.TemporaryDirectory(dir="/tmp") as tmp:
        base = Path(tmp)
        base.chmod(0o711)
        seq_wall, seq_stages = sequential(new_project(base / "seq"))
        q_wall, q_stages = queued(new_project(base / "queue"), jobs=2)
        n = len(SEEDS)
        rows += [
            ("4 tiny experiments one after another (dvc exp run)", f"{seq_wall:.1f} s", ""),
            ("4 tiny experiments, sweep queue -j 2", f"{q_wall:.1f} s",
             f"{q_wall / seq_wall:.2f}x (target <= 0.6x)"),
            ("overhead per experiment, sequential", f"{(seq_wall - seq_stages) / n:.1f} s", ""),
            ("overhead per queued experiment (-j 2)", f"{(2 * q_wall - q_stages) / n:.1f} s",
             "target <= 3 s"),
        ]
        work = new_project(base / "log")
        for stage in ("download", "preprocess"):
            sh(["python", "-m", f"stages.{stage}"], work)
        local = train_seconds(work, project_env(work))
        srv = team.start(base / "team", mlflow_port=team.free_port())
        try:
            env = {**project_env(work), "MLFLOW_TRACKING_URI": srv.tracking_uri}
            remote = train_seconds(work, env)
        finally:
            team.stop(base / "team")
            shutil.rmtree(base / "team", ignore_errors=True)
        rows += [("train stage with model logged, local SQLite", f"{local:.1f} s", ""),
                 ("train stage with model logged, Postgres team server", f"{remote:.1f} s",
                  f"{remote / local:.2f}x (target <= 1.5x)")]
    print("| figure | measured | ratio / target |\n|---|---|---|")
    for row in rows:
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
