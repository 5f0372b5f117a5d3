"""The pool that fits networks side by side: a stage killed outright (SIGKILL, the OOM
killer) leaves no worker behind, fitting or idling for no one."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, project_env

pytestmark = [pytest.mark.slow, pytest.mark.long]  # CI runs it (`pytest -m long`)

ENDLESS_FIT = r'''
import sys
import numpy as np
from crypto_forecast.model.parallel import FitJob, fit_all
from crypto_forecast.params import Params

params = Params.model_validate({"preprocess": {"window": 5}, "evaluate": {"ma_window": 3},
                                "train": {"epochs": 100000, "patience": 100000}})
rng = np.random.default_rng(0)
arrays = {"x_train": rng.random((40, 5, 1), dtype=np.float32),
          "y_train": rng.random(40, dtype=np.float32),
          "x_val": rng.random((8, 5, 1), dtype=np.float32),
          "y_val": rng.random(8, dtype=np.float32)}
jobs = [FitJob(name, params, arrays, f"{sys.argv[1]}/{name}.keras") for name in ("a", "b")]
fit_all(jobs, workers=2, on_epoch=lambda event: print("epoch", event.name, flush=True))
'''


def _children(pid: int) -> set[int]:
    found = set()
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                found.add(int(entry.name))
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc").is_dir(), reason="reads /proc")
def test_workers_leave_when_the_stage_is_killed(tmp_path: Path) -> None:
    env = {**project_env(tmp_path), "PYTHONPATH": str(ROOT)}
    log = (tmp_path / "stderr.log").open("w")
    proc = subprocess.Popen([sys.executable, "-c", ENDLESS_FIT, str(tmp_path)], cwd=tmp_path,
                            env=env, stdout=subprocess.PIPE, stderr=log, text=True)
    try:
        assert proc.stdout is not None
        seen: set[str] = set()
        deadline = time.monotonic() + 180
        while len(seen) < 2 and time.monotonic() < deadline:  # both workers are fitting
            line = proc.stdout.readline()
            if not line:  # the script ended
                break
            if line.startswith("epoch"):
                seen.add(line.split()[1])
        assert seen == {"a", "b"}, (tmp_path / "stderr.log").read_text()[-2000:]
        workers = {pid for pid in _children(proc.pid) if "spawn_main" in
                   Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")}
        assert len(workers) == 2, workers
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 20
        while any(_alive(pid) for pid in workers) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [pid for pid in workers if _alive(pid)], "workers outlived the killed stage"
    finally:
        log.close()
        if proc.poll() is None:
            proc.kill()
        for pid in _children(proc.pid):
            os.kill(pid, signal.SIGKILL)
