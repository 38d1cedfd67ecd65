"""Evaluation figures, drawn with matplotlib's object API (no pyplot state, no GUI backend)."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from sklearn.calibration import calibration_curve
from sklearn.metrics import precision_recall_curve, roc_curve

from models.profile import SCORE_EDGES
from pipeline.monitor import PSI_ALARM, PSI_WARN

# PSI band colours: stable, moderate shift, major shift (bands from `pipeline.monitor`).
PSI_COLOURS = {"stable": "#4c9f70", "moderate": "#e0a526", "major": "#c8553d"}
# Score histograms use fixed 0.1-wide bins on [0, 1] so shares are comparable across runs.
SCORE_BINS = np.array([0.0, *SCORE_EDGES, 1.0])  # the training profile's score bins


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


def _axes(
    title: str,
    xlabel: str,
    ylabel: str,
    *,
    unit_square: bool = True,
    size: tuple[float, float] = (6, 5),
) -> tuple[Figure, Axes]:
    """A gridded figure; on the unit square unless the quantity has its own range (lift,
    volume, score shares)."""
    fig = Figure(figsize=size)
    ax = fig.add_subplot()
    ax.set(title=title, xlabel=xlabel, ylabel=ylabel)
    if unit_square:
        ax.set(xlim=(0, 1), ylim=(0, 1.02))
    ax.grid(alpha=0.3)
    return fig, ax


def threshold_figure(curve: pd.DataFrame, chosen: float, target: float | None) -> Figure:
    """What each routing threshold does (a `models.policy.threshold_curve` frame), with the
    chosen threshold marked and, in acceptance-rate mode, the target acceptance rate."""
    fig, ax = _axes(
        "Routing threshold (held-out slice)",
        "threshold on calibrated P(accept)",
        "share",
        size=(7, 5),
    )
    x = curve["threshold"].to_numpy()
    # Routing is p >= threshold, so every threshold in (t[i-1], t[i]] routes the same leads as
    # t[i]: steps, not interpolated lines, show what a threshold between two scores does.
    step = {"drawstyle": "steps-pre"}
    (rate,) = ax.plot(x, curve["acceptance_rate"], label="acceptance rate of routed leads", **step)
    ax.plot(
        x, curve["lower_bound"], color=rate.get_color(), linestyle="--", label="lower bound", **step
    )
    ax.plot(x, curve["coverage"], label="coverage (share routed)", **step)
    ax.plot(x, curve["recall"], label="recall (share of accepted leads routed)", **step)
    if target is not None:
        ax.axhline(target, color="grey", linestyle=":", label=f"target {target:.0%}")
    ax.axvline(chosen, color="black", linewidth=1, label=f"chosen threshold {chosen:.3f}")
    ax.annotate(
        _threshold_note(curve, chosen),
        xy=(chosen, 0.5),
        xytext=(6, 0),
        textcoords="offset points",
        fontsize=8,
        va="center",
    )
    ax.legend(loc="lower left", fontsize=8)
    return fig


def lift_figure(y: np.ndarray, scores: dict[str, np.ndarray], bins: int = 10) -> Figure:
    """Lift (acceptance rate in a score group / overall rate) for `bins` equal-sized groups of
    leads, highest scores first; one bar per scorer in each group."""
    y = np.asarray(y, dtype=float)
    if len(y) < bins or not y.any():
        raise ValueError(f"lift needs at least {bins} leads and one accepted lead")
    base = float(y.mean())
    fig, ax = _axes(
        "Lift by score group (test slice)",
        f"score group (1 = highest scoring 1/{bins} of leads)",
        "lift (acceptance rate / base rate)",
        unit_square=False,
        size=(7, 5),
    )
    groups = np.arange(1, bins + 1)
    width = 0.8 / max(len(scores), 1)
    for i, (name, p) in enumerate(scores.items()):
        offset = (i - (len(scores) - 1) / 2) * width
        ax.bar(groups + offset, _group_rates(y, p, bins) / base, width=width, label=name)
    ax.axhline(1.0, color="grey", linestyle=":", label="base rate")
    ax.set_xticks(groups)
    ax.legend(loc="upper right")
    return fig


def psi_figure(psi: pd.Series, title: str = "Population stability index by feature") -> Figure:
    """Horizontal PSI bars per feature, largest at the top, coloured by band (stable below
    PSI_WARN, moderate up to PSI_ALARM, major from PSI_ALARM). Features without a value (no
    leads in the period) are left out."""
    shown = psi.dropna().sort_values()
    fig = Figure(figsize=(7, 0.3 * len(shown) + 1.8))
    ax = fig.add_subplot()
    ax.barh(shown.index.astype(str), shown.to_numpy(), color=[_psi_colour(v) for v in shown])
    ax.axvline(PSI_WARN, color=PSI_COLOURS["moderate"], linestyle="--", linewidth=1)
    ax.axvline(PSI_ALARM, color=PSI_COLOURS["major"], linestyle="--", linewidth=1)
    ax.set(title=title, xlabel="PSI against the training profile")
    ax.grid(axis="x", alpha=0.3)
    ax.legend(
        handles=[
            Patch(color=PSI_COLOURS["stable"], label=f"stable (< {PSI_WARN:g})"),
            Patch(color=PSI_COLOURS["moderate"], label=f"moderate ({PSI_WARN:g}-{PSI_ALARM:g})"),
            Patch(color=PSI_COLOURS["major"], label=f"major (>= {PSI_ALARM:g})"),
        ],
        loc="lower right",
        fontsize=8,
    )
    fig.tight_layout()
    return fig


def acceptance_over_time_figure(periods: pd.DataFrame, target: float) -> Figure:
    """Realised acceptance rate of routed leads per period (`pipeline.monitor` periods frame)
    against the target, with its 95% upper bound and the model's expected rate when present,
    and lead volume as bars on a secondary axis."""
    fig, ax = _axes(
        "Acceptance of routed leads over time",
        "period",
        "acceptance rate (decided leads)",
        unit_square=False,
        size=(8, 5),
    )
    x = np.arange(len(periods))
    volume = ax.twinx()
    volume.bar(x, periods["volume"], color="lightgrey", alpha=0.6, label="leads scored")
    volume.set_ylabel("leads scored")
    # Draw the rates over the bars: the twin axis is created on top, so lift the main one.
    ax.set_zorder(volume.get_zorder() + 1)
    ax.patch.set_visible(False)
    _plot_finite(ax, x, periods["realised_rate"], marker="o", label="realised rate")
    if "realised_upper" in periods:
        _plot_finite(
            ax, x, periods["realised_upper"], marker="v", linestyle="--", label="95% upper bound"
        )
    if "expected_rate" in periods:
        _plot_finite(ax, x, periods["expected_rate"], linestyle=":", label="expected (model)")
    ax.axhline(target, color="#c8553d", linewidth=1, label=f"target {target:.0%}")
    ax.set(ylim=(0, 1.02), xticks=x, xlim=(-0.6, len(x) - 0.4))
    # Weekly period labels read "start/end"; the start date is enough to place a week.
    ax.set_xticklabels([str(p).split("/")[0] for p in periods["period"]], rotation=45, ha="right")
    lines, labels = ax.get_legend_handles_labels()
    bars, bar_labels = volume.get_legend_handles_labels()
    ax.legend(lines + bars, labels + bar_labels, loc="lower left", fontsize=8)
    fig.tight_layout()
    return fig


def score_distribution_figure(
    reference: np.ndarray, current: dict[str, np.ndarray], reference_label: str = "reference"
) -> Figure:
    """Share of leads per 0.1-wide P(accept) bin: the reference (e.g. training) distribution
    filled, each current one as an outline, so a shift shows as outlines leaving the fill."""
    fig, ax = _axes(
        "Score distribution", "P(accept)", "share of leads", unit_square=False, size=(7, 5)
    )
    ax.stairs(_shares(reference), SCORE_BINS, fill=True, color="lightgrey", label=reference_label)
    for name, scores in current.items():
        ax.stairs(_shares(scores), SCORE_BINS, linewidth=1.5, label=name)
    ax.set_xlim(0, 1)
    ax.set_xticks(SCORE_BINS)
    ax.legend(loc="best")  # the mass can sit anywhere on [0, 1]
    return fig


def bootstrap_figure(
    intervals: pd.DataFrame,
    title: str = "Bootstrap confidence intervals",
    xlabel: str = "estimate",
) -> Figure:
    """Dot-and-whisker plot of point estimates with their intervals (columns name, estimate,
    low, high), one row per name, first row on top."""
    estimate = intervals["estimate"].to_numpy(float)
    low, high = intervals["low"].to_numpy(float), intervals["high"].to_numpy(float)
    if np.any(low > estimate) or np.any(high < estimate):
        raise ValueError("every interval must contain its estimate (low <= estimate <= high)")
    fig = Figure(figsize=(7, 0.5 * len(intervals) + 1.5))
    ax = fig.add_subplot()
    y = np.arange(len(intervals))
    ax.errorbar(estimate, y, xerr=[estimate - low, high - estimate], fmt="o", capsize=4)
    for yi, (e, lo, hi) in enumerate(zip(estimate, low, high, strict=True)):
        ax.annotate(
            f"{e:.3f} [{lo:.3f}, {hi:.3f}]",
            xy=(hi, yi),
            xytext=(6, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(y, intervals["name"].astype(str))
    ax.invert_yaxis()
    ax.margins(x=0.25)  # room for the annotations right of the whiskers
    ax.set(title=title, xlabel=xlabel)
    ax.grid(axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


def _threshold_note(curve: pd.DataFrame, chosen: float) -> str:
    # Routing p >= chosen routes exactly the leads of the first curve row at or above it.
    at = curve[curve["threshold"] >= chosen]
    if at.empty:
        return f"threshold {chosen:.3f}: no lead routed"
    row = at.iloc[0]
    return (
        f"threshold {chosen:.3f}\n{row['acceptance_rate']:.0%} accepted "
        f"(bound {row['lower_bound']:.0%})\n{row['coverage']:.0%} of leads routed"
    )


def _group_rates(y: np.ndarray, p: np.ndarray, bins: int) -> np.ndarray:
    # Equal-count groups by rank rather than quantile edges: tied scores (common with rules)
    # would otherwise collapse groups. Ties at a boundary split in input order (stable sort).
    order = np.argsort(-np.asarray(p), kind="stable")
    return np.array([np.mean(y[g]) for g in np.array_split(order, bins)])


def _psi_colour(value: float) -> str:
    if value >= PSI_ALARM:
        return PSI_COLOURS["major"]
    return PSI_COLOURS["moderate"] if value >= PSI_WARN else PSI_COLOURS["stable"]


def _plot_finite(ax: Axes, x: np.ndarray, values: pd.Series, **style: object) -> None:
    # Periods without decided leads have no rate; plot the others rather than break the line.
    v = values.to_numpy(dtype=float)
    keep = np.isfinite(v)
    ax.plot(x[keep], v[keep], **style)


def _shares(scores: np.ndarray) -> np.ndarray:
    counts, _ = np.histogram(np.asarray(scores, float), bins=SCORE_BINS)
    return counts / max(len(scores), 1)
