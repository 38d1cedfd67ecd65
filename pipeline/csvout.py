"""A scored table as CSV bytes: exactly what Arrow's CSV writer writes, at a fraction of its cost.

Arrow formats every number with the shortest text that reads back as the same double, a search
per value that was a tenth of what a batch worker spends on a lead. A scored table's numbers are
not arbitrary doubles, though: probabilities are rounded to 6 decimals, rule scores to 2, so each
is the double nearest to some k / 10**6, whose shortest text is k / 10**6 in decimals, trailing
zeros dropped. Such columns, booleans and text (quoted, quotes doubled, as Arrow quotes every text
value) are written here by one compiled loop. A table with anything else (a value that is not
such a decimal, one outside [0, 1e9), a type not listed) is written by Arrow, so the bytes are
Arrow's either way; the tests compare the two on every 6-decimal value in [0, 1] and on tables of
odd text.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from models.features import arrow_text, text_buffers
from models.jit import njit

# Below this many rows the compiled loop is not worth loading into a process.
MIN_ROWS = 10_000
_FLOAT, _BOOL, _TEXT = 0, 1, 2


def to_csv(table: pd.DataFrame) -> bytes:
    """`table` (no index) as `pyarrow.csv.write_csv` writes `pa.Table.from_pandas(table)`."""
    columns = _columns(table) if len(table) >= MIN_ROWS else None
    body = _body(columns, len(table)) if columns is not None else None
    return _arrow(table) if body is None else _header(table) + body


def warm() -> None:
    """Load the compiled loop now (before forking workers that would each load it)."""
    _write(*_empty_inputs())


def _arrow(table: pd.DataFrame) -> bytes:
    sink = pa.BufferOutputStream()
    pacsv.write_csv(pa.Table.from_pandas(table, preserve_index=False), sink)
    return sink.getvalue().to_pybytes()


def _header(table: pd.DataFrame) -> bytes:
    names = ('"' + str(name).replace('"', '""') + '"' for name in table.columns)
    return (",".join(names) + "\n").encode()


class _Columns:
    """The table's columns as the loop reads them: per column a kind and a slot in that kind's
    array. Text columns share one dictionary of values (offsets, bytes) that codes point into."""

    def __init__(self) -> None:
        self.kinds: list[int] = []
        self.slots: list[int] = []
        self.numbers: list[np.ndarray] = []  # float64
        self.bools: list[np.ndarray] = []
        self.codes: list[np.ndarray] = []  # index into the dictionary per row (-1: null)
        self.values: list[pa.Array] = []
        self.entries = 0  # dictionary entries so far

    def add(self, kind: int, data: np.ndarray) -> None:
        store = (self.numbers, self.bools, self.codes)[kind]
        self.kinds.append(kind)
        self.slots.append(len(store))
        store.append(data)

    def add_text(self, values: pa.Array, codes: np.ndarray) -> None:
        self.add(_TEXT, np.where(codes >= 0, codes + self.entries, -1))
        self.values.append(values)
        self.entries += len(values)


def _columns(table: pd.DataFrame) -> _Columns | None:
    """The table in the loop's terms, or None when a column is not one it writes as Arrow does."""
    columns = _Columns()
    for _, column in table.items():
        if not _add(columns, column):
            return None
    return columns


def _add(columns: _Columns, column: pd.Series) -> bool:
    dtype = column.dtype
    if isinstance(dtype, pd.CategoricalDtype):
        categories = dtype.categories
        if pd.api.types.infer_dtype(categories, skipna=False) != "string":
            return False
        columns.add_text(arrow_text(categories), column.cat.codes.to_numpy(dtype=np.int64))
        return True
    if isinstance(dtype, np.dtype) and dtype.kind == "b":
        columns.add(_BOOL, column.to_numpy().view(np.uint8))
        return True
    # Not float32: Arrow writes its shortest text as a float32's, which may be shorter.
    if isinstance(dtype, np.dtype) and (dtype == np.float64 or dtype.kind in "iu"):
        columns.add(_FLOAT, column.to_numpy(dtype=np.float64))
        return True
    kind = pd.api.types.infer_dtype(column, skipna=True)
    if kind in ("string", "empty"):
        values = arrow_text(column)
        codes = np.arange(len(values), dtype=np.int64)
        codes[~values.is_valid().to_numpy(zero_copy_only=False)] = -1
        columns.add_text(values, codes)
        return True
    if kind == "integer" and dtype.kind == "O":  # whole numbers and None (e.g. SLA hours)
        columns.add(_FLOAT, column.astype(np.float64).to_numpy())
        return True
    return False


def _body(columns: _Columns, rows: int) -> bytes | None:
    """The rows as CSV, or None when a number is not one the loop writes as Arrow does."""
    offsets, data = _dictionary(columns.values)
    lengths = np.diff(offsets)
    codes = _rows(columns.codes, rows, np.int64)
    # Room for the longest rendering of each field: 16 bytes for a number below 1e9 with six
    # decimals, 5 for a boolean, twice a text's bytes (every quote doubled) and its two quotes.
    room = rows * (len(columns.kinds) + 16 * len(columns.numbers) + 5 * len(columns.bools))
    room += int((2 * lengths[codes[codes >= 0]] + 2).sum())
    out = np.empty(room, dtype=np.uint8)
    used = _write(
        np.asarray(columns.kinds, dtype=np.int8),
        np.asarray(columns.slots, dtype=np.int64),
        _rows(columns.numbers, rows, np.float64),
        _rows(columns.bools, rows, np.uint8),
        codes,
        offsets,
        data,
        out,
    )
    return out[:used].tobytes() if used >= 0 else None


def _rows(arrays: list[np.ndarray], rows: int, dtype: type) -> np.ndarray:
    """The columns side by side, a row's fields next to each other in memory."""
    stacked = np.empty((rows, len(arrays)), dtype=dtype)
    for j, array in enumerate(arrays):
        stacked[:, j] = array
    return stacked


def _dictionary(values: list[pa.Array]) -> tuple[np.ndarray, np.ndarray]:
    """The text values of all columns, one after another: (offsets, UTF-8 bytes)."""
    offsets, data, start = [np.zeros(1, dtype=np.int64)], [], 0
    for array in values:
        blob, ends = text_buffers(array)
        data.append(blob[ends[0] : ends[-1]])
        offsets.append(ends[1:] - ends[0] + start)
        start += int(ends[-1] - ends[0])
    joined = np.concatenate(data) if data else np.empty(0, dtype=np.uint8)
    return np.concatenate(offsets), joined


def _empty_inputs() -> tuple[np.ndarray, ...]:
    return (
        np.empty(0, dtype=np.int8),
        np.empty(0, dtype=np.int64),
        np.empty((0, 0), dtype=np.float64),
        np.empty((0, 0), dtype=np.uint8),
        np.empty((0, 0), dtype=np.int64),
        np.zeros(1, dtype=np.int64),
        np.empty(0, dtype=np.uint8),
        np.empty(0, dtype=np.uint8),
    )


_TRUE, _FALSE = np.frombuffer(b"true", dtype=np.uint8), np.frombuffer(b"false", dtype=np.uint8)
_PAIRS = np.frombuffer("".join(f"{i:02d}" for i in range(100)).encode(), dtype=np.uint8)


@njit(nogil=True, cache=True)
def _write(kinds, slots, numbers, bools, codes, offsets, data, out):  # pragma: no cover - compiled
    """The rows' fields, comma-separated, each row ended by a line break, into `out`: the bytes
    written, or -1 at a number that is not k / 10**6 in [0, 1e9) (Arrow writes those)."""
    rows = max(numbers.shape[0], bools.shape[0], codes.shape[0])
    at = 0
    for row in range(rows):
        for column in range(kinds.shape[0]):
            if column:
                out[at] = 44  # ,
                at += 1
            kind, slot = kinds[column], slots[column]
            if kind == 0:
                value = numbers[row, slot]
                if np.isnan(value):  # Arrow's null: an empty field
                    continue
                # Not negative (nor -0.0, which Arrow writes "-0") and below 1e9 (Arrow's fixed
                # notation), and the double nearest to k / 10**6: its shortest text is that.
                if not (0.0 <= value < 1e9) or np.signbit(value):
                    return -1
                scaled = np.rint(value * 1e6)
                if scaled / 1e6 != value:
                    return -1
                at = _decimal(np.int64(scaled), out, at)
            elif kind == 1:
                word = _TRUE if bools[row, slot] else _FALSE
                for i in range(word.shape[0]):
                    out[at + i] = word[i]
                at += word.shape[0]
            else:
                code = codes[row, slot]
                if code >= 0:
                    out[at] = 34  # "
                    at += 1
                    for i in range(offsets[code], offsets[code + 1]):
                        out[at] = data[i]
                        at += 1
                        if data[i] == 34:  # a quote is written twice
                            out[at] = 34
                            at += 1
                    out[at] = 34
                    at += 1
        out[at] = 10  # \n
        at += 1
    return at


@njit(nogil=True, cache=True, inline="always")
def _decimal(k, out, at):  # pragma: no cover - compiled
    """k / 10**6 in decimals, without trailing zeros (and without a point for a whole number).
    The six decimals are three pairs of digits from _PAIRS; a number takes 16 bytes at most."""
    whole, fraction = k // 1_000_000, k % 1_000_000
    if whole < 10:
        out[at] = 48 + whole
        at += 1
    else:
        count, rest = 0, whole
        while rest:
            count += 1
            rest //= 10
        for i in range(count - 1, -1, -1):
            out[at + i] = 48 + whole % 10
            whole //= 10
        at += count
    if fraction == 0:
        return at
    out[at] = 46  # .
    high, middle, low = fraction // 10_000, fraction // 100 % 100, fraction % 100
    for i, pair in enumerate((high, middle, low)):
        out[at + 1 + 2 * i] = _PAIRS[2 * pair]
        out[at + 2 + 2 * i] = _PAIRS[2 * pair + 1]
    if low:
        places = 6 - (low % 10 == 0)
    elif middle:
        places = 4 - (middle % 10 == 0)
    else:
        places = 2 - (high % 10 == 0)
    return at + 1 + places
