"""What every poise flow shares: the local Prefect server, retry rules, progress, and the link to MLflow.

Flows run the same way on the embedded default and against a Prefect server (``PREFECT_API_URL``):
nothing else depends on which. On the embedded default poise starts and owns a local Prefect API
server (``start_prefect_server``) instead of letting Prefect start its temporary one on first use:

* it starts in the background while the command imports its libraries and reads the data,
  rather than in series on the first flow call (5–6 s on an idle machine, much more on a busy one);
* it runs in its own session, so a Ctrl-C at the terminal reaches poise (which stops cleanly,
  then stops the server) and not the server in the middle of a training;
* it dies with poise, even after ``kill -9``: on Linux the kernel sends it SIGTERM when poise
  exits (``PR_SET_PDEATHSIG``); elsewhere it watches its parent and exits when that is gone.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poise.errors import PoiseError

if TYPE_CHECKING:  # Prefect's classes only name types here; importing Prefect costs start-up time
    import logging
    import subprocess

    from prefect import Task
    from prefect.client.schemas.objects import State, TaskRun
    from prefect.logging.loggers import PrefectLogAdapter


# ---------------------------------------------------------------------- the local Prefect server
@dataclass
class _LocalServer:
    process: subprocess.Popen
    url: str
    log: Path
    home: Path
    restarted: bool = False  # started a second time, after the first stopped at start-up


_server: _LocalServer | None = None


def start_prefect_server(home: Path) -> None:
    """Start poise's own local Prefect API server in the background and point this process at it.

    Does nothing when ``PREFECT_API_URL`` is set (the user's server) or a server is already
    running, and outside the main thread (the kernel's parent-death signal follows the thread
    that started the child, so Prefect's own temporary server serves those callers).
    Call ``wait_for_prefect_server()`` before the first flow runs.
    """
    import atexit

    global _server
    if _server is not None or _users_prefect_api() or threading.current_thread() is not threading.main_thread():
        return
    _server = _launch(home)
    atexit.register(stop_prefect_server)


def _launch(home: Path, restarted: bool = False) -> _LocalServer:
    """Start the server process on a free port, and point this process at it."""
    import subprocess

    from poise import processes

    port = processes.free_port()
    log = home / "logs" / "prefect-server.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "PREFECT_UI_ENABLED": "0", "PREFECT__SERVER_EPHEMERAL": "1", "PREFECT__SERVER_FINAL": "1"}
    with log.open("ab") as sink:
        process = subprocess.Popen(
            [sys.executable, "-m", "poise.pipelines.runtime", "prefect-server", str(port), str(os.getpid())],
            env=env, stdin=subprocess.DEVNULL, stdout=sink, stderr=sink, start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    server = _LocalServer(process, f"http://127.0.0.1:{port}/api", log, home, restarted)
    os.environ["PREFECT_API_URL"] = server.url
    _refresh_prefect_settings()
    return server


def _users_prefect_api() -> str | None:
    """The Prefect server the user chose: ``PREFECT_API_URL``, or the active Prefect profile's."""
    import tomllib

    if os.environ.get("PREFECT_API_URL"):
        return os.environ["PREFECT_API_URL"]
    profiles = Path(os.environ.get("PREFECT_PROFILES_PATH")
                    or Path(os.environ.get("PREFECT_HOME", "~/.prefect")).expanduser() / "profiles.toml")
    try:
        document = tomllib.loads(profiles.read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None
    active = os.environ.get("PREFECT_PROFILE") or document.get("active")
    url = document.get("profiles", {}).get(active, {}).get("PREFECT_API_URL")
    return str(url) if url else None


def _refresh_prefect_settings() -> None:
    if "prefect.context" in sys.modules:  # Prefect read its settings at import: let it read them again
        from prefect.context import refresh_global_settings_context

        refresh_global_settings_context()


def _die_with_parent() -> Callable[[], None] | None:
    """A pre-exec hook asking Linux to SIGTERM the child when its parent dies (``PR_SET_PDEATHSIG``)."""
    import ctypes
    import signal

    if not sys.platform.startswith("linux"):
        return None
    try:
        prctl = ctypes.CDLL(None, use_errno=True).prctl  # loaded before the fork: nothing to load in the child
    except (OSError, AttributeError):
        return None
    pr_set_pdeathsig = 1

    def hook() -> None:
        prctl(pr_set_pdeathsig, signal.SIGTERM)

    return hook


def wait_for_prefect_server(timeout: float = 120.0) -> None:
    """Block until the server ``start_prefect_server`` started answers (no-op when poise started none). A
    server that stops at start-up is started once more, on a new port, before this gives up."""
    import urllib.error
    import urllib.request

    global _server
    if _server is None:
        return
    if _server.process.poll() is None:  # while it starts: what Prefect loads on its first flow call (~5 s)
        import prefect.flow_engine
        import prefect.task_engine  # noqa: F401
    until = time.monotonic() + timeout
    while True:
        if _server.process.poll() is not None and not _server.restarted:
            # once more on a new port: its port taken between choosing and binding it, or a start that failed
            # on a busy machine, should not cost the user the run; the log keeps what the first one said
            with _server.log.open("a") as log:
                log.write(f"\n[poise] the server stopped at start-up (exit code {_server.process.returncode}); "
                          "starting it again on a new port\n")
            _server = _launch(_server.home, restarted=True)
            until = time.monotonic() + timeout
            continue
        if _server.process.poll() is not None:
            raise PoiseError(f"the local Prefect server stopped at start-up twice (exit code "
                             f"{_server.process.returncode}); its log is {_server.log}",
                             "see that log, or point PREFECT_API_URL at a running Prefect server")
        try:
            with urllib.request.urlopen(f"{_server.url}/health", timeout=2) as answer:
                if answer.status == 200:
                    return
        except (urllib.error.URLError, OSError):
            pass
        if time.monotonic() > until:
            raise PoiseError(f"the local Prefect server did not answer within {timeout:.0f} s; "
                             f"its log is {_server.log}",
                             "try again on a less busy machine, or point PREFECT_API_URL at a Prefect server")
        time.sleep(0.1)


def stop_prefect_server() -> None:
    """Let Prefect send what it still holds, then stop the server poise started (at exit)."""
    from poise import processes

    global _server
    if _server is None:
        return
    server, _server = _server, None
    if "prefect" in sys.modules and server.process.poll() is None:
        from prefect.events.worker import EventsWorker
        from prefect.logging.handlers import APILogWorker

        for worker in (APILogWorker, EventsWorker):
            try:
                worker.drain_all(timeout=2)
            except Exception:  # what is left unsent is Prefect's log, not the user's model
                pass
    processes.stop(server.process, grace=5)
    if os.environ.get("PREFECT_API_URL") == server.url:
        del os.environ["PREFECT_API_URL"]
        _refresh_prefect_settings()


def _serve_prefect(port: int, parent: int) -> None:
    """The server process: Prefect's API app under uvicorn, gone when its parent is."""
    import signal

    import uvicorn

    from poise import processes

    def stop() -> None:  # the portable guard; on Linux the kernel's signal usually comes first
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(10)
        os._exit(1)

    if not processes.when_parent_gone(parent, stop):  # the parent died before the hook was in place
        return
    uvicorn.run("prefect.server.api.server:create_app", factory=True, host="127.0.0.1", port=port,
                log_level="error", lifespan="on")


# ---------------------------------------------------------------------- retries
def _raised(state: State) -> BaseException | None:
    try:
        state.result()
    except BaseException as exc:  # only classified here, never swallowed: the caller re-raises
        return exc
    return None


#: Never worth another try: the user's data, plan or paths are wrong, and will be wrong again.
_PERMANENT = (PoiseError, ValueError, KeyError, TypeError, FileNotFoundError, PermissionError, IsADirectoryError,
              NotADirectoryError)
#: SQLite's result codes for "another connection holds the lock": SQLITE_BUSY, SQLITE_LOCKED.
_SQLITE_BUSY = (5, 6)
#: MLflow's error codes for a store or server that is busy or down for a moment (the REST answers 503, 504, 429).
_MLFLOW_TRANSIENT = ("TEMPORARILY_UNAVAILABLE", "DEADLINE_EXCEEDED", "REQUEST_LIMIT_EXCEEDED")


def is_transient(exc: BaseException | None) -> bool:
    """Worth another try: the network, a busy database or a full disk, never the user's data or plan.

    Decided by type, down the chain of causes: a library that wraps an error it caught (SQLAlchemy the
    driver's, Optuna SQLAlchemy's, MLflow's REST client the ``requests`` error) has the real reason
    underneath. An error raised while another was handled is judged by its own type alone, except
    MLflow's generic one: its REST client raises it inside the handler, without naming the cause.
    """
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        verdict = _transient_by_type(exc)
        if verdict is not None:
            return verdict
        exc = exc.__cause__ or (exc.__context__ if _is_mlflow_error(exc) else None)
    return False


def _transient_by_type(exc: BaseException) -> bool | None:
    """True or False where the exception's type says, None where only its cause can tell."""
    import sqlite3

    if isinstance(exc, _PERMANENT):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | OSError):  # requests' errors are OSErrors too
        return True
    if isinstance(exc, sqlite3.Error):  # its result code (Python 3.11+); before, only its message said "locked"
        return (getattr(exc, "sqlite_errorcode", 0) & 0xFF) in _SQLITE_BUSY
    if _is_mlflow_error(exc):
        code = getattr(exc, "error_code", None)
        if code in _MLFLOW_TRANSIENT:  # its SQL store says so of every SQLAlchemy OperationalError
            return True
        return None if code == "INTERNAL_ERROR" else False  # INTERNAL_ERROR: a wrapper; look beneath
    sqlalchemy_error = _loaded_class("sqlalchemy.exc", "DBAPIError")
    if sqlalchemy_error is not None and isinstance(exc, sqlalchemy_error) and exc.connection_invalidated:
        return True
    pool_timeout = _loaded_class("sqlalchemy.exc", "TimeoutError")  # no connection free in the pool
    if pool_timeout is not None and isinstance(exc, pool_timeout):
        return True
    psycopg_error = _loaded_class("psycopg", "OperationalError")  # PostgreSQL gone or restarting
    if psycopg_error is not None and isinstance(exc, psycopg_error):
        return True
    return None


def _is_mlflow_error(exc: BaseException) -> bool:
    mlflow_error = _loaded_class("mlflow.exceptions", "MlflowException")
    return mlflow_error is not None and isinstance(exc, mlflow_error)


def _loaded_class(module: str, name: str) -> type | None:
    """A library's exception class, if the library is loaded: an error of that type cannot exist otherwise,
    and checking for it must not load MLflow or SQLAlchemy into a process that has not."""
    found = getattr(sys.modules.get(module), name, None)
    return found if isinstance(found, type) else None


def retry_if_transient(task: Task, task_run: TaskRun, state: State) -> bool:
    """A Prefect ``retry_condition_fn``: retry only what another try can fix."""
    return is_transient(_raised(state))


# ---------------------------------------------------------------------- progress
@dataclass
class Observer:
    """Callbacks of the process that started a flow (the CLI's progress display)."""

    on_stage: Callable[[str], None] | None = None
    on_trial: Callable[[Any], None] | None = None


_observer: ContextVar[Observer] = ContextVar("poise_flow_observer", default=Observer())  # noqa: B039 - never mutated


@contextmanager
def observing(on_stage: Callable[[str], None] | None = None, on_trial: Callable[[Any], None] | None = None
              ) -> Iterator[None]:
    """Report the stages and trials of flows run inside this block (in this process)."""
    token = _observer.set(Observer(on_stage, on_trial))
    try:
        yield
    finally:
        _observer.reset(token)


def stage(name: str) -> None:
    """Tell the observer (if any) and the flow run's log which stage has started."""
    callback = _observer.get().on_stage
    if callback is not None:
        callback(name)
    log().info("%s", name)


def trial_observer() -> Callable[[Any], None] | None:
    return _observer.get().on_trial


def log() -> logging.Logger | PrefectLogAdapter:
    """The flow run's logger inside a flow (its lines reach the Prefect UI), else poise's own."""
    import logging

    from prefect.exceptions import MissingContextError
    from prefect.logging import get_run_logger

    try:
        return get_run_logger()
    except MissingContextError:
        return logging.getLogger("poise")


# ---------------------------------------------------------------------- the flow run
def flow_run() -> tuple[str | None, str | None, str | None]:
    """``(id, name, ui_url)`` of the flow run this code runs in, or Nones outside a flow."""
    from prefect.runtime import flow_run as current

    run_id = current.id
    if run_id is None:
        return None, None, None
    return str(run_id), current.name, current.ui_url


def link_to_mlflow(run_id: str, tracking_uri: str, experiment_id: str, model: str,
                   version: str | None = None) -> None:
    """Record on the flow run where its MLflow run lives (a Prefect artifact; the MLflow side gets tags)."""
    from prefect.artifacts import create_link_artifact, create_markdown_artifact

    if tracking_uri.startswith(("http://", "https://")):
        create_link_artifact(
            key="mlflow-run", link=f"{tracking_uri.rstrip('/')}/#/experiments/{experiment_id}/runs/{run_id}",
            link_text=f"MLflow run {run_id}", description=f"The MLflow run of this training of {model}",
        )
        return
    lines = [
        "| | |", "|---|---|",
        f"| MLflow run | `{run_id}` |",
        f"| experiment | `{experiment_id}` |",
        f"| tracking store | `{tracking_uri}` |",
        f"| model | `{model}`{f' v{version}' if version else ''} |",
    ]
    create_markdown_artifact(key="mlflow-run", markdown="\n".join(lines),
                             description=f"The MLflow run of this training of {model}")


if __name__ == "__main__":  # pragma: no cover - the server process that start_prefect_server starts
    if sys.argv[1:2] == ["prefect-server"]:
        _serve_prefect(int(sys.argv[2]), int(sys.argv[3]))
