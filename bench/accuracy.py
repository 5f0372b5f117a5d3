"""Accuracy benchmark: the whole pipeline on real saved prices, one table.

For each ticker CSV (default ../shared/data/{ETH,BTC}-USD.csv) and each
`preprocess.target` (price, log_return), copy the project into a temporary workspace,
set `download.source: csv` (all other params as in params.yaml, plus any `--set`), run
`dvc repro` there with MLflow in a temporary store, and read reports/metrics.json.
Prints one table (skill at h=1 and h=H, MASE, band coverage) and writes it as JSON.

    make bench-accuracy
    python bench/accuracy.py --tickers ETH-USD --targets log_return --set train.epochs=50
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from crypto_forecast.io.contracts import EvaluationReport  # noqa: E402
from tests.helpers import tracked_files  # noqa: E402  (one definition of a fresh clone's files)

DEFAULT_DATA = (ROOT / ".." / "shared" / "data").resolve()
GOAL = "skill h1 <= 1.00, MASE <= 1.0 at every horizon, 80% band coverage 75-85%"




def _set(params: dict[str, Any], assignment: str) -> None:
    key, _, raw = assignment.partition("=")
    section, _, name = key.partition(".")
    if not name or section not in params:
        raise SystemExit(f"--set {assignment}: expected section.key=value")
    params[section][name] = yaml.safe_load(raw)


def snapshot(dest: Path) -> None:
    """The project as a fresh clone would have it, copied once so every run uses the same code."""
    for rel in tracked_files():
        dst = dest / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)


def run_one(source: Path, csv: Path, ticker: str, target: str, overrides: list[str], keep: bool
            ) -> dict[str, Any]:
    """One cold `dvc repro` in a fresh workspace; returns the row for the table."""
    work = Path(tempfile.mkdtemp(prefix=f"bench-accuracy-{ticker}-{target}-"))
    try:
        shutil.copytree(source, work, dirs_exist_ok=True)
        params = yaml.safe_load((source / "params.yaml").read_text())
        params["download"].update({"ticker": ticker, "source": "csv", "csv_path": str(csv)})
        params["preprocess"]["target"] = target
        for assignment in overrides:
            _set(params, assignment)
        (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
        env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                    "MLFLOW_TRACKING_URI": f"sqlite:///{work / 'mlflow.db'}",
                    "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                    "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
        for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
            subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
        t0 = time.perf_counter()
        done = subprocess.run(["dvc", "repro"], cwd=work, env=env, capture_output=True, text=True)
        seconds = time.perf_counter() - t0
        if done.returncode != 0:
            tail = "\n".join((done.stdout + done.stderr).splitlines()[-15:])
            raise SystemExit(f"dvc repro failed for {ticker} {target} in {work}:\n{tail}")
        metrics = json.loads((work / "reports" / "metrics.json").read_text())
        evaluation = EvaluationReport.read(work / "reports" / "evaluation.json", "evaluate")
        info = json.loads((work / "models" / "train_info.json").read_text())
        with sqlite3.connect(work / "mlflow.db") as db:
            timing = dict(db.execute(
                "select key, value from latest_metrics where run_uuid=? and key in "
                "('backtest_seconds', 'train_seconds')",
                (info["run_id"],)).fetchall())
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    bt, steps = evaluation.backtest, evaluation.horizons
    horizon = bt.horizon
    mases = [s.lstm.mase or math.inf for s in steps]
    cover = {b.name: b.coverage for b in evaluation.bands}
    row = {
        "ticker": ticker, "target": target, "overrides": overrides,
        "test_period": evaluation.test_period.model_dump(), "origins": bt.origins,
        "horizon": horizon, "param_count": metrics["param_count"],
        "epochs_run": info.get("epochs_run"),
        "skill_h1": steps[0].skill_rmse, f"skill_h{horizon}": steps[-1].skill_rmse,
        "mase_h1": mases[0], f"mase_h{horizon}": mases[-1], "mase_max": max(mases),
        "persistence_mase_h1": steps[0].persistence.mase,
        "persistence_mase_max": max(s.persistence.mase or math.inf for s in steps),
        "coverage": cover, "seconds": round(seconds, 1), "timing": timing,
    }
    row["goal_met"] = bool(row["skill_h1"] <= 1.0 and row["mase_max"] <= 1.0
                           and 0.75 <= cover.get("80", 0.0) <= 0.85)
    return row


def table(rows: list[dict[str, Any]]) -> str:
    horizon = rows[0]["horizon"]
    head = (f"{'ticker':8} {'target':10} {'skill h1':>8} {f'skill h{horizon}':>9} {'MASE h1':>8} "
            f"{f'MASE h{horizon}':>8} {'MASE max':>8} {'naive MASE max':>14} {'cov 80%':>8} "
            f"{'cov 95%':>8} {'goal':>5} {'secs':>6}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(
            f"{r['ticker']:8} {r['target']:10} {r['skill_h1']:8.3f} {r[f'skill_h{horizon}']:9.3f} "
            f"{r['mase_h1']:8.3f} {r[f'mase_h{horizon}']:8.3f} {r['mase_max']:8.3f} "
            f"{r['persistence_mase_max']:14.3f} {r['coverage'].get('80', float('nan')) * 100:7.1f}% "
            f"{r['coverage'].get('95', float('nan')) * 100:7.1f}% {'yes' if r['goal_met'] else 'no':>5} "
            f"{r['seconds']:6.0f}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--tickers", nargs="+", default=["ETH-USD", "BTC-USD"])
    parser.add_argument("--targets", nargs="+", default=["price", "log_return"],
                        choices=["price", "log_return"])
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                        help="extra params override, e.g. --set train.epochs=50")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "accuracy.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspaces")
    args = parser.parse_args()

    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-accuracy-src-") as src:
        snapshot(Path(src))
        for ticker in args.tickers:
            csv = (args.data_dir / f"{ticker}.csv").resolve()
            if not csv.exists():
                raise SystemExit(f"{csv} not found — pass --data-dir with {ticker}.csv in it")
            for target in args.targets:
                print(f"running {ticker} target={target} {' '.join(args.set)}", file=sys.stderr,
                      flush=True)
                rows.append(run_one(Path(src), csv, ticker, target, args.set, args.keep))
                print(table(rows[-1:]).splitlines()[-1], file=sys.stderr, flush=True)
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps({"goal": GOAL, "rows": rows}, indent=2) + "\n")
    print(f"goal: {GOAL}")
    print(table(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"goal": GOAL, "rows": rows}, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
