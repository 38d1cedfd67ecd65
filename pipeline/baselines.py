"""Baselines scored on the same test slice as the model: the rule criteria and a logistic model.

The rule score (0-100) is calibrated to a probability on the validation slice so that calibration
metrics compare like with like; its ranking, and so its ROC AUC, is the rules' own.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from models.acceptance import PlattCalibrator
from models.spec import DatasetSpec, FieldType
from pipeline.train import fit_platt

_CODED = (FieldType.categorical, FieldType.email, FieldType.phone)


def fit_rule_calibration(rule_scores: pd.Series, labels: pd.Series) -> PlattCalibrator:
    labelled = labels.notna().to_numpy()
    return fit_platt(rule_scores.to_numpy()[labelled], labels.to_numpy()[labelled])


def fit_logistic(
    clean: pd.DataFrame,
    labels: pd.Series,
    spec: DatasetSpec,
    features: list[str],
    max_rows: int,
    seed: int,
) -> Pipeline:
    """One-hot categoricals, imputed and scaled numerics (with missing indicators), L2 logistic.

    `features` are the model's own inputs, so the baseline sees exactly what the model sees
    (nothing the leakage audit excluded).
    """
    labelled = clean.loc[labels.notna(), features]
    if len(labelled) > max_rows:
        labelled = labelled.sample(n=max_rows, random_state=seed)
    coded = [
        n
        for n in features
        if n in spec.fields and (spec.fields[n].type in _CODED or _is_kept_text(spec, n))
    ]
    numeric = [c for c in labelled.columns if c not in coded]
    columns = ColumnTransformer(
        [
            (
                "categorical",
                make_pipeline(
                    SimpleImputer(strategy="constant", fill_value="__missing__"),
                    OneHotEncoder(
                        handle_unknown="infrequent_if_exist", min_frequency=20, max_categories=50
                    ),
                ),
                coded,
            ),
            (
                "numeric",
                make_pipeline(
                    SimpleImputer(strategy="median", add_indicator=True, keep_empty_features=True),
                    StandardScaler(),
                ),
                numeric,
            ),
        ]
    )
    model = Pipeline([("columns", columns), ("logistic", LogisticRegression(max_iter=1000))])
    frame = _as_object(labelled, coded)
    return model.fit(frame, labels.loc[labelled.index].to_numpy())


def predict_logistic(model: Pipeline, clean: pd.DataFrame) -> np.ndarray:
    coded = model.named_steps["columns"].transformers_[0][2]
    return model.predict_proba(_as_object(clean, coded))[:, 1]


def _is_kept_text(spec: DatasetSpec, name: str) -> bool:
    field = spec.fields[name]
    return field.type is FieldType.text and not field.is_personal


def _as_object(frame: pd.DataFrame, coded: list[str]) -> pd.DataFrame:
    # sklearn's imputer wants one missing marker: turn every NA flavour into None.
    out = frame.copy()
    for name in coded:
        out[name] = out[name].astype(object).where(out[name].notna(), None)
    return out
