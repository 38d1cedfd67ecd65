"""Normalisation and encoding: the same lead gives the same row, whatever form it arrives in."""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pytest

from models.encoder import MISSING_CODE, LeadEncoder
from models.features import (
    EDU_RE,
    EMAIL_RE,
    FREE_MAIL_DOMAINS,
    email_kind,
    normalize,
    parse_field,
    parse_timestamps,
    phone_kind,
    redact_personal,
    time_features,
)


def test_email_kinds() -> None:
    kinds = email_kind(
        pd.Series(
            ["Ann@Acme.com", "bob@gmail.com", "s@uni.edu", "cy@ox.ac.uk", "john@", "n/a", None],
            dtype=object,
        )
    )
    assert kinds.tolist()[:6] == [
        "corporate",
        "free",
        "education",
        "education",
        "invalid",
        "invalid",
    ]
    assert pd.isna(kinds.iloc[6])


def test_phone_kinds() -> None:
    kinds = phone_kind(
        pd.Series(["+1 (415) 555-0100", "000", "0000000000", "12", None], dtype=object)
    )
    assert kinds.tolist()[:4] == ["valid", "invalid", "invalid", "invalid"] and pd.isna(
        kinds.iloc[4]
    )


PHONE_CELLS = [
    *("+1 (415) 555-0100", "000", "0000000000", "12", None, "", "1234567", "123456"),
    *("123456789012345", "1234567890123456", "1111111", "1111112", "2111111", " 555 0100 22 "),
    *("555-0100\x1c22", "٠١٢٣٤٥٦٧", "+1 \uff12\uff10\uff12 \uff15\uff15\uff15 0100", "tel: n/a"),
    *("7777777\u0667", "\u0661\u0661\u0661\u0661\u0661\u0661\u0661", "ph: 44 20 7946 0958"),
]


def _phone_by_regex(cell: str | None) -> str | None:
    if cell is None:
        return None
    digits = re.sub(r"\D", "", cell)
    return "valid" if 7 <= len(digits) <= 15 and len(set(digits)) > 1 else "invalid"


@pytest.mark.parametrize("dtype", [object, "str"])
def test_phone_kind_counts_digits_as_python_does(dtype) -> None:
    """ASCII cells are read off Arrow's buffers, the rest by regex: the same answer as the
    regex on every cell, including cells of an array that starts part-way into its buffers."""
    expected = [_phone_by_regex(c) for c in PHONE_CELLS]
    cells = pd.Series(PHONE_CELLS, dtype=dtype)
    for start in (0, 3):
        kinds = phone_kind(cells.iloc[start:])
        assert [None if pd.isna(k) else k for k in kinds] == expected[start:]
        assert kinds.index.equals(cells.index[start:])


def test_text_and_typed_input_normalise_alike(tiny_spec) -> None:
    text = pd.DataFrame(
        {
            "industry": ["Software", "Select"],
            "employees": ["1,200", ""],
            "demo_requested": ["Yes", ""],
            "email": ["a@b.com", ""],
            "mql_at": ["2025-01-31 09:00:00", "2025-02-03 09:00:00"],
        }
    )
    typed = pd.DataFrame(
        {
            "industry": ["software", None],
            "employees": [1200.0, np.nan],
            "demo_requested": [True, None],
            "email": ["a@b.com", None],
            "mql_at": ["2025-01-31T09:00:00", "2025-02-03 09:00"],
        }
    )
    a, b = normalize(text, tiny_spec), normalize(typed, tiny_spec)
    pd.testing.assert_frame_equal(a, b)
    assert a.loc[0, "mql_days_to_month_end"] == 0 and a.loc[1, "mql_weekday"] == 0  # Monday
    assert a.loc[0, "industry"] == "software" and pd.isna(a.loc[1, "industry"])


def test_personal_values_never_reach_the_clean_view(builtin_spec) -> None:
    raw = pd.DataFrame(
        {
            "email": ["jane.doe@acme.com"],
            "phone": ["+44 20 7946 0958"],
            "first_name": ["Jane"],
            "last_name": ["Doe"],
        }
    )
    clean = normalize(raw, builtin_spec)
    values = {str(v) for v in clean.iloc[0].tolist()}
    assert not values & {"jane.doe@acme.com", "+44 20 7946 0958", "Jane", "Doe"}
    assert clean.loc[0, ["email", "phone", "first_name"]].tolist() == ["corporate", "valid", 1.0]


def test_encoder_codes_missing_rare_and_unseen(tiny_spec) -> None:
    train = pd.DataFrame(
        {
            "industry": ["software"] * 30 + ["retail"] * 2 + [None] * 3,
            "employees": np.arange(35.0),
            "demo_requested": [1.0] * 35,
            "email": ["corporate"] * 35,
        }
    )
    encoder = LeadEncoder(tiny_spec, min_frequency=20).fit(train)
    other = len(encoder.vocabularies_["industry"]) + 1
    serve = pd.DataFrame(
        {
            "industry": ["software", "retail", "mining", None],
            "employees": [1.0, 2.0, 3.0, np.nan],
            "demo_requested": [1.0, 0.0, 1.0, 0.0],
            "email": ["corporate", "free", None, "invalid"],
        }
    )
    matrix = encoder.transform(serve)
    industry = matrix[:, encoder.feature_names_.index("industry")]
    # rare in training (retail) and never seen (mining) share the learnt "other" code
    assert industry.tolist() == [1.0, other, other, MISSING_CODE]
    assert encoder.describe_code("industry", 1.0) == "software"
    assert encoder.describe_code("industry", other) == "other"
    assert encoder.monotone_constraints[encoder.feature_names_.index("demo_requested")] == 1
    assert matrix.dtype == np.float32 and np.isnan(matrix[3, 1])
    # The same values as pandas categoricals (as a batch scorer's clean view holds them), a
    # column with no value at all among them: the same codes.
    blank = serve.assign(email=[None] * 4)
    for frame in (serve, blank):
        as_categories = frame.astype({"industry": "category", "email": "category"})
        np.testing.assert_array_equal(
            encoder.transform(as_categories), encoder.transform(frame), strict=True
        )


def test_redacted_leads_score_like_the_originals(builtin_spec) -> None:
    raw = pd.DataFrame(
        {
            "email": ["jane.doe@acme.com", "joe1987@gmail.com", "s@uni.edu", "john@", None],
            "phone": ["+44 20 7946 0958", "000", None, "555-0100-22", "12"],
            "first_name": ["Jane", None, "Sam", "John", ""],
            "industry": ["software", "retail", None, "media", "energy"],
        }
    )
    redacted = redact_personal(raw, builtin_spec)
    pd.testing.assert_frame_equal(normalize(redacted, builtin_spec), normalize(raw, builtin_spec))
    stored = " ".join(map(str, redacted.to_numpy().ravel()))
    assert not any(v in stored for v in ("jane", "joe1987", "7946", "Jane", "Sam", "John"))
    assert redacted["industry"].tolist() == raw["industry"].tolist()


# Cells a CRM export or an API client could send, for the per-distinct-value parsing below.
MESSY = {
    "industry": ["Software", " RETAIL ", "Select", "space_mining", "", "n/a", None],
    "employees": ["1,200", "7", " 3.0 ", "-1", "lots", "inf", "", "1e2", "+3", ".5", None],
    "demo_requested": ["Yes", "n", "TRUE", "0.0", "maybe", "", " y ", None],
    "email": [
        "Ann@Acme.com",
        "x@gmail.com",
        "a b@c.com",
        "a@b@c.com",
        "x@y",
        "",
        "s@uni.edu",
        None,
    ],
}


def test_parsing_distinct_values_equals_parsing_every_cell(tiny_spec) -> None:
    # A long text column is parsed once per distinct value (models.features.parse_field); a
    # column of Python objects, cell by cell. Both must give the same values, masks and dtypes.
    rng = np.random.default_rng(0)
    for name, cells in MESSY.items():
        column = pd.Series(rng.choice(np.array(cells, dtype=object), 20_000), dtype="str")
        field, markers = tiny_spec.fields[name], tiny_spec.missing_markers(name)
        distinct, each = (
            parse_field(column, field, markers),
            parse_field(column.astype(object), field, markers),
        )
        pd.testing.assert_series_equal(distinct.values, each.values, check_names=False)
        np.testing.assert_array_equal(distinct.missing, each.missing)
        np.testing.assert_array_equal(distinct.bad, each.bad)


def test_email_kind_is_the_email_regex_then_the_domain() -> None:
    cells = [
        "a@gmail.com",
        " A@GMAIL.COM ",
        "a@b.co\n",
        "a\n@b.com",
        "@b.com",
        "a@",
        "a@@b.com",
        "a b@c.com",
        "a\x0b@c.com",
        "a\x1cb@c.com",
        "a\u00a0b@c.com",
        "a\u2003b@c.com",
        "x@uni.edu",
        "x@ox.ac.uk",
        "x@y.edu.au",
        "ü@ö.com",
        "é@acme.com",
        "a@b.c",
        "a@b-.cc",
        "first.last+tag@sub.acme.io",
        "",
        None,
        *(f"a{chr(b)}b@c.com" for b in range(128) if chr(b) != "@"),  # every ASCII character
    ]
    expected = []
    for cell in cells:
        address = cell.strip().lower() if cell is not None else None
        domain = address.rsplit("@", 1)[-1] if address is not None else None
        if address is None:
            expected.append(None)
        elif not re.match(EMAIL_RE, address):
            expected.append("invalid")
        elif domain in FREE_MAIL_DOMAINS:
            expected.append("free")
        else:
            expected.append("education" if re.search(EDU_RE, domain) else "corporate")
    for dtype in (object, "str"):
        for start in (0, 3):  # also an array that starts part-way into its buffers
            kinds = email_kind(pd.Series(cells, dtype=dtype).iloc[start:])
            assert [None if pd.isna(k) else k for k in kinds] == expected[start:]


def test_timestamps_at_the_ends_of_the_range_are_read_not_refused() -> None:
    """Nanoseconds in one cell and a year outside 1677-2262 in another fit no single pandas
    resolution: such a column is read to the microsecond instead of failing the whole file,
    and its time features need no date arithmetic that could overflow."""
    cells = [
        *("3000-01-01", "2026-01-01T00:00:00.000000001", "2262-04-11T23:47:16.854775807"),
        *("1677-09-21T00:12:43.145224193", "9999-12-31T23:59:59-00:01", "garbage", None),
    ]
    for dtype in (object, "str"):
        stamps = parse_timestamps(pd.Series(cells, dtype=dtype))
        assert stamps.iloc[:4].tolist() == [
            pd.Timestamp("3000-01-01"),
            pd.Timestamp("2026-01-01"),
            pd.Timestamp("2262-04-11 23:47:16.854775"),
            pd.Timestamp("1677-09-21 00:12:43.145224"),
        ]
        # In UTC a minute past the year 9999, which pandas (unlike Python) can hold.
        assert (stamps.iloc[4].year, stamps.iloc[4].minute) == (10_000, 0)
        assert stamps.iloc[5:].isna().all()
        features = time_features(stamps)
        assert features.iloc[:5].to_numpy().tolist() == [
            [2.0, 30.0],  # Wednesday 1 January 3000
            [3.0, 30.0],
            [4.0, 19.0],  # Friday 11 April 2262
            [1.0, 9.0],
            [5.0, 30.0],  # Saturday 1 January 10000
        ]


def test_days_to_month_end_count_as_before() -> None:
    stamps = parse_timestamps(pd.Series(pd.date_range("2024-01-01", "2026-12-31 23:00", freq="7h")))
    expected = (stamps + pd.offsets.MonthEnd(0)).dt.normalize() - stamps.dt.normalize()
    np.testing.assert_array_equal(
        time_features(stamps)["mql_days_to_month_end"].to_numpy(), expected.dt.days.to_numpy()
    )


def test_timestamps_parse_as_the_mixed_format_parse_does() -> None:
    """ISO 8601 cells take the fast parser, the rest the mixed one: the same instants as a mixed
    parse of every cell, offsets and all, and the same unreadable cells."""
    cells = [
        "2026-01-31 23:59:00",
        "2026-02-01T00:30:00+02:00",
        "2026-01-31T23:59:00Z",
        "2026-01-31 23:59:00.123456",
        "  2026-01-31 10:00 ",
        "2026-01-31T10:00:00-05:00",
        "2026-01-31",
        "20260131",
        "01/02/2026",
        "31.01.2026 10:00",
        "Jan 5 2026",
        "2026-13-01",
        "garbage",
        "",
        None,
    ]
    raw = pd.Series(cells * 3, dtype="str")
    expected = pd.to_datetime(raw, errors="coerce", utc=True, format="mixed").dt.tz_localize(None)
    parsed = parse_timestamps(raw)
    pd.testing.assert_series_equal(parsed, expected)
    assert parsed.isna().sum() == 4 * 3  # "2026-13-01", "garbage", "" and None
    assert parsed[1] == pd.Timestamp("2026-01-31 22:30")  # +02:00 to UTC
