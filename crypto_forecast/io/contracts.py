"""The typed files the stages exchange: each is a pydantic model with a schema version,
validated when read, so a damaged, hand-edited or older file is one clear error naming the
stage to rerun, never a `KeyError` deep in a later stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, ClassVar, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io import atomic
from crypto_forecast.io.artifacts import read_json


class Contract(BaseModel):
    """Base of every stage file: frozen, no unknown keys, and a `schema_version` that the
    reader checks before anything else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 1

    @classmethod
    def read(cls, path: Path, produced_by: str) -> Self:
        """Load and validate `path`; any problem is an `ArtifactError` that names the fix."""
        raw = read_json(path, produced_by)
        version = raw.get("schema_version")
        if version != cls.SCHEMA_VERSION:
            raise ArtifactError(
                f"{path} has schema version {version!r}, this code reads version "
                f"{cls.SCHEMA_VERSION} (written by another version of the pipeline) — rerun "
                f"`dvc repro -f {produced_by}`")
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(p) for p in first["loc"]) or "(top level)"
            raise ArtifactError(
                f"{path} is damaged ({where}: {first['msg']}) — restore it with `dvc checkout` or "
                f"rerun `dvc repro -f {produced_by}`") from None

    def to_json(self) -> str:
        """The file's content: indented JSON under this code's schema version."""
        data = self.model_dump(mode="json")
        data["schema_version"] = self.SCHEMA_VERSION
        return json.dumps(data, indent=2, allow_nan=False) + "\n"

    def write(self, path: Path) -> None:
        """Write atomically as indented JSON."""
        atomic.write_text(path, self.to_json())


# A number that JSON can hold: finite, or null where the metric is undefined (a zero
# denominator, a predictor with no direction). NaN and infinities are refused.
Score = Annotated[float, Field(allow_inf_nan=False)] | None
Finite = Annotated[float, Field(allow_inf_nan=False)]


class _Part(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PredictorScores(_Part):
    """One predictor's errors over a set of backtest rows, in price units (MAPE, sMAPE in
    percent; MASE scaled by the training period's mean one-day move; direction a share)."""

    rmse: Score
    mae: Score
    mape: Score
    smape: Score
    mase: Score
    direction: Score


class HorizonScores(_Part):
    """Every predictor's scores at one horizon (`horizon` = None: all horizons pooled), and
    the LSTM's skill: its RMSE over persistence's (below 1 beats persistence)."""

    horizon: int | None
    lstm: PredictorScores
    persistence: PredictorScores
    drift: PredictorScores
    moving_average: PredictorScores
    skill_rmse: Score

    def predictors(self) -> list[tuple[str, PredictorScores]]:
        """(name, scores) in the order reports show them, the LSTM first."""
        return [("lstm", self.lstm), ("persistence", self.persistence), ("drift", self.drift),
                ("moving_average", self.moving_average)]


class BandAtHorizon(_Part):
    """A band at one horizon: the live model's calibrated quantile of the (scaled) log-ratio
    scores (what is served), and the walk-forward coverage and mean half-width in percent of
    the forecast (each fold calibrated the same way on its own validation slice). A null
    quantile is an unbounded band (a validation forecast at or below zero scores infinity)."""

    horizon: int
    score_quantile: Score
    coverage: Finite
    half_width_pct: Score


class BandCalibration(_Part):
    """One conformal band level: served widths from the live model's validation slice; its
    walk-forward coverage, interval (Winkler) score and pinball loss at the band's two
    quantiles, beside the naive forecaster's bands calibrated the same way."""

    nominal: Finite
    volatility_days: int  # 0: fixed widths; else scaled by that many days' volatility
    coverage: Finite
    horizons: list[BandAtHorizon]
    interval_score: Score  # price units, lower is better
    pinball: Score  # mean over the lower and upper quantile, price units
    naive_coverage: Finite
    naive_interval_score: Score
    naive_pinball: Score

    @property
    def name(self) -> str:
        """'80' for 0.8: how files and reports name the band."""
        return str(round(self.nominal * 100))


class FoldScores(_Part):
    """One walk-forward fold: its cut-off, the days its 1-day forecasts target, skill per
    horizon (LSTM RMSE over persistence's), band coverage and interval skill (the LSTM
    bands' interval score over the naive bands')."""

    name: str
    cutoff: str
    last: str
    origins: int
    skill: list[Score]  # index h - 1
    coverage: dict[str, Finite]
    interval_skill: dict[str, Score]


class ScoredPeriod(_Part):
    """The days the 1-day-ahead test forecasts target."""

    first: str
    last: str
    days: int


class BacktestSetup(_Part):
    """What the walk-forward backtest was: its size and the baselines' settings."""

    horizon: int
    folds: int
    origins: int  # scored, all folds together
    calibration_origins: int  # the live model's validation origins (the served bands)
    mase_scale: Finite
    drift_per_day: Finite
    ma_window: int


class Headline(_Part):
    """The few numbers a person compares across experiments: reports/metrics.json (DVC's
    metrics file, written flat by `metrics_file` so `dvc exp show` stays readable) and the
    run's MLflow metrics. Skill is the LSTM's RMSE over persistence's (below 1 beats it)."""

    horizon: int
    skill_h1: Score
    skill_hmax: Score  # at h = horizon
    rmse_h1: Score
    mae_h1: Score
    mase_h1: Score
    coverage: dict[str, Finite]  # per band name ('80'): share of test outcomes inside
    interval_skill: dict[str, Score]  # per band name: LSTM bands' interval score / naive's
    param_count: int
    test_first: str
    test_last: str

    def numbers(self) -> dict[str, float | None]:
        """The numeric headline under its file keys (`skill_h10` for horizon 10)."""
        out: dict[str, float | None] = {"skill_h1": self.skill_h1}
        if self.horizon > 1:
            out[f"skill_h{self.horizon}"] = self.skill_hmax
        out["rmse_h1"] = self.rmse_h1
        out |= {f"coverage_{name}": value for name, value in self.coverage.items()}
        out["param_count"] = self.param_count
        return out

    def tracked(self) -> dict[str, float | None]:
        """What the MLflow run gets: the numbers, `mae_h1`, `mase_h1`, each band's interval skill
        (kept out of metrics.json so `make exps` fits 120 columns; all are in
        evaluation.json)."""
        return {**self.numbers(), "mae_h1": self.mae_h1, "mase_h1": self.mase_h1,
                **{f"interval_skill_{name}": v for name, v in self.interval_skill.items()}}

    def metrics_file(self) -> dict[str, float | int | str | None]:
        """metrics.json's content: the numbers, then the test period."""
        return {**self.numbers(), "test_first": self.test_first, "test_last": self.test_last}


class ServingDecision(_Part):
    """What the gate chose to serve (crypto_forecast.evaluation.gate) and why, with every
    number and threshold it used, and the naive forecaster's own band calibration (per band
    name, the conformal quantile of persistence's scores on the live model's validation
    slice at each horizon). Skill here is against the best baseline (persistence or drift,
    whichever has the lower walk-forward RMSE at that horizon)."""

    served: Literal["lstm", "naive"]
    reasons: list[str]
    skill_h1: Score
    skill_mean: Score  # the LSTM's skill averaged over 1..horizon
    best_baseline_h1: str
    max_skill_h1: Finite
    max_skill_mean: Finite
    min_gain_vs_champion: Finite
    champion: str | None  # "version 3 (run …)": the champion compared with, if any
    champion_skill_mean: Score
    naive_quantiles: dict[str, list[Score]]


class EvaluationReport(Contract):
    """reports/evaluation.json: what evaluate found and forecast and the report read. Scores
    are walk-forward: every fold's model on its own scored days, pooled (`horizons`,
    `pooled`) and per fold (`folds`)."""

    SCHEMA_VERSION: ClassVar[int] = 2
    schema_version: int = 2

    target: str
    headline: Headline
    test_period: ScoredPeriod
    backtest: BacktestSetup
    horizons: list[HorizonScores]
    pooled: HorizonScores
    folds: list[FoldScores]
    bands: list[BandCalibration]
    serving: ServingDecision

    def at(self, horizon: int) -> HorizonScores:
        """The scores `horizon` days ahead (1-based)."""
        return self.horizons[horizon - 1]


# --- stage `train` -> evaluate, forecast (bad-input defences) -------------------------------

class TrainedModel(_Part):
    """One network the train stage fitted: a walk-forward fold's or the live one, the days
    it learned from, its scaler (fitted on its training days) and how its training went.
    Dates are the target days of its windows."""

    name: str = Field(pattern=r"^(fold_[0-9]+|live)$")
    path: str  # the .keras file, relative to the project
    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")  # a fold's child run; the live model's run
    train_first: str
    train_last: str
    val_first: str  # the slice that stopped its training early and calibrates its bands
    val_last: str
    cutoff: str | None  # a fold's first scored day; None for the live model
    scaler_min: float = Field(allow_inf_nan=False)
    scaler_max: float = Field(allow_inf_nan=False)
    epochs_run: int = Field(ge=1)
    best_epoch: int = Field(ge=1)
    best_val_loss: float = Field(ge=0, allow_inf_nan=False)
    train_seconds: float = Field(ge=0, allow_inf_nan=False)


class TrainInfo(Contract):
    """models/train_info.json: the MLflow run and registered version of the live model (the
    one forecast serves), and every walk-forward fold's model."""

    SCHEMA_VERSION: ClassVar[int] = 2
    schema_version: int = 2

    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    experiment_id: str
    param_count: int = Field(ge=1)
    epochs_run: int = Field(ge=1)
    best_epoch: int = Field(ge=1)
    best_val_loss: float = Field(ge=0, allow_inf_nan=False)
    train_seconds: float = Field(ge=0, allow_inf_nan=False)  # the stage's fitting, wall clock
    units: tuple[int, ...] = Field(min_length=1)
    window: int = Field(ge=2)
    target: Literal["price", "log_return"]
    registered_model: str
    model_version: int = Field(ge=1)
    live: TrainedModel
    folds: list[TrainedModel] = Field(min_length=1)


# --- stage `forecast@<TICKER>` -> summary ---------------------------------------------------

class CardDay(_Part):
    """One forecast day as served: the forecast and each band (name '80' -> bound)."""

    date: str
    forecast: Finite
    lower: dict[str, Score]
    upper: dict[str, Score]


class TickerCard(Contract):
    """reports/cards/<TICKER>.json: one ticker's row of the portfolio summary, written by its
    forecast stage from its evaluation and its served forecast. `data_sha256` and
    `run_id` say which data and training the numbers belong to."""

    ticker: str
    source_used: str  # yahoo | csv | synthetic
    data_first: str
    data_last: str  # the last close the forecast starts from
    last_close: Finite
    data_sha256: str
    run_id: str
    served: Literal["lstm", "naive"]
    reasons: list[str]
    headline: Headline
    days: list[CardDay] = Field(min_length=1)

    @property
    def synthetic(self) -> bool:
        return self.source_used == "synthetic"
