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


def _identity(chunk):
    return chunk


def test_bank_marketing_read_in_parts_by_worker_processes(tmp_path) -> None:
    """A file whose every text value is quoted and whose delimiter is ';', cut into parts that
    worker processes read themselves, gives the rows and checks of the whole file read here."""
    import pandas as pd

    from models.spec import load_spec
    from pipeline.load import LeadStream, load_leads

    data = shared_dataset("bank-marketing") / "bank-additional-full.csv"
    spec = load_spec(ROOT / "data/specs/bank-marketing.yaml")
    stream = LeadStream(data, spec, tmp_path / "parts.csv", chunk_rows=5_000)
    chunks = list(stream.map(_identity, processes=2))
    whole = load_leads(data, spec, tmp_path / "whole.csv")
    assert stream._in_parts and len(chunks) >= 8
    pd.testing.assert_frame_equal(pd.concat([c.frame for c in chunks]), whole.frame)
    pd.testing.assert_frame_equal(pd.concat([c.clean for c in chunks]), whole.clean)
    assert stream.report.rows_read == whole.report.rows_read == 41_188
