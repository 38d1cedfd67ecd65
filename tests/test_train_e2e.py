"""End to end: a training run logs, registers and gates `champion` in a temporary MLflow store."""

from __future__ import annotations

import json
import re

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient
from typer.testing import CliRunner

from models.pyfunc import to_signature_types
from models.spec import load_spec
from pipeline.cli import app
from pipeline.load import load_leads
from pipeline.run import TrainInputs, train_from_file
from tests.conftest import ROOT


def test_run_registers_a_champion(trained) -> None:
    summary, settings, _ = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    version = client.get_model_version_by_alias(summary.model_name, "champion")
    assert summary.champion_moved and str(version.version) == summary.model_version == "1"
    assert version.tags["criteria_version"].startswith("1.0.0+")
    run = client.get_run(summary.run_id)
    assert run.data.metrics["test_model_roc_auc"] == pytest.approx(
        summary.metrics["model"]["roc_auc"], abs=1e-4
    )
    assert {
        "test_rules_roc_auc",
        "test_logistic_roc_auc",
        "test_model_ece",
        "test_sql_model_roc_auc",
        "test_model_top_decile_lift",
    } <= set(run.data.metrics)
    assert any(k.startswith("segment_lead_source_") for k in run.data.metrics)
    assert run.inputs.dataset_inputs[0].dataset.digest
    artifacts = _artifact_paths(client, summary.run_id)
    assert {
        "plots/roc.png",
        "plots/pr.png",
        "plots/reliability.png",
        "plots/gains.png",
        "plots/importance.png",
        "config/builtin.yaml",
        "config/default.yaml",
        "config/train.yaml",
        "audit/leakage.json",
        "summary.json",
        "evaluation/segments.csv",
    } <= artifacts


def test_logged_model_scores_like_the_training_run(trained, builtin_csv) -> None:
    summary, settings, _ = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    pyfunc = mlflow.pyfunc.load_model(f"models:/{summary.model_name}/1")
    inner = pyfunc.unwrap_python_model().model
    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    raw = load_leads(builtin_csv, spec).frame.head(300)
    # Same scores whether the leads arrive as file text (in process) or typed (through MLflow).
    pd.testing.assert_frame_equal(pyfunc.predict(to_signature_types(raw, spec)), inner.predict(raw))
    # and the pyfunc's signature comes from the spec
    names = [c.name for c in pyfunc.metadata.get_input_schema().inputs]
    assert names[:2] == ["lead_id", "mql_at"] and "demo_requested" in names


def test_no_personal_data_leaves_the_run(trained, builtin_csv) -> None:
    _, _, store = trained
    raw = pd.read_csv(builtin_csv, dtype=str, keep_default_na=False)
    personal = {v for c in ("email", "phone", "last_name") for v in raw[c] if len(v) > 4}
    # A surname can also be a word of our own (the config names the Wilson bound): not a leak.
    ours = "\n".join(p.read_text() for p in (ROOT / "data").rglob("*.yaml"))
    personal = {v for v in personal if v not in ours}
    stored = "\n".join(
        p.read_text(errors="ignore")
        for p in (store / "artifacts").rglob("*")
        if p.is_file() and p.suffix in {".json", ".yaml", ".csv", ".txt", ".MLmodel", ""}
    )
    stored += (store / "mlflow.db").read_bytes().decode("latin-1")
    leaked = {v for v in personal if v in stored}
    assert not leaked, f"personal values written to MLflow: {sorted(leaked)[:5]}"


def test_worse_model_does_not_move_champion(trained, builtin_csv, tmp_path) -> None:
    summary, settings, _ = trained
    weak = tmp_path / "weak.yaml"
    weak.write_text(
        "num_boost_round: 2\nearly_stopping_rounds: 1\n"
        "lightgbm: {objective: binary, learning_rate: 0.01, num_leaves: 2}\n"
    )
    inputs = TrainInputs(
        data=builtin_csv,
        spec=ROOT / "data/specs/builtin.yaml",
        config=weak,
        rejects=tmp_path / "r.csv",
    )
    second = train_from_file(inputs, settings)
    assert not second.champion_moved
    reason = second.champion_reason
    assert "not promoted" in reason and "not_worse_auc" in reason and "(v1)" in reason
    mlflow.set_tracking_uri(settings.tracking_uri)
    client = MlflowClient()
    assert str(client.get_model_version_by_alias(summary.model_name, "champion").version) == "1"
    assert (
        client.get_model_version(summary.model_name, second.model_version).tags["gate"]
        == second.champion_reason
    )


def test_cli_json_summary(builtin_csv, mlflow_store, monkeypatch, tmp_path) -> None:
    monkeypatch.setenv("SAL_TRACKING_URI", mlflow_store.tracking_uri)
    monkeypatch.setenv("SAL_ARTIFACT_ROOT", str(mlflow_store.artifact_root))
    from pipeline.settings import get_settings

    get_settings.cache_clear()
    result = CliRunner().invoke(
        app,
        [
            "train",
            "--data",
            str(builtin_csv),
            "--spec",
            "data/specs/builtin.yaml",
            "--rejects",
            str(tmp_path / "r.csv"),
            "--json",
        ],
    )
    get_settings.cache_clear()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert re.fullmatch(r"[0-9a-f]{32}", summary["run_id"])
    assert summary["model_version"] == "1" and summary["champion_moved"] is True
    assert set(summary["metrics"]) == {"model", "rules", "logistic"}
    assert summary["data"]["undecided"] > 0 and summary["leakage"] == []


def test_cli_reports_bad_input_without_a_traceback(mlflow_store, write_file, monkeypatch) -> None:
    monkeypatch.setenv("SAL_TRACKING_URI", mlflow_store.tracking_uri)
    path = write_file("leads.csv", "lead_id;mql_at\nL1;2025-01-01\n")
    result = CliRunner().invoke(
        app, ["train", "--data", str(path), "--spec", "data/specs/builtin.yaml"]
    )
    assert result.exit_code == 2
    assert "leads.csv: missing column(s)" in result.stderr and "Traceback" not in result.stderr


def _artifact_paths(client: MlflowClient, run_id: str, path: str | None = None) -> set[str]:
    found = set()
    for item in client.list_artifacts(run_id, path):
        found |= _artifact_paths(client, run_id, item.path) if item.is_dir else {item.path}
    return found
