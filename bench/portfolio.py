"""Portfolio benchmark (issue 29), one run, on this machine.

In temporary copies of the project (as a fresh clone has it, the committed params, MLflow in
a temporary store) this measures, with every ticker reading the same closes (the offline ETH
sample, written to prices/<TICKER>.csv under each symbol: the same data and the same training
work per ticker, so a ratio above the ticker count is the pipeline's own overhead):

- a cold `dvc repro` with 1 ticker, and with 4 (same params, same data length each);
- adding a 5th ticker to the built 4-ticker workspace, against the 1-ticker cold time;
- a no-op `dvc repro` with 4 tickers (the best of 3);
- the summary stage over 20 tickers' cards (`python -m stages.summary`, as DVC runs it; the
  best of 3).

Targets: 4 tickers <= 4.2x one; the 5th <= 1.2x one ticker's cold time; no-op <= 2 s;
summary of 20 <= 3 s.

    make bench-portfolio
    python bench/portfolio.py --epochs 5 --out bench/results/portfolio.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
from tests.helpers import GIT_ENV, tracked_files  # noqa: E402

FOUR = ["ETH-USD", "BTC-USD", "SOL-USD", "BNB-USD"]
FIFTH = "ADA-USD"
TARGETS = {"four_vs_one": 4.2, "fifth_vs_one": 1.2, "noop_s": 2.0, "summary_20_s": 3.0}


def workspace(dest: Path, tickers: list[str], epochs: int | None) -> dict[str, str]:
    for rel in tracked_files():
        target = dest / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, target)
    set_tickers(dest, tickers, epochs)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update(GIT_ENV)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["MLFLOW_TRACKING_URI"] = f"sqlite:///{dest / 'mlflow.db'}"
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=dest, env=env, check=True, capture_output=True)
    return env


def set_tickers(dest: Path, tickers: list[str], epochs: int | None) -> None:
    import datetime as dt

    from crypto_forecast.data.synthetic import synthetic_prices

    params = yaml.safe_load((dest / "params.yaml").read_text())
    start, end = (dt.date.fromisoformat(params["download"][k]) for k in ("start", "end"))
    close = synthetic_prices(start, end)["Close"]
    text = "Date,Close\n" + "".join(f"{d:%Y-%m-%d},{c:.6f}\n" for d, c in close.items())
    for ticker in tickers:
        (dest / "prices" / f"{ticker}.csv").write_text(text)
    params["download"].update(tickers=tickers, source="csv", csv_dir="prices")
    if epochs is not None:
        params["train"]["epochs"] = epochs
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def repro(dest: Path, env: dict[str, str]) -> tuple[float, list[str]]:
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "dvc", "repro"], cwd=dest, env=env,
                          capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        raise SystemExit(f"dvc repro failed in {dest}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    ran = [line.split("'")[1] for line in done.stdout.splitlines()
           if line.startswith("Running stage '")]
    return seconds, ran


def summary_of_20(dest: Path, env: dict[str, str]) -> float:
    """The summary stage over 20 tickers: 20 copies of a built ticker's card."""
    cards = dest / "reports" / "cards"
    card = json.loads((cards / "ETH-USD.json").read_text())
    names = [f"T{i:02d}-USD" for i in range(20)]
    for name in names:
        (cards / f"{name}.json").write_text(json.dumps({**card, "ticker": name}))
    params = yaml.safe_load((dest / "params.yaml").read_text())
    params["download"]["tickers"] = names
    (dest / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    best = float("inf")
    for _ in range(3):
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "stages.summary"], cwd=dest, env=env, check=True,
                       capture_output=True)
        best = min(best, time.perf_counter() - t0)
    rows = json.loads((dest / "reports" / "summary.json").read_text())["tickers"]
    if [r["ticker"] for r in rows] != names:
        raise SystemExit(f"the summary has {[r['ticker'] for r in rows]}, not the 20 tickers")
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=None,
                        help="train.epochs (default: the committed params.yaml's)")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "portfolio.json")
    args = parser.parse_args()
    base = Path(tempfile.mkdtemp(prefix="bench-portfolio-"))
    try:
        print("cold dvc repro, 1 ticker ...", file=sys.stderr, flush=True)
        one_env = workspace(base / "one", FOUR[:1], args.epochs)
        one_s, _ = repro(base / "one", one_env)
        print(f"  {one_s:.1f} s\ncold dvc repro, 4 tickers ...", file=sys.stderr, flush=True)
        four_env = workspace(base / "four", FOUR, args.epochs)
        four_s, _ = repro(base / "four", four_env)
        print(f"  {four_s:.1f} s\nno-op dvc repro, 4 tickers ...", file=sys.stderr, flush=True)
        noop_s = min(repro(base / "four", four_env)[0] for _ in range(3))
        print(f"  {noop_s:.2f} s\nadding a 5th ticker ...", file=sys.stderr, flush=True)
        set_tickers(base / "four", [*FOUR, FIFTH], args.epochs)
        fifth_s, fifth_ran = repro(base / "four", four_env)
        print(f"  {fifth_s:.1f} s ({', '.join(fifth_ran)})\nsummary of 20 tickers ...",
              file=sys.stderr, flush=True)
        epochs = {t: json.loads((base / "four" / "models" / t / "train_info.json").read_text())[
            "epochs_run"] for t in [*FOUR, FIFTH]}
        summary_s = summary_of_20(base / "four", four_env)
    finally:
        shutil.rmtree(base, ignore_errors=True)
    result: dict[str, Any] = {
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()},
        "epochs": args.epochs or "params.yaml",
        "cold_one_s": round(one_s, 1), "cold_four_s": round(four_s, 1),
        "four_vs_one": round(four_s / one_s, 2),
        "fifth_s": round(fifth_s, 1), "fifth_vs_one": round(fifth_s / one_s, 2),
        "fifth_ran": fifth_ran, "noop_s": round(noop_s, 2), "summary_20_s": round(summary_s, 2),
        "live_model_epochs_run": epochs,
        "targets": TARGETS,
    }
    result["met"] = {
        "four_vs_one": result["four_vs_one"] <= TARGETS["four_vs_one"],
        "fifth_vs_one": result["fifth_vs_one"] <= TARGETS["fifth_vs_one"],
        "noop_s": result["noop_s"] <= TARGETS["noop_s"],
        "summary_20_s": result["summary_20_s"] <= TARGETS["summary_20_s"],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    rows = [("cold dvc repro, 1 ticker", f"{one_s:.1f} s", ""),
            ("cold dvc repro, 4 tickers", f"{four_s:.1f} s ({four_s / one_s:.2f}x)", "<= 4.2x"),
            ("adding a 5th ticker", f"{fifth_s:.1f} s ({fifth_s / one_s:.2f}x one)", "<= 1.2x"),
            ("no-op dvc repro, 4 tickers", f"{noop_s:.2f} s", "<= 2 s"),
            ("summary stage, 20 tickers", f"{summary_s:.2f} s", "<= 3 s")]
    print("| figure | measured | target |\n|---|---|---|")
    for row in rows:
        print(f"| {row[0]} | {row[1]} | {row[2]} |")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
