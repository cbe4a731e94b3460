"""Helpers the benchmark scripts share: console notes, machine facts and load, the poise executable,
and running a child process with a hard time limit.

The benchmark drivers run in poise's venv (peers.py, which runs in a peer's own venv, imports nothing
from here): processes are started and stopped with ``poise.processes``, the machine is read with psutil.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from poise import processes


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def machine_info() -> dict[str, str]:
    """The facts a reader needs to weigh timings: CPU model, cores this process may use, memory, Python."""
    import psutil

    process = psutil.Process()
    cores = len(process.cpu_affinity()) if hasattr(process, "cpu_affinity") else psutil.cpu_count()
    return {"cpu": cpu_model(), "cores": str(cores),
            "memory": f"{psutil.virtual_memory().total / 2**30:.0f} GiB",
            "python": platform.python_version(), "os": f"{platform.system()} {platform.release()}"}


def cpu_model() -> str:
    """The CPU's model name: psutil does not report it, so Linux's /proc/cpuinfo, else what platform knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def machine_busy_seconds() -> float:
    """CPU seconds every process on the machine has spent so far, all cores (idle and iowait excluded)."""
    import psutil

    times = psutil.cpu_times()._asdict()
    return sum(times.get(kind, 0.0) for kind in ("user", "nice", "system", "irq", "softirq", "steal"))


def cpu_seconds(pid: int | None = None) -> float:
    """User + system CPU seconds a process (all its threads; this one by default) has spent so far."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


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
            processes.stop(proc, group=True)  # also whatever it left running behind it
    return Finished(code, seconds, timed_out)
