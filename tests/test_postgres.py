"""The same pipeline against a PostgreSQL tracking store (the local server, for real).

Skips with a reason where no server is reachable (a laptop); CI sets SAL_REQUIRE_POSTGRES=1, which
turns that skip into a failure so the PostgreSQL path can never silently stop being tested.
"""

from __future__ import annotations

import os
import uuid

import mlflow
import pytest
from mlflow import MlflowClient

from pipeline.run import TrainInputs, train_from_file
from pipeline.settings import PipelineSettings
from tests.conftest import ROOT, require_postgres

pytestmark = pytest.mark.postgres

SERVER = os.environ.get("SAL_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/test")


@pytest.fixture
def postgres_database():
    """A fresh database on the server for one test, dropped afterwards."""
    psycopg = pytest.importorskip("psycopg")
    try:
        admin = psycopg.connect(SERVER, autocommit=True, connect_timeout=3)
    except psycopg.OperationalError as exc:
        if require_postgres():
            pytest.fail(
                f"SAL_REQUIRE_POSTGRES is set but PostgreSQL at {SERVER} is unreachable: {exc}"
            )
        pytest.skip(
            f"no PostgreSQL server at {SERVER} ({exc.__class__.__name__}); "
            "set SAL_TEST_POSTGRES_URL to point at one"
        )
    name = f"sal_test_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
        try:
            yield (
                SERVER.rsplit("/", 1)[0].replace("postgresql://", "postgresql+psycopg://")
                + f"/{name}"
            )
        finally:
            admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')


def test_training_tracks_and_registers_in_postgres(
    postgres_database, builtin_csv, tmp_path, monkeypatch
) -> None:
    monkeypatch.chdir(ROOT)
    settings = PipelineSettings(
        tracking_uri=postgres_database,
        artifact_root=tmp_path / "artifacts",
        data_dir=ROOT / "data",
        reports_dir=tmp_path / "reports",
        experiment="pg",
    )
    inputs = TrainInputs(
        data=builtin_csv, spec=ROOT / "data/specs/builtin.yaml", rejects=tmp_path / "rejects.csv"
    )
    summary = train_from_file(inputs, settings)
    assert summary.champion_moved
    mlflow.set_tracking_uri(postgres_database)
    client = MlflowClient()
    run = client.get_run(summary.run_id)
    assert run.data.metrics["test_model_roc_auc"] > run.data.metrics["test_rules_roc_auc"]
    version = client.get_model_version_by_alias(summary.model_name, "champion")
    assert str(version.version) == summary.model_version
    model = mlflow.pyfunc.load_model(f"models:/{summary.model_name}@champion")
    assert model.metadata.get_input_schema().input_names()[0] == "lead_id"


def test_service_store_on_postgres(postgres_database, serve_settings) -> None:
    from fastapi.testclient import TestClient

    from models import store
    from models.spec import load_spec
    from serving.app import create_app
    from tests.conftest import ADMIN_KEY, AUTH

    settings = serve_settings.model_copy(update={"database_url": postgres_database})
    admin = {"Authorization": f"Bearer {ADMIN_KEY}"}
    with TestClient(create_app(settings)) as client:
        scored = client.post(
            "/v1/leads/score", json={"lead_id": "PG-1", "web_visits": 2}, headers=AUTH
        )
        assert scored.status_code == 200
        outcome = {"lead_id": "PG-1", "accepted": True}
        for _ in range(2):  # idempotent on PostgreSQL's upsert too
            assert client.post("/v1/outcomes", json=outcome, headers=admin).status_code == 200
        sql = {"lead_id": "PG-1", "accepted": True, "sql": False}
        assert client.post("/v1/outcomes", json=sql, headers=admin).status_code == 200
    engine = store.connect(postgres_database)
    frame = store.training_frame(engine, load_spec(ROOT / "data/specs/builtin.yaml"))
    engine.dispose()
    (row,) = frame.to_dict("records")
    assert (row["lead_id"], row["sal_status"], row["sql_status"]) == ("PG-1", "accepted", "no")
    assert row["web_visits"] == "2.0"


def test_monitoring_reads_the_postgres_log(postgres_database) -> None:
    from datetime import UTC, datetime, timedelta

    from models import store
    from models.spec import load_spec
    from pipeline.monitor import read_monitoring_frame

    engine = store.connect(postgres_database)
    try:
        scored = datetime.now(UTC) - timedelta(hours=1)
        store.log_scores(
            engine,
            [
                {
                    "lead_id": f"PG-{i}",
                    "scored_at": scored,
                    "model_version": "1",
                    "features": {"industry": "software", "web_visits": i},
                    "p_accept": 0.9,
                    "route": "sales",
                    "tier": "A",
                }
                for i in range(3)
            ],
        )
        store.record_outcomes(engine, [{"lead_id": "PG-0", "accepted": True, "decided_at": scored}])
        frame = read_monitoring_frame(engine, load_spec(ROOT / "data/specs/builtin.yaml"))
    finally:
        engine.dispose()
    assert sorted(frame["lead_id"]) == ["PG-0", "PG-1", "PG-2"]
    assert frame.set_index("lead_id")["accepted"].to_dict()["PG-0"] == True  # noqa: E712
    assert list(frame["web_visits"].sort_values()) == [0.0, 1.0, 2.0]
    assert str(frame["scored_at"].dt.tz) == "UTC"
