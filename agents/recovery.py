"""The recovery graph: monitor → diagnose → recompose → approve (by policy) → train → gate → deploy.

Built like the lifecycle graph and audited the same way: every step is an audit event, the
state is checkpointed, and a recovery the champion's plan does not allow to run unattended
waits for a person exactly like a new plan (``poise approve RUN``). The gate is strict: a
challenger replaces the champion only when it is better on recent labelled rows by more
than the noise of those rows, and still holds the plan's floors on the original holdout.
"""

from __future__ import annotations

from typing import Any, TypedDict

from poise.agents.brain import Brain, think
from poise.agents.graph import NodeBase
from poise.contracts import DriftReport, MonitorPolicy, RecoveryDecision, RecoveryDraft
from poise.settings import Settings


class RecoveryState(TypedDict, total=False):
    run_id: str
    model: str
    current: str | None
    window: int | None
    budget_seconds: float | None
    report: dict[str, Any]
    recent: str | None
    diagnosis: list[str]
    recovery: dict[str, Any]
    decision: dict[str, Any]  # the approval, as in the lifecycle graph
    candidate: dict[str, Any]
    gate: dict[str, Any]
    status: str


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


def build_recovery_graph(brain: Brain, journal: Any, settings: Settings, checkpointer: Any) -> Any:
    from langgraph.graph import END, START, StateGraph

    nodes = _RecoveryNodes(brain, journal, settings)
    graph = StateGraph(RecoveryState)
    graph.add_node("monitor", nodes.step("monitoring", nodes.monitor))
    graph.add_node("diagnose", nodes.step("diagnosing", nodes.diagnose))
    graph.add_node("recompose", nodes.step("recomposing", nodes.recompose))
    graph.add_node("approve", nodes.step("awaiting approval", nodes.approve))
    graph.add_node("train", nodes.step("training", nodes.train))
    graph.add_node("gate", nodes.step("gating", nodes.gate))
    graph.add_node("deploy", nodes.step("deploying", nodes.deploy))
    graph.add_edge(START, "monitor")
    graph.add_edge("monitor", "diagnose")
    graph.add_edge("diagnose", "recompose")
    graph.add_conditional_edges("recompose", lambda s: "approve" if s["recovery"]["action"] else END,
                                ["approve", END])
    graph.add_conditional_edges("approve", lambda s: "train" if s["decision"]["action"] != "reject" else END,
                                ["train", END])
    graph.add_edge("train", "gate")
    graph.add_conditional_edges("gate", lambda s: "deploy" if s["gate"]["passed"] else END, ["deploy", END])
    graph.add_edge("deploy", END)
    return graph.compile(checkpointer=checkpointer)


class _RecoveryNodes(NodeBase):
    def _folder(self, state: RecoveryState) -> Any:
        return self.settings.home / "recoveries" / state["run_id"]

    def monitor(self, state: RecoveryState) -> dict:
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
        return {"report": report.model_dump(mode="json"), "recent": str(recent) if recent.exists() else None}

    def diagnose(self, state: RecoveryState) -> dict:
        report = DriftReport.model_validate(state["report"])
        facts = diagnosis(report)
        self._audit(state, "diagnose", None, "; ".join(facts), mind="rules", output={"diagnosis": facts})
        return {"diagnosis": facts}

    def recompose(self, state: RecoveryState) -> dict:
        from poise.agents.guardrails import decision_from_draft
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import recovery_plan

        report = DriftReport.model_validate(state["report"])
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
        self._audit(state, "recompose", thought, summary, inputs={"draft": thought.value.model_dump(mode="json")},
                    output=decision.model_dump(mode="json"), repairs=repairs)
        if decision.action is None:
            self.journal.set_status(state["run_id"], "no action", summary[:1000])
        return {"recovery": decision.model_dump(mode="json")}

    def approve(self, state: RecoveryState) -> dict:
        from langgraph.types import interrupt

        decision = RecoveryDecision.model_validate(state["recovery"])
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

    def train(self, state: RecoveryState) -> dict:
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import retraining_table, retraining_task, retune_flow
        from poise.pipelines.train import run_training

        decision = RecoveryDecision.model_validate(state["recovery"])
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
                    output=candidate.model_dump(mode="json"))
        self.journal.set_status(state["run_id"], "training", model=candidate.model_name, version=candidate.version)
        return {"candidate": candidate.model_dump(mode="json")}

    def gate(self, state: RecoveryState) -> dict:
        from poise.pipelines.monitor import champion_of
        from poise.pipelines.recover import challenge_flow, judging_metric

        decision = RecoveryDecision.model_validate(state["recovery"])
        candidate = state["candidate"]
        metric = judging_metric(champion_of(state["model"]).task, decision.action)
        gate = challenge_flow(state["model"], candidate["version"], state["recent"], decision.recent_eval_fraction,
                              metric)
        status = "passed the gates" if gate.passed else "kept as challenger"
        self._audit(state, "gate", None, f"{status}: " + "; ".join(gate.reasons), mind="gates",
                    output=gate.model_dump(mode="json"))
        self.journal.set_status(state["run_id"], status, "; ".join(gate.reasons)[:1000])
        if not gate.passed:
            self._log_audit(state)
        return {"gate": gate.model_dump(mode="json")}


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


__all__ = ["build_recovery_graph", "diagnosis", "rule_recovery"]
