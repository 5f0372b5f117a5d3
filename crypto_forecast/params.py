"""Typed, frozen settings for every stage, validated at the edge.

`load_params()` reads params.yaml once and returns a `Params` whose sections are
immutable pydantic models that forbid unknown keys. Any problem becomes one
`ConfigError` line naming the key and the fix, e.g.

    params.yaml: train.epoch: unknown key (did you mean 'epochs'?) — fix the spelling
"""

from __future__ import annotations

import datetime as dt
import difflib
import hashlib
import json
import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from crypto_forecast.errors import ConfigError
from crypto_forecast.io import paths

# Yahoo symbols: letters, digits and . ^ = - (e.g. ETH-USD, ^GSPC, EURUSD=X, BRK.B).
# No slash, no "..", no spaces: the ticker becomes a file name under data/raw/.
MAX_LAYERS = 16
MAX_TICKERS = 200
_TICKER = re.compile(r"^[A-Za-z0-9^=][A-Za-z0-9.^=-]{0,31}$")


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False)


def check_ticker(value: str) -> str:
    """A Yahoo symbol that is also a safe folder name (data/<TICKER>/), or a ValueError."""
    if not _TICKER.match(value) or ".." in value:
        raise ValueError(
            f"{value!r} is not a Yahoo symbol such as ETH-USD (letters, digits, '.', '-', '^', "
            "'='; no '/', '..' or spaces)"
        )
    if value != value.upper():
        raise ValueError(f"{value!r} must be written in capitals, as Yahoo lists it: "
                         f"{value.upper()}")
    return value


class DownloadParams(_Section):
    """Where the prices come from."""

    # The portfolio: each symbol gets its own chain of stages (dvc.yaml's `matrix`), files
    # (data/<TICKER>/, models/<TICKER>/, reports/<TICKER>/) and registered forecaster.
    tickers: tuple[str, ...] = ("ETH-USD",)
    start: dt.date = dt.date(2018, 1, 1)
    end: dt.date = dt.date(2024, 1, 1)
    source: Literal["auto", "yahoo", "csv", "synthetic"] = "auto"
    # source: csv reads <csv_dir>/<TICKER>.csv (Yahoo's export names), or csv_path for a
    # single ticker. csv_dir is a dependency of every download stage, so editing a file there
    # reruns download, and the chains of the tickers whose closes changed.
    csv_dir: str = "prices"
    csv_path: str | None = None
    # A close more than this many times the previous one (or below it by this factor) is
    # implausible for a daily bar: warned about loudly, or refused with on_jump: error.
    max_daily_move: float = Field(10.0, gt=1, le=1e6)
    on_jump: Literal["warn", "error"] = "warn"

    @field_validator("tickers", mode="before")
    @classmethod
    def _tickers_listed(cls, value: Any) -> Any:
        if isinstance(value, str):  # `-S download.tickers=ETH-USD`: one symbol, not a list
            return (value,)
        return value

    @field_validator("tickers")
    @classmethod
    def _tickers_are_safe(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if not value:
            raise ValueError("lists no symbol — list at least one, e.g. [ETH-USD]")
        if len(value) > MAX_TICKERS:
            raise ValueError(f"lists {len(value)} symbols; at most {MAX_TICKERS}")
        for ticker in value:
            check_ticker(ticker)
        repeated = sorted({t for t in value if value.count(t) > 1})
        if repeated:
            raise ValueError(f"lists {', '.join(repeated)} more than once — list each symbol once")
        return value

    @model_validator(mode="after")
    def _range_and_csv(self) -> DownloadParams:
        if self.start >= self.end:
            raise ValueError(
                f"start ({self.start}) must be before end ({self.end}) — swap or fix the dates"
            )
        if self.csv_path and len(self.tickers) > 1:
            raise ValueError(
                f"csv_path names one file but tickers lists {len(self.tickers)} symbols — set "
                "download.csv_dir to a folder of <TICKER>.csv files and csv_path to null")
        if not self.csv_dir.strip():
            raise ValueError("csv_dir is empty — set it to a folder (the default is prices)")
        return self

    def csv_file(self, ticker: str) -> Path:
        """The CSV that source: csv reads for `ticker`."""
        return Path(self.csv_path) if self.csv_path else Path(self.csv_dir) / f"{ticker}.csv"


class PreprocessParams(_Section):
    """Windows, the chronological split, and what the network models."""

    window: int = Field(60, ge=2)
    val_fraction: float = Field(0.1, gt=0, lt=1)
    test_fraction: float = Field(0.2, gt=0, lt=1)
    # price: the next day's scaled close (the lecture); log_return: the next day's scaled
    # log return, rebuilt into prices. Same network, same parameter count. log_return is the
    # default because it wins in walk-forward (README "Walk-forward"): a price-level network
    # cannot forecast beyond the price range it was trained on.
    target: Literal["price", "log_return"] = "log_return"
    # Walk-forward cut-offs over the last test_fraction of the history: a model per fold,
    # trained on the days before its cut-off, scored up to the next (crypto_forecast.data.folds).
    folds: int = Field(4, ge=1, le=50)

    @model_validator(mode="after")
    def _fractions_leave_training_data(self) -> PreprocessParams:
        if self.val_fraction + self.test_fraction >= 1:
            raise ValueError(
                "val_fraction + test_fraction must be below 1 so some data is left to train on"
            )
        return self


class TrainParams(_Section):
    """The lecture's network and how it is fitted."""

    units: tuple[int, ...] = (50, 50)
    epochs: int = Field(30, ge=1, le=100_000)
    batch_size: int = Field(32, ge=1, le=2**20)
    learning_rate: float = Field(0.001, gt=0, allow_inf_nan=False)
    patience: int = Field(5, ge=0)
    # What the libraries accept: NumPy's and Keras' seeds are 32-bit.
    seed: int = Field(42, ge=0, le=2**32 - 1)
    # The Keras backend that trains it (crypto_forecast.model.backend): the saved model, the
    # forecasts' code path and the registry are the same either way.
    backend: Literal["jax", "tensorflow"] = "jax"
    # Processes fitting the fold and live networks side by side; 0: one per core.
    workers: int = Field(0, ge=0, le=64)

    @field_validator("units")
    @classmethod
    def _units_positive(cls, value: tuple[int, ...]) -> tuple[int, ...]:
        if not value or any(u < 1 for u in value):
            raise ValueError("must be a non-empty list of positive layer sizes, e.g. [50, 50]")
        if len(value) > MAX_LAYERS:
            raise ValueError(f"at most {MAX_LAYERS} LSTM layers (got {len(value)})")
        return value


class EvaluateParams(_Section):
    """The rolling-origin backtest, its baselines and the conformal intervals."""

    horizon: int = Field(10, ge=1, le=365)
    ma_window: int = Field(7, ge=1)
    interval_levels: tuple[float, ...] = (0.8, 0.95)
    # none: one band width per horizon; volatility: widths in units of the recent daily
    # volatility at the origin (normalised conformal), over `volatility_days` returns.
    interval_scaling: Literal["none", "volatility"] = "volatility"
    volatility_days: int = Field(30, ge=2)

    @field_validator("interval_levels")
    @classmethod
    def _levels_are_probabilities(cls, value: tuple[float, ...]) -> tuple[float, ...]:
        if not value or any(not 0.5 <= v < 1 for v in value) or list(value) != sorted(set(value)):
            raise ValueError("must be increasing coverage levels in [0.5, 1), e.g. [0.8, 0.95]")
        if len({round(v * 100) for v in value}) != len(value):
            raise ValueError("levels must differ in whole percents (they name the band columns)")
        return value


class ForecastParams(_Section):
    horizon: int = Field(10, ge=1, le=365)
    history_days: int = Field(120, ge=1)


class MlflowParams(_Section):
    # 256: the experiments table's name column (MLflow itself checks 500, a SQL store 256).
    experiment: str = Field("crypto-forecast", min_length=1, max_length=256)

    @field_validator("experiment")
    @classmethod
    def _experiment_printable(cls, value: str) -> str:
        if value != value.strip() or not value.isprintable():
            raise ValueError("must be printable text without leading or trailing spaces")
        return value


class PromoteParams(_Section):
    """The gate that decides what is served: the LSTM's forecaster only when its walk-forward
    skill (RMSE over the best baseline's, persistence or drift, on the same origins) is
    below both limits and it improves on the current champion; else the naive one."""

    max_skill_h1: float = Field(1.0, gt=0, le=10, allow_inf_nan=False)
    max_skill_mean: float = Field(1.0, gt=0, le=10, allow_inf_nan=False)
    # The least drop in mean skill vs the champion's LSTM (scored on the same origins).
    min_gain_vs_champion: float = Field(0.0, ge=-10, le=10, allow_inf_nan=False)
    # true: evaluate moves the registry's `champion` to what the gate chose; false: only
    # `candidate` moves and a person promotes (`make promote`).
    auto: bool = True


class RefreshParams(_Section):
    """The daily refresh's retraining policy (read by `crypto_forecast refresh`, no stage)."""

    # Move the training cut (and so retrain) once the last close is this many days past it.
    retrain_every_days: int = Field(7, ge=1, le=3650)
    # The alarm also fires when the served forecasts' realized RMSE over persistence's, on the
    # last 30 origins, is above this (the naive forecaster scores exactly 1).
    alarm_max_skill: float = Field(1.25, gt=0, le=100, allow_inf_nan=False)


class Params(_Section):
    """All of params.yaml."""

    download: DownloadParams = DownloadParams()
    preprocess: PreprocessParams = PreprocessParams()
    train: TrainParams = TrainParams()
    evaluate: EvaluateParams = EvaluateParams()
    forecast: ForecastParams = ForecastParams()
    mlflow: MlflowParams = MlflowParams()
    promote: PromoteParams = PromoteParams()
    refresh: RefreshParams = RefreshParams()

    @model_validator(mode="after")
    def _cross_section(self) -> Params:
        if self.forecast.horizon > self.evaluate.horizon:
            raise ValueError(
                f"forecast.horizon ({self.forecast.horizon}) is above evaluate.horizon "
                f"({self.evaluate.horizon}), so its bands would be uncalibrated — raise "
                "evaluate.horizon or lower forecast.horizon"
            )
        if self.evaluate.ma_window > self.preprocess.window:
            raise ValueError(
                f"evaluate.ma_window ({self.evaluate.ma_window}) is above preprocess.window "
                f"({self.preprocess.window}) — lower evaluate.ma_window"
            )
        return self

    def flat(self) -> dict[str, Any]:
        """Every param as `section.key -> value`, the form MLflow logs."""
        out: dict[str, Any] = {}
        for section, values in self.model_dump(mode="json").items():
            for key, value in values.items():
                out[f"{section}.{key}"] = value
        return out

    def digest(self) -> str:
        """A short stable hash of all params, to match MLflow runs with DVC experiments."""
        blob = json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


class LiveParams(_Section):
    """live.yaml: the day the pipeline runs as of, and the last close the networks learn from.

    Written by `crypto_forecast refresh`; both null (the committed default) is the pipeline as
    params.yaml says: closes through download.end, networks trained on all of them.
    """

    # The morning the pipeline runs on: it sees closes through the day before (download.end
    # is ignored) and forecasts this day and the ones after it.
    as_of: dt.date | None = None
    # The training series holds the closes through this day; it moves only on retrain days.
    # One day for every ticker, or a day per ticker ({ETH-USD: "2023-11-30", ...}) when the
    # refresh retrained some of them only; a ticker the mapping leaves out has no cut.
    train_cut: dt.date | dict[str, dt.date] | None = None

    @field_validator("train_cut")
    @classmethod
    def _cut_keys_are_tickers(cls, value: dt.date | dict[str, dt.date] | None
                              ) -> dt.date | dict[str, dt.date] | None:
        if isinstance(value, dict):
            for ticker in value:
                check_ticker(ticker)
        return value

    @model_validator(mode="after")
    def _cut_before_as_of(self) -> LiveParams:
        cuts = self.train_cut.values() if isinstance(self.train_cut, dict) else [self.train_cut]
        for cut in cuts:
            if self.as_of is not None and cut is not None and cut >= self.as_of:
                raise ValueError(f"train_cut ({cut}) must be before as_of ({self.as_of}): "
                                 "the networks cannot learn from a close not yet seen")
        return self

    def cut_for(self, ticker: str) -> dt.date | None:
        """The training cut of `ticker`."""
        if isinstance(self.train_cut, dict):
            return self.train_cut.get(ticker)
        return self.train_cut

    def data_end(self, download: DownloadParams) -> dt.date:
        """The exclusive end of the data window: the as-of day, else download.end."""
        end = self.as_of or download.end
        if end <= download.start:
            raise ConfigError(f"{paths.LIVE_PARAMS}: as_of ({end}) is not after download.start "
                              f"({download.start}) — choose a later day or an earlier start")
        return end


def load_live(path: Path = paths.LIVE_PARAMS) -> LiveParams:
    """Read and validate live.yaml; a missing file is the default (no as-of day, no cut)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return LiveParams()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path} cannot be read ({exc}) — restore it with "
                          f"`git checkout {path}`") from None
    raw = safe_yaml(text, str(path))
    if raw is None:
        return LiveParams()
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: must be a mapping with as_of and train_cut — restore it with "
                          f"`git checkout {path}`")
    try:
        return LiveParams.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"{path}: {_describe(dict(exc.errors()[0]), LiveParams)}") from None


def _describe(error: dict[str, Any], model: type[BaseModel]) -> str:
    loc = ".".join(str(p) for p in error["loc"])
    kind = error["type"]
    if kind == "extra_forbidden":
        return f"{loc}: unknown key{_suggest(error['loc'], model)} — fix the spelling or remove it"
    msg = str(error["msg"]).removeprefix("Value error, ")
    if not loc:  # a cross-section check: its message names the keys and the fix
        return msg
    got = error.get("input")
    shown = "" if isinstance(got, dict) else f" (got {got!r})"
    fix = "" if " — " in msg else " — fix it in params.yaml"  # some messages name their own fix
    return f"{loc}: {msg}{shown}{fix}"


def _suggest(loc: tuple[Any, ...], model: type[BaseModel]) -> str:
    """' (did you mean 'epochs'?)' for a typo'd key, found among the section's real keys."""
    target: type[BaseModel] | None = model
    for part in loc[:-1]:
        field = target.model_fields.get(str(part)) if target else None
        annotation = field.annotation if field else None
        target = annotation if isinstance(annotation, type) and issubclass(
            annotation, BaseModel
        ) else None
    if target is None:
        return ""
    close = difflib.get_close_matches(str(loc[-1]), list(target.model_fields), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def parse_params(raw: Any, source: str = "params.yaml") -> Params:
    """Validate an already-loaded params mapping; raise one-line `ConfigError` on problems."""
    if raw is None:
        raw = {}
    if not isinstance(raw, dict):
        raise ConfigError(
            f"{source}: top level must be a mapping of sections, got {str(raw)[:80]} — write "
            "`section:` lines with indented `key: value` lines under them, as in the README"
        )
    try:
        return Params.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        more = len(exc.errors()) - 1
        tail = f" (+{more} more problem{'s' if more > 1 else ''})" if more else ""
        raise ConfigError(f"{source}: {_describe(dict(first), Params)}{tail}") from None


# A params.yaml is a few hundred bytes. Past these bounds it is a mistake or a hostile file
# (a 367-byte alias "bomb" expands to billions of values), refused before anything expands it.
MAX_PARAMS_BYTES = 1024 * 1024
MAX_YAML_NODES = 10_000
MAX_YAML_DEPTH = 32


def load_params(path: Path = paths.PARAMS) -> Params:
    """Read and validate params.yaml."""
    try:
        with path.open("rb") as fh:
            data = fh.read(MAX_PARAMS_BYTES + 1)
    except FileNotFoundError:
        raise ConfigError(f"{path} not found — run from the project root") from None
    except OSError as exc:
        raise ConfigError(f"{path} cannot be read ({exc.strerror}) — check its permissions") from None
    if len(data) > MAX_PARAMS_BYTES:
        raise ConfigError(f"{path} is over {MAX_PARAMS_BYTES // 1024} KiB, far more than any "
                          "params file — restore it from git (`git checkout params.yaml`)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{path} is not UTF-8 text (byte {exc.start}: {exc.reason}) — save it "
                          "as UTF-8") from None
    return parse_params(safe_yaml(text, str(path)), str(path))


def safe_yaml(text: str, source: str) -> Any:
    """`yaml.safe_load`, bounded: aliases may not expand past MAX_YAML_NODES values, nesting
    not past MAX_YAML_DEPTH, and no alias may contain itself."""
    loader: yaml.SafeLoader | None = None
    try:
        loader = yaml.SafeLoader(text)  # its reader already refuses non-printable characters
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expansion(node, source)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        problem = getattr(exc, "problem", None) or "invalid YAML"
        raise ConfigError(f"{source}: not valid YAML{where}: {problem} — fix the syntax") from None
    except RecursionError:
        raise ConfigError(f"{source}: nested too deeply to be params — restore it from git "
                          "(`git checkout params.yaml`)") from None
    finally:
        if loader is not None:
            loader.dispose()


def _check_expansion(root: yaml.Node, source: str) -> None:
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()

    def size(node: yaml.Node, depth: int) -> int:
        key = id(node)
        if key in sizes:
            return sizes[key]
        if key in open_nodes:
            raise ConfigError(f"{source}: a YAML alias refers to itself — remove the recursive "
                              "`&anchor` / `*alias` pair")
        if depth > MAX_YAML_DEPTH:
            raise ConfigError(f"{source}: nested more than {MAX_YAML_DEPTH} levels deep, far "
                              "more than params need — restore it from git")
        open_nodes.add(key)
        total = 1
        if isinstance(node, yaml.SequenceNode):
            total += sum(size(child, depth + 1) for child in node.value)
        elif isinstance(node, yaml.MappingNode):
            total += sum(size(k, depth + 1) + size(v, depth + 1) for k, v in node.value)
        open_nodes.discard(key)
        if total > MAX_YAML_NODES:
            raise ConfigError(f"{source}: expands to more than {MAX_YAML_NODES:,} values "
                              "(YAML aliases repeating aliases?) — write the params out plainly")
        sizes[key] = total
        return total

    size(root, 0)
