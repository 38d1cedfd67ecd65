"""From validated request leads to API answers and scoring-log rows.

Small requests take the hot path (models.fastpath: a dict straight to a NumPy row, prepared once
per model version); larger batches take the frame path (models.scoring), whose per-call overhead
is amortised over many leads. Both give identical results (tests/test_fastpath.py).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pandas as pd
from pydantic import BaseModel
from pydantic_core import to_json

from models.decision import disagrees, route_of, tier_of
from models.explain import explain_row
from models.fastpath import FastScore
from models.features import redact_personal
from models.registry import LoadedModel
from models.scoring import Scored, score_frame
from models.spec import DatasetSpec
from serving.schemas import CriterionScore, LeadScore, ReasonOut, RuleCriteria

# Past this many leads per request the vectorised frame path is faster than a loop of hot paths.
FAST_PATH_MAX = 20


def as_dicts(leads: list[BaseModel], spec: DatasetSpec) -> list[dict]:
    """Request leads as plain dicts; a missing MQL time means "now"."""
    now = datetime.now(UTC)
    dicts = [lead.model_dump() for lead in leads]
    if spec.timestamp:
        for lead in dicts:
            lead[spec.timestamp] = lead.get(spec.timestamp) or now
    return dicts


def score_leads(
    loaded: LoadedModel, leads: list[dict], with_reasons: bool, sla_hours: int
) -> list[dict[str, Any]]:
    """One answer per lead, as plain data in `LeadScore`'s shape (`answer_json` encodes them)."""
    if len(leads) <= FAST_PATH_MAX:
        return [_from_fast(loaded, lead, with_reasons, sla_hours) for lead in leads]
    frame = pd.DataFrame(leads)
    spec = loaded.model.spec
    if spec.timestamp:
        frame[spec.timestamp] = frame[spec.timestamp].astype(str)
    scored = score_frame(loaded, frame, sla_hours, with_reasons)
    return [_from_frame(loaded, scored, i) for i in range(len(frame))]


def answer_json(scores: list[dict[str, Any]]) -> bytes:
    """The response body, `ScoreResponse` as JSON, encoded straight from the answers."""
    return to_json({"scores": scores})


def log_rows(
    loaded: LoadedModel, leads: list[dict], scores: list[dict[str, Any]], scored_at: datetime
) -> list[dict]:
    """Scoring-log rows: the features as scored (personal values reduced), and the result."""
    return [
        {
            "lead_id": score["lead_id"] or "",
            "scored_at": scored_at,
            "features": loaded.scorer.redacted(lead),
            "model_name": loaded.name,
            "model_version": loaded.version,
            "criteria_version": score["criteria_version"],
            "p_accept": score["p_accept"],
            "p_sql": score["p_sql"],
            "tier": score["tier"],
            "route": score["route"],
            "rule_score": score["rules"]["total"],
        }
        for lead, score in zip(leads, scores, strict=True)
    ]


def feature_row(spec: DatasetSpec, lead_id: str, lead: BaseModel) -> dict:
    """A log row for a lead sent with an outcome (never scored here): features only."""
    frame = redact_personal(pd.DataFrame([lead.model_dump(mode="json")]), spec)
    features = frame.astype(object).where(frame.notna(), None).iloc[0].to_dict()
    return {"lead_id": lead_id, "scored_at": datetime.now(UTC), "features": features}


def _from_fast(
    loaded: LoadedModel, lead: dict, with_reasons: bool, sla_hours: int
) -> dict[str, Any]:
    fast: FastScore = loaded.scorer.score(lead)
    tier = tier_of(fast.p_accept)
    route = route_of(fast.p_accept, loaded.routing_threshold)
    criteria = loaded.model.criteria
    reasons = None
    if with_reasons:
        contributions = loaded.scorer.contributions(fast.row)
        reasons = explain_row(loaded.model, fast.row, contributions, fast.clean)
    # Plain data in LeadScore's field order, not pydantic objects: every value is built here from
    # typed model output, and building the objects cost a sixth of the request. Tests check the
    # answers against the schema and against the frame path's validated objects.
    return {
        "lead_id": lead.get(loaded.model.spec.id) if loaded.model.spec.id else None,
        "p_accept": round(fast.p_accept, 6),
        "p_sql": None if fast.p_sql is None else round(fast.p_sql, 6),
        "tier": tier,
        "route": route,
        "sla_hours": sla_hours if route == "sales" else None,
        "rules": {
            "version": criteria.version_id,
            "total": round(fast.rule_total, 2),
            "passed": fast.rule_pass,
            "pass_score": criteria.pass_score,
            "criteria": [
                {
                    "name": name,
                    "weight": crit.weight,
                    "score": round(fast.breakdown[name], 2),
                    "fired": fast.fired[name],
                }
                for name, crit in criteria.criteria.items()
            ],
        },
        "disagreement": disagrees(fast.rule_pass, tier),
        "reasons": None if reasons is None else [{**r.__dict__, "text": r.text} for r in reasons],
        "model_version": loaded.version,
        "criteria_version": criteria.version_id,
    }


def _from_frame(loaded: LoadedModel, scored: Scored, i: int) -> dict[str, Any]:
    criteria, row, rules = loaded.model.criteria, scored.table.iloc[i], scored.rules
    breakdown = [
        CriterionScore(
            name=name,
            weight=crit.weight,
            score=float(row[f"criterion_{name}"]),
            fired=[r.name for r in crit.rules if rules.fired[f"{name}.{r.name}"].iloc[i]],
        )
        for name, crit in criteria.criteria.items()
    ]
    return LeadScore(
        lead_id=row["lead_id"],
        p_accept=float(row["p_accept"]),
        p_sql=None if pd.isna(row["p_sql"]) else float(row["p_sql"]),
        tier=row["tier"],
        route=row["route"],
        sla_hours=row["sla_hours"],
        rules=RuleCriteria(
            version=criteria.version_id,
            total=float(row["rule_score"]),
            passed=bool(row["rule_pass"]),
            pass_score=criteria.pass_score,
            criteria=breakdown,
        ),
        disagreement=bool(row["disagreement"]),
        reasons=[ReasonOut(**r.__dict__, text=r.text) for r in scored.reasons[i]]
        if scored.reasons is not None
        else None,
        model_version=loaded.version,
        criteria_version=criteria.version_id,
    ).model_dump()
