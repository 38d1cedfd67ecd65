"""The reference profile of the training data: what "normal" inputs and scores look like.

Built at training time from the clean view (`models.features.normalize`) and stored with the model
as JSON, so monitoring compares live leads with the data *this* model learnt from. Each profiled
column is reduced to a fixed list of bins and the share of training rows in each; `bin_codes`
puts new values into the same bins, in the same order, so the two share vectors line up.

A feature profile (one per column, and one for the score under "score"):

    numeric:     {"kind": "numeric", "edges": [e1, .., ek], "labels": [...], "shares": [...]}
                 bins [-inf, e1), [e1, e2), .., [ek, +inf), then missing (k + 2 shares)
    categorical: {"kind": "categorical", "categories": [c1, .., cn], "labels": [...],
                  "shares": [...]}
                 bins c1 .. cn (most frequent first), "__other__", "__missing__" (n + 2 shares)

Bins are closed on the left, like the tiers in `models.decision` (0.8 is tier A and score bin
[0.8, 0.9)). The whole profile is {"version", "rows", "features": {name: profile}, "score":
profile plus "mean"}.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd

from models.features import codes_of
from models.spec import DatasetSpec, FieldType

PROFILE_VERSION = 1
OTHER, MISSING = "__other__", "__missing__"
NUMERIC_QUANTILES = tuple(np.round(np.arange(1, 10) / 10, 1))  # deciles: 10 bins before dedup
SCORE_EDGES = tuple(np.round(np.arange(1, 10) / 10, 1))  # 0-0.1 .. 0.9-1, fixed across models
MAX_CATEGORIES = 30

# Personal fields reach the scoring log redacted (`models.features.redact_personal`). For these
# types the redacted value normalises to what the model uses (an e-mail's kind, a phone's
# validity, a name's presence), so the log is comparable with training. Other personal fields
# arrive as the word "redacted": profiling them would store personal values and compare them
# with a constant, so they are left out.
_COMPARABLE_WHEN_REDACTED = frozenset({FieldType.email, FieldType.phone, FieldType.text})
_NUMERIC_TYPES = frozenset({FieldType.numeric, FieldType.boolean})


def build_profile(
    clean: pd.DataFrame,
    spec: DatasetSpec,
    p_accept: np.ndarray,
    feature_columns: list[str],
    max_categories: int = MAX_CATEGORIES,
) -> dict[str, Any]:
    """The JSON-able reference profile of training rows `clean` and their scores `p_accept`.

    `feature_columns` are the model's inputs in the clean view (e.g. the encoder's
    `feature_names_`, time features included); the spec decides whether each is binned by
    quantiles or by category.
    """
    scores = np.asarray(p_accept, dtype=float)
    features = {
        name: _profile_column(clean[name], _kind(name, spec, clean[name]), max_categories)
        for name in feature_columns
        if _comparable(name, spec)
    }
    score = _numeric_profile(list(SCORE_EDGES), scores)
    return {
        "version": PROFILE_VERSION,
        "rows": len(clean),
        "features": features,
        "score": {**score, "mean": float(np.nanmean(scores)) if len(scores) else None},
    }


def bin_codes(values: pd.Series | np.ndarray, profile: dict[str, Any]) -> np.ndarray:
    """The bin index of each value under a feature profile (missing is the last bin)."""
    values = pd.Series(values)
    if profile["kind"] == "numeric":
        return _numeric_codes(values, profile["edges"])
    return _categorical_codes(values, profile["categories"])


def bin_shares(values: pd.Series | np.ndarray, profile: dict[str, Any]) -> np.ndarray:
    """Share of `values` in each bin of a feature profile, in the profile's order (NaN if empty)."""
    return _shares(bin_codes(values, profile), len(profile["labels"]))


def _comparable(name: str, spec: DatasetSpec) -> bool:
    field = spec.fields.get(name)
    return field is None or not field.is_personal or field.type in _COMPARABLE_WHEN_REDACTED


def _kind(name: str, spec: DatasetSpec, values: pd.Series) -> str:
    field = spec.fields.get(name)
    if field is None:  # derived columns (time features): whatever the clean view made of them
        return "numeric" if pd.api.types.is_numeric_dtype(values) else "categorical"
    # A personal text field is reduced to presence (1.0 or missing) in the clean view.
    numeric = field.type in _NUMERIC_TYPES or (field.type is FieldType.text and field.is_personal)
    return "numeric" if numeric else "categorical"


def _profile_column(values: pd.Series, kind: str, max_categories: int) -> dict[str, Any]:
    if kind == "numeric":
        return _numeric_profile(_decile_edges(values), values)
    return _categorical_profile(values, max_categories)


def _decile_edges(values: pd.Series) -> list[float]:
    present = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    if len(present) == 0:
        return []
    # Edges are observed values ("inverted_cdf"), not interpolations: on counts and flags an
    # interpolated edge such as 0.35 would split nothing and misplace the bin boundaries.
    edges = np.quantile(present, NUMERIC_QUANTILES, method="inverted_cdf")
    return [float(e) for e in np.unique(edges)]


def _numeric_profile(edges: list[float], values: pd.Series | np.ndarray) -> dict[str, Any]:
    shares = _shares(_numeric_codes(pd.Series(values), edges), len(edges) + 2)
    return {
        "kind": "numeric",
        "edges": edges,
        "labels": _numeric_labels(edges),
        "shares": _json_shares(shares),
    }


def _categorical_profile(values: pd.Series, max_categories: int) -> dict[str, Any]:
    counts = values.dropna().astype(str).value_counts()
    # Most frequent first; ties by name, so the same data always gives the same profile.
    ranked = sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:max_categories]
    categories = [str(name) for name, _ in ranked]
    shares = _shares(_categorical_codes(values, categories), len(categories) + 2)
    return {
        "kind": "categorical",
        "categories": categories,
        "labels": [*categories, OTHER, MISSING],
        "shares": _json_shares(shares),
    }


def _numeric_labels(edges: list[float]) -> list[str]:
    if not edges:
        return ["present", MISSING]
    inner = [f"[{low:g}, {high:g})" for low, high in pairwise(edges)]
    return [f"< {edges[0]:g}", *inner, f">= {edges[-1]:g}", MISSING]


def _numeric_codes(values: pd.Series, edges: list[float]) -> np.ndarray:
    x = pd.to_numeric(values, errors="coerce").to_numpy(dtype=float, na_value=np.nan)
    # side="right": a value equal to an edge opens the next bin, i.e. bins are [low, high).
    codes = np.searchsorted(np.asarray(edges, dtype=float), x, side="right")
    codes[np.isnan(x)] = len(edges) + 1
    return codes


def _categorical_codes(values: pd.Series, categories: list[str]) -> np.ndarray:
    position = {name: i for i, name in enumerate(categories)}
    return codes_of(values, position, other=len(categories), missing=len(categories) + 1)


def _shares(codes: np.ndarray, n_bins: int) -> np.ndarray:
    if len(codes) == 0:
        return np.full(n_bins, np.nan)
    return np.bincount(codes, minlength=n_bins) / len(codes)


def _json_shares(shares: np.ndarray) -> list[float | None]:
    return [None if np.isnan(s) else float(s) for s in shares]
