"""What the graphs keep in their checkpointed state, and the one typed way to read it back.

The state holds the contracts as JSON (``model_dump(mode="json")``), and ``Contracts`` validates
them as they are read. LangGraph's SQLite checkpointer could hold the pydantic objects themselves
(its serializer stores the class's import path and the field values), but it rebuilds an object
whose values no longer validate with ``model_construct``, that is unvalidated, and a class
missing from its allow-list as a plain dict. A checkpoint outlives the process and the version
of poise that wrote it (an approval may come days later, after an upgrade), and the contracts
promise that a malformed value is refused before it reaches an action; JSON read through
``Contracts`` keeps that promise and fails with a validation error that names the field. The same
JSON is what the CLI prints and the console shows.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal, TypedDict

from pydantic import BaseModel

from poise.contracts import Candidate, DataProfile, DriftReport, GateReport, Plan, RecoveryDecision, TaskSpec

#: A contract as the state keeps it: ``as_json(contract)``, read back through ``Contracts``.
ContractJson = dict[str, Any]


def as_json(contract: BaseModel) -> ContractJson:
    """A contract as the state keeps it."""
    return contract.model_dump(mode="json")


class Decision(TypedDict, total=False):
    """The answer to an approval: from a person (``Lifecycle.approve``/``reject``) or from the policy."""

    action: Literal["approve", "edit", "reject"]
    approver: str | None
    reason: str
    plan: ContractJson  # the edited plan, with "edit"


class Contracts:
    """The contracts of a graph's state (or of a run's values), validated as they are read.

    Each property raises ``KeyError`` when the run has not reached the step that writes it.
    """

    def __init__(self, values: Mapping[str, Any]) -> None:
        self.values = values

    @property
    def task(self) -> TaskSpec:
        return TaskSpec.model_validate(self.values["task"])

    @property
    def profile(self) -> DataProfile:
        return DataProfile.model_validate(self.values["profile"])

    @property
    def baseline(self) -> Plan:
        """The data-driven plan the Brain's plan was checked against."""
        return Plan.model_validate(self.values["baseline"])

    @property
    def plan(self) -> Plan:
        return Plan.model_validate(self.values["plan"])

    @property
    def candidate(self) -> Candidate:
        return Candidate.model_validate(self.values["candidate"])

    @property
    def gate(self) -> GateReport:
        return GateReport.model_validate(self.values["gate"])

    @property
    def report(self) -> DriftReport:
        return DriftReport.model_validate(self.values["report"])

    @property
    def recovery(self) -> RecoveryDecision:
        return RecoveryDecision.model_validate(self.values["recovery"])


__all__ = ["ContractJson", "Contracts", "Decision", "as_json"]
