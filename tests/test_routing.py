"""The training stage that chooses the routing policy: modes, the later slice, clear errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from pydantic import ValidationError

from pipeline.config import RoutingConfig
from pipeline.routing import Held, RoutingError, choose_routing


def _held(n: int, seed: int, stamped: bool = True) -> Held:
    rng = np.random.default_rng(seed)
    p = rng.uniform(0, 1, n)
    accepted = (rng.uniform(0, 1, n) < p).astype(int)  # calibrated by construction
    stamps = pd.Series(pd.Timestamp("2026-01-05") + pd.to_timedelta(np.arange(n) * 7, unit="D") / n)
    return Held(p, accepted, rule_pass=p > 0.5, timestamps=stamps if stamped else None)


def test_acceptance_rate_mode_is_chosen_on_validation_and_checked_on_the_later_slice() -> None:
    evidence = choose_routing(RoutingConfig(target=0.9), _held(20_000, 1), _held(20_000, 2))
    policy = evidence.policy
    assert policy.met and policy.promised_rate >= 0.9
    # calibrated scores: routing p >= t accepts about (1 + t) / 2 of them
    assert policy.threshold == pytest.approx(0.8, abs=0.03)
    assert evidence.later["acceptance_rate"] == pytest.approx(0.9, abs=0.02)
    assert evidence.rules_later["coverage"] == pytest.approx(0.5, abs=0.02)
    assert set(evidence.metrics()) >= {"policy_threshold", "policy_test_acceptance_rate"}


def test_capacity_mode_routes_what_sales_can_work() -> None:
    # 20,000 validation leads over one week; sales can work 2,000 a week: the top 10 %
    config = RoutingConfig(mode="capacity", capacity=2_000, period="week")
    evidence = choose_routing(config, _held(20_000, 3), _held(20_000, 4))
    assert evidence.policy.mode == "capacity"
    assert evidence.policy.coverage == pytest.approx(0.1, abs=0.005)
    assert evidence.later["coverage"] == pytest.approx(0.1, abs=0.01)


def test_capacity_mode_needs_dates_and_a_capacity() -> None:
    with pytest.raises(RoutingError, match="needs MQL dates"):
        choose_routing(
            RoutingConfig(mode="capacity", capacity=10), _held(500, 5, False), _held(500, 6)
        )
    with pytest.raises(ValidationError, match="capacity mode needs"):
        RoutingConfig(mode="capacity")
