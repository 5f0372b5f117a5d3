"""Accuracy benchmark: the whole pipeline on real saved prices, one table.

For each ticker CSV (default ../shared/data/{ETH,BTC}-USD.csv) and each
`preprocess.target` (price, log_return), copy the project into a temporary workspace,
set `download.source: csv` (all other params as in params.yaml, plus any `--set`), run
`dvc repro` there with MLflow in a temporary store, and read reports/metrics.json.
Prints the walk-forward table (skill per fold and pooled at h1, the middle horizon and
h=H; band coverage; interval skill vs the naive bands) as Markdown, what the gate served
and the cold `dvc repro` time, and writes them as JSON and Markdown.

    make bench-accuracy
    python bench/accuracy.py --tickers ETH-USD --targets log_return --set train.epochs=50
"""

from __future__ import annotations

import argparse
import json
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
        params["download"].update({"tickers": [ticker], "source": "csv", "csv_path": str(csv)})
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
        evaluation = EvaluationReport.read(work / "reports" / ticker / "evaluation.json", "evaluate")
        info = json.loads((work / "models" / ticker / "train_info.json").read_text())
        with sqlite3.connect(work / "mlflow.db") as db:
            timing = dict(db.execute(
                "select key, value from latest_metrics where run_uuid=? and key in "
                "('backtest_seconds', 'train_seconds')",
                (info["run_id"],)).fetchall())
    finally:
        if not keep:
            shutil.rmtree(work, ignore_errors=True)
    bt = evaluation.backtest
    horizon = bt.horizon
    shown = sorted({1, (horizon + 1) // 2, horizon})
    cover = {b.name: b.coverage for b in evaluation.bands}
    folds = [{"fold": f.name, "cutoff": f.cutoff, "last": f.last, "origins": f.origins,
              **{f"skill_h{h}": f.skill[h - 1] for h in shown},
              **{f"coverage_{k}": v for k, v in f.coverage.items()},
              **{f"interval_skill_{k}": v for k, v in f.interval_skill.items()}}
             for f in evaluation.folds]
    pooled = {"fold": "pooled", "cutoff": evaluation.test_period.first,
              "last": evaluation.test_period.last, "origins": bt.origins,
              **{f"skill_h{h}": evaluation.at(h).skill_rmse for h in shown},
              **{f"coverage_{k}": v for k, v in cover.items()},
              **{f"interval_skill_{k}": v for k, v in evaluation.headline.interval_skill.items()}}
    return {
        "ticker": ticker, "target": target, "overrides": overrides, "horizon": horizon,
        "shown": shown, "param_count": metrics["param_count"], "folds": [*folds, pooled],
        "interval_score": {b.name: b.interval_score for b in evaluation.bands},
        "naive_interval_score": {b.name: b.naive_interval_score for b in evaluation.bands},
        "served": evaluation.serving.served, "gate": evaluation.serving.reasons,
        "live": info["live"], "seconds": round(seconds, 1), "timing": timing,
    }


def _cell(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "–" if value is None else format(value * scale, spec)


def table(rows: list[dict[str, Any]]) -> str:
    """Markdown: a row per (ticker, target, fold) and pooled."""
    shown = rows[0]["shown"]
    head = ["ticker", "target", "fold", "from", "origins", *(f"skill h{h}" for h in shown),
            "cov 80%", "cov 95%", "interval skill 80%"]
    lines = ["| " + " | ".join(head) + " |", "|" + "|".join(["---"] * 3 + ["---:"] * (len(head) - 3)) + "|"]
    for r in rows:
        for f in r["folds"]:
            cells = [r["ticker"], r["target"], f["fold"], f["cutoff"], str(f["origins"]),
                     *(_cell(f[f"skill_h{h}"], ".3f") for h in shown),
                     _cell(f.get("coverage_80"), ".1f", 100), _cell(f.get("coverage_95"), ".1f", 100),
                     _cell(f.get("interval_skill_80"), ".3f")]
            if f["fold"] == "pooled":
                cells = [f"**{c}**" for c in cells]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary(rows: list[dict[str, Any]]) -> str:
    """One line per run: what the gate served and how long the cold `dvc repro` took."""
    return "\n".join(
        f"- {r['ticker']} {r['target']}: served {r['served']} ({'; '.join(r['gate'])}); cold "
        f"`dvc repro` {r['seconds']:.0f} s (train stage fitting {r['timing'].get('train_seconds', 0):.0f} s, "
        f"walk-forward scoring {r['timing'].get('backtest_seconds', 0):.2f} s); live model "
        f"trained to {r['live']['train_last']}, stopped early on {r['live']['val_first']} .. "
        f"{r['live']['val_last']}" for r in rows)


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
    print(table(rows))
    print()
    print(summary(rows))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(table(rows) + "\n\n" + summary(rows) + "\n")
    print(f"written to {args.out} and {args.out.with_suffix('.md')}")


if __name__ == "__main__":
    main()
