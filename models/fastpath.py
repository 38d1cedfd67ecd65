"""The single-lead hot path: a lead (a dict) straight to a NumPy row, rules and scores.

Everything that depends only on the model is prepared once, when the scorer is built: per-field
converters, vocabularies, the criteria as predicates. Each converter mirrors its vectorised twin in
`models.features` (the frame path used by training, the pyfunc and batch scoring); a test checks
that both paths give identical features, probabilities and rule scores on thousands of leads.
Regexes use Python's Unicode classes (\\w, \\s, \\d), as pandas does for the frame path, and
text is lowercased as Arrow does it there (`models.features.lower_one`).
"""

from __future__ import annotations

import calendar
import ctypes
import math
import re
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

import lightgbm as lgb
import numpy as np
import pandas as pd
from lightgbm.basic import _LIB, _safe_call

from models.acceptance import AcceptanceModel, CalibratedBooster
from models.criteria import Rule
from models.encoder import MISSING_CODE
from models.features import (
    EDU_RE,
    EMAIL_RE,
    FREE_MAIL_DOMAINS,
    PLACEHOLDERS,
    TIME_FEATURES,
    lower_one,
    parse_timestamps,
    time_features,
)
from models.spec import FALSE_WORDS, TRUE_WORDS, DatasetSpec, FieldSpec, FieldType

# The same loaded library, called without releasing the GIL. A ctypes call through CDLL drops the
# GIL and must win it back afterwards: when another thread is runnable (a worker thread scoring a
# big batch), that costs the request up to a switch interval, twice per lead, for a ~15 us call.
_LIB_HOLDING_GIL = ctypes.PyDLL(_LIB._name, handle=_LIB._handle)

_EMAIL = re.compile(EMAIL_RE)
_EDU = re.compile(EDU_RE)
_NOT_DIGIT = re.compile(r"\D")
_TEXT_JUNK = re.compile(r"[^\w+#&/]+")
NAN = float("nan")


def is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


@dataclass(frozen=True)
class FastScore:
    p_accept: float
    p_sql: float | None
    rule_total: float
    rule_pass: bool
    breakdown: dict[str, float]
    fired: dict[str, list[str]]
    clean: dict[str, object]
    row: np.ndarray


class LeadScorer:
    """Scores one lead at a time with the model's own encoder, boosters and criteria."""

    def __init__(self, model: AcceptanceModel) -> None:
        self.model = model
        spec = model.spec
        self._converters = {
            name: _converter(field, spec.missing_markers(name))
            for name, field in spec.fields.items()
        }
        self._timestamp = spec.timestamp
        self._personal = [  # (field, its converter, kind -> stand-in)
            (name, self._converters[name], PLACEHOLDERS.get(spec.fields[name].type, {}))
            for name in spec.personal_fields
        ]
        encoder = model.encoder
        self._columns = [
            (name, encoder.vocabularies_.get(name), len(encoder.vocabularies_.get(name, {})) + 1)
            for name in encoder.feature_names_
        ]
        features = len(self._columns)
        self._p_accept = _Probability(model.accept, features)
        self._p_sql = _Probability(model.sql, features) if model.sql is not None else None
        self._contributions = SingleRowPredictor(
            model.accept.booster, features, SingleRowPredictor.CONTRIB
        )
        self._criteria = [
            (
                name,
                crit.weight,
                sum(r.points for r in crit.rules),
                [(r.name, r.points, _predicate(r, spec)) for r in crit.rules],
            )
            for name, crit in model.criteria.criteria.items()
        ]

    def clean(self, lead: Mapping[str, object]) -> dict[str, object]:
        """The clean view of one lead, as `models.features.normalize` gives it for a frame."""
        clean = {name: convert(lead.get(name)) for name, convert in self._converters.items()}
        if self._timestamp is not None and self._timestamp in lead:
            clean.update(_time_features(lead[self._timestamp]))
        return clean

    def encode(self, clean: Mapping[str, object]) -> np.ndarray:
        # A list made into an array at once: setting NumPy items one by one costs ten times more.
        values = []
        for name, vocabulary, other in self._columns:
            value = clean.get(name)
            if vocabulary is None:  # a number, NaN or None (NaN stays NaN)
                values.append(NAN if value is None else value)
            else:
                values.append(
                    MISSING_CODE if is_missing(value) else vocabulary.get(str(value), other)
                )
        return np.array([values], dtype=np.float32)

    def score(self, lead: Mapping[str, object]) -> FastScore:
        clean = self.clean(lead)
        row = self.encode(clean)
        model = self.model
        p_accept = self._p_accept(row)
        p_sql = self._p_sql(row) if self._p_sql is not None else None
        breakdown, fired = {}, {}
        for name, weight, possible, rules in self._criteria:
            earned = 0.0
            fired[name] = []
            for rule_name, points, predicate in rules:
                share = predicate(clean)
                if share > 0:
                    fired[name].append(rule_name)
                earned += points * share
            breakdown[name] = weight * earned / possible
        total = round(sum(breakdown.values()), 6)
        return FastScore(
            p_accept=p_accept,
            p_sql=p_sql,
            rule_total=total,
            rule_pass=total >= model.criteria.pass_score,
            breakdown=breakdown,
            fired=fired,
            clean=clean,
            row=row,
        )

    def contributions(self, row: np.ndarray) -> np.ndarray:
        """Each feature's contribution to the margin of P(accept) for one encoded row (TreeSHAP,
        as `Booster.predict(pred_contrib=True)` gives it, without the bias)."""
        return self._contributions.values(row)[:-1]

    def redacted(self, lead: Mapping[str, object]) -> dict[str, object]:
        """The lead with personal values replaced by stand-ins (see features.redact_personal)."""
        out = dict(lead)
        for name, convert, stand_ins in self._personal:
            kind = convert(lead.get(name))
            out[name] = None if is_missing(kind) else stand_ins.get(kind, "redacted")
        return out


class SingleRowPredictor:
    """One row through LightGBM's single-row C API, prepared once per booster: its raw margin,
    or its per-feature contributions (TreeSHAP, the last value being the bias).

    `Booster.predict` re-validates its input and rebuilds a predictor on every call: about 50 us
    for one row, several times the trees' own work. The C API's "fast" single-row entry point
    keeps that set-up in a config handle made once here. Same trees, same iterations as
    `Booster.predict` (best iteration when early stopping kept one), so the values are identical.
    """

    # C_API_PREDICT_RAW_SCORE, C_API_PREDICT_CONTRIB; C_API_DTYPE_FLOAT32 (the encoder's)
    RAW_SCORE, CONTRIB, _FLOAT32 = 1, 3, 0

    def __init__(self, booster: lgb.Booster, features: int, kind: int = RAW_SCORE) -> None:
        self._booster = booster  # keeps the C booster alive as long as the config that uses it
        self._handle = ctypes.c_void_p()
        iterations = booster.best_iteration if booster.best_iteration > 0 else -1
        _safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(kind),
                ctypes.c_int(0),
                ctypes.c_int(iterations),
                ctypes.c_int(self._FLOAT32),
                ctypes.c_int32(features),
                ctypes.c_char_p(b"num_threads=1"),
                ctypes.byref(self._handle),
            )
        )
        self._out = np.zeros(features + 1 if kind == self.CONTRIB else 1, dtype=np.float64)
        self._out_pointer = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._length = ctypes.c_int64(0)
        self._lock = threading.Lock()  # the config and the output buffer are shared state

    def _predict(self, row: np.ndarray) -> None:
        """`row`: float32, C-contiguous, one value per feature (what `LeadScorer.encode` makes).
        Call with the lock held; the result is in `self._out`."""
        _safe_call(
            _LIB_HOLDING_GIL.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle,
                row.ctypes.data_as(ctypes.c_void_p),
                ctypes.byref(self._length),
                self._out_pointer,
            )
        )

    def __call__(self, row: np.ndarray) -> float:
        """The raw margin (a RAW_SCORE predictor)."""
        with self._lock:
            self._predict(row)
            return float(self._out[0])

    def values(self, row: np.ndarray) -> np.ndarray:
        """All the values the call gives, as a new array (a CONTRIB predictor's contributions)."""
        with self._lock:
            self._predict(row)
            return self._out.copy()

    def __del__(self) -> None:
        if getattr(self, "_handle", None) and self._handle.value:
            _LIB.LGBM_FastConfigFree(self._handle)


class _Probability:
    """Calibrated probability of one encoded row."""

    def __init__(self, scorer: CalibratedBooster, features: int) -> None:
        self._margin = SingleRowPredictor(scorer.booster, features)
        self._calibrator = scorer.calibrator

    def __call__(self, row: np.ndarray) -> float:
        return self._calibrator.one(self._margin(row))


# -- per-type converters: raw value -> clean value (mirrors models.features' parsers) -------------
def _converter(field: FieldSpec, markers: frozenset[str]) -> Callable[[object], object]:
    numeric_markers = {float(m) for m in markers if _is_number(m)}
    canonical = {v.lower(): v for v in field.values or ()}

    def text_of(value: object) -> str | None:
        if is_missing(value):
            return None
        text = ("true" if value else "false") if isinstance(value, bool) else str(value).strip()
        return None if text in markers else text

    def numeric(value: object) -> object:
        if isinstance(value, int | float) and not isinstance(value, bool):
            try:
                number = float(value)
            except OverflowError:  # an int past float's range: pandas makes it missing
                return NAN
        else:
            text = text_of(value)
            # float() also reads "1_000" and non-ASCII digits, which pd.to_numeric does not.
            if text is None or not text.isascii() or "_" in text:
                return NAN
            try:
                number = float(text.replace(",", ""))
            except ValueError:
                return NAN
        if not math.isfinite(number) or number in numeric_markers:
            return NAN
        if (field.min is not None and number < field.min) or (
            field.max is not None and number > field.max
        ):
            return NAN
        return number

    def boolean(value: object) -> object:
        text = text_of(value)
        if text is None:
            return NAN
        lowered = lower_one(text)
        return 1.0 if lowered in TRUE_WORDS else 0.0 if lowered in FALSE_WORDS else NAN

    def categorical(value: object) -> object:
        text = text_of(value)
        if text is None:
            return None
        lowered = lower_one(text)
        return canonical.get(lowered, lowered) if canonical else lowered

    def text(value: object) -> object:
        raw = text_of(value)
        if raw is None:
            return NAN if field.is_personal else None
        if field.is_personal:
            return 1.0
        return _TEXT_JUNK.sub(" ", lower_one(raw)).strip()

    def email(value: object) -> object:
        raw = text_of(value)
        if raw is None:
            return None
        lowered = lower_one(raw.strip())
        if not _EMAIL.match(lowered):
            return "invalid"
        domain = lowered.rsplit("@", 1)[-1]
        if domain in FREE_MAIL_DOMAINS:
            return "free"
        return "education" if _EDU.search(domain) else "corporate"

    def phone(value: object) -> object:
        raw = text_of(value)
        if raw is None:
            return None
        digits = _NOT_DIGIT.sub("", raw)
        repeated = digits[1:] == digits[:-1]
        return "valid" if 7 <= len(digits) <= 15 and not repeated else "invalid"

    return {
        FieldType.numeric: numeric,
        FieldType.boolean: boolean,
        FieldType.categorical: categorical,
        FieldType.text: text,
        FieldType.email: email,
        FieldType.phone: phone,
    }[field.type]


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _time_features(value: object) -> dict[str, float]:
    try:
        stamp = _as_utc_naive(value)
    except (OverflowError, ValueError):  # in UTC before year 1 or after 9999: past `datetime`
        frame = time_features(parse_timestamps(pd.Series([value], dtype=object)))
        return {name: float(frame[name].iloc[0]) for name in TIME_FEATURES}
    if stamp is None:
        return dict.fromkeys(TIME_FEATURES, NAN)
    last_day = calendar.monthrange(stamp.year, stamp.month)[1]
    return {
        "mql_weekday": float(stamp.weekday()),
        "mql_days_to_month_end": float(last_day - stamp.day),
    }


def _as_utc_naive(value: object) -> datetime | None:
    if isinstance(value, datetime):
        stamp = value
    elif is_missing(value):
        return None
    else:
        parsed = pd.to_datetime(str(value), errors="coerce", utc=True)
        if pd.isna(parsed):
            return None
        # The features need the date only: nanoseconds go without a warning per request.
        return parsed.tz_localize(None).to_pydatetime(warn=False)
    return stamp.astimezone(UTC).replace(tzinfo=None) if stamp.tzinfo else stamp


# -- criteria as predicates on the clean dict (mirrors models.criteria._evaluate) ------------------
def _predicate(rule: Rule, spec: DatasetSpec) -> Callable[[Mapping[str, object]], float]:
    if rule.group is not None:
        fields = spec.group(rule.group)

        def group_share(clean: Mapping[str, object]) -> float:
            present = sum(not is_missing(clean.get(f)) for f in fields) / len(fields)
            return present if rule.present else 1 - present

        return group_share
    name = rule.field
    field_type = spec.fields[name].type
    match rule.condition:
        case "present":
            return lambda c: float(is_missing(c.get(name)) != rule.present)
        case "equals":
            target = (
                (1.0 if rule.equals in (True, "true") else 0.0)
                if (field_type is FieldType.boolean)
                else rule.equals
            )
            return lambda c: float(c.get(name) == target)
        case "in_":
            allowed = set(rule.in_)
            return lambda c: float(c.get(name) in allowed)
        case "not_in":
            barred = set(rule.not_in)
            return lambda c: float(not is_missing(c.get(name)) and c.get(name) not in barred)
        case "gte":
            return lambda c: float(not is_missing(c.get(name)) and c.get(name) >= rule.gte)
        case _:
            return lambda c: float(not is_missing(c.get(name)) and c.get(name) <= rule.lte)
