"""The feature encoder: the clean view of a lead -> the model's numeric row.

Fitted once on training data and shipped inside the model artifact, so training, the MLflow pyfunc
and the server encode a lead with the same object. Categorical-like columns become integer codes
that LightGBM treats natively:

    0          missing
    1 .. K     values seen at least `min_frequency` times in training
    K + 1      anything else: rare in training or never seen ("other")

Mapping unseen values onto the same code as rare training values means the model has learnt what
"other" means, so an unknown value at serving time is scored, not rejected.
"""

from __future__ import annotations

from functools import cached_property
from typing import Self

import numpy as np
import pandas as pd

from models.features import TIME_FEATURES, codes_of
from models.spec import DatasetSpec

MISSING_CODE = 0


class LeadEncoder:
    """Encode `models.features.normalize` output into a float32 matrix for LightGBM.

    It follows scikit-learn's fit/transform convention without deriving from its base classes:
    they would make unpickling a model import scikit-learn and SciPy, about 1 s of every `sal
    score` run, for nothing a batch uses.

    Parameters
    ----------
    spec: the dataset spec that declares the fields.
    min_frequency: a category needs this many training rows to get its own code.
    max_categories: at most this many codes per field (the most frequent win); text fields such as
        job titles are long-tailed, and LightGBM's categorical splits degrade past a few hundred.
    """

    def __init__(self, spec: DatasetSpec, min_frequency: int = 20, max_categories: int = 100):
        self.spec = spec
        self.min_frequency = min_frequency
        self.max_categories = max_categories

    def fit(self, clean: pd.DataFrame, y: object = None) -> Self:
        self.__dict__.pop("_inverse_vocabularies", None)  # a refit must not describe old codes
        self.vocabularies_: dict[str, dict[str, int]] = {}
        for name in self._coded_fields():
            counts = clean[name].value_counts(dropna=True)
            kept = counts[counts >= self.min_frequency].index[: self.max_categories]
            self.vocabularies_[name] = {str(v): i + 1 for i, v in enumerate(sorted(map(str, kept)))}
        time = [c for c in TIME_FEATURES if c in clean.columns]
        self.feature_names_: list[str] = [*self.spec.fields, *time]
        self.categorical_features_: list[str] = list(self.vocabularies_)
        return self

    def transform(self, clean: pd.DataFrame) -> np.ndarray:
        matrix = np.empty((len(clean), len(self.feature_names_)), dtype=np.float32)
        for j, name in enumerate(self.feature_names_):
            if name in self.vocabularies_:
                matrix[:, j] = self._codes(clean[name], self.vocabularies_[name])
            else:
                matrix[:, j] = pd.to_numeric(clean[name], errors="coerce").to_numpy(np.float64)
        return matrix

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.asarray(self.feature_names_, dtype=object)

    @property
    def categorical_indices(self) -> list[int]:
        return [self.feature_names_.index(n) for n in self.categorical_features_]

    @property
    def monotone_constraints(self) -> list[int]:
        """LightGBM's per-feature constraint vector from the spec's `monotone` declarations."""
        direction = {"increasing": 1, "decreasing": -1, None: 0}
        return [
            direction[self.spec.fields[n].monotone] if n in self.spec.fields else 0
            for n in self.feature_names_
        ]

    def describe_code(self, name: str, code: float) -> str:
        """The value a code stands for, in words (for reasons and reports)."""
        if code == MISSING_CODE or np.isnan(code):
            return "missing"
        return self._inverse_vocabularies[name].get(int(code), "other")

    @cached_property
    def _inverse_vocabularies(self) -> dict[str, dict[int, str]]:
        # Built once: the hot path describes up to six codes per lead when reasons are asked for.
        return {
            name: {c: v for v, c in vocabulary.items()}
            for name, vocabulary in self.vocabularies_.items()
        }

    def _coded_fields(self) -> list[str]:
        return [name for name, field in self.spec.fields.items() if field.has_text_value]

    @staticmethod
    def _codes(values: pd.Series, vocabulary: dict[str, int]) -> np.ndarray:
        other = len(vocabulary) + 1
        if isinstance(values.dtype, pd.CategoricalDtype):  # looked up per category, then spread
            known = codes_of(values.cat.categories, vocabulary, other, MISSING_CODE, np.float32)
            # A missing value's code is -1: it picks the MISSING_CODE put last.
            return np.append(known, np.float32(MISSING_CODE))[values.cat.codes.to_numpy()]
        return codes_of(values.to_numpy(), vocabulary, other, MISSING_CODE, np.float32)
