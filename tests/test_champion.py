"""`sal evaluate` and `sal rollback` on a store of their own: the gate both ways, every decision
recorded in MLflow, and the alias where the decisions put it."""

from __future__ import annotations

from pathlib import Path

import mlflow
import pytest
import yaml
from mlflow import MlflowClient
from typer.testing import CliRunner

from pipeline.cli import app
from pipeline.settings import get_settings
from tests.conftest import ROOT

NAME = "lead-acceptance"


@pytest.fixture(scope="module")
def two_versions(builtin_csv, tmp_path_factory):
    """v1: the shipped config (champion). v2: two boosting rounds, clearly worse (kept out)."""
    store = tmp_path_factory.mktemp("decisions")
    weak = yaml.safe_load((ROOT / "data/config/train.yaml").read_text())
    weak.update(num_boost_round=2, early_stopping_rounds=1)
    weak_config = store / "weak.yaml"
    weak_config.write_text(yaml.safe_dump(weak))
    env = {
        "SAL_TRACKING_URI": f"sqlite:///{store / 'mlflow.db'}",
        "SAL_ARTIFACT_ROOT": str(store / "artifacts"),
        "SAL_REPORTS_DIR": str(store / "reports"),
        "SAL_MODEL_NAME": NAME,
    }
    with pytest.MonkeyPatch.context() as patch:
        for key, value in env.items():
            patch.setenv(key, value)
        get_settings.cache_clear()
        spec = str(ROOT / "data/specs/builtin.yaml")
        for config in (ROOT / "data/config/train.yaml", weak_config):
            args = ["train", "--data", str(builtin_csv), "--spec", spec, "--config", str(config)]
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, result.output
        yield store, env
    get_settings.cache_clear()


@pytest.fixture
def cli(two_versions, monkeypatch, builtin_csv):
    _, env = two_versions
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()
    client = MlflowClient(tracking_uri=env["SAL_TRACKING_URI"])

    def run(*args: str) -> tuple[int, str]:
        extra = ["--data", str(builtin_csv), "--n-boot", "200"] if args[0] == "evaluate" else []
        result = CliRunner().invoke(app, [*args, *extra])
        return result.exit_code, result.output

    def champion() -> str:
        return str(client.get_model_version_by_alias(NAME, "champion").version)

    yield run, champion, client, env
    get_settings.cache_clear()


def _decisions(env: dict[str, str]) -> list[dict[str, str]]:
    mlflow.set_tracking_uri(env["SAL_TRACKING_URI"])
    runs = mlflow.search_runs(experiment_names=["lead-acceptance-decisions"], output_format="list")
    return [run.data.tags for run in runs]


def test_gate_both_ways_and_rollback(cli) -> None:
    run, champion, client, env = cli
    assert champion() == "1"  # training's own gate kept the weak v2 out

    # A clearly worse challenger is refused, with the numbers that refused it.
    code, output = run("evaluate", "--challenger", "2")
    assert code == 0, output
    assert "REJECTED" in output and "ROC AUC" in output and "margin" in output
    assert champion() == "1"
    assert "margin" in client.get_model_version(NAME, "2").tags["evaluation"]

    # Put the weak one in charge by hand, then roll back to the one before it.
    assert run("rollback", "--to", "2", "--reason", "trial")[0] == 0
    assert champion() == "2"
    code, output = run("rollback")
    assert code == 0 and "from v2 back to v1" in output
    assert champion() == "1"

    # With the weak one serving, the better model passes the gate and is promoted.
    run("rollback", "--to", "2")
    code, output = run("evaluate", "--challenger", "1")
    assert code == 0 and "PROMOTED" in output, output
    assert champion() == "1"

    (report,) = (Path(env["SAL_REPORTS_DIR"])).glob("evaluate-*-v1.html")
    html = report.read_text()
    assert "PROMOTED" not in html and "promoted to champion" in html
    assert 'data-figure="roc-auc"' in html and 'data-figure="reliability-calibration"' in html

    kinds = [tags["kind"] for tags in _decisions(env)]
    assert kinds.count("evaluate") == 2 and kinds.count("rollback") == 3
    promoted = [t for t in _decisions(env) if t["kind"] == "evaluate" and t["promoted"] == "true"]
    assert len(promoted) == 1 and promoted[0]["challenger"] == "1"


def test_evaluate_and_rollback_refuse_what_makes_no_sense(cli) -> None:
    run, champion, _, _ = cli
    current = champion()
    code, output = run("evaluate", "--challenger", current)
    assert code == 2 and "already the champion" in output
    code, output = run("rollback", "--to", "99")
    assert code == 2 and "no version 99" in output
    assert champion() == current
