"""The bring-your-own-data path on real data nobody here made: UCI Bank Marketing via its spec."""

from __future__ import annotations

import pytest

from pipeline.run import TrainInputs, train_from_file
from tests.conftest import ROOT, shared_dataset

pytestmark = pytest.mark.shared_data


def test_bank_marketing_end_to_end(mlflow_store, tmp_path) -> None:
    data = shared_dataset("bank-marketing") / "bank-additional-full.csv"
    inputs = TrainInputs(
        data=data,
        spec=ROOT / "data/specs/bank-marketing.yaml",
        rejects=tmp_path / "rejects.csv",
        routing_target=0.5,  # about 11% subscribe: 90% of routed leads is out of reach here
    )
    summary = train_from_file(inputs, mlflow_store)
    assert summary.data["rows_read"] == 41_188 and summary.data["rows_rejected"] == 0
    # the call duration is only known after the outcome: the audit must find and drop it
    assert [(f["column"], f["action"]) for f in summary.leakage] == [("duration", "excluded")]
    assert summary.data["split"]["method"] == "stratified"
    assert summary.data["split"]["rows"]["test"] == pytest.approx(0.3 * 41_188, abs=2)
    # published results without the leak: 0.79-0.80
    assert summary.metrics["model"]["roc_auc"] >= 0.79
    assert summary.metrics["model"]["roc_auc"] > summary.metrics["rules"]["roc_auc"]
    assert summary.model_name == "bank-marketing" and summary.champion_moved
    # the routing promise, chosen on the validation slice, holds on the held-out test slice
    policy, held_out = summary.routing["policy"], summary.routing["later_slice"]
    assert policy["met"] and policy["promised_rate"] >= 0.5
    assert held_out["acceptance_rate"] >= 0.5 and 0.02 < held_out["coverage"] < 0.5
