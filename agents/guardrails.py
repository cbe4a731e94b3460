"""Guardrails: what stands between every Brain and every action.

A draft from any mind (or a plan a person edited) becomes a TaskSpec or a Plan only here.
The target and every named column must exist; the target is never a feature; identifiers
and leaks are dropped; strategies and models come from the registries; budgets are capped.
Numbers the user wrote in the task text win over numbers a model proposes: text that came
from the data (a column named "set the budget to 99999") can never change them.
Every field a guardrail changes is recorded as a repair.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from poise.contracts import (
    DataProfile,
    DataStep,
    DriftReport,
    Plan,
    PlanDraft,
    RecoveryDecision,
    RecoveryDraft,
    SearchSpace,
    TaskDraft,
    TaskSpec,
)
from poise.errors import PoiseError
from poise.settings import Settings

DEFAULT_BUDGET_SECONDS = 120.0
ALWAYS_SEARCHED = ("none", "class_weight")  # the baselines every sampler must beat
_STATED = ("data", "target", "positive_label", "metric", "min_precision", "min_recall", "beta", "budget_seconds",
           "seed")


_NUMBERS = ("min_precision", "min_recall", "beta", "budget_seconds", "seed")
_NUMBER = re.compile(r"\d+(?:\.\d+)?|\.\d+")


def _grounded(value: float, text: str) -> bool:
    """Whether ``value`` is a number of the text, read as-is, as a percentage, or in minutes or hours."""
    for token in _NUMBER.findall(text):
        number = float(token)
        if any(abs(value - candidate) < 1e-9 for candidate in (number, number / 100, number * 60, number * 3600)):
            return True
    return False


def _normalise(name: str) -> str:
    return re.sub(r"[\W_]+", "", name).lower()


def match_column(name: str | None, columns: Sequence[str]) -> str | None:
    """The header's own spelling of ``name`` (case, spaces and punctuation ignored), or None."""
    if not name:
        return None
    if name in columns:
        return name
    hits = [c for c in columns if _normalise(c) == _normalise(name)]
    return hits[0] if len(hits) == 1 else None


def task_from_draft(
    draft: TaskDraft,
    *,
    rules: TaskDraft,
    columns: Sequence[str],
    data: str,
    settings: Settings,
    text: str,
) -> tuple[TaskSpec, list[str]]:
    """Check a Brain's TaskDraft against the user's words (``rules``, parsed from the text) and the data."""
    repairs: list[str] = []
    fields = draft.model_dump()
    for name in _STATED:  # what the text says, the text decides
        stated = getattr(rules, name)
        if stated is not None and fields[name] != stated:
            repairs.append(f"{name}: {fields[name]!r} → {stated!r} (as the task text states)")
            fields[name] = stated
    for name in _NUMBERS:  # a number the text does not state must at least appear in it
        value = fields[name]
        if value is not None and getattr(rules, name) is None and not _grounded(float(value), text):
            repairs.append(f"{name}: {value!r} dropped (no such number in the task text)")
            fields[name] = None
    target = match_column(fields["target"], columns)
    if target is None:
        fallback = match_column(rules.target, columns)
        if fallback is None:
            named = f" ({fields['target']!r} is not a column)" if fields["target"] else ""
            raise PoiseError(
                f"cannot tell which column to predict{named}",
                "name it in the task, e.g. \"predict churn_flag\", or pass --target; columns: "
                + ", ".join(repr(c) for c in list(columns)[:20]),
            )
        repairs.append(f"target: {fields['target']!r} → {fallback!r} (not a column of the table)")
        target = fallback
    elif target != fields["target"]:
        repairs.append(f"target: {fields['target']!r} → {target!r} (the header's spelling)")
    metric = fields["metric"] or ("recall_at_precision" if fields["min_precision"]
                                  else "precision_at_recall" if fields["min_recall"] else "average_precision")
    if metric == "recall_at_precision" and fields["min_precision"] is None:
        repairs.append("metric: recall_at_precision without a precision floor → average_precision")
        metric = "average_precision"
    if metric == "precision_at_recall" and fields["min_recall"] is None:
        repairs.append("metric: precision_at_recall without a recall floor → average_precision")
        metric = "average_precision"
    budget = fields["budget_seconds"] or DEFAULT_BUDGET_SECONDS
    if budget > settings.max_budget_seconds:
        repairs.append(f"budget_seconds: {budget:g} → {settings.max_budget_seconds:g} (the installation's cap)")
        budget = settings.max_budget_seconds
    task = TaskSpec(
        data=data, target=target, positive_label=fields["positive_label"], metric=metric,
        min_precision=fields["min_precision"], min_recall=fields["min_recall"], beta=fields["beta"] or 1.0,
        budget_seconds=budget, seed=fields["seed"] or 0, description=text[:4000],
    )
    return task, repairs


def plan_from_draft(
    draft: PlanDraft, *, task: TaskSpec, profile: DataProfile, baseline: Plan, settings: Settings
) -> tuple[Plan, list[str]]:
    """Turn a Brain's PlanDraft into a Plan that can only do what the data and the registries allow."""
    steps = [DataStep(action="drop", column=d.column, reason=d.reason) for d in draft.drop]
    steps += [DataStep(action="derive", op=f.op, inputs=[f.a, f.b], column=_derived_name(f.op, f.a, f.b),
                       reason=f.reason) for f in draft.derive]
    steps += [s for s in baseline.data_steps if s.action == "datetime_features"]
    plan = baseline.model_copy(update={
        "data_steps": steps,
        "search": SearchSpace.model_construct(strategies=draft.strategies, models=draft.models),
        "cv_folds": draft.cv_folds or baseline.cv_folds,
        "rationale": draft.rationale or baseline.rationale,
    })
    return check_plan(plan, task=task, profile=profile, baseline=baseline, settings=settings)


def _derived_name(op: str, a: str, b: str) -> str:
    joint = {"product": "_x_", "ratio": "_per_", "difference": "_minus_"}[op]
    return re.sub(r"[^A-Za-z0-9_]+", "_", f"{a}{joint}{b}").strip("_")[:200]


def check_plan(plan: Plan, *, task: TaskSpec, profile: DataProfile, baseline: Plan,
               settings: Settings) -> tuple[Plan, list[str]]:
    """Validate any plan (a Brain's, or one a person edited) against the data, the registries and the caps."""
    from poise.tools.models import MODELS
    from poise.tools.strategies import STRATEGIES

    repairs: list[str] = []
    known = {c.name for c in profile.columns}
    numeric = {c.name for c in profile.columns if c.kind == "numeric"}
    steps: list[DataStep] = []
    for step in plan.data_steps:
        inputs = step.inputs if step.action == "derive" else [step.column]
        missing = [c for c in inputs if c not in known]
        if missing:
            repairs.append(f"data step {step.action} {step.column!r} removed: {', '.join(map(repr, missing))} "
                           "is not a column of the table" + (" (the target is never a feature)"
                                                              if task.target in missing else ""))
        elif step.action == "derive" and not set(step.inputs) <= numeric:
            repairs.append(f"derived {step.column!r} removed: its inputs must be numeric columns")
        elif step.action == "derive" and step.column in known:
            repairs.append(f"derived {step.column!r} removed: a column of that name already exists")
        else:
            steps.append(step)
    dropped = {s.column for s in steps if s.action == "drop"}
    for must in baseline.data_steps:  # identifiers, leaks and constants found by the profile
        if must.action == "drop" and must.column not in dropped:
            steps.append(must)
            dropped.add(must.column)
            repairs.append(f"drop {must.column!r} added: {must.reason}")
    kept_steps = []
    for step in steps:
        if step.action == "derive" and dropped & set(step.inputs):
            repairs.append(f"derived {step.column!r} removed: it reads a dropped column")
        else:
            kept_steps.append(step)
    strategies = _from_registry(plan.search.strategies, STRATEGIES, "strategy", repairs)
    for name in ALWAYS_SEARCHED:
        if name not in strategies:
            strategies.append(name)
            repairs.append(f"strategy {name!r} added: it always stands beside the samplers")
    models = _from_registry(plan.search.models, MODELS, "model", repairs) or list(baseline.search.models)
    budget = plan.budget_seconds
    if budget > settings.max_budget_seconds:
        repairs.append(f"budget_seconds: {budget:g} → {settings.max_budget_seconds:g} (the installation's cap)")
        budget = settings.max_budget_seconds
    checked = Plan.model_validate({
        **plan.model_dump(), "data_steps": [s.model_dump() for s in kept_steps],
        "search": {"strategies": strategies, "models": models}, "budget_seconds": budget,
    })
    if not [c for c in known if c not in dropped]:
        raise PoiseError("the plan drops every column", "keep at least one feature column")
    return checked, repairs


def _from_registry(names: Sequence[str], registry: dict, what: str, repairs: list[str]) -> list[str]:
    kept = []
    for name in names:
        if name in registry and name not in kept:
            kept.append(name)
        elif name not in registry:
            repairs.append(f"{what} {name!r} removed: not one poise knows ({', '.join(registry)})")
    return kept


# ---------------------------------------------------------------------- recoveries
def decision_from_draft(draft: RecoveryDraft, *, report: DriftReport, plan: Plan, budget_seconds: float,
                        settings: Settings) -> tuple[RecoveryDecision, list[str]]:
    """A recovery a Brain proposed, checked against the evidence: no recovery without enough labels to
    learn from and to judge on, and none at all when the policy saw nothing worth acting on."""
    repairs: list[str] = []
    action = None if draft.action == "none" else draft.action
    policy = plan.monitor
    if action is not None and report.severity == "none":
        repairs.append(f"{action} refused: the report's severity is none")
        action = None
    if action is not None and report.labelled_rows < policy.min_labelled_rows:
        repairs.append(f"{action} refused: {report.labelled_rows} labelled row(s), fewer than the "
                       f"{policy.min_labelled_rows} a recovery needs to learn from and to be judged on")
        action = None
    budget = min(budget_seconds, settings.max_budget_seconds)
    if budget < budget_seconds:
        repairs.append(f"budget capped at {budget:g} s")
    decision = RecoveryDecision(
        action=action, reasons=list(draft.reasons) or ["no reason given"],
        reference_fraction=draft.reference_fraction,
        unattended=action is not None and action in plan.unattended_recoveries,
    )
    return decision, repairs
