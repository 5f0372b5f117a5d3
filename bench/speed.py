"""Speed benchmark: the pipeline on real saved prices, one table (issue 6).

In a temporary workspace (a git-initialised copy of the project's files, `download.source:
csv`, MLflow in a temporary SQLite store) this measures, in one run:

- train s/epoch of the project's `fit_network` (crypto_forecast.model.training) vs a
  plain-Keras reference written (same network, same windows, `model.fit` on numpy arrays, batch 32, default
  settings), each in a fresh process, interleaved, median of several, with the final
  validation loss of each so speed never comes from learning less;
- a cold `dvc repro` split by stage (wall time and peak RSS of each stage command, measured
  by /usr/bin/time around it) and its ratio to the train stage; a no-op `dvc repro`;
- start-up of `python -m stages.download` / `stages.preprocess` on a tiny input vs
  `python -c pass`, and whether they import TensorFlow, Keras or MLflow;
- the evaluation backtest as evaluate runs it (`crypto_forecast.model.numpy_net.shared_prefix_forecast`, 1..H
  days from every test origin) vs one batched `model.predict` over the same windows, one
  pass of the same NumPy engine, and one compiled TensorFlow pass;
- which heavy packages evaluate and forecast import (they must not import TensorFlow).

The machine is shared, so absolute seconds are noisy: compare the ratios, which come from
interleaved runs inside one invocation.

    make bench
    python bench/speed.py --epochs 6 --repeats 3 --out reports/bench/speed.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
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
# Not bench/ itself: bench/queue.py would shadow the standard library's `queue`.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
sys.path.insert(0, str(ROOT))
from tests.helpers import tracked_files  # noqa: E402  (one definition of a fresh clone's files)

DEFAULT_CSV = (ROOT / ".." / "shared" / "data" / "ETH-USD.csv").resolve()
STAGES = ("download", "preprocess", "train", "evaluate", "forecast")
HEAVY = ("tensorflow", "keras", "mlflow", "yfinance", "matplotlib")
TARGETS = {
    "train_ratio": 0.4, "stage_ratio": 0.5, "first_epoch_s": 3.0, "stage_rss_mb": 600.0,
    "val_loss_band": 0.10, "repro_vs_train": 1.3, "noop_s": 2.0, "startup_s": 1.0,
    "backtest_ratio": 3.0, "peak_rss_mb": 1536.0,
}


# --------------------------------------------------------------------------- workspace


def make_env(work: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DVC_", "MLFLOW_"))}
    env.update({"PATH": f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}",
                "MLFLOW_TRACKING_URI": f"sqlite:///{work.parent / 'store' / 'mlflow.db'}",
                "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "2",
                # JAX's compilation cache starts empty: the first JAX training compiles cold.
                "JAX_COMPILATION_CACHE_DIR": str(work.parent / "jax-cache"),
                "GIT_AUTHOR_NAME": "bench", "GIT_AUTHOR_EMAIL": "bench@example.com",
                "GIT_COMMITTER_NAME": "bench", "GIT_COMMITTER_EMAIL": "bench@example.com"})
    return env


def make_workspace(work: Path, csv: Path, timings: Path) -> dict[str, str]:
    """Copy the project, point download at `csv`, wrap each stage command in /usr/bin/time."""
    for rel in tracked_files():
        dst = work / rel
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / rel, dst)
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["download"].update({"source": "csv", "csv_path": str(csv)})
    (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    dvc = yaml.safe_load((work / "dvc.yaml").read_text())
    for name in STAGES:
        cmd = dvc["stages"][name]["cmd"]
        dvc["stages"][name]["cmd"] = f"/usr/bin/time -f '%e %M %U %S' -o {timings / name}.time {cmd}"
    (work / "dvc.yaml").write_text(yaml.safe_dump(dvc, sort_keys=False))
    (work.parent / "store").mkdir(exist_ok=True)
    env = make_env(work)
    for cmd in (["git", "init", "-q"], ["git", "add", "-A"], ["git", "commit", "-qm", "bench"]):
        subprocess.run(cmd, cwd=work, env=env, check=True, capture_output=True)
    return env


def run(cmd: list[str], cwd: Path, env: dict[str, str]) -> tuple[float, subprocess.CompletedProcess[str]]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "\n".join((done.stdout + done.stderr).splitlines()[-20:])
        raise SystemExit(f"{' '.join(cmd)} failed in {cwd}:\n{tail}")
    return seconds, done


def read_time(path: Path) -> tuple[float, float, float]:
    """(wall seconds, peak RSS MB, CPU seconds) from /usr/bin/time -f '%e %M %U %S'."""
    wall, kb, user, system = path.read_text().strip().splitlines()[-1].split()
    return float(wall), float(kb) / 1024, float(user) + float(system)


# --------------------------------------------------------------------------- workers
class _EpochTimer:
    """Wall seconds of each epoch (epoch begin to end, validation included)."""

    def __init__(self) -> None:
        import keras

        times: list[float] = []
        cpu: list[float] = []

        class Timer(keras.callbacks.Callback):  # type: ignore[misc]
            def on_epoch_begin(self, epoch: int, logs: Any = None) -> None:
                self.t0, self.c0 = time.perf_counter(), time.process_time()

            def on_epoch_end(self, epoch: int, logs: Any = None) -> None:
                times.append(time.perf_counter() - self.t0)
                cpu.append(time.process_time() - self.c0)

        self.times, self.cpu = times, cpu
        self.callback = Timer()


def _weights_digest(model: Any) -> str:
    import numpy as np

    return hashlib.sha256(b"".join(np.asarray(w).tobytes() for w in model.get_weights())).hexdigest()[:16]


def worker_train(kind: str, epochs: int, backend: str, seed: int) -> dict[str, Any]:
    """One training in this (fresh) process: the project's code on `backend`, or the plain
    reference (plain Keras on TensorFlow)."""
    sys.path.insert(0, os.getcwd())
    from crypto_forecast.io.artifacts import read_windows
    from crypto_forecast.params import load_params

    params = load_params()
    arrays = read_windows()
    if kind == "project":
        from crypto_forecast.model.backend import use_backend

        use_backend(backend)  # type: ignore[arg-type]
        import mlflow

        from crypto_forecast.model.training import fit_network

        # Fixed epochs (no early stop) so both sides do the same amount of work.
        params = params.model_copy(update={"train": params.train.model_copy(
            update={"epochs": epochs, "patience": epochs, "backend": backend, "seed": seed})})
        timer = _EpochTimer()
        mlflow.set_experiment("bench-speed")
        with mlflow.start_run(run_name="bench-project"):
            t0 = time.perf_counter()
            model, history = fit_network(params, arrays, [timer.callback])
            total = time.perf_counter() - t0
    else:
        model, history, timer, total = _plain_keras_fit(params, arrays, epochs, seed)
    return {"kind": kind, "backend": backend, "seed": seed, "epoch_s": timer.times,
            "epoch_cpu_s": timer.cpu, "fit_s": total,
            "val_loss": history["val_loss"], "params": int(model.count_params()),
            "weights": _weights_digest(model), "windows": len(arrays["x_train"])}


def _plain_keras_fit(params: Any, arrays: Any, epochs: int, seed: int) -> tuple[Any, Any, Any, float]:
    """The reference: the lecture's network in plain Keras (on whatever KERAS_BACKEND says:
    TensorFlow in this benchmark), `model.fit` on numpy arrays, batch 32, default settings."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    cfg = params.train
    keras.utils.set_random_seed(seed)  # same initial weights; no other setting
    window = params.preprocess.window
    model = keras.Sequential([keras.Input(shape=(window, 1)),
                              keras.layers.LSTM(cfg.units[0], return_sequences=True),
                              keras.layers.LSTM(cfg.units[1]), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=1e-3), loss="mse")
    timer = _EpochTimer()
    t0 = time.perf_counter()
    fit = model.fit(arrays["x_train"], arrays["y_train"], batch_size=32, epochs=epochs,
                    validation_data=(arrays["x_val"], arrays["y_val"]),
                    callbacks=[timer.callback], verbose=0)
    total = time.perf_counter() - t0
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}
    return model, history, timer, total


def worker_plain_stage(epochs: int) -> None:
    """A plain-Keras TensorFlow train process, start to end: read the windows, fit `epochs`
    epochs, save the model. What the train stage is compared against."""
    sys.path.insert(0, os.getcwd())
    from crypto_forecast.io.artifacts import read_windows
    from crypto_forecast.params import load_params

    params = load_params()
    model, _, _, _ = _plain_keras_fit(params, read_windows(), epochs, params.train.seed)
    model.save(Path(tempfile.mkdtemp()) / "plain.keras")


def worker_backtest(repeats: int) -> dict[str, Any]:
    """The evaluation backtest as the stage runs it (NumPy network, shared prefixes) vs one
    batched forward pass over the same windows: NumPy's, Keras's `model.predict`, and a
    compiled TensorFlow graph; plus the old way (a full TensorFlow pass per step)."""
    sys.path.insert(0, os.getcwd())
    import numpy as np

    from crypto_forecast.evaluation.backtest import (
        feedback_forecast,
        input_windows,
        split_origins,
    )
    from crypto_forecast.io import paths
    from crypto_forecast.io.artifacts import read_series
    from crypto_forecast.model.numpy_net import load_network
    from crypto_forecast.model.numpy_net import shared_prefix_forecast as shared_forecast
    from crypto_forecast.params import load_params
    from tests.helpers import keras_predict
    from tests.helpers import load_keras_model as load_model

    params = load_params()
    horizon, window = params.evaluate.horizon, params.preprocess.window
    where = paths.for_ticker(params.download.tickers[0])
    series = read_series(where.series)
    t0 = time.perf_counter()
    net = load_network(where.model)
    load_s = time.perf_counter() - t0
    model = load_model(where.model)
    origins, _ = split_origins(series["split"].to_numpy(), "test")
    scaled = series["scaled"].to_numpy(dtype=np.float64)
    x = input_windows(scaled, origins, window)
    predict = keras_predict(model)
    x3 = x[..., np.newaxis]

    def timed(fn: Any) -> float:
        t = time.perf_counter()
        fn()
        return time.perf_counter() - t

    t = time.perf_counter()
    shared = shared_forecast(net, scaled, origins, window, horizon)
    first_backtest = time.perf_counter() - t
    same = np.max(np.abs(shared - feedback_forecast(predict, x, horizon)))
    rows: dict[str, list[float]] = {"backtest": [], "numpy_pass": [], "keras_predict": [],
                                    "tf_graph_pass": [], "tf_per_step_backtest": []}
    timed(lambda: model.predict(x3, batch_size=len(x3), verbose=0))
    timed(lambda: predict(x3))
    for _ in range(repeats):
        rows["backtest"].append(timed(lambda: shared_forecast(net, scaled, origins, window, horizon)))
        rows["numpy_pass"].append(timed(lambda: net.predict(x)))
        rows["keras_predict"].append(timed(lambda: model.predict(x3, batch_size=len(x3), verbose=0)))
        rows["tf_graph_pass"].append(timed(lambda: predict(x3)))
        rows["tf_per_step_backtest"].append(timed(lambda: feedback_forecast(predict, x, horizon)))
    return {"origins": len(origins), "horizon": horizon, "network_load_s": load_s,
            "first_backtest_s": first_backtest, "max_abs_diff_vs_keras_recursion": float(same),
            **{k: statistics.median(v) for k, v in rows.items()}}


def call_worker(args: list[str], work: Path, env: dict[str, str]) -> dict[str, Any]:
    if "--backend" in args:  # the reference runs plain Keras on whatever KERAS_BACKEND says
        env = {**env, "KERAS_BACKEND": args[args.index("--backend") + 1]}
    _, done = run([sys.executable, "bench/speed.py", *args], work, env)
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


# --------------------------------------------------------------------------- measurements
def bench_repro(work: Path, env: dict[str, str], timings: Path, noops: int) -> dict[str, Any]:
    total, _ = run(["dvc", "repro"], work, env)
    stages = {}
    for name in STAGES:
        wall, rss, cpu = read_time(timings / f"{name}.time")
        stages[name] = {"wall_s": wall, "peak_rss_mb": rss, "cpu_s": cpu}
    noop, noop_cpu = [], []
    stamp = timings / "noop.time"
    for _ in range(noops):
        seconds, done = run(["/usr/bin/time", "-f", "%U %S", "-o", str(stamp), "dvc", "repro"],
                            work, env)
        if "Running stage" in done.stdout:
            raise SystemExit("the second `dvc repro` ran a stage: the pipeline is not idempotent")
        noop.append(seconds)
        noop_cpu.append(sum(float(v) for v in stamp.read_text().strip().splitlines()[-1].split()))
    heavy: dict[str, list[str]] = {}
    for name in ("evaluate", "forecast"):  # rerun once, outside DVC, to list what they import
        _, done = run([sys.executable, "-X", "importtime", "-m", f"stages.{name}"], work, env)
        mods = {m.group(1).split(".")[0] for m in
                re.finditer(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", done.stderr)}
        heavy[name] = sorted(m for m in mods if m in HEAVY)
    floor = [run(["dvc", "--version"], work, env)[0] for _ in range(noops)]
    status = [run(["dvc", "status", "-q"], work, env)[0] for _ in range(noops)]
    return {"cold_s": total, "stages": stages, "noop_s": statistics.median(noop),
            "noop_cpu_s": statistics.median(noop_cpu),
            "dvc_version_s": statistics.median(floor), "dvc_status_s": statistics.median(status),
            "heavy_imports": heavy}


def tiny_workspace(tiny: Path, work: Path) -> None:
    shutil.copytree(work / "stages", tiny / "stages")
    rows = ["Date,Open,High,Low,Close,Adj Close,Volume"]
    for i in range(120):
        day = time.strftime("%Y-%m-%d", time.gmtime(1_640_995_200 + 86_400 * i))  # from 2022-01-01
        price = 3000 + 10 * i + (i % 7) * 3
        rows.append(f"{day},{price},{price},{price},{price},{price},1000")
    (tiny / "tiny.csv").write_text("\n".join(rows) + "\n")
    params = yaml.safe_load((work / "params.yaml").read_text())
    params["download"].update({"source": "csv", "csv_path": str(tiny / "tiny.csv"),
                               "start": "2022-01-01", "end": "2022-05-01"})
    params["preprocess"].update({"window": 10})
    (tiny / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))


def _import_costs(stderr: str) -> dict[str, float]:
    """Cumulative import time (s) of a few top-level packages, from -X importtime."""
    out: dict[str, float] = {}
    for line in stderr.splitlines():
        m = re.match(r"import time:\s+\d+ \|\s+(\d+) \|( *)(\S+)", line)
        if m and m.group(3) in ("numpy", "pandas", "pydantic", "yaml", "crypto_forecast.params"):
            out[m.group(3)] = int(m.group(1)) / 1e6
    return out


def bench_startup(work: Path, env: dict[str, str], repeats: int) -> dict[str, Any]:
    tiny = work.parent / "tiny"
    tiny.mkdir()
    tiny_workspace(tiny, work)
    cmds = {"python -c pass": [sys.executable, "-c", "pass"],
            "stages.download": [sys.executable, "-m", "stages.download"],
            "stages.preprocess": [sys.executable, "-m", "stages.preprocess"]}
    times: dict[str, list[float]] = {k: [] for k in cmds}
    cpu: dict[str, list[float]] = {k: [] for k in cmds}
    stamp = work.parent / "startup.time"
    for _ in range(repeats):
        for key, cmd in cmds.items():
            times[key].append(run(["/usr/bin/time", "-f", "%e %U %S", "-o", str(stamp), *cmd],
                                  tiny, env)[0])
            _, user, system = stamp.read_text().strip().splitlines()[-1].split()
            cpu[key].append(float(user) + float(system))
    # What every TensorFlow stage (train, evaluate, forecast) pays before its first line.
    floors: dict[str, list[float]] = {"import keras (TensorFlow)": [], "import mlflow": []}
    for _ in range(2):
        floors["import keras (TensorFlow)"].append(run([sys.executable, "-c", "import keras"], tiny, env)[0])
        floors["import mlflow"].append(run([sys.executable, "-c", "import mlflow"], tiny, env)[0])
    heavy: dict[str, list[str]] = {}
    imports: dict[str, dict[str, float]] = {}
    for name in ("download", "preprocess"):
        _, done = run([sys.executable, "-X", "importtime", "-m", f"stages.{name}"], tiny, env)
        mods = {m.group(1).split(".")[0] for m in
                re.finditer(r"import time:\s+\d+ \|\s+\d+ \|\s+(\S+)", done.stderr)}
        heavy[name] = sorted(m for m in mods if m in HEAVY)
        imports[name] = _import_costs(done.stderr)
    return {"median_s": {k: statistics.median(v) for k, v in times.items()},
            "median_cpu_s": {k: statistics.median(v) for k, v in cpu.items()},
            "heavy_imports": heavy, "import_s": imports,
            "tf_stage_floor_s": {k: statistics.median(v) for k, v in floors.items()}}


SIDES = {"reference": ("reference", "tensorflow"), "project_tensorflow": ("project", "tensorflow"),
         "project_jax": ("project", "jax")}


def bench_train(work: Path, env: dict[str, str], epochs: int, seeds: list[int]) -> dict[str, Any]:
    """Each side with every seed, interleaved (the order rotates, so a burst of load on the
    machine hits every side); then each project backend once more with the first seed, for
    determinism across processes."""
    runs: dict[str, list[dict[str, Any]]] = {k: [] for k in SIDES}
    plan = [(seed, i) for i, seed in enumerate(seeds)] + [(seeds[0], len(seeds))]
    for seed, i in plan:
        names = list(SIDES)
        order = names[i % 3:] + names[:i % 3]
        for side in order:
            kind, backend = SIDES[side]
            if i == len(seeds) and kind == "reference":
                continue
            print(f"  train {side} seed {seed} ({epochs} epochs)", file=sys.stderr, flush=True)
            runs[side].append(call_worker(["--worker", kind, "--epochs", str(epochs), "--backend",
                                           backend, "--seed", str(seed)], work, env))
    out: dict[str, Any] = {"epochs": epochs, "seeds": seeds}
    for side, rs in runs.items():
        timed = rs[:len(seeds)]
        repeat = [r for r in rs if r["seed"] == seeds[0]]
        out[side] = {
            "steady_s_per_epoch": statistics.median(statistics.median(r["epoch_s"][1:]) for r in timed),
            "steady_cpu_s_per_epoch": statistics.median(statistics.median(r["epoch_cpu_s"][1:])
                                                        for r in timed),
            "first_epoch_s": statistics.median(r["epoch_s"][0] for r in timed),
            "fit_s_per_epoch": statistics.median(r["fit_s"] / epochs for r in timed),
            "final_val_loss": [r["val_loss"][-1] for r in timed],
            "mean_final_val_loss": statistics.mean(r["val_loss"][-1] for r in timed),
            "deterministic": (len({r["weights"] for r in repeat}) == 1) if len(repeat) > 1 else None,
            "params": rs[0]["params"], "train_windows": rs[0]["windows"],
            "runs": [{k: v for k, v in r.items() if k != "kind"} for r in rs],
        }
    return out


def bench_stage(work: Path, env: dict[str, str], timings: Path) -> dict[str, Any]:
    """The whole train stage process (default params, so early stopping decides the epochs)
    on each backend, and a plain-Keras TensorFlow process fitting as many epochs; each
    under /usr/bin/time (wall, peak RSS)."""
    out: dict[str, Any] = {}
    base = (work / "params.yaml").read_text()
    try:
        for backend in ("jax", "tensorflow"):
            params = yaml.safe_load(base)
            params["train"]["backend"] = backend
            (work / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
            stamp = timings / f"stage-{backend}.time"
            print(f"  train stage on {backend}", file=sys.stderr, flush=True)
            run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(stamp), sys.executable, "-m",
                 "stages.train"], work, env)
            wall, rss, cpu = read_time(stamp)
            info = json.loads((work / "models" / "ETH-USD" / "train_info.json").read_text())
            epochs = int(info["epochs_run"])
            print(f"  plain-Keras TensorFlow process, {epochs} epochs", file=sys.stderr, flush=True)
            plain = timings / f"plain-{backend}.time"
            run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(plain), sys.executable,
                 "bench/speed.py", "--worker", "plain-stage", "--epochs", str(epochs)], work,
                {**env, "KERAS_BACKEND": "tensorflow"})
            pwall, prss, pcpu = read_time(plain)
            out[backend] = {"wall_s": wall, "peak_rss_mb": rss, "cpu_s": cpu, "epochs_run": epochs,
                            "best_val_loss": info["best_val_loss"],
                            "train_seconds": info["train_seconds"],
                            "plain_wall_s": pwall, "plain_peak_rss_mb": prss, "plain_cpu_s": pcpu}
    finally:
        (work / "params.yaml").write_text(base)
    return out


def bench_imports(work: Path, env: dict[str, str], timings: Path, repeats: int = 3) -> dict[str, Any]:
    """`import keras` per backend in a fresh process: wall s and peak RSS (median)."""
    out: dict[str, Any] = {}
    for backend in ("jax", "tensorflow"):
        walls, rss = [], []
        for _ in range(repeats):
            stamp = timings / f"import-{backend}.time"
            run(["/usr/bin/time", "-f", "%e %M %U %S", "-o", str(stamp), sys.executable, "-c",
                 "import keras"], work, {**env, "KERAS_BACKEND": backend})
            wall, mb, _ = read_time(stamp)
            walls.append(wall)
            rss.append(mb)
        out[backend] = {"wall_s": statistics.median(walls), "peak_rss_mb": statistics.median(rss)}
    return out


# --------------------------------------------------------------------------- report
def machine() -> dict[str, Any]:
    cpu = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "cpu": cpu, "python": platform.python_version(),
            "load_avg_1m_at_start": os.getloadavg()[0]}


def train_rows(r: dict[str, Any], row: Any) -> None:
    """The backends side by side: plain Keras on TensorFlow, the project on TensorFlow and
    on JAX (same windows, seeds, epochs)."""
    t = r["train"]
    ref = t["reference"]
    sides = [("project_tensorflow", "TensorFlow"), ("project_jax", "JAX")]
    seeds = "/".join(str(s) for s in t["seeds"])
    row(f"train s/epoch, plain Keras on TF (median, seeds {seeds}, ep 2..{t['epochs']})",
        f"{ref['steady_s_per_epoch']:.2f}")
    for side, name in sides:
        prj = t[side]
        ratio = prj["steady_s_per_epoch"] / ref["steady_s_per_epoch"]
        row(f"train s/epoch, project on {name} / ratio to plain",
            f"{prj['steady_s_per_epoch']:.2f} / {ratio:.2f}x", "<= 0.4x",
            ratio <= TARGETS["train_ratio"])
    row("  CPU s/epoch (all threads): plain TF / project TF / project JAX",
        " / ".join(f"{t[k]['steady_cpu_s_per_epoch']:.2f}" for k in ("reference", *dict(sides))))
    row("  whole fit incl. compile s/epoch: plain TF / TF / JAX",
        " / ".join(f"{t[k]['fit_s_per_epoch']:.2f}" for k in ("reference", *dict(sides))))
    for side, name in (("reference", "plain Keras on TF"), *sides):
        met = None if side == "reference" else t[side]["first_epoch_s"] <= TARGETS["first_epoch_s"]
        row(f"  first epoch (trace + compile) s, {name}", f"{t[side]['first_epoch_s']:.1f}",
            "" if met is None else "<= 3 s", met)
    row("  of which JAX's first run (compilation cache empty) s",
        f"{t['project_jax']['runs'][0]['epoch_s'][0]:.1f}")
    for side, name in (("reference", "plain Keras on TF"), *sides):
        losses = "/".join(f"{v:.1e}" for v in t[side]["final_val_loss"])
        if side == "reference":
            row(f"val loss after {t['epochs']} ep, {name}", losses)
            continue
        rel = t[side]["mean_final_val_loss"] / ref["mean_final_val_loss"] - 1
        row(f"val loss after {t['epochs']} ep, {name} (mean vs plain)", f"{losses} ({rel:+.0%})",
            "+-10%", abs(rel) <= TARGETS["val_loss_band"])
    for side, name in sides:
        det = t[side]["deterministic"]
        row(f"same seed twice -> identical weights, {name}", str(det).lower(), "true", bool(det))


def stage_rows(r: dict[str, Any], row: Any) -> None:
    for backend, name in (("jax", "JAX"), ("tensorflow", "TensorFlow")):
        s = r["stage"][backend]
        ratio = s["wall_s"] / s["plain_wall_s"]
        row(f"train stage on {name}, {s['epochs_run']} ep (wall s / peak RSS MB)",
            f"{s['wall_s']:.1f} / {s['peak_rss_mb']:.0f}")
        row("  plain-Keras TF process, same epochs (wall s / peak RSS MB)",
            f"{s['plain_wall_s']:.1f} / {s['plain_peak_rss_mb']:.0f}")
        row("  ratio stage / plain process", f"{ratio:.2f}x", "<= 0.5x", ratio <= TARGETS["stage_ratio"])
        row("  stage peak RSS MB", f"{s['peak_rss_mb']:.0f}", "<= 600",
            s["peak_rss_mb"] <= TARGETS["stage_rss_mb"])


def import_rows(r: dict[str, Any], row: Any) -> None:
    for backend in ("jax", "tensorflow"):
        i = r["imports"][backend]
        row(f"import keras on {backend}: s / peak RSS MB", f"{i['wall_s']:.1f} / {i['peak_rss_mb']:.0f}")


def table(r: dict[str, Any]) -> str:
    lines = [f"{'figure':62} {'value':>26} {'target':>9} {'met':>4}", "-" * 104]

    def row(name: str, value: str, target: str = "", met: bool | None = None) -> None:
        mark = "" if met is None else ("yes" if met else "NO")
        lines.append(f"{name:62} {value:>26} {target:>9} {mark:>4}")

    for key, rows in (("train", train_rows), ("stage", stage_rows), ("imports", import_rows)):
        if key in r:
            rows(r, row)
    if "repro" in r:
        other_rows(r, row)
    return "\n".join(lines)


def other_rows(r: dict[str, Any], row: Any) -> None:
    rp, st, bt = r["repro"], r["startup"], r["backtest"]
    train_s = rp["stages"]["train"]["wall_s"]
    for name in STAGES:
        s = rp["stages"][name]
        row(f"cold dvc repro: {name} (wall s / CPU s / peak RSS MB)",
            f"{s['wall_s']:.1f} / {s['cpu_s']:.1f} / {s['peak_rss_mb']:.0f}")
    row("cold dvc repro total s", f"{rp['cold_s']:.1f}")
    cr = rp["cold_s"] / train_s
    row("  ratio cold repro / train stage", f"{cr:.3f}x", "<= 1.3x", cr <= TARGETS["repro_vs_train"])
    for name, mods in rp["heavy_imports"].items():
        tf = [m for m in mods if m in ("tensorflow", "keras")]
        row(f"  {name} imports (of TF, Keras, MLflow, yfinance, matplotlib)", ", ".join(mods) or "none",
            "no TF", not tf)
    row("no-op dvc repro s (median; wall / CPU)", f"{rp['noop_s']:.2f} / {rp['noop_cpu_s']:.2f}", "<= 2 s",
        rp["noop_s"] <= TARGETS["noop_s"])
    row("  floor: dvc --version / dvc status -q s", f"{rp['dvc_version_s']:.2f} / {rp['dvc_status_s']:.2f}")
    med = st["median_s"]
    cpu = st["median_cpu_s"]
    row("start-up python -c pass s (wall / CPU user+sys)",
        f"{med['python -c pass']:.2f} / {cpu['python -c pass']:.2f}")
    for name in ("download", "preprocess"):
        heavy = st["heavy_imports"][name]
        key = "stages." + name
        row(f"start-up stages.{name} s, tiny input (wall / CPU)", f"{med[key]:.2f} / {cpu[key]:.2f}",
            "<= 1 s", med[key] <= TARGETS["startup_s"])
        row(f"  {name} imports TF/Keras/MLflow?", ", ".join(heavy) or "none", "none", not heavy)
    imp = st["import_s"]["preprocess"]
    row("  import s (importtime): numpy/pandas/pydantic/yaml",
        "/".join(f"{imp.get(k, float('nan')):.2f}" for k in ("numpy", "pandas", "pydantic", "yaml")))
    fl = st["tf_stage_floor_s"]
    row("  floor of a TF stage: import keras / import mlflow s",
        f"{fl['import keras (TensorFlow)']:.1f} / {fl['import mlflow']:.1f}")
    row(f"backtest 1..{bt['horizon']} d x {bt['origins']} test origins s (as evaluate runs it)",
        f"{bt['backtest']:.3f}")
    row("  one batched keras model.predict, same windows s", f"{bt['keras_predict']:.3f}")
    kr = bt["backtest"] / bt["keras_predict"]
    row("  ratio backtest / one model.predict", f"{kr:.1f}x", "<= 3x", kr <= TARGETS["backtest_ratio"])
    row("  one NumPy forward pass (the engine evaluate uses) s", f"{bt['numpy_pass']:.3f}")
    nr = bt["backtest"] / bt["numpy_pass"]
    row("  ratio backtest / one pass of the same engine", f"{nr:.1f}x", "<= 3x",
        nr <= TARGETS["backtest_ratio"])
    row("  one compiled TF graph pass s / ratio",
        f"{bt['tf_graph_pass']:.3f} / {bt['backtest'] / bt['tf_graph_pass']:.1f}x")
    row("  before: one TF graph pass per step s / ratio to model.predict",
        f"{bt['tf_per_step_backtest']:.3f} / {bt['tf_per_step_backtest'] / bt['keras_predict']:.1f}x")
    row("  max |difference| vs the Keras recursion (scaled units)",
        f"{bt['max_abs_diff_vs_keras_recursion']:.1e}")
    peak = max(s["peak_rss_mb"] for s in rp["stages"].values())
    row("peak RSS of any stage MB", f"{peak:.0f}", "<= 1536", peak <= TARGETS["peak_rss_mb"])


SECTIONS = ("repro", "startup", "backtest", "train", "stage", "imports")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--epochs", type=int, default=6, help="epochs per timed training")
    parser.add_argument("--seeds", default="1,2,3", help="seeds trained per side (comma-separated)")
    parser.add_argument("--sections", default=",".join(SECTIONS),
                        help=f"which to run (comma-separated, of {', '.join(SECTIONS)})")
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "speed.json")
    parser.add_argument("--keep", action="store_true", help="keep the temporary workspace")
    parser.add_argument("--worker", choices=["project", "reference", "backtest", "plain-stage"],
                        help=argparse.SUPPRESS)
    parser.add_argument("--backend", default="tensorflow", help=argparse.SUPPRESS)
    parser.add_argument("--seed", type=int, default=42, help=argparse.SUPPRESS)
    parser.add_argument("--repeats", type=int, default=5, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "backtest":
        print(json.dumps(worker_backtest(args.repeats)))
        return
    if args.worker == "plain-stage":
        worker_plain_stage(args.epochs)
        return
    if args.worker:
        print(json.dumps(worker_train(args.worker, args.epochs, args.backend, args.seed)))
        return

    sections = [s.strip() for s in args.sections.split(",") if s.strip()]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        raise SystemExit(f"unknown section(s) {', '.join(unknown)} — choose from {', '.join(SECTIONS)}")
    if {"startup", "backtest"} & set(sections) and "repro" not in sections:
        raise SystemExit("startup and backtest need the repro section's outputs — add repro")
    csv = args.csv.resolve()
    if not csv.exists():
        raise SystemExit(f"{csv} not found — pass --csv PATH to a Yahoo-format daily CSV")
    base = Path(tempfile.mkdtemp(prefix="bench-speed-"))
    result: dict[str, Any] = {"machine": machine(), "csv": str(csv)}
    try:
        work, timings = base / "project", base / "timings"
        timings.mkdir()
        env = make_workspace(work, csv, timings)
        if "repro" in sections:
            print(f"workspace {work}; cold dvc repro", file=sys.stderr, flush=True)
            result["repro"] = bench_repro(work, env, timings, noops=3)
        else:  # the windows the trainings read
            for stage in ("download", "preprocess"):
                run([sys.executable, "-m", f"stages.{stage}"], work, env)
        if "startup" in sections:
            print("start-up", file=sys.stderr, flush=True)
            result["startup"] = bench_startup(work, env, repeats=5)
        if "backtest" in sections:
            print("backtest", file=sys.stderr, flush=True)
            result["backtest"] = call_worker(["--worker", "backtest", "--repeats", "5"], work, env)
        if "imports" in sections:
            print("import keras per backend", file=sys.stderr, flush=True)
            result["imports"] = bench_imports(work, env, timings)
        if "train" in sections:
            print("training", file=sys.stderr, flush=True)
            seeds = [int(v) for v in args.seeds.split(",")]
            result["train"] = bench_train(work, env, args.epochs, seeds)
        if "stage" in sections:
            print("train stage processes", file=sys.stderr, flush=True)
            result["stage"] = bench_stage(work, env, timings)
    finally:
        if args.keep:
            print(f"kept {base}", file=sys.stderr)
        else:
            shutil.rmtree(base, ignore_errors=True)
    result["machine"]["load_avg_1m_at_end"] = os.getloadavg()[0]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")  # raw figures first, table after
    text = table(result)
    m = result["machine"]
    print(f"machine: {m['nproc']} cores, {m['cpu']}, Python {m['python']}; load average "
          f"{m['load_avg_1m_at_start']:.1f} at start, {m['load_avg_1m_at_end']:.1f} at end")
    print(text)
    result["table"] = text
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
