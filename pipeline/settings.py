"""Settings of the training pipeline (one object, env prefix SAL_, built on first use)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from models.uris import DEFAULT_DATABASE_URL, DEFAULT_MODEL_NAME, absolute_sqlite


class PipelineSettings(BaseSettings):
    """Where runs and models are tracked and where the shipped specs live.

    The defaults run embedded on a fresh machine: MLflow on a SQLite file and a local artifact
    folder in the working directory (both git-ignored). Point `SAL_TRACKING_URI` at a server or a
    database URL (e.g. postgresql+psycopg://user@host:5432/db) to share runs.
    """

    model_config = SettingsConfigDict(env_prefix="SAL_", env_file=".env", extra="ignore")

    tracking_uri: str = "sqlite:///mlflow.db"
    artifact_root: Path = Path("mlartifacts")
    experiment: str = "lead-acceptance"
    model_name: str | None = None  # default: the spec's model_name
    data_dir: Path = Path("data")
    reports_dir: Path = Path("reports")  # HTML of train / evaluate / monitor (also in MLflow)
    # `sal score`'s copy of the model it last resolved in a SQLite registry (pipeline/modelcache)
    cache_dir: Path = Path(".sal-cache")
    database_url: str = DEFAULT_DATABASE_URL  # the service's (same variable as `sal serve`)

    @field_validator("tracking_uri")
    @classmethod
    def _absolute_sqlite(cls, uri: str) -> str:
        return absolute_sqlite(uri)

    @field_validator("artifact_root", "cache_dir")
    @classmethod
    def _absolute_path(cls, path: Path) -> Path:
        return path.resolve()

    def registered_name(self, given: str | None = None) -> str:
        """The registered model a command works on: given, else SAL_MODEL_NAME, else the
        built-in spec's."""
        return given or self.model_name or DEFAULT_MODEL_NAME

    @property
    def builtin_spec(self) -> Path:
        return self.data_dir / "specs" / "builtin.yaml"

    @property
    def builtin_data(self) -> Path:
        return self.data_dir / "leads.csv"

    @property
    def train_config(self) -> Path:
        return self.data_dir / "config" / "train.yaml"


@lru_cache
def get_settings() -> PipelineSettings:
    return PipelineSettings()
