"""A user's request to stop (Ctrl-C, SIGTERM), honoured where it leaves nothing half-done.

Commands run under ``handle_signals()``. A SIGINT or SIGTERM raises ``Stopped`` at once, like
Python's own Ctrl-C, except inside ``at_safe_points()`` blocks (a training's search,
registration and gates): there it only sets a flag, and the work checks it where stopping is
safe, with ``is_stopping()`` or ``check()`` (the search between folds and trials, the training
flow between its steps). A second signal stops whatever runs, at once.

``Stopped`` derives from ``KeyboardInterrupt``, so libraries that clean up after a Ctrl-C
(Optuna marks the running trial failed, Prefect marks the flow run crashed) do so for it too,
and ``except Exception`` blocks do not swallow it.

This module imports nothing heavy: ``poise.tools`` may call ``is_stopping()``.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType


class Stopped(KeyboardInterrupt):
    """The user asked to stop. ``message`` is the one line the command prints: what the work left behind."""

    def __init__(self, signum: int, message: str = "stopped") -> None:
        super().__init__(signum)
        self.signum = signum
        self.message = message

    @property
    def exit_code(self) -> int:
        """The shell's convention: 128 + the signal number (130 for SIGINT, 143 for SIGTERM)."""
        return 128 + self.signum


_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_requested: list[int] = []  # the signals received, in order
_deferring = 0  # depth of at_safe_points() blocks the main thread is in
_handling = False  # whether handle_signals() is active


def request_stop(signum: int = signal.SIGINT) -> None:
    """Ask the running work to stop at its next safe point (what a signal does inside ``at_safe_points``)."""
    _requested.append(signum)


def is_stopping() -> bool:
    """Whether a stop was asked for: long loops check this between their steps."""
    return bool(_requested)


def check() -> None:
    """Raise ``Stopped`` when a stop was asked for (call it at a safe point)."""
    if _requested:
        raise Stopped(_requested[0])


@contextmanager
def at_safe_points() -> Iterator[None]:
    """Work that must not be cut mid-step: inside, a first signal waits for the next ``check()``.

    Under ``handle_signals()`` the block also takes the signals back from a library that took them
    (a Prefect flow run turns SIGTERM into an immediate exception of its own).
    """
    global _deferring
    check()
    own = _handling and threading.current_thread() is threading.main_thread()
    previous = {s: signal.signal(s, _on_signal) for s in _SIGNALS} if own else {}
    _deferring += 1
    try:
        yield
    finally:
        _deferring -= 1
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _requested.append(signum)
    if _deferring == 0 or len(_requested) > 1:
        raise Stopped(_requested[0])


@contextmanager
def handle_signals() -> Iterator[None]:
    """Turn SIGINT and SIGTERM into ``Stopped`` while the block runs (main thread only; elsewhere a no-op)."""
    global _handling
    if threading.current_thread() is not threading.main_thread() or _handling:
        yield
        return
    previous = {s: signal.signal(s, _on_signal) for s in _SIGNALS}
    _handling = True
    try:
        yield
    finally:
        _handling = False
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        _requested.clear()
