"""Running the graphs: start, approve, reject and resume runs, and plan without running (``poise plan``).

A run is a thread of a graph's checkpoints in SQLite under ``POISE_HOME`` and a row of the
journal (its status and audit trail); ``Lifecycle`` drives both graphs through that one store,
so any process (the CLI, the console, a scheduled monitor) can answer a run another started.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from poise.agents.audit import AWAITING_APPROVAL, FINISHED, RECOVERY, Journal, who
from poise.agents.brain import Brain, configured_brain
from poise.agents.lifecycle_graph import LifecycleState, build_lifecycle_graph
from poise.agents.recovery_graph import RecoveryState, build_recovery_graph
from poise.agents.state import Contracts, Decision, as_json
from poise.contracts import Plan, TaskSpec
from poise.settings import Settings, get_settings

if TYPE_CHECKING:  # langgraph loads with the first Lifecycle, not with this module
    from langchain_core.runnables import RunnableConfig
    from langgraph.graph.state import CompiledStateGraph
    from langgraph.types import Command


@dataclass
class RunView:
    """Where a run stands, for the CLI and the console."""

    run_id: str
    status: str
    values: dict[str, Any]  # the graph's state: contracts as JSON, read typed through ``contracts``
    pending: dict[str, Any] | None  # the interrupt payload while awaiting approval

    @property
    def contracts(self) -> Contracts:
        return Contracts(self.values)

    @property
    def task(self) -> TaskSpec | None:
        return self.contracts.task if "task" in self.values else None

    @property
    def plan(self) -> Plan | None:
        return self.contracts.plan if "plan" in self.values else None


class Lifecycle:
    """Start, approve, reject and resume runs of the lifecycle graph, and check models for drift (recoveries)."""

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
        self._recovery_graph: CompiledStateGraph | None = None  # built on a recovery's first use

    def _graph_of(self, run_id: str) -> CompiledStateGraph:
        """The graph a run belongs to (recoveries have their own)."""
        row = self.journal.run(run_id)
        if row is None or row["kind"] != RECOVERY:
            return self.graph
        if self._recovery_graph is None:
            self._recovery_graph = build_recovery_graph(self.brain, self.journal, self.settings, self.checkpointer)
        return self._recovery_graph

    def recover(self, model: str, current: str | None = None, window: int | None = None,
                budget_seconds: float | None = None, run_id: str | None = None) -> RunView:
        """Check ``model`` for drift and, when the policy says act, recover (the recovery graph).

        ``run_id`` lets a caller that works in the background (the console) know the run before it starts.
        """
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
        decision: Decision = {"action": "edit" if plan else "approve", "approver": approver or who()}
        if plan is not None:
            self.check_edit(run_id, plan)  # a bad edit is refused here, and the run keeps waiting
            decision["plan"] = as_json(plan)
        return self._answer(run_id, decision)

    def check_edit(self, run_id: str, plan: Plan) -> tuple[Plan, list[str]]:
        """An edited plan for a waiting run, checked as the approval will check it: (plan, repairs)."""
        from poise.agents.guardrails import check_plan
        from poise.errors import PoiseError

        view = self.view(run_id)
        if view.pending is None:
            raise PoiseError(f"run {view.run_id} is not waiting for approval (it is {view.status})",
                             f"see poise show {view.run_id}")
        saved = view.contracts
        return check_plan(plan, task=saved.task, profile=saved.profile, baseline=saved.baseline,
                          settings=self.settings, edited=True)

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

    def _answer(self, run_id: str, decision: Decision) -> RunView:
        from langgraph.types import Command

        from poise.errors import PoiseError

        view = self.view(run_id)
        if view.pending is None:
            raise PoiseError(f"run {view.run_id} is not waiting for approval (it is {view.status})",
                             f"see poise show {view.run_id}")
        return self._invoke(view.run_id, Command(resume=decision))

    def _invoke(self, run_id: str, payload: LifecycleState | RecoveryState | Command | None) -> RunView:
        """Run the graph from ``payload`` (a new state, a person's answer, or None: from the last checkpoint)."""
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
    state: LifecycleState = {"run_id": run_id, "text": text, "data": data}
    graph.invoke(state, _config(run_id))
    values = graph.get_state(_config(run_id)).values
    journal.set_status(run_id, "planned")
    return {"run_id": run_id, "task": values["task"], "plan": values["plan"], "profile": values["profile"],
            "notices": notices(journal.events(run_id))}


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


def _config(run_id: str) -> RunnableConfig:
    return {"configurable": {"thread_id": run_id}}


__all__ = ["Lifecycle", "RunView", "new_run_id", "plan_only"]
