"""From a calibrated probability to what happens to the lead: tier, route and disagreement.

Shared by the API and batch scoring so both decide identically.
"""

from __future__ import annotations

import numpy as np

# Until a model version carries its own routing threshold (tag `routing_threshold`).
DEFAULT_ROUTING_THRESHOLD = 0.5
# Hours sales has to follow up a lead routed to them (the usual SAL agreement: 24-48 h).
DEFAULT_SLA_HOURS = 24

# Calibrated P(accept) bands: A is what sales should call first, D what they will mostly reject.
TIERS = (("A", 0.8), ("B", 0.6), ("C", 0.4), ("D", 0.0))


def tier_of(p_accept: float) -> str:
    """One lead's tier (the hot path's scalar twin of `tiers`)."""
    return next(name for name, low in TIERS if p_accept >= low)


def route_of(p_accept: float, threshold: float) -> str:
    return "sales" if p_accept >= threshold else "nurture"


def disagrees(rule_pass: bool, tier: str) -> bool:
    return (rule_pass and tier == "D") or (not rule_pass and tier == "A")


def tiers(p_accept: np.ndarray) -> np.ndarray:
    bands = np.array([low for _, low in TIERS])
    names = np.array([name for name, _ in TIERS])
    return names[np.argmax(p_accept[:, None] >= bands[None, :], axis=1)]


def routes(p_accept: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(p_accept >= threshold, "sales", "nurture")


def disagreements(rule_pass: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Rules pass but the model puts the lead in the bottom tier, or the reverse."""
    return (rule_pass & (tier == "D")) | (~rule_pass & (tier == "A"))
