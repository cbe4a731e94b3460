"""The Optuna search: honest scores, the budget kept, noise not mistaken for a win, edges handled."""

from __future__ import annotations

import math
import pickle
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from poise.contracts import Plan, SearchSpace, TaskSpec
from poise.tools import data
from poise.tools.ensemble import BlendClassifier
from poise.tools.preprocess import FeatureColumns
from poise.tools.search import search

pytestmark = pytest.mark.slow  # every test here trains models

COLUMNS = FeatureColumns(numeric=["x1", "x2"], categorical=["colour"])


def plan(strategies, models, budget=20.0, **kw) -> Plan:
    return Plan(search=SearchSpace(strategies=strategies, models=models), budget_seconds=budget, **kw)


def task(metric="average_precision", budget=20.0, **kw) -> TaskSpec:
    return TaskSpec(data="mem", target="label", metric=metric, budget_seconds=budget, **kw)


@pytest.fixture
def table(mixed_frame):
    return data.prepare_target(mixed_frame, "label")


def served_pipelines(model):
    """The sklearn pipelines inside a final model (bagged fold models, blends of them)."""
    if isinstance(model, BlendClassifier):
        return [p for member in model.members for p in served_pipelines(member)]
    return [model]


def test_search_returns_a_bagged_sampler_free_winner(table):
    result = search(table.features, table.y, task(), plan(["none", "smote", "class_weight"],
                    ["logistic_regression", "hist_gradient_boosting"], budget=120, max_trials=4), COLUMNS)
    assert result.n_trials == 4
    assert {r.state for r in result.trials} <= {"complete", "pruned", "skipped", "failed"}
    assert {m.strategy for m in result.members} <= {"none", "smote", "class_weight"}
    assert sum(m.weight for m in result.members) == pytest.approx(1.0)
    assert result.strategy in {"none", "smote", "class_weight", "ensemble"}
    assert 0.0 <= result.threshold <= 1.0
    assert result.cv_metrics["average_precision"] == pytest.approx(result.cv_score)
    served = served_pipelines(result.pipeline)
    assert not any(hasattr(step, "fit_resample") for pipeline in served for _, step in pipeline.steps)
    assert result.pipeline.predict_proba(table.features).shape == (len(table.y), 2)
    assert result.oof_proba.shape == table.y.shape and np.isfinite(result.oof_proba).all()


def test_the_final_model_is_the_winners_fold_models_averaged(table):
    """No refit: the models whose out-of-fold predictions set the threshold are the ones served."""
    result = search(table.features, table.y, task(), plan(["none"], ["logistic_regression"], max_trials=1,
                    cv_folds=3), COLUMNS)
    folds = result.pipeline.members
    assert len(folds) % 3 == 0 and len(folds) >= 3  # three folds, repeated when the minority is small
    expected = np.mean([fold.predict_proba(table.features)[:, 1] for fold in folds], axis=0)
    assert np.allclose(result.pipeline.predict_proba(table.features)[:, 1], expected)
    restored = pickle.loads(pickle.dumps(result.pipeline))
    assert np.allclose(restored.predict_proba(table.features), result.pipeline.predict_proba(table.features))


def test_oversampling_does_not_leak_into_validation_folds():
    """Labels are pure noise: a leak (duplicated minority rows in validation folds) would inflate the score."""
    rng = np.random.default_rng(7)
    n = 400
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "colour": rng.choice(["a", "b"], n)})
    y = (rng.random(n) < 0.1).astype(int)
    result = search(frame, y, task(), plan(["random_over"], ["random_forest"], max_trials=1, cv_folds=3), COLUMNS)
    assert result.cv_score < y.mean() + 0.08  # chance level is the prevalence (~0.1)


def test_search_ends_by_its_deadline(table):
    """Search, selection and the final model all fit in the time given (2 % + 1 s of slack)."""
    started = time.monotonic()
    deadline = started + 8.0
    result = search(table.features, table.y, task(budget=600.0),
                    plan(["class_weight", "none", "random_under", "smote"], ["logistic_regression", "random_forest"],
                         budget=600.0),
                    COLUMNS, deadline=deadline)
    assert result.n_trials >= 1
    assert time.monotonic() <= deadline + 0.02 * 8.0 + 1.0


def test_a_sampler_does_not_win_on_a_difference_below_fold_noise():
    """Random oversampling before a logistic regression ranks rows almost as class weights do: whatever
    small edge one of them shows on 25 positives is noise, and the plain candidate is kept."""
    rng = np.random.default_rng(11)
    n = 800
    frame = pd.DataFrame({"x1": rng.normal(size=n), "x2": rng.normal(size=n), "colour": rng.choice(["a", "b"], n)})
    y = np.zeros(n, dtype=int)
    y[np.argsort(-(frame["x1"].to_numpy() + rng.normal(scale=1.5, size=n)))[:25]] = 1
    result = search(frame, y, task(), plan(["class_weight", "random_over"], ["logistic_regression"],
                    budget=120, max_trials=8, ensemble_size=1), COLUMNS)
    sampler = max(r.score for r in result.trials if r.strategy == "random_over" and r.score is not None)
    plain = max(r.score for r in result.trials if r.strategy == "class_weight" and r.score is not None)
    assert sampler > plain  # the sampler did score higher out of fold ...
    assert result.strategy == "class_weight"  # ... and still did not win
    assert any("standard error" in note for note in result.notes)


def test_constraint_metric_threshold_keeps_precision_on_training_folds(table):
    result = search(table.features, table.y, task("recall_at_precision", min_precision=0.6),
                    plan(["none"], ["logistic_regression"], max_trials=2), COLUMNS)
    assert result.cv_metrics["precision"] >= 0.6
    assert result.cv_score == pytest.approx(result.cv_metrics["recall_at_precision"])


def test_strategies_that_cannot_run_are_skipped_with_a_reason(table):
    keep = np.r_[np.flatnonzero(table.y == 1)[:4], np.flatnonzero(table.y == 0)[:150]]
    result = search(table.features.iloc[keep], table.y[keep], task(),
                    plan(["smote", "none", "adasyn"], ["logistic_regression"], max_trials=3, cv_folds=3), COLUMNS)
    assert set(result.skipped) == {"smote", "adasyn"}
    assert "minority rows" in result.skipped["smote"]
    assert result.strategy == "none"


def test_a_plan_with_nothing_runnable_is_an_error(table):
    keep = np.r_[np.flatnonzero(table.y == 1)[:3], np.flatnonzero(table.y == 0)[:50]]
    with pytest.raises(ValueError, match="no strategy in the plan can run"):
        search(table.features.iloc[keep], table.y[keep], task(), plan(["smote"], ["logistic_regression"]), COLUMNS)


def test_same_seed_same_search(table):
    space = plan(["none", "class_weight"], ["logistic_regression", "hist_gradient_boosting"], budget=300, max_trials=3,
                 cv_folds=3)
    runs = [search(table.features, table.y, task(seed=3), space, COLUMNS) for _ in range(2)]
    assert [(r.strategy, r.estimator) for r in runs[0].trials] == [(r.strategy, r.estimator) for r in runs[1].trials]
    assert runs[0].cv_score == pytest.approx(runs[1].cv_score)


class _Refuses:
    """A model that cannot fit any data: what a candidate that fails looks like to the search."""

    def get_params(self, deep=True):
        return {}

    def set_params(self, **params):
        return self

    def fit(self, X, y):
        raise ValueError("this model cannot fit the data")


def test_a_candidate_that_fails_is_a_trial_record_not_a_traceback(table, monkeypatch, capfd):
    from poise.tools.models import MODELS, ModelSpec

    monkeypatch.setitem(MODELS, "refuses", ModelSpec("refuses", "fails on every table",
                                                     lambda params, weight, seed, categorical=(): _Refuses(),
                                                     lambda trial: {}))
    result = search(table.features, table.y, task(), plan(["none"], ["refuses", "logistic_regression"], max_trials=4),
                    COLUMNS)
    failed = [r for r in result.trials if r.state == "failed"]
    assert failed and "this model cannot fit the data" in failed[0].note
    assert result.estimator == "logistic_regression"
    err = capfd.readouterr().err
    assert "Traceback" not in err and "this model cannot fit" not in err


def test_a_large_leader_ends_the_search_earlier_by_what_saving_it_takes(table, monkeypatch):
    """A bag of forests is slow to save and register; the search keeps that time back from itself."""
    from poise.tools import search as search_module

    exploration = search_module.explore(table.features, table.y, task(),
                                        plan(["class_weight"], ["extra_trees"], max_trials=1), COLUMNS)
    explored = exploration._search
    leader = explored.best[0]
    assert leader.megabytes == pytest.approx(len(pickle.dumps(leader.fold_models, protocol=5)) / 1e6, rel=0.3)
    free, before = search_module._FREE_MB, explored._selection_reserve()
    monkeypatch.setattr(search_module, "_FREE_MB", 0.0)  # as if the caller's tail estimate covered no size at all
    assert explored._selection_reserve() - before == pytest.approx(
        search_module._SECONDS_PER_MB * min(leader.megabytes, free))


def test_the_chosen_recipe_learns_again_from_more_rows_fold_by_fold_in_time_kept_back_for_it(table):
    """With ``final_rows`` the search keeps back the time to train its choice on that many rows; the model
    then trained is the same recipe on the same folding, one model per fold, each on more rows. It keeps a
    margin for the steps between its end and that fit too."""
    from poise.tools import search as search_module

    searched = np.arange(len(table.y)) % 5 != 0  # the search sees four rows in five; the final fit sees them all
    X, y = table.features[searched].reset_index(drop=True), table.y[searched]
    exploration = search_module.explore(X, y, task(), plan(["none"], ["logistic_regression"], max_trials=1),
                                        COLUMNS, final_rows=len(table.y))
    explored, result = exploration._search, exploration.refit()
    needed = exploration.fit_seconds(result.members, len(table.y))
    waves = math.ceil(len(explored.folds) / explored.workers)  # the folds' fits run ``workers`` at a time
    assert needed == pytest.approx(1.25 * explored.best[0].fit_seconds * waves * len(table.y) / len(y))
    kept = explored._selection_reserve()
    explored.final_rows = None
    assert kept - explored._selection_reserve() == pytest.approx(needed + search_module._HANDOFF_SECONDS)

    def rows_seen(pipeline):
        return pipeline.named_steps["prep"].named_transformers_["num"].named_steps["scale"].n_samples_seen_

    model = exploration.fit_members(result.members, table.features, table.y)
    assert len(model.members) == len(result.pipeline.members) == len(explored.folds)
    k = explored.n_folds
    assert {rows_seen(p) for p in result.pipeline.members} <= {len(y) * (k - 1) // k, -(-len(y) * (k - 1) // k)}
    assert {rows_seen(p) for p in model.members} <= {len(table.y) * (k - 1) // k, -(-len(table.y) * (k - 1) // k)}


def test_the_time_kept_back_is_for_the_candidate_selection_would_choose_now(table, monkeypatch):
    """A resampling leader that does not win by more than noise gives way to the best plain candidate
    (``_single``): the time kept back for the final fit is the plain candidate's then, the leader's once it wins."""
    from poise.tools import search as search_module

    exploration = search_module.explore(table.features, table.y, task(),
                                        plan(["none", "random_over"], ["logistic_regression"], max_trials=2),
                                        COLUMNS, final_rows=len(table.y))
    explored = exploration._search
    base = explored.best[0]
    leader = replace(base, trial=100, strategy="random_over", fit_seconds=4.0)
    plain = replace(base, trial=101, strategy="none", fit_seconds=0.5)
    assert not leader.simple and plain.simple
    explored.best = [leader, plain]  # the same predictions: the leader does not win by more than noise
    assert explored._after_selection() == pytest.approx(
        search_module._HANDOFF_SECONDS + explored.full_fit_seconds([plain], len(table.y)))
    monkeypatch.setattr(explored, "_beats", lambda challenger, incumbent: (True, 0.05, 0.01))
    explored.best = [replace(leader, trial=102), plain]  # a new leader, which wins
    assert explored._after_selection() == pytest.approx(
        search_module._HANDOFF_SECONDS + explored.full_fit_seconds([explored.best[0]], len(table.y)))


def test_a_blend_too_large_to_save_in_the_time_left_gives_way_to_the_best_single_candidate(table, monkeypatch):
    """The time kept back covers saving the chosen candidate's bag; a blend brings more bags, and is kept only when
    saving them fits in what is left of the budget (else the command would end late, in registration)."""
    from poise.tools import ensemble
    from poise.tools import search as search_module

    exploration = search_module.explore(table.features, table.y, task(),
                                        plan(["none", "class_weight"], ["logistic_regression", "lightgbm"],
                                             max_trials=3), COLUMNS)
    explored = exploration._search
    # a blend of the two best that wins by more than noise, whatever this small table's scores say
    monkeypatch.setattr(ensemble, "select", lambda *args, **kwargs: ({0: 0.5, 1: 0.5}, 1.0))
    monkeypatch.setattr(explored, "_beats", lambda challenger, incumbent: (True, 0.05, 0.01))
    explored.deadline = time.monotonic() + 60
    members, notes = explored._final_members()
    assert len(members) == 2 and "beats" in notes[-1]
    assert all(m.megabytes > 0 for m in members)

    monkeypatch.setattr(search_module, "_SECONDS_PER_MB", 1e4)  # as if saving each megabyte took hours
    monkeypatch.setattr(search_module, "_FREE_MB", 0.0)  # and the caller's tail estimate covered none of them
    members, notes = explored._final_members()
    assert len(members) == 1 and members[0].trial == explored.best[0].trial
    assert "was not kept: saving its" in notes[-1]

    # with saving free again, a blend adds no saving time, and is kept even when the search has used its time
    monkeypatch.setattr(search_module, "_FREE_MB", 1e6)
    explored.deadline = time.monotonic() - 1
    members, notes = explored._final_members()
    assert len(members) == 2 and "beats" in notes[-1]
