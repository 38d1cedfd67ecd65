"""Behaviour of the trained model (CheckList-style): directional, invariance and minimum quality.

The model under test is the one the pipeline registered, loaded back from MLflow as a pyfunc.
"""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest

from models.pyfunc import to_signature_types
from models.spec import load_spec
from pipeline.load import load_leads
from tests.conftest import ROOT


@pytest.fixture(scope="module")
def pyfunc(trained):
    summary, settings, _ = trained
    mlflow.set_tracking_uri(settings.tracking_uri)
    return mlflow.pyfunc.load_model(f"models:/{summary.model_name}@champion")


@pytest.fixture(scope="module")
def leads(builtin_csv) -> pd.DataFrame:
    spec = load_spec(ROOT / "data/specs/builtin.yaml")
    # The most recent leads, typed as the pyfunc's signature says (numbers as numbers).
    return to_signature_types(load_leads(builtin_csv, spec).frame.tail(600), spec)


def _p(pyfunc, frame: pd.DataFrame) -> np.ndarray:
    return pyfunc.predict(frame)["p_accept"].to_numpy()


def test_demo_request_never_lowers_acceptance(pyfunc, leads) -> None:
    without = _p(pyfunc, leads.assign(demo_requested="false"))
    with_demo = _p(pyfunc, leads.assign(demo_requested="true"))
    assert (with_demo >= without - 1e-12).all()
    assert (with_demo - without).mean() > 0.01  # and it matters


def test_lead_id_changes_nothing(pyfunc, leads) -> None:
    renamed = leads.assign(lead_id=[f"X-{i}" for i in range(len(leads))])
    pd.testing.assert_frame_equal(pyfunc.predict(leads), pyfunc.predict(renamed))


def test_free_mail_scores_below_corporate_domain(pyfunc, leads) -> None:
    corporate = _p(pyfunc, leads.assign(email="pat.lee@northwind-logistics.com"))
    free = _p(pyfunc, leads.assign(email="pat.lee1987@gmail.com"))
    assert (free < corporate).mean() >= 0.9
    assert (corporate - free).mean() > 0.02


def test_unknown_category_is_scored_not_rejected(pyfunc, leads) -> None:
    scores = _p(pyfunc, leads.head(20).assign(industry="space_mining", lead_source="tiktok"))
    assert np.isfinite(scores).all() and ((scores > 0) & (scores < 1)).all()


def test_missing_optional_fields_are_scored(pyfunc, leads) -> None:
    sparse = leads.head(20)[["lead_id", "mql_at", "industry", "demo_requested"]]
    out = pyfunc.predict(sparse)
    assert out["p_accept"].between(0, 1).all()
    # Missing contact data shows up in the completeness criterion.
    assert (out["criterion_completeness"] < 5).all()


def test_minimum_quality_and_calibration(trained) -> None:
    summary, _, _ = trained
    model, rules = summary.metrics["model"], summary.metrics["rules"]
    assert model["roc_auc"] >= 0.78
    assert model["roc_auc"] >= rules["roc_auc"] + 0.04
    assert model["ece"] <= 0.04
    assert summary.sql_metrics["model"]["roc_auc"] > summary.sql_metrics["rules"]["roc_auc"]
