"""The user's time budget covers the whole command, not only the search.

``poise train --budget B`` promises to end, from process start to exit, within
``B × 1.10 + 10 s``. The search cannot know what comes after it, so the training flow
computes a deadline for search and refit: it aims to end the command at ``B × 1.05 + 5 s``
(half the tolerance, the other half absorbs mispredictions) and takes off the predicted cost
of what follows the refit (holdout scoring, registration, gates, promotion, exit). The fixed
costs before the search (start-up, data, profile, derived-feature judging) are already spent
when the deadline is computed, so they come out of the search's share by themselves.

The tail cost is predicted from the size of the data and from what the last training on this
installation took (kept in ``POISE_HOME/timing.json``), so a slow disk or a busy machine is
accounted for after one run.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

#: The promise: the whole command ends within budget × SLACK_FACTOR + SLACK_SECONDS.
SLACK_FACTOR, SLACK_SECONDS = 1.10, 10.0
#: Where the flow aims to end: half of the tolerance, so a misprediction still keeps the promise.
AIM_FACTOR, AIM_SECONDS = 1.05, 5.0

#: Measured on 2 cores with AI4I (10,000 rows; see tests/test_budget.py), on a busy machine: holdout
#: scoring and reference rows 0.4 s, registration (log_model, version, alias) 1.5 s, gates 0.7 s,
#: promotion and telling the servers 1.5 s, Prefect's flow teardown and the process exit 1 s.
TAIL_SECONDS = 5.0
#: Of which Prefect's flow teardown and the process exit, which the process cannot time itself.
EXIT_SECONDS = 2.0
#: Scoring, writing the reference rows and logging the model grow with the table's cells.
TAIL_SECONDS_PER_MILLION_CELLS = 4.0
#: Below this, judging is skipped: its baseline cross-validation alone takes about 1 s on AI4I.
MIN_JUDGING_SECONDS = 2.0


def process_started() -> float:
    """The ``time.monotonic()`` instant this process started (interpreter start-up included)."""
    import psutil

    return time.monotonic() - max(time.time() - psutil.Process().create_time(), 0.0)


def allowed_seconds(budget: float) -> float:
    """The longest the whole command may take for ``budget``."""
    return budget * SLACK_FACTOR + SLACK_SECONDS


def predicted_tail_seconds(rows: int, columns: int, home: Path | None = None) -> float:
    """Seconds from the end of the refit to the end of the process, for a table of this size."""
    model = TAIL_SECONDS + TAIL_SECONDS_PER_MILLION_CELLS * rows * columns / 1e6
    observed = _observed_tail(home)
    return model if observed is None else max(model, 0.5 * (model + observed))


def search_deadline(started: float, budget: float, tail: float) -> float:
    """The ``time.monotonic()`` instant search and refit must be done by, the clock having started at ``started``."""
    return started + budget * AIM_FACTOR + AIM_SECONDS - tail


def remember_tail(home: Path, seconds: float) -> None:
    """Keep what the tail took on this installation, for the next prediction."""
    try:
        (home / "timing.json").write_text(json.dumps({"tail_seconds": round(seconds, 2)}))
    except OSError:
        pass  # a read-only home costs the next run its calibration, nothing more


def _observed_tail(home: Path | None) -> float | None:
    if home is None:
        return None
    try:
        return float(json.loads((home / "timing.json").read_text())["tail_seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None


@dataclass
class Timing:
    """Where a training's seconds went, counted from ``started`` (a ``time.monotonic()`` instant)."""

    started: float = field(default_factory=time.monotonic)
    budget: float | None = None
    seconds: dict[str, float] = field(default_factory=dict)

    @contextmanager
    def part(self, name: str) -> Iterator[None]:
        tick = time.monotonic()
        try:
            yield
        finally:
            self.add(name, time.monotonic() - tick)

    def add(self, name: str, seconds: float) -> None:
        self.seconds[name] = self.seconds.get(name, 0.0) + seconds

    def report(self) -> dict[str, float | None]:
        """The split a user sees, until now: each part, the rest as overhead, the total and the budget."""
        total = time.monotonic() - self.started
        parts = {k: round(self.seconds.get(k, 0.0), 2) for k in ("search", "refit", "evaluation", "registration")}
        return {**parts, "overhead": round(max(total - sum(parts.values()), 0.0), 2), "total": round(total, 2),
                "budget": self.budget}
