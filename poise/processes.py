"""Child processes and the ports they listen on: start one in a group of its own, wait until it answers,
stop it and everything it spawned.

The same few moves serve poise's own local Prefect server, the demo's model server, the benchmarks
and the tests, so they live here once. A ground module: only the standard library, no other part of
poise, so that any layer may import it.

A process started with :func:`start` leads a process group of its own (its own session): a Ctrl-C at
the terminal reaches the caller, not the child in the middle of its work, and :func:`stop` can reach
the grandchildren the child started too.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")


def free_port(host: str = "127.0.0.1") -> int:
    """A port nobody listens on at this moment (the caller's server binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((host, 0))
        return int(probe.getsockname()[1])


def start(command: Sequence[str], *, log: Path | None = None, env: dict[str, str] | None = None,
          cwd: Path | str | None = None, **popen: Any) -> subprocess.Popen:  # noqa: ANN401 - Popen's own options
    """Start ``command`` leading a process group of its own; stdout and stderr appended to ``log``
    (a file, never a pipe nobody reads: a full pipe stalls the child), or discarded."""
    if log is not None:
        log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") if log is not None else contextlib.nullcontext(subprocess.DEVNULL) as sink:
        return subprocess.Popen(list(command), stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT,
                                env=env, cwd=cwd, start_new_session=True, **popen)


def stop(process: subprocess.Popen, grace: float = 10.0, group: bool | None = None) -> int | None:
    """SIGTERM, up to ``grace`` seconds to end, then SIGKILL; returns the exit code.

    A process that leads its own group (:func:`start`, ``start_new_session=True``) is stopped with its
    whole group, and what is left of the group once it has ended is killed: a grandchild must not
    outlive the command that started it. ``group`` says whether it leads one; by default that is
    asked of the system, which can only tell while the process has not been waited for.
    """
    if group is None:
        group = _leads_group(process)
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if process.poll() is not None:
            break
        _send(process, sig, group)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            continue
    if group:
        _send(process, signal.SIGKILL, group)
    return process.returncode


def _leads_group(process: subprocess.Popen) -> bool:
    if process.returncode is not None:  # waited for: its pid may belong to another process by now
        return False
    try:
        return os.getpgid(process.pid) == process.pid
    except ProcessLookupError:
        return False


def _send(process: subprocess.Popen, sig: int, group: bool) -> None:
    try:
        if group:
            os.killpg(process.pid, sig)
        elif process.poll() is None:
            process.send_signal(sig)
    except (ProcessLookupError, PermissionError):  # gone already (a group with no member left)
        pass


def when_parent_gone(parent: int, action: Callable[[], object], interval: float = 0.5) -> bool:
    """In a child process: call ``action`` (on a daemon thread) once its parent ``parent`` is gone, however it
    ended (a ``kill -9`` runs nothing in the parent, so the child must notice by itself). Returns False, and
    starts nothing, when the parent is gone already."""
    import threading

    if os.getppid() != parent:
        return False

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        action()

    threading.Thread(target=watch, daemon=True, name="watch-parent").start()
    return True


def wait_for(condition: Callable[[], T], *, timeout: float, interval: float = 0.05,
             what: str = "the condition") -> T:
    """Call ``condition`` until it returns something true, and return that; ``TimeoutError`` past ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} did not happen within {timeout:g} s")
        time.sleep(interval)


def answers(url: str, timeout: float = 2.0) -> bool:
    """Whether a GET of ``url`` answers 200 right now (proxies from the environment are not used)."""
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, OSError):
        return False


def wait_for_http(url: str, *, timeout: float, process: subprocess.Popen | None = None, log: Path | None = None,
                  interval: float = 0.2) -> float:
    """Block until a GET of ``url`` answers 200; returns the seconds it took.

    ``ChildProcessError`` when ``process`` ends first, ``TimeoutError`` past ``timeout`` s; both carry
    the end of ``log`` when one is given.
    """
    started = time.monotonic()

    def ready() -> bool:
        if process is not None and process.poll() is not None:
            raise ChildProcessError(f"the process serving {url} exited with code {process.returncode}"
                                    + _tail(log))
        return answers(url)

    try:
        wait_for(ready, timeout=timeout, interval=interval, what=f"an answer from {url}")
    except TimeoutError as exc:
        raise TimeoutError(f"{exc}{_tail(log)}") from None
    return time.monotonic() - started


def _tail(log: Path | None, lines: int = 20) -> str:
    if log is None:
        return ""
    try:
        return ":\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


__all__ = ["answers", "free_port", "start", "stop", "wait_for", "wait_for_http"]
