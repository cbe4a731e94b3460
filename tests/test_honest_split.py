"""One owner of the honest split: training and the agents set aside the same holdout, at the plan's
own fraction, and judging derived features is charged to the plan's budget."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from poise.agents.training_data import judge_derived_features, training_part, training_profile
from poise.contracts import DataStep, Plan, SearchSpace, TaskSpec
from poise.pipelines.train import DEFAULT_HOLDOUT_FRACTION, honest_split


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> TaskSpec:
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame({"torque": rng.uniform(10, 60, n), "speed": rng.uniform(1200, 2800, n)})
    frame["target"] = (frame.torque * frame.speed > np.quantile(frame.torque * frame.speed, 0.9)).astype(int)
    path = tmp_path_factory.mktemp("split") / "machines.csv"
    frame.to_csv(path, index=False)
    return TaskSpec(data=str(path), target="target", budget_seconds=8)


def rows(part) -> set[tuple]:
    return set(map(tuple, part.features.assign(y=part.y).to_numpy()))


def test_the_agents_split_where_training_splits(task):
    for fraction in (DEFAULT_HOLDOUT_FRACTION, 0.4):
        ours, training = training_part(task, fraction), honest_split(task, fraction)
        assert rows(ours.train) == rows(training.train) and rows(ours.holdout) == rows(training.holdout)
        assert not rows(ours.train) & rows(training.holdout)
    assert len(training_part(task).holdout.y) < len(training_part(task, 0.4).holdout.y)
    assert training_profile(task).n_rows == len(honest_split(task).train.y)


@pytest.mark.slow
def test_judging_derived_features_uses_the_plans_split_and_is_charged_to_its_budget(task):
    power = DataStep(action="derive", op="product", inputs=["torque", "speed"], column="power", reason="power")
    plan = Plan(search=SearchSpace(strategies=["none"], models=["logistic_regression"]), data_steps=[power],
                holdout_fraction=0.4, budget_seconds=8)
    judged = judge_derived_features(plan, task, training_profile(task))
    assert 0.75 * 8 <= judged.budget_seconds < 8
    assert "went to judging derived features" in judged.rationale[-1]
    assert judge_derived_features(plan.model_copy(update={"data_steps": []}), task, training_profile(task)) \
        .budget_seconds == 8  # nothing to judge, nothing charged
