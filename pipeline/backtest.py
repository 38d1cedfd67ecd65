"""Champion vs challenger vs rule criteria on one recent out-of-time slice, and the promotion gate.

`bootstrap` takes the slice's 0/1 outcomes and, per contender, calibrated P(accept) and the leads
it routes (`p >= threshold`, or the rules' pass/fail), and reports per contender: ROC AUC,
expected calibration error (ECE, `pipeline.evaluate.expected_calibration_error`), routed
acceptance rate (accepted among routed), coverage (share routed) and recall (share of accepted
leads routed), each a point estimate on the whole slice; ROC AUC, ECE and the routed rate also
with a percentile bootstrap interval; and, for every ordered pair of contenders, the paired
difference in ROC AUC and routed rate with its interval. `gate` turns a backtest into a
promotion decision. Loading the slice and scoring it with each model is the caller's job.

What the intervals mean. Models and thresholds are held fixed and the slice's leads are
resampled with replacement, so an interval measures how much a metric moves with *which* leads
happened to land in the slice: sampling noise, not retraining noise, and not drift beyond the
slice. It is the two-sided percentile interval at `confidence`: its lower end alone is a
one-sided bound at (1 + confidence) / 2, 97.5% for 95%.

Paired. Every replicate draws one set of row indices (`resample`) and scores every contender on
it, so a difference is computed within each replicate. Two models are right and wrong on mostly
the same leads; their metrics move together from replicate to replicate and the difference's
variance, var(a) + var(b) - 2 cov(a, b), is much smaller than either alone. Two unpaired
intervals overlapping says little; the paired interval of the difference is the comparison.

Replicates in which one outcome is absent (possible only on tiny slices) have no ROC AUC; they
are skipped for every contender, so all intervals rest on the same replicates, and
`Backtest.skipped` counts them. A replicate that routes no lead has no routed rate; that
interval is taken over the replicates that route some.

Speed. Resampling with replacement is the same as weighting every row by how often it was drawn,
so all metrics come from a replicates x rows matrix of counts: ROC AUC is the Mann-Whitney
statistic from the accepted leads' midranks, read off one ascending sort per contender and a
cumulative sum of the counts (no sort per replicate); ECE and the routing figures are matrix
products with per-bin indicators. 3 contenders x 1000 replicates x 10,000 rows take 0.8-0.95 s
of one core (a loop over sklearn's roc_auc_score alone: ~14 s). BLAS runs single-threaded
here: the products are small, and with two shared cores OpenBLAS's threads waiting on each
other made whole runs 2-10x slower in our measurements.

The gate (`gate`, criteria in `GateRules`), every check on this one slice:

- not_worse_auc: the lower end of the paired interval of (challenger - champion) ROC AUC is
  >= -auc_margin: better, or not worse by more than the margin, at (1 + confidence) / 2
  one-sided confidence. Equivalently the point difference must be >= -auc_margin plus the
  interval's half-width. Why 0.005: retraining on the same data moves ROC AUC by about
  +-0.001-0.002 (the figure we work with; not re-measured here), and a 10,000-lead slice's
  interval for one model's ROC AUC has a half-width of about +-0.008 (+-0.009 measured on
  synthetic slices with ROC AUC 0.81 and 30% accepted), which would hide any regression. The
  paired interval of the difference is much tighter on the same slices: +-0.0016 when the two
  models' scores correlate at 0.99, +-0.003 at 0.96, +-0.006 at 0.86. A refresh as good as the
  champion, differing by retraining noise alone, thus has a lower end around -0.002 to -0.005:
  a margin below that noise (0.002, say) would block most refreshes, while a wider one would
  let through real losses beyond retraining noise (the gate tolerates a point loss of at most
  margin - half-width, 0.002-0.0035 here). Limits, visible in the reason's interval: a model
  that ranks very differently from the champion (correlation ~0.86), or a much smaller slice,
  needs a real gain to pass.
- calibration: challenger ECE <= champion ECE + ece_tolerance (point estimates): routing and
  the tiers read the probabilities themselves, so a better ranking must not come with worse
  calibration.
- policy_target: the challenger's *point* routed acceptance on this slice (routed_accepted /
  routed_n) >= target; its one-sided Wilson lower bound (`models.policy.wilson_lower` at
  `confidence`) is reported, not required. The bound was already applied once, when the
  threshold was chosen on held-out data (`models.policy.acceptance_rate_policy`); requiring it
  again here would count the same uncertainty twice: with 200-500 routed leads the bound
  sits 2-4 points below the realised rate, so a threshold delivering exactly what it promised
  would fail. A realised point rate below the target, though, means the promise failed on this
  slice. No target (None): passes.
- beats_rules: challenger ROC AUC > the rule criteria's (point estimates), when rules are given.

With no champion (the first model) not_worse_auc and calibration pass, and the reason says they
were skipped; without rules beats_rules passes likewise. Promote only when every check passes.
`compare` is the one gate: `sal train` applies it on the run's own test slice, `sal evaluate` on
the most recent out-of-time slice of a labelled file, each with every contender re-scored there.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd
from sklearn.metrics import roc_auc_score
from threadpoolctl import threadpool_limits

from models.policy import (
    DEFAULT_ACCEPTANCE_TARGET,
    check_confidence,
    level,
    outcome_at,
    rules_outcome,
    wilson_lower,
)
from pipeline.config import GateConfig
from pipeline.evaluate import expected_calibration_error

RULES = "rule criteria"  # the rule criteria's name as a contender
INTERVAL_METRICS = ("roc_auc", "ece", "routed_rate")
REPLICATE_METRICS = ("roc_auc", "ece", "routed_rate", "coverage", "recall")
DELTA_METRICS = ("roc_auc", "routed_rate")
_ECE_BINS = 10  # as pipeline.evaluate.expected_calibration_error's default
# Replicates x rows of counts per block: 1.6 MB of float64, so a block and the AUC's few
# temporaries of its size stay in cache; measured 1.6x faster than 16 MB blocks.
_BLOCK_CELLS = 200_000


@dataclass(frozen=True, eq=False)
class Contender:
    """One scorer of the slice: a model version, or the rule criteria.

    p: calibrated P(accept) per lead of the slice (rules: the calibrated rule score).
    threshold: its routing threshold; None for the rules, which pass `routed` instead.
    routed: which leads it routes (booleans); when None, p >= threshold.
    """

    name: str
    p: np.ndarray
    threshold: float | None
    routed: np.ndarray | None = None


@dataclass(frozen=True, eq=False)
class Backtest:
    """What `bootstrap` found on one slice.

    table: one row per contender, in the order given: name, threshold, roc_auc, ece and
    routed_rate each with _low and _high interval ends, coverage, recall, routed, accepted_routed,
    rows. routed_rate is NaN when nothing is routed.
    deltas: one row per ordered pair of contenders and metric in DELTA_METRICS: name, versus,
    metric, estimate (name's point estimate - versus's), low, high.
    replicates: per kept replicate and contender (long format): replicate, name and the
    REPLICATE_METRICS; replicate b resampled the rows `resample(rows, seed, b)`.
    skipped: replicates dropped because one outcome was absent from them.
    """

    table: pd.DataFrame
    deltas: pd.DataFrame
    n_boot: int
    confidence: float
    rows: int
    seed: int
    skipped: int
    replicates: pd.DataFrame

    def row(self, name: str) -> pd.Series:
        """The table's row for contender `name`."""
        found = self.table[self.table["name"] == name]
        if found.empty:
            raise ValueError(f"no contender {name!r} in this backtest: {list(self.table['name'])}")
        return found.iloc[0]

    def delta(self, name: str, versus: str, metric: str) -> pd.Series:
        """The paired difference `name` - `versus` in `metric`: estimate, low, high."""
        for contender in (name, versus):
            self.row(contender)
        deltas = self.deltas
        found = deltas[
            (deltas["name"] == name) & (deltas["versus"] == versus) & (deltas["metric"] == metric)
        ]
        if found.empty:
            raise ValueError(f"no difference in {metric!r}; the deltas cover {DELTA_METRICS}")
        return found.iloc[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able summary (NaN as None); the replicates are left out."""
        return {
            "rows": self.rows,
            "n_boot": self.n_boot,
            "skipped": self.skipped,
            "confidence": self.confidence,
            "seed": self.seed,
            "contenders": _records(self.table),
            "deltas": _records(self.deltas),
        }


_DEFAULT_GATE = GateConfig()  # train.yaml's `gate` defaults, the one place they are set


@dataclass(frozen=True)
class GateRules:
    """Promotion criteria; see the module docstring for what each means and why."""

    auc_margin: float = _DEFAULT_GATE.auc_margin
    ece_tolerance: float = _DEFAULT_GATE.ece_tolerance
    target: float | None = DEFAULT_ACCEPTANCE_TARGET
    confidence: float = _DEFAULT_GATE.confidence

    @classmethod
    def from_config(cls, config: GateConfig, target: float | None) -> GateRules:
        """The margins from train.yaml's `gate`, with the challenger's acceptance target."""
        return cls(config.auc_margin, config.ece_tolerance, target, config.confidence)

    def __post_init__(self) -> None:
        if self.auc_margin < 0 or self.ece_tolerance < 0:
            raise ValueError("auc_margin and ece_tolerance must be >= 0")
        if self.target is not None and not 0 < self.target <= 1:
            raise ValueError(f"target must be in (0, 1] or None, got {self.target}")
        check_confidence(self.confidence)


@dataclass(frozen=True)
class Decision:
    """promote: every check passed. reason: plain sentences with the numbers behind each check,
    failures first. checks: check name -> passed (skipped checks pass)."""

    promote: bool
    reason: str
    checks: dict[str, bool]


# --- The bootstrap ------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False)
class _Scorer:
    """A validated contender with what its replicate metrics need, computed once."""

    name: str
    threshold: float | None
    p: np.ndarray
    routed: np.ndarray
    order: np.ndarray  # ascending p
    y_sorted: np.ndarray
    starts: np.ndarray | None  # first position of each tie group in `order`; None: no ties
    design: np.ndarray  # rows x (2 * bins + 2): y and p per ECE bin, routed, routed & accepted


def bootstrap(
    y: npt.ArrayLike,
    contenders: Sequence[Contender],
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
) -> Backtest:
    """Paired bootstrap of every contender on the slice with outcomes `y` (0/1 or booleans).

    The slice must hold both outcomes; contender names must be unique. Replicate b resamples the
    rows `resample(len(y), seed, b)`, the same for every contender.
    """
    outcome = _labels(y)
    scorers = [_prepare(outcome, c) for c in contenders]
    names = [s.name for s in scorers]
    if not scorers or len(set(names)) != len(names):
        raise ValueError(f"need one or more contenders with unique names, got {names}")
    if n_boot < 1:
        raise ValueError(f"n_boot must be >= 1, got {n_boot}")
    check_confidence(confidence)
    points = {s.name: _point(outcome, s, confidence) for s in scorers}
    kept, draws = _replicates(outcome, scorers, n_boot, seed)
    return Backtest(
        table=_table(points, draws, confidence, outcome.size),
        deltas=_deltas(points, draws, confidence),
        n_boot=n_boot,
        confidence=confidence,
        rows=outcome.size,
        seed=seed,
        skipped=n_boot - kept.size,
        replicates=pd.concat(
            [pd.DataFrame({"replicate": kept, "name": name, **m}) for name, m in draws.items()],
            ignore_index=True,
        ),
    )


def resample(rows: int, seed: int, replicate: int) -> np.ndarray:
    """The row indices of bootstrap replicate `replicate`: `rows` draws with replacement.

    Each replicate has its own seed (spawned from `seed`), so any replicate can be redrawn alone.
    """
    rng = np.random.default_rng(np.random.SeedSequence(seed, spawn_key=(replicate,)))
    return rng.integers(0, rows, size=rows)


def _labels(y: npt.ArrayLike) -> np.ndarray:
    outcome = np.asarray(y).ravel()
    if not _is_binary(outcome):
        raise ValueError("y must be 0/1 or boolean outcomes with no missing values")
    outcome = outcome.astype(np.float64)
    if outcome.size == 0 or outcome.min() == outcome.max():
        raise ValueError("the slice needs both outcomes (accepted and rejected) for ROC AUC")
    return outcome


def _is_binary(values: np.ndarray) -> bool:
    return values.dtype == bool or bool(np.all((values == 0) | (values == 1)))


def _prepare(y: np.ndarray, contender: Contender) -> _Scorer:
    p = np.asarray(contender.p, dtype=np.float64).ravel()
    if p.size != y.size or not np.all((p >= 0) & (p <= 1)):
        raise ValueError(
            f"{contender.name}: p must hold one probability in [0, 1] per lead ({y.size}), "
            f"got {p.size} values"
        )
    routed = _routed(contender, p)
    order = np.argsort(p, kind="stable")
    sorted_p = p[order]
    starts = np.flatnonzero(np.r_[True, sorted_p[1:] != sorted_p[:-1]])
    in_bin = np.eye(_ECE_BINS)[np.minimum((p * _ECE_BINS).astype(int), _ECE_BINS - 1)]
    design = np.column_stack([in_bin * y[:, None], in_bin * p[:, None], routed, routed * y])
    return _Scorer(
        name=contender.name,
        threshold=contender.threshold,
        p=p,
        routed=routed,
        order=order,
        y_sorted=y[order],
        starts=starts if starts.size < p.size else None,
        design=design,
    )


def _routed(contender: Contender, p: np.ndarray) -> np.ndarray:
    """Routed leads as 0.0/1.0: `routed` if given, else p >= threshold (both: they must agree)."""
    if contender.routed is None:
        if contender.threshold is None:
            raise ValueError(f"{contender.name}: give a threshold or the routed leads")
        return (p >= contender.threshold).astype(np.float64)
    routed = np.asarray(contender.routed).ravel()
    if routed.size != p.size or not _is_binary(routed):
        raise ValueError(f"{contender.name}: routed must be one boolean per lead ({p.size})")
    routed = routed.astype(bool)
    if contender.threshold is not None and not np.array_equal(routed, p >= contender.threshold):
        raise ValueError(f"{contender.name}: routed disagrees with p >= {contender.threshold}")
    return routed.astype(np.float64)


def _point(y: np.ndarray, scorer: _Scorer, confidence: float) -> dict[str, Any]:
    """The metrics on the whole slice, by the project's reference implementations."""
    if scorer.threshold is not None:
        routing = outcome_at(scorer.threshold, scorer.p, y, confidence)
    else:
        routing = rules_outcome(scorer.routed.astype(bool), y, confidence)
    rate = routing["acceptance_rate"]
    return {
        "threshold": scorer.threshold,
        "roc_auc": float(roc_auc_score(y, scorer.p)),
        "ece": expected_calibration_error(y, scorer.p),
        "routed_rate": np.nan if rate is None else rate,
        "coverage": routing["coverage"],
        "recall": routing["recall"],
        "routed": routing["routed"],
        "accepted_routed": int(y @ scorer.routed),
    }


def _replicates(
    y: np.ndarray, scorers: list[_Scorer], n_boot: int, seed: int
) -> tuple[np.ndarray, dict[str, dict[str, np.ndarray]]]:
    """(kept replicate numbers, name -> metric -> its value in each kept replicate)."""
    kept_parts: list[np.ndarray] = []
    parts: dict[str, dict[str, list[np.ndarray]]] = {
        s.name: {m: [] for m in REPLICATE_METRICS} for s in scorers
    }
    with threadpool_limits(limits=1, user_api="blas"):  # see "Speed" above
        for first, counts in _count_blocks(y.size, n_boot, seed):
            accepted = counts @ y
            keep = (accepted > 0) & (accepted < y.size)
            counts, accepted = counts[keep], accepted[keep]
            kept_parts.append(first + np.flatnonzero(keep))
            for scorer in scorers:
                for metric, values in _metrics(counts, accepted, scorer).items():
                    parts[scorer.name][metric].append(values)
    draws = {
        name: {metric: np.concatenate(chunks) for metric, chunks in metrics.items()}
        for name, metrics in parts.items()
    }
    return np.concatenate(kept_parts), draws


def _count_blocks(rows: int, n_boot: int, seed: int) -> Iterator[tuple[int, np.ndarray]]:
    """(first replicate, counts): how often each row was drawn, one replicate per matrix row."""
    block = max(1, _BLOCK_CELLS // rows)
    for first in range(0, n_boot, block):
        numbers = range(first, min(first + block, n_boot))
        counts = np.empty((len(numbers), rows))
        for i, replicate in enumerate(numbers):
            counts[i] = np.bincount(resample(rows, seed, replicate), minlength=rows)
        yield first, counts


def _metrics(counts: np.ndarray, accepted: np.ndarray, scorer: _Scorer) -> dict[str, np.ndarray]:
    """Every replicate metric of one scorer from the replicates' counts (kept replicates only)."""
    rows = counts.shape[1]
    sums = counts @ scorer.design
    accepted_bins, p_bins = sums[:, :_ECE_BINS], sums[:, _ECE_BINS : 2 * _ECE_BINS]
    routed, accepted_routed = sums[:, -2], sums[:, -1]
    with np.errstate(invalid="ignore", divide="ignore"):
        routed_rate = np.where(routed > 0, accepted_routed / routed, np.nan)
    return {
        "roc_auc": _auc(counts, accepted, scorer),
        # Per bin, share x |observed - predicted| = |accepted - sum of p| / rows.
        "ece": np.abs(accepted_bins - p_bins).sum(axis=1) / rows,
        "routed_rate": routed_rate,
        "coverage": routed / rows,
        "recall": accepted_routed / accepted,
    }


def _auc(counts: np.ndarray, accepted: np.ndarray, scorer: _Scorer) -> np.ndarray:
    """Mann-Whitney ROC AUC per replicate: P(accepted lead scores above a rejected one), ties 1/2.

    With every drawn row counted, the accepted leads' midranks sum to sum(accepted x (drawn at or
    below their score - drawn at their score / 2 + 1/2)); U subtracts n1 (n1 + 1) / 2. Counts are
    whole numbers and every sum stays far below 2**53, so this is exact.
    """
    drawn = counts[:, scorer.order]
    positives = drawn * scorer.y_sorted
    if scorer.starts is not None:  # rows with equal scores share one midrank
        drawn = np.add.reduceat(drawn, scorer.starts, axis=1)
        positives = np.add.reduceat(positives, scorer.starts, axis=1)
    at_or_below = np.cumsum(drawn, axis=1)
    u = (
        np.einsum("ij,ij->i", positives, at_or_below)
        - np.einsum("ij,ij->i", positives, drawn) / 2
        - accepted**2 / 2
    )
    return u / (accepted * (counts.shape[1] - accepted))


def _interval(values: np.ndarray, confidence: float) -> tuple[float, float]:
    """Two-sided percentile interval over the finite values (NaN, NaN if there are none)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return math.nan, math.nan
    tail = (1 - confidence) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return float(low), float(high)


def _table(
    points: dict[str, dict[str, Any]],
    draws: dict[str, dict[str, np.ndarray]],
    confidence: float,
    rows: int,
) -> pd.DataFrame:
    records = []
    for name, point in points.items():
        record: dict[str, Any] = {"name": name, "threshold": point["threshold"]}
        for metric in INTERVAL_METRICS:
            low, high = _interval(draws[name][metric], confidence)
            record |= {metric: point[metric], f"{metric}_low": low, f"{metric}_high": high}
        keys = ("coverage", "recall", "routed", "accepted_routed")
        records.append(record | {k: point[k] for k in keys} | {"rows": rows})
    return pd.DataFrame(records)


def _deltas(
    points: dict[str, dict[str, Any]],
    draws: dict[str, dict[str, np.ndarray]],
    confidence: float,
) -> pd.DataFrame:
    records = []
    for name in points:
        for versus in points:
            if name == versus:
                continue
            for metric in DELTA_METRICS:
                low, high = _interval(draws[name][metric] - draws[versus][metric], confidence)
                estimate = points[name][metric] - points[versus][metric]
                records.append(
                    {
                        "name": name,
                        "versus": versus,
                        "metric": metric,
                        "estimate": estimate,
                        "low": low,
                        "high": high,
                    }
                )
    return pd.DataFrame(records, columns=["name", "versus", "metric", "estimate", "low", "high"])


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Rows as plain Python values, NaN as None."""
    return [{k: _plain(v) for k, v in record.items()} for record in frame.to_dict("records")]


def _plain(value: Any) -> Any:
    if isinstance(value, np.generic):
        value = value.item()
    return None if isinstance(value, float) and math.isnan(value) else value


# --- The gate -----------------------------------------------------------------------------------


def gate(
    backtest: Backtest,
    challenger: str,
    champion: str | None,
    rules: str | None,
    routed_accepted: int,
    routed_n: int,
    *,
    gate_rules: GateRules | None = None,
) -> Decision:
    """Promote `challenger` over `champion` (None: no champion yet)? Pure: reads only its inputs.

    rules: the rule criteria's name in the backtest (None: not compared). routed_accepted and
    routed_n: the challenger's routed leads on the slice, accepted and all (the table's
    accepted_routed and routed), for the policy target. gate_rules default to GateRules(); its
    confidence must be the backtest's, so the interval the reason quotes is the one checked.
    """
    criteria = gate_rules or GateRules()
    for name in (challenger, champion, rules):
        if name is not None:
            backtest.row(name)  # fails early, naming the contenders there are
    if not math.isclose(criteria.confidence, backtest.confidence):
        raise ValueError(
            f"the backtest's intervals are at {level(backtest.confidence)} confidence but the "
            f"gate asks {level(criteria.confidence)}: rerun bootstrap at the gate's confidence"
        )
    results = {
        "not_worse_auc": _not_worse_auc(backtest, challenger, champion, criteria),
        "calibration": _calibration(backtest, challenger, champion, criteria),
        "policy_target": _policy_target(routed_accepted, routed_n, criteria),
        "beats_rules": _beats_rules(backtest, challenger, rules),
    }
    checks = {name: passed for name, (passed, _) in results.items()}
    failed = [name for name, passed in checks.items() if not passed]
    headline = (
        f"{challenger} is promoted: every check passed."
        if not failed
        else f"{challenger} is not promoted: {', '.join(failed)} failed."
    )
    failures_first = sorted(results.values(), key=lambda result: result[0])
    sentences = [headline] + [sentence for _, sentence in failures_first]
    return Decision(promote=not failed, reason=" ".join(sentences), checks=checks)


def _not_worse_auc(
    backtest: Backtest, challenger: str, champion: str | None, criteria: GateRules
) -> tuple[bool, str]:
    if champion is None:
        return True, (
            "No champion (first model): the ROC AUC and calibration comparisons are skipped."
        )
    mine, theirs = backtest.row(challenger)["roc_auc"], backtest.row(champion)["roc_auc"]
    delta = backtest.delta(challenger, champion, "roc_auc")
    compared = f"ROC AUC {mine:.4f} vs the champion's {theirs:.4f} ({champion})"
    if math.isnan(delta["low"]):
        return False, f"{compared}: no bootstrap replicate held both outcomes, so no interval."
    passed = bool(delta["low"] >= -criteria.auc_margin)
    return passed, (
        f"{compared}: difference {delta['estimate']:+.4f} ({level(backtest.confidence)} CI "
        f"{delta['low']:+.4f} to {delta['high']:+.4f}) is {'not ' if passed else ''}worse than "
        f"the margin {-criteria.auc_margin:+.4f}."
    )


def _calibration(
    backtest: Backtest, challenger: str, champion: str | None, criteria: GateRules
) -> tuple[bool, str]:
    mine = backtest.row(challenger)["ece"]
    if champion is None:
        return True, f"ECE {mine:.4f} (not compared: no champion)."
    theirs = backtest.row(champion)["ece"]
    passed = bool(mine <= theirs + criteria.ece_tolerance)
    verdict = "within" if passed else "more than"
    return passed, (
        f"ECE {mine:.4f} vs the champion's {theirs:.4f} ({champion}): {mine - theirs:+.4f}, "
        f"{verdict} the tolerance {criteria.ece_tolerance:+.4f}."
    )


def _policy_target(routed_accepted: int, routed_n: int, criteria: GateRules) -> tuple[bool, str]:
    if criteria.target is None:
        return True, "No routed-acceptance target: not checked."
    target = level(criteria.target)
    if routed_n == 0:
        return False, f"No lead was routed on this slice, so the {target} target is not met."
    bound = float(wilson_lower(routed_accepted, routed_n, criteria.confidence))
    rate = routed_accepted / routed_n
    passed = rate >= criteria.target
    return passed, (
        f"Routed acceptance {rate:.1%} ({routed_accepted:,} of {routed_n:,} routed leads; "
        f"Wilson lower bound {bound:.1%} at {level(criteria.confidence)} confidence) "
        f"{'meets' if passed else 'is below'} the {target} target."
    )


def _beats_rules(backtest: Backtest, challenger: str, rules: str | None) -> tuple[bool, str]:
    mine = backtest.row(challenger)["roc_auc"]
    if rules is None:
        return True, "No rule criteria given: not compared with them."
    theirs = backtest.row(rules)["roc_auc"]
    passed = bool(mine > theirs)
    verdict = "beats" if passed else "does not beat"
    return passed, (
        f"ROC AUC {mine:.4f} {verdict} the rule criteria's {theirs:.4f} ({mine - theirs:+.4f})."
    )


def compare(
    y: npt.ArrayLike,
    challenger: Contender,
    champion: Contender | None,
    rules: Contender,
    gate_rules: GateRules,
    n_boot: int = 1000,
    seed: int = 0,
) -> tuple[Backtest, Decision]:
    """Bootstrap the contenders on one slice and apply the gate to the challenger."""
    contenders = [challenger, *([champion] if champion else []), rules]
    backtest = bootstrap(y, contenders, n_boot, seed, gate_rules.confidence)
    row = backtest.row(challenger.name)
    decision = gate(
        backtest,
        challenger.name,
        champion.name if champion else None,
        rules.name,
        routed_accepted=int(row["accepted_routed"]),
        routed_n=int(row["routed"]),
        gate_rules=gate_rules,
    )
    return backtest, decision
