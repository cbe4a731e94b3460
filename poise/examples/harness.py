"""A served model for the demo and the benchmarks: ``poise serve`` as a real process on a free loopback
port, and the few client calls that feed it rows and labels.

    with serving("ai4i", home) as server, httpx.Client(base_url=server.url) as client:
        sent = send_rows(client, frame, features)
        send_labels(client, sent)

It drives poise from the outside, through its command line and HTTP, so it needs no other part of
poise than ``poise.processes``.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poise import processes

if TYPE_CHECKING:
    import httpx
    import pandas as pd

BATCH_ROWS = 250


# ---------------------------------------------------------------------- the server, as a real process
def poise_command() -> list[str]:
    """How to run the ``poise`` CLI of this interpreter's environment."""
    script = Path(sys.executable).with_name("poise")
    if script.exists():
        return [str(script)]
    return [sys.executable, "-c", "from poise.cli.main import app; app()"]


class ModelServer:
    """``poise serve --model NAME`` as a subprocess on a free loopback port; stopped by ``stop()``."""

    def __init__(self, model: str, home: Path, log_path: Path, poll_seconds: float = 2.0) -> None:
        self.model, self.port = model, processes.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = ["serve", "--model", model, "--port", str(self.port), "--poll", f"{poll_seconds:g}"]
        self.log_path = log_path
        self.env = {**os.environ, "POISE_HOME": str(home)}
        self.process: Any = None  # subprocess.Popen

    @property
    def command(self) -> str:
        return "poise " + " ".join(self.args)

    def start(self, timeout: float = 180.0) -> None:
        # its own session: a Ctrl-C reaches the caller, which stops the server itself (in its finally)
        self.process = processes.start([*poise_command(), *self.args], log=self.log_path, env=self.env)
        try:
            processes.wait_for_http(f"{self.url}/health", timeout=timeout, process=self.process, log=self.log_path,
                                    interval=0.3)
        except (ChildProcessError, TimeoutError) as exc:
            self.stop()
            raise RuntimeError(f"poise serve did not start: {exc}") from None

    def stop(self) -> None:
        if self.process is not None:
            processes.stop(self.process, grace=15)

    def log_tail(self, lines: int = 20) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no server log)"


@contextlib.contextmanager
def serving(model: str, home: Path, poll_seconds: float = 2.0) -> Iterator[ModelServer]:
    server = ModelServer(model, home, home / "logs" / f"serve-{model}.log", poll_seconds)
    try:
        server.start()
        yield server
    finally:
        server.stop()


# ---------------------------------------------------------------------- a client of the server
@dataclass
class Sent:
    """Rows sent to /predict: one request id per batch, the labels kept back until they are known."""

    request_ids: list[str] = field(default_factory=list)
    labels: list[list[Any]] = field(default_factory=list)
    proba: list[float] = field(default_factory=list)
    versions: set[str] = field(default_factory=set)

    @property
    def rows(self) -> int:
        return sum(len(batch) for batch in self.labels)

    def y(self) -> list[int]:
        return [int(v == 1) for batch in self.labels for v in batch]


def model_info(client: httpx.Client) -> dict[str, Any]:
    response = client.get("/model")
    response.raise_for_status()
    return response.json()


def send_rows(client: httpx.Client, frame: pd.DataFrame, features: list[str], target: str = "target",
              batch_rows: int = BATCH_ROWS) -> Sent:
    """The feature columns of ``frame`` to /predict in batches; the ``target`` column is kept for /feedback."""
    sent = Sent()
    for start in range(0, len(frame), batch_rows):
        part = frame.iloc[start:start + batch_rows]
        records = json.loads(part[features].to_json(orient="records"))
        response = client.post("/predict", json={"records": records})
        if response.status_code != 200:
            raise RuntimeError(f"/predict answered {response.status_code}: {response.text[:500]}")
        body = response.json()
        if not body["request_id"]:
            raise RuntimeError("the server did not log the request (no request_id); see its /health")
        sent.request_ids.append(body["request_id"])
        sent.labels.append(part[target].tolist())
        sent.proba += [p["proba"] for p in body["predictions"]]
        sent.versions.add(body["version"])
    return sent


def send_labels(client: httpx.Client, sent: Sent) -> int:
    """Every batch's true labels to /feedback, by request id; returns the rows labelled."""
    labelled = 0
    for request_id, labels in zip(sent.request_ids, sent.labels, strict=True):
        response = client.post("/feedback", json={"request_id": request_id, "labels": labels})
        if response.status_code != 200:
            raise RuntimeError(f"/feedback answered {response.status_code}: {response.text[:500]}")
        labelled += int(response.json()["labelled"])
    return labelled


def write_feedback_csv(sent: Sent, path: Path) -> Path:
    """The same labels as a file for ``poise feedback FILE`` (request_id, row, label)."""
    import pandas as pd

    rows = [(rid, i, label) for rid, labels in zip(sent.request_ids, sent.labels, strict=True)
            for i, label in enumerate(labels)]
    pd.DataFrame(rows, columns=["request_id", "row", "label"]).to_csv(path, index=False)
    return path


def wait_for_version(client: httpx.Client, old: str, timeout: float = 30.0) -> tuple[str, float]:
    """Poll GET /model until the served version is not ``old``; (version, seconds waited)."""
    started = time.monotonic()
    version = old
    while time.monotonic() - started < timeout:
        version = str(model_info(client)["version"])
        if version != old:
            break
        time.sleep(0.2)
    return version, time.monotonic() - started
