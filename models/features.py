"""Raw lead values -> the clean view that rules, encoder and baselines all read.

`parse_field` is the single definition of how a raw cell becomes a value: the pipeline's validation
uses its `bad` mask to report rows, `normalize` uses its values. Personal fields (e-mail, phone,
names) leave this module only as what the model uses: an e-mail's domain kind, a phone's validity,
a name's presence.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
from pandas.errors import OutOfBoundsDatetime

from models.spec import FALSE_WORDS, TRUE_WORDS, DatasetSpec, FieldSpec, FieldType

FREE_MAIL_DOMAINS = frozenset(
    (
        "gmail.com",
        "googlemail.com",
        "yahoo.com",
        "yahoo.co.uk",
        "yahoo.fr",
        "ymail.com",
        "hotmail.com",
        "hotmail.co.uk",
        "hotmail.fr",
        "outlook.com",
        "live.com",
        "msn.com",
        "aol.com",
        "icloud.com",
        "me.com",
        "mac.com",
        "gmx.com",
        "gmx.de",
        "gmx.net",
        "web.de",
        "mail.com",
        "mail.ru",
        "yandex.ru",
        "yandex.com",
        "proton.me",
        "protonmail.com",
        "zoho.com",
        "qq.com",
        "163.com",
        "126.com",
        "naver.com",
        "libero.it",
        "orange.fr",
        "free.fr",
        "t-online.de",
        "seznam.cz",
        "wp.pl",
        "o2.pl",
    )
)
EMAIL_KINDS = ("corporate", "free", "education", "invalid")
PHONE_KINDS = ("valid", "invalid")
# An address is a user name, "@" and a domain; the halves are checked apart (see email_kind).
_EMAIL_USER_RE = r"[^@\s]+"
_EMAIL_DOMAIN_RE = r"(?:[a-z0-9-]+\.)+[a-z]{2,}$"
EMAIL_RE = rf"^{_EMAIL_USER_RE}@{_EMAIL_DOMAIN_RE}"
EDU_RE = r"(?:\.edu|\.ac\.[a-z]{2}|\.edu\.[a-z]{2})$"

# Derived from the timestamp: sales capacity differs by weekday and near month-end.
TIME_FEATURES = ("mql_weekday", "mql_days_to_month_end")
# Rows looked at to decide whether a column repeats its values enough to parse distinct values.
_SAMPLE_ROWS = 4096


@dataclass(frozen=True)
class Parsed:
    """A parsed column: clean values, where the cell was missing, and where it was unreadable."""

    values: pd.Series
    missing: np.ndarray
    bad: np.ndarray


def parse_field(
    raw: pd.Series, field: FieldSpec, markers: frozenset[str], categorical: bool = False
) -> Parsed:
    """Parse one column of raw cells (text from a file, or typed values from an API/DataFrame).

    A cell parses on its own, whatever its neighbours, so a long text column with few distinct
    values (most CRM fields: a million rows, a few hundred values) is parsed once per distinct
    value and the results are spread back over the rows: the same answer, several times faster.
    `categorical`: such a column's text values, and an e-mail's or a phone's kinds, come as a
    pandas categorical (the same values), which the encoder and the rules then read per
    distinct value too.
    """
    if not _few_distinct(raw):
        return _parse_cells(raw, field, markers, categorical)
    codes, uniques = raw.factorize()
    distinct = pd.Series(uniques, name=raw.name)
    nulls = codes < 0
    if nulls.any():  # a null cell parses like any other: once, appended to the distinct values
        first_null = int(np.flatnonzero(nulls)[0])
        distinct = pd.concat([distinct, raw.iloc[first_null : first_null + 1]], ignore_index=True)
        codes = np.where(nulls, len(distinct) - 1, codes)
    parsed = _parse_cells(distinct, field, markers)
    if categorical and field.has_text_value:
        # The distinct cells' values, themselves made distinct ("Software" and "software" are one).
        value_codes, values = pd.factorize(parsed.values, use_na_sentinel=True)
        spread = pd.Categorical.from_codes(value_codes[codes], categories=values)
        column = pd.Series(spread, index=raw.index)
    else:
        column = parsed.values.iloc[codes].set_axis(raw.index)
    return Parsed(values=column, missing=parsed.missing[codes], bad=parsed.bad[codes])


def _few_distinct(raw: pd.Series) -> bool:
    """Whether to parse `raw` per distinct value: long text columns that repeat their values.

    Only text: factorizing mixed Python objects would merge 1, 1.0 and True, which parse apart.
    """
    if len(raw) < 4 * _SAMPLE_ROWS or not isinstance(raw.dtype, pd.StringDtype):
        return False
    return raw.iloc[:_SAMPLE_ROWS].nunique(dropna=False) <= _SAMPLE_ROWS // 4


def _parse_cells(
    raw: pd.Series, field: FieldSpec, markers: frozenset[str], categorical: bool = False
) -> Parsed:
    text = _as_text(raw)
    missing = (text.isna() | text.isin(markers)).to_numpy(copy=True)
    parser = _PARSERS[field.type]
    values, bad = parser(raw, text, missing, field)
    if isinstance(values.dtype, pd.CategoricalDtype) and not categorical:
        values = values.astype(object)  # an e-mail's or a phone's kinds, as text
    if field.type is FieldType.numeric:
        # "999" must mean missing whether it arrives as the text "999" or the number 999.0.
        missing = missing | values.isin(numeric_markers(markers)).to_numpy()
    return Parsed(values=values, missing=missing, bad=bad & ~missing)


@functools.lru_cache(maxsize=256)
def numeric_markers(markers: frozenset[str]) -> tuple[float, ...]:
    """The missing-value markers that read as numbers, as those numbers."""
    parsed = pd.to_numeric(pd.Series(list(markers), dtype=object), errors="coerce")
    return tuple(parsed.dropna().tolist())


def normalize(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """The clean, PII-free view of `frame`'s declared fields (plus time features when stamped).

    Unreadable cells become missing here; the pipeline rejects such rows before it gets this far,
    and serving validates them at the edge, so this never hides an error from a user.
    """
    parsed = {
        name: parse_field(
            frame[name] if name in frame else pd.Series(pd.NA, index=frame.index, dtype=object),
            field,
            spec.missing_markers(name),
        )
        for name, field in spec.fields.items()
    }
    stamps = None
    if spec.timestamp:  # a frame without the column has no time: its features are missing
        given = (
            frame[spec.timestamp]
            if spec.timestamp in frame
            else pd.Series(None, index=frame.index, dtype=object)
        )
        stamps = parse_timestamps(given)
    return assemble_clean(parsed, stamps, spec, frame.index)


def assemble_clean(
    parsed: dict[str, Parsed], stamps: pd.Series | None, spec: DatasetSpec, index: pd.Index
) -> pd.DataFrame:
    """The clean view from already parsed columns (the loader parses once, to validate)."""
    columns: dict[str, pd.Series] = {}
    for name, field in spec.fields.items():
        column = parsed[name]
        if field.type is FieldType.text and field.is_personal:
            # A name's only legitimate signal is whether it was given.
            columns[name] = pd.Series(np.where(column.missing, np.nan, 1.0), index=index)
        else:
            unusable = column.missing | column.bad
            # Many columns have nothing to blank out; mask would copy a million rows for nothing.
            columns[name] = column.values.mask(unusable) if unusable.any() else column.values
    if stamps is None:
        return pd.DataFrame(columns, index=index)
    times = time_features(stamps)
    if not (index.is_unique and times.index.equals(index)):
        return pd.DataFrame(columns, index=index).join(times)
    # What the join gives when both share one index, without copying a million rows twice.
    return pd.DataFrame({**columns, **times}, index=index)


def parse_timestamps(raw: pd.Series) -> pd.Series:
    """Timestamps as naive UTC datetimes; unreadable cells become NaT (validation reports them).

    Text and date/time values are read; a number is not (seconds or milliseconds since 1970?
    nothing says which), nor a boolean: those cells are unreadable, as on the single-lead path.
    """
    raw = _date_cells(raw)
    try:
        stamps = _utc_stamps(raw)
    except OutOfBoundsDatetime:
        # A cell with nanoseconds and another in a year outside 1677-2262 fit no one resolution
        # pandas can pick for the column (it raises, `coerce` or not). The features need no
        # more than microseconds, which hold any date Python or ISO 8601 can write.
        micro = raw.astype("str").str.replace(r"(\.\d{6})\d+", r"\1", regex=True)
        stamps = _utc_stamps(micro)
    return stamps.dt.tz_localize(None)


def _date_cells(raw: pd.Series) -> pd.Series:
    if isinstance(raw.dtype, pd.StringDtype) or pd.api.types.is_datetime64_any_dtype(raw):
        return raw  # a file's text (the common case) or real date/times
    if raw.dtype != object:  # numbers, booleans
        return pd.Series(None, index=raw.index, dtype=object)
    readable = raw.map(lambda cell: isinstance(cell, str | date))  # datetime is a date too
    return raw.where(readable.astype(bool), None)


def _utc_stamps(raw: pd.Series) -> pd.Series:
    # ISO 8601 (what CRMs export) parses 2-3x faster than format="mixed", which infers a
    # format cell by cell; the cells it does not take get the mixed parse they always had.
    stamps = pd.to_datetime(raw, errors="coerce", utc=True, format="ISO8601")
    retry = (stamps.isna() & raw.notna()).to_numpy()
    if retry.any():
        stamps[retry] = pd.to_datetime(raw[retry], errors="coerce", utc=True, format="mixed")
    return stamps


def time_features(stamps: pd.Series) -> pd.DataFrame:
    """Weekday and days left in the month. Read off the date's fields, with no date arithmetic,
    which would overflow for a stamp near the ends of the range pandas can hold."""
    return pd.DataFrame(
        {
            "mql_weekday": stamps.dt.day_of_week.astype("float64"),
            "mql_days_to_month_end": (stamps.dt.days_in_month - stamps.dt.day).astype("float64"),
        },
        index=stamps.index,
    )


def email_kind(text: pd.Series) -> pd.Series:
    """corporate / free / education / invalid for each address (missing stays missing)."""
    return email_kinds(text).astype(object)


def email_kinds(text: pd.Series) -> pd.Series:
    """email_kind as a categorical.

    EMAIL_RE (with Python's `re`) is checked in its two halves: the text before the first "@"
    must be a user name, the rest a domain, whose kind follows. A million addresses share a few
    thousand user names and domains, so each half is checked once per distinct value.
    """
    lowered = text.str.strip().str.lower()
    user, domain = _split_at_first(lowered, "@")
    user_ok = _user_names_ok(user)
    code = {kind: i for i, kind in enumerate(EMAIL_KINDS)}
    kind = _each_distinct(domain, lambda d: code[_domain_kind(d)], code["invalid"], np.int8)
    kind = np.where(user_ok, kind, np.int8(code["invalid"]))
    return _kinds(kind, EMAIL_KINDS, text)


def _user_names_ok(user: pa.Array) -> np.ndarray:
    """Whether each cell is a user name (_EMAIL_USER_RE; never an "@": it is what comes before
    the first one). User names are nearly as many as addresses, so the ASCII ones are checked
    straight off Arrow's buffers (not empty, no whitespace); any other takes the regex."""
    data, offsets = text_buffers(user)
    ok = (np.diff(offsets) > 0) & ~_cells_holding(offsets, _ascii_space(data))
    other = _not_ascii(user)
    if other.any():
        ok[other] = _each_distinct(
            user.filter(other), lambda u: re.fullmatch(_EMAIL_USER_RE, u) is not None, False
        )
    return ok & user.is_valid().to_numpy(zero_copy_only=False)


# A file's leads come from a few thousand companies, so a worker that has checked a domain meets
# it again in nearly every chunk: the answer is kept rather than two regexes run again.
@functools.lru_cache(maxsize=1 << 16)
def _domain_kind(domain: str) -> str:
    if re.match(_EMAIL_DOMAIN_RE, domain) is None:
        return "invalid"
    if domain in FREE_MAIL_DOMAINS:
        return "free"
    return "education" if re.search(EDU_RE, domain) else "corporate"


def _split_at_first(text: pd.Series, separator: str) -> tuple[pa.Array, pa.Array]:
    """Each cell's text before the first `separator` and after it (null when it has none)."""
    cells = arrow_text(text)
    parts = pc.split_pattern(cells, separator, max_splits=1)
    before = pc.list_element(parts, 0)
    offsets = parts.offsets.to_numpy()
    has_separator = np.diff(offsets) == 2
    after = parts.values.take(
        pa.array(np.where(has_separator, offsets[:-1] + 1, 0), mask=~has_separator)
    )
    return before, after


def _each_distinct(
    cells: pa.Array,
    function: Callable[[str], object],
    null: object,
    dtype: type | None = None,
) -> np.ndarray:
    """`function` of each cell, called once per distinct value; `null` for null cells.

    `dtype=object` for text results that end up in an object column: the rows then share the
    few result strings, where a NumPy text array would make a new string for each row.
    """
    encoded = pc.dictionary_encode(cells)
    results = [function(v) for v in encoded.dictionary.to_pylist()]
    lookup = np.array([*results, null], dtype=dtype)
    return lookup[encoded.indices.fill_null(len(results)).to_numpy()]


def phone_kind(text: pd.Series) -> pd.Series:
    """valid when 7-15 digits (Python's \\d) that are not all the same digit, else invalid."""
    return phone_kinds(text).astype(object)


def phone_kinds(text: pd.Series) -> pd.Series:
    """phone_kind as a categorical.

    Phone numbers are nearly all distinct, so the ASCII ones (where a digit is a byte 0-9) are
    read straight off Arrow's buffers; any other takes the regex.
    """
    cells = arrow_text(text)
    valid = _ascii_phones_valid(cells)
    other = _not_ascii(cells)
    if other.any():
        valid[other] = _phones_valid_by_regex(text[other])
    code = {kind: i for i, kind in enumerate(PHONE_KINDS)}
    return _kinds(
        np.where(valid, np.int8(code["valid"]), np.int8(code["invalid"])), PHONE_KINDS, text
    )


def _kinds(codes: np.ndarray, kinds: tuple[str, ...], text: pd.Series) -> pd.Series:
    """Codes into `kinds` as a categorical column, missing where `text` is: what the rules and
    the encoder compare per kind, where a column of strings was compared a row at a time."""
    codes = np.where(text.isna().to_numpy(), np.int8(-1), codes)
    return pd.Series(pd.Categorical.from_codes(codes, categories=kinds), index=text.index)


def _ascii_phones_valid(cells: pa.Array) -> np.ndarray:
    """phone_kind's test for cells of ASCII text: 7-15 bytes 0-9, not all the same one."""
    data, offsets = text_buffers(cells)
    is_digit = (data - np.uint8(ord("0"))) < 10
    width = _count_type(len(data))
    before = np.zeros(len(data) + 1, dtype=width)
    np.cumsum(is_digit, dtype=width, out=before[1:])
    first, end = before[offsets[:-1]], before[offsets[1:]]  # each cell's digits: [first, end)
    digits = data[np.flatnonzero(is_digit)]
    # changes[k]: how many of digits[1..k] differ from the digit before them.
    changes = np.zeros(max(len(digits), 1), dtype=width)
    np.cumsum(digits[1:] != digits[:-1], dtype=width, out=changes[1:])
    top = len(changes) - 1  # a cell without digits may start past the last one
    last = np.minimum(np.maximum(end - 1, first), top)
    same = changes[last] == changes[np.minimum(first, top)]
    count = end - first
    return (count >= 7) & (count <= 15) & ~same


def _phones_valid_by_regex(text: pd.Series) -> np.ndarray:
    digits = text.str.replace(r"\D", "", regex=True)
    length = digits.str.len()
    # A string equals itself shifted by one character exactly when all its characters are equal.
    repeated = digits.str.slice(1) == digits.str.slice(0, -1)
    return (length.between(7, 15) & ~repeated).fillna(False).to_numpy(dtype=bool)


def arrow_text(text: pd.Series | pd.Index) -> pa.Array:
    """The cells as one Arrow array of large strings (what pandas' "str" columns hold)."""
    cells = pa.array(text.astype("str"))
    cells = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
    return cells if cells.type == pa.large_string() else cells.cast(pa.large_string())


def text_buffers(cells: pa.Array) -> tuple[np.ndarray, np.ndarray]:
    """A string array's UTF-8 bytes and its cells' offsets into them (cell i: [o[i], o[i+1]))."""
    _, offsets, data = cells.buffers()  # a large_string array's (see arrow_text)
    if offsets is None:  # no cells
        return np.empty(0, np.uint8), np.zeros(1, np.int64)
    bounds = np.frombuffer(offsets, dtype=np.int64)[cells.offset : cells.offset + len(cells) + 1]
    raw = np.frombuffer(data, dtype=np.uint8) if data is not None else np.empty(0, np.uint8)
    return raw, bounds


def _not_ascii(cells: pa.Array) -> np.ndarray:
    """Which cells hold a character past ASCII (a null cell does not): the ones the byte-wise
    checks leave to a regex."""
    return ~pc.string_is_ascii(cells).fill_null(True).to_numpy(zero_copy_only=False)


def _ascii_space(data: np.ndarray) -> np.ndarray:
    """Which bytes are ASCII whitespace as Python has it (str.isspace, re's \\s): 9-13, 28-32."""
    return ((data - np.uint8(9)) < 5) | ((data - np.uint8(28)) < 5)


def _cells_holding(offsets: np.ndarray, flagged: np.ndarray) -> np.ndarray:
    """Per cell (offsets as from _buffers), whether it holds a flagged byte (few are flagged)."""
    at = np.flatnonzero(flagged)
    at = at[(at >= offsets[0]) & (at < offsets[-1])]  # bytes of no cell (a slice's neighbours)
    holding = np.zeros(len(offsets) - 1, dtype=bool)
    holding[np.searchsorted(offsets, at, side="right") - 1] = True
    return holding


def _count_type(size: int) -> type:
    return np.int32 if size < np.iinfo(np.int32).max else np.int64


def codes_of(
    values: pd.Series | np.ndarray,
    codes: Mapping[str, int],
    other: int,
    missing: int,
    dtype: type = np.int64,
) -> np.ndarray:
    """Each value's code in `codes` (`other` when absent, `missing` when null), looked up once
    per distinct value: a million cells of a categorical column hold a few hundred values."""
    return per_distinct(values, lambda value: codes.get(str(value), other), missing, dtype)


def lower_one(text: str) -> str:
    """One text lowercased exactly as the frame path's `.str.lower()` lowercases a column.

    That is Arrow's character-by-character mapping, which differs from Python's `str.lower` on a
    few characters ("İ", a word-final "Σ"): the single-lead path (models.fastpath) calls this so a
    lead's features do not depend on which path scored it.
    """
    if text.isascii():  # the same in both, and the common case
        return text.lower()
    return str(pd.Series([text], dtype="str").str.lower().iloc[0])


def map_values(values: pd.Series, mapping: Callable[[object], object]) -> pd.Series:
    """`values.map(mapping)` for low-cardinality columns, fast: map the distinct values only."""
    return pd.Series(per_distinct(values, mapping, None), index=values.index, dtype=object)


def per_distinct(
    values: pd.Series | np.ndarray,
    function: Callable[[object], object],
    null: object,
    dtype: type = object,
) -> np.ndarray:
    """`function` of each value, called once per distinct value; `null` for null values."""
    distinct, uniques = pd.factorize(values, use_na_sentinel=True)
    # factorize marks nulls -1, which indexes `null`, appended at the end.
    return np.array([*(function(value) for value in uniques), null], dtype=dtype)[distinct]


# -- per-type parsers: (raw, text, missing, field) -> (values, bad) ------------------------------
def _as_text(raw: pd.Series) -> pd.Series:
    """Cells as stripped text with real nulls kept as NA, whatever the input dtype."""
    if raw.dtype == bool or str(raw.dtype) == "boolean":
        raw = raw.map({True: "true", False: "false"})
    # pandas' "str" dtype keeps nulls as missing and runs string methods vectorised (Arrow).
    return raw.astype("str").str.strip()


def _parse_numeric(raw, text, missing, field):
    if pd.api.types.is_numeric_dtype(raw) and not pd.api.types.is_bool_dtype(raw):
        values = pd.to_numeric(raw, errors="coerce").astype("float64")
    else:
        values = pd.to_numeric(text.str.replace(",", "", regex=False), errors="coerce")
        values = values.astype("float64")
    unreadable = values.isna().to_numpy() | ~np.isfinite(values.to_numpy())
    out_of_range = np.zeros(len(values), dtype=bool)
    if field.min is not None:
        out_of_range |= (values < field.min).to_numpy()
    if field.max is not None:
        out_of_range |= (values > field.max).to_numpy()
    return values, unreadable | out_of_range


def _parse_boolean(raw, text, missing, field):
    lowered = text.str.lower()
    values = pd.Series(np.nan, index=raw.index, dtype="float64")
    values[lowered.isin(TRUE_WORDS)] = 1.0
    values[lowered.isin(FALSE_WORDS)] = 0.0
    return values, values.isna().to_numpy()


def _parse_categorical(raw, text, missing, field):
    values = text.str.lower() if field.values is None else _canonical_case(text, field)
    return values, np.zeros(len(text), dtype=bool)


def _canonical_case(text: pd.Series, field: FieldSpec) -> pd.Series:
    # Match declared values case-insensitively but keep the spelling the spec uses.
    canonical = {v.lower(): v for v in field.values or ()}
    lowered = text.str.lower()
    return map_values(lowered, lambda v: canonical.get(v, v))


def _parse_text(raw, text, missing, field):
    cleaned = text.str.lower().str.replace(r"[^\w+#&/]+", " ", regex=True).str.strip()
    return cleaned.astype(object).where(cleaned.notna()), np.zeros(len(text), dtype=bool)


def _parse_email(raw, text, missing, field):
    return email_kinds(text), np.zeros(len(text), dtype=bool)


def _parse_phone(raw, text, missing, field):
    return phone_kinds(text), np.zeros(len(text), dtype=bool)


_PARSERS = {
    FieldType.numeric: _parse_numeric,
    FieldType.boolean: _parse_boolean,
    FieldType.categorical: _parse_categorical,
    FieldType.text: _parse_text,
    FieldType.email: _parse_email,
    FieldType.phone: _parse_phone,
}


# Stand-ins that normalise to the same derived value as the personal value they replace.
PLACEHOLDERS = {
    FieldType.email: {
        "corporate": "redacted@redacted-company.com",
        "free": "redacted@gmail.com",
        "education": "redacted@school.edu",
        "invalid": "redacted",
    },
    FieldType.phone: {"valid": "0000000001", "invalid": "000"},
}


def redact_personal(frame: pd.DataFrame, spec: DatasetSpec) -> pd.DataFrame:
    """`frame` with each personal value replaced by a stand-in carrying only what the model uses.

    The result can be stored (scoring log, input examples) and scored again with identical
    features: an e-mail keeps its domain kind, a phone its validity, a name its presence.
    """
    redacted = frame.copy()
    for name in spec.personal_fields:
        if name not in redacted:
            continue
        field = spec.fields[name]
        parsed = parse_field(redacted[name], field, spec.missing_markers(name))
        if field.type in PLACEHOLDERS:
            stand_in = parsed.values.map(PLACEHOLDERS[field.type])
        else:
            stand_in = pd.Series("redacted", index=redacted.index)
        redacted[name] = stand_in.astype(object).where(~parsed.missing, None)
    return redacted
