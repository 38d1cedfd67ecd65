"""Leakage audit: planted leaks are caught and excluded; honest features are left alone."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from models.features import normalize
from pipeline.audit import audit_leakage
from pipeline.generate import generate_leads
from pipeline.load import label_values


@pytest.fixture(scope="module")
def leads_and_labels(builtin_spec):
    frame = generate_leads(8000, seed=11).astype(str).replace({"<NA>": "", "nan": "", "None": ""})
    accepted, _ = label_values(frame, builtin_spec)
    labelled = accepted.notna()
    return normalize(frame[labelled], builtin_spec), accepted[labelled]


def _with_field(spec, name: str, field_type: str, **options):
    from models.spec import FieldSpec

    fields = {**spec.fields, name: FieldSpec(type=field_type, **options)}
    return spec.model_copy(update={"fields": fields})


def test_honest_built_in_features_are_not_flagged(builtin_spec, leads_and_labels) -> None:
    clean, labels = leads_and_labels
    report = audit_leakage(clean, labels, builtin_spec)
    assert report.findings == []
    assert max(report.single_column_auc.values()) < builtin_spec.audit.single_column_auc


def test_planted_outcome_copy_is_excluded(builtin_spec, leads_and_labels) -> None:
    clean, labels = leads_and_labels
    rng = np.random.default_rng(0)
    # "days to decision" style column: the outcome with 3 % noise.
    noisy = np.where(rng.random(len(labels)) < 0.03, 1 - labels, labels)
    clean = clean.assign(sales_stage=np.where(noisy == 1, "working", "closed"))
    spec = _with_field(builtin_spec, "sales_stage", "categorical")
    report = audit_leakage(clean, labels, spec)
    assert report.excluded == ["sales_stage"]
    finding = next(f for f in report.findings if f.signal == "single-column AUC")
    assert finding.column == "sales_stage" and "ROC AUC 0.9" in finding.evidence


def test_missingness_leak_is_caught(builtin_spec, leads_and_labels) -> None:
    clean, labels = leads_and_labels
    # Filled in by sales only for leads they accepted (e.g. an opportunity amount).
    amount = np.where(labels == 1, np.random.default_rng(1).normal(5e4, 2e4, len(labels)), np.nan)
    spec = _with_field(builtin_spec, "opportunity_amount", "numeric")
    report = audit_leakage(clean.assign(opportunity_amount=amount), labels, spec)
    assert "opportunity_amount" in report.excluded


def test_noisy_but_dominant_leak_is_caught(builtin_spec, leads_and_labels) -> None:
    clean, labels = leads_and_labels
    rng = np.random.default_rng(2)
    # Like the bank data's call duration: weak alone (AUC ~0.8) but irreplaceable in a model.
    minutes = np.where(
        labels == 1, rng.gamma(4.0, 2.0, len(labels)), rng.gamma(1.5, 2.0, len(labels))
    )
    spec = _with_field(builtin_spec, "call_minutes", "numeric")
    report = audit_leakage(clean.assign(call_minutes=minutes), labels, spec)
    assert report.single_column_auc["call_minutes"] < spec.audit.single_column_auc
    assert [f.signal for f in report.findings] == ["dominance"]
    assert report.excluded == ["call_minutes"]


def test_allowed_columns_are_reported_but_kept(builtin_spec, leads_and_labels) -> None:
    clean, labels = leads_and_labels
    spec = _with_field(builtin_spec, "sales_stage", "categorical")
    spec = spec.model_copy(
        update={"audit": spec.audit.model_copy(update={"allow": ("sales_stage",)})}
    )
    report = audit_leakage(clean.assign(sales_stage=np.where(labels == 1, "a", "b")), labels, spec)
    assert report.excluded == []
    assert {f.action for f in report.findings} == {"allowed by spec"}


def test_label_free_column_scores_chance(builtin_spec) -> None:
    labels = pd.Series(np.random.default_rng(3).integers(0, 2, 4000).astype(float))
    clean = pd.DataFrame(
        {name: np.random.default_rng(4).normal(size=4000) for name in builtin_spec.fields}
    )
    report = audit_leakage(clean, labels, builtin_spec)
    assert max(report.single_column_auc.values()) < 0.56
