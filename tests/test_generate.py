"""Data tests for the built-in generator: determinism, schema, label logic and documented rates.

The rates asserted here are the table in data/README.md; change both together. The spec is read
as plain YAML so these tests depend on nothing but the generator and the spec file.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml
from sklearn.metrics import roc_auc_score

from pipeline.generate import generate_leads, write_leads

ROOT = Path(__file__).resolve().parent.parent
SPEC_PATH = ROOT / "data" / "specs" / "builtin.yaml"
EXPORT_AT = pd.Timestamp("2026-07-01 00:00:00")
LAUNCH_AT = pd.Timestamp("2025-11-01")
FREE_MAIL = ("gmail.com", "yahoo.com", "hotmail.com", "outlook.com")
JUNK_PHONES = ("000", "0000000000", "123", "tbd", "+1 000")
COUNTRIES = {
    "United States": "NA", "Canada": "NA", "United Kingdom": "EMEA", "Germany": "EMEA",
    "France": "EMEA", "Netherlands": "EMEA", "Spain": "EMEA", "Sweden": "EMEA",
    "Australia": "APAC", "Japan": "APAC", "Singapore": "APAC", "India": "APAC",
    "Brazil": "LATAM", "Mexico": "LATAM",
}  # fmt: skip
OUTCOME_COLUMNS = ("sal_status", "sql_status", "sal_decided_at", "rejection_reason", "sql_at")
REASONS = {"not_icp", "bad_data", "not_ready", "duplicate", "competitor_student"}
VALID_EMAIL = r"[a-z0-9._]+@[a-z0-9-]+(\.[a-z]+)+"

# Documented rates (data/README.md): name -> (documented value, lowest and highest accepted on
# 20,000 rows). Shares are of all leads unless the name says otherwise.
RATES = {
    "accepted_of_decided": (0.59, 0.55, 0.65),
    "undecided": (0.013, 0.008, 0.020),
    "never_decided_older_than_60_days": (0.01, 0.006, 0.015),
    "sql_of_accepted_closed": (0.40, 0.35, 0.45),
    "open_of_accepted": (0.027, 0.015, 0.04),
    "duplicate_of_rejected": (0.05, 0.03, 0.07),
    "competitor_student_of_rejected": (0.06, 0.04, 0.09),
    "bad_data_of_rejected": (0.07, 0.05, 0.10),
    "bant_all_missing": (0.65, 0.62, 0.68),
    "phone_present": (0.60, 0.57, 0.63),
    "phone_junk_of_present": (0.03, 0.02, 0.045),
    "email_malformed": (0.015, 0.010, 0.020),
    "email_free_mail": (0.18, 0.15, 0.21),
    "email_edu": (0.023, 0.015, 0.032),
    "student": (0.03, 0.02, 0.04),
    "industry_select": (0.03, 0.023, 0.037),
    "industry_blank": (0.02, 0.014, 0.026),
    "company_size_unknown": (0.04, 0.032, 0.048),
    "company_size_blank": (0.01, 0.006, 0.014),
    "annual_revenue_missing": (0.12, 0.105, 0.135),
    "country_missing": (0.02, 0.014, 0.026),
    "country_misspelt": (0.01, 0.006, 0.014),
    "job_function_missing": (0.05, 0.042, 0.058),
    "seniority_missing": (0.06, 0.052, 0.068),
    "job_title_missing": (0.03, 0.024, 0.036),
    "contact_me_missing": (0.05, 0.042, 0.058),
    "time_on_site_missing": (0.02, 0.014, 0.026),
    "demo_requested": (0.11, 0.095, 0.125),
    "pricing_requested": (0.075, 0.065, 0.09),
    "contact_me": (0.19, 0.17, 0.21),
    "weekday": (0.94, 0.92, 0.96),
    "office_hours_8_to_18": (0.92, 0.90, 0.94),
    "decided_within_48h": (0.85, 0.82, 0.88),
}


@pytest.fixture(scope="module")
def spec() -> dict:
    return yaml.safe_load(SPEC_PATH.read_text())


@pytest.fixture(scope="module")
def leads() -> pd.DataFrame:
    return generate_leads(20_000, seed=7)


@pytest.fixture(scope="module")
def measured(leads: pd.DataFrame) -> dict[str, float]:
    return _measure(leads)


def _decided(df: pd.DataFrame) -> pd.Series:
    return df.sal_status.isin(["accepted", "rejected"])


def _accepted(df: pd.DataFrame) -> pd.Series:
    return df.sal_status == "accepted"


def _email_kind(df: pd.DataFrame) -> pd.Series:
    """corporate / free / edu / malformed, the way a feature pipeline would read the email."""
    valid = df.email.str.fullmatch(VALID_EMAIL)
    domain = df.email.str.split("@").str[-1]
    kind = np.select(
        [~valid, domain.isin(FREE_MAIL), domain.str.endswith(".edu")],
        ["malformed", "free", "edu"],
        "corporate",
    )
    return pd.Series(kind, index=df.index)


def _measure(df: pd.DataFrame) -> dict[str, float]:
    """Every documented rate, measured on a generated frame."""
    decided, accepted = _decided(df), _accepted(df)
    rejected = df.sal_status == "rejected"
    reasons = df.rejection_reason[rejected]
    older = df.mql_at < EXPORT_AT - pd.Timedelta(days=60)
    closed = df.sql_status.isin(["yes", "no"])
    kind = _email_kind(df)
    phone = df.phone[df.phone != ""]
    bant = df[["bant_budget", "bant_authority", "bant_need", "bant_timeline"]]
    lag = df.sal_decided_at - df.mql_at
    return {
        "accepted_of_decided": accepted[decided].mean(),
        "undecided": (~decided).mean(),
        "never_decided_older_than_60_days": (~decided[older]).mean(),
        "sql_of_accepted_closed": (df.sql_status[closed] == "yes").mean(),
        "open_of_accepted": (df.sql_status[accepted] == "open").mean(),
        "duplicate_of_rejected": (reasons == "duplicate").mean(),
        "competitor_student_of_rejected": (reasons == "competitor_student").mean(),
        "bad_data_of_rejected": (reasons == "bad_data").mean(),
        "bant_all_missing": (bant == "").all(axis=1).mean(),
        "phone_present": (df.phone != "").mean(),
        "phone_junk_of_present": phone.isin(JUNK_PHONES).mean(),
        "email_malformed": (kind == "malformed").mean(),
        "email_free_mail": (kind == "free").mean(),
        "email_edu": (kind == "edu").mean(),
        "student": (df.job_function == "student").mean(),
        "industry_select": (df.industry == "Select").mean(),
        "industry_blank": (df.industry == "").mean(),
        "company_size_unknown": (df.company_size == "unknown").mean(),
        "company_size_blank": (df.company_size == "").mean(),
        "annual_revenue_missing": df.annual_revenue.isin(["", "--"]).mean(),
        "country_missing": (df.country == "").mean(),
        "country_misspelt": (~df.country.isin([*COUNTRIES, ""])).mean(),
        "job_function_missing": df.job_function.isin(["", "Select"]).mean(),
        "seniority_missing": (df.seniority == "").mean(),
        "job_title_missing": df.job_title.isin(["", "N/A"]).mean(),
        "contact_me_missing": df.contact_me.isna().mean(),
        "time_on_site_missing": df.time_on_site_min.isna().mean(),
        "demo_requested": df.demo_requested.mean(),
        "pricing_requested": df.pricing_requested.mean(),
        "contact_me": df.contact_me.fillna(False).mean(),
        "weekday": (df.mql_at.dt.day_of_week < 5).mean(),
        "office_hours_8_to_18": df.mql_at.dt.hour.between(8, 17).mean(),
        "decided_within_48h": (lag[decided] <= pd.Timedelta(hours=48)).mean(),
    }


def _acceptance(df: pd.DataFrame, mask: pd.Series) -> float:
    decided = _decided(df)
    return _accepted(df)[decided & mask].mean()


# --- determinism and sizes ----------------------------------------------------------------------
def test_same_seed_gives_identical_frame_and_csv_bytes(tmp_path: Path) -> None:
    first, second = generate_leads(3_000, seed=3), generate_leads(3_000, seed=3)
    pd.testing.assert_frame_equal(first, second)
    a = write_leads(first, tmp_path / "a.csv").read_bytes()
    b = write_leads(second, tmp_path / "nested" / "b.csv").read_bytes()
    assert a == b


def test_different_seed_gives_different_leads() -> None:
    first, second = generate_leads(3_000, seed=3), generate_leads(3_000, seed=4)
    assert not first.equals(second)
    assert (first.email != second.email).mean() > 0.9


@pytest.mark.parametrize("rows", [1, 123, 1_000])
def test_any_size_works(rows: int) -> None:
    df = generate_leads(rows, seed=7)
    assert len(df) == rows
    assert df.lead_id.is_unique and df.mql_at.is_monotonic_increasing
    assert df.lead_id.iloc[0] == "L0000001"


def test_rejects_empty_size() -> None:
    with pytest.raises(ValueError, match="at least 1"):
        generate_leads(0)


# --- schema -------------------------------------------------------------------------------------
def test_every_spec_column_is_present(leads: pd.DataFrame, spec: dict) -> None:
    labels = [label["column"] for label in spec["labels"].values()]
    expected = {spec["id"], spec["timestamp"], *spec["fields"], *labels, *spec["exclude"]}
    assert expected | {"owner", *OUTCOME_COLUMNS} <= set(leads.columns)


def test_categorical_values_are_the_specs_or_missing_markers(
    leads: pd.DataFrame, spec: dict
) -> None:
    markers = set(spec["missing_values"])
    for name, field in spec["fields"].items():
        if "values" in field:
            unexpected = set(leads[name].unique()) - set(field["values"]) - markers
            assert not unexpected, f"{name}: {sorted(unexpected)}"


def test_label_values_are_the_specs(leads: pd.DataFrame, spec: dict) -> None:
    for label in spec["labels"].values():
        allowed = {*label["positive"], *label["negative"], *label["undecided"]}
        assert set(leads[label["column"]].unique()) <= allowed


def test_dtypes(leads: pd.DataFrame) -> None:
    for name in ("demo_requested", "pricing_requested", "contact_me"):
        assert leads[name].dtype == "boolean"
    for name in ("web_visits", "pages_viewed", "content_downloads", "lead_score"):
        assert leads[name].dtype == "int64"
    assert leads.time_on_site_min.dtype == "float64"
    for name in ("mql_at", "sal_decided_at", "sql_at"):
        assert pd.api.types.is_datetime64_any_dtype(leads[name])
    assert pd.api.types.is_string_dtype(leads.industry)


def test_numeric_bounds_hold_except_the_documented_sync_bug(
    leads: pd.DataFrame, spec: dict
) -> None:
    for name, field in spec["fields"].items():
        if field["type"] != "numeric":
            continue
        values = leads[name].dropna()
        if name == "web_visits":
            values = values[values != -1]
        assert values.min() >= field.get("min", -np.inf), name
        assert values.max() <= field.get("max", np.inf), name


def test_sync_bug_rows_fail_the_spec_minimum() -> None:
    # 0.03 % of the default 50,000 rows: about 15 with web_visits = -1, which the pipeline rejects.
    bad = (generate_leads().web_visits < 0).sum()
    assert 3 <= bad <= 35


def test_ids_and_timestamps(leads: pd.DataFrame) -> None:
    assert leads.lead_id.str.fullmatch(r"L\d{7}").all()
    assert (leads.lead_id == [f"L{i:07d}" for i in range(1, len(leads) + 1)]).all()
    assert leads.mql_at.is_monotonic_increasing
    assert leads.mql_at.min() >= pd.Timestamp("2025-01-01")
    assert leads.mql_at.max() < pd.Timestamp("2026-07-01")
    # Volume grows: the last six months carry more leads than the first six.
    first = (leads.mql_at < pd.Timestamp("2025-07-01")).sum()
    last = (leads.mql_at >= pd.Timestamp("2026-01-01")).sum()
    assert last > 1.1 * first


def test_region_follows_the_country(leads: pd.DataFrame) -> None:
    clean = leads[leads.country.isin(COUNTRIES)]
    assert (clean.region == clean.country.map(COUNTRIES)).all()
    assert (leads.region[leads.country == ""] == "").all()
    assert {"USA", "U.S."} & set(leads.country.unique())


def test_messy_text_looks_like_a_crm(leads: pd.DataFrame) -> None:
    titles = set(leads.job_title.unique())
    assert {"VP Engineering", "vp, engineering", "Head of IT", "Student"} <= titles
    assert (leads.email == "n/a").any() and leads.email.str.fullmatch(r"[a-z.]+@").any()
    corporate = leads.email[_email_kind(leads) == "corporate"]
    assert corporate.str.fullmatch(VALID_EMAIL).all()


# --- labels and outcomes ------------------------------------------------------------------------
def test_decided_leads_carry_time_and_owner_undecided_ones_nothing(leads: pd.DataFrame) -> None:
    decided = _decided(leads)
    assert (leads.sal_decided_at.notna() == decided).all()
    assert ((leads.owner != "") == decided).all()
    undecided = leads[~decided]
    assert set(undecided.sal_status) <= {"pending", ""}
    assert (undecided[["rejection_reason", "sql_status"]] == "").all().all()
    assert undecided.sql_at.isna().all()
    done = leads[decided]
    assert (done.sal_decided_at > done.mql_at).all()
    assert (done.sal_decided_at < EXPORT_AT).all()


def test_undecided_leads_sit_near_the_export_date(leads: pd.DataFrame) -> None:
    decided = _decided(leads)
    last_day = leads.mql_at >= EXPORT_AT - pd.Timedelta(days=1)
    older = leads.mql_at < EXPORT_AT - pd.Timedelta(days=60)
    assert (~decided[last_day]).mean() > 0.5
    assert (~decided[older]).mean() < 0.015  # only the ~1 % nobody ever looked at


def test_rejection_reasons_only_and_always_on_rejections(leads: pd.DataFrame) -> None:
    rejected = leads.sal_status == "rejected"
    assert set(leads.rejection_reason[rejected]) <= REASONS
    assert (leads.rejection_reason[~rejected] == "").all()


def test_rejection_reasons_match_why(leads: pd.DataFrame) -> None:
    rejected = leads[leads.sal_status == "rejected"]
    kind = _email_kind(rejected)
    reason = rejected.rejection_reason
    student = (rejected.job_function == "student") | (kind == "edu")
    assert (reason[student] == "competitor_student").mean() > 0.8
    other = ~student & (reason != "duplicate")
    overall = (reason[other] == "bad_data").mean()
    assert (reason[other & (kind == "malformed")] == "bad_data").mean() > 3 * overall
    tiny = (reason[other & (rejected.company_size == "1-10")] == "not_icp").mean()
    mid = (reason[other & (rejected.company_size == "201-1000")] == "not_icp").mean()
    assert tiny > mid
    cold = ~(rejected.demo_requested | rejected.pricing_requested)
    assert (reason[other & cold] == "not_ready").mean() > (
        reason[other & ~cold] == "not_ready"
    ).mean()


def test_sql_outcome_only_for_accepted_leads(leads: pd.DataFrame) -> None:
    accepted = _accepted(leads)
    assert (leads.sql_status[~accepted] == "").all()
    assert set(leads.sql_status[accepted]) <= {"yes", "no", "open"}
    assert (leads.sql_at.notna() == (leads.sql_status == "yes")).all()
    sql = leads[leads.sql_status == "yes"]
    assert (sql.sql_at > sql.sal_decided_at).all() and (sql.sql_at < EXPORT_AT).all()
    open_ = leads[leads.sql_status == "open"]
    assert (open_.sal_decided_at > EXPORT_AT - pd.Timedelta(days=150)).all()


# --- documented rates and effects ---------------------------------------------------------------
@pytest.mark.parametrize("name", RATES)
def test_documented_rate(name: str, measured: dict[str, float]) -> None:
    _, low, high = RATES[name]
    assert low <= measured[name] <= high, f"{name} = {measured[name]:.4f}"


def test_month_end_leads_are_accepted_less(leads: pd.DataFrame) -> None:
    day = leads.mql_at.dt.normalize()
    business = day.dt.day_of_week < 5
    # Business days left in the month after this one, counted on the calendar.
    month_end = day + pd.offsets.MonthEnd(0)
    left = pd.Series(
        np.busday_count(
            (day + pd.Timedelta(days=1)).to_numpy().astype("datetime64[D]"),
            (month_end + pd.Timedelta(days=1)).to_numpy().astype("datetime64[D]"),
        ),
        index=leads.index,
    )
    last_three = business & (left <= 2)
    assert _acceptance(leads, last_three) < _acceptance(leads, ~last_three) - 0.06


@pytest.mark.parametrize(
    ("industry", "change"), [("healthcare", 0.08), ("manufacturing", 0.08), ("retail", -0.10)]
)
def test_product_launch_shifts_acceptance_by_industry(
    leads: pd.DataFrame, industry: str, change: float
) -> None:
    launched = leads.mql_at >= LAUNCH_AT
    mask = leads.industry == industry
    shift = _acceptance(leads, mask & launched) - _acceptance(leads, mask & ~launched)
    assert shift > change if change > 0 else shift < change


def test_data_directions_the_model_tests_rely_on(leads: pd.DataFrame) -> None:
    demo = leads.demo_requested.astype(bool)
    assert _acceptance(leads, demo) > _acceptance(leads, ~demo) + 0.05
    kind = _email_kind(leads)
    assert _acceptance(leads, kind == "free") < _acceptance(leads, kind == "corporate") - 0.1


def test_no_single_column_predicts_acceptance_alone(leads: pd.DataFrame, spec: dict) -> None:
    # Train on the first 80 % in time, score the rest: a leakage audit's view of each field.
    data = leads[_decided(leads)]
    label = _accepted(data).astype(int).to_numpy()
    cut = int(len(data) * 0.8)
    for name, field in spec["fields"].items():
        if field.get("personal") or field["type"] in ("email", "phone", "text"):
            continue
        column = data[name].astype("object").where(data[name].notna(), "<missing>")
        if field["type"] == "numeric":
            score = data[name].astype(float).fillna(-1.0).to_numpy()[cut:]
        else:
            rate = pd.Series(label[:cut]).groupby(column.to_numpy()[:cut]).mean()
            score = column.iloc[cut:].map(rate).fillna(label[:cut].mean()).to_numpy()
        auc = roc_auc_score(label[cut:], score)
        assert max(auc, 1 - auc) < 0.75, f"{name}: {auc:.3f}"


# --- the CSV export -----------------------------------------------------------------------------
def test_csv_is_what_the_pipeline_reads(tmp_path: Path) -> None:
    df = generate_leads(2_000, seed=9)
    path = write_leads(df, tmp_path / "leads.csv")
    text = path.read_text(encoding="utf-8")
    assert text.splitlines()[0] == ",".join(df.columns)
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)
    assert len(raw) == len(df)
    for name in ("demo_requested", "pricing_requested", "contact_me"):
        assert set(raw[name]) <= {"true", "false", ""}
    stamp = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}")
    for name in ("mql_at", "sal_decided_at", "sql_at"):
        filled = raw[name][raw[name] != ""]
        assert filled.map(lambda value: bool(stamp.fullmatch(value))).all(), name
    assert (raw.sal_decided_at == "").sum() == df.sal_decided_at.isna().sum()
    for token in ("nan", "NaN", "NaT", "<NA>", "None"):
        assert not raw.isin([token]).any().any(), token
    assert (raw.region == df.region).all()  # "NA" (North America) survives as text
