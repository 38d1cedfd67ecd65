"""Scoring leads end to end: one code path for the API and for batch files.

raw leads -> clean view -> calibrated P(accept)/P(SQL) -> rule criteria -> tier, route,
disagreement (and reasons on request).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from pandas.api.extensions import ExtensionArray

from models.criteria import CriteriaScores
from models.decision import TIERS, disagreements, routes, tiers
from models.explain import Reason, explain
from models.features import normalize
from models.registry import LoadedModel


@dataclass(frozen=True)
class Scored:
    """`table`: one row per lead; `rules`: the criteria breakdown; `reasons` when asked for."""

    table: pd.DataFrame
    rules: CriteriaScores
    reasons: list[list[Reason]] | None


def score_frame(
    loaded: LoadedModel, leads: pd.DataFrame, sla_hours: int, with_reasons: bool = False
) -> Scored:
    """Score raw leads (the spec's columns, any subset) with a registered model."""
    spec = loaded.model.spec
    lead_ids = leads[spec.id].to_numpy() if spec.id and spec.id in leads else None
    return score_clean(loaded, normalize(leads, spec), lead_ids, sla_hours, with_reasons)


def score_clean(
    loaded: LoadedModel,
    clean: pd.DataFrame,
    lead_ids: np.ndarray | ExtensionArray | None,
    sla_hours: int,
    with_reasons: bool = False,
) -> Scored:
    """Score leads already in the clean view (a validated file has it at hand). `lead_ids` may
    be a file's column as pandas holds it (`Series.array`), which the table shares uncopied."""
    model, spec = loaded.model, loaded.model.spec
    predicted = model.probabilities(clean)
    rules = model.criteria.score(clean, spec)
    p_accept = predicted["p_accept"]
    tier = tiers(p_accept)
    route = routes(p_accept, loaded.routing_threshold)
    table = pd.DataFrame(
        {
            "lead_id": lead_ids,
            "p_accept": p_accept.round(6),
            "p_sql": predicted["p_sql"].round(6) if "p_sql" in predicted else np.nan,
            "tier": _labels(tier, [name for name, _ in TIERS]),
            "route": _labels(route, ["sales", "nurture"]),
            "sla_hours": np.where(route == "sales", sla_hours, None),
            "rule_score": rules.total.to_numpy().round(2),
            "rule_pass": rules.passed.to_numpy(),
            "disagreement": disagreements(rules.passed.to_numpy(), tier),
            "model_version": loaded.version,
            "criteria_version": model.criteria.version_id,
        }
    )
    for name in rules.breakdown.columns:
        table[f"criterion_{name}"] = rules.breakdown[name].to_numpy().round(2)
    return Scored(table=table, rules=rules, reasons=explain(model, clean) if with_reasons else None)


def _labels(values: np.ndarray, names: list[str]) -> pd.Categorical:
    """`values`, each one of `names`, as a categorical: a column of a few labels that pandas
    need not convert to text a row at a time (for 100,000 leads, 1.6 ms against 4-12 ms)."""
    order = np.argsort(names)
    codes = order[np.searchsorted(np.asarray(names)[order], values)]
    return pd.Categorical.from_codes(codes, categories=names)
