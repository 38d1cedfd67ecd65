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


def tiers(p_accept: np.ndarray) -> np.ndarray:
    bands = np.array([low for _, low in TIERS])
    names = np.array([name for name, _ in TIERS])
    return names[np.argmax(p_accept[:, None] >= bands[None, :], axis=1)]


def routes(p_accept: np.ndarray, threshold: float) -> np.ndarray:
    return np.where(p_accept >= threshold, "sales", "nurture")


def disagreements(rule_pass: np.ndarray, tier: np.ndarray) -> np.ndarray:
    """Rules pass but the model puts the lead in the bottom tier, or the reverse."""
    return (rule_pass & (tier == "D")) | (~rule_pass & (tier == "A"))
