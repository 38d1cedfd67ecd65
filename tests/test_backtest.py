"""Backtest: paired bootstrap of champion, challenger and rules on one slice, and the gate.

The vectorised replicate metrics are checked against the reference implementations (sklearn's
roc_auc_score, pipeline.evaluate's ECE, models.policy's routing figures) on the very rows each
replicate resampled, which `resample` reproduces.
"""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
from scipy.special import expit
from sklearn.metrics import roc_auc_score

from models.policy import outcome_at, wilson_lower
from pipeline.backtest import (
    Backtest,
    Contender,
    GateRules,
    bootstrap,
    gate,
    resample,
)
from pipeline.evaluate import expected_calibration_error


def _slice(rows: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A latent lead quality and 0/1 outcomes drawn from it (about 30% accepted)."""
    rng = np.random.default_rng(seed)
    quality = rng.normal(size=rows)
    accepted = (rng.random(rows) < expit(-1.2 + 1.6 * quality)).astype(int)
    return quality, accepted


def _noisy(quality: np.ndarray, noise: float, seed: int) -> np.ndarray:
    """A probability that ranks leads by quality blurred by `noise` (more noise, lower AUC)."""
    blurred = quality + noise * np.random.default_rng(seed).normal(size=quality.size)
    return expit(-1.2 + 1.6 * blurred / np.sqrt(1 + noise**2))


# --- The bootstrap ------------------------------------------------------------------------------


def test_intervals_cover_the_point_estimate_and_shrink_with_more_rows() -> None:
    rows = {}
    for size in (1_000, 16_000):
        quality, y = _slice(size)
        backtest = bootstrap(y, [Contender("model", _noisy(quality, 0.4, 1), 0.5)], n_boot=400)
        rows[size] = backtest.row("model")
    for metric in ("roc_auc", "ece", "routed_rate"):
        widths = {}
        for size, row in rows.items():
            assert row[f"{metric}_low"] <= row[metric] <= row[f"{metric}_high"], (metric, size)
            widths[size] = row[f"{metric}_high"] - row[f"{metric}_low"]
        # 16x the rows: about a quarter of the width; half is a safe bound for 400 replicates.
        assert widths[16_000] < 0.5 * widths[1_000], metric


def test_identical_contenders_differ_by_exactly_zero_in_every_replicate() -> None:
    quality, y = _slice(3_000)
    p = _noisy(quality, 0.5, 1)
    backtest = bootstrap(y, [Contender("champion", p, 0.5), Contender("challenger", p, 0.5)])
    for metric in ("roc_auc", "routed_rate"):
        delta = backtest.delta("challenger", "champion", metric)
        assert (delta["estimate"], delta["low"], delta["high"]) == (0.0, 0.0, 0.0)


def test_strong_vs_weak_scorer_difference_excludes_zero_and_mirrors() -> None:
    quality, y = _slice(3_000)
    strong = Contender("strong", _noisy(quality, 0.2, 1), 0.5)
    weak = Contender("weak", _noisy(quality, 1.5, 2), 0.5)
    backtest = bootstrap(y, [strong, weak], n_boot=500)
    ahead = backtest.delta("strong", "weak", "roc_auc")
    behind = backtest.delta("weak", "strong", "roc_auc")
    assert 0 < ahead["low"] < ahead["estimate"] < ahead["high"]
    assert (behind["estimate"], behind["low"], behind["high"]) == pytest.approx(
        (-ahead["estimate"], -ahead["high"], -ahead["low"])
    )


def test_pairing_makes_the_difference_of_similar_models_tighter_than_either_interval() -> None:
    quality, y = _slice(3_000)
    shared = quality + 0.4 * np.random.default_rng(1).normal(size=quality.size)
    champion = Contender("champion", _noisy(shared, 0.1, 2), 0.5)  # two retrainings, say:
    challenger = Contender("challenger", _noisy(shared, 0.1, 3), 0.5)  # scores correlate ~0.99
    backtest = bootstrap(y, [champion, challenger], n_boot=500)
    delta = backtest.delta("challenger", "champion", "roc_auc")
    own = [
        backtest.row(n)["roc_auc_high"] - backtest.row(n)["roc_auc_low"]
        for n in ("champion", "challenger")
    ]
    assert delta["high"] - delta["low"] < 0.4 * min(own)


def test_replicate_metrics_match_the_reference_implementations_on_the_same_resample() -> None:
    quality, y = _slice(2_000)
    model = _noisy(quality, 0.5, 1)
    rules = np.round(_noisy(quality, 1.0, 2) * 4) / 4  # few distinct scores: many ties
    contenders = [Contender("model", model, 0.55), Contender("rules", rules, None, rules >= 0.5)]
    backtest = bootstrap(y, contenders, n_boot=250, seed=3)
    by_replicate = backtest.replicates.set_index(["replicate", "name"])
    # 2,000 rows are resampled 100 replicates at a time: check both sides of a block boundary.
    for replicate in (0, 99, 100, 249):
        rows = resample(y.size, 3, replicate)
        for contender in contenders:
            got = by_replicate.loc[(replicate, contender.name)]
            p, outcome = contender.p[rows], y[rows]
            routed = outcome_at(0.5 if contender.threshold is None else 0.55, p, outcome)
            assert got["roc_auc"] == pytest.approx(roc_auc_score(outcome, p), abs=1e-12)
            assert got["ece"] == pytest.approx(expected_calibration_error(outcome, p), abs=1e-12)
            assert got["routed_rate"] == pytest.approx(routed["acceptance_rate"], abs=1e-12)
            assert got["coverage"] == pytest.approx(routed["coverage"], abs=1e-12)
            assert got["recall"] == pytest.approx(routed["recall"], abs=1e-12)


def test_point_estimates_are_the_whole_slice_and_rules_route_their_passes() -> None:
    quality, y = _slice(2_000)
    model = _noisy(quality, 0.5, 1)
    rules = np.round(_noisy(quality, 1.0, 2) * 4) / 4
    passes = rules >= 0.75
    backtest = bootstrap(
        y, [Contender("model", model, 0.6), Contender("rules", rules, None, passes)], n_boot=50
    )
    table = backtest.table.set_index("name")
    assert table.loc["model", "roc_auc"] == roc_auc_score(y, model)
    assert table.loc["model", "routed"] == int((model >= 0.6).sum())
    assert np.isnan(table.loc["rules", "threshold"])
    assert table.loc["rules", "routed"] == int(passes.sum())
    assert table.loc["rules", "accepted_routed"] == int(y[passes].sum())
    assert table.loc["rules", "recall"] == y[passes].sum() / y.sum()
    assert (table["rows"] == 2_000).all()


def test_same_seed_same_backtest_other_seed_other_intervals() -> None:
    quality, y = _slice(1_000)
    contenders = [Contender("model", _noisy(quality, 0.5, 1), 0.5)]
    first, again = bootstrap(y, contenders, seed=7), bootstrap(y, contenders, seed=7)
    other = bootstrap(y, contenders, seed=8)
    pd.testing.assert_frame_equal(first.table, again.table)
    assert first.table["roc_auc_low"].item() != other.table["roc_auc_low"].item()


def test_replicates_missing_an_outcome_are_skipped_and_counted() -> None:
    y = np.array([1, 0, 0, 0, 0, 0])
    p = np.array([0.9, 0.2, 0.3, 0.1, 0.6, 0.4])
    backtest = bootstrap(y, [Contender("model", p, 0.5)], n_boot=300, seed=1)
    one_outcome = sum(np.unique(y[resample(y.size, 1, b)]).size == 1 for b in range(300))
    assert backtest.skipped == one_outcome > 0  # about 0.83 ** 6 = 33% of replicates
    assert backtest.replicates["replicate"].nunique() == 300 - one_outcome
    assert backtest.to_dict()["skipped"] == one_outcome
    row = backtest.row("model")
    assert 0 <= row["roc_auc_low"] <= row["roc_auc_high"] <= 1


def test_a_contender_that_routes_nothing_has_no_routed_rate_and_the_dict_is_json() -> None:
    quality, y = _slice(500)
    p = _noisy(quality, 0.5, 1)
    backtest = bootstrap(y, [Contender("model", p, 0.5), Contender("shy", p, 1.01)], n_boot=50)
    assert np.isnan(backtest.row("shy")["routed_rate"])
    summary = json.loads(json.dumps(backtest.to_dict(), allow_nan=False))
    shy = next(c for c in summary["contenders"] if c["name"] == "shy")
    assert shy["routed_rate"] is None and shy["routed"] == 0
    assert {d["metric"] for d in summary["deltas"]} == {"roc_auc", "routed_rate"}
    assert summary["rows"] == 500 and summary["n_boot"] == 50


@pytest.mark.parametrize(
    ("y", "contenders", "message"),
    [
        ([0, 0, 0], [Contender("m", np.array([0.1, 0.2, 0.3]), 0.5)], "both outcomes"),
        ([0, 1, 2], [Contender("m", np.array([0.1, 0.2, 0.3]), 0.5)], "0/1"),
        ([0, 1, 1], [Contender("m", np.array([0.1, 0.2, 1.3]), 0.5)], r"\[0, 1\]"),
        ([0, 1, 1], [Contender("m", np.array([0.1, 0.2]), 0.5)], "one probability"),
        ([0, 1, 1], [Contender("r", np.array([0.1, 0.2, 0.3]), None)], "threshold or"),
        (
            [0, 1, 1],
            [Contender("m", np.array([0.1, 0.6, 0.7]), 0.5, np.array([False, False, True]))],
            "disagrees",
        ),
        ([0, 1, 1], [Contender("m", np.array([0.1, 0.2, 0.3]), 0.5)] * 2, "unique"),
        ([0, 1, 1], [], "one or more"),
    ],
)
def test_bad_inputs_are_refused(y: list[int], contenders: list[Contender], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap(np.array(y), contenders, n_boot=10)


# --- The gate -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def backtest() -> Backtest:
    """One slice scored by a champion (ROC AUC 0.79), a clearly better challenger (0.83) and a
    clearly worse one (0.72), one ranking exactly like the champion but badly calibrated, one
    worse than the rule criteria (0.64), and the rules themselves (0.66)."""
    quality, y = _slice(5_000, seed=11)
    champion = _noisy(quality, 0.5, 1)
    rules = np.round(_noisy(quality, 1.6, 3) * 4) / 4
    contenders = [
        Contender("champion v3", champion, 0.6),
        Contender("better v4", expit(-1.2 + 1.6 * quality), 0.6),  # the true probability
        Contender("worse v4", _noisy(quality, 1.0, 2), 0.6),
        Contender("weak v4", _noisy(quality, 2.5, 4), 0.6),
        Contender("uncalibrated v4", champion**3, 0.6**3),  # same order, same routed leads
        Contender("rules", rules, None, rules >= 0.5),
    ]
    return bootstrap(y, contenders, n_boot=400, seed=5)


def _routed(backtest: Backtest, name: str) -> tuple[int, int]:
    row = backtest.row(name)
    return int(row["accepted_routed"]), int(row["routed"])


def test_a_clearly_better_challenger_is_promoted(backtest: Backtest) -> None:
    accepted, routed = _routed(backtest, "better v4")
    decision = gate(
        backtest,
        "better v4",
        "champion v3",
        "rules",
        accepted,
        routed,
        gate_rules=GateRules(target=0.75),  # it routes 78% accepted on this synthetic slice
    )
    assert decision.promote
    assert decision.checks == dict.fromkeys(
        ("not_worse_auc", "calibration", "policy_target", "beats_rules"), True
    )
    assert decision.reason.startswith("better v4 is promoted")


def test_a_clearly_worse_challenger_is_not_promoted_and_the_reason_has_the_numbers(
    backtest: Backtest,
) -> None:
    accepted, routed = _routed(backtest, "worse v4")
    decision = gate(backtest, "worse v4", "champion v3", "rules", accepted, routed)
    assert not decision.promote
    assert not decision.checks["not_worse_auc"]
    delta = backtest.delta("worse v4", "champion v3", "roc_auc")
    assert delta["high"] < -0.005  # clearly worse, not a borderline case
    expected = (
        f"ROC AUC {backtest.row('worse v4')['roc_auc']:.4f} vs the champion's "
        f"{backtest.row('champion v3')['roc_auc']:.4f} (champion v3): difference "
        f"{delta['estimate']:+.4f} (95% CI {delta['low']:+.4f} to {delta['high']:+.4f}) "
        "is worse than the margin -0.0050."
    )
    assert expected in decision.reason
    assert decision.reason.startswith("worse v4 is not promoted: not_worse_auc")


def test_a_well_ranked_but_badly_calibrated_challenger_fails_calibration(
    backtest: Backtest,
) -> None:
    accepted, routed = _routed(backtest, "uncalibrated v4")
    decision = gate(
        backtest,
        "uncalibrated v4",
        "champion v3",
        "rules",
        accepted,
        routed,
        gate_rules=GateRules(target=None),
    )
    assert decision.checks == {
        "not_worse_auc": True,  # identical ranking: a difference of exactly 0
        "calibration": False,
        "policy_target": True,
        "beats_rules": True,
    }
    assert not decision.promote
    mine, theirs = backtest.row("uncalibrated v4")["ece"], backtest.row("champion v3")["ece"]
    assert f"ECE {mine:.4f} vs the champion's {theirs:.4f} (champion v3)" in decision.reason
    assert "more than the tolerance +0.0100" in decision.reason


def test_routed_acceptance_below_target_fails_the_policy_on_the_point_rate(
    backtest: Backtest,
) -> None:
    below = gate(backtest, "better v4", "champion v3", "rules", 85, 100)
    assert not below.promote and not below.checks["policy_target"]
    bound = wilson_lower(85, 100, 0.95)
    assert f"Routed acceptance 85.0% (85 of 100 routed leads; Wilson lower bound {bound:.1%}" in (
        below.reason
    )
    assert "is below the 90% target" in below.reason
    # Exactly on target passes although the Wilson bound (0.84) is below it: no double counting.
    on_target = gate(backtest, "better v4", "champion v3", "rules", 90, 100)
    assert on_target.checks["policy_target"] and on_target.promote
    nothing = gate(backtest, "better v4", "champion v3", "rules", 0, 0)
    assert not nothing.checks["policy_target"]


def test_the_first_model_skips_the_champion_comparisons(backtest: Backtest) -> None:
    decision = gate(backtest, "worse v4", None, "rules", 95, 100)
    assert decision.checks["not_worse_auc"] and decision.checks["calibration"]
    assert decision.promote  # worse than a champion it does not have, better than the rules
    assert "No champion (first model)" in decision.reason


def test_a_challenger_that_does_not_beat_the_rules_is_not_promoted(backtest: Backtest) -> None:
    decision = gate(backtest, "weak v4", None, "rules", 95, 100)
    assert decision.checks == {
        "not_worse_auc": True,
        "calibration": True,
        "policy_target": True,
        "beats_rules": False,
    }
    mine, theirs = backtest.row("weak v4")["roc_auc"], backtest.row("rules")["roc_auc"]
    assert f"ROC AUC {mine:.4f} does not beat the rule criteria's {theirs:.4f}" in decision.reason
    no_rules = gate(backtest, "weak v4", None, None, 95, 100)
    assert no_rules.promote and "No rule criteria given" in no_rules.reason


def test_the_gate_refuses_unknown_names_and_a_different_confidence(backtest: Backtest) -> None:
    with pytest.raises(ValueError, match="no contender 'v9'"):
        gate(backtest, "v9", "champion v3", None, 1, 1)
    with pytest.raises(ValueError, match="rerun bootstrap"):
        gate(backtest, "better v4", "champion v3", None, 1, 1, gate_rules=GateRules(confidence=0.9))
    with pytest.raises(ValueError, match="between 0 and n"):
        gate(backtest, "better v4", "champion v3", None, 5, 3)


def _made_up(delta_low: float, ece: float) -> Backtest:
    """A hand-written backtest: challenger 0.003 below the champion in ROC AUC at the point, with
    the interval's lower end at `delta_low`, and ECE `ece` against the champion's 0.02."""
    table = pd.DataFrame(
        {"name": ["champion", "challenger"], "roc_auc": [0.800, 0.797], "ece": [0.02, ece]}
    )
    deltas = pd.DataFrame(
        [
            {
                "name": "challenger",
                "versus": "champion",
                "metric": "roc_auc",
                "estimate": -0.003,
                "low": delta_low,
                "high": 0.001,
            }
        ]
    )
    return Backtest(table, deltas, 1000, 0.95, 10_000, 0, 0, pd.DataFrame())


@pytest.mark.parametrize(
    ("delta_low", "passes"), [(-0.0049, True), (-0.005, True), (-0.0051, False), (-0.007, False)]
)
def test_not_worse_reads_the_lower_end_of_the_interval_not_the_point(
    delta_low: float, passes: bool
) -> None:
    """The point difference (-0.003) is inside the margin every time; only the interval's lower
    end decides."""
    decision = gate(_made_up(delta_low, 0.02), "challenger", "champion", None, 95, 100)
    assert decision.checks["not_worse_auc"] is passes


@pytest.mark.parametrize(("ece", "passes"), [(0.025, True), (0.0299, True), (0.0301, False)])
def test_calibration_allows_the_tolerance_and_no_more(ece: float, passes: bool) -> None:
    decision = gate(_made_up(-0.004, ece), "challenger", "champion", None, 95, 100)
    assert decision.checks["calibration"] is passes
