"""The lifecycle graph: understand → profile → plan → approve → train → gate → deploy.

State is the contracts (as JSON, see ``poise.agents.state``), checkpointed in SQLite under
``POISE_HOME`` after every step, so a run outlives its process: approval can come from another
process days later, and a run that crashed resumes from its last checkpoint. Every step writes
an audit event. ``poise.agents.runner`` starts, answers and resumes runs of it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, TypedDict

from poise.agents.audit import Journal
from poise.agents.brain import Brain, think
from poise.agents.nodes import GraphNodes, add_approval_tail
from poise.agents.state import ContractJson, Contracts, Decision, as_json
from poise.agents.training_data import judge_derived_features, training_profile
from poise.settings import Settings

if TYPE_CHECKING:  # langgraph loads when a graph is built, not with this module
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph


class LifecycleState(TypedDict, total=False):
    run_id: str
    text: str
    data: str | None
    auto_approve: bool
    task: ContractJson  # TaskSpec
    profile: ContractJson  # DataProfile of the training part
    baseline: ContractJson  # Plan: the data-driven plan the Brain's draft is checked against
    plan: ContractJson  # Plan
    decision: Decision
    candidate: ContractJson  # Candidate
    gate: ContractJson  # GateReport
    status: str


def build_lifecycle_graph(brain: Brain, journal: Journal, settings: Settings, checkpointer: BaseCheckpointSaver,
                          interrupt_before: list[str] | None = None) -> CompiledStateGraph:
    """The graph, in one place: each node is a small function over the state."""
    from langgraph.graph import START, StateGraph

    nodes = LifecycleNodes(brain, journal, settings)
    graph = StateGraph(LifecycleState)
    graph.add_node("understand", nodes.step("understanding", nodes.understand))
    graph.add_node("profile", nodes.step("profiling", nodes.profile))
    graph.add_node("plan", nodes.step("planning", nodes.plan))
    add_approval_tail(graph, nodes)  # approve → train → gate → deploy
    graph.add_edge(START, "understand")
    graph.add_edge("understand", "profile")
    graph.add_edge("profile", "plan")
    graph.add_edge("plan", "approve")
    return graph.compile(checkpointer=checkpointer, interrupt_before=interrupt_before)


class LifecycleNodes(GraphNodes[LifecycleState]):
    def understand(self, state: LifecycleState) -> dict[str, Any]:
        from poise.agents.guardrails import task_from_draft
        from poise.agents.understand import parse_task, read_task
        from poise.errors import PoiseError
        from poise.tools.data import load_table

        data = state.get("data") or parse_task(state["text"], None, state.get("data")).data
        if not data:
            raise PoiseError("the task names no data file", 'mention it ("... in data/churn.csv") or pass --data')
        columns = list(load_table(data).columns)
        rules = read_task(state["text"], columns, data)
        thought = think(self.brain, "understand", state["text"], columns, data)
        task, repairs, unread = task_from_draft(thought.value, rules=rules, columns=columns, data=data,
                                                settings=self.settings, text=state["text"])
        self._audit(state, "understand", thought, f"predict {task.target!r} in {task.data}, maximise {task.metric}, "
                    f"{task.budget_seconds:g} s", inputs={"text": state["text"], "columns": columns[:50]},
                    output=as_json(task), repairs=repairs, not_understood=unread)
        return {"task": as_json(task)}

    def profile(self, state: LifecycleState) -> dict[str, Any]:
        task = Contracts(state).task
        profile = training_profile(task)
        self._audit(state, "profile", None, f"{profile.n_rows} training rows, minority {profile.minority_share:.2%}, "
                    f"{sum(c.is_identifier for c in profile.columns)} identifier(s), "
                    f"{sum(c.is_leak for c in profile.columns)} likely leak(s)",
                    inputs={"data": task.data, "fingerprint": profile.fingerprint},
                    output={"class_counts": profile.class_counts, "imbalance_ratio": profile.imbalance_ratio})
        return {"profile": as_json(profile)}

    def plan(self, state: LifecycleState) -> dict[str, Any]:
        from poise.agents.guardrails import plan_from_draft
        from poise.tools import planning

        saved = Contracts(state)
        task, profile = saved.task, saved.profile
        baseline = planning.default_plan(task, profile)
        thought = think(self.brain, "plan", task, profile, baseline)
        plan, repairs = plan_from_draft(thought.value, task=task, profile=profile, baseline=baseline,
                                        settings=self.settings)
        plan = judge_derived_features(plan, task, profile)
        self._audit(state, "plan", thought,
                    f"search {len(plan.search.strategies)} strategies × {len(plan.search.models)} models, "
                    f"{len(plan.data_steps)} data step(s), {plan.cv_folds}-fold CV, {plan.budget_seconds:g} s",
                    inputs={"draft": as_json(thought.value)}, output=as_json(plan), repairs=repairs)
        return {"plan": as_json(plan), "baseline": as_json(baseline)}

    def approve(self, state: LifecycleState) -> dict[str, Any]:
        from langgraph.types import interrupt

        from poise.agents.guardrails import check_plan

        decision: Decision
        if state.get("auto_approve"):
            decision = {"action": "approve", "approver": "auto-approve"}
        else:
            decision = interrupt({"run_id": state["run_id"], "task": state["task"], "plan": state["plan"]})
        update: dict[str, Any] = {"decision": decision}
        repairs: list[str] = []
        if decision["action"] == "edit":
            saved = Contracts(state)
            plan, repairs = check_plan(Contracts(decision).plan, task=saved.task, profile=saved.profile,
                                       baseline=saved.baseline, settings=self.settings, edited=True)
            update["plan"] = as_json(plan)
        if decision["action"] == "reject":
            self.journal.set_status(state["run_id"], "rejected", decision.get("reason", ""))
        summary = {"approve": "plan approved", "edit": "edited plan approved", "reject": "plan rejected"}
        self._audit(state, "approve", None, summary[decision["action"]]
                    + (f": {decision['reason']}" if decision.get("reason") else ""),
                    mind="person" if decision.get("approver") != "auto-approve" else "policy",
                    approver=decision.get("approver"), output={"action": decision["action"]}, repairs=repairs)
        return update

    def train(self, state: LifecycleState) -> dict[str, Any]:
        from poise.pipelines.train import run_training

        saved = Contracts(state)
        outcome = run_training(saved.task, saved.plan)
        c = outcome.candidate
        self._audit(state, "train", None, f"registered {c.model_name} v{c.version}: {c.strategy}/{c.estimator}, "
                    f"holdout {c.metric} {c.holdout_metrics[c.metric]:.4f}", mind="search",
                    inputs={"run_id": c.run_id, "n_trials": c.n_trials, "flow_run_id": outcome.flow_run_id},
                    output=as_json(c))
        self.journal.set_status(state["run_id"], "training", model=c.model_name, version=c.version)
        return {"candidate": as_json(c), "gate": as_json(outcome.gate)}

    def gate(self, state: LifecycleState) -> dict[str, Any]:
        """The training flow gated the candidate against the champion on the same holdout; here it is recorded."""
        gate = Contracts(state).gate
        status = "passed the gates" if gate.passed else "gated out"
        self._audit(state, "gate", None, f"{status}: " + "; ".join(gate.reasons), mind="gates", output=as_json(gate))
        self.journal.set_status(state["run_id"], status, "; ".join(gate.reasons)[:1000])
        if not gate.passed:
            self._log_audit(state)
        return {"status": status}


__all__ = ["LifecycleState", "build_lifecycle_graph"]
