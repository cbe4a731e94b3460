"""The lifecycle graph: understand → profile → plan → approve → train → gate → deploy.

State is the contracts (as JSON), checkpointed in SQLite under ``POISE_HOME`` after every
step, so a run outlives its process: approval can come from another process days later,
and a run that crashed resumes from its last checkpoint. Every step writes an audit event.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypedDict

from poise.agents.audit import Journal, who
from poise.agents.brain import Brain, Thought, configured_brain, think
from poise.contracts import AuditEvent, Candidate, DataProfile, GateReport, Plan, TaskSpec
from poise.settings import Settings, get_settings


class LifecycleState(TypedDict, total=False):
    run_id: str
    text: str
    data: str | None
    auto_approve: bool
    task: dict[str, Any]
    profile: dict[str, Any]
    baseline: dict[str, Any]
    plan: dict[str, Any]
    decision: dict[str, Any]
    candidate: dict[str, Any]
    gate: dict[str, Any]
    status: str


AWAITING_APPROVAL = "awaiting approval"
FINISHED = ("deployed", "not deployed", "gated out", "rejected", "no action", "kept as challenger")
RECOVERY = "recovery"


def build_lifecycle_graph(brain: Brain, journal: Journal, settings: Settings, checkpointer: Any,
                          interrupt_before: list[str] | None = None) -> Any:
    """The graph, in one place: each node is a small function over the state."""
    from langgraph.graph import END, START, StateGraph

    nodes = _Nodes(brain, journal, settings)
    graph = StateGraph(LifecycleState)
    graph.add_node("understand", nodes.step("understanding", nodes.understand))
    graph.add_node("profile", nodes.step("profiling", nodes.profile))
    graph.add_node("plan", nodes.step("planning", nodes.plan))
    graph.add_node("approve", nodes.step(AWAITING_APPROVAL, nodes.approve))
    graph.add_node("train", nodes.step("training", nodes.train))
    graph.add_node("gate", nodes.step("gating", nodes.gate))
    graph.add_node("deploy", nodes.step("deploying", nodes.deploy))
    graph.add_edge(START, "understand")
    graph.add_edge("understand", "profile")
    graph.add_edge("profile", "plan")
    graph.add_edge("plan", "approve")
    graph.add_conditional_edges("approve", lambda s: "train" if s["decision"]["action"] != "reject" else END,
                                ["train", END])
    graph.add_edge("train", "gate")
    graph.add_conditional_edges("gate", lambda s: "deploy" if s["gate"]["passed"] else END, ["deploy", END])
    graph.add_edge("deploy", END)
    return graph.compile(checkpointer=checkpointer, interrupt_before=interrupt_before)


class NodeBase:
    """What every graph's nodes share: run status, the audit trail, and deployment after a passed gate."""

    def __init__(self, brain: Brain, journal: Journal, settings: Settings) -> None:
        self.brain, self.journal, self.settings = brain, journal, settings

    def step(self, status: str, node: Callable[[Any], dict]) -> Callable[[Any], dict]:
        """Mark the run's status while ``node`` runs, and as failed if it raises."""

        def run(state: Any) -> dict:
            self.journal.set_status(state["run_id"], status)
            try:
                return node(state)
            except Exception as exc:
                from langgraph.errors import GraphInterrupt

                if not isinstance(exc, GraphInterrupt):
                    self.journal.set_status(state["run_id"], "failed", f"{status}: {exc}"[:1000])
                raise

        run.__name__ = node.__name__
        return run

    def _audit(self, state: Any, step: str, thought: Thought | None, summary: str, **fields: Any) -> None:
        repairs = list(fields.pop("repairs", []))
        if thought is not None and thought.fallback_reason:
            repairs.insert(0, f"answered by the rules: {thought.fallback_reason}")
        self.journal.record(AuditEvent(
            run_id=state["run_id"], step=step, mind=fields.pop("mind", thought.mind if thought else "rules"),
            summary=summary, repairs=repairs,
            latency_seconds=None if thought is None else round(thought.latency_seconds, 4),
            tokens=None if thought is None else thought.tokens, **fields,
        ))

    def deploy(self, state: Any) -> dict:
        """The approved plan's gates passed: promotion follows (the deploy flow)."""
        from poise.pipelines.deploy import deploy_flow

        candidate = Candidate.model_validate(state["candidate"])
        outcome = deploy_flow(candidate.model_name, candidate.version, GateReport.model_validate(state["gate"]))
        if outcome.promoted:
            was = f" (was v{outcome.previous}, now @previous)" if outcome.previous else ""
            summary, status = f"{candidate.model_name}@champion → v{candidate.version}{was}", "deployed"
        else:
            summary, status = "not promoted: " + "; ".join(outcome.reasons), "not deployed"
        self._audit(state, "deploy", None, summary, mind="policy",
                    inputs={"flow_run_id": outcome.flow_run_id, "approved_by": state["decision"].get("approver")},
                    output={"promoted": outcome.promoted, "previous": outcome.previous, "servers": outcome.servers})
        self.journal.set_status(state["run_id"], status, summary[:1000])
        self._log_audit(state)
        return {"status": status}

    def _log_audit(self, state: Any) -> None:
        """Keep the run's audit trail beside the model it produced."""
        from poise.registry.tracking import log_json

        run_id = state.get("candidate", {}).get("run_id")
        if run_id:
            log_json(run_id, "audit.json", self.journal.events(state["run_id"]))


class _Nodes(NodeBase):
    # ------------------------------------------------------------------ nodes
    def understand(self, state: LifecycleState) -> dict:
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
                    output=task.model_dump(mode="json"), repairs=repairs, not_understood=unread)
        return {"task": task.model_dump(mode="json")}

    def profile(self, state: LifecycleState) -> dict:
        task = TaskSpec.model_validate(state["task"])
        profile = training_profile(task)
        self._audit(state, "profile", None, f"{profile.n_rows} training rows, minority {profile.minority_share:.2%}, "
                    f"{sum(c.is_identifier for c in profile.columns)} identifier(s), "
                    f"{sum(c.is_leak for c in profile.columns)} likely leak(s)",
                    inputs={"data": task.data, "fingerprint": profile.fingerprint},
                    output={"class_counts": profile.class_counts, "imbalance_ratio": profile.imbalance_ratio})
        return {"profile": profile.model_dump(mode="json")}

    def plan(self, state: LifecycleState) -> dict:
        from poise.agents.guardrails import plan_from_draft
        from poise.tools import planning

        task = TaskSpec.model_validate(state["task"])
        profile = DataProfile.model_validate(state["profile"])
        baseline = planning.default_plan(task, profile)
        thought = think(self.brain, "plan", task, profile, baseline)
        plan, repairs = plan_from_draft(thought.value, task=task, profile=profile, baseline=baseline,
                                        settings=self.settings)
        plan = judge_derived_features(plan, task, profile)
        self._audit(state, "plan", thought,
                    f"search {len(plan.search.strategies)} strategies × {len(plan.search.models)} models, "
                    f"{len(plan.data_steps)} data step(s), {plan.cv_folds}-fold CV, {plan.budget_seconds:g} s",
                    inputs={"draft": thought.value.model_dump(mode="json")}, output=plan.model_dump(mode="json"),
                    repairs=repairs)
        return {"plan": plan.model_dump(mode="json"), "baseline": baseline.model_dump(mode="json")}

    def approve(self, state: LifecycleState) -> dict:
        from langgraph.types import interrupt

        from poise.agents.guardrails import check_plan

        if state.get("auto_approve"):
            decision = {"action": "approve", "approver": "auto-approve"}
        else:
            decision = interrupt({"run_id": state["run_id"], "task": state["task"], "plan": state["plan"]})
        update: dict[str, Any] = {"decision": decision}
        repairs: list[str] = []
        if decision["action"] == "edit":
            plan, repairs = check_plan(
                Plan.model_validate(decision["plan"]), task=TaskSpec.model_validate(state["task"]),
                profile=DataProfile.model_validate(state["profile"]),
                baseline=Plan.model_validate(state["baseline"]), settings=self.settings, edited=True)
            update["plan"] = plan.model_dump(mode="json")
        if decision["action"] == "reject":
            self.journal.set_status(state["run_id"], "rejected", decision.get("reason", ""))
        summary = {"approve": "plan approved", "edit": "edited plan approved", "reject": "plan rejected"}
        self._audit(state, "approve", None, summary[decision["action"]]
                    + (f": {decision['reason']}" if decision.get("reason") else ""),
                    mind="person" if decision.get("approver") != "auto-approve" else "policy",
                    approver=decision.get("approver"), output={"action": decision["action"]}, repairs=repairs)
        return update

    def train(self, state: LifecycleState) -> dict:
        from poise.pipelines.train import run_training

        task = TaskSpec.model_validate(state["task"])
        plan = Plan.model_validate(state["plan"])
        outcome = run_training(task, plan)
        c = outcome.candidate
        self._audit(state, "train", None, f"registered {c.model_name} v{c.version}: {c.strategy}/{c.estimator}, "
                    f"holdout {c.metric} {c.holdout_metrics[c.metric]:.4f}", mind="search",
                    inputs={"run_id": c.run_id, "n_trials": c.n_trials, "flow_run_id": outcome.flow_run_id},
                    output=c.model_dump(mode="json"))
        self.journal.set_status(state["run_id"], "training", model=c.model_name, version=c.version)
        return {"candidate": c.model_dump(mode="json"), "gate": outcome.gate.model_dump(mode="json")}

    def gate(self, state: LifecycleState) -> dict:
        gate = GateReport.model_validate(state["gate"])
        status = "passed the gates" if gate.passed else "gated out"
        self._audit(state, "gate", None, f"{status}: " + "; ".join(gate.reasons), mind="gates",
                    output=gate.model_dump(mode="json"))
        self.journal.set_status(state["run_id"], status, "; ".join(gate.reasons)[:1000])
        if not gate.passed:
            self._log_audit(state)
        return {"status": status}

def training_part(task: TaskSpec, holdout_fraction: float | None = None):  # noqa: ANN201 - Split
    """The table and its training part, split as training will split it (``poise.pipelines.train.honest_split``):
    at the plan's ``holdout_fraction`` once there is a plan, at the Plan default before."""
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


# ---------------------------------------------------------------------- running
@dataclass
class RunView:
    """Where a run stands, for the CLI."""

    run_id: str
    status: str
    values: dict[str, Any]
    pending: dict[str, Any] | None  # the interrupt payload while awaiting approval

    @property
    def task(self) -> TaskSpec | None:
        return TaskSpec.model_validate(self.values["task"]) if "task" in self.values else None

    @property
    def plan(self) -> Plan | None:
        return Plan.model_validate(self.values["plan"]) if "plan" in self.values else None


class Lifecycle:
    """Start, approve, reject and resume runs of the lifecycle graph."""

    def __init__(self, settings: Settings | None = None, brain: Brain | None = None) -> None:
        import sqlite3

        from langgraph.checkpoint.sqlite import SqliteSaver

        self.settings = settings or get_settings()
        self.journal = Journal(self.settings.home / "runs.db")
        # a busy store (another process writing a checkpoint) is waited for, as the journal does, not failed on
        self._connection = sqlite3.connect(self.settings.home / "checkpoints.db", check_same_thread=False, timeout=30)
        self.checkpointer = SqliteSaver(self._connection)
        self.brain = brain or configured_brain()
        self.graph = build_lifecycle_graph(self.brain, self.journal, self.settings, self.checkpointer)
        self._recovery_graph: Any = None

    def _graph_of(self, run_id: str) -> Any:
        """The graph a run belongs to (recoveries have their own)."""
        row = self.journal.run(run_id)
        if row is None or row["kind"] != RECOVERY:
            return self.graph
        if self._recovery_graph is None:
            from poise.agents.recovery import build_recovery_graph

            self._recovery_graph = build_recovery_graph(self.brain, self.journal, self.settings, self.checkpointer)
        return self._recovery_graph

    def recover(self, model: str, current: str | None = None, window: int | None = None,
                budget_seconds: float | None = None, run_id: str | None = None) -> RunView:
        """Check ``model`` for drift and, when the policy says act, recover (the recovery graph).

        ``run_id`` lets a caller that works in the background (the console) know the run before it starts.
        """
        from poise.agents.recovery import RecoveryState

        run_id = run_id or new_run_id()
        source = f"--current {current}" if current else f"--window {window or 'default'}"
        self.journal.start_run(run_id, f"recover {model} ({source})", kind=RECOVERY)
        state: RecoveryState = {"run_id": run_id, "model": model, "current": current, "window": window,
                                "budget_seconds": budget_seconds}
        return self._invoke(run_id, state)

    def close(self) -> None:
        self._connection.close()

    def start(self, text: str, data: str | None = None, auto_approve: bool = False,
              run_id: str | None = None) -> RunView:
        run_id = run_id or new_run_id()
        self.journal.start_run(run_id, text)
        state: LifecycleState = {"run_id": run_id, "text": text, "data": data, "auto_approve": auto_approve}
        return self._invoke(run_id, state)

    def approve(self, run_id: str, plan: Plan | None = None, approver: str | None = None) -> RunView:
        decision: dict[str, Any] = {"action": "edit" if plan else "approve", "approver": approver or who()}
        if plan is not None:
            self.check_edit(run_id, plan)  # a bad edit is refused here, and the run keeps waiting
            decision["plan"] = plan.model_dump(mode="json")
        return self._answer(run_id, decision)

    def check_edit(self, run_id: str, plan: Plan) -> tuple[Plan, list[str]]:
        """An edited plan for a waiting run, checked as the approval will check it: (plan, repairs)."""
        from poise.agents.guardrails import check_plan
        from poise.errors import PoiseError

        view = self.view(run_id)
        if view.pending is None:
            raise PoiseError(f"run {view.run_id} is not waiting for approval (it is {view.status})",
                             f"see poise show {view.run_id}")
        return check_plan(plan, task=TaskSpec.model_validate(view.values["task"]),
                          profile=DataProfile.model_validate(view.values["profile"]),
                          baseline=Plan.model_validate(view.values["baseline"]), settings=self.settings, edited=True)

    def reject(self, run_id: str, reason: str, approver: str | None = None) -> RunView:
        return self._answer(run_id, {"action": "reject", "reason": reason, "approver": approver or who()})

    def resume(self, run_id: str) -> RunView:
        """Continue a run from its last checkpoint (after a crash or a kill).

        The MLflow runs the killed process left RUNNING are closed (KILLED) first; the
        training starts again in a run of its own.
        """
        from poise.errors import PoiseError
        from poise.registry import tracking

        view = self.view(run_id)
        if view.pending is not None:
            raise PoiseError(f"run {run_id} is waiting for approval, not stuck",
                             f"poise approve {run_id}  (or poise reject {run_id} --reason ...)")
        if view.status in FINISHED:
            raise PoiseError(f"run {run_id} has finished ({view.status})", f"see poise show {run_id}")
        tracking.close_abandoned_runs(self.settings)
        return self._invoke(run_id, None)

    def view(self, run_id: str) -> RunView:
        from poise.errors import PoiseError

        row = self.journal.run(run_id)
        if row is None:
            raise PoiseError(f"no run {run_id!r}", "see `poise runs` for the run ids")
        run_id = row["run_id"]
        snapshot = self._graph_of(run_id).get_state(_config(run_id))
        pending = None
        for task in snapshot.tasks:
            for intr in task.interrupts:
                pending = intr.value
        return RunView(run_id, self.journal.run(run_id)["status"], dict(snapshot.values), pending)

    def _answer(self, run_id: str, decision: dict[str, Any]) -> RunView:
        from langgraph.types import Command

        from poise.errors import PoiseError

        view = self.view(run_id)
        if view.pending is None:
            raise PoiseError(f"run {view.run_id} is not waiting for approval (it is {view.status})",
                             f"see poise show {view.run_id}")
        return self._invoke(view.run_id, Command(resume=decision))

    def _invoke(self, run_id: str, payload: Any) -> RunView:
        self._graph_of(run_id).invoke(payload, _config(run_id))
        view = self.view(run_id)
        if view.pending is not None:
            self.journal.set_status(run_id, AWAITING_APPROVAL)
            view.status = AWAITING_APPROVAL
        return view


def plan_only(text: str, data: str | None = None, settings: Settings | None = None,
              brain: Brain | None = None) -> dict[str, Any]:
    """understand → profile → plan, without a checkpoint or a pending run (``poise plan``)."""
    from langgraph.checkpoint.memory import InMemorySaver

    from poise.agents.notices import notices

    settings = settings or get_settings()
    journal = Journal(settings.home / "runs.db")
    graph = build_lifecycle_graph(brain or configured_brain(), journal, settings, InMemorySaver(),
                                  interrupt_before=["approve"])
    run_id = f"plan-{uuid.uuid4().hex[:8]}"
    journal.start_run(run_id, text, kind="plan")
    graph.invoke({"run_id": run_id, "text": text, "data": data}, _config(run_id))
    values = graph.get_state(_config(run_id)).values
    journal.set_status(run_id, "planned")
    return {"run_id": run_id, "task": values["task"], "plan": values["plan"], "profile": values["profile"],
            "notices": notices(journal.events(run_id))}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _config(run_id: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": run_id}}




__all__ = ["Lifecycle", "RunView", "build_lifecycle_graph", "new_run_id", "plan_only"]
