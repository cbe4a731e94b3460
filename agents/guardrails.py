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

from poise.agents.understand import TaskReading
from poise.contracts import (
    DEFAULT_BUDGET_SECONDS,
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
    normalise_column_name,
)
from poise.errors import PoiseError
from poise.settings import Settings

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


def match_column(name: str | None, columns: Sequence[str]) -> str | None:
    """The header's own spelling of ``name`` (case, spaces and punctuation ignored), or None."""
    if not name:
        return None
    if name in columns:
        return name
    hits = [c for c in columns if normalise_column_name(c) == normalise_column_name(name)]
    return hits[0] if len(hits) == 1 else None


def close_columns(name: str, columns: Sequence[str], n: int = 5) -> list[str]:
    """Columns spelled like ``name`` or sharing a word with it, closest first (for error messages)."""
    import difflib

    by_norm = {normalise_column_name(c): c for c in columns}
    close = [by_norm[m] for m in difflib.get_close_matches(normalise_column_name(name), list(by_norm), n=n, cutoff=0.5)]
    words = {w for w in re.split(r"[\W_]+", name.lower()) if len(w) >= 3}
    close += [c for c in columns if words & set(re.split(r"[\W_]+", c.lower())) and c not in close]
    return close[:n]


def _no_such_target(name: str | None, columns: Sequence[str], data: str, from_text: bool) -> PoiseError:
    listed = ", ".join(repr(c) for c in list(columns)[:20]) + (" ..." if len(columns) > 20 else "")
    if not name:
        return PoiseError("cannot tell which column to predict: the task names none",
                          f'name it in the task, e.g. "predict {list(columns)[-1]}"; columns: {listed}')
    close = close_columns(name, columns)
    hint = f"close names: {', '.join(map(repr, close))}" if close else f"columns: {listed}"
    example = (close or [c for c in columns if normalise_column_name(c) in ("target", "label", "class", "y")]
               or list(columns)[-1:])[0]
    said = f"the task names {name!r}" if from_text else f"{name!r} was proposed"
    return PoiseError(f"{said} as the column to predict, but {data} has no such column",
                      f'name a column of the table, e.g. "predict {example}"; {hint}')


def task_from_draft(
    draft: TaskDraft,
    *,
    rules: TaskDraft | TaskReading,
    columns: Sequence[str],
    data: str,
    settings: Settings,
    text: str,
) -> tuple[TaskSpec, list[str], list[str]]:
    """Check a Brain's TaskDraft against the user's words (``rules``, read from the text) and the data.

    Returns the task, the repairs (every field changed or chosen for the person) and what of the
    text was not understood. Values the text states out of range, and a named target the table
    lacks, are errors: poise never runs something other than what was asked without saying so.
    """
    reading = rules if isinstance(rules, TaskReading) else TaskReading(rules, "named" if rules.target else None)
    stated = reading.draft
    if reading.problems:
        raise PoiseError("the task asks for what poise cannot do: " + "; ".join(reading.problems),
                         "a floor is a share above 0 and at most 100% (e.g. 'precision at least 50%'); a budget "
                         f"is at most {settings.max_budget_seconds:g} s on this installation (e.g. '10 minutes')")
    repairs: list[str] = []
    fields = draft.model_dump()
    for name in _STATED:  # what the text says, the text decides (a target the rules only guessed is no statement)
        value = getattr(stated, name)
        if value is not None and fields[name] != value and not (name == "target" and reading.target_guessed):
            repairs.append(f"{name}: {fields[name]!r} → {value!r} (as the task text states)")
            fields[name] = value
    for name in _NUMBERS:  # a number the text does not state must at least appear in it
        value = fields[name]
        if value is not None and getattr(stated, name) is None and not _grounded(float(value), text):
            repairs.append(f"{name}: {value!r} dropped (no such number in the task text)")
            fields[name] = None
    target = _checked_target(fields["target"], reading, columns, data, repairs)
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
    # What the rules could not read but the Brain did (its numbers are in those words) was understood after all.
    taken = [float(fields[n]) for n in _NUMBERS if fields[n] is not None and getattr(stated, n) is None]
    unread = [words for words in reading.unread if not any(_grounded(v, words) for v in taken)]
    return task, repairs, unread


def _checked_target(name: str | None, reading: TaskReading, columns: Sequence[str], data: str,
                    repairs: list[str]) -> str:
    """The header's column for the Brain's target; a target the text names must exist, a guess is said aloud."""
    target = match_column(name, columns)
    if target is None:
        guess = match_column(reading.draft.target, columns) if reading.target_guessed else None
        if guess is None:
            raise _no_such_target(name, columns, data, from_text=name == reading.draft.target)
        repairs.append(f"target: {name!r} → {guess!r} ({name!r} is not a column of the table)")
        target = guess
    elif target != name:
        repairs.append(f"target: {name!r} → {target!r} (the header's spelling)")
    if reading.target_found not in ("named", "described"):
        why = {"literal": "its name says it is the label",
               "partial": "its name shares the most words with what the task describes"}.get(
            reading.target_found or "", "the mind chose it")
        repairs.append(f"target: the task names no column → {target!r} ({why}); to choose, say \"predict COLUMN\"")
    return target


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
               settings: Settings, edited: bool = False) -> tuple[Plan, list[str]]:
    """Validate any plan (a Brain's, or one a person ``edited``) against the data, the registries and the caps.

    A Brain's unknown names are repaired (the baseline stands in); a person's plan that names no
    strategy or no model poise knows is an error, since repairing it would run a plan nobody wrote."""
    from poise.tools.models import MODELS
    from poise.tools.strategies import STRATEGIES

    if edited:
        _require_known(plan.search.strategies, STRATEGIES, "strategy")
        _require_known(plan.search.models, MODELS, "model")
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
    models = _from_registry(plan.search.models, MODELS, "model", repairs)
    if not models:
        models = list(baseline.search.models)
        repairs.append(f"models: none poise knows → {', '.join(models)} (the data-driven plan's)")
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


def _require_known(names: Sequence[str], registry: dict, what: str) -> None:
    if not any(name in registry for name in names):
        unknown = f": {', '.join(map(repr, names))} {'is' if len(names) == 1 else 'are'} unknown" if names else ""
        raise PoiseError(f"the edited plan names no {what} poise knows{unknown}",
                         f"list at least one of: {', '.join(registry)}")


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
