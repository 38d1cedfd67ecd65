"""The dataset spec: the one schema of a leads table.

A spec is a YAML file that says which column is the lead id, which the MQL timestamp, each feature
with its type, the markers that mean "missing", the labels, the excluded columns and the groups
the rule criteria use. Loading, validation, features, the MLflow signature and the API's request
model are all derived from it, so a field is declared here and nowhere else.
"""

from __future__ import annotations

import hashlib
import json
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Literal, Self

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator


class SpecError(ValueError):
    """A spec file that cannot be used; the message names the file and the offending key."""


class FieldType(StrEnum):
    numeric = "numeric"
    categorical = "categorical"
    boolean = "boolean"
    email = "email"  # reduced to the domain's kind (corporate, free, education, invalid)
    phone = "phone"  # reduced to valid / invalid
    text = "text"  # free text such as a job title: normalised, frequent values kept


# Field types whose raw values identify a person; only derived values may leave the process.
PERSONAL_BY_DEFAULT = {FieldType.email, FieldType.phone}

TRUE_WORDS = frozenset({"true", "t", "yes", "y", "1", "1.0"})
FALSE_WORDS = frozenset({"false", "f", "no", "n", "0", "0.0"})


def _to_strings(value: object) -> object:
    # YAML turns yes/no/1 into bools and ints; a CSV cell is always text.
    if isinstance(value, list | tuple):
        return tuple(_yaml_scalar_to_str(v) for v in value)
    return (_yaml_scalar_to_str(value),) if value is not None else value


# A list of cell values as the file spells them, whatever YAML made of them.
Texts = Annotated[tuple[str, ...], BeforeValidator(_to_strings)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldSpec(_Strict):
    """One input column: its type and what the pipeline may do with it."""

    type: FieldType
    description: str | None = None
    group: str | None = None
    values: tuple[str, ...] | None = Field(
        default=None,
        description="Known values of a categorical field (others are kept, as unseen).",
    )
    min: float | None = None
    max: float | None = None
    missing_values: Texts = Field(
        default=(), description="Extra markers for 'missing' in this column only (e.g. 999)."
    )
    personal: bool | None = Field(
        default=None, description="Raw value identifies a person: derive features, never store it."
    )
    monotone: Literal["increasing", "decreasing"] | None = None

    @model_validator(mode="after")
    def _check_type_options(self) -> Self:
        if self.values is not None and self.type is not FieldType.categorical:
            raise ValueError(f"'values' applies to categorical fields, not {self.type.value}")
        if (self.min is not None or self.max is not None) and self.type is not FieldType.numeric:
            raise ValueError(f"'min'/'max' apply to numeric fields, not {self.type.value}")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min ({self.min}) is greater than max ({self.max})")
        if self.monotone and self.type not in (FieldType.numeric, FieldType.boolean):
            raise ValueError("'monotone' applies to numeric and boolean fields only")
        return self

    @property
    def is_personal(self) -> bool:
        return self.personal if self.personal is not None else self.type in PERSONAL_BY_DEFAULT

    @property
    def has_text_value(self) -> bool:
        """Whether its clean value is text: a category, an e-mail's or a phone's kind, normalised
        free text. A personal name's clean value is only whether it was given."""
        if self.type is FieldType.text:
            return not self.is_personal
        return self.type in (FieldType.categorical, FieldType.email, FieldType.phone)


class LabelSpec(_Strict):
    """Which column holds an outcome and which of its values mean yes, no and not yet."""

    column: str
    positive: Texts
    negative: Texts
    undecided: Texts = ("",)

    @model_validator(mode="after")
    def _disjoint(self) -> Self:
        if not self.positive or not self.negative:
            raise ValueError("a label needs at least one positive and one negative value")
        seen: dict[str, str] = {}
        for role in ("positive", "negative", "undecided"):
            for value in getattr(self, role):
                if value in seen:
                    raise ValueError(f"value {value!r} is both {seen[value]} and {role}")
                seen[value] = role
        return self


class Labels(_Strict):
    accepted: LabelSpec
    sql: LabelSpec | None = None


class SplitSpec(_Strict):
    """How to hold data out: by time when a timestamp exists; by row order when the file is in
    time order without a date column (the last rows are the most recent); else stratified."""

    method: Literal["time", "order", "stratified"] = "time"
    test_fraction: Annotated[float, Field(gt=0, lt=0.9)] = 0.2
    valid_fraction: Annotated[float, Field(gt=0, lt=0.5)] = 0.1


class ReadSpec(_Strict):
    delimiter: str = ","
    encoding: str = "utf-8"

    @model_validator(mode="after")
    def _one_byte_delimiter(self) -> ReadSpec:
        # Arrow's CSV parser, and the scan that cuts a file into parts, read bytes.
        if len(self.delimiter) != 1 or not self.delimiter.isascii() or self.delimiter in '"\r\n':
            raise ValueError(
                f"read.delimiter must be one ASCII character other than a quote or a line "
                f"break, got {self.delimiter!r}"
            )
        return self


class AuditSpec(_Strict):
    """Thresholds of the leakage audit (see pipeline/audit.py for why these values)."""

    single_column_auc: Annotated[float, Field(gt=0.5, le=1.0)] = 0.9
    dominance_auc_drop: Annotated[float, Field(gt=0, le=0.5)] = 0.05
    dominance_ratio: Annotated[float, Field(ge=1)] = 3.0
    allow: tuple[str, ...] = Field(
        default=(), description="Columns kept even if the audit flags them (you checked them)."
    )


class DatasetSpec(_Strict):
    """A leads table: roles of its columns, feature types, labels, split and audit settings."""

    name: str
    description: str | None = None
    model_name: str | None = None
    id: str | None = Field(default=None, description="Lead id column; row numbers when absent.")
    timestamp: str | None = Field(default=None, description="When the lead became an MQL.")
    read: ReadSpec = ReadSpec()
    missing_values: Texts = ("",)
    fields: dict[str, FieldSpec]
    labels: Labels
    exclude: tuple[str, ...] = ()
    segments: tuple[str, ...] = ()
    split: SplitSpec = SplitSpec()
    audit: AuditSpec = AuditSpec()
    max_bad_row_fraction: Annotated[float, Field(ge=0, le=1)] = 0.2
    criteria: str | None = Field(default=None, description="Criteria YAML, relative to the spec.")
    source_path: Path | None = Field(default=None, exclude=True)

    @model_validator(mode="after")
    def _check_roles(self) -> Self:
        if not self.fields:
            raise ValueError("'fields' must declare at least one feature")
        roles: dict[str, str] = {}
        named = [("id", self.id), ("timestamp", self.timestamp)]
        named += [("accepted label", self.labels.accepted.column)]
        if self.labels.sql:
            named.append(("sql label", self.labels.sql.column))
        for role, column in named:
            if column is None:
                continue
            if column in roles:
                raise ValueError(f"column {column!r} is both {roles[column]} and {role}")
            if column in self.fields:
                raise ValueError(f"column {column!r} is the {role} and cannot also be a field")
            if column in self.exclude:
                raise ValueError(f"column {column!r} is the {role} and cannot be excluded")
            roles[column] = role
        for column in self.exclude:
            if column in self.fields:
                raise ValueError(f"column {column!r} is both a field and excluded")
        for name in (*self.segments, *self.audit.allow):
            if name not in self.fields:
                raise ValueError(f"{name!r} (in segments or audit.allow) is not a declared field")
        if self.split.method == "time" and self.timestamp is None:
            raise ValueError("split.method 'time' needs a 'timestamp' column; use 'stratified'")
        if self.split.test_fraction + self.split.valid_fraction >= 0.9:
            raise ValueError("test_fraction + valid_fraction leaves too little to train on")
        return self

    # -- derived views -------------------------------------------------------------------------
    @property
    def label_columns(self) -> list[str]:
        labels = [self.labels.accepted.column]
        return labels + ([self.labels.sql.column] if self.labels.sql else [])

    @property
    def lead_columns(self) -> list[str]:
        """What describes a lead: id and timestamp (when declared) and the fields."""
        return [c for c in (self.id, self.timestamp) if c] + list(self.fields)

    @property
    def required_columns(self) -> list[str]:
        """Columns a training file must have: the lead columns and the labels."""
        return self.lead_columns + self.label_columns

    @property
    def personal_fields(self) -> list[str]:
        return [name for name, f in self.fields.items() if f.is_personal]

    def fields_of(self, *types: FieldType) -> list[str]:
        return [name for name, f in self.fields.items() if f.type in types]

    def group(self, name: str) -> list[str]:
        return [field for field, f in self.fields.items() if f.group == name]

    def missing_markers(self, field: str) -> frozenset[str]:
        return frozenset(self.missing_values) | frozenset(self.fields[field].missing_values)

    @property
    def criteria_path(self) -> Path | None:
        if self.criteria is None:
            return None
        base = self.source_path.parent if self.source_path else Path.cwd()
        return (base / self.criteria).resolve()

    def digest(self) -> str:
        """A short content hash: two specs with the same meaning have the same digest."""
        canonical = json.dumps(self.model_dump(mode="json"), sort_keys=True)
        return hashlib.sha256(canonical.encode()).hexdigest()[:12]


def load_spec(path: str | Path) -> DatasetSpec:
    """Read and validate a spec YAML; any problem raises SpecError naming the file and key."""
    path = Path(path)
    try:
        raw = load_yaml(path)
    except FileNotFoundError as exc:
        raise SpecError(f"{path}: no such spec file") from exc
    except yaml.YAMLError as exc:
        raise SpecError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise SpecError(f"{path}: a spec is a YAML mapping with 'name', 'fields' and 'labels'")
    try:
        return DatasetSpec.model_validate({**raw, "source_path": path})
    except ValidationError as exc:
        raise SpecError(f"{path}: invalid spec:\n{format_validation_errors(exc)}") from exc


class _Yaml12Loader(yaml.SafeLoader):
    """SafeLoader without YAML 1.1's yes/no/on/off booleans: `yes` in a spec means the text yes."""


_Yaml12Loader.yaml_implicit_resolvers = {
    key: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for key, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Yaml12Loader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(path: Path) -> object:
    """Parse a YAML file with YAML 1.2 booleans (shared by specs, criteria and configs)."""
    return yaml.load(path.read_text(encoding="utf-8"), Loader=_Yaml12Loader)


def format_validation_errors(exc: ValidationError) -> str:
    lines = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"]) or "(top level)"
        message = error["msg"].removeprefix("Value error, ")
        lines.append(f"  - {where}: {message}")
    return "\n".join(lines)


def _yaml_scalar_to_str(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)
