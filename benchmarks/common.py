"""Helpers the benchmark scripts share: console notes, machine facts, the poise executable, and
running a child process with a hard time limit.

Only the standard library, so any benchmark (and any interpreter, e.g. a peer's own venv) can import it.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, str]:
    """The facts a reader needs to weigh timings: CPU model, cores this process may use, memory, Python."""
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = "?"
    try:
        kib = int(Path("/proc/meminfo").read_text().split("MemTotal:", 1)[1].split()[0])
        memory = f"{kib / 2**20:.0f} GiB"
    except (OSError, IndexError, ValueError):
        pass
    return {"cpu": cpu, "cores": str(len(os.sched_getaffinity(0))), "memory": memory,
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def poise_executable() -> str:
    """The ``poise`` script beside the running interpreter (its venv), else the one on PATH."""
    beside = Path(sys.executable).parent / "poise"
    found = str(beside) if beside.exists() else shutil.which("poise")
    if not found:
        raise SystemExit("cannot find the poise executable (run with the venv's python)")
    return found


@dataclass
class Finished:
    returncode: int | None  # None when it was killed for running past its limit
    seconds: float
    timed_out: bool


def stop_group(proc: subprocess.Popen, grace: float = 10.0) -> None:
    """Stop a child started with ``start_new_session=True`` and everything it spawned: TERM, then KILL."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, None)):
        if proc.poll() is not None:
            break
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
        except subprocess.TimeoutExpired:
            continue
    # the leader may be gone while a grandchild of its group lingers
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def run_bounded(command: list[str], *, limit: float, log: Path, stdout: Path | None = None,
                env: dict[str, str] | None = None, cwd: Path | None = None) -> Finished:
    """Run ``command`` in its own process group, stderr to ``log`` (stdout too unless ``stdout`` is given);
    kill the group past ``limit`` s.

    The seconds are the wall time of the whole process, start-up and imports included.
    """
    started = time.monotonic()
    with open(log, "wb") as err, open(stdout or os.devnull, "wb") as out:
        proc = subprocess.Popen(command, stdout=out if stdout else err, stderr=err, stdin=subprocess.DEVNULL,
                                env=env, cwd=cwd, start_new_session=True)
        try:
            code: int | None = proc.wait(timeout=limit)
            timed_out = False
        except subprocess.TimeoutExpired:
            code, timed_out = None, True
        finally:
            seconds = time.monotonic() - started
            stop_group(proc)  # also whatever it left running behind it
    return Finished(code, seconds, timed_out)
