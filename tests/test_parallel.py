"""Fits side by side in worker processes: the same results as one after another, each fit on one thread."""

from __future__ import annotations

import os
import signal

import numpy as np
import pytest

from poise.contracts import Plan, SearchSpace, TaskSpec
from poise.tools import data, parallel
from poise.tools.preprocess import FeatureColumns


def _threads_here() -> tuple[int, str | None, bool]:
    from threadpoolctl import threadpool_info

    import poise.tools.compose  # noqa: F401  (the libraries a fit loads)

    openmp = max(info["num_threads"] for info in threadpool_info() if info["user_api"] == "openmp")
    return openmp, os.environ.get("OMP_NUM_THREADS"), signal.getsignal(signal.SIGINT) == signal.SIG_IGN


def _square_or_fail(x: int) -> int:
    if x < 0:
        raise ValueError(f"no square for {x}")
    return x * x


def test_each_worker_runs_its_libraries_on_one_thread_and_leaves_ctrl_c_to_poise():
    for openmp, omp_env, ignores_sigint in parallel.run_all(_threads_here, [()] * 4, 2):
        assert openmp == 1 and omp_env == "1"
        assert ignores_sigint  # a Ctrl-C reaches the process group; poise's process stops the search


def test_results_keep_the_order_of_the_jobs_and_an_error_reaches_the_caller():
    assert parallel.run_all(_square_or_fail, [(x,) for x in range(7)], 2) == [x * x for x in range(7)]
    with pytest.raises(ValueError, match="no square for -1"):
        parallel.run_all(_square_or_fail, [(2,), (-1,), (3,)], 2)
    assert parallel.run_all(_square_or_fail, [(3,)], 2) == [9]  # the workers are still there after an error
    assert parallel.run_all(_square_or_fail, [(x,) for x in range(3)], 1) == [0, 1, 4]  # one core: in this process


def test_cores_are_those_this_process_may_use_capped_by_omp_num_threads(monkeypatch):
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    assert parallel.cores() == available
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert parallel.cores() == 1
    monkeypatch.setenv("OMP_NUM_THREADS", str(available + 8))
    assert parallel.cores() == available


@pytest.mark.slow
def test_a_search_with_fits_side_by_side_is_the_search_one_after_another(mixed_frame, monkeypatch):
    """Same folds, same models, same out-of-fold predictions, same final model: only the time differs."""
    from poise.tools import search as search_module

    table = data.prepare_target(mixed_frame, "label")
    columns = FeatureColumns(numeric=["x1", "x2"], categorical=["colour"])
    plan = Plan(search=SearchSpace(strategies=["none", "class_weight", "smote"],
                                   models=["lightgbm", "hist_gradient_boosting", "logistic_regression"]),
                budget_seconds=300, max_trials=4)
    task = TaskSpec(data="mem", target="label", budget_seconds=300, seed=1)
    results = []
    for cores in (1, 2):
        monkeypatch.setattr(parallel, "cores", lambda cores=cores: cores)
        exploration = search_module.explore(table.features, table.y, task, plan, columns)
        assert exploration._search.workers == cores
        results.append((exploration.refit(), exploration.fit_members(exploration.members, table.features, table.y)))
    (one, one_full), (two, two_full) = results
    assert [(r.strategy, r.estimator, r.state) for r in one.trials] == \
        [(r.strategy, r.estimator, r.state) for r in two.trials]
    assert np.allclose(one.oof_proba, two.oof_proba) and one.cv_score == pytest.approx(two.cv_score)
    assert np.allclose(one.pipeline.predict_proba(table.features), two.pipeline.predict_proba(table.features))
    assert np.allclose(one_full.predict_proba(table.features), two_full.predict_proba(table.features))
