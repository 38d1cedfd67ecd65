"""Loading a registered model by alias: shared by the service and batch scoring."""

from __future__ import annotations

from dataclasses import dataclass, field

import mlflow
from mlflow import MlflowClient

from models.acceptance import AcceptanceModel
from models.fastpath import LeadScorer


@dataclass(frozen=True)
class LoadedModel:
    """A registered AcceptanceModel with its name, version and routing threshold."""

    model: AcceptanceModel
    name: str
    version: str
    routing_threshold: float
    scorer: LeadScorer = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        # Per-lead preparation happens here, once per loaded version, never per request.
        object.__setattr__(self, "scorer", LeadScorer(self.model))


def alias_version(tracking_uri: str, name: str, alias: str) -> str:
    """The version an alias points at now (one registry call, no artifact download)."""
    client = MlflowClient(tracking_uri=tracking_uri)
    return str(client.get_model_version_by_alias(name, alias).version)


def load_by_alias(
    tracking_uri: str, name: str, alias: str, default_threshold: float
) -> LoadedModel:
    """The model the alias points at, with the routing threshold stored on its version."""
    mlflow.set_tracking_uri(tracking_uri)
    version = MlflowClient(tracking_uri=tracking_uri).get_model_version_by_alias(name, alias)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{name}/{version.version}")
    threshold = float(version.tags.get("routing_threshold", default_threshold))
    return LoadedModel(
        model=pyfunc.unwrap_python_model().model,
        name=name,
        version=str(version.version),
        routing_threshold=threshold,
    )
