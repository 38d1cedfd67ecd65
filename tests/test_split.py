"""Out-of-time split: training never sees a lead newer than validation or test."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from pipeline.split import SplitError, split_leads


def _leads(n: int, seed: int = 0) -> tuple[pd.DataFrame, pd.Series]:
    rng = np.random.default_rng(seed)
    # Shuffled, with many ties on the same second, as CRM exports are.
    stamps = pd.Timestamp("2025-01-01") + pd.to_timedelta(rng.integers(0, 200, n) * 3600, unit="s")
    frame = pd.DataFrame({"mql_at": stamps.astype(str)})
    labels = pd.Series(rng.choice([0.0, 1.0, np.nan], size=n, p=[0.4, 0.5, 0.1]))
    return frame, labels


@pytest.mark.parametrize("seed", range(5))
def test_no_future_lead_in_training(builtin_spec, seed) -> None:
    frame, labels = _leads(3000, seed)
    split = split_leads(frame, labels, builtin_spec)
    stamps = pd.to_datetime(frame["mql_at"])
    assert stamps[split.train].max() < stamps[split.valid].min()
    assert stamps[split.valid].max() < stamps[split.test].min()
    # Test is the most recent ~20 % of labelled leads, validation the ~10 % before it.
    labelled = labels.notna().sum()
    assert abs(len(split.test) / labelled - 0.2) < 0.03
    assert abs(len(split.valid) / labelled - 0.1) < 0.03


def test_undecided_leads_are_in_no_slice(builtin_spec) -> None:
    frame, labels = _leads(2000)
    split = split_leads(frame, labels, builtin_spec)
    used = split.train.union(split.valid).union(split.test)
    assert set(used) == set(labels.index[labels.notna()])
    assert len(used) == len(split.train) + len(split.valid) + len(split.test)


def test_stratified_split_keeps_the_rate(builtin_spec) -> None:
    spec = builtin_spec.model_copy(
        update={
            "split": builtin_spec.split.model_copy(
                update={"method": "stratified", "test_fraction": 0.3}
            )
        }
    )
    frame, labels = _leads(5000)
    split = split_leads(frame, labels, spec, seed=3)
    rate = labels.dropna().mean()
    for index in (split.train, split.valid, split.test):
        assert abs(labels[index].mean() - rate) < 0.01
    assert abs(len(split.test) / labels.notna().sum() - 0.3) < 0.01
    assert split_leads(frame, labels, spec, seed=3).test.equals(split.test)


def test_too_few_timestamps_is_an_error(builtin_spec) -> None:
    frame = pd.DataFrame({"mql_at": ["2025-01-01"] * 50})
    with pytest.raises(SplitError, match="would be empty"):
        split_leads(frame, pd.Series([1.0, 0.0] * 25), builtin_spec)


def test_order_split_holds_out_the_last_rows(builtin_spec) -> None:
    spec = builtin_spec.model_copy(
        update={"split": builtin_spec.split.model_copy(update={"method": "order"})}
    )
    frame, labels = _leads(1000)
    split = split_leads(frame, labels, spec)
    labelled = labels.index[labels.notna()]
    # train, then validation, then test, in file order, undecided rows in none of them
    assert list(split.train) + list(split.valid) + list(split.test) == list(labelled)
    assert len(split.test) == round(0.2 * len(labelled))
    assert len(split.valid) == round(0.1 * len(labelled))
    assert split.windows["test"] == (f"row {split.test[0]}", f"row {labelled[-1]}")
