"""Leakage audit: find feature columns that carry the outcome instead of predicting it.

Two signals, both computed on the training slice only:

1. **Single-column AUC.** A column that alone separates accepted from rejected leads almost
   perfectly (ROC AUC >= `audit.single_column_auc`, 0.90 by default) is almost always written after
   the decision (a rejection reason, a "days to close", an owner set on acceptance). Missingness
   counts too: a field filled in only for accepted leads leaks as surely as its values do.
2. **Dominance.** A leak that is noisy on its own (the bank data's call `duration`: AUC 0.82 alone)
   shows up in a model instead: removing it costs far more AUC than removing any other column. A
   column is flagged when dropping it costs at least `audit.dominance_auc_drop` (0.05) AND at least
   `audit.dominance_ratio` (3x) the cost of the next most important column. Real predictors in
   lead data overlap (engagement, readiness and fit all tell part of the story), so none of them is
   that irreplaceable.

Flagged columns are excluded unless the spec lists them in `audit.allow`.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

from models.encoder import LeadEncoder
from models.spec import DatasetSpec

log = logging.getLogger(__name__)

# AUCs on 200k rows are within ~0.002 of the full-data value; drop-column models need fewer.
_AUC_SAMPLE_ROWS = 200_000
_SAMPLE_ROWS = 50_000
_TOP_FEATURES = 3
_QUICK_PARAMS = {
    "objective": "binary",
    "learning_rate": 0.1,
    "num_leaves": 31,
    "min_data_in_leaf": 50,
    "verbose": -1,
    "deterministic": True,
    "force_col_wise": True,
    # Small data: one thread is as fast, and immune to OpenMP stalls when the CPU is shared.
    "num_threads": 1,
}


@dataclass(frozen=True)
class Finding:
    column: str
    signal: str
    evidence: str
    action: str  # "excluded" or "allowed by spec"


@dataclass(frozen=True)
class AuditReport:
    findings: list[Finding]
    single_column_auc: dict[str, float]

    @property
    def excluded(self) -> list[str]:
        return sorted({f.column for f in self.findings if f.action == "excluded"})

    def describe(self) -> list[dict[str, str]]:
        return [f.__dict__ for f in self.findings]


def audit_leakage(
    clean: pd.DataFrame, labels: pd.Series, spec: DatasetSpec, seed: int = 42
) -> AuditReport:
    """Audit the spec's fields on labelled training rows; returns findings and each column's AUC."""
    sample = clean.sample(n=min(len(clean), _AUC_SAMPLE_ROWS), random_state=seed)
    sample_labels = labels.loc[sample.index]
    aucs = {name: _single_column_auc(sample[name], sample_labels, seed) for name in spec.fields}
    findings = [
        Finding(
            name,
            "single-column AUC",
            f"alone separates the outcomes with ROC AUC {auc:.3f} "
            f"(threshold {spec.audit.single_column_auc:.2f})",
            "",
        )
        for name, auc in aucs.items()
        if auc >= spec.audit.single_column_auc
    ]
    findings += _dominance(clean, labels, spec, seed)
    decided = [
        Finding(
            f.column,
            f.signal,
            f.evidence,
            "allowed by spec" if f.column in spec.audit.allow else "excluded",
        )
        for f in findings
    ]
    for finding in decided:
        log.warning(
            "leakage audit: %s %s (%s): %s",
            finding.column,
            finding.action,
            finding.signal,
            finding.evidence,
        )
    return AuditReport(findings=decided, single_column_auc=aucs)


def _single_column_auc(values: pd.Series, labels: pd.Series, seed: int) -> float:
    """Best of both orientations, with missing as its own value (so missingness is audited too)."""
    y = labels.to_numpy()
    if len(np.unique(y)) < 2:
        return 0.5
    numeric = pd.api.types.is_numeric_dtype(values)
    score = _numeric_score(values) if numeric else _out_of_fold_rate(values, labels, seed)
    if numeric:
        # Try missing both below and above every value, and keep the stronger reading.
        if np.isnan(score).all():
            return 0.5
        low, high = np.nanmin(score) - 1, np.nanmax(score) + 1
        candidates = [np.where(np.isnan(score), low, score), np.where(np.isnan(score), high, score)]
    else:
        candidates = [score]
    best = max(roc_auc_score(y, c) for c in candidates)
    worst = min(roc_auc_score(y, c) for c in candidates)
    return float(max(best, 1 - worst))


def _numeric_score(values: pd.Series) -> np.ndarray:
    return pd.to_numeric(values, errors="coerce").to_numpy(dtype=float)


def _out_of_fold_rate(values: pd.Series, labels: pd.Series, seed: int) -> np.ndarray:
    # A category's own rate would score its own rows: that overfits every high-cardinality column.
    keys = values.astype(object).where(values.notna(), "__missing__").to_numpy()
    fold = np.random.default_rng(seed).integers(0, 2, len(keys))
    prior = labels.mean()
    score = np.empty(len(keys))
    for k in (0, 1):
        rates = pd.Series(labels.to_numpy()[fold != k]).groupby(keys[fold != k]).mean()
        score[fold == k] = pd.Series(keys[fold == k]).map(rates).fillna(prior).to_numpy()
    return score


def _dominance(
    clean: pd.DataFrame, labels: pd.Series, spec: DatasetSpec, seed: int
) -> list[Finding]:
    if labels.value_counts().min() < 50:
        return []  # too few outcomes for a stable drop-column comparison
    sample = clean.sample(n=min(len(clean), _SAMPLE_ROWS), random_state=seed)
    y = labels.loc[sample.index].to_numpy()
    encoder = LeadEncoder(spec).fit(sample)
    matrix = encoder.transform(sample)
    fit_rows, eval_rows = train_test_split(
        np.arange(len(y)), test_size=0.3, stratify=y, random_state=seed
    )
    names = encoder.feature_names_
    base_auc, gains = _quick_auc(matrix, y, fit_rows, eval_rows, names, encoder, drop=None)
    top = [names[i] for i in np.argsort(gains)[::-1][:_TOP_FEATURES] if names[i] in spec.fields]
    costs = {
        name: base_auc - _quick_auc(matrix, y, fit_rows, eval_rows, names, encoder, drop=name)[0]
        for name in top
    }
    findings = []
    for name, cost in costs.items():
        others = max([c for n, c in costs.items() if n != name] + [0.005])
        if cost >= spec.audit.dominance_auc_drop and cost >= spec.audit.dominance_ratio * others:
            findings.append(
                Finding(
                    name,
                    "dominance",
                    f"removing it costs {cost:.3f} ROC AUC in a quick model (AUC "
                    f"{base_auc:.3f}); the next most important column costs {others:.3f} — one "
                    "column this irreplaceable is usually recorded after the decision",
                    "",
                )
            )
    return findings


def _quick_auc(matrix, y, fit_rows, eval_rows, names, encoder, drop):
    keep = [j for j, n in enumerate(names) if n != drop]
    categorical = [keep.index(j) for j in encoder.categorical_indices if j in keep]
    train = lgb.Dataset(
        matrix[fit_rows][:, keep],
        label=y[fit_rows],
        categorical_feature=categorical,
        free_raw_data=True,
    )
    booster = lgb.train(_QUICK_PARAMS, train, num_boost_round=150)
    auc = roc_auc_score(y[eval_rows], booster.predict(matrix[eval_rows][:, keep]))
    gains = np.zeros(len(names))
    gains[keep] = booster.feature_importance(importance_type="gain")
    return float(auc), gains
