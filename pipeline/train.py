"""Fit the acceptance model: encoder, LightGBM with early stopping, Platt calibration.

P(accept) is always fitted; P(SQL) too when the spec has an SQL label with both outcomes present.
The validation slice (later in time than training) drives early stopping and calibration.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

from models.acceptance import AcceptanceModel, CalibratedBooster, PlattCalibrator
from models.criteria import Criteria
from models.encoder import LeadEncoder
from models.spec import DatasetSpec
from pipeline.config import TrainConfig

log = logging.getLogger(__name__)

_PROGRESS_EVERY = 100


@dataclass
class Slice:
    """One slice of leads: the clean view and its outcomes (NaN = undecided)."""

    clean: pd.DataFrame
    accepted: pd.Series
    sql: pd.Series | None = None


def fit(
    train: Slice, valid: Slice, spec: DatasetSpec, criteria: Criteria, config: TrainConfig
) -> AcceptanceModel:
    """Fit encoder and calibrated boosters on `train`, stopping early and calibrating on `valid`."""
    encoder = LeadEncoder(spec, **config.encoder.model_dump()).fit(train.clean)
    x_train, x_valid = encoder.transform(train.clean), encoder.transform(valid.clean)
    accept = _fit_calibrated(
        "P(accept)", x_train, train.accepted, x_valid, valid.accepted, encoder, config
    )
    sql = None
    if train.sql is not None and valid.sql is not None and _both_outcomes(train.sql, valid.sql):
        sql = _fit_calibrated("P(SQL)", x_train, train.sql, x_valid, valid.sql, encoder, config)
    elif train.sql is not None:
        log.warning("no P(SQL) model: the SQL label needs both outcomes in train and validation")
    return AcceptanceModel(spec=spec, criteria=criteria, encoder=encoder, accept=accept, sql=sql)


def fit_platt(scores: np.ndarray, labels: np.ndarray) -> PlattCalibrator:
    """Logistic calibration of a 1-D score (a booster margin, or a rule total)."""
    model = LogisticRegression(C=1e6, max_iter=1000).fit(scores.reshape(-1, 1), labels)
    return PlattCalibrator(slope=float(model.coef_[0, 0]), intercept=float(model.intercept_[0]))


def _fit_calibrated(
    name: str,
    x_train: np.ndarray,
    y_train: pd.Series,
    x_valid: np.ndarray,
    y_valid: pd.Series,
    encoder: LeadEncoder,
    config: TrainConfig,
) -> CalibratedBooster:
    train_rows, valid_rows = y_train.notna().to_numpy(), y_valid.notna().to_numpy()
    categorical = encoder.categorical_indices
    dtrain = lgb.Dataset(
        x_train[train_rows],
        label=y_train.to_numpy()[train_rows],
        feature_name=encoder.feature_names_,
        categorical_feature=categorical,
        free_raw_data=True,
    )
    dvalid = dtrain.create_valid(x_valid[valid_rows], label=y_valid.to_numpy()[valid_rows])
    params = {
        "metric": "binary_logloss",
        "verbose": -1,
        "seed": config.seed,
        "monotone_constraints": encoder.monotone_constraints,
        **config.lightgbm,
    }
    log.info("training %s on %d leads (validation %d)", name, train_rows.sum(), valid_rows.sum())
    booster = lgb.train(
        params,
        dtrain,
        num_boost_round=config.num_boost_round,
        valid_sets=[dvalid],
        valid_names=["valid"],
        callbacks=[
            lgb.early_stopping(config.early_stopping_rounds, verbose=False),
            _progress(name),
        ],
    )
    log.info(
        "%s: best iteration %d (stopped after %d)",
        name,
        booster.best_iteration,
        booster.current_iteration(),
    )
    margins = booster.predict(
        x_valid[valid_rows], raw_score=True, num_iteration=booster.best_iteration
    )
    booster = _keep_best(booster)
    calibrator = fit_platt(margins, y_valid.to_numpy()[valid_rows])
    return CalibratedBooster(booster=booster, calibrator=calibrator)


def _keep_best(booster: lgb.Booster) -> lgb.Booster:
    # Drop the trees grown after the best iteration so every later predict uses the right model.
    return lgb.Booster(model_str=booster.model_to_string(num_iteration=booster.best_iteration))


def _progress(name: str):
    def callback(env: lgb.callback.CallbackEnv) -> None:
        if (env.iteration + 1) % _PROGRESS_EVERY == 0:
            _, metric, value, _ = env.evaluation_result_list[0]
            log.info("%s: round %d, validation %s %.4f", name, env.iteration + 1, metric, value)

    return callback


def _both_outcomes(*labels: pd.Series) -> bool:
    return all(series.dropna().nunique() == 2 for series in labels)
