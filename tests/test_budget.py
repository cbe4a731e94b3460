"""The whole `poise train` command, from process start to exit, fits the user's budget.

The promise (``poise.pipelines.budget``): the command ends within budget × 1.10 + 10 s on an
idle machine with 2 cores, or pinned to one (``taskset -c 0``), on an installation that has run
before: the first command on a fresh POISE_HOME also creates Prefect's database (its migrations
took 20 s at load 2 on 2 cores), so the test creates the stores first, as any earlier command would.

Margin: the machine may be shared, and a process that gets a fifth of a core runs five times
slower whatever poise does (start-up, which is many processes and disk writes, suffers more).
So the limit is scaled by the slowdown measured around the run: the larger of the load average
per core and the wall time over the CPU time of a fixed pure-Python loop pinned to the same cores
as the command (both 1.0 on an idle machine, where the check is the promise itself), plus 5 s
for the measurement's own noise. On a machine busier than MAX_SLOWDOWN the test is skipped:
there a wall-time promise says nothing about poise (measured on a machine shared by six builds,
load 9-15 on 2 cores: 168-224 s for a 20 s budget, mostly the local Prefect server's start-up).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time

import pytest

from poise.pipelines import budget
from tests.conftest import AI4I

POISE = [sys.executable, "-m", "poise.cli.main"]
BUDGET = 20.0
NOISE_SECONDS = 5.0
MAX_SLOWDOWN = 2.0


def _slowdown(cores: set[int] | None) -> float:
    """How much slower than on an idle machine work runs now, on ``cores`` (≥ 1)."""
    load = os.getloadavg()[0] / len(cores or os.sched_getaffinity(0))
    return max(load, _loop_slowdown(cores))


def _loop_slowdown(cores: set[int] | None) -> float:
    """How much slower than an idle core a single Python thread runs now, on ``cores`` (≥ 1)."""
    before = os.sched_getaffinity(0)
    if cores:
        os.sched_setaffinity(0, cores)
    try:
        wall, cpu = time.perf_counter(), time.process_time()
        total = 0
        for i in range(3_000_000):
            total += i * i
        return max((time.perf_counter() - wall) / max(time.process_time() - cpu, 1e-3), 1.0)
    finally:
        os.sched_setaffinity(0, before)


CREATE_STORES = ("from poise.settings import get_settings; from poise.pipelines import runtime; "
                 "from poise.registry import tracking; s = get_settings(); runtime.start_prefect_server(s.home); "
                 "tracking.connect(s); runtime.wait_for_prefect_server()")


def _train(tmp_path, prefix: list[str], cores: set[int] | None) -> tuple[float, dict, float]:
    env = {**os.environ, "POISE_HOME": str(tmp_path / "home"), "PREFECT_HOME": str(tmp_path / "home" / "prefect")}
    env.pop("PREFECT_API_URL", None)
    subprocess.run([sys.executable, "-c", CREATE_STORES], env=env, check=True, timeout=600)
    slow_before = _slowdown(cores)
    if slow_before > MAX_SLOWDOWN:
        pytest.skip(f"the machine is too busy to check a wall-time promise (slowdown {slow_before:.1f})")
    started = time.monotonic()
    done = subprocess.run([*prefix, *POISE, "train", str(AI4I), "--target", "target", "--budget", str(BUDGET),
                           "--json"], capture_output=True, text=True, env=env, timeout=900)
    wall = time.monotonic() - started
    slowdown = (slow_before + _slowdown(cores)) / 2
    assert done.returncode == 0, done.stderr
    return wall, json.loads(done.stdout), slowdown


CORES = [pytest.param([], None, id="all-cores")]
if shutil.which("taskset") and 0 in os.sched_getaffinity(0):
    CORES.append(pytest.param(["taskset", "-c", "0"], {0}, id="one-core"))


@pytest.mark.slow
@pytest.mark.parametrize(("prefix", "cores"), CORES)
def test_train_ends_within_its_budget(tmp_path, prefix, cores):
    wall, result, slowdown = _train(tmp_path, prefix, cores)
    limit = budget.allowed_seconds(BUDGET) * slowdown + NOISE_SECONDS
    timing = result["timing"]
    assert wall <= limit, f"{wall:.1f} s > {limit:.1f} s (slowdown {slowdown:.2f}); split: {timing}"
    # the split the user sees adds up and is measured inside the command's own wall time
    assert set(timing) == {"search", "refit", "evaluation", "registration", "overhead", "total", "budget"}
    assert timing["budget"] == BUDGET
    assert timing["search"] > 0 and timing["registration"] > 0
    parts = sum(timing[k] for k in ("search", "refit", "evaluation", "registration", "overhead"))
    assert parts == pytest.approx(timing["total"], abs=0.1)
    assert timing["total"] <= wall
