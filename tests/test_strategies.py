"""Every strategy composes into a leak-free pipeline that fits mixed, messy data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poise.tools import data
from poise.tools.compose import build_pipeline, estimator_name, inference_pipeline
from poise.tools.models import MODELS
from poise.tools.preprocess import FeatureColumns
from poise.tools.strategies import STRATEGIES, StrategyContext

REQUIRED = {"none", "class_weight", "random_over", "random_under", "smote", "smote_nc", "borderline_smote", "adasyn",
            "smote_tomek", "smote_enn", "balanced_random_forest", "easy_ensemble", "focal_loss", "qc_smote"}


@pytest.fixture
def table(mixed_frame):
    return data.prepare_target(mixed_frame, "label")


def context(table, columns) -> StrategyContext:
    n_min = int(table.y.sum())
    return StrategyContext(n_minority=n_min, n_majority=len(table.y) - n_min, columns=columns, seed=0)


COLUMNS = FeatureColumns(numeric=["x1", "x2"], categorical=["colour"])


def test_registries_hold_what_the_search_promises():
    assert REQUIRED <= set(STRATEGIES)
    assert {"logistic_regression", "random_forest", "extra_trees", "hist_gradient_boosting", "mlp"} <= set(MODELS)


@pytest.mark.parametrize("strategy", sorted(REQUIRED))
def test_each_strategy_fits_mixed_data_with_missing_values(strategy, table):
    ctx = context(table, COLUMNS)
    model = "mlp" if strategy == "focal_loss" else "logistic_regression"
    pipeline = build_pipeline(strategy, model, {}, ctx)
    pipeline.fit(table.features, table.y)
    served = inference_pipeline(pipeline)
    proba = served.predict_proba(table.features)[:, 1]
    assert proba.shape == (len(table.y),) and np.all((proba >= 0) & (proba <= 1))
    assert not any(hasattr(step, "fit_resample") for _, step in served.steps)
    assert estimator_name(strategy, model) in (model, strategy, "mlp")


@pytest.mark.parametrize("model", sorted(MODELS))
def test_each_model_takes_class_weights(model, table):
    pipeline = build_pipeline("class_weight", model, {"cw__power": 1.0}, context(table, COLUMNS))
    pipeline.fit(table.features, table.y)
    assert pipeline.predict_proba(table.features.head(5)).shape == (5, 2)


def test_samplers_only_see_the_rows_they_are_fitted_on(table):
    """Resampling inside the pipeline: predicting never adds or removes rows, fitting does."""
    pipeline = build_pipeline("smote", "logistic_regression", {"smote__ratio": 1.0}, context(table, COLUMNS))
    pipeline.fit(table.features, table.y)
    sampler = pipeline.named_steps["sampler"]
    assert sum(sampler.sampling_strategy_.values()) > 0  # it did create rows at fit
    assert len(pipeline.predict_proba(table.features)) == len(table.y)


def test_unknown_categories_and_all_missing_rows_still_score(table):
    pipeline = build_pipeline("none", "hist_gradient_boosting", {}, context(table, COLUMNS))
    pipeline.fit(table.features, table.y)
    odd = pd.DataFrame({"x1": [np.nan, 0.1], "x2": [np.nan, 0.2], "colour": [None, "purple"]})
    assert np.isfinite(inference_pipeline(pipeline).predict_proba(odd)).all()


def test_tiny_minority_clamps_neighbours_or_is_declared_unavailable(table):
    keep = np.r_[np.flatnonzero(table.y == 1)[:4], np.flatnonzero(table.y == 0)[:100]]
    tiny = data.LabelledTable(table.features.iloc[keep], table.y[keep], "yes", "no")
    ctx = StrategyContext(n_minority=4, n_majority=100, columns=COLUMNS)
    assert ctx.neighbours(5) == 3
    build_pipeline("smote", "logistic_regression", {"smote__k": 8}, ctx).fit(tiny.features, tiny.y)
    two = StrategyContext(n_minority=2, n_majority=100, columns=COLUMNS)
    assert "at least" in STRATEGIES["smote"].unavailable_reason(two)
    assert STRATEGIES["none"].unavailable_reason(two) is None


def test_smote_nc_needs_categorical_and_numeric_columns(table):
    numeric_only = StrategyContext(n_minority=50, n_majority=300, columns=FeatureColumns(numeric=["x1", "x2"]))
    assert STRATEGIES["smote_nc"].unavailable_reason(numeric_only) is not None
    assert STRATEGIES["smote_nc"].unavailable_reason(context(table, COLUMNS)) is None


def test_datetime_columns_become_calendar_features():
    frame = pd.DataFrame({"when": ["2024-03-04 10:30:00", "2024-03-09 23:00:00"] * 20, "v": np.arange(40.0)})
    y = np.array([0, 1] * 20)
    columns = FeatureColumns(numeric=["v"], datetime=["when"])
    ctx = StrategyContext(n_minority=20, n_majority=20, columns=columns)
    fitted = build_pipeline("none", "logistic_regression", {}, ctx).fit(frame, y)
    names = list(fitted.named_steps["prep"].get_feature_names_out())
    assert {"when_hour", "when_dayofweek"} <= set(names)
    assert fitted.score(frame, y) == 1.0  # weekday vs Saturday separates the toy labels


@pytest.mark.parametrize("model", ["lightgbm", "hist_gradient_boosting"])
def test_boosted_trees_split_on_whole_categories_and_keep_missing_values(model, table):
    """Native categories: one ordinal column per category (not one-hot), its position handed to the model."""
    ctx = context(table, COLUMNS)
    pipeline = build_pipeline("none", model, {}, ctx).fit(table.features, table.y)
    encoded = pipeline.named_steps["prep"].transform(table.features)
    assert encoded.shape[1] == 3  # x1, x2, colour: no one-hot expansion, no missing-value indicators
    assert np.isnan(encoded[:, 1]).any()  # missing numbers stay missing: the trees route them themselves
    setting = "categorical_features" if model == "hist_gradient_boosting" else "categorical_column"
    positions = pipeline.named_steps["model"].get_params()[setting]
    assert list(positions) == [2]
    odd = pd.DataFrame({"x1": [np.nan, 0.1], "x2": [np.nan, 0.2], "colour": [None, "purple"]})
    assert np.isfinite(inference_pipeline(pipeline).predict_proba(odd)).all()


def test_a_sampler_before_boosted_trees_still_gets_numbers(table):
    """k-NN samplers need imputed, scaled numbers: the native path is only for the data as it is."""
    pipeline = build_pipeline("smote", "lightgbm", {}, context(table, COLUMNS)).fit(table.features, table.y)
    encoded = pipeline.named_steps["prep"].transform(table.features)
    assert not np.isnan(encoded).any() and encoded.shape[1] > 3
    assert not pipeline.named_steps["model"].get_params().get("categorical_column")


@pytest.mark.parametrize(("n_pos", "n_neg"), [(41, 159), (33, 127), (9, 40), (150, 200)])
def test_the_lowest_ratio_the_search_may_ask_for_fits_every_training_fold(n_pos, n_neg):
    """A sampler asked for a ratio below its fold's own fails, and ADASYN one that adds fewer rows than the minority
    has; the search's bounds hold on every stratified fold."""
    import math

    import optuna
    from sklearn.model_selection import StratifiedKFold

    rng = np.random.default_rng(0)
    X = pd.DataFrame({"x1": rng.normal(size=n_pos + n_neg), "x2": rng.normal(size=n_pos + n_neg)})
    y = np.r_[np.ones(n_pos, int), np.zeros(n_neg, int)]
    folds = 5
    ctx = StrategyContext(n_minority=n_pos - math.ceil(n_pos / folds), n_majority=n_neg - math.ceil(n_neg / folds),
                          columns=FeatureColumns(numeric=["x1", "x2"]))
    for strategy, prefix in (("random_under", "rus"), ("random_over", "ros"), ("adasyn", "adasyn")):
        fixed = optuna.trial.FixedTrial({f"{prefix}__ratio": 0.0, f"{prefix}__k": 3})
        low = STRATEGIES[strategy].space(fixed, ctx)[f"{prefix}__ratio"]
        for train, _ in StratifiedKFold(folds, shuffle=True, random_state=0).split(X, y):
            pipeline = build_pipeline(strategy, "logistic_regression", {f"{prefix}__ratio": low}, ctx)
            pipeline.fit(X.iloc[train], y[train])  # raises if the ratio is below the fold's own


@pytest.mark.parametrize(("strategy", "model", "prefix"), [
    ("none", "random_forest", "rf"), ("class_weight", "extra_trees", "et"),
    ("balanced_random_forest", None, "brf"),
])
def test_forests_grow_no_more_leaves_than_searched_and_the_top_of_the_range_means_no_cap(strategy, model, prefix,
                                                                                        table):
    import optuna

    from poise.tools.models import UNCAPPED_LEAVES

    ctx = context(table, COLUMNS)
    space = MODELS[model].space if model else (lambda trial: STRATEGIES[strategy].space(trial, ctx))
    searched = space(optuna.trial.FixedTrial({f"{prefix}__n_estimators": 100, f"{prefix}__min_samples_leaf": 1,
                                              f"{prefix}__max_features": 0.5, f"{prefix}__max_leaf_nodes": 16,
                                              "cw__power": 1.0}))
    assert searched[f"{prefix}__max_leaf_nodes"] == 16
    for leaves, cap in ((4, 4), (UNCAPPED_LEAVES, None)):
        params = {**searched, f"{prefix}__n_estimators": 20, f"{prefix}__max_leaf_nodes": leaves}
        forest = build_pipeline(strategy, model, params, ctx).fit(table.features, table.y).named_steps["model"]
        assert forest.max_leaf_nodes == cap
        assert max(tree.get_n_leaves() for tree in forest.estimators_) <= (cap or len(table.y))


def test_every_portfolio_configuration_is_a_point_of_the_search_space():
    """The search runs its portfolio as written: each value is one the search space holds, in its range."""
    import optuna

    from poise.tools.search import DEFAULT_TRIALS

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    ctx = StrategyContext(n_minority=200, n_majority=2000, columns=COLUMNS, seed=0)
    for entry in DEFAULT_TRIALS:
        study = optuna.create_study()
        study.enqueue_trial(entry)
        trial = study.ask()
        spec = STRATEGIES[trial.suggest_categorical("strategy", sorted(STRATEGIES))]
        params = dict(spec.space(trial, ctx))
        if "model" in entry:
            params.update(MODELS[trial.suggest_categorical("model", sorted(MODELS))].space(trial))
        written = {k: v for k, v in entry.items() if k not in ("strategy", "model")}
        assert {k: params.get(k) for k in written} == written, entry
        inside = [d._contains(d.to_internal_repr(trial.params[name])) for name, d in trial.distributions.items()]
        assert all(inside), entry
