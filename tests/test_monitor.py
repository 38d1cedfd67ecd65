"""Monitoring: PSI, the training profile, drift / acceptance / volume checks, reading the log."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from models import store
from models.features import normalize
from models.profile import OTHER, bin_shares, build_profile
from models.spec import DatasetSpec
from pipeline.monitor import (
    PSI_ALARM,
    monitor,
    psi,
    read_monitoring_frame,
    render_text,
)

START = pd.Timestamp("2026-06-01", tz="UTC")  # a Monday: weekly periods start on Mondays
THRESHOLD = 0.5
CORPORATE, FREE = "redacted@redacted-company.com", "redacted@gmail.com"  # as the log holds them


def _leads(
    rng: np.random.Generator,
    n: int,
    *,
    start: pd.Timestamp = START,
    days: float = 7,
    retail: float = 0.3,
    employees_scale: float = 1.0,
) -> pd.DataFrame:
    """Leads as the scoring log holds their features (tiny spec), spread over `days`."""
    stamps = start + pd.to_timedelta(rng.uniform(0, days * 24, n), unit="h")
    return pd.DataFrame(
        {
            "lead_id": [f"lead-{start.date()}-{i}" for i in range(n)],
            "mql_at": stamps.map(pd.Timestamp.isoformat),
            "industry": np.where(rng.random(n) < retail, "retail", "software"),
            "employees": (rng.lognormal(4, 1, n) * employees_scale).round(),
            "demo_requested": rng.random(n) < 0.2,
            "email": np.where(rng.random(n) < 0.7, CORPORATE, FREE),
        }
    )


def _frame(
    spec: DatasetSpec, raw: pd.DataFrame, rng: np.random.Generator, accept_rate: float = 0.95
) -> pd.DataFrame:
    """A monitoring frame (as `read_monitoring_frame` returns) with every lead decided."""
    n = len(raw)
    p_accept = rng.beta(5, 2, n)
    frame = pd.concat([raw[["lead_id"]], normalize(raw, spec)], axis=1)
    frame["scored_at"] = pd.to_datetime(raw["mql_at"], utc=True)
    frame["p_accept"] = p_accept
    frame["route"] = np.where(p_accept >= THRESHOLD, "sales", "nurture")
    frame["accepted"] = pd.Series(rng.random(n) < accept_rate, dtype=object)
    frame["decided_at"] = frame["scored_at"] + pd.Timedelta(hours=12)
    return frame


def _weeks(spec: DatasetSpec, rng: np.random.Generator, sizes: list[int], **drift) -> pd.DataFrame:
    """Consecutive weeks from START with `sizes[i]` leads each; `drift` applies to the last."""
    frames = []
    for week, size in enumerate(sizes):
        last = week == len(sizes) - 1
        raw = _leads(rng, size, start=START + pd.Timedelta(weeks=week), **(drift if last else {}))
        frames.append(_frame(spec, raw, rng))
    return pd.concat(frames, ignore_index=True)


def _after_weeks(weeks: int) -> datetime:
    """Three days into the week after `weeks` complete weeks (every decision window closed)."""
    return (START + pd.Timedelta(weeks=weeks, days=3)).to_pydatetime()


@pytest.fixture
def profile(tiny_spec: DatasetSpec) -> dict:
    """The training profile: a year of leads from the same generator, scores ~ Beta(5, 2)."""
    rng = np.random.default_rng(1)
    clean = normalize(
        _leads(rng, 10_000, start=START - pd.Timedelta(days=365), days=365), tiny_spec
    )
    return build_profile(clean, tiny_spec, rng.beta(5, 2, len(clean)), list(clean.columns))


# -- PSI and the profile ---------------------------------------------------------------------------
def test_psi_matches_hand_computation() -> None:
    # (0.4 - 0.5) ln(0.4 / 0.5) + (0.4 - 0.3) ln(0.4 / 0.3) + (0.2 - 0.2) ln(1)
    #   = 0.1 * 0.223144 + 0.1 * 0.287682 + 0 = 0.051083
    assert psi(np.array([0.5, 0.3, 0.2]), np.array([0.4, 0.4, 0.2])) == pytest.approx(
        0.051083, abs=1e-6
    )
    # An empty training bin is floored at 1e-4: (0.1 - 0.0001) ln(0.1 / 0.0001) = 0.690085,
    # plus (0.4 - 0.5) ln(0.4 / 0.5) = 0.022314 for the bin it took its leads from.
    assert psi(np.array([0.5, 0.5, 0.0]), np.array([0.5, 0.4, 0.1])) == pytest.approx(
        0.712399, abs=1e-6
    )


def test_profile_round_trip_gives_zero_psi(tiny_spec: DatasetSpec) -> None:
    rng = np.random.default_rng(2)
    clean = normalize(_leads(rng, 3_000), tiny_spec)
    clean.loc[clean.index[:300], "employees"] = np.nan  # a missing share to carry over
    scores = rng.beta(5, 2, len(clean))
    profile = json.loads(json.dumps(build_profile(clean, tiny_spec, scores, list(clean.columns))))

    assert profile["rows"] == 3_000 and profile["score"]["mean"] == pytest.approx(scores.mean())
    employees = profile["features"]["employees"]
    assert employees["kind"] == "numeric" and len(employees["edges"]) == 9
    assert employees["shares"][-1] == pytest.approx(0.1)  # the missing bin comes last
    assert profile["features"]["email"]["categories"] == ["corporate", "free"]
    for name, column in profile["features"].items():
        assert sum(column["shares"]) == pytest.approx(1.0)
        assert psi(column["shares"], bin_shares(clean[name], column)) == pytest.approx(0, abs=1e-12)
    assert psi(profile["score"]["shares"], bin_shares(scores, profile["score"])) == pytest.approx(0)


def test_bin_shares_puts_new_values_in_the_training_bins(tiny_spec: DatasetSpec) -> None:
    clean = pd.DataFrame(
        {
            "industry": ["software"] * 6 + ["retail"] * 3 + [None],
            "employees": [float(v) for v in range(10)],
        }
    )
    profile = build_profile(clean, tiny_spec, np.full(10, 0.5), ["industry", "employees"])
    industry, employees = profile["features"]["industry"], profile["features"]["employees"]
    assert industry["labels"] == ["software", "retail", OTHER, "__missing__"]
    np.testing.assert_allclose(industry["shares"], [0.6, 0.3, 0, 0.1])
    new = pd.Series(["retail", "healthcare", None, "software"])
    np.testing.assert_allclose(bin_shares(new, industry), [0.25, 0.25, 0.25, 0.25])
    # Deciles of 0..9 are the observed values 0..8; bins are [low, high), so 8 opens ">= 8".
    assert employees["edges"] == [float(v) for v in range(9)]
    shares = bin_shares(pd.Series([-5.0, 8.0, 100.0, np.nan]), employees)
    assert (shares[0], shares[-3], shares[-2], shares[-1]) == (0.25, 0, 0.5, 0.25)
    # The score's bins are fixed and closed on the left, like the tiers: 0.8 is in [0.8, 0.9).
    assert bin_shares(np.array([0.8]), profile["score"])[8] == 1.0


def test_personal_fields_are_profiled_only_as_what_the_model_uses(tiny_spec: DatasetSpec) -> None:
    # A personal categorical field reaches the log as "redacted": profiling it would store names
    # in the model artifact and compare them with a constant.
    fields = {
        **tiny_spec.model_dump()["fields"],
        "company": {"type": "categorical", "personal": True},
    }
    spec = DatasetSpec.model_validate({**tiny_spec.model_dump(), "fields": fields})
    raw = _leads(np.random.default_rng(3), 200).assign(company="Acme Widgets Ltd")
    clean = normalize(raw, spec)
    profile = build_profile(clean, spec, np.full(200, 0.5), list(clean.columns))
    assert "company" not in profile["features"] and "email" in profile["features"]
    assert "acme" not in json.dumps(profile).lower() and "@" not in json.dumps(profile)


# -- drift -----------------------------------------------------------------------------------------
def test_planted_drift_alarms_on_the_shifted_features(tiny_spec, profile) -> None:
    rng = np.random.default_rng(4)
    frame = _weeks(tiny_spec, rng, [1_000] * 4, retail=0.6, employees_scale=3.0)
    result = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(4))

    last_week = result.periods["period"].iloc[3]
    drifted = {a.subject for a in result.alarms if a.kind == "feature_drift"}
    assert drifted == {"industry", "employees"}
    assert all(a.period == last_week and a.value >= PSI_ALARM for a in result.alarms)
    assert result.drift.loc[last_week, "industry"] == pytest.approx(0.376, abs=0.05)
    assert result.exit_code == 1
    assert "industry" in render_text(result) and "exit 1" in render_text(result)


def test_without_drift_monitoring_is_quiet(tiny_spec, profile) -> None:
    rng = np.random.default_rng(4)
    frame = _weeks(tiny_spec, rng, [1_000] * 4)
    result = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(4))

    assert result.alarms == [] and result.warnings == [] and result.exit_code == 0
    assert result.drift.iloc[:4].max().max() < 0.1
    assert result.periods["volume"].tolist() == [1_000] * 4 + [0]  # the current week: empty
    assert json.loads(json.dumps(result.to_dict()))["exit_code"] == 0


def test_small_periods_report_psi_but_do_not_alarm(tiny_spec, profile) -> None:
    rng = np.random.default_rng(5)
    frame = _weeks(tiny_spec, rng, [150], retail=0.9)
    result = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(1), min_rows=200)
    assert result.drift["industry"].iloc[0] >= PSI_ALARM
    assert not [a for a in result.alarms if a.kind == "feature_drift"]
    loud = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(1), min_rows=100)
    assert "industry" in {a.subject for a in loud.alarms}


# -- outcomes --------------------------------------------------------------------------------------
def test_leads_inside_the_decision_window_are_pending_not_rejected(tiny_spec, profile) -> None:
    now = START + pd.Timedelta(days=5)
    raw = _leads(np.random.default_rng(6), 30)
    frame = _frame(tiny_spec, raw, np.random.default_rng(6))
    frame["route"] = "sales"
    frame["scored_at"] = [now - pd.Timedelta(hours=h) for h in [10] * 10 + [72] * 20]
    # 10 recent and undecided, 10 old and undecided, 10 decided of which 8 accepted.
    frame["accepted"] = pd.Series([None] * 20 + [True] * 8 + [False] * 2, dtype=object)
    frame["decided_at"] = frame["scored_at"] + pd.Timedelta(hours=12)
    row = monitor(frame, profile, threshold=THRESHOLD, now=now.to_pydatetime()).periods.iloc[0]

    assert (row["routed"], row["decided"], row["pending"], row["no_decision"]) == (30, 10, 10, 10)
    assert row["realised_rate"] == pytest.approx(0.8)  # 8 of 10 decided, not 8 of 30


def test_a_decision_after_now_was_not_known_then(tiny_spec, profile) -> None:
    rng = np.random.default_rng(7)
    frame = _frame(tiny_spec, _leads(rng, 10), rng).assign(route="sales", accepted=True)
    frame["decided_at"] = START + pd.Timedelta(days=30)
    now = (START + pd.Timedelta(days=10)).to_pydatetime()
    row = monitor(frame, profile, threshold=THRESHOLD, now=now).periods.iloc[0]
    assert row["decided"] == 0 and row["no_decision"] == 10


@pytest.mark.parametrize(
    ("decided", "accepted", "alarms"),
    [
        (5, 3, False),  # 60%, but 5 leads prove nothing (Wilson alone would say otherwise)
        (60, 51, False),  # 85%: upper bound 0.92, could still be a 90% process
        (500, 425, True),  # 85% of 500: upper bound 0.88
        (500, 300, True),
        (500, 470, False),  # 94%: above target
    ],
)
def test_acceptance_below_target_alarms_only_with_enough_decided_leads(
    tiny_spec, profile, decided: int, accepted: int, alarms: bool
) -> None:
    rng = np.random.default_rng(8)
    frame = _frame(tiny_spec, _leads(rng, decided), rng).assign(route="sales")
    frame["accepted"] = pd.Series([True] * accepted + [False] * (decided - accepted), dtype=object)
    result = monitor(frame, profile, threshold=THRESHOLD, target=0.9, now=_after_weeks(1))

    found = [a for a in result.alarms if a.kind == "acceptance"]
    assert bool(found) is alarms
    assert result.periods["realised_rate"].iloc[0] == pytest.approx(accepted / decided)
    if decided == 5:
        assert result.periods["realised_upper"].iloc[0] == pytest.approx(0.8824, abs=1e-4)
    if alarms:
        assert found[0].value == pytest.approx(accepted / decided) and result.exit_code == 1


def test_calibration_by_tier_among_decided_leads(tiny_spec, profile) -> None:
    rng = np.random.default_rng(9)
    frame = _frame(tiny_spec, _leads(rng, 8), rng)
    frame["p_accept"] = [0.9, 0.85, 0.7, 0.65, 0.5, 0.2, 0.1, 0.95]
    frame["accepted"] = pd.Series([True, False, True, True, False, False, True, None], dtype=object)
    table = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(1)).calibration
    overall = table[table["period"] == "all"].set_index("tier")

    assert overall["band"].to_dict() == {"A": "0.8-1", "B": "0.6-0.8", "C": "0.4-0.6", "D": "0-0.4"}
    assert overall["n"].to_dict() == {"A": 2, "B": 2, "C": 1, "D": 2}  # the undecided 0.95 is out
    assert overall.loc["A", "predicted"] == pytest.approx(0.875)
    assert overall.loc["A", "observed"] == pytest.approx(0.5)
    assert overall.loc["D", "observed"] == pytest.approx(0.5)


def test_a_lead_scored_twice_in_a_period_counts_once_with_its_latest_score(
    tiny_spec, profile
) -> None:
    rng = np.random.default_rng(10)
    once = _frame(tiny_spec, _leads(rng, 1), rng).assign(accepted=None)
    again = once.assign(scored_at=once["scored_at"] + pd.Timedelta(hours=1), route="sales")
    first = once.assign(route="nurture")
    row = monitor(
        pd.concat([again, first]), profile, threshold=THRESHOLD, now=_after_weeks(1)
    ).periods.iloc[0]
    assert (row["volume"], row["routed"]) == (1, 1)


# -- volume ----------------------------------------------------------------------------------------
def test_a_week_at_a_fraction_of_the_usual_volume_warns(tiny_spec, profile) -> None:
    rng = np.random.default_rng(11)
    result = monitor(
        _weeks(tiny_spec, rng, [1_000, 1_000, 1_000, 300]),
        profile,
        threshold=THRESHOLD,
        now=_after_weeks(4),
    )
    volume = [w for w in result.warnings if w.kind == "volume"]
    assert [w.period for w in volume] == [result.periods["period"].iloc[3]]
    assert volume[0].threshold == 500 and result.exit_code == 0  # a warning, not an alarm


def test_daily_volume_is_compared_with_the_same_weekday(tiny_spec, profile) -> None:
    rng = np.random.default_rng(12)
    # 30 days of 60 leads a working day and 5 a weekend day; then a Wednesday with 10.
    days = [(d, 5 if d % 7 >= 5 else 60) for d in range(30)] + [(30, 10)]
    frame = pd.concat(
        [
            _frame(tiny_spec, _leads(rng, size, start=START + pd.Timedelta(days=d), days=1), rng)
            for d, size in days
        ],
        ignore_index=True,
    )
    now = (START + pd.Timedelta(days=31, hours=12)).to_pydatetime()
    result = monitor(frame, profile, threshold=THRESHOLD, now=now, period="D")
    dropped = [w.period for w in result.warnings if w.kind == "volume"]
    assert dropped == ["2026-07-01"]  # weekends are not a drop, the quiet Wednesday is


# -- edges -----------------------------------------------------------------------------------------
def test_no_leads_yet_is_quiet(tiny_spec, profile) -> None:
    rng = np.random.default_rng(13)
    empty = _frame(tiny_spec, _leads(rng, 3), rng).iloc[:0]
    result = monitor(empty, profile, threshold=THRESHOLD, now=_after_weeks(0))
    assert result.periods["volume"].tolist() == [0] and result.exit_code == 0
    assert math.isnan(result.periods["score_psi"].iloc[0])


def test_a_frame_without_a_profiled_feature_is_refused(tiny_spec, profile) -> None:
    rng = np.random.default_rng(14)
    frame = _frame(tiny_spec, _leads(rng, 10), rng).drop(columns="industry")
    with pytest.raises(KeyError, match="industry"):
        monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(1))


def test_the_result_holds_no_lead_ids(tiny_spec, profile) -> None:
    rng = np.random.default_rng(15)
    frame = _weeks(tiny_spec, rng, [300], retail=0.9)
    result = monitor(frame, profile, threshold=THRESHOLD, now=_after_weeks(1))
    report = json.dumps(result.to_dict()) + render_text(result)
    assert result.alarms and "lead-" not in report


# -- the scoring log -------------------------------------------------------------------------------
def test_read_monitoring_frame_joins_the_log_with_outcomes(tmp_path, tiny_spec, profile) -> None:
    engine = store.connect(f"sqlite:///{tmp_path / 'sal.db'}")
    at = datetime(2026, 6, 2, 9, tzinfo=UTC)
    features = {
        "lead_id": "A",
        "mql_at": at.isoformat(),
        "industry": "Retail",
        "employees": 40,
        "demo_requested": True,
        "email": CORPORATE,
    }

    def scoring(lead_id: str, minutes: int, p_accept: float | None, **extra) -> dict:
        row = {"lead_id": lead_id, "scored_at": at + timedelta(minutes=minutes)}
        row |= {"features": {**features, "lead_id": lead_id}, "p_accept": p_accept}
        return row | {"model_version": "3", "tier": "A", "route": "sales", **extra}

    rows = [scoring("A", 0, 0.7), scoring("A", 60, 0.9)]
    rows.append(scoring("B", 0, 0.3, route="nurture", model_version="2"))
    # Features sent with an outcome for a lead scored elsewhere: not this model's scoring.
    rows.append(scoring("C", 0, None, route=None, tier=None))
    store.log_scores(engine, rows)
    store.record_outcomes(engine, [{"lead_id": "A", "accepted": False, "decided_at": at}])

    frame = read_monitoring_frame(engine, tiny_spec)
    assert sorted(frame["lead_id"]) == ["A", "A", "B"]
    a = frame[frame["lead_id"] == "A"].iloc[0]
    assert a["industry"] == "retail" and a["email"] == "corporate" and a["employees"] == 40.0
    assert a["accepted"] is not None and not a["accepted"]
    assert frame["scored_at"].dt.tz is not None
    assert frame.loc[frame["lead_id"] == "B", "accepted"].isna().all()
    assert sorted(read_monitoring_frame(engine, tiny_spec, model_version="2")["lead_id"]) == ["B"]
    later = read_monitoring_frame(engine, tiny_spec, since=at + timedelta(minutes=30))
    assert later["p_accept"].tolist() == [0.9]

    now = at + timedelta(days=3)
    row = monitor(frame, profile, threshold=THRESHOLD, now=now).periods.iloc[0]
    assert (row["volume"], row["routed"], row["decided"], row["realised_rate"]) == (2, 1, 1, 0.0)
    engine.dispose()
