"""`sal monitor`: the live champion against its own training profile and routing promise.

Wiring only: load the champion (its profile and policy travel inside the model), read the
service's scoring log and outcomes, run `pipeline.monitor`, write the HTML report, log the run to
MLflow. The exit code (1 on an alarm) is for the scheduler that runs it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Literal

import mlflow
import numpy as np
import pandas as pd

from models import store
from models.decision import DEFAULT_ROUTING_THRESHOLD
from models.policy import DEFAULT_ACCEPTANCE_TARGET
from models.registry import LoadedModel, load_by_alias
from pipeline import plots
from pipeline.monitor import MonitorResult, monitor, read_monitoring_frame
from pipeline.report import Report
from pipeline.settings import PipelineSettings
from pipeline.tracking import use_experiment


@dataclass(frozen=True)
class MonitorOptions:
    database_url: str
    model_name: str
    alias: str = "champion"
    weeks: int = 8  # how far back to read the log
    period: Literal["D", "W"] = "W"
    decision_window_hours: float = 48
    min_rows: int = 200
    now: datetime | None = None  # replay as of a past moment


@dataclass(frozen=True)
class MonitorRun:
    result: MonitorResult
    model_version: str
    report: Path
    run_id: str


def monitor_champion(options: MonitorOptions, settings: PipelineSettings) -> MonitorRun:
    loaded = load_by_alias(
        settings.tracking_uri, options.model_name, options.alias, DEFAULT_ROUTING_THRESHOLD
    )
    profile = loaded.model.metadata.get("profile")
    if profile is None:
        raise ValueError(
            f"{options.model_name} v{loaded.version} carries no training profile (trained before "
            "monitoring existed); retrain it to monitor it"
        )
    now = options.now or datetime.now(UTC)
    engine = store.connect(options.database_url)
    try:
        frame = read_monitoring_frame(
            engine, loaded.model.spec, since=now - timedelta(weeks=options.weeks)
        )
    finally:
        engine.dispose()
    result = monitor(
        frame,
        profile,
        threshold=loaded.routing_threshold,
        now=now,
        target=_target(loaded),
        period=options.period,
        decision_window_hours=options.decision_window_hours,
        min_rows=options.min_rows,
    )
    stamp = now.strftime("%Y%m%dT%H%M")
    path = settings.reports_dir / f"monitor-{options.model_name}-{stamp}.html"
    monitoring_report(result, loaded, profile, frame).write(path)
    run_id = _log(result, loaded, path, settings)
    return MonitorRun(result=result, model_version=loaded.version, report=path, run_id=run_id)


def _target(loaded: LoadedModel) -> float:
    """The acceptance rate the champion promised for the leads it routes."""
    policy = loaded.policy
    if policy is None:
        return DEFAULT_ACCEPTANCE_TARGET  # a version older than routing policies: the usual bar
    # Capacity mode promises no rate; what it expected of its routed leads is the yardstick.
    return policy.acceptance_target or policy.promised_rate


def monitoring_report(
    result: MonitorResult, loaded: LoadedModel, profile: dict, frame: pd.DataFrame
) -> Report:
    s = result.settings
    report = Report(
        f"{loaded.name} v{loaded.version}: monitoring report",
        f"per {'week' if s['period'] == 'W' else 'day'}, as of {s['now']}",
    )
    report.section("Verdict")
    for alarm in result.alarms:
        report.callout(f"{alarm.period}: {alarm.message}", "alarm")
    for warning in result.warnings:
        report.callout(f"{warning.period}: {warning.message}", "warn")
    if not result.alarms and not result.warnings:
        report.callout("No alarm: inputs, scores and acceptance are where they should be.", "ok")
    report.facts(
        {
            "routing threshold": f"{s['threshold']:.4f}",
            "acceptance target of routed leads": f"{s['target']:.0%}",
            "decision window": f"{s['decision_window_hours']:g} h (undecided leads inside it "
            "are pending, not rejections)",
            "training rows profiled": f"{s['profile_rows']:,}",
        }
    )
    report.section("Acceptance of routed leads and volume")
    if not result.periods.empty:
        report.figure(
            plots.acceptance_over_time_figure(result.periods, s["target"]),
            "Realised acceptance rate of routed leads over time, target line",
        )
    report.table(result.periods, "Per period")
    report.section("Input drift (population stability index against the training data)")
    if not result.drift.empty:
        latest = result.drift.iloc[-1].dropna()
        report.figure(plots.psi_figure(latest), f"PSI by feature, {result.drift.index[-1]}")
        report.table(result.drift, "PSI per period and feature (0.1: watch, 0.25: act)")
    report.section("Scores and calibration")
    if len(frame):
        reference = _reference_scores(profile)
        report.figure(
            plots.score_distribution_figure(
                reference,
                {"scored in the window": frame["p_accept"].to_numpy()},
                "training (test slice)",
            ),
            "Score distribution: training vs now",
        )
    report.table(result.calibration, "Predicted vs observed acceptance by tier (decided leads)")
    return report


def _reference_scores(profile: dict) -> np.ndarray:
    """Stand-in scores at each training score bin's midpoint, in its share: the profile keeps
    shares over the figure's own bins (its last share, missing scores, is left out)."""
    bins = plots.SCORE_BINS
    shares = np.asarray(profile["score"]["shares"][: len(bins) - 1], dtype=float)
    counts = np.round(np.nan_to_num(shares) * 10_000).astype(int)
    return np.repeat((bins[:-1] + bins[1:]) / 2, counts)


def _log(result: MonitorResult, loaded: LoadedModel, path: Path, settings: PipelineSettings) -> str:
    use_experiment(settings, f"{settings.experiment}-monitoring")
    with mlflow.start_run(run_name=f"monitor {loaded.name} v{loaded.version}") as run:
        mlflow.set_tags(
            {"kind": "monitor", "model_name": loaded.name, "model_version": loaded.version}
        )
        latest = result.periods.iloc[-1] if not result.periods.empty else None
        metrics = {"alarms": len(result.alarms), "warnings": len(result.warnings)}
        if latest is not None:
            for key in (
                "volume",
                "routed",
                "decided",
                "realised_rate",
                "score_psi",
                "max_feature_psi",
            ):
                value = latest.get(key)
                if value is not None and pd.notna(value):
                    metrics[f"latest_{key}"] = float(value)
        mlflow.log_metrics(metrics)
        mlflow.log_dict(result.to_dict(), "monitoring.json")
        mlflow.log_artifact(str(path))
        return run.info.run_id
