"""The Brain: one protocol, two minds.

``RuleBrain`` is deterministic and offline: a careful parser of the task text, a planner
driven by the data profile, and ``rule_recovery``'s reading of a drift report. ``LLMBrain``
asks a language model (any OpenAI-compatible endpoint) for the same contracts. Whatever a
Brain says is a *draft*: the guardrails check it before anything acts on it, and the rules
stand in whenever the LLM fails.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, Protocol, TypeVar

from pydantic import BaseModel

from poise.contracts import (
    METRICS,
    ColumnDrop,
    DataProfile,
    DerivedFeature,
    DriftReport,
    MonitorPolicy,
    Plan,
    PlanDraft,
    RecoveryDraft,
    TaskDraft,
    TaskSpec,
)

if TYPE_CHECKING:  # the LLM client loads only when an LLM is configured
    from poise.agents.llm import LLMSettings

T = TypeVar("T", bound=BaseModel)

RULES = "rules"
#: The metrics as the LLM is told them: each of the contracts' names, the constrained ones with their floor.
_METRICS_EXPLAINED = ", ".join(
    name + {"recall_at_precision": " (a precision floor)", "precision_at_recall": " (a recall floor)"}.get(name, "")
    for name in METRICS
)


@dataclass(frozen=True)
class Thought(Generic[T]):
    """A Brain's answer, with who gave it and what it cost."""

    value: T
    mind: str
    latency_seconds: float
    tokens: int | None = None
    fallback_reason: str | None = None  # set when the rules answered because the LLM could not


class Brain(Protocol):
    mind: str

    def understand(self, text: str, columns: Sequence[str] | None, data: str | None) -> Thought[TaskDraft]: ...

    def plan(self, task: TaskSpec, profile: DataProfile, baseline: Plan) -> Thought[PlanDraft]: ...

    def recompose(self, report: DriftReport, plan: Plan) -> Thought[RecoveryDraft]: ...


class RuleBrain:
    """Deterministic, offline: the task parser, the data-driven planner and the recovery rules."""

    mind = RULES

    def understand(self, text: str, columns: Sequence[str] | None, data: str | None) -> Thought[TaskDraft]:
        from poise.agents.understand import parse_task

        started = time.perf_counter()
        draft = parse_task(text, columns, data)
        return Thought(draft, self.mind, time.perf_counter() - started)

    def plan(self, task: TaskSpec, profile: DataProfile, baseline: Plan) -> Thought[PlanDraft]:
        from poise.tools.features import propose_derived

        started = time.perf_counter()
        draft = PlanDraft(
            drop=[ColumnDrop(column=s.column, reason=s.reason[:300]) for s in baseline.data_steps
                  if s.action == "drop"],
            derive=[DerivedFeature(op=s.op, a=s.inputs[0], b=s.inputs[1], reason=s.reason[:300])
                    for s in propose_derived(profile)],
            strategies=list(baseline.search.strategies),
            models=list(baseline.search.models),
            cv_folds=baseline.cv_folds,
            rationale=[line[:300] for line in baseline.rationale[:20]],
        )
        return Thought(draft, self.mind, time.perf_counter() - started)

    def recompose(self, report: DriftReport, plan: Plan) -> Thought[RecoveryDraft]:
        started = time.perf_counter()
        return Thought(rule_recovery(report, plan.monitor), self.mind, time.perf_counter() - started)


def rule_recovery(report: DriftReport, policy: MonitorPolicy) -> RecoveryDraft:
    """The rules' answer to a drift report (the offline mind, and the fallback of an LLM)."""
    if report.severity == "none":
        return RecoveryDraft(action="none", reasons=["nothing crossed the policy's thresholds"])
    if report.labelled_rows < policy.min_labelled_rows:
        return RecoveryDraft(action="none", reasons=[
            f"{report.labelled_rows} labelled recent row(s): too few to learn from and to judge a challenger on; "
            "attach labels with poise feedback"])
    features_moved = report.drifted_share >= policy.drift_share_watch
    decayed = report.decay is not None and report.decay >= policy.decay_watch
    if report.prior_shift and not features_moved:
        return RecoveryDraft(action="retune_threshold", reasons=[
            f"the minority share moved from {report.reference_minority_share:.2%} to "
            f"{report.current_minority_share:.2%} while the features did not: a label-prior shift, which a new "
            "threshold answers without retraining"])
    if report.severity == "act" or decayed:
        if features_moved:
            strong = report.drifted_share >= policy.drift_share_act
            return RecoveryDraft(action="retrain", reference_fraction=0.5 if strong else 1.0, reasons=[
                f"{report.drifted_share:.0%} of the features drifted"
                + (f" and {report.metric} fell by {report.decay:.3f}" if decayed else "")
                + ": retrain on the recent rows beside "
                + ("half of the old ones, which describe the present less well" if strong else "all the old ones")])
        return RecoveryDraft(action="retrain", reference_fraction=0.25, reasons=[
            f"{report.metric} fell by {report.decay:.3f} while the features did not move: the relation between "
            "features and label changed, so the old rows count for less"])
    return RecoveryDraft(action="none", reasons=["worth watching, not yet worth acting on"])


class LLMBrain:
    """A language model behind an OpenAI-compatible endpoint, asked for the same contracts."""

    def __init__(self, settings: LLMSettings) -> None:
        from poise.agents.llm import LLMClient

        self.settings = settings
        self.client = LLMClient(settings)
        self.mind = f"llm:{settings.model}"

    def understand(self, text: str, columns: Sequence[str] | None, data: str | None) -> Thought[TaskDraft]:
        from poise.agents.llm import SYSTEM_RULES, data_block, quote_data

        user = "\n".join([
            f"Read the task below and fill the schema. Metrics: {_METRICS_EXPLAINED}. "
            "budget_seconds is the time budget in seconds.",
            f"Task (the user's words): {quote_data(text, 2000)}",
            f"Data file given separately: {quote_data(data) if data else 'none'}",
            "The table's column names:" if columns else "The table's columns are unknown.",
            data_block(columns or []),
        ])
        return self._ask(SYSTEM_RULES, user, TaskDraft)

    def plan(self, task: TaskSpec, profile: DataProfile, baseline: Plan) -> Thought[PlanDraft]:
        from poise.agents.llm import SYSTEM_RULES, data_block
        from poise.tools.models import MODELS
        from poise.tools.strategies import STRATEGIES

        columns = [
            f"{c.name} | {c.kind} | missing {c.missing_share:.0%} | distinct {c.n_unique}"
            + (f" | identifier: {c.identifier_reason}" if c.identifier_reason else "")
            + (f" | leak: {c.leak_reason}" if c.leak_reason else "")
            for c in profile.columns
        ]
        user = "\n".join([
            "Propose a plan for training a classifier for the rare class.",
            f"Metric: {task.metric}. Rows: {profile.n_rows}. Minority share: {profile.minority_share:.2%} "
            f"({profile.n_minority} rows).",
            "drop: columns to remove (identifiers, leaks, useless), each with a reason.",
            "derive: up to 8 products, ratios or differences of two related numeric columns that may reveal "
            "the rare event (e.g. power = torque x speed), each with a reason.",
            f"strategies: choose from {', '.join(STRATEGIES)}. models: choose from {', '.join(MODELS)}.",
            "Columns (name | kind | missing | distinct | notes):",
            data_block(columns),
        ])
        return self._ask(SYSTEM_RULES, user, PlanDraft)

    def recompose(self, report: DriftReport, plan: Plan) -> Thought[RecoveryDraft]:
        from poise.agents.llm import SYSTEM_RULES, data_block

        drifted = [f"{f.column} | {f.method} | score {f.score:.4g} | threshold {f.threshold:.4g}"
                   for f in report.features if f.drifted]
        user = "\n".join([
            "A deployed classifier for a rare class is being monitored. Decide how to recover, if at all.",
            "A shift of the class balance alone (label-prior shift: the minority share moved, the features did "
            "not) is answered by retune_threshold, not by retraining. Drifted features or decayed performance "
            "call for retrain (keep less of the old rows the more the data moved); retrain_wider when the "
            "search space itself looks wrong. With no labelled rows nothing can be judged: answer none.",
            f"Severity by policy: {report.severity}. Drifted share of features: {report.drifted_share:.0%}.",
            f"Minority share: reference {report.reference_minority_share}, current {report.current_minority_share} "
            f"(from {report.minority_share_source}); prior shift flagged: {report.prior_shift}.",
            f"Metric {report.metric}: holdout {report.reference_score}, recent {report.current_score}, "
            f"decay {report.decay}, on {report.labelled_rows} labelled rows.",
            "The policy's reasons:", data_block(report.reasons),
            "Drifted features (column | method | score | threshold):", data_block(drifted),
        ])
        return self._ask(SYSTEM_RULES, user, RecoveryDraft)

    def _ask(self, system: str, user: str, schema: type[T]) -> Thought[T]:
        answer = self.client.structured(system, user, schema)
        tokens = None if answer.prompt_tokens is None else answer.prompt_tokens + (answer.completion_tokens or 0)
        return Thought(answer.value, f"llm:{answer.model}", answer.latency_seconds, tokens)


def configured_brain() -> Brain:
    """The LLM when one is configured (POISE_LLM_* / OPENAI_*), else the rules."""
    from poise.agents.llm import LLMSettings

    settings = LLMSettings.from_env()
    return LLMBrain(settings) if settings.configured else RuleBrain()


def think(brain: Brain, method: str, *args: object) -> Thought:
    """Ask ``brain``; when it is an LLM and it fails, the rules answer instead (and say why)."""
    from poise.agents.llm import LLMError

    try:
        return getattr(brain, method)(*args)
    except LLMError as exc:
        thought = getattr(RuleBrain(), method)(*args)
        return Thought(thought.value, RULES, thought.latency_seconds,
                       fallback_reason=f"{brain.mind} failed ({exc.reason}): {exc}")
