"""Turning a table's columns into model input, inside the pipeline.

Every transformation here is fitted on training folds only, because it lives in the same
pipeline as the model; the fitted preprocessor travels with the registered model, so
serving applies exactly what training learned.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.compose import ColumnTransformer
from sklearn.impute import SimpleImputer
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, OneHotEncoder, OrdinalEncoder, StandardScaler

from poise.contracts import DataProfile, Plan

MISSING = "<missing>"


@dataclass(frozen=True)
class Derived:
    """A numeric feature computed from two input columns: a × b, a / b or a − b."""

    name: str
    op: str
    a: str
    b: str

    def compute(self, frame: pd.DataFrame) -> pd.Series:
        a = pd.to_numeric(frame[self.a], errors="coerce").astype(float)
        b = pd.to_numeric(frame[self.b], errors="coerce").astype(float)
        if self.op == "product":
            return a * b
        if self.op == "difference":
            return a - b
        return (a / b.where(b != 0)).replace([np.inf, -np.inf], np.nan)


@dataclass(frozen=True)
class FeatureColumns:
    """The columns a model reads from the table, by how they are encoded, and what it derives from them."""

    numeric: list[str] = field(default_factory=list)
    categorical: list[str] = field(default_factory=list)
    datetime: list[str] = field(default_factory=list)
    derived: list[Derived] = field(default_factory=list)

    @property
    def all(self) -> list[str]:
        """The input columns, in order; derived features are computed from these inside the pipeline."""
        return [*self.numeric, *self.categorical, *self.datetime]

    @property
    def numeric_features(self) -> list[str]:
        return [*self.numeric, *(d.name for d in self.derived)]

    @classmethod
    def from_plan(cls, profile: DataProfile, plan: Plan) -> FeatureColumns:
        derived = [Derived(s.column, s.op or "", *s.inputs) for s in plan.derived]
        return replace(cls._inputs(profile, plan), derived=derived)

    @classmethod
    def _inputs(cls, profile: DataProfile, plan: Plan) -> FeatureColumns:
        dropped = set(plan.dropped_columns)
        as_dates = set(plan.datetime_columns)
        numeric, categorical, dates = [], [], []
        for col in profile.columns:
            if col.name in dropped:
                continue
            if col.name in as_dates:
                dates.append(col.name)
            elif col.kind == "numeric":
                numeric.append(col.name)
            elif col.kind == "datetime":  # not expanded by the plan: nothing a model can use
                continue
            else:  # categorical, boolean and (non-identifier) text
                categorical.append(col.name)
        return cls(numeric, categorical, dates)


def _to_category_strings(frame: pd.DataFrame) -> np.ndarray:
    """Categories as strings, so mixed types (1, '1', True) encode consistently and NaN is a category."""
    return pd.DataFrame(frame).astype("string").fillna(MISSING).to_numpy(dtype=object)


class DerivedFeatures(TransformerMixin, BaseEstimator):
    """Add derived numeric columns to a frame (inside the pipeline, so serving computes them too)."""

    def __init__(self, derived: tuple[Derived, ...] = ()) -> None:
        self.derived = derived

    def fit(self, X: pd.DataFrame, y: object = None) -> DerivedFeatures:
        return self

    def transform(self, X: pd.DataFrame) -> pd.DataFrame:
        frame = pd.DataFrame(X).copy()
        for spec in self.derived:
            frame[spec.name] = spec.compute(frame)
        return frame


class DatetimeFeatures(TransformerMixin, BaseEstimator):
    """Expand date/time columns into hour of day, day of week, day of month and month."""

    parts = ("hour", "dayofweek", "day", "month")

    def fit(self, X: pd.DataFrame, y: object = None) -> DatetimeFeatures:
        self.columns_ = list(pd.DataFrame(X).columns)
        return self

    def transform(self, X: pd.DataFrame) -> np.ndarray:
        frame = pd.DataFrame(X, columns=self.columns_)
        out = []
        for name in self.columns_:
            stamp = pd.to_datetime(frame[name], errors="coerce", format="mixed")
            out += [
                stamp.dt.hour + stamp.dt.minute / 60.0,
                stamp.dt.dayofweek,
                stamp.dt.day,
                stamp.dt.month,
            ]
        return np.column_stack([s.to_numpy(dtype=float) for s in out]) if out else np.empty((len(frame), 0))

    def get_feature_names_out(self, input_features: object = None) -> np.ndarray:
        return np.array([f"{c}_{p}" for c in self.columns_ for p in self.parts], dtype=object)


def build_preprocessor(columns: FeatureColumns, *, ordinal_categories: bool = False,
                       native: bool = False) -> ColumnTransformer:
    """Impute and scale numbers, expand dates, encode categories.

    Numbers are standardised: k-NN samplers measure distances and linear models and the MLP
    need it. Categories are one-hot encoded, except when ``ordinal_categories`` is set for
    SMOTE-NC, which must see whole categories (the one-hot step then comes after the
    sampler, see ``post_sampler_encoder``).

    ``native`` is the input of boosted trees that handle missing values and categories
    themselves: numbers pass as they are (missing stays missing, a split of its own), and
    categories become ordinal codes at ``categorical_positions`` (unseen ones are -1, which
    the trees treat as missing). A one-hot column per level would scatter a category's
    signal over many weak splits.
    """
    ordinal = ordinal_categories or native
    branches = []
    if columns.numeric_features:
        numeric = Pipeline(
            [
                # missing-value indicators vary in number with the data; SMOTE-NC needs fixed positions
                ("impute", SimpleImputer(strategy="median", add_indicator=not ordinal_categories)),
                ("scale", StandardScaler()),
            ]
        ) if not native else "passthrough"
        branches.append(("num", numeric, columns.numeric_features))
    if columns.datetime:
        dates = Pipeline(
            [
                ("expand", DatetimeFeatures()),
                ("impute", SimpleImputer(strategy="median", keep_empty_features=True)),
                ("scale", StandardScaler()),
            ]
        ) if not native else DatetimeFeatures()
        branches.append(("dt", dates, columns.datetime))
    if columns.categorical:
        encoder = (
            # rare levels share one code; at most 64 codes, within what histogram trees can split on
            OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=-1, dtype=np.float64,
                           **({"min_frequency": 5, "max_categories": 64} if native else {}))
            if ordinal
            else OneHotEncoder(handle_unknown="infrequent_if_exist", min_frequency=5, max_categories=30,
                               sparse_output=False)
        )
        as_text = FunctionTransformer(_to_category_strings, feature_names_out="one-to-one")
        categorical = Pipeline([("as_text", as_text), ("encode", encoder)])
        branches.append(("cat", categorical, columns.categorical))
    return ColumnTransformer(branches, remainder="drop", sparse_threshold=0.0, verbose_feature_names_out=False)


def categorical_positions(columns: FeatureColumns) -> list[int]:
    """Where the ordinal category columns sit in ``build_preprocessor``'s output with ordinal or native categories."""
    n_before = len(columns.numeric_features) + len(DatetimeFeatures.parts) * len(columns.datetime)
    return list(range(n_before, n_before + len(columns.categorical)))


def post_sampler_encoder(columns: FeatureColumns) -> ColumnTransformer:
    """One-hot encode the ordinal category columns after SMOTE-NC has resampled them."""
    return ColumnTransformer(
        [("onehot", OneHotEncoder(handle_unknown="ignore", sparse_output=False), categorical_positions(columns))],
        remainder="passthrough",
        sparse_threshold=0.0,
    )
