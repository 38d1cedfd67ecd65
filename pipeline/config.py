"""Typed training configuration loaded from versioned YAML (data/config/train.yaml)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.policy import DEFAULT_ACCEPTANCE_TARGET
from models.spec import SpecError, format_validation_errors, load_yaml


class EncoderConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    min_frequency: Annotated[int, Field(ge=1)] = 20
    max_categories: Annotated[int, Field(ge=2)] = 100


class GateConfig(BaseModel):
    """The promotion gate's margins (pipeline/backtest.py explains the choice)."""

    model_config = ConfigDict(extra="forbid")
    auc_margin: Annotated[float, Field(ge=0)] = 0.005
    ece_tolerance: Annotated[float, Field(ge=0)] = 0.01
    n_boot: Annotated[int, Field(ge=100)] = 1000
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95


class RoutingConfig(BaseModel):
    """How the routing threshold is chosen on the validation slice (see models/policy.py).

    acceptance_rate: the lowest threshold whose routed leads' acceptance rate has a lower
    confidence bound at or above `target`. capacity: the top `capacity` leads per `period` by
    P(accept), the volume per period measured on the validation slice.
    """

    model_config = ConfigDict(extra="forbid")
    mode: Literal["acceptance_rate", "capacity"] = "acceptance_rate"
    target: Annotated[float, Field(gt=0, lt=1)] = DEFAULT_ACCEPTANCE_TARGET
    confidence: Annotated[float, Field(ge=0.5, lt=1)] = 0.95
    bound: Literal["wilson", "clopper_pearson"] = "wilson"
    capacity: Annotated[int, Field(ge=1)] | None = None
    period: Literal["day", "week"] = "week"

    @model_validator(mode="after")
    def _capacity_given(self) -> RoutingConfig:
        if self.mode == "capacity" and self.capacity is None:
            raise ValueError("capacity mode needs `capacity` (leads sales can work per period)")
        return self


class TrainConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    seed: int = 42
    lightgbm: dict[str, Any] = Field(default_factory=lambda: {"objective": "binary"})
    num_boost_round: Annotated[int, Field(ge=1)] = 1500
    early_stopping_rounds: Annotated[int, Field(ge=1)] = 50
    encoder: EncoderConfig = EncoderConfig()
    logistic_max_rows: Annotated[int, Field(ge=100)] = 200_000
    gate: GateConfig = GateConfig()
    routing: RoutingConfig = RoutingConfig()


def load_train_config(path: str | Path) -> TrainConfig:
    path = Path(path)
    try:
        return TrainConfig.model_validate(load_yaml(path) or {})
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such training config") from exc
    except ValidationError as exc:
        raise SpecError(
            f"{path}: invalid training config:\n{format_validation_errors(exc)}"
        ) from exc
