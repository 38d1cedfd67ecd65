"""Reasons: the factors pushing one lead's acceptance up and down, in words tied to its own fields.

Computed from the model itself: LightGBM's per-row feature contributions (TreeSHAP) on the margin
of P(accept). The calibrator is monotone, so a factor that raises the margin raises P(accept).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from models.acceptance import AcceptanceModel
from models.spec import FieldType


@dataclass(frozen=True)
class Reason:
    field: str
    value: str
    direction: str  # "+" or "-"
    weight: float  # contribution to the log-odds of acceptance

    @property
    def text(self) -> str:
        return f"{self.field.replace('_', ' ')} {self.value}: {self.direction}"


def explain(model: AcceptanceModel, clean: pd.DataFrame, top: int = 3) -> list[list[Reason]]:
    """Up to `top` reasons each way per lead (strongest first), for leads in the clean view."""
    matrix = model.encoder.transform(clean)
    contributions = model.accept.booster.predict(matrix, pred_contrib=True)[:, :-1]  # last: bias
    return [
        _reasons(model, matrix[i], contributions[i], clean.iloc[i].to_dict(), top)
        for i in range(len(matrix))
    ]


def explain_row(
    model: AcceptanceModel, row: np.ndarray, contributions: np.ndarray, clean: dict, top: int = 3
) -> list[Reason]:
    """Reasons for one encoded lead: the hot path's row, its contributions (without the bias, as
    `models.fastpath.LeadScorer.contributions` gives them) and clean dict."""
    return _reasons(model, row[0], contributions, clean, top)


def _reasons(
    model: AcceptanceModel, codes: np.ndarray, contrib: np.ndarray, clean: dict, top: int
) -> list[Reason]:
    names = model.feature_names
    order = np.argsort(-np.abs(contrib), kind="stable")
    ups = [j for j in order if contrib[j] > 0][:top]
    downs = [j for j in order if contrib[j] < 0][:top]
    return [
        Reason(
            names[j],
            _describe(model, names[j], float(codes[j]), clean),
            "+" if contrib[j] > 0 else "-",
            round(float(contrib[j]), 4),
        )
        for j in ups + downs
    ]


def _describe(model: AcceptanceModel, name: str, code: float, clean: dict) -> str:
    if name in model.encoder.vocabularies_:
        return model.encoder.describe_code(name, code)
    if np.isnan(code):
        return "missing"
    field = model.spec.fields.get(name)
    if field is not None and field.type is FieldType.boolean:
        return "yes" if code == 1 else "no"
    if field is not None and field.type is FieldType.text:  # a personal field reduced to presence
        return "given"
    value = clean.get(name, code)
    return f"{float(value):,.4g}"
