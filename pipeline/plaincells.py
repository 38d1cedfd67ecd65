"""A batch chunk's plain numbers and timestamps read off Arrow's buffers, where that is exact.

`models.features` parses a column by factorizing it and parsing each distinct text with pandas:
3-5 ms for 100,000 numeric cells, most of it hashing them, and 15 ms for 100,000 timestamps.
Most cells of a CRM export are plain, and for those a compiled loop gives the same value:
- a number as an optional minus, digits and an optional point and digits, at most 15 digits:
  the integer of the digits over a power of ten, both exact in a double, so the division rounds
  correctly, as pandas' parser does;
- a timestamp as YYYY-MM-DD HH:MM:SS (or a T between), a valid date and time with no zone: the
  same instant pandas reads (as UTC, made naive).
Every other cell (blank, a marker such as "n/a", "1,200", a minus zero, a zone, fractions of a
second) is parsed by `models.features`, which says how a cell is read. A cell parses on its own,
whatever its neighbours, so the two parts give what one call would (the tests compare them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from models.features import (
    Parsed,
    arrow_text,
    numeric_markers,
    parse_field,
    parse_timestamps,
    text_buffers,
)
from models.jit import njit
from models.spec import FieldSpec

_DIGITS = 15  # at most this many digits: the integer they make is exact in a double


def parse_numbers(raw: pd.Series, field: FieldSpec, markers: frozenset[str]) -> Parsed:
    """`parse_field(raw, field, markers)` for a numeric column of text (pandas' "str")."""
    data, offsets, valid = _buffers(raw)
    values = np.empty(len(raw), dtype=np.float64)
    plain = np.empty(len(raw), dtype=np.bool_)
    _read(data, offsets, values, plain)
    plain &= valid
    # A plain cell is missing only as a number ("999" where 999 marks missing): a marker written
    # as text is a plain number only if it reads as the same number.
    missing = plain & np.isin(values, numeric_markers(markers))
    bad = np.zeros(len(raw), dtype=bool)
    if field.min is not None:
        bad |= values < field.min
    if field.max is not None:
        bad |= values > field.max
    bad &= plain & ~missing
    other = ~plain
    if other.any():
        rest = parse_field(raw[other], field, markers)
        values[other] = rest.values.to_numpy(dtype=np.float64)
        missing[other], bad[other] = rest.missing, rest.bad
    return Parsed(
        values=pd.Series(values, index=raw.index, name=raw.name), missing=missing, bad=bad
    )


def parse_stamps(raw: pd.Series) -> pd.Series:
    """`parse_timestamps(raw)` for a column of text (pandas' "str")."""
    data, offsets, valid = _buffers(raw)
    micros = np.empty(len(raw), dtype=np.int64)
    plain = np.empty(len(raw), dtype=np.bool_)
    _read_stamps(data, offsets, micros, plain)
    plain &= valid
    stamps = pd.Series(micros.view("datetime64[us]"), index=raw.index, name=raw.name)
    other = ~plain
    if other.any():
        rest = parse_timestamps(raw[other])
        if rest.dtype != stamps.dtype:  # the rest needs another resolution: so does the column
            return parse_timestamps(raw)
        stamps[other] = rest
    return stamps


def warm() -> None:
    """Load the compiled loops now (before forking workers that would each load them)."""
    data, offsets = np.empty(0, np.uint8), np.zeros(1, np.int64)
    _read(data, offsets, np.empty(0), np.empty(0, np.bool_))
    _read_stamps(data, offsets, np.empty(0, np.int64), np.empty(0, np.bool_))


def _buffers(raw: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The cells' UTF-8 bytes, each cell's offsets into them, and which cells are not null."""
    cells = arrow_text(raw)
    data, offsets = text_buffers(cells)
    return data, offsets, cells.is_valid().to_numpy(zero_copy_only=False)


_POWERS = 10.0 ** np.arange(_DIGITS + 1)


@njit(nogil=True, cache=True)
def _read(data, offsets, values, plain):  # pragma: no cover - compiled; see tests
    """Per cell: whether it is -?digits(.digits)? with at most 15 digits and not a minus zero,
    and its value if so."""
    for cell in range(offsets.shape[0] - 1):
        at, end = offsets[cell], offsets[cell + 1]
        negative = at < end and data[at] == 45  # -
        if negative:
            at += 1
        mantissa, digits, decimals, point, ok = 0, 0, 0, False, at < end
        while at < end and ok:
            byte = data[at]
            if 48 <= byte <= 57:
                mantissa = mantissa * 10 + (byte - 48)
                digits += 1
                decimals += point
            elif byte == 46 and not point and digits > 0:  # .
                point = True
            else:
                ok = False
            at += 1
        ok = ok and digits <= _DIGITS and not (point and decimals == 0)
        ok = ok and not (negative and mantissa == 0)
        plain[cell] = ok
        if ok:
            value = np.float64(mantissa) / _POWERS[decimals]
            values[cell] = -value if negative else value
        else:
            values[cell] = np.nan


_DAYS_BEFORE_MONTH = np.array([0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334], np.int64)
_MONTH_DAYS = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31], dtype=np.int64)


@njit(nogil=True, cache=True)
def _read_stamps(data, offsets, micros, plain):  # pragma: no cover - compiled; see tests
    """Per cell: whether it is YYYY-MM-DD HH:MM:SS (or with a T) and a valid date and time from
    year 1, and its microseconds since 1970 if so."""
    fields = np.zeros(6, dtype=np.int64)  # year, month, day, hour, minute, second
    for cell in range(offsets.shape[0] - 1):
        at = offsets[cell]
        ok = offsets[cell + 1] - at == 19
        fields[:] = 0
        if ok:
            field = 0
            for i in range(19):
                byte = data[at + i]
                if i in (4, 7):
                    ok = ok and byte == 45  # -
                elif i == 10:
                    ok = ok and (byte == 32 or byte == 84)  # space or T
                elif i in (13, 16):
                    ok = ok and byte == 58  # :
                elif 48 <= byte <= 57:
                    fields[field] = fields[field] * 10 + (byte - 48)
                else:
                    ok = False
                if i in (3, 6, 9, 12, 15):
                    field += 1
        year, month, day = fields[0], fields[1], fields[2]
        ok = ok and year >= 1 and 1 <= month <= 12 and day >= 1
        if ok:
            leap = year % 4 == 0 and (year % 100 != 0 or year % 400 == 0)
            ok = day <= _MONTH_DAYS[month - 1] + (1 if month == 2 and leap else 0)
            ok = ok and fields[3] <= 23 and fields[4] <= 59 and fields[5] <= 59
        plain[cell] = ok
        if ok:
            # Days since 1970-01-01 of a proleptic Gregorian date.
            before = year - 1
            days = before * 365 + before // 4 - before // 100 + before // 400 - 719162
            days += _DAYS_BEFORE_MONTH[month - 1] + (1 if month > 2 and leap else 0) + day - 1
            seconds = days * 86400 + fields[3] * 3600 + fields[4] * 60 + fields[5]
            micros[cell] = seconds * 1_000_000
        else:
            micros[cell] = 0
