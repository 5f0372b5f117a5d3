"""The typed files the stages exchange: each is a pydantic model with a schema version,
validated when read, so a damaged, hand-edited or older file is one clear error naming the
stage to rerun, never a `KeyError` deep in a later stage."""

from __future__ import annotations

import json
from pathlib import Path
from typing import ClassVar, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from crypto_forecast.errors import ArtifactError
from crypto_forecast.io import atomic


class Contract(BaseModel):
    """Base of every stage file: frozen, no unknown keys, and a `schema_version` that the
    reader checks before anything else."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    SCHEMA_VERSION: ClassVar[int] = 1
    schema_version: int = 1

    @classmethod
    def read(cls, path: Path, produced_by: str) -> Self:
        """Load and validate `path`; any problem is an `ArtifactError` that names the fix."""
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ArtifactError(f"{path} is missing — run `dvc repro {produced_by}` first") from None
        except (OSError, ValueError) as exc:
            raise ArtifactError(
                f"{path} is unreadable ({exc}) — rerun `dvc repro -f {produced_by}`") from None
        if not isinstance(raw, dict):
            raise ArtifactError(f"{path} is not a JSON object — rerun `dvc repro -f {produced_by}`")
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

    def write(self, path: Path) -> None:
        """Write atomically as indented JSON."""
        data = self.model_dump(mode="json")
        data["schema_version"] = self.SCHEMA_VERSION
        atomic.write_text(path, json.dumps(data, indent=2) + "\n")


# --- stage `train` -> evaluate, forecast (bad-input defences) -------------------------------

class TrainInfo(Contract):
    """models/train_info.json: which MLflow run and registered version the model is."""

    run_id: str = Field(pattern=r"^[0-9a-f]{32}$")
    experiment_id: str
    param_count: int = Field(ge=1)
    epochs_run: int = Field(ge=1)
    best_epoch: int = Field(ge=1)
    best_val_loss: float = Field(ge=0, allow_inf_nan=False)
    train_seconds: float = Field(ge=0, allow_inf_nan=False)
    units: tuple[int, ...] = Field(min_length=1)
    window: int = Field(ge=2)
    registered_model: str
    model_version: int = Field(ge=1)
