"""The scoring log and outcome store: what is logged, idempotent outcomes, training from the log."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from models import store
from models.spec import load_spec
from serving.app import create_app
from tests.conftest import ADMIN_KEY, AUTH, ROOT

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}


@pytest.fixture
def engine(serve_settings):
    engine = store.connect(serve_settings.database_url)
    yield engine
    engine.dispose()


def _count(engine, table, lead_id) -> int:
    with engine.connect() as connection:
        return connection.execute(
            select(func.count()).select_from(table).where(table.c.lead_id == lead_id)
        ).scalar()


def test_scoring_logs_features_without_personal_values(client, engine) -> None:
    lead = {
        "lead_id": "LOG-1",
        "email": "jane.doe@acme.com",
        "phone": "+44 20 7946 0958",
        "first_name": "Jane",
        "web_visits": 4,
        "industry": "software",
    }
    assert client.post("/v1/leads/score", json=lead, headers=AUTH).status_code == 200
    assert client.app.state.log_writer.flush()  # the log is written off the request path
    with engine.connect() as connection:
        row = (
            connection.execute(
                select(store.scoring_log).where(store.scoring_log.c.lead_id == "LOG-1")
            )
            .mappings()
            .one()
        )
    assert row["features"]["web_visits"] == 4 and row["features"]["industry"] == "software"
    stored = str(dict(row))
    assert "jane" not in stored.lower() and "7946" not in stored
    assert row["features"]["email"].endswith("redacted-company.com")  # still "corporate"
    assert row["model_version"] == "1" and 0 < row["p_accept"] < 1


def test_outcomes_are_idempotent_and_keep_earlier_fields(client, engine) -> None:
    client.post("/v1/leads/score", json={"lead_id": "OUT-1"}, headers=AUTH)
    decided = {"lead_id": "OUT-1", "accepted": True, "decided_at": "2026-07-01T10:00:00Z"}
    for _ in range(2):
        response = client.post("/v1/outcomes", json=decided, headers=ADMIN)
        assert response.status_code == 200 and response.json() == {"recorded": 1}
    assert _count(engine, store.outcomes, "OUT-1") == 1
    later = {"lead_id": "OUT-1", "accepted": True, "sql": True, "sql_at": "2026-07-09T10:00:00Z"}
    assert client.post("/v1/outcomes", json=[later], headers=ADMIN).status_code == 200
    with engine.connect() as connection:
        row = (
            connection.execute(select(store.outcomes).where(store.outcomes.c.lead_id == "OUT-1"))
            .mappings()
            .one()
        )
    assert row["accepted"] and row["sql"] and row["decided_at"] is not None


def test_outcome_for_an_unscored_lead(client, engine) -> None:
    response = client.post(
        "/v1/outcomes", json={"lead_id": "NEVER", "accepted": False}, headers=ADMIN
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"][-1] == "lead_id"
    with_features = {
        "lead_id": "NEVER",
        "accepted": False,
        "rejection_reason": "not_icp",
        "lead": {"lead_id": "NEVER", "industry": "retail"},
    }
    assert client.post("/v1/outcomes", json=with_features, headers=ADMIN).status_code == 200
    assert _count(engine, store.scoring_log, "NEVER") == 1


@pytest.mark.parametrize(
    "body",
    [
        {"lead_id": "X", "accepted": False, "sql": True},
        {"lead_id": "X", "accepted": True, "rejection_reason": "not_icp"},
        {"lead_id": "", "accepted": True},
        {"lead_id": "X", "accepted": "maybe"},
        {"lead_id": "X"},
        {"lead_id": "X\u0000Y", "accepted": True},
        {"lead_id": "X", "accepted": False, "rejection_reason": "bad\u0000"},
        {"lead_id": "X", "accepted": True, "lead": {"web_visits": float("inf")}},
    ],
)
def test_bad_outcomes_are_422(client, body) -> None:
    response = client.post(
        "/v1/outcomes",
        content=json.dumps(body),  # json.dumps writes infinity as Infinity, as some clients do
        headers={**ADMIN, "Content-Type": "application/json"},
    )
    assert response.status_code == 422, response.text


def test_outcomes_need_the_admin_role(client) -> None:
    body = {"lead_id": "OUT-1", "accepted": True}
    assert client.post("/v1/outcomes", json=body).status_code == 401
    assert client.post("/v1/outcomes", json=body, headers=AUTH).status_code == 403


def test_training_set_uses_features_as_scored_before_the_decision(serve_settings) -> None:
    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    with TestClient(create_app(serve_settings)) as client:
        client.post("/v1/leads/score", json={"lead_id": "PIT-1", "web_visits": 3}, headers=AUTH)
        decided_at = (datetime.now(UTC) + timedelta(seconds=1)).isoformat()
        client.post(
            "/v1/outcomes",
            json={"lead_id": "PIT-1", "accepted": False, "decided_at": decided_at},
            headers=ADMIN,
        )
        # Re-scored after the decision with what sales learnt since: must not reach training.
        engine = store.connect(serve_settings.database_url)
        store.log_scores(
            engine,
            [
                {
                    "lead_id": "PIT-1",
                    "features": {"web_visits": 99},
                    "scored_at": datetime.now(UTC) + timedelta(days=1),
                }
            ],
        )
        client.post("/v1/leads/score", json={"lead_id": "PIT-2"}, headers=AUTH)
    frame = store.training_frame(engine, spec)
    engine.dispose()
    row = frame.set_index("lead_id").loc["PIT-1"]
    assert row["web_visits"] == "3.0" and row["sal_status"] == "rejected"
    assert frame.set_index("lead_id").loc["PIT-2", "sal_status"] == ""  # undecided, not rejected
    assert set(spec.required_columns) <= set(frame.columns)
