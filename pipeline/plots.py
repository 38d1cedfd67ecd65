"""Evaluation figures, drawn with matplotlib's object API (no pyplot state, no GUI backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve


def roc_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    fig, ax = _axes("ROC curve (test slice)", "false positive rate", "true positive rate")
    for name, p in scores.items():
        fpr, tpr, _ = roc_curve(y, p)
        ax.plot(fpr, tpr, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="chance")
    ax.legend(loc="lower right")
    return fig


def pr_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    fig, ax = _axes("Precision-recall (test slice)", "recall", "precision (acceptance rate)")
    for name, p in scores.items():
        precision, recall, _ = precision_recall_curve(y, p)
        ax.plot(recall, precision, label=name)
    ax.axhline(y.mean(), color="grey", linestyle=":", label="base rate")
    ax.legend(loc="lower left")
    return fig


def reliability_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    fig, ax = _axes("Reliability (calibration)", "predicted probability", "observed rate")
    for name, p in scores.items():
        observed, predicted = calibration_curve(y, p, n_bins=10, strategy="quantile")
        ax.plot(predicted, observed, marker="o", label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="perfect")
    ax.legend(loc="upper left")
    return fig


def gains_figure(y: np.ndarray, scores: dict[str, np.ndarray]) -> Figure:
    fig, ax = _axes(
        "Cumulative gains",
        "share of leads routed (highest score first)",
        "share of accepted leads reached",
    )
    for name, p in scores.items():
        order = np.argsort(-p, kind="stable")
        reached = np.cumsum(y[order]) / max(y.sum(), 1)
        share = np.arange(1, len(y) + 1) / len(y)
        ax.plot(share, reached, label=name)
    ax.plot([0, 1], [0, 1], color="grey", linestyle=":", label="random")
    ax.legend(loc="lower right")
    return fig


def importance_figure(importance: pd.Series, top: int = 20) -> Figure:
    shown = importance.head(top)[::-1]
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.5))
    ax = fig.add_subplot()
    ax.barh(shown.index, shown.to_numpy())
    ax.set_title("Feature importance (share of total gain, P(accept))")
    ax.set_xlabel("share of gain")
    fig.tight_layout()
    return fig


def _axes(title: str, xlabel: str, ylabel: str):
    fig = Figure(figsize=(6, 5))
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel, xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    return fig, ax
