"""The routing policy: which calibrated P(accept) sends an MQL to sales, and what that promises.

Marketing routes a lead to sales when its calibrated P(accept) >= a threshold (see
`models.decision.routes`); everything else goes to nurture. The threshold is chosen at training
time on a held-out slice (calibrated probabilities and 0/1 outcomes the model never trained on)
and stored with the model version as tags (`RoutingPolicy.tags`, read back as
`routing_threshold` by `models.registry`).

Two ways to choose it:

- **Acceptance-rate mode** (`acceptance_rate_policy`): sales asks that at least, say, 90% of the
  leads it receives be acceptable. We pick the lowest threshold (the most leads routed) whose
  routed set has a *lower confidence bound* on its acceptance rate >= the target. The point
  estimate would overpromise: on a finite slice the cut is chosen where the observed rate happens
  to look good, and new leads regress towards the true rate. A one-sided lower bound at 95%
  confidence only claims what the held-out evidence supports, so 10 accepted out of 10 does not
  buy a 90% promise (its Wilson bound is 0.79). The bound speaks for leads like the slice's: it
  does not cover drift, which is why `outcome_at` re-checks a stored threshold on a later slice.
- **Capacity mode** (`capacity_policy`): sales can work N leads a day or week; route the
  highest-scored share that fits, and report what acceptance to expect.

When no threshold meets the target the policy still exists (the best achievable one) but says so
(`met=False`, and a note a marketer can read), so a registration never silently promises what
the model cannot deliver.

Routing is one yes/no cut. The A-D tiers reps see (A >= 0.8, B >= 0.6, C >= 0.4, D below) are a
separate, fixed banding defined in `models.decision.TIERS`; this module does not change them.

Both bounds are one-sided: Wilson uses z = norm.ppf(confidence); Clopper-Pearson uses the
beta quantile beta.ppf(1 - confidence, k, n - k + 1). Clopper-Pearson is exact (never below its
nominal coverage) and more conservative; Wilson is the default because it is accurate at these
sample sizes and cheap: Clopper-Pearson costs ~7 µs per distinct score at large n, seconds for
a million distinct scores, where Wilson takes milliseconds.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any, Literal

import numpy as np
import numpy.typing as npt
import pandas as pd

Bound = Literal["wilson", "clopper_pearson"]
Mode = Literal["acceptance_rate", "capacity"]
Period = Literal["day", "week"]

# What sales usually asks of the leads it receives (a healthy SAL rate of routed MQLs).
DEFAULT_ACCEPTANCE_TARGET = 0.90
_PERIODS = {"day": pd.Timedelta(days=1), "week": pd.Timedelta(weeks=1)}
# Routed-per-period vs capacity is a float comparison; don't let rounding drop an exact fit.
_FIT_TOLERANCE = 1e-9


# --- Lower confidence bounds --------------------------------------------------------------------


def wilson_lower(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> np.ndarray | float:
    """One-sided Wilson score lower bound on a binomial proportion (0 where n is 0).

    Vectorised over successes and n (broadcast); a float for scalar inputs. The bound is the p
    at which the observed proportion sits exactly z = norm.ppf(confidence) standard errors above.
    """
    k, trials = _counts(successes, n)
    z2 = _z(confidence) ** 2
    safe_n = np.maximum(trials, 1.0)
    phat = k / safe_n
    centre = phat + z2 / (2 * safe_n)
    spread = np.sqrt(z2 * phat * (1 - phat) / safe_n + z2 * z2 / (4 * safe_n**2))
    lower = np.clip((centre - spread) / (1 + z2 / safe_n), 0.0, 1.0)
    return _scalar_or_array(np.where(k > 0, lower, 0.0))


def wilson_upper(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> np.ndarray | float:
    """One-sided Wilson score upper bound (1 where n is 0): by the interval's symmetry, one minus
    the lower bound on the failures' proportion."""
    k, trials = _counts(successes, n)
    return _scalar_or_array(1.0 - np.asarray(wilson_lower(trials - k, trials, confidence)))


def clopper_pearson_lower(
    successes: npt.ArrayLike, n: npt.ArrayLike, confidence: float = 0.95
) -> np.ndarray | float:
    """One-sided Clopper-Pearson (exact) lower bound: beta.ppf(1 - confidence, k, n - k + 1).

    0 where k is 0 (including n = 0). Vectorised like `wilson_lower`.
    """
    k, trials = _counts(successes, n)
    check_confidence(confidence)
    from scipy.stats import beta  # ~0.9 s to import: only where a bound is computed

    # beta.ppf needs a > 0; k = 0 rows are replaced by 0 below, so any valid a will do there.
    lower = beta.ppf(1 - confidence, np.maximum(k, 1.0), trials - k + 1)
    return _scalar_or_array(np.where(k > 0, lower, 0.0))


_BOUNDS: dict[str, Callable[..., np.ndarray | float]] = {
    "wilson": wilson_lower,
    "clopper_pearson": clopper_pearson_lower,
}


def _counts(successes: npt.ArrayLike, n: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    k, trials = np.broadcast_arrays(np.asarray(successes, float), np.asarray(n, float))
    if np.any(k < 0) or np.any(k > trials):
        raise ValueError("successes must lie between 0 and n")
    return k, trials


def check_confidence(confidence: float) -> None:
    if not 0.5 <= confidence < 1:
        raise ValueError(f"confidence must be in [0.5, 1), got {confidence}")


def _z(confidence: float) -> float:
    from scipy.stats import norm  # ~0.9 s to import: only where a bound is computed

    check_confidence(confidence)
    return float(norm.ppf(confidence))


def _scalar_or_array(values: np.ndarray) -> np.ndarray | float:
    out = np.asarray(values, dtype=float)
    return float(out) if out.ndim == 0 else out


def _lower_bound(bound: str) -> Callable[..., np.ndarray | float]:
    if bound not in _BOUNDS:
        raise ValueError(f"bound must be one of {sorted(_BOUNDS)}, got {bound!r}")
    return _BOUNDS[bound]


# --- The curve every policy is read from --------------------------------------------------------


def threshold_curve(
    p: npt.ArrayLike,
    accepted: npt.ArrayLike,
    confidence: float = 0.95,
    bound: Bound = "wilson",
) -> pd.DataFrame:
    """What routing `p >= threshold` does on a labelled slice, for every distinct score.

    One row per distinct value of p (ties are routed together, so the only cuts are between
    distinct scores), sorted by threshold ascending: threshold, routed, coverage (routed / all),
    accepted_routed, acceptance_rate (point), lower_bound (one-sided, `bound` at `confidence`),
    recall (accepted routed / all accepted; NaN if the slice has no accepted lead).
    One descending sort and a cumulative sum: O(n log n).
    """
    scores, outcome = _check_scores(p, accepted)
    order = np.argsort(-scores, kind="stable")
    desc = scores[order]
    accepted_cum = np.cumsum(outcome[order])
    # The last position of each tie group, highest score first; reversed to ascending thresholds.
    ends = np.flatnonzero(np.append(desc[1:] != desc[:-1], True))[::-1]
    routed = ends + 1
    accepted_routed = accepted_cum[ends]
    total_accepted = accepted_cum[-1]
    return pd.DataFrame(
        {
            "threshold": desc[ends],
            "routed": routed,
            "coverage": routed / len(scores),
            "accepted_routed": accepted_routed,
            "acceptance_rate": accepted_routed / routed,
            "lower_bound": _lower_bound(bound)(accepted_routed, routed, confidence),
            "recall": accepted_routed / total_accepted if total_accepted else np.nan,
        }
    )


def _check_scores(p: npt.ArrayLike, accepted: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(p, dtype=float).ravel()
    outcome = _binary(accepted, "accepted")
    if scores.size == 0:
        raise ValueError("no leads: p and accepted are empty")
    if scores.size != outcome.size:
        raise ValueError(f"p has {scores.size} rows but accepted has {outcome.size}")
    if not np.all((scores >= 0) & (scores <= 1)):
        raise ValueError("p must be probabilities in [0, 1] with no missing values")
    return scores, outcome


def _binary(values: npt.ArrayLike, name: str) -> np.ndarray:
    array = np.asarray(values).ravel()
    if array.dtype != bool and not np.all((array == 0) | (array == 1)):
        raise ValueError(f"{name} must be 0/1 or boolean")
    return array.astype(np.int64)


def _check_two_classes(p: npt.ArrayLike, accepted: npt.ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    scores, outcome = _check_scores(p, accepted)
    if outcome.min() == outcome.max():
        only = "accepted" if outcome[0] else "rejected"
        raise ValueError(
            f"every held-out lead was {only}: a routing policy needs both outcomes to learn from"
        )
    return scores, outcome


# --- The stored policy --------------------------------------------------------------------------


@dataclass(frozen=True)
class RoutingPolicy:
    """A routing threshold with the evidence behind it, stored with the model version.

    met: the promise holds on the slice (acceptance-rate mode: the lower bound reaches the
    target; capacity mode: the routed leads fill sales' capacity without exceeding it).
    promised_rate: acceptance-rate mode, the lower bound at the threshold; capacity mode, the
    expected acceptance rate (mean calibrated p of the routed leads).
    observed_rate, coverage, recall, routed: what the threshold did on the `rows` held-out leads.
    note: one plain-English sentence for the marketer who reads the registry.
    """

    mode: Mode
    threshold: float
    target: float | None
    confidence: float
    bound: Bound
    met: bool
    promised_rate: float
    observed_rate: float
    coverage: float
    recall: float
    routed: int
    rows: int
    note: str
    capacity: int | None = None
    capacity_period: Period | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("acceptance_rate", "capacity"):
            raise ValueError(f"unknown routing mode {self.mode!r}")
        _lower_bound(self.bound)

    @property
    def acceptance_target(self) -> float | None:
        """The acceptance rate routed leads were promised to reach (capacity mode sets none)."""
        return self.target if self.mode == "acceptance_rate" else None

    def to_dict(self) -> dict[str, Any]:
        """Plain Python values only, so it can be written as JSON."""
        return {key: _plain(value) for key, value in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoutingPolicy:
        return cls(**data)

    def tags(self) -> dict[str, str]:
        """MLflow model-version tags; the threshold keeps full precision (str(float) round-trips).

        routing_target is the acceptance target ("0.9") or the capacity ("200/week").
        """
        target = (
            f"{self.capacity}/{self.capacity_period}"
            if self.mode == "capacity"
            else str(self.target)
        )
        return {
            "routing_threshold": str(self.threshold),
            "routing_mode": self.mode,
            "routing_target": target,
            "routing_met": str(self.met).lower(),
            "routing_promised_rate": f"{self.promised_rate:.4f}",
            "routing_coverage": f"{self.coverage:.4f}",
            "routing_recall": f"{self.recall:.4f}",
        }


def _measured(figures: Any) -> dict[str, Any]:
    """What a threshold did on the slice (a curve row or an `_outcome` dict), as policy fields."""
    return {
        "observed_rate": float(figures["acceptance_rate"]),
        "coverage": float(figures["coverage"]),
        "recall": float(figures["recall"]),
        "routed": int(figures["routed"]),
    }


def _plain(value: Any) -> Any:
    return value.item() if isinstance(value, np.generic) else value


# --- Acceptance-rate mode -----------------------------------------------------------------------


def acceptance_rate_policy(
    p: npt.ArrayLike,
    accepted: npt.ArrayLike,
    target: float = DEFAULT_ACCEPTANCE_TARGET,
    confidence: float = 0.95,
    bound: Bound = "wilson",
) -> RoutingPolicy:
    """The lowest threshold (most leads routed) whose routed set's lower bound reaches `target`.

    The search takes the lowest such threshold even if some higher one falls short: a promise is
    about the routed set as a whole. If none reaches the target, the threshold with the highest
    lower bound (the lowest of those, if tied) is returned with met=False and a note saying so.
    """
    if not 0 < target < 1:
        raise ValueError(f"target must be a rate in (0, 1), got {target}")
    scores, outcome = _check_two_classes(p, accepted)
    curve = threshold_curve(scores, outcome, confidence, bound)
    lower = curve["lower_bound"].to_numpy()
    meeting = np.flatnonzero(lower >= target)
    met = meeting.size > 0
    row = curve.iloc[int(meeting[0]) if met else int(np.argmax(lower))]
    note = (
        _met_note(row, len(scores), confidence)
        if met
        else _unmet_note(row, len(scores), target, confidence)
    )
    return RoutingPolicy(
        mode="acceptance_rate",
        threshold=float(row["threshold"]),
        target=float(target),
        confidence=float(confidence),
        bound=bound,
        met=met,
        promised_rate=float(row["lower_bound"]),
        **_measured(row),
        rows=len(scores),
        note=note,
    )


def _met_note(row: pd.Series, rows: int, confidence: float) -> str:
    return (
        f"Routes {_pct(row['coverage'])} of MQLs; on {rows:,} held-out leads "
        f"{_pct(row['acceptance_rate'], 1)} of routed leads were accepted (at least "
        f"{_pct_at_least(row['lower_bound'])} at {level(confidence)} confidence), reaching "
        f"{_pct(row['recall'])} of all leads sales accepted."
    )


def _unmet_note(row: pd.Series, rows: int, target: float, confidence: float) -> str:
    return (
        f"No threshold meets {level(target)} acceptance at {level(confidence)} confidence on "
        f"{rows:,} held-out leads; the best achievable is {_pct_at_least(row['lower_bound'])} "
        f"(lower bound) routing {_pct(row['coverage'])} of MQLs, so this promise is not met."
    )


# --- Capacity mode ------------------------------------------------------------------------------


def volume_per_period(timestamps: pd.Series, period: Period = "week") -> float:
    """MQLs per day or week on a slice: all rows / periods between the first and last timestamp."""
    length = _period_length(period)
    times = pd.to_datetime(timestamps).dropna()
    span = times.max() - times.min() if len(times) else pd.Timedelta(0)
    if span <= pd.Timedelta(0):
        raise ValueError("timestamps need at least two distinct times to measure a volume")
    return len(timestamps) / (span / length)


def capacity_policy(
    p: npt.ArrayLike,
    accepted: npt.ArrayLike,
    capacity: int,
    period: Period = "week",
    *,
    volume_per_period: float,
    confidence: float = 0.95,
    bound: Bound = "wilson",
) -> RoutingPolicy:
    """Route the highest-scored leads sales can work: `capacity` per period of `volume_per_period`.

    The threshold is the smallest distinct score whose expected routed leads per period
    (coverage x volume) stay within capacity, so a tie group is never split and never pushes
    routing over capacity. Special cases, both with met=False and said so in the note:
    capacity >= volume routes everything (threshold 0: there are not enough MQLs to fill it);
    a top tie group alone over capacity routes just that group (the smallest possible overflow).
    """
    _period_length(period)
    if capacity < 1 or volume_per_period <= 0:
        raise ValueError("capacity must be >= 1 lead and volume_per_period > 0")
    scores, outcome = _check_two_classes(p, accepted)
    rows = len(scores)
    if capacity >= volume_per_period:
        threshold, met = 0.0, False
    else:
        curve = threshold_curve(scores, outcome)  # only its routed counts matter here
        fits = np.flatnonzero(
            curve["routed"].to_numpy() * volume_per_period <= capacity * rows * (1 + _FIT_TOLERANCE)
        )
        met = fits.size > 0
        threshold = float(curve["threshold"].iloc[int(fits[0]) if met else -1])
    routed_mask = scores >= threshold
    result = _outcome(routed_mask, outcome, confidence, bound)
    expected = float(scores[routed_mask].mean())
    note = _capacity_note(result, expected, rows, capacity, period, volume_per_period, confidence)
    return RoutingPolicy(
        mode="capacity",
        threshold=threshold,
        target=None,
        confidence=float(confidence),
        bound=bound,
        met=met,
        promised_rate=expected,
        **_measured(result),
        rows=rows,
        note=note,
        capacity=int(capacity),
        capacity_period=period,
    )


def _period_length(period: str) -> pd.Timedelta:
    if period not in _PERIODS:
        raise ValueError(f"period must be one of {sorted(_PERIODS)}, got {period!r}")
    return _PERIODS[period]


def _capacity_note(
    result: dict[str, Any],
    expected: float,
    rows: int,
    capacity: int,
    period: str,
    volume: float,
    confidence: float,
) -> str:
    per_period = result["coverage"] * volume
    if capacity >= volume:
        what = (
            f"Sales can work {capacity:,} leads a {period} but only about {volume:,.0f} MQLs "
            f"arrive, so every MQL is routed (threshold 0)"
        )
    elif per_period > capacity * (1 + _FIT_TOLERANCE):
        what = (
            f"Even the top-scored tie group, about {per_period:,.0f} MQLs a {period}, exceeds "
            f"sales' capacity of {capacity:,}, so only that group is routed"
        )
    else:
        what = (
            f"Routes the top {_pct(result['coverage'])} of MQLs, about {per_period:,.0f} a "
            f"{period} against sales' capacity of {capacity:,}"
        )
    return (
        f"{what}; calibrated scores expect {_pct(expected, 1)} of them to be accepted, and on "
        f"{rows:,} held-out leads {_pct(result['acceptance_rate'], 1)} were (at least "
        f"{_pct_at_least(result['lower_bound'])} at {level(confidence)} confidence), reaching "
        f"{_pct(result['recall'])} of all leads sales accepted."
    )


# --- Checking a threshold (or the rules) on another slice ---------------------------------------


def outcome_at(
    threshold: float,
    p: npt.ArrayLike,
    accepted: npt.ArrayLike,
    confidence: float = 0.95,
    bound: Bound = "wilson",
) -> dict[str, Any]:
    """What routing `p >= threshold` does on a slice, e.g. a later one the policy never saw.

    Keys: routed, coverage, acceptance_rate and recall (None when undefined: nothing routed, or
    no accepted lead), lower_bound (0 when nothing is routed).
    """
    scores, outcome = _check_scores(p, accepted)
    return _outcome(scores >= threshold, outcome, confidence, bound)


def rules_outcome(
    rule_pass: npt.ArrayLike,
    accepted: npt.ArrayLike,
    confidence: float = 0.95,
    bound: Bound = "wilson",
) -> dict[str, Any]:
    """The same figures as `outcome_at` for routing the leads that pass the rule criteria."""
    passed = _binary(rule_pass, "rule_pass").astype(bool)
    outcome = _binary(accepted, "accepted")
    if passed.size == 0 or passed.size != outcome.size:
        raise ValueError("rule_pass and accepted must be non-empty and the same length")
    return _outcome(passed, outcome, confidence, bound)


def _outcome(
    routed_mask: np.ndarray, outcome: np.ndarray, confidence: float, bound: str
) -> dict[str, Any]:
    routed = int(routed_mask.sum())
    accepted_routed = int(outcome[routed_mask].sum())
    total_accepted = int(outcome.sum())
    return {
        "routed": routed,
        "coverage": routed / outcome.size,
        "acceptance_rate": accepted_routed / routed if routed else None,
        "lower_bound": float(_lower_bound(bound)(accepted_routed, routed, confidence)),
        "recall": accepted_routed / total_accepted if total_accepted else None,
    }


# --- Wording ------------------------------------------------------------------------------------


def _pct(share: float, digits: int = 0) -> str:
    """A share as a percentage; a partial share never rounds to "0%" or "100%" (none or all)."""
    text = f"{share:.{digits}%}"
    if 0 < share < 1 and digits < 4 and text in (f"{0:.{digits}%}", f"{1:.{digits}%}"):
        return _pct(share, digits + 1)
    return text


def _pct_at_least(bound: float, digits: int = 1) -> str:
    """A lower bound rounded down, so "at least 90.0%" never overstates a bound of 0.89996."""
    scale = 10 ** (digits + 2)
    # The epsilon keeps 0.9 * 1000 = 899.999... from flooring to 89.9%.
    return f"{math.floor(bound * scale + 1e-9) / scale:.{digits}%}"


def level(share: float) -> str:
    """A setting as given, e.g. 0.9 -> "90%", 0.975 -> "97.5%" (no rounding)."""
    return f"{share * 100:g}%"
