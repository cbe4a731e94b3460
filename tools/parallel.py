"""Fits side by side: one fit per core, each on one thread, each in a worker process.

A search trains many small models, and a small model gains nothing from threads: on two cores, LightGBM's
300 rounds on 500 rows took 0.08 s on one thread and 1.3 s on two whose OpenMP threads wait passively
(``OMP_WAIT_POLICY=PASSIVE``, which poise sets because spinning threads are far worse beside any other
load); HistGradientBoosting's 100 rounds 0.14 s against 1.0 s. Two threads lost up to 100,000 rows.
The folds of a cross-validation are independent, so the cores go to fits side by side instead.

Python threads are not enough for that: HistGradientBoosting's rounds and a forest's trees are driven from
Python, and two such fits in threads of one process ran no faster than one after the other. Worker
processes do: ten fits on two cores took 0.6 times as long as on one, for LightGBM, HistGradientBoosting
and extra trees alike, from 500 to 5,000 rows, sending rows and fitted models both ways included.

The workers are loky's (joblib's process executor, which needs no ``if __name__ == "__main__"`` guard in the
caller's script), started the first time they are needed, or earlier by ``warm_up``, and kept while they
are busy. Each limits its libraries to one thread before loading them, and holds about 250 MB of its own
once they are loaded (torch included). On one core (or ``OMP_NUM_THREADS=1``) there are no workers: fits
run in this process, as a plain loop.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

R = TypeVar("R")

_THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                  "NUMEXPR_NUM_THREADS")
#: Idle workers end after this long; the next fits start new ones.
_IDLE_SECONDS = 300
_current: Any = None  # the executor last asked for (loky keeps one per process)


def cores() -> int:
    """The cores this process may run on, capped by ``OMP_NUM_THREADS`` when it is set (a user's or a
    scheduler's limit on how much of the machine poise may use)."""
    available = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    wanted = os.environ.get("OMP_NUM_THREADS", "")
    return max(1, min(int(wanted), available)) if wanted.isdigit() else available


def workers(fits: int) -> int:
    """How many of ``fits`` independent fits run side by side: one per core, no more than there are fits."""
    return min(cores(), fits)


def _start_worker() -> None:
    """In a new worker: the libraries every fit needs. A Ctrl-C reaches the whole process group; the worker
    leaves it to poise's process, which stops the search between waves of fits (``poise.stopping``), so the
    worker prints no traceback of its own."""
    import signal

    from joblib.externals.loky import process_executor

    from poise import processes

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # a worker idles until loky ends it; if poise's process is killed (kill -9 runs nothing there), it ends now
    processes.when_parent_gone(os.getppid(), lambda: os._exit(0))
    # loky ends a worker whose memory grew by 300 MB since its first task, taking it for a leak; a large table's
    # fit can do that, and the worker would be started again, and load its libraries again
    process_executor._USE_PSUTIL = False
    import lightgbm  # noqa: F401
    import sklearn.ensemble  # noqa: F401

    # the pipelines' parts (models, strategies, preprocessing) and torch, whose 1-2 s to load the clock would not see
    from poise.tools import compose, torch_mlp  # noqa: F401


def _executor(workers: int):  # noqa: ANN202  (loky's executor class is not public)
    global _current
    from joblib.externals.loky import get_reusable_executor

    _current = get_reusable_executor(workers, timeout=_IDLE_SECONDS, initializer=_start_worker,
                                     env=dict.fromkeys(_THREAD_LIMITS, "1"))
    return _current


def release() -> None:
    """End the workers now: they hold nothing between fits, and a process that exits with workers running
    waits for them to end (about 0.7 s on two cores). The next fits start new ones."""
    global _current
    if _current is not None:
        _current.shutdown(wait=False, kill_workers=True)
        _current = None


def warm_up(workers: int) -> None:
    """Start ``workers`` workers now, without waiting for them: their start-up and imports (a few seconds)
    then overlap the caller's own work instead of delaying the first fits."""
    if workers > 1:
        executor = _executor(workers)
        for _ in range(workers):
            executor.submit(int)


def run_all(fn: Callable[..., R], jobs: Iterable[tuple[Any, ...]], workers: int) -> list[R]:
    """``fn(*job)`` for each job, in order, in waves of ``workers`` side by side in worker processes (in this
    process, one after another, when ``workers`` is 1). ``fn`` and the jobs must pickle; the first error of any
    job is raised here (a worker that died, killed or out of memory, as ``TerminatedWorkerError``; the next call
    starts new workers)."""
    if workers <= 1:
        return [fn(*job) for job in jobs]
    executor, results, jobs = _executor(workers), [], iter(jobs)
    while wave := list(itertools.islice(jobs, workers)):  # jobs are drawn a wave at a time: a generator of
        futures: list[Future[R]] = [executor.submit(fn, *job) for job in wave]  # large ones stays small
        try:
            results.extend(future.result() for future in futures)
        finally:
            for future in futures:  # after an error in one, the others not yet started do not run
                future.cancel()
    return results
