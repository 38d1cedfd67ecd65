"""Registration's own decisions (the gate's checks are tested in tests/test_backtest.py)."""

from __future__ import annotations

from pipeline.register import Champion
from pipeline.run import _gate


def test_a_champion_that_cannot_score_the_slice_is_not_replaced_blindly() -> None:
    champion = Champion("3", None, 0.8, "missing columns ['region']")
    promote, reason = _gate(record=None, champion=champion)  # decided before any scoring
    assert promote is False
    assert "champion v3 could not be scored" in reason and "missing columns" in reason
    assert "sal evaluate" in reason
