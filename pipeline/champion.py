"""`sal evaluate` and `sal rollback`: who serves, decided on evidence and recorded in MLflow.

evaluate: champion vs challenger vs rule criteria on the same most recent out-of-time slice of a
labelled leads file, with paired bootstrap intervals (pipeline.backtest); the challenger takes the
`champion` alias only when the gate passes. rollback: point `champion` back to an earlier version.
Every decision is an MLflow run (experiment "<experiment>-decisions") with its reason, and a tag on
the versions concerned.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import numpy as np
import pandas as pd
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException

from models.decision import DEFAULT_ROUTING_THRESHOLD
from models.registry import LoadedModel, load_version
from pipeline import plots
from pipeline.backtest import RULES, Backtest, Contender, Decision, GateRules, compare
from pipeline.baselines import fit_rule_calibration
from pipeline.config import load_train_config
from pipeline.load import Leads, label_values, load_leads
from pipeline.register import champion_version, promote, rollback_target
from pipeline.report import Report
from pipeline.settings import PipelineSettings
from pipeline.split import Split, split_leads
from pipeline.tracking import use_experiment


class DecisionError(ValueError):
    """The evaluation or rollback cannot be done as asked (no such version, nothing to compare)."""


@dataclass(frozen=True)
class EvaluateOptions:
    data: Path
    model_name: str
    challenger: str | None = None  # default: the newest registered version
    n_boot: int = 1000
    seed: int = 0
    promote: bool = True  # False: decide and record, but leave the alias alone


@dataclass(frozen=True)
class EvaluationRun:
    challenger: str
    champion: str | None
    decision: Decision
    backtest: Backtest
    promoted: bool
    report: Path
    run_id: str
    window: tuple[str, str] | None


def evaluate_challenger(options: EvaluateOptions, settings: PipelineSettings) -> EvaluationRun:
    name, client = options.model_name, MlflowClient(tracking_uri=settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    current = champion_version(name)
    challenger_version = options.challenger or _newest(client, name)
    if challenger_version == current:
        raise DecisionError(f"{name} v{challenger_version} is already the champion")
    challenger = _load(settings, name, challenger_version)
    champion = _load(settings, name, current) if current else None

    spec = challenger.model.spec
    leads = load_leads(options.data, spec, rejects_path=_rejects(settings, options.data))
    accepted, _ = label_values(leads.frame, spec)
    split = split_leads(leads.frame, accepted, spec)
    y = accepted.loc[split.test].to_numpy(dtype=int)
    contenders = _contenders(challenger, champion, leads, accepted, split)
    target = challenger.policy.acceptance_target if challenger.policy else None
    gate_rules = GateRules.from_config(load_train_config(settings.train_config).gate, target)
    backtest, decision = compare(
        y, *contenders, gate_rules=gate_rules, n_boot=options.n_boot, seed=options.seed
    )
    promoted = decision.promote and options.promote
    if promoted:
        promote(name, challenger.version, f"sal evaluate: {decision.reason}")
    window = split.windows.get("test")
    scores = {c.name: c.p for c in contenders if c is not None}
    report = _report(challenger, champion, backtest, decision, promoted, y, scores, window)
    path = report.write(settings.reports_dir / f"evaluate-{name}-v{challenger.version}.html")
    run_id = _log_decision(
        settings,
        kind="evaluate",
        name=name,
        tags={
            "challenger": challenger.version,
            "champion": current or "none",
            "promote": str(decision.promote).lower(),
            "promoted": str(promoted).lower(),
            "reason": decision.reason[:5000],
        },
        metrics=_metrics(backtest),
        report=path,
    )
    client.set_model_version_tag(name, challenger.version, "evaluation", decision.reason[:4000])
    return EvaluationRun(
        challenger=challenger.version,
        champion=current,
        decision=decision,
        backtest=backtest,
        promoted=promoted,
        report=path,
        run_id=run_id,
        window=window,
    )


def rollback(
    name: str, settings: PipelineSettings, to: str | None = None, reason: str = ""
) -> tuple[str, str]:
    """Point `champion` at `to` (default: the version promoted before the current one)."""
    client = MlflowClient(tracking_uri=settings.tracking_uri)
    mlflow.set_tracking_uri(settings.tracking_uri)
    current = champion_version(name)
    if current is None:
        raise DecisionError(f"{name} has no champion to roll back")
    target = to or rollback_target(name)
    if target is None:
        raise DecisionError(f"{name} v{current} is the only version ever promoted; pass --to")
    try:
        client.get_model_version(name, target)
    except MlflowException as exc:
        raise DecisionError(f"{name} has no version {target}") from exc
    if target == current:
        raise DecisionError(f"{name} v{target} is already the champion")
    why = f"rollback from v{current}" + (f": {reason}" if reason else "")
    promote(name, target, why)
    _log_decision(
        settings,
        kind="rollback",
        name=name,
        tags={"from": current, "to": target, "reason": why},
        metrics={},
        report=None,
    )
    return current, target


# -- scoring the slice ---------------------------------------------------------------------------
def _contenders(
    challenger: LoadedModel,
    champion: LoadedModel | None,
    leads: Leads,
    accepted: pd.Series,
    split: Split,
) -> tuple[Contender, Contender | None, Contender]:
    """Challenger, champion (None if there is none) and the rule criteria on the test slice."""
    # The file was validated with the challenger's spec: its clean view is the challenger's.
    scored = challenger.model.predict_clean(leads.clean.loc[split.test])
    rival = None
    if champion is not None:
        try:  # the champion reads the raw leads through its own spec
            p_champion = champion.model.predict(leads.frame.loc[split.test])["p_accept"]
        except Exception as exc:  # e.g. trained on a spec whose columns this file lacks
            raise DecisionError(
                f"champion v{champion.version} cannot score this file: {exc}"
            ) from exc
        rival = Contender(_label(champion), p_champion.to_numpy(), champion.routing_threshold)
    # The rules' score mapped to a probability on the validation leads, as in training.
    model = challenger.model
    valid_rules = model.criteria.score(leads.clean.loc[split.valid], model.spec).total
    to_probability = fit_rule_calibration(valid_rules, accepted.loc[split.valid])
    rules = Contender(
        RULES,
        to_probability(scored["rule_score"].to_numpy()),
        None,
        routed=scored["rule_pass"].to_numpy(dtype=bool),
    )
    p = scored["p_accept"].to_numpy()
    return Contender(_label(challenger), p, challenger.routing_threshold), rival, rules


def _load(settings: PipelineSettings, name: str, version: str) -> LoadedModel:
    try:
        return load_version(settings.tracking_uri, name, version, DEFAULT_ROUTING_THRESHOLD)
    except MlflowException as exc:
        raise DecisionError(f"{name} has no version {version}: {exc}") from exc


def _newest(client: MlflowClient, name: str) -> str:
    versions = [int(v.version) for v in client.search_model_versions(f"name = '{name}'")]
    if not versions:
        raise DecisionError(f"no registered versions of {name}; run `sal train` first")
    return str(max(versions))


def _label(loaded: LoadedModel) -> str:
    """A contender's name in tables and reasons ("v3"): the gate's wording gives the role."""
    return f"v{loaded.version}"


def _rejects(settings: PipelineSettings, data: Path) -> Path:
    return settings.data_dir / "rejects" / f"{data.stem}.evaluate.rejects.csv"


# -- recording -----------------------------------------------------------------------------------
def _metrics(backtest: Backtest) -> dict[str, float]:
    metrics: dict[str, float] = {}
    for row in backtest.table.to_dict("records"):
        key = row["name"].split(" v")[0].replace(" ", "_")
        for column in ("roc_auc", "roc_auc_low", "roc_auc_high", "ece", "routed_rate"):
            value = row.get(column)
            if value is not None and np.isfinite(value):
                metrics[f"{key}_{column}"] = float(value)
    return metrics


def _log_decision(
    settings: PipelineSettings,
    *,
    kind: str,
    name: str,
    tags: dict[str, str],
    metrics: dict[str, float],
    report: Path | None,
) -> str:
    use_experiment(settings, f"{settings.experiment}-decisions")
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M")
    with mlflow.start_run(run_name=f"{kind} {name} {stamp}") as run:
        mlflow.set_tags({"kind": kind, "model_name": name, **tags})
        if metrics:
            mlflow.log_metrics(metrics)
        if report is not None:
            mlflow.log_artifact(str(report))
        return run.info.run_id


def _report(
    challenger: LoadedModel,
    champion: LoadedModel | None,
    backtest: Backtest,
    decision: Decision,
    promoted: bool,
    y: np.ndarray,
    scores: dict[str, np.ndarray],
    window: tuple[str, str] | None,
) -> Report:
    title = f"{challenger.name}: challenger v{challenger.version} vs " + (
        f"champion v{champion.version}" if champion else "no champion"
    )
    span = f"{window[0]} to {window[1]}" if window else "the spec's test slice"
    report = Report(title, f"backtest on {backtest.rows:,} recent leads ({span})")
    report.section("Decision")
    verdict = (
        "promoted to champion"
        if promoted
        else (
            "passes the gate (not promoted: --no-promote)" if decision.promote else "not promoted"
        )
    )
    report.callout(f"{verdict}. {decision.reason}", "ok" if decision.promote else "warn")
    report.facts({check: "pass" if ok else "FAIL" for check, ok in decision.checks.items()})
    report.section(
        "Bootstrap",
        f"{backtest.n_boot:,} paired resamples of the same leads; intervals at "
        f"{backtest.confidence:.0%}.",
    )
    report.table(backtest.table, "Per contender")
    report.table(backtest.deltas, "Paired differences")
    intervals = backtest.table.rename(
        columns={"roc_auc": "estimate", "roc_auc_low": "low", "roc_auc_high": "high"}
    )[["name", "estimate", "low", "high"]]
    report.figure(plots.bootstrap_figure(intervals, "ROC AUC with intervals", "ROC AUC"), "ROC AUC")
    report.section("Curves on the same leads")
    report.figure(plots.roc_figure(y, scores), "ROC curve, rule criteria on the same axes")
    report.figure(plots.reliability_figure(y, scores), "Reliability (calibration)")
    report.figure(plots.gains_figure(y, scores), "Cumulative gains")
    return report
