"""What every poise flow shares: retry rules, progress reporting, and the link to MLflow.

Flows run the same way on the embedded default (Prefect starts a temporary local server
under ``PREFECT_HOME``, which settings put inside ``POISE_HOME``) and against a Prefect
server (``PREFECT_API_URL``): nothing here depends on which.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from poise.errors import PoiseError


# ---------------------------------------------------------------------- retries
def _raised(state: Any) -> BaseException | None:
    try:
        state.result()
    except BaseException as exc:  # noqa: BLE001 - we only classify it
        return exc
    return None


def is_transient(exc: BaseException | None) -> bool:
    """Worth another try: the network, a busy database or a full disk, never the user's data or plan."""
    if exc is None or isinstance(exc, PoiseError | ValueError | KeyError | TypeError):
        return False
    if isinstance(exc, FileNotFoundError | PermissionError | IsADirectoryError):
        return False
    if isinstance(exc, ConnectionError | TimeoutError | OSError):
        return True
    name = type(exc).__name__
    text = str(exc).lower()
    # SQLAlchemy/sqlite and MLflow REST errors arrive under their own types; match them by what they say
    return name in ("OperationalError", "RestException", "MlflowException") and any(
        word in text for word in ("locked", "timeout", "timed out", "temporarily", "connection", "503", "502")
    )


def retry_if_transient(task: Any, task_run: Any, state: Any) -> bool:
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


def log() -> Any:
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
