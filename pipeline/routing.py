"""Training stage: choose the routing policy on the validation slice, check it on the test slice.

The threshold is chosen on the validation leads (held out from fitting), then applied unchanged to
the test leads, which are later in time and which the choice never saw: what the policy promised
against what it delivered. The rule criteria's pass/fail is measured on both slices beside it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from models.policy import (
    RoutingPolicy,
    acceptance_rate_policy,
    capacity_policy,
    outcome_at,
    rules_outcome,
    threshold_curve,
    volume_per_period,
)
from pipeline.config import RoutingConfig


class RoutingError(ValueError):
    """The routing policy cannot be chosen as configured (e.g. capacity mode without dates)."""


@dataclass(frozen=True)
class Held:
    """One held-out slice as the policy sees it."""

    p_accept: np.ndarray
    accepted: np.ndarray
    rule_pass: np.ndarray
    timestamps: pd.Series | None  # for capacity mode's volume per period


@dataclass(frozen=True)
class RoutingEvidence:
    """The chosen policy, the curve it was chosen on, and how it and the rules did."""

    policy: RoutingPolicy
    curve: pd.DataFrame  # validation slice: threshold vs acceptance rate / bound / coverage
    later: dict[str, Any]  # the policy's threshold on the test slice
    rules_valid: dict[str, Any]
    rules_later: dict[str, Any]

    def to_dict(self) -> dict[str, Any]:
        return {
            "policy": self.policy.to_dict(),
            "later_slice": self.later,
            "rules_on_validation": self.rules_valid,
            "rules_on_later_slice": self.rules_later,
        }

    def metrics(self) -> dict[str, float]:
        """Flat numbers for MLflow (None, e.g. a rate of nothing routed, left out)."""
        pairs = {
            "policy_threshold": self.policy.threshold,
            "policy_promised_rate": self.policy.promised_rate,
            "policy_valid_rate": self.policy.observed_rate,
            "policy_valid_coverage": self.policy.coverage,
            "policy_valid_recall": self.policy.recall,
            "policy_met": float(self.policy.met),
            **{f"policy_test_{k}": v for k, v in self.later.items()},
            **{f"rules_valid_{k}": v for k, v in self.rules_valid.items()},
            **{f"rules_test_{k}": v for k, v in self.rules_later.items()},
        }
        return {k: float(v) for k, v in pairs.items() if v is not None}


def choose_routing(config: RoutingConfig, valid: Held, test: Held) -> RoutingEvidence:
    """The policy the config asks for, chosen on `valid` and measured on `test`."""
    check = {"confidence": config.confidence, "bound": config.bound}
    policy = _choose(config, valid, check)
    return RoutingEvidence(
        policy=policy,
        curve=threshold_curve(valid.p_accept, valid.accepted, **check),
        later=outcome_at(policy.threshold, test.p_accept, test.accepted, **check),
        rules_valid=rules_outcome(valid.rule_pass, valid.accepted, **check),
        rules_later=rules_outcome(test.rule_pass, test.accepted, **check),
    )


def _choose(config: RoutingConfig, valid: Held, common: dict[str, Any]) -> RoutingPolicy:
    if config.mode == "acceptance_rate":
        return acceptance_rate_policy(valid.p_accept, valid.accepted, config.target, **common)
    if valid.timestamps is None:
        raise RoutingError(
            "routing mode 'capacity' needs MQL dates to know the volume per "
            f"{config.period}; this spec has no timestamp column (use mode: acceptance_rate)"
        )
    assert config.capacity is not None  # RoutingConfig checks it
    return capacity_policy(
        valid.p_accept,
        valid.accepted,
        config.capacity,
        config.period,
        volume_per_period=volume_per_period(valid.timestamps, config.period),
        **common,
    )


COMPARISON_COLUMNS = ("share routed", "acceptance rate", "lower bound", "recall")


def comparison(routing: dict[str, Any]) -> list[tuple[str, float | None, ...]]:
    """Model and rules side by side, on the validation and the later slice: who routes, share
    routed, acceptance rate, its lower bound, recall. From `RoutingEvidence.to_dict()`, the form
    a run's summary carries, so the terminal and the report show the same rows."""
    policy = routing["policy"]
    chosen = {
        "coverage": policy["coverage"],
        "acceptance_rate": policy["observed_rate"],
        "lower_bound": policy["promised_rate"],
        "recall": policy["recall"],
    }
    rows = (
        ("model, validation (chosen)", chosen),
        ("model, later test slice", routing["later_slice"]),
        ("rules pass, validation", routing["rules_on_validation"]),
        ("rules pass, later slice", routing["rules_on_later_slice"]),
    )
    keys = ("coverage", "acceptance_rate", "lower_bound", "recall")
    return [(name, *(figures[k] for k in keys)) for name, figures in rows]
