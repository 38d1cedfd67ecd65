"""Registration in the MLflow model registry and the gate that moves the `champion` alias.

The alias moves only when the new model beats the rule criteria on the test slice and is not worse
than the current champion scored on the *same* test slice (within the configured margin).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.metrics import roc_auc_score

from pipeline.config import GateConfig

log = logging.getLogger(__name__)

CHAMPION = "champion"


@dataclass(frozen=True)
class Champion:
    version: str
    roc_auc: float | None  # None: it could not score this slice (e.g. a different schema)
    problem: str | None = None
    policy_met: bool | None = None  # its routing promise held when it was trained (None: unknown)


@dataclass(frozen=True)
class Registration:
    model_name: str
    version: str
    champion_moved: bool
    reason: str
    previous_champion: str | None


def current_champion(name: str, test_leads: pd.DataFrame, labels: pd.Series) -> Champion | None:
    """Score the current champion (if any) on the new test slice: leads as the signature types
    them (models.pyfunc.to_signature_types) in, ROC AUC out."""
    client = MlflowClient()
    try:
        version = client.get_model_version_by_alias(name, CHAMPION)
    except MlflowException:
        return None
    met = version.tags.get("routing_met")
    policy_met = None if met is None else met == "true"
    try:
        model = mlflow.pyfunc.load_model(f"models:/{name}@{CHAMPION}")
        scores = model.predict(test_leads)["p_accept"].to_numpy()
    except Exception as exc:
        log.warning("champion v%s cannot score this test slice: %s", version.version, exc)
        return Champion(
            version=str(version.version),
            roc_auc=None,
            problem=str(exc).splitlines()[0],
            policy_met=policy_met,
        )
    return Champion(
        version=str(version.version),
        roc_auc=float(roc_auc_score(labels, scores)),
        policy_met=policy_met,
    )


def register(
    model_uri: str,
    name: str,
    candidate_auc: float,
    rules_auc: float,
    champion: Champion | None,
    gate: GateConfig,
    tags: dict[str, str],
    policy_met: bool = True,
) -> Registration:
    """Register `model_uri` as a new version of `name` and move `champion` if the gate passes."""
    client = MlflowClient()
    version = mlflow.register_model(model_uri, name, tags=tags).version
    moved, reason = decide(candidate_auc, rules_auc, champion, gate, policy_met)
    client.set_model_version_tag(name, version, "gate", reason)
    if moved:
        promote(name, str(version), reason)
    log.info(
        "registered %s v%s; champion %s: %s",
        name,
        version,
        "moved" if moved else "unchanged",
        reason,
    )
    return Registration(
        model_name=name,
        version=str(version),
        champion_moved=moved,
        reason=reason,
        previous_champion=champion.version if champion else None,
    )


def promote(name: str, version: str, reason: str) -> None:
    """Point `champion` at `version`, stamping when and why (what `sal rollback` reads)."""
    client = MlflowClient()
    client.set_registered_model_alias(name, CHAMPION, version)
    client.set_model_version_tag(name, version, "promoted_at", datetime.now(UTC).isoformat())
    client.set_model_version_tag(name, version, "promotion_reason", reason[:4000])


def rollback_target(name: str) -> str | None:
    """The version promoted most recently before the current champion, if any."""
    client = MlflowClient()
    current = str(client.get_model_version_by_alias(name, CHAMPION).version)
    promoted = [
        (v.tags["promoted_at"], str(v.version))
        for v in client.search_model_versions(f"name = '{name}'")
        if "promoted_at" in v.tags and str(v.version) != current
    ]
    return max(promoted)[1] if promoted else None


def decide(
    candidate_auc: float,
    rules_auc: float,
    champion: Champion | None,
    gate: GateConfig,
    policy_met: bool = True,
) -> tuple[bool, str]:
    """The promotion gate as a pure function: (move?, reason in words).

    Besides ranking, the routing promise must not regress: a model whose policy cannot reach its
    acceptance target does not replace a champion whose policy could.
    """
    flag = "" if policy_met else " (its routing promise is not met: best achievable, flagged)"
    moved, reason = _decide_auc(candidate_auc, rules_auc, champion, gate)
    if moved and not policy_met and champion is not None and champion.policy_met:
        return False, (
            f"its routing policy does not reach the acceptance target on the validation slice, "
            f"while champion v{champion.version}'s did"
        )
    return moved, reason + flag


def _decide_auc(
    candidate_auc: float, rules_auc: float, champion: Champion | None, gate: GateConfig
) -> tuple[bool, str]:
    gain = candidate_auc - rules_auc
    if not np.isfinite(candidate_auc) or gain <= gate.min_gain_over_rules:
        return False, (
            f"ROC AUC {candidate_auc:.4f} does not beat the rule criteria "
            f"({rules_auc:.4f}) by more than {gate.min_gain_over_rules:g}"
        )
    if champion is None:
        return True, f"first model; beats the rule criteria by {gain:+.4f} ROC AUC"
    if champion.roc_auc is None:
        return False, (
            f"champion v{champion.version} could not be scored on this test slice "
            f"({champion.problem}); promote by hand if this model should replace it"
        )
    delta = candidate_auc - champion.roc_auc
    if delta < -gate.champion_margin:
        return False, (
            f"worse than champion v{champion.version} on the same test slice "
            f"({candidate_auc:.4f} vs {champion.roc_auc:.4f}, margin {gate.champion_margin:g})"
        )
    return True, (
        f"beats the rules by {gain:+.4f} and is within {gate.champion_margin:g} of or better "
        f"than champion v{champion.version} ({delta:+.4f} ROC AUC on the same test slice)"
    )
