"""Train-stage benchmark: walk-forward folds + live model vs the single fit it replaced.

Runs `python -m stages.train` of two versions of the project on the same real closes, each
in its own temporary workspace (`download.source: csv`, MLflow in a temporary store,
`dvc repro preprocess` first, untimed), alternating, `--repeats` times:

- baseline: the train stage at `--baseline` (default 916793a, the last commit with one
  train/val/test split: one network);
- current: this working tree's (`preprocess.folds` walk-forward networks and the live
  model, fitted side by side, one process per core).

Both use the current defaults that both understand (`preprocess.target`, epochs, patience,
seed). Prints the wall time of each run, the medians and their ratio (target: ≤ 3× on 2
cores), and writes JSON. The machine is shared: compare the ratio, measured in one run.

    make bench-train
    python bench/train_speed.py --repeats 3 --csv ../shared/data/BTC-USD.csv
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from tests.helpers import tracked_files  # noqa: E402

DEFAULT_CSV = (ROOT / ".." / "shared" / "data" / "ETH-USD.csv").resolve()
ENV_KEYS = ("GIT_AUTHOR_NAME", "GIT_AUTHOR_EMAIL", "GIT_COMMITTER_NAME", "GIT_COMMITTER_EMAIL")


def workspace(dest: Path, csv: Path, commit: str | None) -> dict[str, str]:
    """A git-initialised copy of the project at `commit` (None: the working tree), set to
    read `csv`, preprocessed; returns the environment to run its stages in."""
    dest.mkdir(parents=True)
    if commit is None:
        for rel in tracked_files():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / rel, dest / rel)
    else:
        archive = subprocess.run(["git", "archive", commit], cwd=ROOT, check=True,
                                 capture_output=True).stdout
        subprocess.run(["tar", "-x", "-C", str(dest)], input=archive, check=True)
    current = yaml.safe_load((ROOT / "params.yaml").read_text())
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["download"].update({"source": "csv", "csv_path": str(csv),
                               "tickers": [csv.stem]})
    params["preprocess"]["target"] = current["preprocess"]["target"]
    for key in ("epochs", "patience", "seed", "batch_size", "learning_rate"):
        params["train"][key] = current["train"][key]
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "MLFLOW_TRACKING_URI": f"sqlite:///{dest / 'mlflow.db'}",
                **{k: "bench" for k in ENV_KEYS}})
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"],
                ["dvc", "repro", "preprocess"]):
        done = subprocess.run(cmd, cwd=dest, env=env, capture_output=True, text=True)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(cmd)} failed in {dest}:\n{done.stderr[-2000:]}")
    return env


def time_train(work: Path, env: dict[str, str]) -> dict[str, Any]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "stages.train"], cwd=work, env=env,
                          capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"stages.train failed in {work}:\n{done.stderr[-2000:]}")
    ticker = yaml.safe_load((work / "params.yaml").read_text())["download"]["tickers"][0]
    info = json.loads((work / "models" / ticker / "train_info.json").read_text())
    return {"wall_seconds": round(wall, 1), "fit_seconds": info.get("train_seconds"),
            "networks": 1 + len(info.get("folds", [])), "epochs_run": info.get("epochs_run")}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--baseline", default="916793a")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "train_speed.json")
    args = parser.parse_args()
    if not args.csv.exists():
        raise SystemExit(f"{args.csv} not found — pass --csv with a Yahoo-format CSV")
    runs: dict[str, list[dict[str, Any]]] = {"baseline": [], "current": []}
    with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
        envs = {side: workspace(Path(tmp) / side, args.csv.resolve(),
                                args.baseline if side == "baseline" else None)
                for side in runs}
        for i in range(args.repeats):
            for side in runs:
                row = time_train(Path(tmp) / side, envs[side])
                runs[side].append(row)
                print(f"run {i + 1}/{args.repeats} {side:8}: {row['wall_seconds']:6.1f} s wall, "
                      f"{row['networks']} network(s), fitting {row['fit_seconds']} s",
                      file=sys.stderr, flush=True)
    median = {side: statistics.median(r["wall_seconds"] for r in rows) for side, rows in runs.items()}
    ratio = median["current"] / median["baseline"]
    print(f"train stage, {args.csv.stem}, median of {args.repeats} (2 shared cores):")
    print(f"  baseline {args.baseline} (one network):      {median['baseline']:6.1f} s")
    print(f"  current (walk-forward folds + live):  {median['current']:6.1f} s "
          f"({runs['current'][0]['networks']} networks)")
    print(f"  ratio {ratio:.2f}x (target <= 3x): {'met' if ratio <= 3 else 'missed'}")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"csv": str(args.csv), "baseline": args.baseline,
                                    "runs": runs, "median": median, "ratio": ratio},
                                   indent=2) + "\n")


if __name__ == "__main__":
    main()
