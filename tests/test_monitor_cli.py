"""`sal monitor` end to end: leads scored by the service, outcomes recorded, the CLI's verdict.

A planted drift (one industry and one lead source take over) must alarm and exit 1; the same
leads without it must stay quiet and exit 0. Both write an HTML report with the PSI figure.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from fastapi.testclient import TestClient
from typer.testing import CliRunner

from models.pyfunc import to_signature_types
from models.spec import load_spec
from pipeline.cli import app
from pipeline.load import label_values, load_leads
from pipeline.settings import get_settings
from serving.app import create_app
from tests.conftest import ADMIN_KEY, AUTH, ROOT

ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
BOOLEANS = ("demo_requested", "pricing_requested", "contact_me")


def _bodies_and_outcomes(csv, rows: int) -> tuple[list[dict], list[bool]]:
    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    loaded = load_leads(csv, spec)
    accepted, _ = label_values(loaded.frame, spec)
    decided = loaded.frame[accepted.notna()].tail(rows)
    frame = to_signature_types(decided, spec)
    bodies = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for body in bodies:
        body.pop("mql_at")  # scored now, as live leads are
        for name in BOOLEANS:
            body[name] = None if body[name] in (None, "") else body[name] == "true"
    return bodies, [bool(a) for a in accepted.loc[decided.index]]


def _score_and_decide(settings, bodies: list[dict], outcomes: list[bool]) -> None:
    with TestClient(create_app(settings)) as client:
        for start in range(0, len(bodies), 50):
            batch = bodies[start : start + 50]
            assert client.post("/v1/leads/score", json=batch, headers=AUTH).status_code == 200
        decided_at = datetime.now(UTC).isoformat()
        records = [
            {"lead_id": b["lead_id"], "accepted": a, "decided_at": decided_at}
            for b, a in zip(bodies, outcomes, strict=True)
        ]
        for start in range(0, len(records), 50):
            response = client.post("/v1/outcomes", json=records[start : start + 50], headers=ADMIN)
            assert response.status_code == 200, response.text


@pytest.fixture
def monitor_env(serve_settings, tmp_path, monkeypatch):
    settings = serve_settings.model_copy(update={"database_url": f"sqlite:///{tmp_path / 's.db'}"})
    monkeypatch.chdir(ROOT)
    monkeypatch.setenv("SAL_TRACKING_URI", settings.tracking_uri)
    monkeypatch.setenv("SAL_DATABASE_URL", settings.database_url)
    monkeypatch.setenv("SAL_MODEL_NAME", settings.model_name)
    monkeypatch.setenv("SAL_REPORTS_DIR", str(tmp_path / "reports"))
    monkeypatch.setenv("SAL_ARTIFACT_ROOT", str(tmp_path / "artifacts"))
    get_settings.cache_clear()
    yield settings, tmp_path / "reports"
    get_settings.cache_clear()


@pytest.mark.parametrize("drift", [False, True], ids=["no-drift", "planted-drift"])
def test_monitor_alarms_on_planted_drift_only(monitor_env, builtin_csv, drift) -> None:
    settings, reports = monitor_env
    bodies, outcomes = _bodies_and_outcomes(builtin_csv, 1500)
    if drift:  # a campaign floods the funnel with one industry from one source
        for body in bodies:
            body.update(industry="education", lead_source="events")
    _score_and_decide(settings, bodies, outcomes)

    result = CliRunner().invoke(app, ["monitor", "--period", "week"])

    assert result.exit_code == (1 if drift else 0), result.output
    alarms = [line for line in result.stdout.splitlines() if line.startswith("ALARM")]
    if drift:
        assert any("industry" in line for line in alarms)
        assert any("lead_source" in line for line in alarms)
    else:
        assert not alarms
    assert "1,500" in result.stdout or "1500" in result.stdout  # every scored lead counted
    (report,) = reports.glob("monitor-*.html")
    html = report.read_text()
    assert 'data-figure="psi-by-feature' in html and "Realised acceptance rate" in html
    assert ("Alarm" in html) == drift
