"""The acceptance model: encoder + calibrated boosters + rule criteria, as one scoring object.

This is the object that travels inside the MLflow artifact, so a raw lead is scored the same way by
the training evaluation, the pyfunc and the server.
"""

from __future__ import annotations

import math
import pickle
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from models.criteria import Criteria
from models.encoder import LeadEncoder
from models.features import normalize
from models.spec import DatasetSpec

if TYPE_CHECKING:
    # Only a booster's own methods need LightGBM, so a model without boosters (a batch form)
    # unpickles without importing it: 0.9 s of a `sal score` run, as it imports scikit-learn
    # and SciPy too.
    import lightgbm as lgb

    from models.forest import Forest


@dataclass(frozen=True)
class PlattCalibrator:
    """P = sigmoid(slope * margin + intercept): monotone, so it never changes the ranking (AUC)."""

    slope: float
    intercept: float

    def __call__(self, margin: np.ndarray) -> np.ndarray:
        return 1.0 / (1.0 + np.exp(-(self.slope * margin + self.intercept)))

    def one(self, margin: float) -> float:
        """The same for one margin (NumPy on a one-element array costs the hot path 5 us)."""
        return 1.0 / (1.0 + math.exp(-(self.slope * margin + self.intercept)))


# The name the pickled AcceptanceModel is logged under, inside the pyfunc's artifacts.
ARTIFACT_KEY = "acceptance_model"
# Below this many rows Booster.predict costs less than building the forest: ~0.1 s a booster,
# plus Numba's import and loading the compiled kernel, ~0.7 s once a process.
FOREST_MIN_ROWS = 20_000


@dataclass
class CalibratedBooster:
    """A LightGBM booster whose raw margins are mapped to calibrated probabilities."""

    booster: lgb.Booster
    calibrator: PlattCalibrator

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibrator(self.raw_scores(matrix))

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        """The booster's margins. They come from `models.forest` (several times faster than
        `Booster.predict`, identical bit for bit) once it is built: on the first batch of
        FOREST_MIN_ROWS rows, or by `forest()`."""
        built = "_forest_" in self.__dict__
        forest = self.forest() if built or len(matrix) >= FOREST_MIN_ROWS else None
        if forest is None:
            return self.booster.predict(matrix, raw_score=True)
        return forest.raw_scores(matrix)

    def forest(self) -> Forest | None:
        """The booster as a `models.forest.Forest` (None for a model it does not cover), built
        on first use and kept on this instance, not pickled. Two threads racing here both
        build it; either result is the same."""
        if "_forest_" not in self.__dict__:
            from models.forest import Forest, UnsupportedModel

            try:
                forest = Forest.of(self.booster).loaded()
            except UnsupportedModel:
                forest = None
            self.__dict__["_forest_"] = forest
        return self.__dict__["_forest_"]

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k != "_forest_"}

    def importance(self, feature_names: list[str]) -> pd.Series:
        gain = self.booster.feature_importance(importance_type="gain")
        return pd.Series(gain / max(gain.sum(), 1e-12), index=feature_names).sort_values(
            ascending=False
        )


@dataclass
class CalibratedForest:
    """A CalibratedBooster's batch forest without the booster: the same margins, bit for bit,
    and no LightGBM to load. It scores batches only (no contributions, so no reasons)."""

    trees: Forest
    calibrator: PlattCalibrator

    def predict_proba(self, matrix: np.ndarray) -> np.ndarray:
        return self.calibrator(self.raw_scores(matrix))

    def raw_scores(self, matrix: np.ndarray) -> np.ndarray:
        return self.trees.raw_scores(matrix)

    def forest(self) -> Forest:
        return self.trees.loaded()


@dataclass
class AcceptanceModel:
    """Scores raw leads: P(accept), P(SQL) when trained with an SQL label, and the rule criteria."""

    spec: DatasetSpec
    criteria: Criteria
    encoder: LeadEncoder
    accept: CalibratedBooster | CalibratedForest
    sql: CalibratedBooster | CalibratedForest | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def predict(self, leads: pd.DataFrame) -> pd.DataFrame:
        """One output row per lead, in input order."""
        clean = normalize(leads, self.spec)
        return self.predict_clean(clean)

    def predict_clean(self, clean: pd.DataFrame) -> pd.DataFrame:
        """Score leads already in the clean view (the training pipeline has it at hand)."""
        rules = self.criteria.score(clean, self.spec)
        out = pd.DataFrame(self.probabilities(clean), index=clean.index)
        out["rule_score"] = rules.total
        out["rule_pass"] = rules.passed
        for name in rules.breakdown.columns:
            out[f"criterion_{name}"] = rules.breakdown[name]
        return out.reset_index(drop=True)

    def probabilities(self, clean: pd.DataFrame) -> dict[str, np.ndarray]:
        """Calibrated `p_accept` and, when trained with an SQL label, `p_sql` per lead, without
        the rule criteria (for callers that score those themselves)."""
        matrix = self.encoder.transform(clean)
        scores = {"p_accept": self.accept.predict_proba(matrix)}
        if self.sql is not None:
            scores["p_sql"] = self.sql.predict_proba(matrix)
        return scores

    def prepare_batches(self) -> bool:
        """Build the boosters' batch forests now, so forked workers inherit them: whether every
        booster has one (see CalibratedBooster.forest)."""
        return all(s.forest() is not None for s in (self.accept, self.sql) if s is not None)

    def batch_form(self) -> AcceptanceModel | None:
        """This model with each booster replaced by its batch forest (None when a booster has
        none): it scores files the same, and loads in a fraction of the time. Reasons need the
        boosters (LightGBM's contributions), and so does the single-lead hot path."""
        if not self.prepare_batches():
            return None

        def form(scorer: CalibratedBooster | CalibratedForest) -> CalibratedForest:
            return CalibratedForest(scorer.forest(), scorer.calibrator)  # type: ignore[arg-type]

        sql = form(self.sql) if self.sql is not None else None
        return replace(self, accept=form(self.accept), sql=sql)

    @property
    def feature_names(self) -> list[str]:
        return list(self.encoder.feature_names_)


def save_acceptance_model(model: AcceptanceModel, path: Path) -> Path:
    with path.open("wb") as handle:
        pickle.dump(model, handle, protocol=pickle.HIGHEST_PROTOCOL)
    return path


def load_acceptance_model(path: Path) -> AcceptanceModel:
    """The model a training run logged under ARTIFACT_KEY (what the pyfunc wraps)."""
    with path.open("rb") as handle:
        model = pickle.load(handle)
    if not isinstance(model, AcceptanceModel):
        raise TypeError(f"{path}: holds a {type(model).__name__}, not an AcceptanceModel")
    return model
