"""Derived features: proposed from names, kept only when cross-validation shows a gain."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poise.contracts import DataStep, Plan, SearchSpace
from poise.tools import data, features
from poise.tools.compose import build_pipeline, inference_pipeline
from poise.tools.preprocess import FeatureColumns
from poise.tools.strategies import StrategyContext
from tests.conftest import AI4I


def ai4i_profile():
    frame = data.load_table(AI4I)
    table = data.prepare_target(frame, "target")
    return table, data.profile_table(table, source="ai4i", target="target", data_fingerprint="-")


def test_ai4i_names_suggest_power_and_temperature_gap():
    _, profile = ai4i_profile()
    proposed = {(p.op, tuple(p.inputs)) for p in features.propose_derived(profile)}
    assert ("product", ("rotational_speed_rpm", "torque_nm")) in proposed
    assert ("difference", ("process_temperature_k", "air_temperature_k")) in proposed
    assert all(p.reason for p in features.propose_derived(profile))


def test_unrelated_names_suggest_nothing():
    frame = pd.DataFrame({"age": [1, 2] * 20, "glucose": [3.0, 4.0] * 20, "y": [0, 1] * 20})
    table = data.prepare_target(frame, "y")
    profile = data.profile_table(table, source="m", target="y", data_fingerprint="-")
    assert features.propose_derived(profile) == []


@pytest.mark.slow
def test_only_features_that_help_in_cv_are_kept():
    rng = np.random.default_rng(0)
    n = 2000
    X = pd.DataFrame({"torque": rng.uniform(10, 60, n), "speed": rng.uniform(1200, 2800, n),
                      "price": rng.uniform(1, 10, n), "quantity": rng.uniform(1, 10, n)})
    power_values = X.torque * X.speed
    y = (power_values > np.quantile(power_values, 0.93)).to_numpy().astype(int)
    flip = rng.random(n) < 0.01  # a little label noise: trees can no longer fit the curve exactly
    y[flip] = 1 - y[flip]
    power = DataStep(action="derive", op="product", inputs=["torque", "speed"], column="power", reason="power")
    total = DataStep(action="derive", op="product", inputs=["price", "quantity"], column="total", reason="total")
    kept = features.keep_helpful(X, y, [power, total], list(X.columns), seed=0)
    assert [step.column for step, _ in kept] == ["power"]
    assert kept[0][1] > 0.01


def test_served_pipeline_computes_derived_features_from_raw_columns():
    table, profile = ai4i_profile()
    step = DataStep(action="derive", op="product", inputs=["rotational_speed_rpm", "torque_nm"], column="power",
                    reason="power")
    plan = Plan(search=SearchSpace(strategies=["none"], models=["logistic_regression"]),
                data_steps=[DataStep(action="drop", column="udi", reason="id"),
                            DataStep(action="drop", column="product_id", reason="id"), step])
    columns = FeatureColumns.from_plan(profile, plan)
    assert "power" not in columns.all and "power" in columns.numeric_features
    ctx = StrategyContext(n_minority=300, n_majority=9000, columns=columns)
    fitted = inference_pipeline(build_pipeline("none", "logistic_regression", {}, ctx).fit(
        table.features[columns.all], table.y))
    assert "power" in fitted.named_steps["prep"].get_feature_names_out()
    assert fitted.predict_proba(table.features[columns.all].head(3)).shape == (3, 2)
