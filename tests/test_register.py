"""The promotion gate, both ways, as a pure decision."""

from __future__ import annotations

import pytest

from pipeline.config import GateConfig
from pipeline.register import Champion, decide

GATE = GateConfig(min_gain_over_rules=0.0, champion_margin=0.002)


@pytest.mark.parametrize(
    ("candidate", "rules", "champion", "moves", "reason"),
    [
        (0.80, 0.72, None, True, "first model"),
        (0.70, 0.72, None, False, "does not beat the rule criteria"),
        (0.72, 0.72, None, False, "does not beat the rule criteria"),
        (0.81, 0.72, Champion("3", 0.80), True, "champion v3 (+0.0100"),
        (0.799, 0.72, Champion("3", 0.80), True, "within 0.002"),
        (0.79, 0.72, Champion("3", 0.80), False, "worse than champion v3"),
        (0.85, 0.72, Champion("3", None, "schema differs"), False, "could not be scored"),
        (float("nan"), 0.72, None, False, "does not beat the rule criteria"),
    ],
)
def test_gate(candidate, rules, champion, moves, reason) -> None:
    moved, why = decide(candidate, rules, champion, GATE)
    assert moved is moves and reason in why


def test_gate_respects_required_gain_over_rules() -> None:
    strict = GateConfig(min_gain_over_rules=0.05, champion_margin=0.002)
    assert decide(0.76, 0.72, None, strict)[0] is False
    assert decide(0.78, 0.72, None, strict)[0] is True
