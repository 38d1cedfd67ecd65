"""Registration in the MLflow model registry, and who holds the `champion` alias.

Every training run registers a new version. Whether it takes `champion` is decided by the one
promotion gate (`pipeline.backtest.gate`), on the run's own test slice: the current champion is
re-scored on the *same* leads, and candidate, champion and rule criteria are compared with paired
bootstrap intervals. `sal evaluate` applies the same gate to a newer slice later.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.entities.model_registry import ModelVersion
from mlflow.exceptions import MlflowException

from models.decision import DEFAULT_ROUTING_THRESHOLD
from models.registry import routing_threshold

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    """The current champion, re-scored on a slice (p is None when it could not score it)."""

    version: str
    p_accept: np.ndarray | None
    routing_threshold: float
    problem: str | None = None


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    champion_moved: bool
    reason: str
    previous_champion: str | None


def champion_version(name: str) -> str | None:
    """The version `champion` points at (None before the first promotion)."""
    found = _champion(name)
    return str(found.version) if found else None


def _champion(name: str) -> ModelVersion | None:
    try:
        return MlflowClient().get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None


def current_champion(name: str, leads: pd.DataFrame) -> Champion | None:
    """The current champion (if any) and its P(accept) for `leads`, typed as its signature
    types them (models.pyfunc.to_signature_types)."""
    version = _champion(name)
    if version is None:
        return None
    threshold = routing_threshold(version, DEFAULT_ROUTING_THRESHOLD)
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
        scores = model.predict(leads)["p_accept"].to_numpy()
    except Exception as exc:  # e.g. trained on another spec whose columns these leads lack
        log.warning("champion v%s cannot score this slice: %s", version.version, exc)
        return Champion(str(version.version), None, threshold, str(exc).splitlines()[0])
    return Champion(str(version.version), scores, threshold)


def register(
    model_uri: str, name: str, promote_it: bool, reason: str, tags: dict[str, str]
) -> Registration:
    """Register `model_uri` as a new version of `name`; move `champion` when `promote_it`."""
    client = MlflowClient()
    previous = champion_version(name)
    version = str(mlflow.register_model(model_uri, name, tags=tags).version)
    client.set_model_version_tag(name, version, "gate", reason[:4000])
    if promote_it:
        promote(name, version, reason)
    log.info(
        "registered %s v%s; champion %s: %s",
        name,
        version,
        "moved" if promote_it else "unchanged",
        reason,
    )
    return Registration(
        model_name=name,
        version=version,
        champion_moved=promote_it,
        reason=reason,
        previous_champion=previous,
    )


def promote(name: str, version: str, reason: str) -> None:
    """Point `champion` at `version`, stamping when and why (what `sal rollback` reads)."""
    client = MlflowClient()
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
    client.set_model_version_tag(name, version, "promotion_reason", reason[:4000])


def rollback_target(name: str) -> str | None:
    """The version promoted most recently before the current champion, if any."""
    current = champion_version(name)
    promoted = [
        (v.tags["promoted_at"], str(v.version))
        for v in MlflowClient().search_model_versions(f"name = '{name}'")
        if "promoted_at" in v.tags and str(v.version) != current
    ]
    return max(promoted)[1] if promoted else None
