"""The load generator of ``serve_load.py``: closed-loop single-row clients, batches in three encodings, and
a hot swap under load, each measured with the CPU the server, the generator and the rest of the machine
spent meanwhile.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Protocol

from common import cpu_seconds, machine_busy_seconds, poise_executable, say


class Served(Protocol):
    """What the generator needs of the server under test: its address and the CPU it has used."""

    base: str

    def cpu_seconds(self) -> float: ...


# ------------------------------------------------------------------------------------------ load
@dataclass
class Shot:
    sent: float  # perf_counter at send
    done: float  # perf_counter at answer (or error)
    status: int  # 0 = connection or protocol error
    version: str | None = None  # from the body
    header_version: str | None = None  # from X-Model-Version
    rows: int = 0
    request_id: bool = False
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None

    @property
    def ms(self) -> float:
        return 1000 * (self.done - self.sent)


def post_one(client: Any, body: bytes, expected_rows: int = 1) -> Shot:
    import httpx

    sent = time.perf_counter()
    try:
        response = client.post("/predict", content=body, headers={"content-type": "application/json"})
        done = time.perf_counter()
    except httpx.HTTPError as exc:
        return Shot(sent, time.perf_counter(), 0, error=f"{type(exc).__name__}: {exc}")
    shot = Shot(sent, done, response.status_code, header_version=response.headers.get("x-model-version"))
    if response.status_code != 200:
        shot.error = response.text[:300]
        return shot
    try:
        payload = response.json()
        shot.version, shot.request_id = payload["version"], bool(payload.get("request_id"))
        shot.rows = len(payload["predictions"])
    except (ValueError, KeyError, TypeError) as exc:
        shot.error = f"unreadable answer: {exc}"
    if shot.rows != expected_rows and shot.error is None:
        shot.error = f"{shot.rows} predictions for {expected_rows} row(s)"
    return shot


def new_client(base: str) -> Any:
    import httpx

    return httpx.Client(base_url=base, timeout=60.0, trust_env=False)


def fire(base: str, bodies: list[bytes], clients: int, *, count: int | None = None,
         stop: threading.Event | None = None, sink: list[Shot] | None = None) -> tuple[list[Shot], float]:
    """Closed-loop single-row load: ``clients`` threads, each with its own keep-alive connection.

    Stops after ``count`` requests in all, or when ``stop`` is set. Returns the shots and the wall time.
    """
    counter = itertools.count()
    shots: list[Shot] = sink if sink is not None else []

    def work() -> None:
        with new_client(base) as client:
            while stop is None or not stop.is_set():
                i = next(counter)
                if count is not None and i >= count:
                    return
                shots.append(post_one(client, bodies[i % len(bodies)]))

    threads = [threading.Thread(target=work, name=f"client-{k}") for k in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return shots, time.perf_counter() - started


def wait_until_idle(limit: float, busy_below: float = 0.15) -> float:
    """Wait (at most ``limit`` s) until the machine's other work uses under ``busy_below`` cores; returns that use."""
    deadline = time.perf_counter() + limit
    while True:
        before, cpu_before, started = machine_busy_seconds(), cpu_seconds(), time.perf_counter()
        time.sleep(3)
        wall = time.perf_counter() - started
        other = (machine_busy_seconds() - before - (cpu_seconds() - cpu_before)) / wall
        if other < busy_below or time.perf_counter() > deadline:
            return other
        say(f"  the machine is busy with other work ({other:.2f} cores); waiting")


def pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def latency_phase(server: Served, bodies: list[bytes], clients: int, requests: int, warmup: int) -> dict[str, Any]:
    warm, _ = fire(server.base, bodies, clients, count=warmup)
    cpu_server, cpu_client, busy = server.cpu_seconds(), cpu_seconds(), machine_busy_seconds()
    shots, wall = fire(server.base, bodies, clients, count=requests)
    server_cores = (server.cpu_seconds() - cpu_server) / wall
    client_cores = (cpu_seconds() - cpu_client) / wall
    ok = [s.ms for s in shots if s.ok]
    return {
        "clients": clients, "requests": len(shots), "errors": sum(not s.ok for s in shots), "wall": wall,
        "rps": len(ok) / wall, "p50": pct(ok, 50), "p90": pct(ok, 90), "p99": pct(ok, 99), "max": max(ok),
        "server_cpu_ms": 1000 * (server.cpu_seconds() - cpu_server) / max(len(shots), 1),
        "server_cores": server_cores, "client_cores": client_cores,
        "other_cores": (machine_busy_seconds() - busy) / wall - server_cores - client_cores,
        "rows_ok": sum(s.rows for s in shots if s.ok), "warmup_rows": sum(s.rows for s in warm if s.ok),
        "error_examples": [s.error for s in shots if not s.ok][:3],
    }


# ------------------------------------------------------------------------------------------ batches
def batch_phase(server: Served, frame: Any, repeats: int) -> tuple[list[dict[str, Any]], int]:
    import httpx
    import numpy as np

    rows = len(frame)
    json_body = json.dumps({"records": frame.to_dict(orient="records")}).encode()
    csv_body = frame.to_csv(index=False).encode()
    ways = {
        "JSON records → /predict": dict(url="/predict", content=json_body,
                                          headers={"content-type": "application/json"}),
        "CSV body (text/csv) → /predict/csv": dict(url="/predict/csv", content=csv_body,
                                                    headers={"content-type": "text/csv"}),
        "CSV multipart upload → /predict/csv": dict(url="/predict/csv",
                                                     files={"file": ("rows.csv", csv_body, "text/csv")}),
    }
    out, probas, rows_ok = [], {}, 0
    cpu_server, cpu_client, busy, began = (server.cpu_seconds(), cpu_seconds(), machine_busy_seconds(),
                                           time.perf_counter())
    with new_client(server.base) as client:
        for label, request in ways.items():
            walls, errors, size = [], 0, len(request.get("content") or csv_body)
            for _ in range(repeats):
                started = time.perf_counter()
                try:
                    response = client.post(**request)
                    payload = response.json() if response.status_code == 200 else None
                except (httpx.HTTPError, ValueError) as exc:
                    say(f"  {label}: {type(exc).__name__}: {exc}")
                    errors += 1
                    continue
                walls.append(time.perf_counter() - started)
                if payload is None or len(payload["predictions"]) != rows:
                    errors += 1
                    say(f"  {label}: HTTP {response.status_code} {response.text[:300]}")
                    continue
                rows_ok += rows
                probas[label] = np.array([p["proba"] for p in payload["predictions"]])
            wall = float(np.median(walls)) if walls else float("nan")
            out.append({"way": label, "rows": rows, "bytes": size, "repeats": repeats, "errors": errors,
                        "wall": wall, "min": min(walls) if walls else float("nan"), "rows_per_s": rows / wall})
            say(f"  {label}: median {wall:.2f} s, {rows / wall:,.0f} rows/s")
    wall = time.perf_counter() - began
    other = (machine_busy_seconds() - busy - (server.cpu_seconds() - cpu_server)
             - (cpu_seconds() - cpu_client)) / wall
    for entry in out:
        entry["other_cores"] = other
    reference = next(iter(probas.values()), None)
    for entry in out:
        mine = probas.get(entry["way"])
        entry["max_diff"] = (float(np.max(np.abs(mine - reference))) if mine is not None and reference is not None
                             else float("nan"))
    return out, rows_ok


# ------------------------------------------------------------------------------------------ hot swap
@dataclass
class Move:
    what: str  # "promote v2" / "rollback to v1"
    to: str
    started: float  # perf_counter before the alias move
    moved: float  # perf_counter once the alias move returned
    reference: float  # when the alias counts as moved: ``moved`` in-process; the command's launch with the CLI
    wall_reference: float  # time.time() at ``reference``, to compare with the server's loaded_at
    first_answer: float | None = None
    loaded_at: str | None = None


@dataclass
class SwapResult:
    clients: int
    via: str
    shots: list[Shot]
    wall: float
    moves: list[Move] = field(default_factory=list)
    health_after: dict[str, Any] | None = None
    server_cpu: float = 0.0
    other_cpu: float = 0.0


def move_alias(model: str, via: str, what: str, version: str, home: Path) -> None:
    if via == "api":
        from poise.registry import versions

        if what == "promote":
            versions.promote(model, version)
        else:
            versions.rollback(model)
        return
    command = [poise_executable(), *(["promote", model, version] if what == "promote" else ["rollback", model])]
    subprocess.run(command, env={**os.environ, "POISE_HOME": str(home)}, check=True, capture_output=True)


def wait_for_version(shots: list[Shot], version: str, after: float, timeout: float) -> float | None:
    """The answer time of the first answer from ``version`` that arrived after ``after``."""
    deadline, seen = time.perf_counter() + timeout, 0
    while time.perf_counter() < deadline:
        upto = len(shots)
        for shot in shots[seen:upto]:
            if shot.ok and shot.version == version and shot.done > after:
                return min(s.done for s in shots[:len(shots)] if s.ok and s.version == version and s.done > after)
        seen = upto
        time.sleep(0.01)
    return None


def swap_phase(server: Served, model: str, bodies: list[bytes], clients: int, v1: str, v2: str, via: str,
               home: Path, settle: float, min_seconds: float) -> SwapResult:
    import httpx

    shots: list[Shot] = []
    stop = threading.Event()
    result = SwapResult(clients, via, shots, 0.0)
    loader = threading.Thread(target=lambda: result.__setattr__("wall", fire(server.base, bodies, clients,
                                                                              stop=stop, sink=shots)[1]))
    cpu_before, client_before, busy_before = server.cpu_seconds(), cpu_seconds(), machine_busy_seconds()
    began = time.perf_counter()
    loader.start()
    try:
        time.sleep(settle)
        for what, to in (("promote", v2), ("rollback", v1)):
            started, wall_started = time.perf_counter(), time.time()
            move_alias(model, via, what, to, home)
            moved, wall_moved = time.perf_counter(), time.time()
            # the CLI writes the alias somewhere inside its run (mostly imports): count from its launch
            reference, wall_reference = (moved, wall_moved) if via == "api" else (started, wall_started)
            move = Move(f"{what} → v{to}", to, started, moved, reference, wall_reference)
            result.moves.append(move)
            say(f"  {move.what}: alias moved in {1000 * (move.moved - move.started):.0f} ms")
            move.first_answer = wait_for_version(shots, to, move.reference, timeout=120)
            if move.first_answer is None:
                say(f"  no answer from v{to} within 120 s of the alias move")
            else:
                say(f"  first answer from v{to} {move.first_answer - move.reference:.2f} s after the move")
            move.loaded_at = httpx.get(f"{server.base}/health", timeout=10, trust_env=False).json()["loaded_at"]
            time.sleep(settle)
        left = min_seconds - (time.perf_counter() - began)
        if left > 0:
            time.sleep(left)
    finally:
        stop.set()
        loader.join()
    result.server_cpu = server.cpu_seconds() - cpu_before
    result.other_cpu = machine_busy_seconds() - busy_before - result.server_cpu - (cpu_seconds() - client_before)
    result.health_after = httpx.get(f"{server.base}/health", timeout=10, trust_env=False).json()
    return result


def summarise_swap(result: SwapResult) -> dict[str, Any]:
    shots = result.shots
    by_version: dict[str, int] = {}
    for shot in shots:
        if shot.ok:
            by_version[shot.version] = by_version.get(shot.version, 0) + 1
    errors = [s for s in shots if not s.ok]
    mismatched = sum(1 for s in shots if s.ok and s.header_version != s.version)
    # an answer from the version being replaced, to a request sent after the new version had already answered
    stale = 0
    for i, move in enumerate(result.moves):
        if move.first_answer is None:
            continue
        end = result.moves[i + 1].started if i + 1 < len(result.moves) else float("inf")
        stale += sum(1 for s in shots if s.ok and move.first_answer < s.sent < end and s.version != move.to)
    ok_ms = [s.ms for s in shots if s.ok]
    loading = [s.ms for s in shots if s.ok and any(
        m.first_answer is not None and m.reference <= s.sent <= m.first_answer for m in result.moves)]
    moves = []
    for move in result.moves:
        loaded = None
        if move.loaded_at:
            loaded = datetime.fromisoformat(move.loaded_at).timestamp() - move.wall_reference
        moves.append({"what": move.what, "alias_ms": 1000 * (move.moved - move.started),
                      "to_loaded": loaded,
                      "to_first_answer": None if move.first_answer is None else move.first_answer - move.reference})
    return {
        "clients": result.clients, "via": result.via, "wall": result.wall, "requests": len(shots),
        "errors": len(errors), "error_examples": [s.error for s in errors][:5], "by_version": by_version,
        "mismatched": mismatched, "stale": stale, "no_request_id": sum(1 for s in shots if s.ok and not s.request_id),
        "rps": len(ok_ms) / result.wall if result.wall else float("nan"),
        "p50": pct(ok_ms, 50), "p99": pct(ok_ms, 99), "max": max(ok_ms) if ok_ms else float("nan"),
        "loading_n": len(loading), "loading_p50": pct(loading, 50), "loading_p99": pct(loading, 99),
        "loading_max": max(loading) if loading else float("nan"), "moves": moves,
        "health_status": (result.health_after or {}).get("status"),
        "last_swap_error": (result.health_after or {}).get("last_swap_error"),
        "served_after": (result.health_after or {}).get("version"),
        "rows_ok": sum(s.rows for s in shots if s.ok),
        "server_cores": result.server_cpu / result.wall if result.wall else float("nan"),
        "other_cores": result.other_cpu / result.wall if result.wall else float("nan"),
    }
