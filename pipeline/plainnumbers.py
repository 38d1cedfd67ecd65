"""A batch chunk's numeric columns parsed straight off Arrow's buffers, where that is exact.

`models.features.parse_field` factorizes a column and parses each distinct text with pandas: 3-5
ms for 100,000 cells, most of it hashing them. Most cells of a CRM export's numeric column are
plain numbers (an optional minus, digits, an optional point and digits), and for those with at
most 15 digits the value is the integer of the digits divided by a power of ten: both exact in
a double, so the division rounds correctly, as pandas' parser does. A compiled loop reads those;
every other cell (blank, a marker such as "n/a", "1,200", " 7", a minus zero, more digits) is
parsed by `parse_field`, which says how a cell is read. A cell parses on its own, whatever its
neighbours, so the two parts give what one call would (the tests compare them).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa

from models.features import Parsed, numeric_markers, parse_field
from models.jit import njit
from models.spec import FieldSpec

_DIGITS = 15  # at most this many digits: the integer they make is exact in a double


def parse_numbers(raw: pd.Series, field: FieldSpec, markers: frozenset[str]) -> Parsed:
    """`parse_field(raw, field, markers)` for a numeric column of text (pandas' "str")."""
    cells = pa.array(raw.array, type=pa.large_string())
    cells = cells.combine_chunks() if isinstance(cells, pa.ChunkedArray) else cells
    _, bounds, blob = cells.buffers()
    offsets = np.frombuffer(bounds, dtype=np.int64)[cells.offset : cells.offset + len(cells) + 1]
    data = np.frombuffer(blob, dtype=np.uint8) if blob is not None else np.empty(0, np.uint8)
    values = np.empty(len(cells), dtype=np.float64)
    plain = np.empty(len(cells), dtype=np.bool_)
    _read(data, offsets, values, plain)
    plain &= cells.is_valid().to_numpy(zero_copy_only=False)
    # A plain cell is missing only as a number ("999" where 999 marks missing): a marker written
    # as text is a plain number only if it reads as the same number.
    missing = plain & np.isin(values, numeric_markers(markers))
    bad = np.zeros(len(cells), dtype=bool)
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


def warm() -> None:
    """Load the compiled loop now (before forking workers that would each load it)."""
    _read(np.empty(0, np.uint8), np.zeros(1, np.int64), np.empty(0), np.empty(0, np.bool_))


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
