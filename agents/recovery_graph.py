"""The recovery graph: monitor → diagnose → recompose → approve (by policy) → train → gate → deploy.

Built like the lifecycle graph and audited the same way: every step is an audit event, the
state is checkpointed, and a recovery the champion's plan does not allow to run unattended
waits for a person exactly like a new plan (``poise approve RUN``). The gate is strict: a
challenger replaces the champion only when it is better on recent labelled rows by more
than the noise of those rows, and still holds the plan's floors on the original holdout.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict

from poise.agents.audit import Journal
from poise.agents.brain import Brain, think
from poise.agents.nodes import GraphNodes, add_approval_tail
from poise.agents.state import ContractJson, Contracts, Decision, as_json
from poise.contracts import DriftReport
from poise.settings import Settings

if TYPE_CHECKING:  # langgraph loads when a graph is built, not with this module
    from langgraph.checkpoint.base import BaseCheckpointSaver
    from langgraph.graph.state import CompiledStateGraph


class RecoveryState(TypedDict, total=False):
    run_id: str
    model: str
    current: str | None
    window: int | None
    budget_seconds: float | None
    report: ContractJson  # DriftReport
    recent: str | None  # the recent labelled rows the monitor kept, a file of the run's folder
    diagnosis: list[str]
    recovery: ContractJson  # RecoveryDecision
    decision: Decision  # the approval, as in the lifecycle graph
    candidate: ContractJson  # Candidate
    gate: ContractJson  # GateReport
    status: str


def build_recovery_graph(brain: Brain, journal: Journal, settings: Settings,
                         checkpointer: BaseCheckpointSaver) -> CompiledStateGraph:
    """The graph, in one place: a recovery that decides to do nothing ends at recompose."""
    from langgraph.graph import END, START, StateGraph

    nodes = RecoveryNodes(brain, journal, settings)
    graph = StateGraph(RecoveryState)
    graph.add_node("monitor", nodes.step("monitoring", nodes.monitor))
    graph.add_node("diagnose", nodes.step("diagnosing", nodes.diagnose))
    graph.add_node("recompose", nodes.step("recomposing", nodes.recompose))
    add_approval_tail(graph, nodes)  # approve → train → gate → deploy
    graph.add_edge(START, "monitor")
    graph.add_edge("monitor", "diagnose")
    graph.add_edge("diagnose", "recompose")
    graph.add_conditional_edges("recompose", lambda s: "approve" if s["recovery"]["action"] else END,
                                ["approve", END])
    return graph.compile(checkpointer=checkpointer)


class RecoveryNodes(GraphNodes[RecoveryState]):
    def _folder(self, state: RecoveryState) -> Path:
        return self.settings.home / "recoveries" / state["run_id"]

    def monitor(self, state: RecoveryState) -> dict[str, Any]:
        from poise.pipelines.monitor import RECENT_FILE, monitor_flow

        folder = self._folder(state)
        report = monitor_flow(state["model"], state.get("current"), state.get("window"), keep_labelled=str(folder))
        recent = folder / RECENT_FILE
        window = state.get("current") or f"the last {state.get('window') or 'default'} logged predictions"
        self._audit(state, "monitor", None, f"severity {report.severity}: " + "; ".join(report.reasons),
                    mind="policy", inputs={"model": state["model"], "version": report.model_version,
                                           "window": window, "html": report.html_path},
                    output=report.model_dump(mode="json", exclude={"policy"}))
        self.journal.set_status(state["run_id"], "monitoring", model=state["model"], version=report.model_version)
        return {"report": as_json(report), "recent": str(recent) if recent.exists() else None}

    def diagnose(self, state: RecoveryState) -> dict[str, Any]:
        facts = diagnosis(Contracts(state).report)
        self._audit(state, "diagnose", None, "; ".join(facts), mind="rules", output={"diagnosis": facts})
        return {"diagnosis": facts}

    def recompose(self, state: RecoveryState) -> dict[str, Any]:
        from poise.agents.guardrails import decision_from_draft
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import recovery_plan

        report = Contracts(state).report
        champion = champion_of(state["model"])
        thought = think(self.brain, "recompose", report, champion.plan)
        budget = state.get("budget_seconds") or champion.task.budget_seconds
        decision, repairs = decision_from_draft(thought.value, report=report, plan=champion.plan,
                                                budget_seconds=budget, settings=self.settings)
        update: dict[str, Any] = {"diagnosis": state.get("diagnosis", [])}
        if decision.action in ("retrain", "retrain_wider"):
            update["plan"] = recovery_plan(champion, decision.action, min(budget, self.settings.max_budget_seconds))
        decision = decision.model_copy(update=update)
        summary = ("no recovery: " if decision.action is None else f"{decision.action}: ") + "; ".join(decision.reasons)
        self._audit(state, "recompose", thought, summary, inputs={"draft": as_json(thought.value)},
                    output=as_json(decision), repairs=repairs)
        if decision.action is None:
            self.journal.set_status(state["run_id"], "no action", summary[:1000])
        return {"recovery": as_json(decision)}

    def approve(self, state: RecoveryState) -> dict[str, Any]:
        from langgraph.types import interrupt

        decision = Contracts(state).recovery
        answer: Decision
        if decision.unattended:
            answer = {"action": "approve", "approver": "policy"}
        else:
            answer = interrupt({"run_id": state["run_id"], "model": state["model"], "recovery": state["recovery"],
                                "report": state["report"]})
            if answer["action"] == "edit":
                answer = {**answer, "action": "approve"}  # a recovery is approved or rejected as proposed
        if answer["action"] == "reject":
            self.journal.set_status(state["run_id"], "rejected", answer.get("reason", ""))
        who = "policy" if answer.get("approver") == "policy" else "person"
        summary = {"approve": f"{decision.action} approved", "reject": f"{decision.action} rejected"}
        self._audit(state, "approve", None, summary[answer["action"]]
                    + (" (the plan lets it run unattended)" if who == "policy" else "")
                    + (f": {answer['reason']}" if answer.get("reason") else ""),
                    mind=who, approver=None if who == "policy" else answer.get("approver"),
                    output={"action": answer["action"]})
        return {"decision": answer}

    def train(self, state: RecoveryState) -> dict[str, Any]:
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import retraining_table, retraining_task, retune_flow
        from poise.pipelines.train import run_training

        decision = Contracts(state).recovery
        if decision.action == "retune_threshold":
            candidate = retune_flow(state["model"], state["recent"], decision.recent_eval_fraction)
            flow_run = None
        else:
            champion = champion_of(state["model"])
            table = retraining_table(champion, state["recent"], decision, self._folder(state))
            outcome = run_training(retraining_task(champion, table, decision.plan.budget_seconds), decision.plan)
            candidate, flow_run = outcome.candidate, outcome.flow_run_id
        self._audit(state, "train", None, f"registered {candidate.model_name} v{candidate.version} "
                    f"({decision.action}): {candidate.strategy}/{candidate.estimator}, threshold "
                    f"{candidate.threshold:.4f}", mind="search",
                    inputs={"run_id": candidate.run_id, "flow_run_id": flow_run},
                    output=as_json(candidate))
        self.journal.set_status(state["run_id"], "training", model=candidate.model_name, version=candidate.version)
        return {"candidate": as_json(candidate)}

    def gate(self, state: RecoveryState) -> dict[str, Any]:
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import challenge_flow, judging_metric

        saved = Contracts(state)
        decision = saved.recovery
        metric = judging_metric(champion_of(state["model"]).task, decision.action)
        gate = challenge_flow(state["model"], saved.candidate.version, state["recent"], decision.recent_eval_fraction,
                              metric)
        status = "passed the gates" if gate.passed else "kept as challenger"
        self._audit(state, "gate", None, f"{status}: " + "; ".join(gate.reasons), mind="gates",
                    output=as_json(gate))
        self.journal.set_status(state["run_id"], status, "; ".join(gate.reasons)[:1000])
        if not gate.passed:
            self._log_audit(state)
        return {"gate": as_json(gate)}


def diagnosis(report: DriftReport) -> list[str]:
    """What the evidence shows, in plain sentences (no decision yet)."""
    facts = [f"severity {report.severity} on {report.current_rows} recent row(s) against {report.reference_rows}"]
    drifted = sorted((f for f in report.features if f.drifted), key=lambda f: f.column)
    facts.append(f"{len(drifted)} of {len(report.features)} feature(s) drifted"
                 + (": " + ", ".join(f.column for f in drifted) if drifted else ""))
    if report.decay is not None:
        facts.append(f"{report.metric} {report.current_score:.4f} on {report.labelled_rows} labelled row(s) "
                     f"against {report.reference_score:.4f} on the holdout (decay {report.decay:+.4f})")
    elif report.labelled_rows:
        facts.append(f"{report.labelled_rows} labelled row(s), not enough of both classes to score")
    else:
        facts.append("no labels yet: decay cannot be measured")
    if report.reference_minority_share is not None and report.current_minority_share is not None:
        facts.append(f"minority share {report.reference_minority_share:.2%} → {report.current_minority_share:.2%} "
                     f"(from {report.minority_share_source})" + (": a label-prior shift" if report.prior_shift else ""))
    return facts


__all__ = ["RecoveryState", "build_recovery_graph", "diagnosis"]
