"""What a served forecaster is made of, on disk: `forecaster.json` (a versioned contract:
kind, ticker, window, horizon, target, scaler, band calibration, training data range and
digest, scores) and, for the LSTM, `weights.npz` (the network's arrays, no pickle).

The same folder is what the MLflow model carries as its artifact, so the registry's model
and the pipeline's own forecast read exactly the same numbers."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io.contracts import Contract
from crypto_forecast.model.numpy_net import LSTMWeights, Network

SPEC_FILE = "forecaster.json"
WEIGHTS_FILE = "weights.npz"


class BandCalibration(BaseModel):
    """One conformal band: per horizon, the quantile of |log(actual / forecast)| (divided by
    the origin's recent volatility when `volatility_days` > 0)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    level: float = Field(gt=0, lt=1)
    # None: an unbounded band (a validation forecast at or below zero scored infinity).
    score_quantiles: tuple[float | None, ...]

    @property
    def name(self) -> str:
        """'80' for 0.8: the suffix of the band's columns."""
        return str(round(self.level * 100))


class ForecasterSpec(Contract):
    """Everything but the weights. `kind` is `lstm` (the network's recursion) or `naive`
    (persistence: every future day equals the last close)."""

    kind: Literal["lstm", "naive"]
    ticker: str
    window: int = Field(ge=1)
    horizon: int = Field(ge=1)
    target: Literal["price", "log_return"] = "price"
    scaler_min: float = 0.0
    scaler_max: float = 1.0
    volatility_days: int = Field(0, ge=0)
    bands: tuple[BandCalibration, ...] = ()
    data_first: str = ""
    data_last: str = ""
    data_sha256: str = ""
    scores: dict[str, float | None] = Field(default_factory=dict)

    @property
    def min_days(self) -> int:
        """Closes a request must hold: a full window of modelled values (a log return needs
        the day before), and the volatility look-back of the bands."""
        model_days = self.window + (1 if self.target == "log_return" else 0) if self.kind == "lstm" else 1
        return max(model_days, self.volatility_days + 1 if self.volatility_days else 1)


def save_bundle(folder: Path, spec: ForecasterSpec, network: Network | None) -> None:
    """Write the spec (and the LSTM's weights) into `folder`: a staging folder that MLflow
    copies into the model, so plain writes (a full disk is an OSError the caller maps)."""
    if (spec.kind == "lstm") != (network is not None):
        raise ValueError("an lstm forecaster needs its network; a naive one has none")
    folder.mkdir(parents=True, exist_ok=True)
    if network is not None:
        arrays: dict[str, np.ndarray] = {"dense_kernel": network.dense_kernel,
                                         "dense_bias": network.dense_bias}
        for k, w in enumerate(network.lstms):
            arrays |= {f"lstm{k}_kernel": w.kernel, f"lstm{k}_recurrent": w.recurrent,
                       f"lstm{k}_bias": w.bias}
        with open(folder / WEIGHTS_FILE, "wb") as fh:
            np.savez(fh, allow_pickle=False, **arrays)
    (folder / SPEC_FILE).write_text(spec.to_json(), encoding="utf-8")


def load_bundle(folder: Path) -> tuple[ForecasterSpec, Network | None]:
    """Read what `save_bundle` wrote."""
    spec = ForecasterSpec.read(folder / SPEC_FILE, "evaluate")
    if spec.kind == "naive":
        return spec, None
    try:
        with np.load(folder / WEIGHTS_FILE, allow_pickle=False) as npz:
            layers = sum(1 for key in npz.files if key.endswith("_recurrent"))
            lstms = tuple(LSTMWeights(npz[f"lstm{k}_kernel"], npz[f"lstm{k}_recurrent"],
                                      npz[f"lstm{k}_bias"]) for k in range(layers))
            network = Network(lstms, npz["dense_kernel"], npz["dense_bias"])
    except (OSError, KeyError, ValueError) as exc:
        raise ArtifactError(f"{folder / WEIGHTS_FILE} is unreadable ({exc}) — rerun "
                            "`dvc repro -f evaluate`") from None
    return spec, network
