"""Metrics for the model and its baselines on the same test slice, overall and by segment.

Every scorer is compared on identical leads: ROC AUC and PR AUC (ranking), Brier and log loss
(probability quality), expected calibration error (ECE, 10 equal-width bins), and what marketing
acts on: the acceptance rate of the top-scored decile and its lift over the base rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score

METRICS = ("roc_auc", "pr_auc", "brier", "log_loss", "ece", "top_decile_rate", "top_decile_lift")
_MIN_SEGMENT_ROWS = 50


@dataclass
class Evaluation:
    """`overall`: one row per scorer; `segments`: one row per scorer x segment column x value."""

    overall: pd.DataFrame
    segments: pd.DataFrame
    base_rate: float
    rows: int

    def metric(self, scorer: str, name: str) -> float:
        return float(self.overall.loc[scorer, name])


def evaluate(
    labels: pd.Series, scores: dict[str, np.ndarray], segments: pd.DataFrame
) -> Evaluation:
    """Score every scorer on the labelled leads; segments with < 50 leads are left out."""
    y = labels.to_numpy(dtype=float)
    overall = pd.DataFrame({name: binary_metrics(y, p) for name, p in scores.items()}).T
    rows = []
    for column in segments.columns:
        values = segments[column].astype(object).where(segments[column].notna(), "(missing)")
        for value, positions in values.groupby(values.to_numpy()).indices.items():
            if len(positions) < _MIN_SEGMENT_ROWS:
                continue
            for name, p in scores.items():
                rows.append(
                    {
                        "scorer": name,
                        "segment": column,
                        "value": str(value),
                        "rows": len(positions),
                        **binary_metrics(y[positions], p[positions]),
                    }
                )
    return Evaluation(
        overall=overall, segments=pd.DataFrame(rows), base_rate=float(y.mean()), rows=len(y)
    )


def binary_metrics(y: np.ndarray, p: np.ndarray) -> dict[str, float]:
    p = np.clip(np.asarray(p, dtype=float), 1e-7, 1 - 1e-7)
    both = len(np.unique(y)) == 2
    rate, lift = top_decile(y, p)
    return {
        "roc_auc": roc_auc_score(y, p) if both else np.nan,
        "pr_auc": average_precision_score(y, p) if both else np.nan,
        "brier": brier_score_loss(y, p),
        "log_loss": log_loss(y, p, labels=[0, 1]),
        "ece": expected_calibration_error(y, p),
        "top_decile_rate": rate,
        "top_decile_lift": lift,
    }


def expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int = 10) -> float:
    """Row-weighted mean |observed rate - mean predicted| over equal-width probability bins."""
    which = np.minimum((p * bins).astype(int), bins - 1)
    error = 0.0
    for b in np.unique(which):
        in_bin = which == b
        error += in_bin.mean() * abs(y[in_bin].mean() - p[in_bin].mean())
    return float(error)


def top_decile(y: np.ndarray, p: np.ndarray) -> tuple[float, float]:
    """Acceptance rate among the 10 % highest-scored leads, and its lift over the base rate."""
    n = max(1, int(np.ceil(len(y) * 0.1)))
    top = np.argsort(-p, kind="stable")[:n]
    rate = float(y[top].mean())
    base = float(y.mean())
    return rate, rate / base if base > 0 else np.nan
