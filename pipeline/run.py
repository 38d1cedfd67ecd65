"""The training run: composes the stages and records everything in one MLflow run.

load + validate -> labels -> split -> leakage audit -> fit -> baselines -> evaluate -> log
-> register
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import mlflow
import numpy as np
import pandas as pd

from models.acceptance import AcceptanceModel
from models.criteria import Criteria, load_criteria
from models.features import parse_timestamps
from models.profile import build_profile
from models.pyfunc import to_signature_types
from models.registry import CARD_ARTIFACT, REPORT_ARTIFACT
from models.spec import DatasetSpec, SpecError, load_spec
from models.uris import DEFAULT_MODEL_NAME
from pipeline.audit import AuditReport, audit_leakage
from pipeline.backtest import RULES, Contender, GateRules, compare
from pipeline.baselines import fit_logistic, fit_rule_calibration, predict_logistic
from pipeline.config import RoutingConfig, TrainConfig, load_train_config
from pipeline.evaluate import Evaluation, evaluate
from pipeline.load import Leads, label_values, load_leads
from pipeline.register import Champion, Registration, current_champion, register
from pipeline.routing import Held, RoutingEvidence, choose_routing
from pipeline.settings import PipelineSettings
from pipeline.split import Split, split_leads
from pipeline.tracking import RunRecord, log_model, log_run, use_experiment
from pipeline.train import Slice, fit
from pipeline.train_report import model_card, training_report

log = logging.getLogger(__name__)

_STAGES = 7


@dataclass
class TrainSummary:
    """What a run did, for people (CLI text) and scripts (--json)."""

    run_id: str
    experiment: str
    model_name: str
    model_version: str
    champion_moved: bool
    champion_reason: str
    data: dict[str, Any]
    leakage: list[dict[str, str]]
    metrics: dict[str, dict[str, float]]
    sql_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    routing: dict[str, Any] = field(default_factory=dict)
    report: str = ""
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainInputs:
    data: Path
    spec: Path
    criteria: Path | None = None
    config: Path | None = None
    model_name: str | None = None
    rejects: Path | None = None
    routing_target: float | None = None  # overrides the config's acceptance-rate target
    split: str | None = None  # overrides the spec's split method ("time", "order", "stratified")


def train_from_file(inputs: TrainInputs, settings: PipelineSettings) -> TrainSummary:
    """Run the whole pipeline on one leads file and return the run's summary."""
    started = time.perf_counter()
    spec = load_spec(inputs.spec)
    if inputs.split is not None:
        spec = _with_split(spec, inputs.split)
    criteria_file = inputs.criteria or spec.criteria_path
    if criteria_file is None:
        raise SpecError(f"spec {spec.name!r} names no criteria file; pass --criteria")
    config_file = inputs.config or settings.train_config
    files = (inputs.spec, criteria_file, config_file)
    config = load_train_config(config_file)
    if inputs.routing_target is not None:
        routing = config.routing.model_copy(update={"target": inputs.routing_target})
        config = config.model_copy(update={"routing": RoutingConfig.model_validate(routing)})
    criteria = load_criteria(criteria_file, spec)  # every file checked before reading the data
    with _stage(1, "load and validate", inputs.data):
        rejects = (
            inputs.rejects or settings.data_dir / "rejects" / f"{inputs.data.stem}.rejects.csv"
        )
        leads = load_leads(inputs.data, spec, rejects_path=rejects)
    use_experiment(settings, settings.experiment)
    with mlflow.start_run() as run:
        record = _train(leads, spec, criteria, config, files)
        with _stage(6, "log to MLflow"):
            log_run(record)
            model_info = log_model(record.model, leads.frame.loc[record.split.test])
        with _stage(7, "compare with the champion and register"):
            name = settings.model_name or inputs.model_name or spec.model_name or DEFAULT_MODEL_NAME
            registration = _register(model_info.model_uri, name, record)
        summary = _summary(run.info.run_id, settings, registration, record)
        summary.report = str(_log_reports(record, registration.version, settings))
        mlflow.log_dict(summary.to_dict(), "summary.json")
    summary.seconds = round(time.perf_counter() - started, 1)
    return summary


def _train(
    leads: Leads,
    spec: DatasetSpec,
    criteria: Criteria,
    config: TrainConfig,
    files: tuple[Path, ...],
) -> RunRecord:
    with _stage(2, "labels and split"):
        accepted, sql = label_values(leads.frame, spec)
        split = split_leads(leads.frame, accepted, spec, seed=config.seed)
        clean = leads.clean
        slices = {
            name: _slice(clean, accepted, sql, split, name) for name in ("train", "valid", "test")
        }
    with _stage(3, "leakage audit"):
        audit = audit_leakage(slices["train"].clean, slices["train"].accepted, spec, config.seed)
    with _stage(4, "fit and calibrate"):
        model = fit(
            slices["train"], slices["valid"], _without(spec, audit.excluded), criteria, config
        )
        model.metadata.update(
            spec=spec.name,
            spec_digest=spec.digest(),
            data_sha256=leads.report.sha256,
            split=split.describe(),
            excluded_by_audit=audit.excluded,
            trained_at=pd.Timestamp.now(tz="UTC").isoformat(),
        )
    with _stage(5, "baselines, evaluation and routing policy"):
        # Each held-out slice is scored once; evaluation, routing and the gate all read these.
        predicted = {name: model.predict_clean(slices[name].clean) for name in ("valid", "test")}
        scores, evaluation, sql_evaluation = _evaluate(model, slices, predicted, config)
        routing = _routing(slices, predicted, leads.frame, model.spec, config)
        # Stored in the model itself, so whatever serves or monitors it has them at hand. The
        # profile: inputs as the model learnt them (training slice), scores out of sample (test).
        model.metadata.update(
            routing_policy=routing.policy.to_dict(),
            profile=build_profile(
                slices["train"].clean, model.spec, scores["model"], model.feature_names
            ),
        )
        model.metadata["card"] = _card(model, split, evaluation, sql_evaluation, routing, audit)
    return RunRecord(
        leads=leads,
        accepted=accepted,
        spec=spec,
        criteria=criteria,
        config=config,
        files=files,
        split=split,
        audit=audit,
        model=model,
        test=slices["test"],
        scores=scores,
        evaluation=evaluation,
        sql_evaluation=sql_evaluation,
        routing=routing,
        test_rule_pass=predicted["test"]["rule_pass"].to_numpy(dtype=bool),
    )


def _routing(
    slices: dict[str, Slice],
    predicted: dict[str, pd.DataFrame],
    frame: pd.DataFrame,
    spec: DatasetSpec,
    config: TrainConfig,
) -> RoutingEvidence:
    """The policy chosen on the validation slice and checked on the later test slice."""

    def held(name: str) -> Held:
        part, scored = slices[name], predicted[name]
        return Held(
            p_accept=scored["p_accept"].to_numpy(),
            accepted=part.accepted.to_numpy(dtype=int),
            rule_pass=scored["rule_pass"].to_numpy(dtype=bool),
            timestamps=(
                parse_timestamps(frame.loc[part.clean.index, spec.timestamp])
                if spec.timestamp
                else None
            ),
        )

    return choose_routing(config.routing, held("valid"), held("test"))


def _card(
    model: AcceptanceModel,
    split: Split,
    evaluation: Evaluation,
    sql_evaluation: Evaluation | None,
    routing: RoutingEvidence,
    audit: AuditReport,
) -> dict[str, Any]:
    """The model card's facts (rendered by the service and the training report)."""
    importance = model.accept.importance(model.feature_names).head(10)
    window = split.windows.get("train")
    limits = [
        f"Trained on {len(split.train):,} labelled leads"
        + (f" ({window[0]} to {window[1]})" if window else "")
        + "; leads unlike these (new markets, sources or products) are scored with less evidence.",
        "Undecided leads are left out of training: if sales is slower to decide on some kinds of "
        "lead, those are under-represented.",
        "P(accept) is calibrated on the validation slice; recalibrate (retrain) when the live "
        "acceptance rate moves away from it (`sal monitor` checks).",
    ]
    if not routing.policy.met:
        limits.append(f"Routing promise not met: {routing.policy.note}")
    if audit.excluded:
        limits.append(f"Left out as likely leakage: {', '.join(audit.excluded)}.")
    return {
        "spec": model.spec.name,
        "criteria_version": model.criteria.version_id,
        "split": split.describe(),
        "metrics": _rounded(evaluation.overall),
        "sql_metrics": _rounded(sql_evaluation.overall) if sql_evaluation else {},
        # The policy itself is metadata["routing_policy"]; the card says what it did.
        "routing": {k: v for k, v in routing.to_dict().items() if k != "policy"},
        "top_features": {name: round(float(v), 4) for name, v in importance.items()},
        "limits": limits,
    }


def _log_reports(record: RunRecord, version: str, settings: PipelineSettings) -> Path:
    """Training report and model card: written under reports/ and logged to the run's `report/`
    under fixed names (where the service finds the champion's)."""
    stem = f"{record.spec.name}-v{version}"
    pages = (
        (training_report(record, version), f"train-{stem}.html", REPORT_ARTIFACT),
        (model_card(record, version), f"card-{stem}.html", CARD_ARTIFACT),
    )
    written = [page.write(settings.reports_dir / local) for page, local, _ in pages]
    for page, _, artifact in pages:
        mlflow.log_text(page.html(), f"report/{artifact}")  # the page as written, not re-read
    return written[0]


def _with_split(spec: DatasetSpec, method: str) -> DatasetSpec:
    data = spec.model_dump()
    data["split"]["method"] = method
    try:
        return DatasetSpec.model_validate({**data, "source_path": spec.source_path})
    except ValueError as exc:
        raise SpecError(f"--split {method}: {exc}") from exc


def _without(spec: DatasetSpec, excluded: list[str]) -> DatasetSpec:
    """The spec the model is trained on: audited-out fields removed from features and segments."""
    if not excluded:
        return spec
    fields = {n: f for n, f in spec.fields.items() if n not in excluded}
    segments = tuple(s for s in spec.segments if s not in excluded)
    return spec.model_copy(
        update={"fields": fields, "segments": segments, "exclude": (*spec.exclude, *excluded)}
    )


def _slice(
    clean: pd.DataFrame, accepted: pd.Series, sql: pd.Series | None, split: Split, name: str
) -> Slice:
    index = getattr(split, name)
    return Slice(
        clean=clean.loc[index],
        accepted=accepted.loc[index],
        sql=None if sql is None else sql.loc[index],
    )


def _evaluate(
    model: AcceptanceModel,
    slices: dict[str, Slice],
    predicted: dict[str, pd.DataFrame],
    config: TrainConfig,
) -> tuple[dict[str, np.ndarray], Evaluation, Evaluation | None]:
    """Model, rules and logistic regression on the same test leads (and P(SQL) vs the rules)."""
    train, valid, test = slices["train"], slices["valid"], slices["test"]
    valid_rules = predicted["valid"]["rule_score"]
    predicted = predicted["test"]
    logistic = fit_logistic(
        train.clean,
        train.accepted,
        model.spec,
        model.feature_names,
        config.logistic_max_rows,
        config.seed,
    )
    rules_to_accept = fit_rule_calibration(valid_rules, valid.accepted)
    scores = {
        "model": predicted["p_accept"].to_numpy(),
        "rules": rules_to_accept(predicted["rule_score"].to_numpy()),
        "logistic": predict_logistic(logistic, test.clean),
    }
    segments = test.clean[list(model.spec.segments)]
    evaluation = evaluate(test.accepted, scores, segments)
    if model.sql is None or test.sql is None or valid.sql is None:
        return scores, evaluation, None
    # The rules are calibrated to P(SQL) separately, so calibration metrics compare like with like.
    rules_to_sql = fit_rule_calibration(valid_rules, valid.sql)
    known = test.sql.notna().to_numpy()
    sql_scores = {
        "model": predicted["p_sql"].to_numpy()[known],
        "rules": rules_to_sql(predicted["rule_score"].to_numpy()[known]),
    }
    return scores, evaluation, evaluate(test.sql[known], sql_scores, segments[known])


def _register(model_uri: str, name: str, record: RunRecord) -> Registration:
    """Register the version; it takes `champion` if the gate passes on this run's test slice."""
    test_leads = to_signature_types(record.leads.frame.loc[record.split.test], record.spec)
    champion = current_champion(name, test_leads)
    promote_it, reason = _gate(record, champion)
    tags = {
        "spec": record.spec.name,
        "spec_digest": record.spec.digest(),
        "criteria_version": record.criteria.version_id,
        "data_sha256": record.leads.report.sha256,
        "test_roc_auc": f"{record.evaluation.metric('model', 'roc_auc'):.4f}",
        **record.routing.policy.tags(),
    }
    return register(model_uri, name, promote_it, reason, tags)


def _gate(record: RunRecord, champion: Champion | None) -> tuple[bool, str]:
    """The promotion gate (pipeline.backtest) with the champion re-scored on the same leads."""
    if champion is not None and champion.p_accept is None:
        return False, (
            f"champion v{champion.version} could not be scored on this test slice "
            f"({champion.problem}); compare them with `sal evaluate` or promote by hand"
        )
    policy, gate = record.routing.policy, record.config.gate
    candidate = Contender("the new model", record.scores["model"], policy.threshold)
    rivals = None
    if champion is not None:
        rivals = Contender(f"v{champion.version}", champion.p_accept, champion.routing_threshold)
    rules = Contender(RULES, record.scores["rules"], None, routed=record.test_rule_pass)
    # A first model only has to beat the rules: with no champion, an unmet routing promise is
    # flagged (routing_met=false) rather than leaving the service with nothing to serve.
    target = policy.acceptance_target if champion else None
    y = record.test.accepted.to_numpy(dtype=int)
    _, decision = compare(
        y,
        candidate,
        rivals,
        rules,
        GateRules.from_config(gate, target),
        gate.n_boot,
        record.config.seed,
    )
    if champion is None:
        flag = " A first model's routing promise is reported (routing_met), not required."
    else:
        flag = ""
    if not policy.met:
        flag += " Its routing promise is not met (best achievable, flagged)."
    return decision.promote, decision.reason + flag


def _summary(
    run_id: str, settings: PipelineSettings, registration: Registration, record: RunRecord
) -> TrainSummary:
    report = record.leads.report
    accepted = record.accepted  # labelled once, in stage 2
    data = {
        "path": report.path,
        "rows_read": report.rows_read,
        "rows_rejected": report.rows_rejected,
        "rejects_path": report.rejects_path,
        "labelled": int(accepted.notna().sum()),
        "undecided": int(accepted.isna().sum()),
        "acceptance_rate": round(float(accepted.mean()), 4),
        "split": record.split.describe(),
    }
    return TrainSummary(
        run_id=run_id,
        experiment=settings.experiment,
        model_name=registration.model_name,
        model_version=registration.version,
        champion_moved=registration.champion_moved,
        champion_reason=registration.reason,
        data=data,
        leakage=record.audit.describe(),
        metrics=_rounded(record.evaluation.overall),
        sql_metrics=_rounded(record.sql_evaluation.overall) if record.sql_evaluation else {},
        routing=record.routing.to_dict(),
        warnings=report.warnings,
    )


def _rounded(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {s: {k: round(float(v), 4) for k, v in row.items()} for s, row in table.iterrows()}


@contextmanager
def _stage(number: int, title: str, detail: object = "") -> Iterator[None]:
    started = time.perf_counter()
    log.info("[%d/%d] %s %s", number, _STAGES, title, detail or "")
    yield
    log.info("[%d/%d] %s done in %.1f s", number, _STAGES, title, time.perf_counter() - started)


def summary_json(summary: TrainSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2, default=str)
