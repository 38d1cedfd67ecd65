"""The training run: composes the stages and records everything in one MLflow run.

load + validate -> labels -> split -> leakage audit -> fit -> baselines -> evaluate -> log
-> register
"""

from __future__ import annotations

import json
import logging
import tempfile
import time
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import sklearn

from models.acceptance import AcceptanceModel
from models.criteria import Criteria, load_criteria
from models.features import normalize
from models.pyfunc import (
    ARTIFACT_KEY,
    input_example,
    save_acceptance_model,
    signature_for,
    to_signature_types,
)
from models.spec import DatasetSpec, SpecError, load_spec
from pipeline import plots
from pipeline.audit import AuditReport, audit_leakage
from pipeline.baselines import fit_logistic, fit_rule_calibration, predict_logistic
from pipeline.config import TrainConfig, load_train_config
from pipeline.evaluate import Evaluation, evaluate
from pipeline.load import Leads, describe_errors, label_values, load_leads
from pipeline.register import Registration, current_champion, register
from pipeline.settings import PipelineSettings
from pipeline.split import Split, split_leads
from pipeline.train import Slice, fit

log = logging.getLogger(__name__)

_STAGES = 8


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


def train_from_file(inputs: TrainInputs, settings: PipelineSettings) -> TrainSummary:
    """Run the whole pipeline on one leads file and return the run's summary."""
    started = time.perf_counter()
    spec = load_spec(inputs.spec)
    criteria = _criteria(inputs, spec)
    config = load_train_config(inputs.config or settings.train_config)
    with _stage(1, "load and validate", inputs.data):
        rejects = (
            inputs.rejects
            or settings.data_dir / "rejects" / f"{Path(inputs.data).stem}.rejects.csv"
        )
        leads = load_leads(inputs.data, spec, rejects_path=rejects)
    _configure_mlflow(settings)
    with mlflow.start_run() as run:
        summary = _train_and_log(leads, spec, criteria, config, inputs, settings, run.info.run_id)
    summary.seconds = round(time.perf_counter() - started, 1)
    return summary


def _train_and_log(
    leads: Leads,
    spec: DatasetSpec,
    criteria: Criteria,
    config: TrainConfig,
    inputs: TrainInputs,
    settings: PipelineSettings,
    run_id: str,
) -> TrainSummary:
    with _stage(2, "labels and split"):
        accepted, sql = label_values(leads.frame, spec)
        split = split_leads(leads.frame, accepted, spec, seed=config.seed)
        clean = normalize(leads.frame, spec)
    with _stage(3, "leakage audit"):
        audit = audit_leakage(clean.loc[split.train], accepted.loc[split.train], spec, config.seed)
        model_spec = _without(spec, audit.excluded)
    with _stage(4, "fit and calibrate"):
        model = fit(
            *(_slice(clean, accepted, sql, split, s) for s in ("train", "valid")),
            model_spec,
            criteria,
            config,
        )
        model.metadata.update(_model_metadata(leads, split, audit, spec))
    with _stage(5, "baselines and evaluation"):
        test = _slice(clean, accepted, sql, split, "test")
        scores, evaluation, sql_eval = _evaluate(model, clean, accepted, sql, split, test, config)
    with _stage(6, "log to MLflow"):
        _log_run(
            leads,
            spec,
            criteria,
            config,
            inputs,
            split,
            audit,
            evaluation,
            sql_eval,
            scores,
            test,
            model,
        )
        model_info = _log_model(model, leads.frame.loc[split.test])
    with _stage(7, "compare with the champion and register"):
        name = settings.model_name or inputs.model_name or spec.model_name or "lead-acceptance"
        registration = _register(
            model_info.model_uri, name, leads, split, accepted, evaluation, config, spec, criteria
        )
    with _stage(8, "summary"):
        summary = _summary(
            run_id, settings, registration, leads, accepted, split, audit, evaluation, sql_eval
        )
        mlflow.log_dict(summary.to_dict(), "summary.json")
    return summary


# -- stages ---------------------------------------------------------------------------------------
def _criteria(inputs: TrainInputs, spec: DatasetSpec) -> Criteria:
    path = inputs.criteria or spec.criteria_path
    if path is None:
        raise SpecError(f"spec {spec.name!r} names no criteria file; pass --criteria")
    return load_criteria(path, spec)


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
    clean: pd.DataFrame,
    accepted: pd.Series,
    sql: pd.Series | None,
    split: Split,
    test: Slice,
    config: TrainConfig,
) -> tuple[dict[str, np.ndarray], Evaluation, Evaluation | None]:
    valid_rules = model.criteria.score(clean.loc[split.valid], model.spec).total
    predicted = model.predict_clean(test.clean)
    logistic = fit_logistic(
        clean.loc[split.train],
        accepted.loc[split.train],
        model.spec,
        model.feature_names,
        config.logistic_max_rows,
        config.seed,
    )
    rules_to_accept = fit_rule_calibration(valid_rules, accepted.loc[split.valid])
    scores = {
        "model": predicted["p_accept"].to_numpy(),
        "rules": rules_to_accept(predicted["rule_score"].to_numpy()),
        "logistic": predict_logistic(logistic, test.clean),
    }
    segments = test.clean[list(model.spec.segments)]
    evaluation = evaluate(test.accepted, scores, segments)
    if model.sql is None or sql is None or test.sql is None:
        return scores, evaluation, None
    # The rules are calibrated to P(SQL) separately, so calibration metrics compare like with like.
    rules_to_sql = fit_rule_calibration(valid_rules, sql.loc[split.valid])
    known = test.sql.notna().to_numpy()
    sql_scores = {
        "model": predicted["p_sql"].to_numpy()[known],
        "rules": rules_to_sql(predicted["rule_score"].to_numpy()[known]),
    }
    return scores, evaluation, evaluate(test.sql[known], sql_scores, segments[known])


def _model_metadata(leads: Leads, split: Split, audit: AuditReport, spec: DatasetSpec) -> dict:
    return {
        "spec": spec.name,
        "spec_digest": spec.digest(),
        "data_sha256": leads.report.sha256,
        "split": split.describe(),
        "excluded_by_audit": audit.excluded,
        "trained_at": pd.Timestamp.now(tz="UTC").isoformat(),
    }


def _log_run(
    leads: Leads,
    spec: DatasetSpec,
    criteria: Criteria,
    config: TrainConfig,
    inputs: TrainInputs,
    split: Split,
    audit: AuditReport,
    evaluation: Evaluation,
    sql_eval: Evaluation | None,
    scores: dict[str, np.ndarray],
    test: Slice,
    model: AcceptanceModel,
) -> None:
    mlflow.set_tags(
        {
            "spec": spec.name,
            "spec_digest": spec.digest(),
            "criteria_version": criteria.version_id,
            "data_sha256": leads.report.sha256,
        }
    )
    mlflow.log_params(_params(config, spec, criteria, split, model, leads))
    mlflow.log_metrics(_metrics(evaluation, sql_eval, leads))
    _log_dataset(leads, spec, test)
    for path in (spec.source_path, criteria_path(inputs, spec), inputs.config):
        if path is not None:
            mlflow.log_artifact(str(path), artifact_path="config")
    mlflow.log_dict(
        leads.report.summary() | {"first_problems": describe_errors(leads.report, 0)},
        "data/load_report.json",
    )
    mlflow.log_dict(
        {"findings": audit.describe(), "single_column_auc": audit.single_column_auc},
        "audit/leakage.json",
    )
    mlflow.log_text(evaluation.overall.to_csv(), "evaluation/metrics.csv")
    mlflow.log_text(evaluation.segments.to_csv(index=False), "evaluation/segments.csv")
    _log_figures(test.accepted.to_numpy(dtype=float), scores, model)


def criteria_path(inputs: TrainInputs, spec: DatasetSpec) -> Path | None:
    return inputs.criteria or spec.criteria_path


def _params(
    config: TrainConfig,
    spec: DatasetSpec,
    criteria: Criteria,
    split: Split,
    model: AcceptanceModel,
    leads: Leads,
) -> dict[str, Any]:
    params = {f"lgb_{k}": v for k, v in config.lightgbm.items()}
    params |= {
        "num_boost_round": config.num_boost_round,
        "early_stopping_rounds": config.early_stopping_rounds,
        "best_iteration_accept": model.accept.booster.current_iteration(),
        "best_iteration_sql": model.sql.booster.current_iteration() if model.sql else None,
        "encoder_min_frequency": config.encoder.min_frequency,
        "encoder_max_categories": config.encoder.max_categories,
        "seed": config.seed,
        "spec": spec.name,
        "criteria": criteria.version_id,
        "split_method": split.method,
        "rows_train": len(split.train),
        "rows_valid": len(split.valid),
        "rows_test": len(split.test),
        "n_features": len(model.feature_names),
        "data_rows_read": leads.report.rows_read,
        "lightgbm_version": lightgbm.__version__,
        "sklearn_version": sklearn.__version__,
    }
    return params


def _metrics(evaluation: Evaluation, sql_eval: Evaluation | None, leads: Leads) -> dict[str, float]:
    metrics = {
        "rows_rejected": float(leads.report.rows_rejected),
        "test_base_rate": evaluation.base_rate,
    }
    for scorer, row in evaluation.overall.iterrows():
        metrics |= {f"test_{scorer}_{k}": float(v) for k, v in row.items() if np.isfinite(v)}
    if sql_eval is not None:
        for scorer, row in sql_eval.overall.iterrows():
            metrics |= {
                f"test_sql_{scorer}_{k}": float(v) for k, v in row.items() if np.isfinite(v)
            }
    for rec in evaluation.segments.itertuples():
        if rec.scorer in ("model", "rules") and np.isfinite(rec.roc_auc):
            key = _metric_key(f"segment_{rec.segment}_{rec.value}_{rec.scorer}_roc_auc")
            metrics[key] = float(rec.roc_auc)
    return metrics


def _metric_key(text: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces only.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def _log_dataset(leads: Leads, spec: DatasetSpec, test: Slice) -> None:
    # The PII-free clean view stands for the data; the digest is the file's own hash.
    frame = test.clean.assign(accepted=test.accepted.to_numpy())
    with warnings.catch_warnings():
        # A local path matches two of MLflow's artifact source types; either reads it the same.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            frame,
            source=str(Path(leads.report.path).resolve()),
            targets="accepted",
            name=spec.name,
            digest=leads.report.sha256[:16],
        )
    mlflow.log_input(dataset, context="test")


def _log_figures(y: np.ndarray, scores: dict[str, np.ndarray], model: AcceptanceModel) -> None:
    figures = {
        "roc.png": plots.roc_figure(y, scores),
        "pr.png": plots.pr_figure(y, scores),
        "reliability.png": plots.reliability_figure(y, scores),
        "gains.png": plots.gains_figure(y, scores),
        "importance.png": plots.importance_figure(model.accept.importance(model.feature_names)),
    }
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}")


def _log_model(model: AcceptanceModel, test_leads: pd.DataFrame) -> mlflow.models.model.ModelInfo:
    with tempfile.TemporaryDirectory() as tmp:
        path = save_acceptance_model(model, Path(tmp) / "acceptance_model.pkl")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(Path(__file__).resolve().parent.parent / "models" / "mlflow_entry.py"),
            artifacts={ARTIFACT_KEY: str(path)},
            code_paths=[str(Path(__file__).resolve().parent.parent / "models")],
            signature=signature_for(model),
            input_example=input_example(test_leads, model.spec),
            pip_requirements=_requirements(),
        )


def _requirements() -> list[str]:
    import pydantic
    import yaml

    return [
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"pydantic=={pydantic.__version__}",
        f"pyyaml=={yaml.__version__}",
    ]


def _register(
    model_uri: str,
    name: str,
    leads: Leads,
    split: Split,
    accepted: pd.Series,
    evaluation: Evaluation,
    config: TrainConfig,
    spec: DatasetSpec,
    criteria: Criteria,
) -> Registration:
    test_leads = to_signature_types(leads.frame.loc[split.test], spec)
    champion = current_champion(name, test_leads, accepted.loc[split.test])
    tags = {
        "spec": spec.name,
        "spec_digest": spec.digest(),
        "criteria_version": criteria.version_id,
        "data_sha256": leads.report.sha256,
        "test_roc_auc": f"{evaluation.metric('model', 'roc_auc'):.4f}",
    }
    return register(
        model_uri,
        name,
        evaluation.metric("model", "roc_auc"),
        evaluation.metric("rules", "roc_auc"),
        champion,
        config.gate,
        tags,
    )


def _summary(
    run_id: str,
    settings: PipelineSettings,
    registration: Registration,
    leads: Leads,
    accepted: pd.Series,
    split: Split,
    audit: AuditReport,
    evaluation: Evaluation,
    sql_eval: Evaluation | None,
) -> TrainSummary:
    data = {
        "path": leads.report.path,
        "rows_read": leads.report.rows_read,
        "rows_rejected": leads.report.rows_rejected,
        "rejects_path": leads.report.rejects_path,
        "labelled": int(accepted.notna().sum()),
        "undecided": int(accepted.isna().sum()),
        "acceptance_rate": round(float(accepted.mean()), 4),
        "split": split.describe(),
    }
    return TrainSummary(
        run_id=run_id,
        experiment=settings.experiment,
        model_name=registration.model_name,
        model_version=registration.version,
        champion_moved=registration.champion_moved,
        champion_reason=registration.reason,
        data=data,
        leakage=audit.describe(),
        metrics=_rounded(evaluation.overall),
        sql_metrics=_rounded(sql_eval.overall) if sql_eval is not None else {},
        warnings=leads.report.warnings,
    )


def _rounded(table: pd.DataFrame) -> dict[str, dict[str, float]]:
    return {
        scorer: {k: round(float(v), 4) for k, v in row.items()} for scorer, row in table.iterrows()
    }


def _configure_mlflow(settings: PipelineSettings) -> None:
    mlflow.set_tracking_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(settings.experiment) is None:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(
            settings.experiment, artifact_location=settings.artifact_root.as_uri()
        )
    mlflow.set_experiment(settings.experiment)


@contextmanager
def _stage(number: int, title: str, detail: object = "") -> Iterator[None]:
    started = time.perf_counter()
    log.info("[%d/%d] %s %s", number, _STAGES, title, detail or "")
    yield
    log.info("[%d/%d] %s done in %.1f s", number, _STAGES, title, time.perf_counter() - started)


def summary_json(summary: TrainSummary) -> str:
    return json.dumps(summary.to_dict(), indent=2, default=str)
