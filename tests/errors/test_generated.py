"""Generated bad input (Hypothesis): params.yaml files, price CSVs and damaged stage files,
run through the real stage entry points. For every example: exit 0, or exactly one ERROR
line and a non-zero exit; never an unexpected exception (a traceback); and on failure
every earlier output byte-identical.

The stages run in this process (`runpy`, as `python -m stages.<name>` would), in a private
project, so one example costs milliseconds instead of an interpreter start. Two profiles:
the fast one runs in `make test`; `pytest -m hypothesis_long` (CI, `.ci/run`) runs ten times
as many examples. `--hypothesis-show-statistics` prints how many each test ran.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import json
import logging
import os
import runpy
import shutil
import signal
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

from crypto_forecast.cli import process_state_kept
from crypto_forecast.errors import ConfigError
from crypto_forecast.params import load_params
from tests.errors.conftest import params_with, snapshot
from tests.helpers import TINY_PARAMS, new_project, write_params

FAST = settings(max_examples=40, deadline=None, derandomize=False, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                       HealthCheck.filter_too_much])
LONG = settings(FAST, max_examples=400)
long = pytest.mark.hypothesis_long


# --- the in-process stage harness ------------------------------------------------------------

class _Errors(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(record.getMessage())


def run_entry(project: Path, name: str) -> tuple[int, list[str]]:
    """`python -m stages.<name>` in `project`, in this process: (exit code, ERROR lines).
    Any exception other than the stage's own exit propagates: that is a traceback."""
    errors = _Errors()
    root = logging.getLogger()
    root.addHandler(errors)
    handlers = {s: signal.getsignal(s) for s in (signal.SIGINT, signal.SIGTERM)}
    cwd, argv = os.getcwd(), sys.argv
    os.chdir(project)
    sys.argv = [f"stages.{name}"]  # as `python -m stages.<name>` has it: pytest's are not its
    try:
        with process_state_kept():  # environment, filters, log level, stderr as they were
            runpy.run_module(f"stages.{name}", run_name="__main__", alter_sys=False)
        code = 0
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        os.chdir(cwd)
        sys.argv = argv
        root.removeHandler(errors)
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return code, errors.lines


def check_contract(project: Path, name: str, before: dict[str, bytes]) -> int:
    """Run a stage and assert the contract; returns the exit code."""
    code, lines = run_entry(project, name)
    if code == 0:
        assert lines == [], lines
    else:
        assert len(lines) == 1, lines
        assert "\n" not in lines[0] and len(lines[0]) < 2000, lines[0]
        assert snapshot(project) == before, f"{name} failed ({lines[0]}) and changed outputs"
    return code


@contextlib.contextmanager
def restored(project: Path, baseline: dict[str, bytes]) -> Iterator[dict[str, bytes]]:
    """Put the project's outputs back to `baseline` (the good pipeline's) around one example."""
    for folder in ("data", "models", "reports"):
        shutil.rmtree(project / folder, ignore_errors=True)
    for rel, data in baseline.items():
        (project / rel).parent.mkdir(parents=True, exist_ok=True)
        (project / rel).write_bytes(data)
    write_params(project, TINY_PARAMS)
    yield snapshot(project)


class Blob(bytes):
    """A good file's bytes, shown briefly in a falsifying example."""

    def __repr__(self) -> str:
        return f"<{len(self)} bytes>"


class Workspace(tuple[Path, dict[str, bytes]]):
    """(project, baseline outputs), shown briefly in a falsifying example."""

    def __repr__(self) -> str:
        return f"Workspace({self[0]})"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, dict[str, bytes]]]:
    """A project whose download and preprocess ran once (the baseline every example starts
    from), plus a valid models/ETH-USD/train_info.json."""
    project = new_project(tmp_path_factory.mktemp("generated") / "project")
    for name in ("download", "preprocess"):
        code, lines = run_entry(project, name)
        assert code == 0, lines
    (project / "models/ETH-USD").mkdir(parents=True)
    (project / "models/ETH-USD/train_info.json").write_text(json.dumps(TRAIN_INFO))
    yield Workspace((project, snapshot(project)))


_MODEL: dict[str, Any] = {
    "run_id": "0" * 32, "train_first": "2022-01-12", "train_last": "2022-08-24",
    "val_first": "2022-08-25", "val_last": "2022-10-18", "scaler_min": -0.1, "scaler_max": 0.1,
    "epochs_run": 1, "best_epoch": 1, "best_val_loss": 0.01, "train_seconds": 1.0}
TRAIN_INFO: dict[str, Any] = {
    "schema_version": 2, "run_id": "0" * 32, "experiment_id": "1", "param_count": 30651,
    "epochs_run": 1, "best_epoch": 1, "best_val_loss": 0.01, "train_seconds": 1.0,
    "units": [50, 50], "window": 10, "target": "log_return", "registered_model": "eth-usd-lstm",
    "model_version": 1,
    "live": {**_MODEL, "name": "live", "path": "models/ETH-USD/model.keras", "cutoff": None},
    "folds": [{**_MODEL, "name": "fold_1", "path": "models/ETH-USD/folds/fold_1.keras",
               "cutoff": "2022-10-19"}]}


# --- strategies ---------------------------------------------------------------------------------

_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=24)
_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True), _text,
    st.sampled_from(["2022-01-01", "2023-06-30", "1970-01-01", "ETH-USD", "csv", "synthetic",
                     "price", "log_return", "warn", "error", "volatility", "none", "../../x",
                     "0x10", "1e400", "-0", "yes", "~"]),
)
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4)
                       | st.dictionaries(_text, inner, max_size=3), max_leaves=6)
_KEYS = {section: list(values) for section, values in TINY_PARAMS.items()}
_KEYS["download"] += ["max_daily_move", "on_jump"]
_KEYS["evaluate"] += ["ma_window", "interval_levels", "interval_scaling", "volatility_days"]


@st.composite
def params_files(draw: st.DrawFn) -> bytes:
    """A params.yaml: the tiny params with a few keys changed, removed or added, or raw text."""
    if draw(st.integers(0, 9)) == 0:
        return draw(st.one_of(_text.map(str.encode), st.binary(max_size=300)))
    params: dict[str, Any] = json.loads(json.dumps(TINY_PARAMS))
    for _ in range(draw(st.integers(1, 3))):
        section = draw(st.sampled_from([*_KEYS, "trian", "x"]))
        key = draw(st.sampled_from([*_KEYS.get(section, []), "epoch", "seeds"]))
        how = draw(st.sampled_from(["set", "set", "set", "delete", "section"]))
        if how == "section":
            params[section] = draw(_values)
        elif how == "delete":
            if isinstance(params.get(section), dict):
                params[section].pop(key, None)
        else:
            if not isinstance(params.get(section), dict):
                params[section] = {}
            params[section][key] = draw(_values)
    download = params.get("download")
    if isinstance(download, dict) and download.get("source", "auto") in ("auto", "yahoo"):
        download["source"] = "synthetic"  # never the network
    return yaml.safe_dump(params, sort_keys=False, allow_unicode=True).encode("utf-8")


_FORMATS = ["%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d 00:00:00+00:00", "%Y-%m-%dT00:00:00Z",
            "%d/%m/%Y", "%Y%m%d", "%b %d %Y"]
_ENCODINGS = ["utf-8", "utf-8", "utf-8-sig", "utf-16", "latin-1"]


@st.composite
def price_csvs(draw: st.DrawFn) -> bytes:
    """A price CSV of any shape: rows, gaps, duplicates, order, magnitudes, constants,
    NaN/inf and words, separators, encodings, headers, and now and then cut short."""
    n = draw(st.integers(0, 90))
    start = draw(st.dates(dt.date(1980, 1, 1), dt.date(2030, 1, 1)))
    steps = draw(st.lists(st.sampled_from([1, 1, 1, 1, 1, 1, 2, 3, 0, -1]), min_size=n, max_size=n))
    days = np.cumsum([0, *steps[1:]]) if n else np.array([], dtype=int)
    dates = [start + dt.timedelta(days=int(d)) for d in days]
    kind = draw(st.sampled_from(["walk", "walk", "walk", "constant", "wild", "spike"]))
    magnitude = draw(st.sampled_from([1e-12, 1e-9, 1e-6, 0.01, 1.0, 100.0, 3e4, 1e12, 1e15, 1e16,
                                      1e300, 1.7e308]))
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    if kind == "walk":
        closes: list[Any] = list(magnitude * np.exp(np.cumsum(rng.normal(0, 0.03, n))))
    elif kind == "constant":
        closes = [magnitude] * n
    elif kind == "spike":
        closes = list(100 * np.exp(np.cumsum(rng.normal(0, 0.02, n))))
        if n:
            closes[draw(st.integers(0, n - 1))] = draw(st.sampled_from([1e12, 1e-6, 0.0, -5.0]))
    else:
        closes = draw(st.lists(st.one_of(st.floats(allow_nan=True, allow_infinity=True),
                                          st.sampled_from(["", "n/a", "1,234.5", "null", " 12 "])),
                               min_size=n, max_size=n))
    fmt = draw(st.sampled_from(_FORMATS))
    sep = draw(st.sampled_from([",", ",", ";", "\t", "|"]))
    header = draw(st.sampled_from([["Date", "Close"], ["Date", "Open", "Close", "Volume"],
                                   ["date", "close"], [" Date ", " Close"], ["Date", "Price"],
                                   ["Close", "Date"]]))
    lines = [sep.join(header)]
    for day, close in zip(dates, closes, strict=True):
        cells = {"Date": day.strftime(fmt), "Close": close if isinstance(close, str) else
                 draw(st.sampled_from([repr, "{:.10g}".format, "{:.3e}".format]))(float(close))}
        lines.append(sep.join(cells.get(h.strip().title(), "1") for h in header))
    text = draw(st.sampled_from(["\n", "\r\n"])).join(lines) + "\n"
    data = text.encode(draw(st.sampled_from(_ENCODINGS)), errors="replace")
    if draw(st.integers(0, 7)) == 0:
        data = data[: draw(st.integers(0, len(data)))]
    return data


_json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-(2**64), 2**64),
                                      st.floats(allow_nan=False), _text),
                            lambda inner: st.lists(inner, max_size=3)
                            | st.dictionaries(_text, inner, max_size=3), max_leaves=5)


@st.composite
def damaged_json(draw: st.DrawFn, good: dict[str, Any]) -> bytes:
    """A JSON stage file with keys removed, changed or added, or its bytes cut or replaced."""
    how = draw(st.sampled_from(["keys", "keys", "keys", "truncate", "bytes", "nonfinite"]))
    text = json.dumps(good)
    if how == "truncate":
        return text.encode()[: draw(st.integers(0, len(text) - 1))]
    if how == "bytes":
        return draw(st.binary(max_size=200))
    damaged = dict(good)
    if how == "nonfinite":
        damaged[draw(st.sampled_from(sorted(good)))] = draw(st.sampled_from(
            [float("nan"), float("inf"), -float("inf"), 1e308]))
        return json.dumps(damaged).encode()
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from([*sorted(good), "extra"]))
        if draw(st.booleans()):
            damaged.pop(key, None)
        else:
            damaged[key] = draw(_json_values)
    return json.dumps(damaged).encode()


@st.composite
def damaged_windows(draw: st.DrawFn, good: bytes) -> bytes:
    """windows.npz cut short, overwritten, or rebuilt with missing, reshaped, retyped or
    non-finite arrays."""
    how = draw(st.sampled_from(["truncate", "bytes", "arrays", "arrays", "arrays"]))
    if how == "truncate":
        return good[: draw(st.integers(0, len(good) - 1))]
    if how == "bytes":
        return draw(st.binary(max_size=300))
    with np.load(io.BytesIO(good)) as npz:
        arrays = {k: npz[k] for k in npz.files}
    for _ in range(draw(st.integers(1, 3))):
        key = draw(st.sampled_from(sorted(arrays)))
        change = draw(st.sampled_from(["drop", "reshape", "retype", "nan", "empty", "rename"]))
        if change == "drop":
            arrays.pop(key, None)
        elif key not in arrays:
            continue
        elif change == "reshape":
            arrays[key] = arrays[key].reshape(-1)
        elif change == "retype":
            arrays[key] = arrays[key].astype(draw(st.sampled_from(["int64", "U3", "bool"])))
        elif change == "nan" and arrays[key].dtype.kind == "f" and arrays[key].size:
            arrays[key] = arrays[key].copy()
            arrays[key].flat[0] = draw(st.sampled_from([np.nan, np.inf]))
        elif change == "nan":
            continue
        elif change == "empty":
            arrays[key] = arrays[key][:0]
        else:
            arrays["z" + key] = arrays.pop(key)
    buf = io.BytesIO()
    np.savez(buf, allow_pickle=False, **arrays)
    return buf.getvalue()


# --- the properties -------------------------------------------------------------------------

def _params_property(workspace: tuple[Path, dict[str, bytes]], text: bytes) -> None:
    project, baseline = workspace
    with restored(project, baseline) as before:
        (project / "params.yaml").write_bytes(text)
        try:
            source = load_params(project / "params.yaml").download.source
        except ConfigError:
            source = None
        if source in ("auto", "yahoo"):
            reject()  # valid params that ask for Yahoo: no network in tests
        if check_contract(project, "download", before) == 0:
            check_contract(project, "preprocess", snapshot(project))


def _csv_property(workspace: tuple[Path, dict[str, bytes]], data: bytes, on_jump: str) -> None:
    project, baseline = workspace
    with restored(project, baseline):
        (project / "prices.csv").write_bytes(data)
        write_params(project, params_with(download__source="csv", download__csv_path="prices.csv",
                                          download__on_jump=on_jump))
        before = snapshot(project)
        if check_contract(project, "download", before) == 0:
            check_contract(project, "preprocess", snapshot(project))


_STAGE_FILES: dict[str, tuple[str, str]] = {
    # file: (stage that reads it first, files removed so a good file ends the run quickly)
    "models/ETH-USD/train_info.json": ("evaluate", ""),
    "data/ETH-USD/processed/series.csv": ("train", "data/ETH-USD/raw/meta.json"),
    "data/ETH-USD/raw/ETH-USD.csv": ("preprocess", ""),
    "data/ETH-USD/raw/meta.json": ("train", "data/ETH-USD/processed/series.csv"),
}


def _damage_property(workspace: tuple[Path, dict[str, bytes]], data: st.DataObject,
                     rel: str) -> None:
    project, baseline = workspace
    name, remove = _STAGE_FILES[rel]
    with restored(project, baseline):
        good = Blob((project / rel).read_bytes())
        if rel.endswith(".npz"):
            damaged = data.draw(damaged_windows(good))
        elif rel.endswith(".json"):
            damaged = data.draw(damaged_json(json.loads(good)))
        else:
            damaged = data.draw(st.one_of(
                st.binary(max_size=300),
                st.integers(0, len(good) - 1).map(lambda n: good[:n]),
                st.tuples(st.integers(0, len(good) - 1), st.binary(min_size=1, max_size=20)).map(
                    lambda cut: good[: cut[0]] + cut[1] + good[cut[0] + len(cut[1]):])))
        (project / rel).write_bytes(damaged)
        if remove:
            (project / remove).unlink()
        check_contract(project, name, snapshot(project))


@given(text=params_files())
@FAST
def test_generated_params(workspace: tuple[Path, dict[str, bytes]], text: bytes) -> None:
    _params_property(workspace, text)


@long
@given(text=params_files())
@LONG
def test_generated_params_long(workspace: tuple[Path, dict[str, bytes]], text: bytes) -> None:
    _params_property(workspace, text)


@given(data=price_csvs(), on_jump=st.sampled_from(["warn", "error"]))
@FAST
def test_generated_price_csvs(workspace: tuple[Path, dict[str, bytes]], data: bytes,
                              on_jump: str) -> None:
    _csv_property(workspace, data, on_jump)


@long
@given(data=price_csvs(), on_jump=st.sampled_from(["warn", "error"]))
@LONG
def test_generated_price_csvs_long(workspace: tuple[Path, dict[str, bytes]], data: bytes,
                                   on_jump: str) -> None:
    _csv_property(workspace, data, on_jump)


@pytest.mark.parametrize("rel", sorted(_STAGE_FILES))
@given(data=st.data())
@settings(FAST, max_examples=15)
def test_generated_damaged_stage_files(workspace: tuple[Path, dict[str, bytes]],
                                       data: st.DataObject, rel: str) -> None:
    _damage_property(workspace, data, rel)


@long
@pytest.mark.parametrize("rel", sorted(_STAGE_FILES))
@given(data=st.data())
@settings(FAST, max_examples=150)
def test_generated_damaged_stage_files_long(workspace: tuple[Path, dict[str, bytes]],
                                            data: st.DataObject, rel: str) -> None:
    _damage_property(workspace, data, rel)


def test_harness_sees_a_traceback_and_an_error_line(workspace: tuple[Path, dict[str, bytes]]
                                                    ) -> None:
    """The harness itself can fail: a stage error is one counted line, a bug propagates."""
    project, baseline = workspace
    with restored(project, baseline):
        write_params(project, params_with(train__epoch=3))
        assert run_entry(project, "download") == (2, [
            "params.yaml: train.epoch: unknown key (did you mean 'epochs'?) — fix the spelling "
            "or remove it"])
    with restored(project, baseline):
        (project / "params.yaml").write_text("download: {ticker: ETH-USD}\n")
        saved = sys.modules["crypto_forecast.params"].load_params

        def bug() -> None:
            raise RuntimeError("a bug")
        sys.modules["crypto_forecast.params"].load_params = bug
        try:
            with pytest.raises(RuntimeError, match="a bug"):
                run_entry(project, "download")
        finally:
            sys.modules["crypto_forecast.params"].load_params = saved


# --- tracking URIs ------------------------------------------------------------------------------

_uris = st.one_of(
    _text,
    st.from_regex(r"\A(sqlite|http|https|postgresql(\+(psycopg|pg8000|psycopg2))?|mysql|mssql|file|"
                  r"ftp|databricks|)(:|://|:///|:////)[\w\[\]:@/.?=&%+ -]{0,40}\Z"),
    st.sampled_from(["sqlite:///mlflow.db", "sqlite:////tmp/x/mlflow.db", "http://[::1",
                     "http://[::1]:5000", "https://host:0", "http://:80", "sqlite:///./a/../b.db",
                     "postgresql://u:p@/db", "sqlite:///file:x.db?mode=ro&uri=true"]),
)


def _uri_property(uri: str) -> None:
    from crypto_forecast.errors import TrackingError
    from crypto_forecast.tracking.store import normalize_uri

    try:
        got = normalize_uri(uri)
    except TrackingError as exc:
        assert "\n" not in str(exc) and "MLFLOW_TRACKING_URI" in str(exc), str(exc)
        return
    assert got == got.strip() and got
    if got.startswith("sqlite:///") and not got.startswith("sqlite:///file:"):
        assert Path(got.removeprefix("sqlite:///").partition("?")[0]).is_absolute(), got
    assert normalize_uri(got) == got  # normalised once, stable after


@given(uri=_uris)
@settings(FAST, max_examples=200)
def test_generated_tracking_uris(uri: str) -> None:
    """Every MLFLOW_TRACKING_URI is either accepted in a stable, absolute form or refused
    with one TrackingError line; never another exception."""
    _uri_property(uri)


@long
@given(uri=_uris)
@settings(FAST, max_examples=3000)
def test_generated_tracking_uris_long(uri: str) -> None:
    _uri_property(uri)
