"""MLflow runs: one parent run per search, one nested run per trial, lineage as artifacts.

Works the same on the embedded SQLite store under ``POISE_HOME`` and on a tracking server:
only ``Settings.tracking_uri`` differs. Every run poise opens names its owner (host, process id
and the process's start time), so a later command can close the runs a killed process left
RUNNING (``close_abandoned_runs``). Experiments are created with an explicit artifact
location, so MLflow never falls back to ``./mlruns`` in the working directory.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from poise.settings import Settings


def connect(settings: Settings) -> str:
    """Point MLflow at poise's store and return the id of the training experiment."""
    import logging

    import mlflow

    logging.getLogger("mlflow").setLevel(logging.WARNING)  # no table-creation or validation chatter
    mlflow.set_tracking_uri(settings.tracking_uri)
    mlflow.set_registry_uri(settings.tracking_uri)
    client = mlflow.MlflowClient()
    experiment = client.get_experiment_by_name(settings.experiment)
    if experiment is not None:
        return experiment.experiment_id
    return client.create_experiment(
        settings.experiment, artifact_location=f"{settings.artifact_root.rstrip('/')}/{settings.experiment}"
    )


class SearchRun:
    """The parent MLflow run of one search, with helpers for what poise logs into it."""

    def __init__(self, run_id: str, experiment_id: str) -> None:
        import mlflow

        self.run_id, self.experiment_id = run_id, experiment_id
        self.client = mlflow.MlflowClient()

    def log_params(self, params: Mapping[str, Any]) -> None:
        from mlflow.entities import Param

        self.client.log_batch(self.run_id, params=[Param(k, _short(v)) for k, v in params.items()])

    def log_metrics(self, values: Mapping[str, float], prefix: str = "") -> None:
        from mlflow.entities import Metric

        stamp = _now_ms()
        metrics = [Metric(prefix + k, float(v), stamp, 0) for k, v in values.items() if _finite(v)]
        self.client.log_batch(self.run_id, metrics=metrics)

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        from mlflow.entities import RunTag

        self.client.log_batch(self.run_id, tags=[RunTag(k, _short(v, 5000)) for k, v in tags.items()])

    def log_json(self, name: str, payload: BaseModel | Mapping[str, Any] | list[Any]) -> None:
        """Store a contract (or any JSON-able value) as an artifact of the run."""
        log_json(self.run_id, name, payload)

    def log_artifact(self, path: str | Path) -> None:
        self.client.log_artifact(self.run_id, str(path))

    def log_trial(self, number: int, params: Mapping[str, Any], metrics: Mapping[str, float],
                  tags: Mapping[str, Any]) -> str:
        """A nested run for one trial of the search."""
        from mlflow.entities import Metric, Param, RunTag

        run = self.client.create_run(
            self.experiment_id,
            run_name=f"trial-{number:03d}",
            tags={"mlflow.parentRunId": self.run_id, "poise.kind": "trial", **owner_tags()},
        )
        stamp = _now_ms()
        self.client.log_batch(
            run.info.run_id,
            metrics=[Metric(k, float(v), stamp, 0) for k, v in metrics.items() if _finite(v)],
            params=[Param(k, _short(v)) for k, v in params.items()],
            tags=[RunTag(k, _short(v, 5000)) for k, v in tags.items()],
        )
        self.client.set_terminated(run.info.run_id, "FINISHED")
        return run.info.run_id


def log_json(run_id: str, name: str, payload: BaseModel | Mapping[str, Any] | list[Any]) -> None:
    """Store a contract (or any JSON-able value, or a list of contracts) as an artifact of a run."""
    import mlflow

    if isinstance(payload, BaseModel):
        body: Any = payload.model_dump(mode="json")
    elif isinstance(payload, list):
        body = [p.model_dump(mode="json") if isinstance(p, BaseModel) else p for p in payload]
    else:
        body = payload
    # JSON with indent 2; what JSON cannot hold (a NumPy number, a date) is written as its str()
    mlflow.MlflowClient().log_dict(run_id, body, name)


def read_json(run_id: str, name: str) -> dict[str, Any] | None:
    """A JSON artifact of a run (as ``log_json`` stored it), or None when the run has none by that name."""
    from mlflow.artifacts import load_dict
    from mlflow.exceptions import MlflowException

    try:
        return load_dict(f"runs:/{run_id}/{name}")
    except (MlflowException, OSError):
        return None


def runs_tagged(key: str, value: str) -> list[str]:
    """Ids of the runs (in any experiment) whose tag ``key`` equals ``value``, newest first."""
    import mlflow

    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    found = client.search_runs(experiments, filter_string=f"tags.`{key}` = '{value}'",
                               order_by=["attributes.start_time DESC"])
    return [r.info.run_id for r in found]


OWNER_HOST, OWNER_PID, OWNER_STARTED = "poise.owner.host", "poise.owner.pid", "poise.owner.started"


def owner_tags() -> dict[str, str]:
    """Who opened a run: this host, process id and process start time (a pid alone is reused)."""
    import os
    import socket

    import psutil

    return {OWNER_HOST: socket.gethostname(), OWNER_PID: str(os.getpid()),
            OWNER_STARTED: f"{psutil.Process().create_time():.2f}"}


def _owner_alive(pid: str, started: str) -> bool:
    import psutil

    try:
        return abs(psutil.Process(int(pid)).create_time() - float(started)) < 1.0
    except (psutil.Error, ValueError):
        return False


def close_abandoned_runs(settings: Settings) -> list[str]:
    """Mark KILLED the RUNNING runs whose owning process on this host is gone; return their ids.

    A process killed with ``kill -9`` (or by the machine going down) cannot close its runs;
    the next training or resume does. Runs opened on other hosts are left to those hosts.
    """
    import socket

    import mlflow

    connect(settings)
    client = mlflow.MlflowClient()
    experiments = [e.experiment_id for e in client.search_experiments()]
    running = client.search_runs(
        experiments, max_results=1000,
        filter_string=f"attributes.status = 'RUNNING' and tags.`{OWNER_HOST}` = '{socket.gethostname()}'",
    )
    closed = []
    for run in running:
        tags = run.data.tags
        if not _owner_alive(tags.get(OWNER_PID, ""), tags.get(OWNER_STARTED, "")):
            client.set_terminated(run.info.run_id, "KILLED")
            closed.append(run.info.run_id)
    return closed


@contextmanager
def search_run(settings: Settings, run_name: str, tags: Mapping[str, Any] | None = None) -> Iterator[SearchRun]:
    """Open the parent run of a search: FINISHED when the block ends, KILLED when the user stops it
    (a ``KeyboardInterrupt``, such as ``poise.stopping.Stopped``), FAILED when it raises anything else.
    """
    import mlflow

    experiment_id = connect(settings)
    client = mlflow.MlflowClient()
    run = client.create_run(experiment_id, run_name=run_name,
                            tags={"poise.kind": "search", **owner_tags(), **(tags or {})})
    status = "FAILED"
    try:
        yield SearchRun(run.info.run_id, experiment_id)
        status = "FINISHED"
    except KeyboardInterrupt:
        status = "KILLED"
        raise
    finally:
        client.set_terminated(run.info.run_id, status)


def _now_ms() -> int:
    import time

    return int(time.time() * 1000)


def _finite(value: object) -> bool:
    try:
        return math.isfinite(float(value))
    except (TypeError, ValueError):
        return False


def _short(value: object, limit: int = 500) -> str:
    text = value if isinstance(value, str) else json.dumps(value, default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"
