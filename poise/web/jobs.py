"""Work the console starts in the background, and how far it has got.

Planning, training after an approval and recovery checks take seconds to minutes, so a request
only hands them to a worker thread and returns. The search reports its stages and trials
in-process (``pipelines.runtime.observing``); the console keeps the latest of them per run in
memory, and the pages poll it. Planning has a worker of its own so a new task is not stuck
behind a training; trainings run one at a time (the machine's cores are the search's).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the search (and Optuna) load with the first training
    from poise.tools.search import TrialRecord

log = logging.getLogger("poise.web")


@dataclass
class Progress:
    """What one run's background work has shown so far."""

    run_id: str
    job: str  # planning | training | recovery
    state: str = "queued"  # queued | working | done | failed
    stage: str | None = None
    trials: int = 0
    best_score: float | None = None
    strategy: str | None = None
    estimator: str | None = None
    search_elapsed: float | None = None
    budget_seconds: float | None = None
    error: str | None = None
    fix: str | None = None
    queued_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None

    @property
    def seconds_left(self) -> float | None:
        if self.budget_seconds is None or self.search_elapsed is None:
            return None
        return max(0.0, self.budget_seconds - self.search_elapsed)

    def as_dict(self) -> dict[str, Any]:
        return {**asdict(self), "seconds_left": self.seconds_left}


class Jobs:
    """Two single-thread workers (planning; training and recoveries) and the progress of each run."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._progress: dict[str, Progress] = {}
        self._planner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poise-plan")
        self._trainer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="poise-train")

    def progress(self, run_id: str) -> Progress | None:
        with self._lock:
            return self._progress.get(run_id)

    def busy(self, run_id: str) -> bool:
        found = self.progress(run_id)
        return found is not None and found.state in ("queued", "working")

    def submit(self, run_id: str, job: str, work: Callable[[], Any], budget_seconds: float | None = None) -> Progress:
        """Run ``work`` in the background, recording its stages and trials under ``run_id``."""
        progress = Progress(run_id, job, budget_seconds=budget_seconds)
        with self._lock:
            self._progress[run_id] = progress
        pool = self._planner if job == "planning" else self._trainer
        pool.submit(self._run, progress, work)
        return progress

    def _run(self, progress: Progress, work: Callable[[], Any]) -> None:
        from poise.errors import PoiseError
        from poise.pipelines.runtime import observing

        progress.state, progress.started_at = "working", time.time()
        try:
            with observing(on_stage=lambda name: self._stage(progress, name),
                           on_trial=lambda record: self._trial(progress, record)):
                work()
            progress.state = "done"
        except PoiseError as exc:
            progress.state, progress.error, progress.fix = "failed", exc.problem, exc.fix
        except Exception as exc:  # a background failure must reach the page, not vanish
            log.exception("background %s of run %s failed", progress.job, progress.run_id)
            progress.state, progress.error = "failed", f"{type(exc).__name__}: {exc}"
        finally:
            progress.finished_at = time.time()

    @staticmethod
    def _stage(progress: Progress, name: str) -> None:
        progress.stage = name

    @staticmethod
    def _trial(progress: Progress, record: TrialRecord) -> None:
        progress.trials = record.number + 1
        progress.best_score = record.best_score
        progress.strategy, progress.estimator = record.strategy, record.estimator
        progress.search_elapsed = record.elapsed

    def shutdown(self) -> None:
        self._planner.shutdown(wait=False, cancel_futures=True)
        self._trainer.shutdown(wait=False, cancel_futures=True)
