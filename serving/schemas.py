"""Request and response models. The lead model is derived from the dataset spec, not written again.

Every field of a lead is optional (missing data is scored, and shows in the completeness
criterion); types and numeric ranges come from the spec, and a categorical field's known values are
listed in the OpenAPI schema without being enforced (an unknown value is scored as unseen).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, create_model, model_validator

from models.spec import DatasetSpec, FieldSpec, FieldType

_TEXT_LIMIT = 320  # the longest valid e-mail address; no lead field needs more


def _without_nul(text: str) -> str:
    # PostgreSQL cannot store it, and SQLite's JSON functions end a text there: "a\0b" would be
    # logged as lead "a".
    if "\x00" in text:
        raise ValueError("text must not contain the NUL character (\\u0000)")
    return text


# Any text a client sends: what the scoring log and outcome store keep must be what was sent.
Text = Annotated[str, AfterValidator(_without_nul)]


def lead_model(spec: DatasetSpec, forbid_unknown: bool = True) -> type[BaseModel]:
    """A pydantic model of one lead, named after the spec, with one optional field per column."""
    fields: dict[str, Any] = {}
    if spec.id:
        fields[spec.id] = (Text | None, Field(default=None, max_length=200, description="Lead id."))
    if spec.timestamp:
        fields[spec.timestamp] = (
            datetime | None,
            Field(default=None, description="When the lead became an MQL (default: now)."),
        )
    for name, field in spec.fields.items():
        fields[name] = _field(field)
    config = ConfigDict(extra="forbid" if forbid_unknown else "ignore", str_strip_whitespace=True)
    return create_model(f"Lead_{spec.name.replace('-', '_')}", __config__=config, **fields)


def _field(field: FieldSpec) -> tuple[Any, Any]:
    extra: dict[str, Any] = {}
    if field.group:
        extra["x-group"] = field.group
    if field.is_personal:
        extra["x-personal"] = True
    match field.type:
        case FieldType.numeric:
            return float | None, Field(
                default=None,
                allow_inf_nan=False,  # 1e309 is valid JSON, and no number of anything
                ge=field.min,
                le=field.max,
                description=field.description,
                json_schema_extra=extra,
            )
        case FieldType.boolean:
            return bool | None, Field(
                default=None, description=field.description, json_schema_extra=extra
            )
        case FieldType.categorical if field.values:
            extra["examples"] = list(field.values)
            description = (field.description or "") + " Known values: " + ", ".join(field.values)
            return Text | None, Field(
                default=None,
                max_length=_TEXT_LIMIT,
                description=description.strip(),
                json_schema_extra=extra,
            )
        case _:
            return Text | None, Field(
                default=None,
                max_length=_TEXT_LIMIT,
                description=field.description or field.type.value,
                json_schema_extra=extra,
            )


class OutcomeBase(BaseModel):
    """Sales' decision on one lead (send it again later with `sql` once that is known)."""

    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    lead_id: Text = Field(min_length=1, max_length=200)
    accepted: bool
    rejection_reason: Text | None = Field(default=None, max_length=200)
    decided_at: datetime | None = None
    sql: bool | None = Field(default=None, description="became a sales-qualified lead")
    sql_at: datetime | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OutcomeBase:
        if self.sql and not self.accepted:
            raise ValueError("a rejected lead cannot become an SQL (sql is true, accepted false)")
        if self.rejection_reason and self.accepted:
            raise ValueError("rejection_reason is only for rejected leads")
        return self


def outcome_model(lead: type[BaseModel]) -> type[BaseModel]:
    """The outcome body: a decision, plus the lead's features when it was never scored here."""
    return create_model(
        "Outcome",
        __base__=OutcomeBase,
        lead=(lead | None, Field(default=None, description="features, if the lead was not scored")),
    )


class Reloaded(BaseModel):
    model_version: str | None
    changed: bool
    error: str | None = Field(description="why the last load failed (the old model still serves)")


class Recorded(BaseModel):
    recorded: int


class CriterionScore(BaseModel):
    name: str
    weight: float
    score: float
    fired: list[str]


class RuleCriteria(BaseModel):
    version: str
    total: float = Field(description="0-100")
    passed: bool
    pass_score: float
    criteria: list[CriterionScore]


class ReasonOut(BaseModel):
    field: str
    value: str
    direction: str = Field(description="'+' raises acceptance, '-' lowers it")
    weight: float = Field(description="contribution to the log-odds of acceptance")
    text: str


class LeadScore(BaseModel):
    lead_id: str | None
    p_accept: float
    p_sql: float | None
    tier: str = Field(description="A (p >= 0.8), B (>= 0.6), C (>= 0.4), D (below)")
    route: str = Field(description="'sales' or 'nurture'")
    sla_hours: int | None = Field(description="follow-up SLA for leads routed to sales")
    rules: RuleCriteria
    disagreement: bool = Field(description="rules and model point different ways")
    reasons: list[ReasonOut] | None
    model_version: str
    criteria_version: str


class ScoreResponse(BaseModel):
    scores: list[LeadScore]


class Health(BaseModel):
    status: str


class Ready(BaseModel):
    status: str
    model_name: str
    model_version: str


class ModelInfo(BaseModel):
    """The served model: version, routing policy and model card facts (JSON)."""

    model_name: str
    model_version: str
    criteria_version: str
    routing_threshold: float
    sales_sla_hours: int
    routing_policy: dict[str, Any] | None = Field(
        description="how the threshold was chosen and what it promised (models/policy.py)"
    )
    card: dict[str, Any] | None = Field(
        description="data window, metrics, policy, top features, known limits"
    )
    report_url: str | None = Field(description="the training report (HTML), when available")
    card_url: str | None = Field(description="the model card (HTML), when available")
