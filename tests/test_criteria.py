"""Rule criteria: weights, partial group credit, fired rules, and checks against the spec."""

from __future__ import annotations

import pandas as pd
import pytest

from models.criteria import CriteriaError, load_criteria
from models.features import normalize
from tests.conftest import ROOT

CRITERIA = """
name: tiny-criteria
version: "2"
pass_score: 50
criteria:
  completeness:
    weight: 20
    rules:
      - {name: firm known, group: firm, present: true, points: 1}
  icp_fit:
    weight: 30
    rules:
      - {name: software, field: industry, equals: software, points: 2}
      - {name: big, field: employees, gte: 100, points: 1}
  readiness:
    weight: 50
    rules:
      - {name: demo, field: demo_requested, equals: true}
      - {name: work e-mail, field: email, in: [corporate]}
"""


@pytest.fixture
def criteria(write_file, tiny_spec):
    return load_criteria(write_file("c.yaml", CRITERIA), tiny_spec)


def test_scores_and_breakdown(criteria, tiny_spec) -> None:
    raw = pd.DataFrame(
        {
            "industry": ["software", "retail", None],
            "employees": ["150", "20", ""],
            "demo_requested": ["true", "false", ""],
            "email": ["a@acme.com", "b@gmail.com", ""],
        }
    )
    scores = criteria.score(normalize(raw, tiny_spec), tiny_spec)
    # lead 0: everything -> 100; lead 1: firm complete (20) only; lead 2: nothing.
    assert scores.total.tolist() == [100.0, 20.0, 0.0]
    assert scores.passed.tolist() == [True, False, False]
    assert scores.breakdown.loc[1].to_dict() == {
        "completeness": 20.0,
        "icp_fit": 0.0,
        "readiness": 0.0,
    }
    assert scores.fired.loc[0].all() and not scores.fired.loc[2].any()


def test_group_rules_give_partial_credit(criteria, tiny_spec) -> None:
    raw = pd.DataFrame(
        {
            "industry": ["retail"],
            "employees": [""],
            "demo_requested": ["yes"],
            "email": ["x@acme.com"],
        }
    )
    scores = criteria.score(normalize(raw, tiny_spec), tiny_spec)
    assert scores.breakdown.loc[0, "completeness"] == pytest.approx(10.0)  # 1 of 2 firm fields
    assert scores.total.item() == pytest.approx(60.0)


def test_version_id_changes_with_content(write_file, tiny_spec, criteria) -> None:
    edited = load_criteria(
        write_file("c2.yaml", CRITERIA.replace("gte: 100", "gte: 200")), tiny_spec
    )
    assert criteria.version_id.startswith("2+") and edited.version_id != criteria.version_id


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            ("field: industry, equals: software", "field: sector, equals: software"),
            "'sector' is not a field",
        ),
        (("field: industry, equals: software", "field: industry, gte: 3"), "gte needs a numeric"),
        (("equals: software", "equals: hardware"), "['hardware'] not among 'industry'"),
        (("in: [corporate]", "in: [company]"), "['company'] not among 'email'"),
        (("group: firm", "group: people"), "no field has group 'people'"),
        (("weight: 50", "weight: 40"), "must add up to 100, not 90"),
        (
            ("field: employees, gte: 100", "field: employees, gte: 100, lte: 5"),
            "exactly one condition",
        ),
    ],
)
def test_bad_criteria_are_reported(write_file, tiny_spec, change, message) -> None:
    with pytest.raises(CriteriaError) as err:
        load_criteria(write_file("bad.yaml", CRITERIA.replace(*change)), tiny_spec)
    assert message in str(err.value) and "bad.yaml" in str(err.value)


def test_shipped_criteria_fit_their_specs(builtin_spec) -> None:
    criteria = load_criteria(builtin_spec.criteria_path, builtin_spec)
    weights = {name: c.weight for name, c in criteria.criteria.items()}
    assert weights == {"completeness": 20, "icp_fit": 30, "lead_score": 25, "readiness": 25}
    from models.spec import load_spec

    bank = load_spec(ROOT / "data/specs/bank-marketing.yaml")
    assert load_criteria(bank.criteria_path, bank).pass_score == 50
