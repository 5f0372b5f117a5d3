"""Serving speed: the registered forecaster answering over REST on loopback.

    python bench/serving.py            # `make bench-serving`; prints a table, writes JSON

A forecaster with the lecture's shape (LSTM 50-50, 60-day window, 10 days, log-return
target, 80/95 % bands) is logged and registered in a temporary SQLite store exactly as the
pipeline does it (weights are random: the arithmetic, not its values, sets the time). Then:
- in-process `PriceForecaster.forecast` and the MLflow pyfunc's `predict` of one request;
- `python -m stages.serve` (MLflow's scoring server): start to first answer, p50 of one
  warm client's requests, and 8 concurrent clients for 20 s: p99 latency and throughput;
- the server's peak RSS (all its processes) and whether it imported TensorFlow.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from crypto_forecast.serving.bundle import BandCalibration, ForecasterSpec, save_bundle  # noqa: E402
from crypto_forecast.serving.price_forecaster import PriceForecaster  # noqa: E402
from tests.helpers import project_env, random_network  # noqa: E402
from tests.integration.mlflow_server import free_port  # noqa: E402

NAME = "bench-forecaster"
DEFAULT_CSV = (ROOT / ".." / "shared" / "data" / "ETH-USD.csv").resolve()
TARGETS = {"p50_ms": 20.0, "p99_ms": 100.0, "throughput": 200.0, "inprocess_ms": 2.0,
           "start_s": 10.0, "rss_mb": 500.0}


def recent_closes(csv: Path, days: int = 120) -> pd.DataFrame:
    if csv.exists():
        raw = pd.read_csv(csv)
        return pd.DataFrame({"date": raw["Date"].astype(str).str[:10], "close": raw["Close"]}).tail(days)
    rng = np.random.default_rng(0)
    return pd.DataFrame({"date": pd.date_range("2023-09-01", periods=days).strftime("%Y-%m-%d"),
                         "close": 1800 * np.exp(np.cumsum(rng.normal(0, 0.03, days)))})


def timed_ms(fn: Any, repeats: int) -> float:
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return statistics.median(out)


def tree_peak_rss_mb(pid: int) -> float:
    """Sum of VmHWM over `pid` and its descendants (read from /proc)."""
    total, todo = 0.0, [pid]
    while todo:
        p = todo.pop()
        try:
            status = Path(f"/proc/{p}/status").read_text()
            total += int(next(line.split()[1] for line in status.splitlines()
                              if line.startswith("VmHWM"))) / 1024
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except (OSError, StopIteration):
            continue
    return total


def imports_tensorflow(pid: int) -> bool:
    found, todo = False, [pid]
    while todo:
        p = todo.pop()
        try:
            found |= "tensorflow" in Path(f"/proc/{p}/maps").read_text()
            for task in Path(f"/proc/{p}/task").iterdir():
                todo += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return found


def post(conn: http.client.HTTPConnection, body: bytes) -> float:
    t0 = time.perf_counter()
    conn.request("POST", "/invocations", body, {"Content-Type": "application/json"})
    resp = conn.getresponse()
    data = resp.read()
    if resp.status != 200:
        raise SystemExit(f"server answered {resp.status}: {data[:300]!r}")
    return (time.perf_counter() - t0) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--csv", type=Path, default=DEFAULT_CSV)
    parser.add_argument("--workers", type=int, default=2, help="scoring server processes")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--out", type=Path, default=ROOT / "reports" / "bench" / "serving.json")
    args = parser.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    spec = ForecasterSpec(kind="lstm", ticker="ETH-USD", window=60, horizon=10, target="log_return",
                          scaler_min=-0.25, scaler_max=0.25, volatility_days=30, bands=(
                              BandCalibration(level=0.8, score_quantiles=tuple(np.linspace(0.8, 2.5, 10))),
                              BandCalibration(level=0.95, score_quantiles=tuple(np.linspace(1.5, 4.0, 10)))))
    net = random_network((50, 50))
    save_bundle(tmp / "bundle", spec, net)
    frame = recent_closes(args.csv).reset_index(drop=True)
    frame.to_csv(tmp / "in.csv", index=False)
    results: dict[str, Any] = {}

    forecaster = PriceForecaster(spec, net)
    forecaster.forecast(frame)
    results["inprocess_ms"] = timed_ms(lambda: forecaster.forecast(frame), 300)
    results["point_forecast_ms"] = timed_ms(lambda: forecaster.point_forecast(frame["close"].to_numpy()), 300)

    env = {**project_env(tmp, tmp / "store"), "PYTHONPATH": str(ROOT)}
    (tmp / "store").mkdir()
    script = ("import mlflow, pandas as pd, time, json\nfrom pathlib import Path\n"
              "from crypto_forecast.serving.bundle import load_bundle\n"
              "from crypto_forecast.serving.pyfunc import log_forecaster\n"
              "spec, _ = load_bundle(Path('bundle'))\nframe = pd.read_csv('in.csv')\n"
              "with mlflow.start_run():\n    uri = log_forecaster(Path('bundle'), spec, frame)\n"
              f"    v = mlflow.register_model(uri, {NAME!r})\n"
              f"mlflow.MlflowClient().set_registered_model_alias({NAME!r}, 'champion', v.version)\n"
              f"m = mlflow.pyfunc.load_model('models:/{NAME}@champion')\nm.predict(frame)\n"
              "ts = []\nfor _ in range(300):\n    t0 = time.perf_counter(); m.predict(frame)\n"
              "    ts.append((time.perf_counter() - t0) * 1000)\n"
              "print(json.dumps(sorted(ts)[len(ts) // 2]))\n")
    done = subprocess.run([sys.executable, "-c", script], cwd=tmp, env=env, capture_output=True,
                          text=True, timeout=600)
    if done.returncode:
        raise SystemExit(done.stderr[-2000:])
    results["pyfunc_predict_ms"] = json.loads(done.stdout.split()[-1])

    port = free_port()
    body = json.dumps({"dataframe_split": {"columns": ["date", "close"],
                                           "data": frame.to_numpy().tolist()}}).encode()
    t0 = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-m", "stages.serve", "--model", NAME, "--port", str(port),
                             "--workers", str(args.workers)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        while True:
            if proc.poll() is not None:
                raise SystemExit("the scoring server exited")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
                post(conn, body)
                break
            except OSError:
                time.sleep(0.05)
        results["start_s"] = time.perf_counter() - t0
        for _ in range(20):
            post(conn, body)
        single = [post(conn, body) for _ in range(300)]
        results["p50_ms"] = statistics.median(single)
        latencies: list[float] = []
        lock = threading.Lock()
        stop = time.monotonic() + args.seconds

        def client() -> None:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            mine = []
            while time.monotonic() < stop:
                mine.append(post(c, body))
            with lock:
                latencies.extend(mine)

        threads = [threading.Thread(target=client) for _ in range(args.clients)]
        t1 = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.perf_counter() - t1
        latencies.sort()
        results["p99_ms"] = latencies[int(0.99 * (len(latencies) - 1))]
        results["concurrent_p50_ms"] = statistics.median(latencies)
        results["throughput"] = len(latencies) / wall
        results["rss_mb"] = tree_peak_rss_mb(proc.pid)
        results["tensorflow_loaded"] = imports_tensorflow(proc.pid)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=30)

    rows = [("p50 latency, one 10-day forecast, warm server, ms", f"{results['p50_ms']:.1f}", "<= 20",
             "p50_ms", True),
            (f"p99 latency, {args.clients} concurrent clients for {args.seconds:.0f} s, ms",
             f"{results['p99_ms']:.1f}", "<= 100", "p99_ms", True),
            (f"throughput, {args.clients} concurrent clients, forecasts/s", f"{results['throughput']:.0f}",
             ">= 200", "throughput", False),
            ("in-process PriceForecaster.forecast, ms", f"{results['inprocess_ms']:.2f}", "<= 2",
             "inprocess_ms", True),
            ("  (MLflow pyfunc predict, ms)", f"{results['pyfunc_predict_ms']:.2f}", "", "", True),
            ("  (network recursion alone, ms)", f"{results['point_forecast_ms']:.2f}", "", "", True),
            ("server start to first answer, s", f"{results['start_s']:.1f}", "<= 10", "start_s", True),
            (f"server peak RSS, {args.workers} workers, MB", f"{results['rss_mb']:.0f}", "<= 500",
             "rss_mb", True),
            ("TensorFlow in the server", "yes" if results["tensorflow_loaded"] else "no", "no", "", True)]
    print(f"serving bench: {os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}, {args.workers} workers")
    print("| figure | value | target | met |\n|---|---|---|---|")
    for label, value, target, key, lower in rows:
        met = ""
        if key:
            met = "yes" if (results[key] <= TARGETS[key] if lower else results[key] >= TARGETS[key]) else "NO"
        print(f"| {label} | {value} | {target} | {met} |")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
