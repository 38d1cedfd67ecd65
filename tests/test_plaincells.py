"""Numbers and timestamps read off Arrow's buffers give models.features' answers, cell for cell."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.features import parse_field, parse_timestamps
from models.spec import FieldSpec
from pipeline.plaincells import parse_numbers, parse_stamps

ODD = [
    *("", " 7", "7 ", "1,200", "+5", "-0", "-0.0", "-00", "0", "-3", "5.", ".5", "1e3", "inf"),
    *(
        "nan",
        "n/a",
        "N/A",
        "999",
        "999.0",
        "0999",
        "-1",
        "--",
        "-",
        "1.2.3",
        "1_000",
        "\u0661\u0662",
    ),
    *("12345678901234567", "123456789012345", "0.000000000000001", "7\n", "\u00a07", "1-2"),
    *("100", "100.5", "101", "99.99999999999999"),
]


def _same(fast, general) -> None:
    ours, theirs = fast.values.to_numpy(), general.values.to_numpy()
    both_nan = np.isnan(ours) & np.isnan(theirs)
    # bit for bit (a minus zero is not a zero), NaN where either is
    assert ((ours.view(np.int64) == theirs.view(np.int64)) | both_nan).all()
    assert fast.values.index.equals(general.values.index)
    np.testing.assert_array_equal(fast.missing, general.missing)
    np.testing.assert_array_equal(fast.bad, general.bad)


@pytest.mark.parametrize("bounds", [(None, None), (0.0, 100.0)])
def test_plain_and_odd_cells_read_as_parse_field_reads_them(bounds) -> None:
    rng = np.random.default_rng(7)
    whole = rng.integers(-(10**6), 10**8, 30_000).astype(str)
    fraction = np.char.zfill(rng.integers(0, 10**7, 30_000).astype(str), 7)
    places = rng.integers(0, 8, 30_000)
    plain = [
        w if k == 0 else f"{w}.{f[:k]}" for w, f, k in zip(whole, fraction, places, strict=True)
    ]
    cells = rng.choice(np.array(plain + ODD * 300, dtype=object), 40_000)
    column = pd.Series(cells, dtype="str", index=pd.RangeIndex(500, 40_500), name="web_visits")
    column.iloc[::97] = None
    field = FieldSpec(type="numeric", min=bounds[0], max=bounds[1])
    markers = frozenset({"", "n/a", "N/A", "--", "999", "-1"})
    _same(parse_numbers(column, field, markers), parse_field(column, field, markers))


def test_every_fifteen_digit_decimal_shape_reads_as_pandas_reads_it() -> None:
    """Up to 15 digits split every way around the point: the division rounds as pandas' parser."""
    rng = np.random.default_rng(11)
    digits = [str(d) for d in rng.integers(10**14, 10**15, 20_000)]
    cells = [f"{d[:cut]}.{d[cut:]}" if cut < 15 else d for d in digits for cut in (1, 4, 9, 15)]
    column = pd.Series(cells, dtype="str")
    field = FieldSpec(type="numeric")
    _same(parse_numbers(column, field, frozenset()), parse_field(column, field, frozenset()))


def test_a_minus_zero_among_whole_numbers_reads_as_zero() -> None:
    """pandas reads a column of whole numbers as integers, where "-0" is 0 (not -0.0)."""
    column = pd.Series(["-0", "3", "-00", "12"] * 5_000, dtype="str")
    field = FieldSpec(type="numeric")
    fast = parse_numbers(column, field, frozenset())
    _same(fast, parse_field(column, field, frozenset()))
    assert not np.signbit(fast.values.iloc[0])


STAMPS = [
    *("2025-01-01 00:07:00", "2025-01-01T00:07:00", "2024-02-29 23:59:59", "2025-02-29 10:00:00"),
    *("2025-13-01 10:00:00", "2025-04-31 10:00:00", "2025-01-01 24:00:00", "2025-01-01 10:60:00"),
    *("2025-01-01 10:00:60", "0000-01-01 00:00:00", "0001-01-01 00:00:00", "9999-12-31 23:59:59"),
    *("1900-02-29 00:00:00", "2000-02-29 00:00:00", "1969-12-31 23:59:59", "2025-01-01"),
    *(" 2025-01-01 00:07:00", "2025-01-01 00:07:00Z", "2025-01-01 00:07:00+02:00", "garbage"),
    *("2025-01-01 00:07:00.5", "2025/01/01 00:07:00", "2025-01-01/00:07:00", "", "n/a"),
    *("2025-01-01x00:07:00", "2025-01-01_00:07:00"),
    "\u0662025-01-01 00:07:00",
]


def test_timestamps_read_as_parse_timestamps_reads_them() -> None:
    rng = np.random.default_rng(13)
    seconds = rng.integers(-(2**34), 2**35, 30_000)
    plain = pd.to_datetime(seconds, unit="s").strftime("%Y-%m-%d %H:%M:%S").tolist()
    cells = rng.choice(np.array(plain + STAMPS * 500, dtype=object), 40_000)
    column = pd.Series(cells, dtype="str", index=pd.RangeIndex(100, 40_100), name="mql_at")
    column.iloc[::101] = None
    fast, general = parse_stamps(column), parse_timestamps(column)
    pd.testing.assert_series_equal(fast, general)


def test_a_timestamp_that_needs_another_resolution_sends_the_column_there() -> None:
    """A year outside what nanoseconds hold, beside nanoseconds: pandas reads the whole column
    to the microsecond (see parse_timestamps); the compiled path gives the same column."""
    cells = ["2025-01-01 00:07:00"] * 20_000 + ["3000-01-01", "2026-01-01T00:00:00.000000001"]
    column = pd.Series(cells, dtype="str")
    pd.testing.assert_series_equal(parse_stamps(column), parse_timestamps(column))
