"""Rule-based SAL criteria: weighted, named rules on spec fields -> a 0-100 score and a breakdown.

This is what a sales-and-marketing team writes down as its acceptance agreement (the default is the
usual weighting: completeness 20, ICP fit 30, lead score 25, readiness 25). The model is compared
against it on the same leads, and reps see it next to the model's score.

Each criterion earns `weight x (points of rules that fired / points of all its rules)`. A rule on
a field group (`group: firmographics, present: true`) earns its points in proportion to how many
of the group's fields are filled in.
"""

from __future__ import annotations

import hashlib
import json
from functools import cached_property
from pathlib import Path
from typing import Annotated, Self

import numpy as np
import pandas as pd
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from models.features import EMAIL_KINDS, PHONE_KINDS
from models.spec import DatasetSpec, FieldType, SpecError, format_validation_errors, load_yaml

_CONDITIONS = ("present", "equals", "in_", "not_in", "gte", "lte")


class CriteriaError(SpecError):
    """A criteria file that cannot be used with this spec."""


class Rule(BaseModel):
    """One named check. Exactly one condition: present, equals, in, not_in, gte or lte."""

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    name: str
    field: str | None = None
    group: str | None = None
    points: Annotated[float, Field(gt=0)] = 1.0
    present: bool | None = None
    equals: str | float | bool | None = None
    in_: tuple[str, ...] | None = Field(default=None, alias="in")
    not_in: tuple[str, ...] | None = None
    gte: float | None = None
    lte: float | None = None

    @model_validator(mode="after")
    def _one_condition(self) -> Self:
        given = [c for c in _CONDITIONS if getattr(self, c) is not None]
        if len(given) != 1:
            raise ValueError(f"rule {self.name!r} needs exactly one condition of {_CONDITIONS}")
        if (self.field is None) == (self.group is None):
            raise ValueError(f"rule {self.name!r} needs either 'field' or 'group'")
        if self.group is not None and self.present is None:
            raise ValueError(f"rule {self.name!r}: a group rule can only test 'present'")
        return self

    @property
    def condition(self) -> str:
        return next(c for c in _CONDITIONS if getattr(self, c) is not None)


class Criterion(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    title: str | None = None
    weight: Annotated[float, Field(ge=0)]
    rules: tuple[Rule, ...]


class Criteria(BaseModel):
    """A versioned set of weighted criteria; `pass_score` is the total a lead needs to pass."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    pass_score: Annotated[float, Field(ge=0, le=100)] = 60.0
    criteria: dict[str, Criterion]

    @model_validator(mode="after")
    def _weights_sum_to_100(self) -> Self:
        total = sum(c.weight for c in self.criteria.values())
        if abs(total - 100) > 1e-6:
            raise ValueError(f"criterion weights must add up to 100, not {total:g}")
        return self

    @cached_property
    def digest(self) -> str:
        canonical = json.dumps(self.model_dump(mode="json", by_alias=True), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]

    @cached_property
    def version_id(self) -> str:
        """Human version plus content hash, so an edited file never reuses a version's name."""
        return f"{self.version}+{self.digest}"

    def check_against(self, spec: DatasetSpec) -> None:
        """Raise CriteriaError unless every rule fits a field (and type) the spec declares."""
        problems = [
            p for crit in self.criteria.values() for r in crit.rules for p in _check(r, spec)
        ]
        if problems:
            raise CriteriaError(
                f"criteria {self.name!r} do not fit spec {spec.name!r}:\n  - "
                + "\n  - ".join(problems)
            )

    def score(self, clean: pd.DataFrame, spec: DatasetSpec) -> CriteriaScores:
        """Score the clean view of leads (models.features.normalize output)."""
        fired: dict[str, np.ndarray] = {}
        per_criterion: dict[str, np.ndarray] = {}
        present = _Presence(clean)
        for crit_name, crit in self.criteria.items():
            earned = np.zeros(len(clean))
            possible = sum(rule.points for rule in crit.rules)
            for rule in crit.rules:
                share = _evaluate(rule, clean, spec, present)
                fired[f"{crit_name}.{rule.name}"] = share > 0
                earned += rule.points * share
            per_criterion[crit_name] = crit.weight * earned / possible
        breakdown = pd.DataFrame(per_criterion, index=clean.index)
        total = breakdown.sum(axis=1).round(6)
        return CriteriaScores(
            total=total,
            passed=total >= self.pass_score,
            breakdown=breakdown,
            fired=pd.DataFrame(fired, index=clean.index),
        )


class CriteriaScores(BaseModel):
    """Per lead: the 0-100 total, pass/fail, each criterion's score and which rules fired."""

    model_config = ConfigDict(arbitrary_types_allowed=True, frozen=True)

    total: pd.Series
    passed: pd.Series
    breakdown: pd.DataFrame
    fired: pd.DataFrame


def load_criteria(path: str | Path, spec: DatasetSpec | None = None) -> Criteria:
    """Read, validate and (given a spec) check criteria YAML; problems raise CriteriaError."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except FileNotFoundError as exc:
        raise CriteriaError(f"{path}: no such criteria file") from exc
    try:
        criteria = Criteria.model_validate(raw)
    except ValidationError as exc:
        raise CriteriaError(f"{path}: invalid criteria:\n{format_validation_errors(exc)}") from exc
    if spec is not None:
        try:
            criteria.check_against(spec)
        except CriteriaError as exc:
            raise CriteriaError(f"{path}: {exc}") from exc
    return criteria


class _Presence:
    """Which leads have a value in a column, worked out once per column for all the rules."""

    def __init__(self, clean: pd.DataFrame) -> None:
        self._clean = clean
        self._known: dict[str, np.ndarray] = {}

    def __getitem__(self, columns: list[str]) -> np.ndarray:
        for name in columns:
            if name not in self._known:
                self._known[name] = self._clean[name].notna().to_numpy()
        return np.column_stack([self._known[name] for name in columns])


def _evaluate(rule: Rule, clean: pd.DataFrame, spec: DatasetSpec, present: _Presence) -> np.ndarray:
    """Share of the rule's points earned per lead: 0 or 1, or a fraction for group rules."""
    if rule.group is not None:
        share = present[spec.group(rule.group)].mean(axis=1)
        return share if rule.present else 1 - share
    column = clean[rule.field]
    match rule.condition:
        case "present":
            hit = column.notna() if rule.present else column.isna()
        case "equals":
            hit = column == _expected(rule.equals, spec.fields[rule.field].type)
        case "in_":
            hit = column.isin(rule.in_)
        case "not_in":
            hit = column.notna() & ~column.isin(rule.not_in)
        case "gte":
            hit = column >= rule.gte
        case "lte":
            hit = column <= rule.lte
    return hit.fillna(False).to_numpy(dtype=float)


def _expected(value: object, field_type: FieldType) -> object:
    if field_type is FieldType.boolean:
        return 1.0 if value in (True, "true") else 0.0
    return value


def _check(rule: Rule, spec: DatasetSpec) -> list[str]:
    where = f"rule {rule.name!r}"
    if rule.group is not None:
        return [] if spec.group(rule.group) else [f"{where}: no field has group {rule.group!r}"]
    if rule.field not in spec.fields:
        return [f"{where}: {rule.field!r} is not a field of the spec"]
    field = spec.fields[rule.field]
    if rule.condition in ("gte", "lte") and field.type is not FieldType.numeric:
        return [f"{where}: {rule.condition} needs a numeric field, {rule.field!r} is {field.type}"]
    allowed = {
        FieldType.email: set(EMAIL_KINDS),
        FieldType.phone: set(PHONE_KINDS),
        FieldType.categorical: set(field.values) if field.values else None,
        FieldType.boolean: {True, False, "true", "false"},
    }.get(field.type)
    if allowed is not None and rule.condition in ("equals", "in_", "not_in"):
        given = rule.equals if rule.condition == "equals" else getattr(rule, rule.condition)
        unknown = {given} - allowed if rule.condition == "equals" else set(given) - allowed
        if unknown:
            return [
                f"{where}: {sorted(map(str, unknown))} not among {rule.field!r}'s values "
                f"{sorted(map(str, allowed))}"
            ]
    return []
