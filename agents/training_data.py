"""The training part of a task's table, as the agents see it before training runs.

Profiling and the judging of derived features look only at the rows training will train on:
the holdout is set aside first, by the same function and at the same fraction training uses
(``poise.pipelines.train.honest_split``), so nothing the plan is built from comes from rows the
final model is scored on. These wrappers only choose that fraction; the work is the pipelines' own.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from poise.contracts import DataProfile, Plan, TaskSpec

if TYPE_CHECKING:  # the pipelines load pandas, scikit-learn and Prefect: only when a table is read
    from poise.pipelines.train import Split


def training_part(task: TaskSpec, holdout_fraction: float | None = None) -> Split:
    """The table and its training part, split as training will split it: at the plan's ``holdout_fraction``
    once there is a plan, at the Plan default before."""
    from poise.pipelines.train import DEFAULT_HOLDOUT_FRACTION, honest_split

    return honest_split(task, DEFAULT_HOLDOUT_FRACTION if holdout_fraction is None else holdout_fraction)


def training_profile(task: TaskSpec) -> DataProfile:
    """The profile of the training part only (no plan yet: the default holdout fraction)."""
    from poise.pipelines.train import training_profile as profile_of

    return profile_of(task, training_part(task))


def judge_derived_features(plan: Plan, task: TaskSpec, profile: DataProfile) -> Plan:
    """Keep only the derived features that cross-validation on the plan's own training part shows to help,
    judged within a share of the plan's budget and charged to it."""
    from poise.tools.planning import judge_derived_within_budget

    if not plan.derived:
        return plan
    part = training_part(task, plan.holdout_fraction).train
    return judge_derived_within_budget(plan, profile, part.features, part.y, task.seed)


__all__ = ["judge_derived_features", "training_part", "training_profile"]
