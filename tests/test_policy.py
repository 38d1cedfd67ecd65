"""Routing policy: confidence bounds, the threshold curve, both policy modes and their records.

The references here are computed independently of models/policy.py: Wilson by inverting the score
test by bisection, Clopper-Pearson by solving the binomial tail equation with exact integer
binomial coefficients, and the curve by a plain loop over thresholds.
"""

from __future__ import annotations

import json
import math

import numpy as np
import pandas as pd
import pytest

from models.policy import (
    RoutingPolicy,
    acceptance_rate_policy,
    capacity_policy,
    clopper_pearson_lower,
    outcome_at,
    rules_outcome,
    threshold_curve,
    volume_per_period,
    wilson_lower,
)

Z95 = 1.6448536269514722  # one-sided 95%: the standard normal's 0.95 quantile


def _bisect(f, lo: float, hi: float) -> float:
    """The root of a function that is positive at lo and negative at hi (or the reverse)."""
    sign_lo = f(lo) > 0
    for _ in range(200):
        mid = (lo + hi) / 2
        if (f(mid) > 0) == sign_lo:
            lo = mid
        else:
            hi = mid
    return (lo + hi) / 2


def wilson_by_score_test(k: int, n: int, z: float = Z95) -> float:
    """The p below the observed rate at which the score statistic equals z."""
    if k == 0:
        return 0.0
    phat = k / n
    # Bisection never evaluates the ends, so p = phat = 1 (a zero standard error) is never hit.
    return _bisect(lambda p: (phat - p) / math.sqrt(p * (1 - p) / n) - z, 1e-12, phat)


def clopper_pearson_by_tail(k: int, n: int, confidence: float = 0.95) -> float:
    """The p at which P(X >= k | n, p) equals 1 - confidence (exact binomial tail)."""
    if k == 0:
        return 0.0

    def tail(p: float) -> float:
        return sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k, n + 1))

    return _bisect(lambda p: tail(p) - (1 - confidence), 0.0, 1.0)


def brute_force_curve(p: np.ndarray, accepted: np.ndarray, bound) -> list[dict]:
    rows = []
    for t in sorted(set(p.tolist())):
        routed = [a for score, a in zip(p, accepted, strict=True) if score >= t]
        k, n = int(sum(routed)), len(routed)
        rows.append(
            {
                "threshold": t,
                "routed": n,
                "coverage": n / len(p),
                "accepted_routed": k,
                "acceptance_rate": k / n,
                "lower_bound": bound(k, n),
                "recall": k / int(accepted.sum()),
            }
        )
    return rows


def four_groups() -> tuple[np.ndarray, np.ndarray]:
    """20 leads at each of 0.9, 0.7, 0.5, 0.3 with 20, 18, 10 and 2 accepted.

    Wilson 95% lower bounds by hand: p >= 0.9 routes 20/20 -> 20 / (20 + z^2) = 0.8808;
    p >= 0.7 routes 38/40 -> 0.8597; p >= 0.5 routes 48/60 -> 0.7030; everything 50/80 -> 0.5333.
    """
    p = np.repeat([0.9, 0.7, 0.5, 0.3], 20)
    counts = (20, 18, 10, 2)
    accepted = np.concatenate([np.r_[np.ones(k), np.zeros(20 - k)] for k in counts]).astype(int)
    return p, accepted


# --- Bounds -------------------------------------------------------------------------------------


def test_wilson_nine_of_ten_matches_the_formula_and_the_score_test():
    z2 = Z95**2
    phat, n = 0.9, 10
    by_formula = (
        phat + z2 / (2 * n) - Z95 * math.sqrt(phat * (1 - phat) / n + z2 / (4 * n * n))
    ) / (1 + z2 / n)
    assert wilson_lower(9, 10) == pytest.approx(by_formula, abs=1e-12)
    assert wilson_lower(9, 10) == pytest.approx(wilson_by_score_test(9, 10), abs=1e-9)
    assert wilson_lower(9, 10) == pytest.approx(0.65228, abs=1e-5)


def test_clopper_pearson_known_values():
    # 9/10 one-sided 95% (= two-sided 90%) is the textbook 0.6058.
    assert clopper_pearson_lower(9, 10) == pytest.approx(0.60584, abs=1e-5)
    # k = n: P(X = n) = p^n = alpha  ->  p = alpha^(1/n).
    assert clopper_pearson_lower(10, 10) == pytest.approx(0.05 ** (1 / 10), rel=1e-10)
    # k = 1: P(X >= 1) = 1 - (1 - p)^n = alpha  ->  p = 1 - (1 - alpha)^(1/n).
    assert clopper_pearson_lower(1, 30) == pytest.approx(1 - 0.95 ** (1 / 30), rel=1e-8)


@pytest.mark.parametrize(("k", "n"), [(1, 5), (3, 7), (17, 20), (40, 60), (59, 60), (60, 60)])
def test_bounds_match_independent_references(k, n):
    assert wilson_lower(k, n) == pytest.approx(wilson_by_score_test(k, n), abs=1e-9)
    assert clopper_pearson_lower(k, n) == pytest.approx(clopper_pearson_by_tail(k, n), abs=1e-9)


@pytest.mark.parametrize("bound", [wilson_lower, clopper_pearson_lower])
def test_bounds_are_vectorised_with_zero_for_no_data(bound):
    k = np.array([0, 0, 9, 10])
    n = np.array([0, 5, 10, 10])
    values = bound(k, n)
    assert isinstance(values, np.ndarray) and values.shape == (4,)
    assert values[0] == 0.0 and values[1] == 0.0
    assert values[2] == pytest.approx(bound(9, 10))
    assert isinstance(bound(9, 10), float)


@pytest.mark.parametrize("bound", [wilson_lower, clopper_pearson_lower])
def test_ten_of_ten_does_not_buy_a_90_percent_promise(bound):
    assert bound(10, 10) < 0.9
    p = np.r_[np.full(10, 0.95), np.full(30, 0.2)]
    accepted = np.r_[np.ones(10), np.zeros(30)]
    name = "wilson" if bound is wilson_lower else "clopper_pearson"
    policy = acceptance_rate_policy(p, accepted, target=0.9, bound=name)
    assert not policy.met
    assert policy.observed_rate == 1.0


@pytest.mark.parametrize("bound", [wilson_lower, clopper_pearson_lower])
def test_bound_rises_towards_the_rate_as_evidence_grows(bound):
    sizes = np.array([10, 100, 1_000, 10_000, 100_000])
    values = bound((0.9 * sizes).astype(int), sizes)
    assert np.all(np.diff(values) > 0)
    assert np.all(values < 0.9)
    assert values[-1] > 0.89


@pytest.mark.parametrize("confidence", [0.9, 0.95])
def test_clopper_pearson_is_below_wilson_when_all_accepted(confidence):
    # At k = n: CP = alpha^(1/n), Wilson = n / (n + z^2). CP <= Wilson  <=>
    # n * ln(1 + z^2/n) <= ln(1/alpha), and the left side is < z^2 < ln(1/alpha) at these levels.
    n = np.arange(1, 3_001)
    assert np.all(clopper_pearson_lower(n, n, confidence) <= wilson_lower(n, n, confidence))


def test_clopper_pearson_is_not_always_the_more_conservative():
    # At 99%, z^2 = 5.41 > ln(100) = 4.61, so for large n Wilson is the lower of the two at k = n.
    assert clopper_pearson_lower(1000, 1000, 0.99) > wilson_lower(1000, 1000, 0.99)


def test_bounds_reject_impossible_counts_and_confidence():
    with pytest.raises(ValueError, match="between 0 and n"):
        wilson_lower(11, 10)
    with pytest.raises(ValueError, match="confidence"):
        clopper_pearson_lower(5, 10, confidence=1.0)


# --- Curve --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bound", "reference"),
    [("wilson", wilson_by_score_test), ("clopper_pearson", clopper_pearson_by_tail)],
)
def test_curve_matches_brute_force_with_ties(bound, reference):
    rng = np.random.default_rng(7)
    p = np.round(rng.random(60), 1)  # about 11 distinct scores: plenty of ties
    accepted = (rng.random(60) < p).astype(int)
    curve = threshold_curve(p, accepted, bound=bound)
    expected = pd.DataFrame(brute_force_curve(p, accepted, reference))
    pd.testing.assert_frame_equal(curve, expected, check_dtype=False, atol=1e-8)


def test_curve_of_four_groups_by_hand():
    curve = threshold_curve(*four_groups())
    assert curve["threshold"].tolist() == [0.3, 0.5, 0.7, 0.9]
    assert curve["routed"].tolist() == [80, 60, 40, 20]
    assert curve["accepted_routed"].tolist() == [50, 48, 38, 20]
    assert curve["lower_bound"].to_numpy() == pytest.approx(
        [0.5333, 0.7030, 0.8597, 0.8808], abs=1e-4
    )
    assert curve["recall"].tolist() == [1.0, 48 / 50, 38 / 50, 20 / 50]


def test_curve_on_a_million_rows_is_monotone_and_agrees_with_outcome_at():
    rng = np.random.default_rng(0)
    p = np.round(rng.beta(2, 2, 1_000_000), 4)
    accepted = rng.random(1_000_000) < p
    curve = threshold_curve(p, accepted)
    assert np.all(np.diff(curve["threshold"]) > 0)
    assert np.all(np.diff(curve["routed"]) < 0)
    assert np.all(np.diff(curve["coverage"]) < 0)
    assert np.all(np.diff(curve["recall"]) <= 0)
    assert np.all(curve["lower_bound"] <= curve["acceptance_rate"])
    assert curve["routed"].iloc[0] == 1_000_000
    for i in (0, len(curve) // 3, len(curve) - 1):
        row = curve.iloc[i]
        check = outcome_at(row["threshold"], p, accepted)
        assert check["routed"] == row["routed"]
        assert check["lower_bound"] == pytest.approx(row["lower_bound"])


# --- Acceptance-rate mode -----------------------------------------------------------------------


@pytest.mark.parametrize(("target", "threshold"), [(0.5, 0.3), (0.8, 0.7), (0.87, 0.9)])
def test_lowest_threshold_meeting_the_target(target, threshold):
    policy = acceptance_rate_policy(*four_groups(), target=target)
    assert policy.met
    assert policy.threshold == threshold
    assert policy.promised_rate >= target
    assert policy.note.startswith("Routes ")


def test_policy_matches_a_brute_force_search_on_random_scores():
    rng = np.random.default_rng(3)
    p = np.round(rng.beta(5, 2, 300), 2)
    accepted = (rng.random(300) < p).astype(int)
    reference = brute_force_curve(p, accepted, wilson_by_score_test)
    for target in (0.6, 0.7, 0.75, 0.8, 0.85):
        meeting = [row["threshold"] for row in reference if row["lower_bound"] >= target]
        policy = acceptance_rate_policy(p, accepted, target=target)
        assert policy.met == bool(meeting)
        if meeting:
            assert policy.threshold == min(meeting)


def test_takes_the_lowest_meeting_threshold_even_if_a_higher_one_fails():
    # The top group is poor (5/10) but the larger routed set below it is 105/110.
    p = np.repeat([0.9, 0.5, 0.1], [10, 100, 50])
    accepted = np.r_[np.ones(5), np.zeros(5), np.ones(100), np.zeros(50)]
    policy = acceptance_rate_policy(p, accepted, target=0.85)
    assert policy.threshold == 0.5
    assert policy.routed == 110


def test_fallback_when_the_target_is_unattainable():
    p, accepted = four_groups()
    policy = acceptance_rate_policy(p, accepted, target=0.9)
    curve = threshold_curve(p, accepted)
    assert not policy.met
    assert policy.threshold == curve["threshold"].iloc[curve["lower_bound"].argmax()] == 0.9
    assert policy.promised_rate == pytest.approx(0.8808, abs=1e-4)
    assert policy.note == (
        "No threshold meets 90% acceptance at 95% confidence on 80 held-out leads; the best "
        "achievable is 88.0% (lower bound) routing 25% of MQLs, so this promise is not met."
    )


def test_fallback_best_bound_need_not_be_the_highest_threshold():
    # 3/3 at the top is too little evidence (bound 0.53); the 93/103 routed at 0.5 bound 0.84.
    p = np.repeat([0.9, 0.5, 0.1], [3, 100, 50])
    accepted = np.r_[np.ones(93), np.zeros(60)]
    policy = acceptance_rate_policy(p, accepted, target=0.9)
    assert not policy.met
    assert policy.threshold == 0.5 and policy.routed == 103
    assert "best achievable is 84.4% (lower bound) routing 67% of MQLs" in policy.note


def test_note_of_a_met_policy():
    policy = acceptance_rate_policy(*four_groups(), target=0.8)
    assert policy.note == (
        "Routes 50% of MQLs; on 80 held-out leads 95.0% of routed leads were accepted "
        "(at least 85.9% at 95% confidence), reaching 76% of all leads sales accepted."
    )


def test_all_scores_equal_gives_one_cut_that_routes_everything():
    p = np.full(200, 0.7)
    accepted = np.r_[np.ones(190), np.zeros(10)]
    assert len(threshold_curve(p, accepted)) == 1
    policy = acceptance_rate_policy(p, accepted, target=0.9)
    assert policy.met and policy.threshold == 0.7 and policy.coverage == 1.0


@pytest.mark.parametrize(
    ("p", "accepted", "message"),
    [
        ([], [], "empty"),
        ([0.2, 0.8], [1, 1], "every held-out lead was accepted"),
        ([0.2, 0.8], [0, 0], "every held-out lead was rejected"),
        ([0.2, 0.8], [0, 1, 1], "rows"),
        ([0.2, 1.5], [0, 1], r"\[0, 1\]"),
        ([0.2, np.nan], [0, 1], "missing"),
        ([0.2, 0.8], [0, 2], "0/1"),
    ],
)
def test_bad_inputs_raise_clear_errors(p, accepted, message):
    with pytest.raises(ValueError, match=message):
        acceptance_rate_policy(p, accepted)


# --- Capacity mode ------------------------------------------------------------------------------


def test_capacity_routes_the_top_share():
    p = np.linspace(0.01, 0.99, 100)  # 100 distinct scores
    accepted = (np.arange(100) % 3 != 0).astype(int)
    # 50 MQLs a week, sales works 10: route the top 20%, i.e. the 20 highest scores.
    policy = capacity_policy(p, accepted, 10, "week", volume_per_period=50)
    top = np.argsort(p)[-20:]
    assert policy.met
    assert policy.threshold == p[top].min()
    assert policy.routed == 20 and policy.coverage == 0.2
    assert policy.promised_rate == pytest.approx(p[top].mean())
    assert policy.observed_rate == pytest.approx(accepted[top].mean())
    assert policy.recall == pytest.approx(accepted[top].sum() / accepted.sum())
    assert policy.note.startswith("Routes the top 20% of MQLs, about 10 a week")


def test_a_tiny_share_is_not_rounded_to_zero_in_the_note():
    p = np.linspace(0.001, 0.999, 1000)
    accepted = (np.arange(1000) % 2).astype(int)
    policy = capacity_policy(p, accepted, 1, volume_per_period=1000)
    assert policy.routed == 1
    assert policy.note.startswith("Routes the top 0.1% of MQLs, about 1 a week")


def test_capacity_never_splits_or_overflows_with_a_tie_group():
    p = np.repeat([0.9, 0.8, 0.1], [5, 10, 85])
    accepted = np.r_[np.ones(15), np.zeros(85)]
    # Volume = rows, so routed per period = routed: 0.8 would route 15 > 10, so cut at 0.9.
    policy = capacity_policy(p, accepted, 10, volume_per_period=100)
    assert policy.met and policy.threshold == 0.9 and policy.routed == 5


def test_capacity_below_the_top_tie_group_routes_that_group_and_says_so():
    p = np.repeat([0.9, 0.1], [20, 80])
    accepted = np.r_[np.ones(20), np.zeros(80)]
    policy = capacity_policy(p, accepted, 10, volume_per_period=100)
    assert not policy.met
    assert policy.threshold == 0.9 and policy.routed == 20
    assert policy.note.startswith("Even the top-scored tie group, about 20 MQLs a week, exceeds")


def test_capacity_at_or_above_volume_routes_everything():
    p, accepted = four_groups()
    policy = capacity_policy(p, accepted, 200, "day", volume_per_period=150)
    assert policy.threshold == 0.0
    assert policy.coverage == 1.0 and policy.recall == 1.0
    assert not policy.met
    assert "every MQL is routed (threshold 0)" in policy.note
    assert policy.capacity == 200 and policy.capacity_period == "day"


def test_capacity_rejects_bad_settings():
    p, accepted = four_groups()
    with pytest.raises(ValueError, match="capacity"):
        capacity_policy(p, accepted, 0, volume_per_period=100)
    with pytest.raises(ValueError, match="period"):
        capacity_policy(p, accepted, 10, "month", volume_per_period=100)


def test_volume_per_period():
    times = pd.Series(pd.date_range("2024-01-01", periods=71, freq="D"))  # spans 70 days
    assert volume_per_period(times, "week") == pytest.approx(71 / 10)
    assert volume_per_period(times, "day") == pytest.approx(71 / 70)
    with pytest.raises(ValueError, match="two distinct times"):
        volume_per_period(pd.Series(pd.to_datetime(["2024-01-01"] * 3)), "week")


# --- Checking on another slice ------------------------------------------------------------------


def test_outcome_at_on_a_later_slice():
    p = np.array([0.95, 0.9, 0.85, 0.4, 0.3, 0.2])
    accepted = np.array([1, 1, 0, 1, 0, 0])
    result = outcome_at(0.8, p, accepted)
    assert result["routed"] == 3
    assert result["coverage"] == 0.5
    assert result["acceptance_rate"] == pytest.approx(2 / 3)
    assert result["lower_bound"] == pytest.approx(wilson_by_score_test(2, 3), abs=1e-9)
    assert result["recall"] == pytest.approx(2 / 3)
    nothing = outcome_at(0.99, p, accepted)
    assert nothing["routed"] == 0 and nothing["acceptance_rate"] is None
    assert nothing["lower_bound"] == 0.0


def test_rules_outcome_uses_the_pass_flags():
    rule_pass = np.array([True, False, True, True, False])
    accepted = np.array([1, 1, 0, 1, 0])
    result = rules_outcome(rule_pass, accepted, bound="clopper_pearson")
    assert result["routed"] == 3 and result["coverage"] == 0.6
    assert result["acceptance_rate"] == pytest.approx(2 / 3)
    assert result["lower_bound"] == pytest.approx(clopper_pearson_by_tail(2, 3), abs=1e-9)
    assert result["recall"] == pytest.approx(2 / 3)


# --- The record ---------------------------------------------------------------------------------


@pytest.mark.parametrize("mode", ["acceptance_rate", "capacity"])
def test_round_trip_through_json(mode):
    p, accepted = four_groups()
    policy = (
        acceptance_rate_policy(p, accepted, target=0.8, bound="clopper_pearson")
        if mode == "acceptance_rate"
        else capacity_policy(p, accepted, 10, volume_per_period=40)
    )
    data = json.loads(json.dumps(policy.to_dict()))
    assert RoutingPolicy.from_dict(data) == policy
    assert all(type(v) in (str, int, float, bool, type(None)) for v in policy.to_dict().values())


def test_tags_are_strings_and_keep_the_exact_threshold():
    rng = np.random.default_rng(1)
    p = rng.random(500)
    accepted = (rng.random(500) < p).astype(int)
    tags = acceptance_rate_policy(p, accepted, target=0.8).tags()
    assert set(tags) == {
        "routing_threshold",
        "routing_mode",
        "routing_target",
        "routing_met",
        "routing_promised_rate",
        "routing_coverage",
        "routing_recall",
    }
    assert all(isinstance(v, str) for v in tags.values())
    policy = acceptance_rate_policy(p, accepted, target=0.8)
    assert float(tags["routing_threshold"]) == policy.threshold
    assert tags["routing_target"] == "0.8" and tags["routing_met"] == "true"
    capacity = capacity_policy(p, accepted, 20, volume_per_period=100).tags()
    assert capacity["routing_mode"] == "capacity" and capacity["routing_target"] == "20/week"


def test_unknown_mode_is_rejected():
    data = acceptance_rate_policy(*four_groups(), target=0.8).to_dict()
    with pytest.raises(ValueError, match="mode"):
        RoutingPolicy.from_dict({**data, "mode": "vibes"})
