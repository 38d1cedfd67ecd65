"""models.forest scores exactly what Booster.predict does: same margins, bit for bit."""

from __future__ import annotations

import math
import pickle

import lightgbm as lgb
import numpy as np
import pytest

from models.acceptance import FOREST_MIN_ROWS, CalibratedBooster, PlattCalibrator
from models.forest import Forest, UnsupportedModel


def _booster(rows: int = 3000, seed: int = 0, **params: object) -> tuple[lgb.Booster, np.ndarray]:
    """A booster over two categorical and three numeric features, trained with missing values
    and zeros, so its splits use every missing-value rule LightGBM has."""
    rng = np.random.default_rng(seed)
    matrix = np.column_stack(
        [
            rng.integers(0, 40, rows),  # categorical, codes up to 39 (two bitset words)
            rng.integers(0, 5, rows),  # categorical
            rng.normal(0, 3, rows),
            rng.choice([0.0, 1.0, 2.5, np.nan], rows),
            rng.exponential(10, rows),
        ]
    ).astype(np.float32)
    matrix[rng.random(rows) < 0.1, 2] = np.nan
    signal = (matrix[:, 0] % 7 < 3) + np.nan_to_num(matrix[:, 2]) / 3 + (matrix[:, 3] == 0)
    label = (signal + rng.normal(0, 1, rows) > 1).astype(int)
    settings = {
        "objective": "binary",
        "num_leaves": 31,
        "min_data_in_leaf": 5,
        "min_data_per_group": 5,
        "cat_smooth": 1,
        "verbose": -1,
        **params,
    }
    data = lgb.Dataset(matrix, label, categorical_feature=[0, 1])
    return lgb.train(settings, data, num_boost_round=60), matrix


def _odd_rows(booster: lgb.Booster) -> np.ndarray:
    """Values on, just below and just above every threshold, and values no encoder makes."""
    specials = [
        np.nan,
        0.0,
        -0.0,
        1e-36,
        -1e-36,
        1e-35,
        -1e-35,
        -0.5,
        -1.0,
        -3.0,
        2.7,
        39.9,
        40.0,
        63.0,
        64.0,
        1e9,
        -1e9,
        np.inf,
        -np.inf,
    ]
    thresholds = [
        value
        for tree in booster.dump_model()["tree_info"]
        for value in _thresholds(tree["tree_structure"])
    ]
    values = []
    for t in thresholds:
        t32 = np.float32(np.clip(t, -3e38, 3e38))
        values += [
            t32,
            np.nextafter(t32, np.float32(-np.inf)),
            np.nextafter(t32, np.float32(np.inf)),
        ]
    values = np.array(specials + values, dtype=np.float32)
    rng = np.random.default_rng(1)
    return rng.choice(values, size=(5000, booster.num_feature())).astype(np.float32)


def _thresholds(node: dict) -> list[float]:
    if "split_index" not in node:
        return []
    own = [node["threshold"]] if node["decision_type"] == "<=" else []
    return own + _thresholds(node["left_child"]) + _thresholds(node["right_child"])


@pytest.mark.parametrize(
    "params",
    [
        {},  # NaN as missing
        {"zero_as_missing": True},  # zero (and NaN) as missing
        {"use_missing": False},  # no missing handling: NaN is zero
        {"num_leaves": 64, "min_data_in_leaf": 1, "max_cat_to_onehot": 8},
    ],
    ids=["nan-missing", "zero-missing", "no-missing", "64-leaves"],
)
def test_margins_equal_booster_predict_bit_for_bit(params: dict) -> None:
    booster, matrix = _booster(**params)
    forest = Forest.of(booster)
    # The numeric splits use the missing-value rule the parameters ask for (1: zero, 2: NaN).
    missing_rules = {
        (int(kind) >> 2) & 3
        for line in booster.model_to_string().splitlines()
        if line.startswith("decision_type=")
        for kind in line.partition("=")[2].split()
        if not int(kind) & 1
    }
    expected_rule = 1 if params.get("zero_as_missing") else 0 if "use_missing" in params else 2
    assert expected_rule in missing_rules
    wide = params.get("num_leaves", 31) > 32  # trees of up to 64 leaves need 64-bit masks
    assert forest.masks.dtype == (np.uint64 if wide else np.uint32)
    for rows in (matrix, _odd_rows(booster)):
        expected = booster.predict(rows, raw_score=True)
        assert np.array_equal(forest.raw_scores(rows), expected)


def test_the_trained_models_boosters_score_the_same(trained, builtin_csv) -> None:
    from models.registry import load_by_alias
    from pipeline.load import load_leads

    summary, settings, _ = trained
    model = load_by_alias(settings.tracking_uri, summary.model_name, "champion", 0.5).model
    assert model.sql is not None
    matrix = model.encoder.transform(load_leads(builtin_csv, model.spec).clean)
    for scorer in (model.accept, model.sql):
        expected = scorer.booster.predict(matrix, raw_score=True)
        assert np.array_equal(Forest.of(scorer.booster).raw_scores(matrix), expected)


def test_best_iteration_is_the_one_scored() -> None:
    booster, matrix = _booster()
    booster.best_iteration = 25  # as early stopping leaves it
    assert np.array_equal(
        Forest.of(booster).raw_scores(matrix), booster.predict(matrix, raw_score=True)
    )
    assert not np.array_equal(
        Forest.of(booster).raw_scores(matrix),
        booster.predict(matrix, raw_score=True, num_iteration=60),
    )


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"num_leaves": 80, "min_data_in_leaf": 1}, "at most 64"),
        ({"linear_tree": True}, "linear trees"),
        ({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.8}, "averaged trees"),
        ({"objective": "multiclass", "num_class": 3}, "one tree per iteration"),
    ],
)
def test_models_it_does_not_cover_are_refused_and_still_scored(params: dict, message: str) -> None:
    booster, matrix = _booster(rows=6000, **params)
    with pytest.raises(UnsupportedModel, match=message):
        Forest.of(booster)
    scorer = CalibratedBooster(booster, PlattCalibrator(1.0, 0.0))
    many = np.repeat(matrix, math.ceil(FOREST_MIN_ROWS / len(matrix)), axis=0)
    expected = 1 / (1 + np.exp(-booster.predict(many, raw_score=True)))
    assert np.array_equal(scorer.predict_proba(many), expected)


def test_a_matrix_of_the_wrong_width_is_refused() -> None:
    booster, matrix = _booster(rows=500)
    with pytest.raises(ValueError, match="expected 5 features"):
        Forest.of(booster).raw_scores(matrix[:, :4])


def test_calibrated_booster_uses_the_forest_for_big_batches_and_does_not_pickle_it() -> None:
    booster, matrix = _booster()
    scorer = CalibratedBooster(booster, PlattCalibrator(0.8, -0.1))
    many = np.repeat(matrix, math.ceil(FOREST_MIN_ROWS / len(matrix)), axis=0)
    expected = scorer.calibrator(booster.predict(many, raw_score=True))
    assert np.array_equal(scorer.predict_proba(many), expected)
    assert isinstance(scorer.__dict__["_forest_"], Forest)  # the big batch built it
    copy = pickle.loads(pickle.dumps(scorer))
    assert "_forest_" not in copy.__dict__
    assert np.array_equal(copy.predict_proba(matrix), scorer.predict_proba(matrix))


def test_numba_is_kept_from_scipy_only_on_the_importing_thread() -> None:
    """models.jit hides SciPy and cffi from the thread that imports Numba's typing modules;
    another thread importing them at that moment (a service loading LightGBM) is not refused."""
    import threading

    from models.jit import _Unavailable

    finder = _Unavailable(frozenset({"scipy", "cffi"}))
    with pytest.raises(ModuleNotFoundError, match=r"scipy\.linalg"):
        finder.find_spec("scipy.linalg")
    assert finder.find_spec("numpy.linalg") is None
    elsewhere: list[object] = []
    thread = threading.Thread(target=lambda: elsewhere.append(finder.find_spec("scipy.linalg")))
    thread.start()
    thread.join()
    assert elsewhere == [None]
