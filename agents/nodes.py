"""What the nodes of both graphs share, and the approve → train → gate → deploy tail both graphs end with.

A lifecycle run and a recovery run differ in how they reach a plan (understand → profile → plan;
monitor → diagnose → recompose) and agree on what follows: a plan is approved (by a person or
the policy), trained, gated, and deployed only when it passed. ``add_approval_tail`` wires that
tail once; each graph's node class says what its own approve, train and gate do, and both deploy
the same way. Every node marks the run's status while it runs and writes an audit event.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from poise.agents.audit import AWAITING_APPROVAL, Journal
from poise.agents.brain import Brain, Thought
from poise.agents.state import Contracts
from poise.contracts import AuditEvent
from poise.settings import Settings

if TYPE_CHECKING:  # langgraph loads with the first graph, not with this module
    from langgraph.graph import StateGraph

State = Mapping[str, Any]
S = TypeVar("S", bound=State)  # the graph's own state (a TypedDict)


def add_approval_tail(graph: StateGraph, nodes: GraphNodes) -> None:
    """approve → train → gate → deploy: a rejected plan ends at approve, a failed gate ends at gate."""
    from langgraph.graph import END

    graph.add_node("approve", nodes.step(AWAITING_APPROVAL, nodes.approve))
    graph.add_node("train", nodes.step("training", nodes.train))
    graph.add_node("gate", nodes.step("gating", nodes.gate))
    graph.add_node("deploy", nodes.step("deploying", nodes.deploy))
    graph.add_conditional_edges("approve", lambda s: "train" if s["decision"]["action"] != "reject" else END,
                                ["train", END])
    graph.add_edge("train", "gate")
    graph.add_conditional_edges("gate", lambda s: "deploy" if s["gate"]["passed"] else END, ["deploy", END])
    graph.add_edge("deploy", END)


class GraphNodes(ABC, Generic[S]):
    """The node bodies of one graph: the tail's approve, train and gate are each graph's own; deploy is shared."""

    def __init__(self, brain: Brain, journal: Journal, settings: Settings) -> None:
        self.brain, self.journal, self.settings = brain, journal, settings

    def step(self, status: str, node: Callable[[S], dict[str, Any]]) -> Callable[[S], dict[str, Any]]:
        """Mark the run's status while ``node`` runs, and as failed if it raises."""

        def run(state: S) -> dict[str, Any]:
            self.journal.set_status(state["run_id"], status)
            try:
                return node(state)
            except Exception as exc:
                from langgraph.errors import GraphInterrupt

                if not isinstance(exc, GraphInterrupt):  # waiting for a person is not a failure
                    self.journal.set_status(state["run_id"], "failed", f"{status}: {exc}"[:1000])
                raise

        run.__name__ = node.__name__
        return run

    @abstractmethod
    def approve(self, state: S) -> dict[str, Any]:
        """The plan's approval; returns ``{"decision": Decision, ...}``."""

    @abstractmethod
    def train(self, state: S) -> dict[str, Any]:
        """Train and register the approved plan's candidate; returns at least ``{"candidate": ...}``."""

    @abstractmethod
    def gate(self, state: S) -> dict[str, Any]:
        """Judge the candidate; the state's ``gate`` (a GateReport) holds the verdict once it returns."""

    def deploy(self, state: State) -> dict[str, Any]:
        """The approved plan's gates passed: promotion follows (the deploy flow)."""
        from poise.pipelines.deploy import deploy_flow

        saved = Contracts(state)
        candidate = saved.candidate
        outcome = deploy_flow(candidate.model_name, candidate.version, saved.gate)
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

    def _audit(self, state: State, step: str, thought: Thought | None, summary: str,
               **fields: Any) -> None:  # noqa: ANN401 - AuditEvent's own fields, validated by the contract
        repairs = list(fields.pop("repairs", []))
        if thought is not None and thought.fallback_reason:
            repairs.insert(0, f"answered by the rules: {thought.fallback_reason}")
        self.journal.record(AuditEvent(
            run_id=state["run_id"], step=step, mind=fields.pop("mind", thought.mind if thought else "rules"),
            summary=summary, repairs=repairs,
            latency_seconds=None if thought is None else round(thought.latency_seconds, 4),
            tokens=None if thought is None else thought.tokens, **fields,
        ))

    def _log_audit(self, state: State) -> None:
        """Keep the run's audit trail beside the model it produced."""
        from poise.registry.tracking import log_json

        run_id = state.get("candidate", {}).get("run_id")
        if run_id:
            log_json(run_id, "audit.json", self.journal.events(state["run_id"]))


__all__ = ["GraphNodes", "add_approval_tail"]
