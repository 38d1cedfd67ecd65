"""Tracking: what a training run writes to MLflow (params, metrics, files, figures, the model).

Personal raw values never get here: the data is represented by its clean view and the file's hash,
and the model's input example has personal values replaced by placeholders.
"""

from __future__ import annotations

import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import lightgbm
import mlflow
import numpy as np
import pandas as pd
import sklearn

from models.acceptance import ARTIFACT_KEY, AcceptanceModel, save_acceptance_model
from models.criteria import Criteria
from models.pyfunc import input_example, signature_for
from models.spec import DatasetSpec
from pipeline import plots
from pipeline.audit import AuditReport
from pipeline.config import TrainConfig
from pipeline.evaluate import Evaluation
from pipeline.load import Leads, describe_errors
from pipeline.routing import RoutingEvidence
from pipeline.settings import PipelineSettings
from pipeline.split import Split
from pipeline.train import Slice

_MODELS_DIR = Path(__file__).resolve().parent.parent / "models"


@dataclass(frozen=True)
class RunRecord:
    """What one training run produced, as logged to MLflow and summarised."""

    leads: Leads
    accepted: pd.Series  # the acceptance label of every kept lead (NaN: undecided)
    spec: DatasetSpec
    criteria: Criteria
    config: TrainConfig
    files: tuple[Path, ...]  # spec, criteria and training config as used
    split: Split
    audit: AuditReport
    model: AcceptanceModel
    test: Slice
    scores: dict[str, np.ndarray]
    evaluation: Evaluation
    sql_evaluation: Evaluation | None
    routing: RoutingEvidence
    test_rule_pass: np.ndarray  # the rule criteria's pass/fail on the test slice


def use_experiment(settings: PipelineSettings, name: str) -> None:
    """Point MLflow at the settings' store and `name`, created with our artifact root."""
    mlflow.set_tracking_uri(settings.tracking_uri)
    if mlflow.get_experiment_by_name(name) is None:
        settings.artifact_root.mkdir(parents=True, exist_ok=True)
        mlflow.create_experiment(name, artifact_location=settings.artifact_root.as_uri())
    mlflow.set_experiment(name)


def log_run(record: RunRecord) -> None:
    """Tags, params, metrics, config files, dataset digest, reports and figures of the run."""
    mlflow.set_tags(
        {
            "spec": record.spec.name,
            "spec_digest": record.spec.digest(),
            "criteria_version": record.criteria.version_id,
            "data_sha256": record.leads.report.sha256,
        }
    )
    mlflow.log_params(_params(record))
    mlflow.log_metrics(_metrics(record))
    _log_dataset(record)
    for path in record.files:
        mlflow.log_artifact(str(path), artifact_path="config")
    report = record.leads.report
    mlflow.log_dict(
        report.summary() | {"first_problems": describe_errors(report, 0)}, "data/load_report.json"
    )
    mlflow.log_dict(
        {"findings": record.audit.describe(), "single_column_auc": record.audit.single_column_auc},
        "audit/leakage.json",
    )
    mlflow.log_text(record.evaluation.overall.to_csv(), "evaluation/metrics.csv")
    mlflow.log_text(record.evaluation.segments.to_csv(index=False), "evaluation/segments.csv")
    mlflow.log_dict(record.routing.to_dict(), "routing/policy.json")
    mlflow.log_text(record.routing.curve.to_csv(index=False), "routing/threshold_curve.csv")
    mlflow.log_dict(record.model.metadata["profile"], "monitoring/profile.json")
    mlflow.log_dict(record.model.metadata["card"], "model_card.json")
    _log_figures(record)


def log_model(model: AcceptanceModel, test_leads: pd.DataFrame) -> mlflow.models.model.ModelInfo:
    """The pyfunc (models-from-code entry + pickled AcceptanceModel), signature from the spec."""
    with tempfile.TemporaryDirectory() as tmp:
        path = save_acceptance_model(model, Path(tmp) / "acceptance_model.pkl")
        return mlflow.pyfunc.log_model(
            name="model",
            python_model=str(_MODELS_DIR / "mlflow_entry.py"),
            artifacts={ARTIFACT_KEY: str(path)},
            code_paths=[str(_MODELS_DIR)],
            signature=signature_for(model),
            input_example=input_example(test_leads, model.spec),
            pip_requirements=_requirements(),
        )


def _params(record: RunRecord) -> dict[str, Any]:
    config, model, split = record.config, record.model, record.split
    params = {f"lgb_{k}": v for k, v in config.lightgbm.items()}
    params |= {
        "num_boost_round": config.num_boost_round,
        "early_stopping_rounds": config.early_stopping_rounds,
        "best_iteration_accept": model.accept.booster.current_iteration(),
        "best_iteration_sql": model.sql.booster.current_iteration() if model.sql else None,
        "encoder_min_frequency": config.encoder.min_frequency,
        "encoder_max_categories": config.encoder.max_categories,
        "seed": config.seed,
        "spec": record.spec.name,
        "criteria": record.criteria.version_id,
        "split_method": split.method,
        "rows_train": len(split.train),
        "rows_valid": len(split.valid),
        "rows_test": len(split.test),
        "n_features": len(model.feature_names),
        "excluded_by_audit": ",".join(record.audit.excluded) or "none",
        "data_rows_read": record.leads.report.rows_read,
        "lightgbm_version": lightgbm.__version__,
        "sklearn_version": sklearn.__version__,
    }
    return params


def _metrics(record: RunRecord) -> dict[str, float]:
    metrics = {
        "rows_rejected": float(record.leads.report.rows_rejected),
        "test_base_rate": record.evaluation.base_rate,
        **record.routing.metrics(),
    }
    tables = {"test": record.evaluation, "test_sql": record.sql_evaluation}
    for prefix, evaluation in tables.items():
        if evaluation is None:
            continue
        for scorer, row in evaluation.overall.iterrows():
            metrics |= {
                f"{prefix}_{scorer}_{k}": float(v) for k, v in row.items() if np.isfinite(v)
            }
    for rec in record.evaluation.segments.itertuples():
        if rec.scorer in ("model", "rules") and np.isfinite(rec.roc_auc):
            key = _metric_key(f"segment_{rec.segment}_{rec.value}_{rec.scorer}_roc_auc")
            metrics[key] = float(rec.roc_auc)
    return metrics


def _metric_key(text: str) -> str:
    # MLflow metric names allow letters, digits, _ - . / and spaces only.
    return "".join(ch if ch.isalnum() or ch in "_-./ " else "_" for ch in text)


def _log_dataset(record: RunRecord) -> None:
    # The PII-free clean view stands for the data; the digest is the file's own hash.
    frame = record.test.clean.assign(accepted=record.test.accepted.to_numpy())
    with warnings.catch_warnings():
        # A local path matches two of MLflow's artifact source types; either reads it the same.
        warnings.simplefilter("ignore", UserWarning)
        dataset = mlflow.data.from_pandas(
            frame,
            source=str(Path(record.leads.report.path).resolve()),
            targets="accepted",
            name=record.spec.name,
            digest=record.leads.report.sha256[:16],
        )
    mlflow.log_input(dataset, context="test")


def _log_figures(record: RunRecord) -> None:
    y, scores, model = record.test.accepted.to_numpy(dtype=float), record.scores, record.model
    figures = {
        "roc.png": plots.roc_figure(y, scores),
        "pr.png": plots.pr_figure(y, scores),
        "reliability.png": plots.reliability_figure(y, scores),
        "gains.png": plots.gains_figure(y, scores),
        "importance.png": plots.importance_figure(model.accept.importance(model.feature_names)),
    }
    for name, figure in figures.items():
        mlflow.log_figure(figure, f"plots/{name}")


def _requirements() -> list[str]:
    import numba
    import pydantic
    import yaml

    return [
        f"lightgbm=={lightgbm.__version__}",
        f"scikit-learn=={sklearn.__version__}",
        f"pandas=={pd.__version__}",
        f"numpy=={np.__version__}",
        f"mlflow=={mlflow.__version__}",
        f"numba=={numba.__version__}",
        f"pydantic=={pydantic.__version__}",
        f"pyyaml=={yaml.__version__}",
    ]
