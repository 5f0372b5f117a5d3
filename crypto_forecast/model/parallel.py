"""Fitting several networks at once, one worker process per core.

A compiled training step runs on one core, so the walk-forward folds and the live model
train side by side in a pool of fresh (`spawn`) processes: each imports Keras on its own,
seeds it, fits with `fit_network` (the one recipe) and saves its model where it is told.
Every epoch is reported back to the parent as an event, so the parent alone logs progress
and MLflow metrics. The parent keeps no half-written model: workers save into a folder
the caller later moves into place.

Determinism holds per model: the same params, seed and arrays give bit-identical weights
whichever worker fits them and whatever ran before (tests/model/test_walk_forward.py).

Ctrl-C goes to the parent (workers ignore SIGINT); the parent notes it, stops the pool at
its next check (terminating the workers) and the interrupt carries on as a
KeyboardInterrupt, never in the middle of an MLflow write.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any

import numpy as np

from crypto_forecast.errors import raise_if_interrupted, request_interrupt
from crypto_forecast.params import Params


@dataclass(frozen=True)
class FitJob:
    """One network to fit: its name, the params (the recipe, the seed), its arrays and the
    `.keras` path the worker saves it to."""

    name: str
    params: Params
    arrays: dict[str, np.ndarray]
    out: str


@dataclass(frozen=True)
class FitResult:
    name: str
    history: dict[str, list[float]]
    param_count: int
    seconds: float


@dataclass(frozen=True)
class EpochEvent:
    """What a worker reports after each epoch."""

    name: str
    epoch: int  # 1-based
    loss: float
    val_loss: float
    seconds: float


_events: Any = None  # the worker's queue to the parent
_parent = 0  # the parent's pid


def _init_worker(events: Any) -> None:
    import warnings

    global _events, _parent
    _events, _parent = events, os.getppid()
    # Ctrl-C in a terminal reaches the whole process group: the parent handles it and ends
    # the workers, which must not each print a KeyboardInterrupt traceback meanwhile.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if not os.environ.get("PYTHONWARNINGS"):
        warnings.simplefilter("ignore")  # as the stage itself does (crypto_forecast.cli)
    threading.Thread(target=_exit_with_parent, daemon=True).start()


def _exit_with_parent() -> None:
    """A stage killed outright (SIGKILL, OOM) cannot stop its pool: each worker leaves on its
    own within a second of its parent's death instead of fitting, or idling, for no one."""
    while os.getppid() == _parent:
        time.sleep(1.0)
    os._exit(1)


def _fit(job: FitJob) -> FitResult:
    from crypto_forecast.model.backend import use_backend

    use_backend(job.params.train.backend)
    import keras

    from crypto_forecast.model.training import fit_network, require_finite

    class Report(keras.callbacks.Callback):  # type: ignore[misc]
        def on_epoch_begin(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            self._t0 = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict[str, float] | None = None) -> None:
            logs = logs or {}
            _events.put(EpochEvent(job.name, epoch + 1, float(logs.get("loss", np.nan)),
                                   float(logs.get("val_loss", np.nan)),
                                   time.perf_counter() - self._t0))

    t0 = time.perf_counter()
    model, history = fit_network(job.params, job.arrays, [Report()])
    seconds = time.perf_counter() - t0
    require_finite(model, history)
    model.save(job.out)
    return FitResult(job.name, history, int(model.count_params()), seconds)


def default_workers(jobs: int) -> int:
    """One worker per core this process may use, never more than there are networks."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores, jobs))


def fit_all(jobs: Sequence[FitJob], *, workers: int,
            on_epoch: Callable[[EpochEvent], None] = lambda event: None,
            on_done: Callable[[FitResult], None] = lambda result: None) -> dict[str, FitResult]:
    """Fit every job in `workers` processes (in the order given: put the one people wait for
    first); `on_epoch` and `on_done` run in this process as the events arrive. A worker's
    error (a diverged fit: `PipelineError`) is raised here once the pool is stopped."""
    context = multiprocessing.get_context("spawn")
    # While the pool runs, Ctrl-C and SIGTERM only set the interrupt latch; the loop below
    # raises KeyboardInterrupt at its next check (within 0.2 s). Raised wherever it landed,
    # it could cut an MLflow write in `on_epoch` in half and leave SQLite locked, so the
    # run could not then be ended KILLED.
    restore = _defer_interrupts()
    # SimpleQueue: a put is written to the pipe before the worker returns its result, so no
    # epoch event can arrive after the fit that sent it is reported done.
    events = context.SimpleQueue()
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=context,
                               initializer=_init_worker, initargs=(events,))
    results: dict[str, FitResult] = {}
    try:
        pending: set[Future[FitResult]] = {pool.submit(_fit, job) for job in jobs}
        while pending:
            done, pending = wait(pending, timeout=0.2, return_when=FIRST_COMPLETED)
            _drain(events, on_epoch)
            for future in done:
                result = future.result()  # a worker's exception surfaces here
                results[result.name] = result
                on_done(result)
            raise_if_interrupted()
        _drain(events, on_epoch)
        raise_if_interrupted()
    except BaseException:
        _stop(pool)
        raise
    finally:
        restore()
    pool.shutdown(wait=True)
    return {job.name: results[job.name] for job in jobs}


def _defer_interrupts() -> Callable[[], None]:
    """Make SIGINT and SIGTERM set the latch only; returns what puts the handlers back."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGINT, signal.SIGTERM)}

    def latch(signum: int, frame: object) -> None:
        request_interrupt()

    for sig in saved:
        signal.signal(sig, latch)

    def restore() -> None:
        for sig, handler in saved.items():
            signal.signal(sig, handler)

    return restore


def _drain(events: Any, on_epoch: Callable[[EpochEvent], None]) -> None:
    while not events.empty():
        on_epoch(events.get())


def _stop(pool: ProcessPoolExecutor) -> None:
    """End the workers now: queued fits are cancelled, running ones terminated."""
    processes = list(getattr(pool, "_processes", {}).values())
    pool.shutdown(wait=False, cancel_futures=True)
    for process in processes:
        if process.is_alive():
            process.terminate()
    for process in processes:
        process.join(timeout=10)
