"""Hold-out splits: out-of-time when the spec has a timestamp, stratified at random otherwise.

Only labelled leads are split; undecided ones are unlabelled and stay out of training and test.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.features import parse_timestamps
from models.spec import DatasetSpec


class SplitError(ValueError):
    """The labelled data cannot be split into non-empty train, validation and test slices."""


@dataclass(frozen=True)
class Split:
    """Row labels (index values) of each slice, and the time window of each when stamped."""

    train: pd.Index
    valid: pd.Index
    test: pd.Index
    method: str
    windows: dict[str, tuple[str, str]]

    def describe(self) -> dict[str, object]:
        return {
            "method": self.method,
            "rows": {"train": len(self.train), "valid": len(self.valid), "test": len(self.test)},
            "windows": self.windows,
        }


def split_leads(frame: pd.DataFrame, labels: pd.Series, spec: DatasetSpec, seed: int = 42) -> Split:
    """Split the labelled rows of `frame` (labels NaN = undecided) as the spec's split says.

    Out of time: the most recent `test_fraction` of labelled leads is the test slice, the
    `valid_fraction` before it the validation slice (early stopping and calibration) and the rest
    is training. Cut points are timestamps, so every training lead is strictly older than every
    validation lead, and every validation lead strictly older than every test lead.
    """
    labelled = labels.index[labels.notna()]
    if spec.split.method == "time":
        return _by_time(parse_timestamps(frame.loc[labelled, spec.timestamp]), spec)
    if spec.split.method == "order":
        return _by_order(labelled, spec)
    return _stratified(labels.loc[labelled], spec, seed)


def _by_time(stamps: pd.Series, spec: DatasetSpec) -> Split:
    test_start = stamps.quantile(1 - spec.split.test_fraction)
    valid_start = stamps.quantile(1 - spec.split.test_fraction - spec.split.valid_fraction)
    slices = {
        "train": stamps.index[(stamps < valid_start).to_numpy()],
        "valid": stamps.index[((stamps >= valid_start) & (stamps < test_start)).to_numpy()],
        "test": stamps.index[(stamps >= test_start).to_numpy()],
    }
    _require_nonempty(slices)
    windows = {
        name: (str(stamps.loc[index].min()), str(stamps.loc[index].max()))
        for name, index in slices.items()
    }
    return Split(method="time", windows=windows, **slices)


def _by_order(labelled: pd.Index, spec: DatasetSpec) -> Split:
    """Out of time by position: for files kept in time order that carry no date column."""
    n = len(labelled)
    test_start = n - round(n * spec.split.test_fraction)
    valid_start = test_start - round(n * spec.split.valid_fraction)
    slices = {
        "train": labelled[:valid_start],
        "valid": labelled[valid_start:test_start],
        "test": labelled[test_start:],
    }
    _require_nonempty(slices)
    windows = {name: (f"row {index[0]}", f"row {index[-1]}") for name, index in slices.items()}
    return Split(method="order", windows=windows, **slices)


def _stratified(labels: pd.Series, spec: DatasetSpec, seed: int) -> Split:
    if labels.value_counts().min() < 3:
        raise SplitError("each outcome needs at least 3 labelled leads to stratify a split")
    # Imported here: scoring a file (the CLI imports this module for SplitError) never splits.
    from sklearn.model_selection import train_test_split

    rest, test = train_test_split(
        labels.index, test_size=spec.split.test_fraction, stratify=labels, random_state=seed
    )
    valid_share = spec.split.valid_fraction / (1 - spec.split.test_fraction)
    train, valid = train_test_split(
        rest, test_size=valid_share, stratify=labels.loc[rest], random_state=seed
    )
    slices = {
        "train": pd.Index(np.sort(train)),
        "valid": pd.Index(np.sort(valid)),
        "test": pd.Index(np.sort(test)),
    }
    _require_nonempty(slices)
    return Split(method="stratified", windows={}, **slices)


def _require_nonempty(slices: dict[str, pd.Index]) -> None:
    empty = [name for name, index in slices.items() if len(index) == 0]
    if empty:
        raise SplitError(
            f"the {', '.join(empty)} slice(s) would be empty: too few labelled "
            "leads (or too few distinct timestamps) for the spec's split fractions"
        )
