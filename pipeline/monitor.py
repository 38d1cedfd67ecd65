"""Monitoring the live model from the scoring log and sales' recorded decisions.

Per day or week of scoring: volume, input drift per feature and score shift (population
stability index against the training profile, `models.profile`), the realised acceptance rate of
leads routed to sales against the target, and calibration by score band. `monitor` returns
alarms (the scheduler should act: `exit_code` 1) and warnings (worth a look, exit 0).

Outcome states of a scored lead, as of `now`:
    decided      an outcome is recorded (and, when it has a decision time, not after `now`)
    pending      no outcome yet, scored less than the decision window before `now`
    no decision  no outcome, and the window has passed: reported, but *not* counted as a
                 rejection: the rate is computed on decided leads only, since a missing
                 record says more about the CRM feed than about the lead.

Everything here sees the log's redacted features only, and the result holds aggregates: bin
labels and counts, never a lead id or a personal value.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import numpy as np
import pandas as pd
from sqlalchemy import Engine, select

from models.decision import TIERS, tiers
from models.features import TIME_FEATURES, normalize
from models.policy import DEFAULT_ACCEPTANCE_TARGET, wilson_upper
from models.profile import bin_codes
from models.spec import DatasetSpec
from models.store import outcomes, scoring_log

# Population stability index bands (the usual rule of thumb): below 0.1 stable, 0.1-0.25 a
# moderate shift worth a look, 0.25 and above a major shift.
PSI_WARN = 0.1
PSI_ALARM = 0.25
# Shares are floored before the logarithm: an empty bin would make PSI infinite. At 1e-4 a bin
# empty in training that now holds 5% of leads adds 0.05 * ln(500) = 0.31 (an alarm, as an unseen
# category at 5% should), while bins below 0.01% of leads add next to nothing.
PSI_FLOOR = 1e-4

# The upper end of the two-sided 95% Wilson interval, i.e. a one-sided 97.5% bound.
WILSON_CONFIDENCE = 0.975
# Wilson's interval undercovers when few rejections are expected at the target: 3 of 5 accepted
# has an upper bound of 0.88, yet 3 or fewer of 5 happens 8% of the time at a 90% rate. The check
# waits until n * (1 - target) >= 5 (the usual rule for the normal approximation): 50 leads at 90%.
MIN_EXPECTED_MISSES = 5

# Volume: a complete period below half the median of up to 8 comparable earlier periods (at
# least 3) is a warning, not an alarm: a holiday or a paused campaign is not a model failure, but
# a broken integration looks the same and someone should check. Days are compared with the same
# weekday, since B2B leads arrive mostly on working days.
VOLUME_DROP_RATIO = 0.5
VOLUME_HISTORY = 8
VOLUME_MIN_HISTORY = 3

# What the monitoring frame holds besides the clean features (see `read_monitoring_frame`).
SCORING_COLUMNS = ("lead_id", "scored_at", "model_version", "p_accept", "route", "tier")
OUTCOME_COLUMNS = ("accepted", "decided_at", "sql")
_REQUIRED = ("lead_id", "scored_at", "p_accept", "accepted")
# Calendar features are fixed by the period, not by who the leads are: a week always spans 7 of
# a month's days and a day one weekday, so their PSI against the whole training period is large
# and meaningless. They are not monitored.
_CALENDAR = frozenset(TIME_FEATURES)


@dataclass(frozen=True)
class Alarm:
    """One finding: `kind` (feature_drift, score_drift, acceptance, volume), the period it is
    about, its `subject` (a feature, "p_accept", "routed leads", "volume"), the measured value
    and the threshold it crossed."""

    kind: str
    period: str
    subject: str
    value: float
    threshold: float
    message: str


@dataclass
class MonitorResult:
    """`periods`: one row per period (headline numbers); `drift`: PSI, period x feature;
    `calibration`: predicted vs observed acceptance by period and tier (plus "all" periods)."""

    periods: pd.DataFrame
    drift: pd.DataFrame
    calibration: pd.DataFrame
    alarms: list[Alarm]
    warnings: list[Alarm]
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        return 1 if self.alarms else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "settings": self.settings,
            "periods": _records(self.periods),
            "drift": _records(self.drift.reset_index()),
            "calibration": _records(self.calibration),
            "alarms": [asdict(a) for a in self.alarms],
            "warnings": [asdict(w) for w in self.warnings],
            "exit_code": self.exit_code,
        }


# -- reading the log -------------------------------------------------------------------------------
def read_monitoring_frame(
    engine: Engine,
    spec: DatasetSpec,
    *,
    since: datetime | None = None,
    model_version: str | None = None,
) -> pd.DataFrame:
    """Scored leads with their outcomes (left join) and the clean view of their logged features.

    One row per scoring (`monitor` keeps a lead's latest scoring per period). Rows without a
    score are left out: the outcomes endpoint logs features for leads scored elsewhere, and those
    say nothing about this model. Times are UTC. `model_version` keeps one version's scorings,
    the one whose training profile they are compared with.
    """
    query = (
        select(
            *(scoring_log.c[name] for name in SCORING_COLUMNS),
            *(outcomes.c[name] for name in OUTCOME_COLUMNS),
            scoring_log.c.features,
        )
        .select_from(scoring_log.outerjoin(outcomes, scoring_log.c.lead_id == outcomes.c.lead_id))
        .where(scoring_log.c.p_accept.is_not(None))
    )
    if since is not None:
        query = query.where(scoring_log.c.scored_at >= _as_utc(since).to_pydatetime())
    if model_version is not None:
        query = query.where(scoring_log.c.model_version == model_version)
    with engine.connect() as connection:
        rows = connection.execute(query).mappings().all()
    log = pd.DataFrame(rows, columns=[*SCORING_COLUMNS, *OUTCOME_COLUMNS, "features"])
    clean = normalize(pd.DataFrame.from_records(list(log["features"]), index=log.index), spec)
    clashes = set(clean.columns) & {*SCORING_COLUMNS, *OUTCOME_COLUMNS}
    if clashes:
        raise ValueError(f"spec fields {sorted(clashes)} clash with scoring-log columns")
    for column in ("scored_at", "decided_at"):
        log[column] = pd.to_datetime(log[column], utc=True)  # SQLite returns naive UTC
    return pd.concat([log.drop(columns="features"), clean], axis=1)


# -- PSI -------------------------------------------------------------------------------------------
def psi(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> float:
    """Population stability index sum((a - e) * ln(a / e)) of two share vectors over the same
    bins; each share is floored at `floor` (see PSI_FLOOR) so empty bins stay finite."""
    return float(_psi_rows(np.asarray(expected, float), np.asarray(actual, float), floor))


def _psi_rows(expected: np.ndarray, actual: np.ndarray, floor: float = PSI_FLOOR) -> np.ndarray:
    # Vectorised over leading axes of `actual` (periods x bins); NaN rows (no leads) stay NaN.
    e, a = np.maximum(expected, floor), np.maximum(actual, floor)
    return np.sum((a - e) * np.log(a / e), axis=-1)


# -- monitoring ------------------------------------------------------------------------------------
def monitor(
    frame: pd.DataFrame,
    profile: dict[str, Any],
    *,
    threshold: float,
    now: datetime,
    target: float = DEFAULT_ACCEPTANCE_TARGET,
    period: Literal["D", "W"] = "W",
    decision_window_hours: float = 48,
    min_rows: int = 200,
) -> MonitorResult:
    """Monitor scored leads (`read_monitoring_frame`'s columns) against a training `profile`.

    As of `now`: later scorings and decisions are ignored, so a past run can be replayed.
    Periods run from the first scoring to the one holding `now` (the first may be cut short by
    the reader's `since`, the last by `now`); empty periods show as volume 0.
    A lead scored more than once in a period counts once, with its latest scoring. Routed means
    the logged route was "sales" (`p_accept >= threshold` where no route was logged). Periods
    with fewer than `min_rows` leads get PSI values but no drift alarms or warnings: PSI's
    sampling noise is about (bins - 1) / rows, so a few hundred leads cannot tell a shift from
    chance.
    """
    now_ts = _as_utc(now)
    features = {k: v for k, v in profile["features"].items() if k not in _CALENDAR}
    absent = [c for c in (*_REQUIRED, *features) if c not in frame]
    if absent:
        raise KeyError(f"the monitoring frame lacks columns {absent}")
    leads = _prepare(frame, period, threshold, now_ts, decision_window_hours)
    index = _period_index(leads["period"], now_ts, period)
    position = index.get_indexer(leads["period"])
    shifts = {
        name: _shift(leads[name], column, position, len(index)) for name, column in features.items()
    }
    score = _shift(leads["p_accept"], profile["score"], position, len(index))
    drift = pd.DataFrame(
        {name: shift.psi for name, shift in shifts.items()},
        index=pd.Index(index.astype(str), name="period"),
    )
    periods = _headline(leads, index, now_ts, score.psi, drift)
    periods["train_p_accept_mean"] = profile["score"].get("mean")
    alarms, warnings = _drift_findings(periods, {**shifts, "p_accept": score}, min_rows)
    alarms += _acceptance_alarms(periods, target)
    warnings += _volume_warnings(periods, index)
    settings = {
        "period": period,
        "target": target,
        "threshold": threshold,
        "decision_window_hours": decision_window_hours,
        "min_rows": min_rows,
        "now": now_ts.isoformat(),
        "profile_rows": profile.get("rows"),
    }
    calibration = _calibration(leads[leads["decided"]])
    # Chronological (period labels start with an ISO date), so the report reads as a timeline.
    alarms.sort(key=lambda a: a.period)
    warnings.sort(key=lambda a: a.period)
    return MonitorResult(periods, drift, calibration, alarms, warnings, settings)


def _prepare(
    frame: pd.DataFrame, period: str, threshold: float, now: pd.Timestamp, window_hours: float
) -> pd.DataFrame:
    """One row per lead and period, with its period, whether it was routed and its outcome."""
    if period not in ("D", "W"):
        raise ValueError(f"period must be 'D' or 'W', not {period!r}")
    scored_at = pd.to_datetime(frame["scored_at"], utc=True)
    leads = frame[frame["p_accept"].notna() & (scored_at <= now)].assign(scored_at=scored_at)
    leads["period"] = leads["scored_at"].dt.tz_localize(None).dt.to_period(period)
    leads = leads.sort_values("scored_at", kind="stable")
    leads = leads.drop_duplicates(["period", "lead_id"], keep="last")
    leads["routed"] = _routed(leads, threshold)
    accepted = pd.array(leads["accepted"], dtype="boolean")
    known = ~pd.isna(accepted)
    if "decided_at" in leads:  # replaying the past: a decision made after `now` was not known
        known &= ~(pd.to_datetime(leads["decided_at"], utc=True) > now).to_numpy()
    in_window = ((now - leads["scored_at"]) < pd.Timedelta(hours=window_hours)).to_numpy()
    return leads.assign(
        decided=known,
        accepted_flag=known & accepted.fillna(False).to_numpy(dtype=bool),
        pending=~known & in_window,
        no_decision=~known & ~in_window,
    )


def _routed(leads: pd.DataFrame, threshold: float) -> np.ndarray:
    # The logged route is what sales actually received (a version's own threshold may differ).
    p_accept = leads["p_accept"].to_numpy(dtype=float)
    if "route" not in leads:
        return p_accept >= threshold
    route = leads["route"]
    return np.where(route.notna().to_numpy(), (route == "sales").to_numpy(), p_accept >= threshold)


def _period_index(periods: pd.Series, now: pd.Timestamp, freq: str) -> pd.PeriodIndex:
    current = now.tz_localize(None).to_period(freq)
    first = periods.min() if len(periods) else current
    return pd.period_range(first, current, freq=freq, name="period")


@dataclass(frozen=True)
class _Shift:
    """A profiled column's shares per period against training, and the PSI per period."""

    labels: list[str]
    expected: np.ndarray  # bins
    actual: np.ndarray  # periods x bins (NaN rows: no leads)
    psi: np.ndarray  # periods

    def biggest_move(self, i: int) -> str:
        """The bin that contributes most to period i's PSI, in words."""
        e, a = np.maximum(self.expected, PSI_FLOOR), np.maximum(self.actual[i], PSI_FLOOR)
        top = int(np.argmax((a - e) * np.log(a / e)))
        return f"{self.labels[top]} {self.expected[top]:.1%} -> {self.actual[i, top]:.1%}"


def _shift(values: pd.Series, column: dict[str, Any], position: np.ndarray, n: int) -> _Shift:
    # One bincount over (period, bin) pairs: all periods at once, no per-period loop.
    n_bins = len(column["labels"])
    codes = bin_codes(values, column)
    counts = np.bincount(position * n_bins + codes, minlength=n * n_bins).reshape(n, n_bins)
    totals = counts.sum(axis=1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        actual = np.where(totals > 0, counts / totals, np.nan)
    expected = np.asarray(column["shares"], dtype=float)
    return _Shift(column["labels"], expected, actual, _psi_rows(expected, actual))


def _headline(
    leads: pd.DataFrame,
    index: pd.PeriodIndex,
    now: pd.Timestamp,
    score_psi: np.ndarray,
    drift: pd.DataFrame,
) -> pd.DataFrame:
    routed = leads[leads["routed"]].groupby("period")
    counts = pd.DataFrame(
        {
            "volume": leads.groupby("period").size(),
            "routed": routed.size(),
            "decided": routed["decided"].sum(),
            "accepted": routed["accepted_flag"].sum(),
            "pending": routed["pending"].sum(),
            "no_decision": routed["no_decision"].sum(),
        }
    )
    counts = counts.reindex(index).fillna(0).astype(int)
    decided_routed = leads[leads["routed"] & leads["decided"]]
    table = counts.assign(
        complete=index.end_time < now.tz_localize(None),
        realised_rate=counts["accepted"] / counts["decided"].where(counts["decided"] > 0),
        realised_upper=pd.Series(
            wilson_upper(counts["accepted"], counts["decided"], WILSON_CONFIDENCE),
            index=counts.index,
        ).where(counts["decided"] > 0),
        expected_rate=decided_routed.groupby("period")["p_accept"].mean().reindex(index),
        p_accept_mean=leads.groupby("period")["p_accept"].mean().reindex(index),
        score_psi=score_psi,
        max_feature_psi=drift.max(axis=1).to_numpy(),
        max_psi_feature=_argmax_columns(drift),
    )
    table.insert(0, "period", index.astype(str).to_numpy())
    return table.reset_index(drop=True)


def _argmax_columns(drift: pd.DataFrame) -> np.ndarray:
    """The feature with the largest PSI in each period (None where there were no leads)."""
    if drift.columns.empty:
        return np.full(len(drift), None)
    values = drift.to_numpy(dtype=float)
    best = np.argmax(np.where(np.isnan(values), -np.inf, values), axis=1)
    names = drift.columns.to_numpy(dtype=object)[best]
    return np.where(np.isnan(values).all(axis=1), None, names)


def _calibration(decided: pd.DataFrame) -> pd.DataFrame:
    """Mean predicted vs observed acceptance by tier among decided leads (routed or not), per
    period and over all periods ("all"), since a week's bands are often thin.

    Most decided leads are routed ones, so the lower tiers hold the few leads sales saw anyway;
    read them with their n.
    """
    decided = decided.assign(
        tier=tiers(decided["p_accept"].to_numpy(dtype=float)),
        observed=decided["accepted_flag"].astype(float),
        period=decided["period"].astype(str),
    )
    # Period labels start with an ISO date, so sorting them as text is chronological.
    by_period = _calibration_table(decided, ["period", "tier"])
    overall = _calibration_table(decided, ["tier"]).assign(period="all")
    table = pd.concat([by_period, overall], ignore_index=True)
    table["band"] = table["tier"].map(_TIER_BANDS)
    return table[["period", "tier", "band", "n", "predicted", "observed"]]


def _tier_bands() -> dict[str, str]:
    lows = [low for _, low in TIERS]  # highest tier first
    tops = [1.0, *lows[:-1]]
    return {name: f"{low:g}-{top:g}" for (name, low), top in zip(TIERS, tops, strict=True)}


_TIER_BANDS = _tier_bands()


def _calibration_table(decided: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    grouped = decided.groupby(keys)
    return pd.DataFrame(
        {
            "n": grouped.size(),
            "predicted": grouped["p_accept"].mean(),
            "observed": grouped["observed"].mean(),
        }
    ).reset_index()


# -- alarms ----------------------------------------------------------------------------------------
def _drift_findings(
    periods: pd.DataFrame, shifts: dict[str, _Shift], min_rows: int
) -> tuple[list[Alarm], list[Alarm]]:
    """PSI >= 0.25 is an alarm, 0.1-0.25 a warning; periods under `min_rows` are not judged."""
    alarms: list[Alarm] = []
    warnings: list[Alarm] = []
    for i in np.flatnonzero(periods["volume"].to_numpy() >= min_rows):
        for name, shift in shifts.items():
            value = float(shift.psi[i])
            if value < PSI_WARN:
                continue
            limit, found = (PSI_ALARM, alarms) if value >= PSI_ALARM else (PSI_WARN, warnings)
            kind = "score_drift" if name == "p_accept" else "feature_drift"
            message = f"{name}: PSI {value:.3f} >= {limit} (largest move: {shift.biggest_move(i)})"
            found.append(
                Alarm(kind, periods["period"].iat[i], name, round(value, 4), limit, message)
            )
    return alarms, warnings


def _acceptance_alarms(periods: pd.DataFrame, target: float) -> list[Alarm]:
    """Realised acceptance of routed leads below target, beyond chance (see MIN_EXPECTED_MISSES)."""
    enough = periods["decided"] * min(target, 1 - target) >= MIN_EXPECTED_MISSES
    below = periods[enough & (periods["realised_upper"] < target)]
    return [
        Alarm(
            "acceptance",
            row.period,
            "routed leads",
            round(float(row.realised_rate), 4),
            target,
            f"routed leads accepted {row.realised_rate:.1%} of {row.decided} decided "
            f"(95% upper bound {row.realised_upper:.1%}) < target {target:.0%}",
        )
        for row in below.itertuples()
    ]


def _volume_warnings(periods: pd.DataFrame, index: pd.PeriodIndex) -> list[Alarm]:
    """Complete periods below half the usual volume (see VOLUME_DROP_RATIO)."""
    complete = periods["complete"].to_numpy()
    # Days are compared with the same weekday; weeks with all earlier weeks.
    season = index.day_of_week if index.freqstr == "D" else np.zeros(len(index), dtype=int)
    found = []
    for i in np.flatnonzero(complete):
        earlier = np.flatnonzero(complete[:i] & (season[:i] == season[i]))[-VOLUME_HISTORY:]
        if len(earlier) < VOLUME_MIN_HISTORY:
            continue
        usual = float(np.median(periods["volume"].to_numpy()[earlier]))
        volume, limit = int(periods["volume"].iat[i]), VOLUME_DROP_RATIO * usual
        if volume < limit:
            message = f"{volume} leads scored, usually {usual:g} (warns below {limit:g})"
            found.append(
                Alarm("volume", periods["period"].iat[i], "volume", float(volume), limit, message)
            )
    return found


# -- output ----------------------------------------------------------------------------------------
_SHOWN = {
    "period": "period",
    "volume": "leads",
    "routed": "routed",
    "decided": "decided",
    "pending": "pending",
    "no_decision": "no decision",
    "realised_rate": "accept rate",
    "score_psi": "score PSI",
    "max_feature_psi": "max PSI",
    "max_psi_feature": "feature",
}


def render_text(result: MonitorResult) -> str:
    """A short terminal report: the settings, one line per period, then alarms and warnings."""
    s = result.settings
    head = (
        f"Monitoring per {'week' if s.get('period') == 'W' else 'day'} as of {s.get('now')}: "
        f"target {s.get('target', math.nan):.0%} accepted of routed leads, "
        f"routing threshold {s.get('threshold', math.nan):.2f}"
    )
    table = result.periods[list(_SHOWN)].rename(columns=_SHOWN)
    body = table.to_string(
        index=False,
        na_rep="-",
        formatters={
            "accept rate": lambda v: "-" if pd.isna(v) else f"{v:.1%}",
            "score PSI": lambda v: "-" if pd.isna(v) else f"{v:.3f}",
            "max PSI": lambda v: "-" if pd.isna(v) else f"{v:.3f}",
        },
    )
    findings = [f"ALARM {a.period} {a.message}" for a in result.alarms]
    findings += [f"warn  {w.period} {w.message}" for w in result.warnings]
    status = (
        f"{len(result.alarms)} alarm(s), {len(result.warnings)} warning(s): exit {result.exit_code}"
    )
    return "\n".join([head, "", body, "", *findings, status])


def _as_utc(moment: datetime | pd.Timestamp) -> pd.Timestamp:
    """A timestamp in UTC; a naive one is taken to be UTC already, as the log stores it."""
    stamp = pd.Timestamp(moment)
    return stamp.tz_localize(UTC) if stamp.tzinfo is None else stamp.tz_convert(UTC)


def _records(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """JSON-ready rows: Python scalars, None for missing."""
    plain = frame.astype(object)
    return plain.where(frame.notna(), None).to_dict("records")
