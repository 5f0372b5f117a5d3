"""Recipe benchmark: which forecasting recipe should the pipeline default to, walk-forward.

On real daily closes (ETH-USD and BTC-USD, Yahoo-format CSVs) and in this process (no DVC,
no MLflow), every recipe below is trained at every walk-forward cut-off of
`crypto_forecast.data.folds.plan_folds` (window 60, val_fraction 0.1, test_fraction 0.2;
6 folds for the study, 4 folds reported beside it) with the pipeline's own
`fit_network` (the lecture's LSTM 50 → LSTM 50 → Dense 1, early stopping on the last
validation days before the cut-off) and scored 1..10 days ahead, recursively, from every
origin of its fold (`Fold.score_origins()`; targets may run past the next cut-off, never past
the data), on the scaler fitted on that fold's training days only.

Measured, per ticker, per fold and pooled over the folds: skill = RMSE(recipe) /
RMSE(persistence) on the same (origin, horizon) pairs (below 1 beats persistence), at h=1,
h=5, h=10 and averaged over h=1..10 (the promotion gate's `skill_mean`), for

1. `price` target, seed 42 (the lecture's recipe, the pipeline's default today);
2. `log_return` target, seeds 42, 43, 44, each and the mean of their skills;
3. `log_return` ensemble: the mean of seeds 42..46's price forecasts;
4. shrinkage toward persistence, `w * lstm + (1 - w) * persistence`, one `w` per horizon
   fitted by least squares on the fold's validation origins (targets in [train_end, cutoff)),
   clipped to [0, 1], for log_return seed 42 and the ensemble (the weights are reported);
5. the live-model question: (a) the fold model as trained (early-stopped on the last
   validation days) vs (b) refitted on every day before the cut-off (train + validation)
   for exactly the best epoch count (a) chose, same seed, same scaler, scored on the same
   origins; for log_return seed 42 and price seed 42;
6. the drift baseline (training days' mean daily change), for reference.

A Diebold–Mariano test (squared-error differences vs persistence, Newey–West variance with
lag h-1, normal two-sided p-value) on the pooled origins at h=1 (and h=10) says whether any
difference is more than noise.

Models are trained in 2 `spawn` worker processes (Keras is imported only there); each returns
its price forecasts as NumPy arrays. A cut-off shared by the 6- and 4-fold plans is trained
once. Progress (one line per finished fit) goes to stderr; the Markdown tables go to stdout
and to bench/results/recipes.md, the raw numbers to bench/results/recipes.json.

    make bench-recipes                                   # ~20-30 min on 2 cores
    python bench/recipes.py --data /work/shared/data     # the same, data elsewhere
    python bench/recipes.py --quick                      # smoke test: ETH, 2 folds, 3 epochs
    python bench/recipes.py --folds 4 --also-folds 0     # a shorter study
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import datetime as dt
import importlib.metadata
import json
import math
import multiprocessing
import os
import platform
import shlex
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from crypto_forecast.data.folds import Fold, fold_arrays, plan_folds  # noqa: E402
from crypto_forecast.data.prices import read_price_csv, validate_prices  # noqa: E402
from crypto_forecast.data.series import Target, model_series  # noqa: E402
from crypto_forecast.errors import PipelineError  # noqa: E402
from crypto_forecast.evaluation import baselines  # noqa: E402
from crypto_forecast.evaluation.backtest import actual_matrix  # noqa: E402
from crypto_forecast.params import parse_params  # noqa: E402

DEFAULT_DATA = (ROOT / ".." / "shared" / "data").resolve()
DEFAULT_OUT = ROOT / "bench" / "results" / "recipes"
TICKERS = ("ETH-USD", "BTC-USD")
WINDOW, VAL_FRACTION, TEST_FRACTION, HORIZON = 60, 0.1, 0.2, 10
SHOWN_H = (1, 5, 10)
FIRST_SEED = 42
SINGLE_SEEDS = (42, 43, 44)
SIGNIFICANCE = 0.05
# A fold skill above this at any horizon, or a non-finite forecast, is flagged in the verdict.
DIVERGED_SKILL = 3.0


# --------------------------------------------------------------------------- jobs (workers)
@dataclass(frozen=True)
class Job:
    """One training: a recipe's model at one cut-off, and the origins to forecast from."""

    ticker: str
    target: Target
    seed: int
    train_end: int
    cutoff: int
    origins: np.ndarray = field(compare=False, repr=False)
    close: np.ndarray = field(compare=False, repr=False)
    params: dict[str, Any] = field(compare=False, repr=False)
    refit_epochs: int | None = None  # None: (a) early-stopped; n: (b) n epochs on train + val

    @property
    def key(self) -> tuple[str, str, int, int, str]:
        return self.ticker, self.target, self.seed, self.cutoff, "a" if self.refit_epochs is None else "b"


@dataclass(frozen=True)
class FitResult:
    key: tuple[str, str, int, int, str]
    origins: np.ndarray
    forecasts: np.ndarray  # (n_origins, HORIZON), prices
    epochs_run: int
    best_epoch: int
    best_val_loss: float
    seconds: float


def train_and_forecast(job: Job) -> FitResult:
    """Worker: fit the job's network with `fit_network`, reload it from the saved `.keras`
    with `load_network` and forecast every origin recursively. Keras is imported here only."""
    t0 = time.perf_counter()
    from crypto_forecast.evaluation.backtest import model_forecasts
    from crypto_forecast.model.numpy_net import load_network
    from crypto_forecast.model.training import fit_network

    raw = json.loads(json.dumps(job.params))
    raw["preprocess"]["target"] = job.target
    raw["train"]["seed"] = job.seed
    callbacks: list[Any] = []
    fold = Fold(name="bench", train_end=job.train_end, cutoff=job.cutoff, score_stop=job.cutoff)
    scaler, arrays = fold_arrays(job.close, fold, window=WINDOW, target=job.target)
    if job.refit_epochs is not None:
        # (b): every day before the cut-off trains, for exactly (a)'s best epoch count. The
        # validation windows are only monitored (patience = epochs: it never stops early), and
        # the last epoch's weights are kept, not the "best" by a loss they were trained on.
        raw["train"]["epochs"] = raw["train"]["patience"] = job.refit_epochs
        arrays = {"x_train": np.concatenate([arrays["x_train"], arrays["x_val"]]),
                  "y_train": np.concatenate([arrays["y_train"], arrays["y_val"]]),
                  "x_val": arrays["x_val"], "y_val": arrays["y_val"]}
        callbacks.append(_keep_last_epoch())
    params = parse_params(raw, "bench/recipes.py")
    model, history = fit_network(params, arrays, callbacks)
    with tempfile.TemporaryDirectory(prefix="bench-recipes-") as tmp:
        path = Path(tmp) / "model.keras"
        model.save(path)
        net = load_network(path)
    scaled = scaler.transform(model_series(job.close, job.target))
    forecasts = model_forecasts(net, scaled, job.close, job.origins, WINDOW, HORIZON, scaler, job.target)
    val_loss = np.asarray(history["val_loss"], dtype=np.float64)
    finite = np.isfinite(val_loss)
    best = int(np.argmin(np.where(finite, val_loss, np.inf))) if finite.any() else len(val_loss) - 1
    return FitResult(key=job.key, origins=job.origins, forecasts=forecasts,
                     epochs_run=len(val_loss), best_epoch=best + 1,
                     best_val_loss=float(val_loss[best]) if val_loss.size else math.nan,
                     seconds=time.perf_counter() - t0)


def _keep_last_epoch() -> Any:
    """A Keras callback that undoes EarlyStopping's restore: after training, the weights are
    those of the last epoch (it runs after fit_network's EarlyStopping)."""
    from crypto_forecast.model.backend import keras_module

    keras = keras_module()

    class KeepLastEpoch(keras.callbacks.Callback):  # type: ignore[misc, name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.last: list[Any] | None = None

        def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
            self.last = self.model.get_weights()

        def on_train_end(self, logs: dict[str, Any] | None = None) -> None:
            if self.last is not None:
                self.model.set_weights(self.last)

    return KeepLastEpoch()


# --------------------------------------------------------------------------- data and plans
def load_close(data: Path, ticker: str) -> tuple[np.ndarray, list[str]]:
    path = data / f"{ticker}.csv"
    frame = validate_prices(read_price_csv(path), str(path))
    dates = [d.strftime("%Y-%m-%d") for d in frame.index]
    return frame["Close"].to_numpy(dtype=np.float64), dates


def plans_for(n: int, fold_counts: Sequence[int], target: Target) -> dict[int, list[Fold]]:
    """Walk-forward folds (the live model dropped) for each fold count."""
    return {k: [f for f in plan_folds(n, window=WINDOW, val_fraction=VAL_FRACTION,
                                      test_fraction=TEST_FRACTION, folds=k, target=target)
                if not f.is_live] for k in fold_counts}


# --------------------------------------------------------------------------- scoring
def rmse_by_h(actual: np.ndarray, forecast: np.ndarray) -> np.ndarray:
    """RMSE per horizon over the rows whose target exists (NaN actuals dropped)."""
    err = (forecast - actual) ** 2
    ok = np.isfinite(actual)
    counts = ok.sum(axis=0)
    sums = np.where(ok, err, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sqrt(np.where(counts > 0, sums / counts, np.nan))


def skills(actual: np.ndarray, forecast: np.ndarray, persist: np.ndarray) -> np.ndarray:
    """RMSE(forecast) / RMSE(persistence) per horizon (NaN for a non-finite forecast)."""
    if not np.all(np.isfinite(forecast[np.isfinite(actual)])):
        return np.full(actual.shape[1], np.nan)
    return np.asarray(rmse_by_h(actual, forecast) / rmse_by_h(actual, persist))


def shrink_weights(actual: np.ndarray, lstm: np.ndarray, persist: np.ndarray) -> np.ndarray:
    """Per horizon, the least-squares `w` of `persist + w * (lstm - persist)`, clipped to [0, 1]."""
    gap, miss = lstm - persist, actual - persist
    ok = np.isfinite(actual) & np.isfinite(gap)
    num = np.where(ok, gap * miss, 0.0).sum(axis=0)
    den = np.where(ok, gap * gap, 0.0).sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        w = np.where(den > 0, num / den, 0.0)
    return np.asarray(np.clip(w, 0.0, 1.0))


def diebold_mariano(actual: np.ndarray, forecast: np.ndarray, persist: np.ndarray, h: int
                    ) -> dict[str, float | int | None]:
    """DM test of the squared-error difference (recipe - persistence) at horizon h, over the
    origins in time order, Newey–West (Bartlett) variance with lag h-1; normal two-sided p."""
    a, f, p = actual[:, h - 1], forecast[:, h - 1], persist[:, h - 1]
    ok = np.isfinite(a) & np.isfinite(f)
    d = (f[ok] - a[ok]) ** 2 - (p[ok] - a[ok]) ** 2
    n = d.size
    if n < 3:
        return {"n": n, "mean_diff": None, "stat": None, "p": None}
    dc = d - d.mean()
    var = float(dc @ dc) / n
    for k in range(1, min(h - 1, n - 1) + 1):
        var += 2 * (1 - k / h) * float(dc[k:] @ dc[:-k]) / n
    if not var > 0:
        var = float(dc @ dc) / n
    stat = float(d.mean() / math.sqrt(var / n)) if var > 0 else 0.0
    return {"n": n, "mean_diff": float(d.mean()), "stat": stat,
            "p": float(math.erfc(abs(stat) / math.sqrt(2)))}


@dataclass
class Recipe:
    name: str
    # Per fold name: forecasts on that fold's score origins, (n_origins, HORIZON).
    forecasts: dict[str, np.ndarray] = field(default_factory=dict)


def build_recipes(close: np.ndarray, folds: list[Fold], fits: dict[tuple[str, str, int, int, str], FitResult],
                  ticker: str, seeds: Sequence[int], do_price_refit: bool
                  ) -> tuple[list[Recipe], dict[str, dict[str, list[float]]], dict[str, dict[str, int]]]:
    """Every recipe's score-origin forecasts per fold, the fitted shrinkage weights and the
    best epochs (a) chose."""
    def pick(target: str, seed: int, fold: Fold, mode: str, origins: np.ndarray) -> np.ndarray:
        fit = fits[(ticker, target, seed, fold.cutoff, mode)]
        rows = np.searchsorted(fit.origins, origins)
        if not np.array_equal(fit.origins[rows], origins):
            raise AssertionError("a fit lacks some origins")
        return np.asarray(fit.forecasts[rows])

    ens_name = f"log_return ens{len(seeds)} (s{seeds[0]}..{seeds[-1]})"
    names = ["price s42", *(f"log_return s{s}" for s in SINGLE_SEEDS), ens_name,
             "shrink log_return s42", f"shrink ens{len(seeds)}", "price s42 refit (b)",
             "log_return s42 refit (b)", "drift"]
    recipes = {name: Recipe(name) for name in names}
    weights: dict[str, dict[str, list[float]]] = {"shrink log_return s42": {}, f"shrink ens{len(seeds)}": {}}
    best_epochs: dict[str, dict[str, int]] = {"price s42": {}, "log_return s42": {}}
    for fold in folds:
        score, val = fold.score_origins(), fold.val_origins()
        persist = baselines.persistence(close, score, HORIZON)
        recipes["price s42"].forecasts[fold.name] = pick("price", FIRST_SEED, fold, "a", score)
        for s in SINGLE_SEEDS:
            recipes[f"log_return s{s}"].forecasts[fold.name] = pick("log_return", s, fold, "a", score)
        ens = np.mean([pick("log_return", s, fold, "a", score) for s in seeds], axis=0)
        recipes[ens_name].forecasts[fold.name] = ens
        val_actual = actual_matrix(close, val, HORIZON, fold.cutoff)
        val_persist = baselines.persistence(close, val, HORIZON)
        for shrink, val_fc, fc in (
                ("shrink log_return s42", pick("log_return", FIRST_SEED, fold, "a", val),
                 recipes["log_return s42"].forecasts[fold.name]),
                (f"shrink ens{len(seeds)}",
                 np.mean([pick("log_return", s, fold, "a", val) for s in seeds], axis=0), ens)):
            w = shrink_weights(val_actual, val_fc, val_persist)
            weights[shrink][fold.name] = [float(x) for x in w]
            recipes[shrink].forecasts[fold.name] = persist + w[np.newaxis, :] * (fc - persist)
        if do_price_refit:
            recipes["price s42 refit (b)"].forecasts[fold.name] = pick("price", FIRST_SEED, fold, "b", score)
        recipes["log_return s42 refit (b)"].forecasts[fold.name] = pick(
            "log_return", FIRST_SEED, fold, "b", score)
        slope = baselines.train_drift(close[: fold.train_end])
        recipes["drift"].forecasts[fold.name] = baselines.drift(close, score, HORIZON, slope)
        for target in ("price", "log_return"):
            fit = fits[(ticker, target, FIRST_SEED, fold.cutoff, "a")]
            best_epochs[f"{target} s42"][fold.name] = fit.best_epoch
    kept = [r for r in recipes.values() if len(r.forecasts) == len(folds)]
    return kept, weights, best_epochs


def score_plan(close: np.ndarray, folds: list[Fold], recipes: list[Recipe]) -> dict[str, Any]:
    """Skills per recipe per fold and pooled (all folds' origins together), DM tests pooled."""
    n = close.size
    actual = {f.name: actual_matrix(close, f.score_origins(), HORIZON, n) for f in folds}
    persist = {f.name: baselines.persistence(close, f.score_origins(), HORIZON) for f in folds}
    pooled_actual = np.concatenate([actual[f.name] for f in folds])
    pooled_persist = np.concatenate([persist[f.name] for f in folds])
    out: dict[str, Any] = {}
    for r in recipes:
        per_fold = {f.name: skills(actual[f.name], r.forecasts[f.name], persist[f.name]) for f in folds}
        pooled_fc = np.concatenate([r.forecasts[f.name] for f in folds])
        pooled = skills(pooled_actual, pooled_fc, pooled_persist)
        out[r.name] = {
            "folds": {k: _skill_entry(v) for k, v in per_fold.items()},
            "pooled": _skill_entry(pooled),
            "dm_h1": diebold_mariano(pooled_actual, pooled_fc, pooled_persist, 1),
            f"dm_h{HORIZON}": diebold_mariano(pooled_actual, pooled_fc, pooled_persist, HORIZON),
        }
    return out


def _skill_entry(by_h: np.ndarray) -> dict[str, Any]:
    vals = [_num(x) for x in by_h]
    mean = float(np.mean(by_h)) if np.all(np.isfinite(by_h)) else None
    return {"by_h": vals, "mean": mean}


def _num(x: float) -> float | None:
    return round(float(x), 6) if math.isfinite(float(x)) else None


# --------------------------------------------------------------------------- running
def make_jobs(ticker: str, close: np.ndarray, plans: dict[int, list[Fold]], params: dict[str, Any],
              seeds: Sequence[int]) -> list[Job]:
    """The (a) trainings: one per target, seed and distinct cut-off of all plans."""
    by_cut: dict[int, tuple[int, int]] = {}
    for folds in plans.values():
        for f in folds:
            train_end, stop = by_cut.get(f.cutoff, (f.train_end, f.score_stop))
            if train_end != f.train_end:
                raise AssertionError("two plans share a cut-off but not its training days")
            by_cut[f.cutoff] = (train_end, max(stop, f.score_stop))
    jobs = []
    for cutoff, (train_end, stop) in sorted(by_cut.items(), reverse=True):
        origins = np.arange(train_end - 1, stop - 1)  # validation then scored origins
        for target, target_seeds in (("price", (FIRST_SEED,)), ("log_return", tuple(seeds))):
            for seed in target_seeds:
                jobs.append(Job(ticker, target, seed, train_end, cutoff, origins, close, params))  # type: ignore[arg-type]
    return jobs


def run_jobs(jobs: list[Job], workers: int, refit_targets: Iterable[str], t_start: float
             ) -> dict[tuple[str, str, int, int, str], FitResult]:
    """Train every job in `workers` spawn processes; each finished seed-42 (a) fit of a
    `refit_targets` target queues its (b) refit. One progress line per fit on stderr."""
    refit = set(refit_targets)
    total = len(jobs) + sum(1 for j in jobs if j.seed == FIRST_SEED and j.target in refit)
    done: dict[tuple[str, str, int, int, str], FitResult] = {}
    ctx = multiprocessing.get_context("spawn")
    with cf.ProcessPoolExecutor(max_workers=workers, mp_context=ctx) as pool:
        pending = {pool.submit(train_and_forecast, j): j for j in jobs}
        while pending:
            finished, _ = cf.wait(pending, return_when=cf.FIRST_COMPLETED)
            for fut in finished:
                job = pending.pop(fut)
                res = fut.result()
                done[res.key] = res
                what = (f"(a) {res.epochs_run} epochs, best {res.best_epoch}" if job.refit_epochs is None
                        else f"(b) refit, {res.epochs_run} epochs")
                print(f"[{len(done):3d}/{total}] {job.ticker} {job.target:<10} s{job.seed} "
                      f"cut-off day {job.cutoff} {what}: {res.seconds:5.1f} s; "
                      f"elapsed {_clock(time.perf_counter() - t_start)}", file=sys.stderr, flush=True)
                if job.refit_epochs is None and job.seed == FIRST_SEED and job.target in refit:
                    b = Job(job.ticker, job.target, job.seed, job.train_end, job.cutoff, job.origins,
                            job.close, job.params, refit_epochs=res.best_epoch)
                    pending[pool.submit(train_and_forecast, b)] = b
    return done


def _clock(seconds: float) -> str:
    return f"{int(seconds // 60)}m{int(seconds % 60):02d}s"


# --------------------------------------------------------------------------- report
def _f(x: float | None, digits: int = 3) -> str:
    return "—" if x is None else f"{x:.{digits}f}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    widths = [max(len(header[i]), *(len(r[i]) for r in rows)) for i in range(len(header))]
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) if i == 0 else c.rjust(w)
                                for i, (c, w) in enumerate(zip(cells, widths, strict=True))) + " |"
    sep = "|" + "|".join("-" * (w + 1) + ("-" if i == 0 else ":") for i, w in enumerate(widths)) + "|"
    return "\n".join([line(header), sep, *(line(r) for r in rows)])


def _avg(values: Iterable[float | None]) -> float | None:
    vals = list(values)
    return float(np.mean(vals)) if vals and all(v is not None for v in vals) else None  # type: ignore[arg-type]


def pooled_table(result: dict[str, Any], k: int, tickers: Sequence[str]) -> str:
    names = list(result["tickers"][tickers[0]]["plans"][str(k)]["skills"])
    header = ["recipe"]
    for t in tickers:
        short = t.split("-")[0]
        header += [f"{short} h{h}" for h in SHOWN_H] + [f"{short} mean"]
    if len(tickers) > 1:
        header.append("avg mean")
    rows = []
    for name in names:
        row, means = [name], []
        for t in tickers:
            pooled = result["tickers"][t]["plans"][str(k)]["skills"][name]["pooled"]
            row += [_f(pooled["by_h"][h - 1]) for h in SHOWN_H] + [_f(pooled["mean"])]
            means.append(pooled["mean"])
        if len(tickers) > 1:
            row.append(_f(_avg(means)))
        rows.append(row)
    # The mean of log_return s42..s44's skills (each seed's own skill, not an ensemble).
    row, means = [f"mean of s{SINGLE_SEEDS[0]}..s{SINGLE_SEEDS[-1]} skills"], []
    for t in tickers:
        sk = result["tickers"][t]["plans"][str(k)]["skills"]
        entries = [sk[f"log_return s{s}"]["pooled"] for s in SINGLE_SEEDS]
        row += [_f(_avg(e["by_h"][h - 1] for e in entries)) for h in SHOWN_H]
        row.append(_f(_avg(e["mean"] for e in entries)))
        means.append(_avg(e["mean"] for e in entries))
    if len(tickers) > 1:
        row.append(_f(_avg(means)))
    rows.insert(names.index(f"log_return s{SINGLE_SEEDS[-1]}") + 1, row)
    return _table(header, rows)


def fold_table(result: dict[str, Any], k: int, ticker: str) -> str:
    plan = result["tickers"][ticker]["plans"][str(k)]
    fold_names = [f["name"] for f in plan["folds"]]
    header = [f"{ticker}, h1 / mean"] + [f"{f['name'].replace('fold_', 'f')} {f['cutoff_date'][2:]}"
                                         for f in plan["folds"]]
    rows = []
    for name, entry in plan["skills"].items():
        rows.append([name] + [f"{_f(entry['folds'][fn]['by_h'][0], 2)} / {_f(entry['folds'][fn]['mean'], 2)}"
                              for fn in fold_names])
    return _table(header, rows)


def weights_table(result: dict[str, Any], k: int, tickers: Sequence[str]) -> str:
    header = ["ticker", "fold", "cut-off"]
    shrinks = list(result["tickers"][tickers[0]]["plans"][str(k)]["shrink_weights"])
    shown = "/".join(f"w{h}" for h in SHOWN_H)
    for s in shrinks:
        header.append(f"{s.replace('shrink ', '').replace('log_return ', '')} {shown}")
    header.append("best epoch price / log_return")
    rows = []
    for t in tickers:
        plan = result["tickers"][t]["plans"][str(k)]
        for f in plan["folds"]:
            row = [t, f["name"], f["cutoff_date"]]
            for s in shrinks:
                w = plan["shrink_weights"][s][f["name"]]
                row.append(" ".join(_f(w[h - 1], 2) for h in SHOWN_H))
            row.append(" / ".join(str(plan["best_epochs"][k2][f["name"]])
                                  for k2 in ("price s42", "log_return s42")))
            rows.append(row)
    return _table(header, rows)


def dm_table(result: dict[str, Any], k: int, tickers: Sequence[str]) -> str:
    header = ["recipe vs persistence (DM)"]
    for t in tickers:
        short = t.split("-")[0]
        header += [f"{short} h1 stat", f"{short} h1 p", f"{short} h{HORIZON} p"]
    rows = []
    for name in result["tickers"][tickers[0]]["plans"][str(k)]["skills"]:
        row = [name]
        for t in tickers:
            e = result["tickers"][t]["plans"][str(k)]["skills"][name]
            row += [_f(e["dm_h1"]["stat"], 2), _f(e["dm_h1"]["p"]), _f(e[f"dm_h{HORIZON}"]["p"])]
        rows.append(row)
    return _table(header, rows)


def verdict(result: dict[str, Any], tickers: Sequence[str], study: int, other: int | None) -> str:
    """A few sentences computed from the numbers."""
    def ranking(k: int) -> list[tuple[str, float]]:
        names = result["tickers"][tickers[0]]["plans"][str(k)]["skills"]
        scored = []
        for name in names:
            if name == "drift":
                continue
            m = _avg(result["tickers"][t]["plans"][str(k)]["skills"][name]["pooled"]["mean"] for t in tickers)
            if m is not None:
                scored.append((name, m))
        return sorted(scored, key=lambda x: x[1])

    def pooled_mean(k: int, name: str, t: str) -> float | None:
        v: float | None = result["tickers"][t]["plans"][str(k)]["skills"][name]["pooled"]["mean"]
        return v

    out = []
    rank = ranking(study)
    if not rank:
        return "No recipe produced finite forecasts on every fold: no verdict."
    best, best_m = rank[0]
    per_t = ", ".join(f"{t} {_f(pooled_mean(study, best, t))}" for t in tickers)
    beats = all((pooled_mean(study, best, t) or math.inf) < 1 for t in tickers)
    out.append(f"With {study} folds, the lowest pooled mean skill (h=1..{HORIZON}, averaged over "
               f"{' and '.join(tickers)}) is **{best}** at {_f(best_m)} ({per_t}); it is "
               f"{'below 1 on every ticker' if beats else 'not below 1 on every ticker'}.")
    default = "price s42"
    d_m = next((m for n, m in rank if n == default), None)
    if d_m is not None and best != default:
        out.append(f"Today's default ({default}) scores {_f(d_m)} and ranks "
                   f"{[n for n, _ in rank].index(default) + 1} of {len(rank)}.")
    drift_m = _avg(pooled_mean(study, "drift", t) for t in tickers)
    out.append(f"The drift baseline scores {_f(drift_m)}.")
    sig_better: list[str] = []
    sig_worse: list[str] = []
    for t in tickers:
        for name, e in result["tickers"][t]["plans"][str(study)]["skills"].items():
            dm = e["dm_h1"]
            if dm["p"] is not None and dm["p"] < SIGNIFICANCE:
                shown = "p<0.001" if dm["p"] < 0.001 else f"p={dm['p']:.3f}"
                (sig_better if dm["mean_diff"] < 0 else sig_worse).append(f"{name} ({t}, {shown})")
    if sig_better:
        out.append(f"At h=1 the Diebold–Mariano test (5 %, two-sided) finds these significantly better "
                   f"than persistence: {'; '.join(sig_better)} (uncorrected for the "
                   f"{len(rank) * len(tickers)} tests made).")
    else:
        out.append("At h=1 no recipe beats persistence significantly (Diebold–Mariano, 5 %, two-sided, "
                   "pooled origins): the differences are not significant.")
    if sig_worse:
        out.append(f"Significantly worse than persistence at h=1: {'; '.join(sig_worse)}.")
    for target in ("log_return", "price"):
        a_m = _avg(pooled_mean(study, f"{target} s42", t) for t in tickers)
        refit = f"{target} s42 refit (b)"
        known = result["tickers"][tickers[0]]["plans"][str(study)]["skills"]
        b_m = _avg(pooled_mean(study, refit, t) for t in tickers) if refit in known else None
        if a_m is not None and b_m is not None:
            better = "(b) refit on train+val" if b_m < a_m else "(a) the early-stopped fold model"
            out.append(f"Live-model option for {target} s42: (a) {_f(a_m)} vs (b) {_f(b_m)}: {better} "
                       "scores lower.")
    weights = [w for t in tickers
               for per_fold in result["tickers"][t]["plans"][str(study)]["shrink_weights"].values()
               for w in per_fold.values()]
    if weights:
        out.append(f"Fitted shrinkage weights average {np.mean(weights):.2f} "
                   f"(range {np.min(weights):.2f}..{np.max(weights):.2f}; 0 = persistence).")
    if other:
        rank_o = ranking(other)
        if rank_o:
            same = "the same recipe" if rank_o[0][0] == best else f"{rank_o[0][0]} instead"
            out.append(f"With {other} folds the lowest is {rank_o[0][0]} at {_f(rank_o[0][1])}: {same}.")
    diverged = result.get("diverged", [])
    if diverged:
        out.append(f"Flagged as erratic (a fold's skill above {DIVERGED_SKILL} at some horizon, or "
                   "non-finite forecasts): "
                   f"{'; '.join(diverged)}.")
    return " ".join(out)


def render(result: dict[str, Any], tickers: Sequence[str], study: int, other: int | None) -> str:
    intro = (f"Walk-forward on real daily closes, window {WINDOW}, val_fraction {VAL_FRACTION}, "
             f"test_fraction {TEST_FRACTION}, horizon {HORIZON}, recursive forecasts. Skill = RMSE / "
             "persistence's RMSE on the same origins (below 1 beats persistence); mean = over "
             f"h=1..{HORIZON}. Pooled = every fold's origins together. sN = seed N; ensN = mean of N "
             "seeds' price forecasts; shrink = w·LSTM + (1-w)·persistence, w per horizon fitted on "
             "the fold's validation origins; (a) = the fold model early-stopped on its validation days "
             "(every other row), (b) = refitted on train + validation days for (a)'s best epoch count. "
             f"Command: `{result['command']}` ({_clock(result['wall_seconds'])} on "
             f"{result['machine']['cpus']} cores).")
    parts = [f"# Recipe benchmark ({result['date'][:10]}, commit {result['git_commit'][:10]})", "",
             textwrap.fill(intro, 100, break_on_hyphens=False, break_long_words=False), ""]
    for k in [study] + ([other] if other else []):
        parts += [f"## Pooled skill, {k} folds", "", pooled_table(result, k, tickers), ""]
    parts += [f"## Per fold, {study} folds (h1 skill / mean skill)", ""]
    for t in tickers:
        parts += [fold_table(result, study, t), ""]
    parts += [f"## Shrinkage weights (fitted on validation origins) and best epochs, {study} folds", "",
              weights_table(result, study, tickers), "",
              f"## Diebold–Mariano vs persistence, pooled, {study} folds (negative stat = recipe better; "
              f"NW lag h-1)", "", dm_table(result, study, tickers), "",
              "## Verdict", "", textwrap.fill(result["verdict"], 100, break_on_hyphens=False,
                                              break_long_words=False), ""]
    return "\n".join(parts)


def machine() -> dict[str, Any]:
    model = platform.processor() or ""
    try:
        with open("/proc/cpuinfo", encoding="ascii", errors="replace") as fh:
            model = next((ln.split(":", 1)[1].strip() for ln in fh if ln.startswith("model name")), model)
    except OSError:
        pass
    versions: dict[str, str | None] = {}
    for pkg in ("keras", "jax", "numpy"):
        try:
            versions[pkg] = importlib.metadata.version(pkg)
        except importlib.metadata.PackageNotFoundError:
            versions[pkg] = None
    return {"host": platform.node(), "cpu": model, "cpus": os.cpu_count(),
            "python": platform.python_version(), "platform": platform.platform(), **versions}


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", "bench/recipes.py", "crypto_forecast"],
                               cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data", type=Path, default=DEFAULT_DATA,
                    help="folder with ETH-USD.csv and BTC-USD.csv (default ../shared/data)")
    ap.add_argument("--tickers", nargs="+", default=list(TICKERS))
    ap.add_argument("--folds", type=int, default=6, help="walk-forward folds of the study (default 6)")
    ap.add_argument("--also-folds", type=int, default=4,
                    help="a second fold count reported beside it (0: none)")
    ap.add_argument("--seeds", type=int, default=5, help="log_return ensemble size, seeds 42.. (≥ 3)")
    ap.add_argument("--epochs", type=int, help="train.epochs (default params.yaml's)")
    ap.add_argument("--patience", type=int, help="train.patience (default params.yaml's)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--no-price-refit", action="store_true", help="skip option (b) for the price target")
    ap.add_argument("--quick", action="store_true",
                    help="smoke test: ETH-USD, 2 folds, 3 seeds, 3 epochs; writes no files unless --out")
    ap.add_argument("--out", type=Path, help="output prefix (default bench/results/recipes; .md and .json)")
    args = ap.parse_args(argv)
    if args.quick:
        args.tickers, args.folds, args.also_folds, args.seeds = args.tickers[:1], 2, 0, 3
        args.epochs, args.patience = args.epochs or 3, args.patience or 1
    if args.seeds < len(SINGLE_SEEDS):
        ap.error(f"--seeds must be at least {len(SINGLE_SEEDS)}")
    out = args.out or (None if args.quick else DEFAULT_OUT)
    for t in args.tickers:
        if not (args.data / f"{t}.csv").is_file():
            print(f"recipes: {args.data / f'{t}.csv'} not found — pass --data DIR holding "
                  f"{', '.join(f'{x}.csv' for x in args.tickers)}", file=sys.stderr)
            return 2

    t0 = time.perf_counter()
    params = yaml.safe_load((ROOT / "params.yaml").read_text())
    params["preprocess"].update(window=WINDOW, val_fraction=VAL_FRACTION, test_fraction=TEST_FRACTION)
    if args.epochs:
        params["train"]["epochs"] = args.epochs
    if args.patience is not None:
        params["train"]["patience"] = args.patience
    parse_params(params, "params.yaml")  # refuse bad settings here, not in every worker
    seeds = tuple(range(FIRST_SEED, FIRST_SEED + args.seeds))
    counts = [args.folds] + ([args.also_folds] if args.also_folds and args.also_folds != args.folds else [])
    refit_targets = ("log_return",) if args.no_price_refit else ("log_return", "price")

    data: dict[str, tuple[np.ndarray, list[str]]] = {}
    jobs: list[Job] = []
    plans: dict[str, dict[int, list[Fold]]] = {}
    try:
        for t in args.tickers:
            data[t] = load_close(args.data, t)
            # Same cut-offs for both targets: first_valid only changes the training check.
            plans[t] = plans_for(data[t][0].size, counts, "log_return")
            jobs += make_jobs(t, data[t][0], plans[t], params, seeds)
    except PipelineError as exc:
        print(f"recipes: {exc}", file=sys.stderr)
        return 2
    # Longest first: price fits run the most epochs.
    jobs.sort(key=lambda j: (j.target != "price", j.seed, -j.cutoff))
    print(f"recipes: {len(jobs)} early-stopped fits (+ their refits) on {args.workers} workers, "
          f"tickers {', '.join(args.tickers)}, folds {counts}", file=sys.stderr, flush=True)
    fits = run_jobs(jobs, args.workers, refit_targets, t0)

    result: dict[str, Any] = {
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "git_commit": git_commit(), "machine": machine(),
        "command": shlex.join([Path(sys.executable).name, "bench/recipes.py", *(argv or sys.argv[1:])]),
        "settings": {"window": WINDOW, "val_fraction": VAL_FRACTION, "test_fraction": TEST_FRACTION,
                     "horizon": HORIZON, "folds": counts, "seeds": list(seeds), "train": params["train"],
                     "workers": args.workers},
        "tickers": {}, "diverged": [],
    }
    for t in args.tickers:
        close, dates = data[t]
        entry: dict[str, Any] = {"days": close.size, "first": dates[0], "last": dates[-1], "plans": {}}
        for k, folds in plans[t].items():
            recipes, weights, best_epochs = build_recipes(close, folds, fits, t, seeds,
                                                          "price" in refit_targets)
            sk = score_plan(close, folds, recipes)
            entry["plans"][str(k)] = {
                "folds": [{"name": f.name, "train_end": f.train_end, "cutoff": f.cutoff,
                           "score_stop": f.score_stop, "cutoff_date": dates[f.cutoff],
                           "scored_origins": int(f.score_origins().size)} for f in folds],
                "skills": sk, "shrink_weights": weights, "best_epochs": best_epochs}
            for name, e in sk.items():
                for fn, fe in e["folds"].items():
                    worst = max((v for v in fe["by_h"] if v is not None), default=None)
                    if worst is None or worst > DIVERGED_SKILL:
                        flag = f"{t} {name} {fn} ({k} folds, worst skill {_f(worst)})"
                        if flag not in result["diverged"]:
                            result["diverged"].append(flag)
        result["tickers"][t] = entry
    result["fits"] = [{"ticker": k[0], "target": k[1], "seed": k[2], "cutoff": k[3], "mode": k[4],
                       "epochs_run": r.epochs_run, "best_epoch": r.best_epoch,
                       "best_val_loss": _num(r.best_val_loss), "seconds": round(r.seconds, 2)}
                      for k, r in sorted(fits.items())]
    result["wall_seconds"] = round(time.perf_counter() - t0, 1)
    other = counts[1] if len(counts) > 1 else None
    result["verdict"] = verdict(result, args.tickers, args.folds, other)
    text = render(result, args.tickers, args.folds, other)
    print(text)
    if out is not None:
        out.parent.mkdir(parents=True, exist_ok=True)
        out.with_suffix(".md").write_text(text)
        out.with_suffix(".json").write_text(json.dumps(result, indent=1, allow_nan=False) + "\n")
        print(f"recipes: wrote {out.with_suffix('.md')} and {out.with_suffix('.json')} "
              f"({_clock(result['wall_seconds'])})", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
