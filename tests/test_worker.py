"""The scale-out path for real: a Prefect server, the deployments of deploy/prefect.yaml, a process
worker, and `poise run` handing its training to that worker (POISE_TRAIN_DEPLOYMENT)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from poise.processes import free_port, start, stop, wait_for_http
from tests.conftest import AI4I, ROOT

BIN = Path(sys.executable).parent


def _run(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    done = subprocess.run(args, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{' '.join(args)}:\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture
def prefect_server(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}/api"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect-server"), "PREFECT_API_URL": url,
           "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_WORKER_QUERY_SECONDS": "1",
           "PREFECT_WORKER_PREFETCH_SECONDS": "1"}
    processes = [start([str(BIN / "prefect"), "server", "start", "--host", "127.0.0.1", "--port", str(port)],
                       env=env)]
    try:
        wait_for_http(f"{url}/health", timeout=90, process=processes[0])
        yield env, processes
    finally:
        for process in processes:
            stop(process, grace=20)
        shutil.rmtree(tmp_path / "prefect-server", ignore_errors=True)


@pytest.mark.slow  # a Prefect server, a worker and a training
def test_poise_run_trains_on_a_worker_through_the_deployment(prefect_server, tmp_path):
    env, processes = prefect_server
    _run([str(BIN / "prefect"), "work-pool", "create", "poise", "--type", "process"], env)
    _run([str(BIN / "prefect"), "--no-prompt", "deploy", "--all", "--prefect-file", "deploy/prefect.yaml"], env)
    processes.append(start([str(BIN / "prefect"), "worker", "start", "--pool", "poise"], env=env))
    data = tmp_path / "remote-ai4i.csv"
    shutil.copy(AI4I, data)
    done = _run([str(BIN / "poise"), "run", f"catch failures in {data}, 10 seconds", "--auto-approve", "--json"],
                {**env, "POISE_TRAIN_DEPLOYMENT": "poise-train/train"})
    result = json.loads(done.stdout)
    assert result["status"] in ("deployed", "gated out")
    assert result["candidate"]["model_name"] == "remote-ai4i" and result["candidate"]["version"] == "1"

    from prefect.client.orchestration import SyncPrefectClient

    with SyncPrefectClient(env["PREFECT_API_URL"]) as client:
        runs = client.read_flow_runs()
    trained = [r for r in runs if r.name == "train-remote-ai4i"]
    assert len(trained) == 1 and trained[0].state.is_completed()
    assert trained[0].deployment_id is not None  # run by the worker, not in the calling process
    import mlflow

    from poise.registry import tracking
    from poise.settings import get_settings

    tracking.connect(get_settings())
    tags = mlflow.MlflowClient().get_run(result["candidate"]["run_id"]).data.tags
    assert tags["prefect.flow_run_id"] == str(trained[0].id)
