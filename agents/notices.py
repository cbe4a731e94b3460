"""What poise changed, chose or did not understand on the way to a decision, for the person who decides.

The guardrails record every repair, and every number of the task text that was not used, in the
run's audit events. These functions turn those events into plain lines, so that every place a person
decides (the CLI's plan view, ``show``, ``approve``, a web console) shows the same thing the audit keeps.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import asdict, dataclass

from poise.contracts import AuditEvent

DECISION_STEPS = ("understand", "plan", "approve")


@dataclass(frozen=True)
class Notice:
    """One thing the person should know before approving: a repair, or words poise did not use."""

    step: str
    kind: str  # "repaired" | "not understood"
    text: str

    def line(self) -> str:
        return f"{self.step}: {self.kind}: {self.text}"

    def as_dict(self) -> dict[str, str]:
        return asdict(self)


def notices(events: Iterable[AuditEvent], steps: Iterable[str] = DECISION_STEPS) -> list[Notice]:
    """The repairs and the words not understood of ``events``, in the order they were recorded."""
    wanted = set(steps)
    found: list[Notice] = []
    for event in events:
        if event.step not in wanted:
            continue
        found += [Notice(event.step, "repaired", repair) for repair in event.repairs]
        found += [Notice(event.step, "not understood", f"{words!r} (poise did not use it; say it another way or "
                                                       "leave it out)") for words in event.not_understood]
    return found


def notice_lines(events: Iterable[AuditEvent], steps: Iterable[str] = DECISION_STEPS) -> list[str]:
    """The same notices as one line each, for a console."""
    return [notice.line() for notice in notices(events, steps)]
