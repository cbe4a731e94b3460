"""The audit trail and the list of runs, in SQLite under ``POISE_HOME``.

Every decision of a run (what the task is, the plan, who approved it, the gate) is an
``AuditEvent`` row: which mind made it (an LLM by model name, or the rules), what evidence
it saw, what it decided, what the guardrails repaired, how long it took, who approved.
The ``runs`` table is the index ``poise runs`` shows.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from poise.contracts import AuditEvent

#: A run's status while it waits for a person's answer (``poise approve`` / ``poise reject``).
AWAITING_APPROVAL = "awaiting approval"
#: The statuses a run ends in: nothing is left to resume.
FINISHED = ("deployed", "not deployed", "gated out", "rejected", "no action", "kept as challenger")
#: The kind of a recovery run (a lifecycle run's kind is the default, "lifecycle"; ``poise plan``'s is "plan").
RECOVERY = "recovery"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL DEFAULT 'lifecycle',
    text TEXT NOT NULL,
    status TEXT NOT NULL,
    detail TEXT NOT NULL DEFAULT '',
    model TEXT,
    version TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at TEXT NOT NULL,
    event TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_run ON audit (run_id, id);
"""


class Journal:
    """Runs and their audit events in one SQLite file."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        db = sqlite3.connect(self.path, timeout=30)
        try:
            with db:  # one transaction: committed on success, rolled back on error
                yield db
        finally:
            db.close()

    # ------------------------------------------------------------------ runs
    def start_run(self, run_id: str, text: str, kind: str = "lifecycle") -> None:
        now = _now()
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, kind, text, status, created_at, updated_at) "
                "VALUES (?, ?, ?, 'started', ?, ?)",
                (run_id, kind, text, now, now),
            )

    def set_status(self, run_id: str, status: str, detail: str = "", model: str | None = None,
                   version: str | None = None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status = ?, detail = ?, model = COALESCE(?, model), "
                "version = COALESCE(?, version), updated_at = ? WHERE run_id = ?",
                (status, detail, model, version, _now(), run_id),
            )

    def runs(self, limit: int = 100) -> list[dict[str, Any]]:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            rows = db.execute("SELECT * FROM runs ORDER BY created_at DESC LIMIT ?", (limit,)).fetchall()
        return [dict(row) for row in rows]

    def run(self, run_id: str) -> dict[str, Any] | None:
        with self._connect() as db:
            db.row_factory = sqlite3.Row
            row = db.execute("SELECT * FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if row is None:  # a unique prefix is enough
                rows = db.execute("SELECT * FROM runs WHERE run_id LIKE ?", (run_id + "%",)).fetchall()
                row = rows[0] if len(rows) == 1 else None
        return dict(row) if row else None

    # ------------------------------------------------------------------ audit
    def record(self, event: AuditEvent) -> AuditEvent:
        with self._connect() as db:
            db.execute("INSERT INTO audit (run_id, at, event) VALUES (?, ?, ?)",
                       (event.run_id, event.at.isoformat(), event.model_dump_json()))
        return event

    def events(self, run_id: str) -> list[AuditEvent]:
        with self._connect() as db:
            rows = db.execute("SELECT event FROM audit WHERE run_id = ? ORDER BY id", (run_id,)).fetchall()
        return [AuditEvent.model_validate(json.loads(row[0])) for row in rows]


def record_by_hand(journal: Journal, action: str, summary: str, *, model: str, version: str,
                   approver: str, output: dict[str, Any] | None = None) -> str:
    """A person's own move (a promotion or a rollback from the CLI) as a one-step run of its own."""
    import uuid

    run_id = uuid.uuid4().hex[:12]
    journal.start_run(run_id, f"{action} {model} v{version}", kind=action)
    journal.record(AuditEvent(run_id=run_id, step=action, mind="person", summary=summary, approver=approver,
                              output=output or {}))
    journal.set_status(run_id, "done", summary, model=model, version=version)
    return run_id


def who() -> str:
    """The user name of this process, for the audit trail."""
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no user name in some containers
        return "unknown"


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
