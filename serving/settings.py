"""Settings of the scoring service (one object, env prefix SAL_, built on first use)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Annotated

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from models.decision import DEFAULT_ROUTING_THRESHOLD, DEFAULT_SLA_HOURS
from models.uris import DEFAULT_DATABASE_URL, DEFAULT_MODEL_NAME, absolute_sqlite


class ServeSettings(BaseSettings):
    """Where the champion comes from, who may call, and the request limits."""

    model_config = SettingsConfigDict(env_prefix="SAL_", env_file=".env", extra="ignore")

    tracking_uri: str = "sqlite:///mlflow.db"
    # The spec the request model is derived from; the champion must have been trained on it.
    spec_path: Path = Path("data/specs/builtin.yaml")
    # The service's own tables (scoring log, outcomes): a SQLite file by default, or PostgreSQL,
    # e.g. postgresql+psycopg://user@host:5432/leads
    database_url: str = DEFAULT_DATABASE_URL
    model_name: str = DEFAULT_MODEL_NAME
    model_alias: str = "champion"
    # Comma-separated bearer tokens per role; admin keys may also score.
    score_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    admin_keys: Annotated[list[SecretStr], NoDecode] = Field(default_factory=list)
    max_batch: int = Field(default=1000, ge=1)
    max_body_bytes: int = Field(default=2_000_000, ge=1_000)
    forbid_unknown_fields: bool = True
    routing_threshold: float = Field(default=DEFAULT_ROUTING_THRESHOLD, gt=0, lt=1)
    sales_sla_hours: int = Field(default=DEFAULT_SLA_HOURS, ge=1)
    # How often to check whether the champion alias moved (0: only on POST /v1/admin/reload).
    reload_seconds: float = Field(default=30.0, ge=0)
    # Answer valid single-lead scoring requests before FastAPI's routing (serving/lane.py): the
    # same answers, about a third less time per request. Off only to compare the two.
    express_lane: bool = True

    @field_validator("score_keys", "admin_keys", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [k.strip() for k in value.split(",") if k.strip()]
        return value

    @field_validator("tracking_uri", "database_url")
    @classmethod
    def _absolute_sqlite(cls, uri: str) -> str:
        return absolute_sqlite(uri)


@lru_cache
def get_settings() -> ServeSettings:
    return ServeSettings()
