"""The batch CSV writer gives Arrow's CSV writer's bytes, whichever of the two writes them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline import csvout


def _written_here(table: pd.DataFrame) -> bytes:
    """The table as the compiled loop writes it (the test fails if the loop would not)."""
    columns = csvout._columns(table)
    assert columns is not None
    body = csvout._body(columns, len(table))
    assert body is not None
    return csvout._header(table) + body


def test_every_six_decimal_probability_is_written_as_arrow_writes_it() -> None:
    """Probabilities are rounded to 6 decimals: all 1,000,001 of them in [0, 1], rule scores
    (2 decimals, up to 100) and other such numbers up to 1e9."""
    rng = np.random.default_rng(3)
    k = np.arange(1_000_001)
    far = rng.integers(0, 10**15, 200_000) / 1e6  # any 6-decimal number below 1e9
    numbers = pd.DataFrame(
        {
            "p": k / 1e6,
            "score": np.resize(np.arange(10_001) / 100, len(k)),
            "far": np.resize(far.round(6), len(k)),
            "whole": np.resize(np.arange(1_000) * 1_000_003, len(k)),  # int64
        }
    )
    assert _written_here(numbers) == csvout._arrow(numbers)


def test_odd_text_booleans_and_gaps_are_written_as_arrow_writes_them() -> None:
    rng = np.random.default_rng(5)
    rows = csvout.MIN_ROWS + 1_000
    odd = [
        'L"1"',
        "a,b",
        "line\nbreak",
        "cr\r\nlf",
        "",
        "\u00dcnal \u2013 \u682a\u5f0f\u4f1a\u793e",
        '"',
        '""',
        "x",
    ]
    text = pd.Series(rng.choice(np.array(odd, dtype=object), rows), dtype="str")
    text[rng.random(rows) < 0.1] = None
    tiers = pd.Categorical.from_codes(rng.integers(-1, 4, rows), categories=["A", 'B"', "C,", "D"])
    table = pd.DataFrame(
        {
            "lead_id": text.array,
            "p_accept": np.where(
                rng.random(rows) < 0.1, np.nan, rng.integers(0, 10**6, rows) / 1e6
            ),
            "tier": tiers,
            "sla_hours": np.where(rng.random(rows) < 0.5, 24, None),
            "rule_pass": rng.random(rows) < 0.5,
            "model_version": "7",
            "notes": pd.Series(text.to_numpy(dtype=object), dtype=object),
            "unknown": None,
        }
    )
    assert _written_here(table) == csvout._arrow(table)
    assert csvout.to_csv(table) == csvout._arrow(table)


@pytest.mark.parametrize(
    "value", [5e-7, 1e-7, 1.5e9, 1e20, -0.0, -1.5, np.inf, 0.1234567, 1 / 3, 2.0**60]
)
def test_a_number_the_loop_does_not_write_is_left_to_arrow(value: float) -> None:
    """Arrow writes these in exponent notation, with a sign or with more than 6 decimals."""
    table = pd.DataFrame({"x": np.full(csvout.MIN_ROWS, 0.5)})
    table.loc[17, "x"] = value
    columns = csvout._columns(table)
    assert columns is not None and csvout._body(columns, len(table)) is None
    assert csvout.to_csv(table) == csvout._arrow(table)


@pytest.mark.parametrize(
    "column",
    [
        pd.Series(pd.date_range("2026-01-01", periods=csvout.MIN_ROWS, freq="min")),
        pd.Series(pd.Categorical(np.arange(csvout.MIN_ROWS) % 3)),  # categories are numbers
        pd.Series([True, None] * (csvout.MIN_ROWS // 2), dtype="boolean"),
        pd.Series([1.5, None] * (csvout.MIN_ROWS // 2), dtype=object),  # numbers as objects
        pd.Series(np.arange(csvout.MIN_ROWS) / 64, dtype=np.float32),
    ],
)
def test_a_column_of_another_type_is_left_to_arrow(column: pd.Series) -> None:
    table = pd.DataFrame({"id": np.arange(len(column)) / 2, "other": column})
    assert csvout._columns(table) is None
    assert csvout.to_csv(table) == csvout._arrow(table)


def test_a_short_table_is_written_by_arrow() -> None:
    table = pd.DataFrame({"p": [0.5, 0.25], "id": ["a", "b"]})
    assert csvout.to_csv(table) == csvout._arrow(table) == b'"p","id"\n0.5,"a"\n0.25,"b"\n'
