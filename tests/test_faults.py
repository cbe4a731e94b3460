"""Faults end cleanly: Ctrl-C, SIGTERM and kill -9 of a real `poise train`.

Each test runs the real command in a subprocess with its own POISE_HOME, on a small synthetic
table, and waits until the search has logged its first trial before sending the signal.

Margins (the machine is shared, timings are noisy): a stop must end the process within
STOP_SECONDS = 60 s of the signal. In the search it takes a few seconds (the next fold, closing
the MLflow run, stopping the local Prefect server: 2-5 s idle); a signal that lands while a version
is being registered waits for the registration (measured 21-24 s from the signal to exit on a
machine at load 10 on 2 cores, registration alone 10-13 s there).
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import psutil
import pytest

from poise.processes import wait_for

POISE = [sys.executable, "-m", "poise.cli.main"]
STOP_SECONDS = 60.0
#: Start-up to first trial: imports, the local Prefect server, profile and feature judging (slow when busy).
FIRST_TRIAL_SECONDS = 400.0


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 3000
    frame = pd.DataFrame(rng.normal(size=(n, 6)), columns=[f"x{i}" for i in range(6)])
    logit = 2 * frame.x0 - frame.x1 + 0.5 * frame.x2 - 4
    frame["target"] = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(int)
    path = tmp_path / "faults.csv"
    frame.to_csv(path, index=False)
    return path


def _start_training(table: Path, home: Path, budget: int = 120) -> subprocess.Popen:
    env = {**os.environ, "POISE_HOME": str(home), "PREFECT_HOME": str(home / "prefect")}
    env.pop("PREFECT_API_URL", None)
    # its own session, like a shell job: a group signal reaches poise and what runs in its group
    return subprocess.Popen([*POISE, "train", str(table), "--target", "target", "--budget", str(budget), "--json"],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)


def _runs(home: Path, kind: str) -> list[tuple[str, str]]:
    """(run id, status) of the MLflow runs tagged poise.kind = kind, read straight from the store."""
    db = home / "mlflow.db"
    if not db.exists():
        return []
    try:
        with sqlite3.connect(db, timeout=5) as con:
            return con.execute("select r.run_uuid, r.status from runs r join tags t on t.run_uuid = r.run_uuid "
                               "where t.key = 'poise.kind' and t.value = ?", (kind,)).fetchall()
    except sqlite3.OperationalError:  # the store's tables are not created yet
        return []


def _aliases(home: Path) -> list[tuple[str, str, str]]:
    """(model, alias, version) of every alias in the registry, read straight from the store."""
    with sqlite3.connect(home / "mlflow.db", timeout=5) as con:
        return con.execute("select name, alias, version from registered_model_aliases").fetchall()


def _wait_for_first_trial(process: subprocess.Popen, home: Path) -> None:
    until = time.monotonic() + FIRST_TRIAL_SECONDS
    while not _runs(home, "trial"):
        if process.poll() is not None:
            raise AssertionError(f"poise train ended before its search began:\n{process.stderr.read()}")
        assert time.monotonic() < until, "the search never logged a trial"
        time.sleep(0.5)


def _family(pid: int) -> list[psutil.Process]:
    return [psutil.Process(pid), *psutil.Process(pid).children(recursive=True)]


def _running(process: psutil.Process) -> bool:
    try:
        return process.is_running() and process.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.slow
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_a_signal_stops_a_training_cleanly(table, tmp_path, signum):
    home = tmp_path / "home"
    process = _start_training(table, home)
    try:
        _wait_for_first_trial(process, home)
        family = _family(process.pid)
        assert len(family) >= 2, "poise should run its own local Prefect server"
        sent = time.monotonic()
        # a terminal's Ctrl-C reaches the whole foreground group; SIGTERM comes from `kill PID`
        os.killpg(process.pid, signum) if signum == signal.SIGINT else process.send_signal(signum)
        _, stderr = process.communicate(timeout=STOP_SECONDS)
        took = time.monotonic() - sent
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 128 + signum, stderr
    assert took < STOP_SECONDS
    lines = [line for line in stderr.splitlines() if line.strip()]
    assert "Traceback" not in stderr
    # the line says what was kept: nothing (stopped in the search), or a registered challenger
    # (stopped while registering, when start-up on a busy machine left the search one trial)
    if lines[-1] == "stopped: nothing was registered":
        assert _aliases(home) == []
    else:
        assert lines[-1] == "stopped after registering faults v1 as @challenger", stderr
        assert _aliases(home) == [("faults", "challenger", 1)]
    assert [status for _, status in _runs(home, "search")] == ["KILLED"]
    _, alive = psutil.wait_procs(family, timeout=15)
    assert not [p.pid for p in alive if _running(p)]


@pytest.mark.slow
def test_kill_9_leaves_no_server_behind_and_the_next_command_closes_its_run(table, tmp_path):
    home = tmp_path / "home"
    process = _start_training(table, home)
    try:
        _wait_for_first_trial(process, home)
        children = _family(process.pid)[1:]
        assert children, "poise should run its own local Prefect server"
        process.kill()  # SIGKILL: nothing in poise runs after it
        process.wait(timeout=10)
        gone, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"left running after kill -9: {[p.cmdline() for p in alive]}"
    finally:
        if process.poll() is None:
            process.kill()
    assert [status for _, status in _runs(home, "search")] == ["RUNNING"]

    closer = ("from poise.settings import get_settings; from poise.registry import tracking; "
              "print(len(tracking.close_abandoned_runs(get_settings())))")
    done = subprocess.run([sys.executable, "-c", closer], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "POISE_HOME": str(home), "PREFECT_HOME": str(home / "prefect")})
    assert done.returncode == 0, done.stderr
    assert int(done.stdout.split()[-1]) >= 1  # the search run, and a trial run caught mid-logging if any
    assert [status for _, status in _runs(home, "search")] == ["KILLED"]
    assert "RUNNING" not in {status for _, status in _runs(home, "trial")}


@pytest.mark.slow  # a new MLflow store: its migrations take seconds
def test_runs_of_live_processes_are_left_running(tmp_path, monkeypatch):
    """Only a dead owner's runs are closed: a run this (live) process owns stays RUNNING."""
    import mlflow

    from poise.registry import tracking
    from poise.settings import get_settings, reset_settings

    monkeypatch.setenv("POISE_HOME", str(tmp_path))
    reset_settings()
    try:
        settings = get_settings()
        experiment = tracking.connect(settings)
        client = mlflow.MlflowClient()
        mine = client.create_run(experiment, tags=tracking.owner_tags()).info.run_id
        dead = {**tracking.owner_tags(), tracking.OWNER_PID: "999999999"}
        theirs = client.create_run(experiment, tags=dead).info.run_id
        assert tracking.close_abandoned_runs(settings) == [theirs]
        assert client.get_run(mine).info.status == "RUNNING"
        assert client.get_run(theirs).info.status == "KILLED"
    finally:
        reset_settings()


def test_a_signal_stops_at_once_outside_safe_points_and_at_the_next_check_inside():
    from poise import stopping

    # what the handlers were before (a shell starting the tests in the background ignores SIGINT)
    before = signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)
    with pytest.raises(stopping.Stopped) as stopped, stopping.handle_signals():
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(1)  # the handler raises before this ends
    assert stopped.value.exit_code == 130

    with stopping.handle_signals():
        with pytest.raises(stopping.Stopped) as stopped, stopping.at_safe_points():
            os.kill(os.getpid(), signal.SIGTERM)
            wait_for(stopping.is_stopping, timeout=5, interval=0.01, what="the stop being noted")  # not raised
            stopping.check()
        assert stopped.value.exit_code == 143

    with stopping.handle_signals(), pytest.raises(stopping.Stopped), stopping.at_safe_points():
        os.kill(os.getpid(), signal.SIGTERM)
        wait_for(stopping.is_stopping, timeout=5, interval=0.01, what="the stop being noted")
        os.kill(os.getpid(), signal.SIGINT)  # a second signal stops at once
        time.sleep(1)
        raise AssertionError("the second signal did not stop the work")
    assert not stopping.is_stopping()  # the request ends with the command
    assert (signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)) == before
