"""Shared fixtures: small specs and files written per test, one trained model per session."""

from __future__ import annotations

import os

# As in the CLI: OpenMP threads sleep instead of spinning when the two cores are shared.
os.environ.setdefault("OMP_WAIT_POLICY", "passive")

import textwrap
from pathlib import Path

import pytest

from models.spec import DatasetSpec, load_spec

ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = ROOT.parent / "shared" / "datasets"

TINY_SPEC = """
name: tiny
id: lead_id
timestamp: mql_at
missing_values: ["", Select]
fields:
  industry: {type: categorical, group: firm, values: [software, retail]}
  employees: {type: numeric, min: 0, group: firm}
  demo_requested: {type: boolean, monotone: increasing}
  email: {type: email}
labels:
  accepted: {column: status, positive: [accepted], negative: [rejected], undecided: ["", pending]}
max_bad_row_fraction: 0.5
split: {method: time, test_fraction: 0.25, valid_fraction: 0.25}
"""

TINY_HEADER = "lead_id,mql_at,industry,employees,demo_requested,email,status"


@pytest.fixture
def tiny_spec(tmp_path: Path) -> DatasetSpec:
    path = tmp_path / "tiny.yaml"
    path.write_text(TINY_SPEC)
    return load_spec(path)


@pytest.fixture
def write_file(tmp_path: Path):
    """Write text (dedented) to a file in the test's folder and return its path."""

    def write(name: str, text: str) -> Path:
        path = tmp_path / name
        path.write_text(textwrap.dedent(text).lstrip("\n"))
        return path

    return write


@pytest.fixture(scope="session")
def builtin_spec() -> DatasetSpec:
    return load_spec(ROOT / "data" / "specs" / "builtin.yaml")


@pytest.fixture
def mlflow_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """Pipeline settings pointing at a throw-away SQLite tracking store and artifact folder."""
    from pipeline.settings import PipelineSettings

    monkeypatch.chdir(ROOT)
    return PipelineSettings(
        tracking_uri=f"sqlite:///{tmp_path / 'mlflow.db'}",
        artifact_root=tmp_path / "artifacts",
        data_dir=ROOT / "data",
        reports_dir=tmp_path / "reports",
        experiment="test-experiment",
    )


def shared_dataset(name: str) -> Path:
    """Path of a dataset under ../shared, or skip: users' machines do not have that folder."""
    path = SHARED_DATA / name
    if not path.exists():
        pytest.skip(f"{path} is absent (the shared datasets exist only on the project's machines)")
    return path


def require_postgres() -> bool:
    return os.environ.get("SAL_REQUIRE_POSTGRES", "") not in ("", "0")


@pytest.fixture(scope="session")
def builtin_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small built-in dataset written as a CRM export would be (12,000 MQLs)."""
    from pipeline.generate import generate_leads, write_leads

    path = tmp_path_factory.mktemp("data") / "leads.csv"
    return write_leads(generate_leads(12_000, seed=5), path)


@pytest.fixture(scope="session")
def trained(builtin_csv: Path, tmp_path_factory: pytest.TempPathFactory):
    """One full training run into a throw-away MLflow store, shared by the model tests."""
    from pipeline.run import TrainInputs, train_from_file
    from pipeline.settings import PipelineSettings

    store = tmp_path_factory.mktemp("mlflow")
    settings = PipelineSettings(
        tracking_uri=f"sqlite:///{store / 'mlflow.db'}",
        artifact_root=store / "artifacts",
        data_dir=ROOT / "data",
        reports_dir=store / "reports",
        experiment="session",
    )
    inputs = TrainInputs(
        data=builtin_csv,
        spec=ROOT / "data/specs/builtin.yaml",
        config=ROOT / "data/config/train.yaml",
        rejects=store / "rejects.csv",
    )
    summary = train_from_file(inputs, settings)
    return summary, settings, store


SCORE_KEY, ADMIN_KEY = "score-key-123", "admin-key-456"
AUTH = {"Authorization": f"Bearer {SCORE_KEY}"}


@pytest.fixture(scope="session")
def serve_settings(trained, tmp_path_factory: pytest.TempPathFactory):
    """Service settings on the session's registered model, with a throw-away database."""
    from serving.settings import ServeSettings

    summary, pipeline_settings, _ = trained
    database = tmp_path_factory.mktemp("service") / "sal.db"
    return ServeSettings(
        tracking_uri=pipeline_settings.tracking_uri,
        database_url=f"sqlite:///{database}",
        model_name=summary.model_name,
        spec_path=ROOT / "data/specs/builtin.yaml",
        score_keys=[SCORE_KEY],
        admin_keys=[ADMIN_KEY],
        max_batch=50,
        # No alias polling in the shared session client: a poll could catch the champion alias
        # while another test has moved it for a moment, and the loader sets MLflow's global
        # tracking URI under a test that trains into its own store. Polling has its own test.
        reload_seconds=0,
    )


@pytest.fixture(scope="session")
def client(serve_settings):
    """The app through its ASGI interface, champion loaded."""
    from fastapi.testclient import TestClient

    from serving.app import create_app

    with TestClient(create_app(serve_settings)) as client:
        yield client


@pytest.fixture(scope="session")
def leads(builtin_csv) -> list[dict]:
    """Recent built-in leads as JSON request bodies."""
    from models.pyfunc import to_signature_types
    from pipeline.load import load_leads

    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    frame = to_signature_types(load_leads(builtin_csv, spec).frame.tail(40), spec)
    records = frame.astype(object).where(frame.notna(), None).to_dict("records")
    for record in records:  # JSON booleans, as a client would send them
        for name in ("demo_requested", "pricing_requested", "contact_me"):
            record[name] = None if record[name] in (None, "") else record[name] == "true"
    return records
