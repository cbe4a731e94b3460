"""Load benchmark of ``poise serve`` on loopback: latency, throughput, batches and a hot swap under load.

Everything happens in a fresh ``POISE_HOME`` (a temporary folder unless ``--home``):

1. two versions of ``bench-ai4i`` are trained on ``poise/examples/ai4i2020.csv`` (seeds 0 and 1, the
   data-driven plan, ``--budget`` seconds each); v1 becomes ``@champion``;
2. ``poise serve`` is started as a real subprocess on a free loopback port and polled until ``/health``
   answers;
3. single-row ``POST /predict`` at each ``--concurrency`` (closed loop: every client sends its next
   request when the previous one is answered), after a warm-up;
4. one batch of ``--batch-rows`` rows as JSON records to ``/predict``, as a ``text/csv`` body and as a
   multipart upload to ``/predict/csv`` (``--batch-repeats`` times each; the median is reported);
5. a hot swap under load: ``--swap-clients`` clients fire single-row requests while v2 is promoted and
   then rolled back; every answer is counted by the version it names, every non-200 or connection
   error is counted as an error, and the time from the alias move to the first answer from the new
   version is reported;
6. the prediction log (``predictions.db`` under ``POISE_HOME``) is checked against the rows the server
   acknowledged, and, with the server stopped, model scoring and logging are timed in-process to show
   what logging costs (the server has no switch to turn logging off).

    python benchmarks/serve_load.py --wait-idle 900 --out benchmarks/serve_results.md

The load generator and the server run on the same machine and share its cores. On a shared machine,
``--wait-idle`` waits before each phase for other work to stop, and a phase during which other processes
used more than ``--max-other`` cores is measured again (its errors are still reported). The reading of the
numbers in ``serve_results.md`` is written by hand after a run.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import resource
import shlex
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from common import poise_executable

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATA = ROOT / "poise" / "examples" / "ai4i2020.csv"
NAME = "bench-ai4i"
CLK_TCK = os.sysconf("SC_CLK_TCK")


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# ------------------------------------------------------------------------------------------ training
def train_with_retry(task: Any, attempts: int = 6, wait: float = 60.0) -> Any:
    """``poise.pipelines.train.train(task, promote_if_passed=False)``; an ImportError (the training code being
    edited under us) is retried after ``wait`` seconds with the pipeline modules imported afresh."""
    for attempt in range(1, attempts + 1):
        try:
            from poise.pipelines.train import train

            return train(task, promote_if_passed=False)
        except ImportError as exc:
            if attempt == attempts:
                raise
            say(f"training failed to import ({type(exc).__name__}: {exc}); retrying in {wait:.0f} s")
            for module in [m for m in sys.modules if m.startswith("poise.pipelines")]:
                del sys.modules[module]
            time.sleep(wait)
    raise AssertionError("unreachable")


def train_two_versions(budget: float) -> list[dict[str, Any]]:
    from poise.contracts import TaskSpec
    from poise.registry import versions

    trained = []
    for seed in (0, 1):
        say(f"training {NAME} seed {seed} ({budget:.0f} s budget)")
        task = TaskSpec(data=str(DATA), target="target", budget_seconds=budget, model_name=NAME, seed=seed)
        outcome = train_with_retry(task)
        c = outcome.candidate
        trained.append({"version": c.version, "seed": seed, "strategy": c.strategy, "estimator": c.estimator,
                        "ap": c.holdout_metrics.get("average_precision"), "n_trials": c.n_trials,
                        "seconds": outcome.seconds, "features": c.features})
        say(f"  v{c.version}: {c.strategy} / {c.estimator}, holdout AP {trained[-1]['ap']:.4f}, "
            f"{outcome.seconds:.1f} s")
    for entry in trained:
        entry["members"] = versions.load(f"{NAME}:{entry['version']}").card.members
    versions.promote(NAME, trained[0]["version"])
    return trained


# ------------------------------------------------------------------------------------------ the server
def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    proc: subprocess.Popen
    base: str
    log_path: Path
    startup_seconds: float

    def cpu_seconds(self) -> float:
        """User + system CPU of the server process (all its threads) so far."""
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK

    def rss_mb(self) -> float:
        for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        return float("nan")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


def start_server(home: Path, port: int, poll: float) -> tuple[Server, list[str]]:
    import httpx

    command = [poise_executable(), "serve", "--model", NAME, "--host", "127.0.0.1", "--port", str(port),
               "--poll", str(poll)]
    env = {**os.environ, "POISE_HOME": str(home)}
    env.pop("POISE_SERVE_TOKEN", None)
    log_path = home / "serve.log"
    started = time.perf_counter()
    with log_path.open("wb") as log_file:  # a file, not a pipe: a full pipe would stall the server
        proc = subprocess.Popen(command, env=env, stdout=log_file, stderr=subprocess.STDOUT, cwd=home)
    base = f"http://127.0.0.1:{port}"
    server = Server(proc, base, log_path, 0.0)
    deadline = started + 180
    while time.perf_counter() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"poise serve exited with {proc.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/health", timeout=2, trust_env=False).status_code == 200:
                server.startup_seconds = time.perf_counter() - started
                return server, command
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    server.stop()
    raise SystemExit(f"poise serve did not answer /health within 180 s:\n{log_path.read_text()[-3000:]}")


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


def client_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def machine_busy_seconds() -> float:
    """CPU seconds all processes on the machine have spent so far (every core, idle and iowait excluded)."""
    fields = [int(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    return (sum(fields[:8]) - fields[3] - fields[4]) / CLK_TCK


def wait_until_idle(limit: float, busy_below: float = 0.15) -> float:
    """Wait (at most ``limit`` s) until the machine's other work uses under ``busy_below`` cores; returns that use."""
    deadline = time.perf_counter() + limit
    while True:
        before, cpu_before, started = machine_busy_seconds(), client_cpu_seconds(), time.perf_counter()
        time.sleep(3)
        wall = time.perf_counter() - started
        other = (machine_busy_seconds() - before - (client_cpu_seconds() - cpu_before)) / wall
        if other < busy_below or time.perf_counter() > deadline:
            return other
        say(f"  the machine is busy with other work ({other:.2f} cores); waiting")


def pct(values: list[float], q: float) -> float:
    import numpy as np

    return float(np.percentile(values, q)) if values else float("nan")


def latency_phase(server: Server, bodies: list[bytes], clients: int, requests: int, warmup: int) -> dict[str, Any]:
    warm, _ = fire(server.base, bodies, clients, count=warmup)
    cpu_server, cpu_client, busy = server.cpu_seconds(), client_cpu_seconds(), machine_busy_seconds()
    shots, wall = fire(server.base, bodies, clients, count=requests)
    server_cores = (server.cpu_seconds() - cpu_server) / wall
    client_cores = (client_cpu_seconds() - cpu_client) / wall
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
def batch_phase(server: Server, frame: Any, repeats: int) -> tuple[list[dict[str, Any]], int]:
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
    cpu_server, cpu_client, busy, began = (server.cpu_seconds(), client_cpu_seconds(), machine_busy_seconds(),
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
             - (client_cpu_seconds() - cpu_client)) / wall
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


def move_alias(via: str, what: str, version: str, home: Path) -> None:
    if via == "api":
        from poise.registry import versions

        if what == "promote":
            versions.promote(NAME, version)
        else:
            versions.rollback(NAME)
        return
    command = [poise_executable(), *(["promote", NAME, version] if what == "promote" else ["rollback", NAME])]
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


def swap_phase(server: Server, bodies: list[bytes], clients: int, v1: str, v2: str, via: str, home: Path,
               settle: float, min_seconds: float) -> SwapResult:
    import httpx

    shots: list[Shot] = []
    stop = threading.Event()
    result = SwapResult(clients, via, shots, 0.0)
    loader = threading.Thread(target=lambda: result.__setattr__("wall", fire(server.base, bodies, clients,
                                                                              stop=stop, sink=shots)[1]))
    cpu_before, client_before, busy_before = server.cpu_seconds(), client_cpu_seconds(), machine_busy_seconds()
    began = time.perf_counter()
    loader.start()
    try:
        time.sleep(settle)
        for what, to in (("promote", v2), ("rollback", v1)):
            started, wall_started = time.perf_counter(), time.time()
            move_alias(via, what, to, home)
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
    result.other_cpu = machine_busy_seconds() - busy_before - result.server_cpu - (client_cpu_seconds() - client_before)
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


# ------------------------------------------------------------------------------------------ the log
def prediction_log(home: Path) -> dict[str, Any]:
    path = home / "predictions.db"
    if not path.exists():
        return {"exists": False}
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        rows = dict(db.execute("SELECT version, COUNT(*) FROM predictions GROUP BY version").fetchall())
        requests = db.execute("SELECT COUNT(DISTINCT request_id) FROM predictions").fetchone()[0]
    finally:
        db.close()
    size = sum(p.stat().st_size for p in home.glob("predictions.db*"))
    return {"exists": True, "rows_by_version": rows, "rows": sum(rows.values()), "requests": requests,
            "mb": size / 2**20}


def in_process_costs(frame: Any, home: Path, version: str, swap_to: str, repeats: int = 300) -> dict[str, Any]:
    """Scoring and logging timed without HTTP, with the server stopped: what one request spends where, and
    how long the server's swap takes to load ``swap_to`` (``poise.deploy.server.load_version``) on an idle machine."""
    import numpy as np

    from poise.registry import versions
    from poise.registry.predictions import PredictionStore

    loaded = versions.load(f"{NAME}:{version}")
    store = PredictionStore(home / "scratch-predictions.db")
    busy, own, began = machine_busy_seconds(), client_cpu_seconds(), time.perf_counter()

    def timed(fn: Any, n: int) -> float:
        times = []
        for _ in range(n):
            started = time.perf_counter()
            fn()
            times.append(time.perf_counter() - started)
        return 1000 * float(np.median(times))

    from poise.deploy.server import load_version

    load_times = []
    for _ in range(3):
        started = time.perf_counter()
        load_version(NAME, swap_to)
        load_times.append(time.perf_counter() - started)
    out: dict[str, Any] = {"load_ms": 1000 * float(np.median(load_times)), "rows": {}}
    for rows, n in ((1, repeats), (len(frame), 5)):
        part = frame.head(rows).reset_index(drop=True)
        scored = loaded.predict(part)
        proba, pred = scored["proba"].astype(float).tolist(), scored["pred"].tolist()
        out["rows"][rows] = {
            "predict_ms": timed(lambda p=part: loaded.predict(p), n),
            "log_ms": timed(lambda p=part, a=proba, b=pred: store.log(NAME, version, p, a, b), n),
        }
    store.close()
    out["other_cores"] = (machine_busy_seconds() - busy - (client_cpu_seconds() - own)) / (time.perf_counter() - began)
    return out


# ------------------------------------------------------------------------------------------ report
def machine() -> dict[str, str]:
    cpu = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    libs = ", ".join(f"{n} {metadata.version(n)}" for n in ("fastapi", "uvicorn", "httpx", "mlflow", "scikit-learn",
                                                            "pandas"))
    return {"cores": str(len(os.sched_getaffinity(0))), "cpu": cpu, "python": platform.python_version(),
            "os": f"{platform.system()} {platform.release()}", "libs": libs}


def fmt(value: Any, digits: int = 1) -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        return "—" if value != value else f"{value:,.{digits}f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def render(r: dict[str, Any]) -> str:
    m, lines = r["machine"], []
    add = lines.append
    add("# Benchmark: `poise serve` under load on loopback\n")
    add(f"Command: `{r['command']}`  ")
    add(f"Date: {r['date']}  ")
    add(f"Machine: {m['cores']} cores ({m['cpu']}), {m['os']}, Python {m['python']}; {m['libs']}.  ")
    add(f"**The load generator and the server share the same {m['cores']} cores**: every number below includes "
        "the competition for CPU between them (the `client cores` column shows how much the generator took; "
        "`other cores` is what the rest of the machine used meanwhile, from `/proc/stat`).  ")
    add(f"Server: `{' '.join(r['server_command'])}` (one uvicorn process, the default worker thread pool), "
        f"ready {r['startup_seconds']:.1f} s after launch, {r['rss_mb']:.0f} MB resident at the end. "
        "No token; every prediction is logged to `predictions.db` under `POISE_HOME`, as always.  ")
    add(f"Shared machine: before each phase the benchmark waited (up to {r['wait_idle']:g} s) for other work to "
        f"stop, and a phase during which other processes used more than {r['max_other']:g} cores was measured "
        "again: " + ("; ".join(f"{d['phase']} ({d['other_cores']:.2f} cores, {d['errors']} errors)"
                              for d in r["discarded"]) or "none was") + ".  ")
    add("Client: Python threads, one keep-alive httpx connection each, closed loop (a client sends its next "
        "request when the previous one is answered); latency is measured at the client, request sent to answer "
        "parsed.\n")

    add("## The model\n")
    add(f"`{NAME}` trained on `poise/examples/ai4i2020.csv` (10,000 rows, target `target`) with the data-driven "
        f"plan and a {r['budget']:.0f} s budget per version.\n")
    add("| version | seed | strategy / estimator | blended members | trials | holdout AP | training s |")
    add("|---|---:|---|---|---:|---:|---:|")
    for t in r["trained"]:
        members = ", ".join(t.get("members") or []) or "—"
        add(f"| v{t['version']} | {t['seed']} | {t['strategy']} / {t['estimator']} | {members} | {t['n_trials']} | "
            f"{fmt(t['ap'], 4)} | {fmt(t['seconds'])} |")
    add("")

    add("## Single-row `POST /predict`\n")
    n_features, v1 = len(r["trained"][0]["features"]), r["trained"][0]["version"]
    add(f"`{{\"record\": {{...}}}}` with the model's {n_features} input columns, rows cycled from the data; "
        f"{r['warmup']} warm-up requests per level are not counted. Served by v{v1}.\n")
    add("| clients | requests | errors | req/s | p50 ms | p90 ms | p99 ms | max ms | server CPU ms/req | "
        "server cores | client cores | other cores |")
    add("|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for p in r["latency"]:
        add(f"| {p['clients']} | {p['requests']:,} | {p['errors']} | {fmt(p['rps'])} | {fmt(p['p50'])} | "
            f"{fmt(p['p90'])} | {fmt(p['p99'])} | {fmt(p['max'])} | {fmt(p['server_cpu_ms'])} | "
            f"{fmt(p['server_cores'], 2)} | {fmt(p['client_cores'], 2)} | {fmt(p['other_cores'], 2)} |")
    add("")
    add("CPU columns are in cores (1.00 = one core busy for the whole level): the server process and the load "
        "generator from their own counters, `other cores` = the machine's busy time (`/proc/stat`) minus both, "
        "so it is 0 when nothing else ran; the two kinds of counters are kept differently, so values within "
        "±0.1 of 0 are noise.\n")

    add(f"## One batch of {r['batch'][0]['rows']:,} rows\n")
    add(f"Median of {r['batch'][0]['repeats']} requests each, one at a time; wall time at the client includes "
        "sending the body and parsing the answer. `max |Δproba|` compares each way's probabilities with the "
        "JSON answer.\n")
    add("| way | body MB | errors | wall s (median) | wall s (best) | rows/s | max \\|Δproba\\| |")
    add("|---|---:|---:|---:|---:|---:|---:|")
    for b in r["batch"]:
        add(f"| {b['way']} | {b['bytes'] / 2**20:.2f} | {b['errors']} | {fmt(b['wall'], 2)} | {fmt(b['min'], 2)} | "
            f"{fmt(b['rows_per_s'], 0)} | {b['max_diff']:.1e} |")
    add("")
    add(f"Other processes used {r['batch'][0]['other_cores']:.2f} cores during the batches.\n")

    s = r["swap"]
    how = ("`versions.promote` / `versions.rollback` in the load generator's process" if s["via"] == "api"
           else "`poise promote` / `poise rollback` subprocesses")
    add("## Hot swap under load\n")
    add(f"{s['clients']} clients fire single-row requests for {s['wall']:.1f} s without pause. After "
        f"{r['settle']:.0f} s, v{r['trained'][1]['version']} is promoted; {r['settle']:.0f} s after its first "
        f"answer, `@champion` is rolled back to v{r['trained'][0]['version']}; the load runs "
        f"{r['settle']:.0f} s more. Aliases moved with {how}; the server polls `@champion` every "
        f"{r['poll']:g} s (`--poll`)."
        + (" With the CLI the times below count from launching the command (most of its run is importing poise), "
           "and `alias write ms` is the whole command." if s["via"] == "cli" else "") + "\n")
    add("| requests | errors | answers per version | X-Model-Version ≠ body | stale answers | no request_id | "
        "req/s | p50 ms | p99 ms | max ms |")
    add("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|")
    per_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(s["by_version"].items()))
    add(f"| {s['requests']:,} | **{s['errors']}** | {per_version} | {s['mismatched']} | {s['stale']} | "
        f"{s['no_request_id']} | {fmt(s['rps'])} | {fmt(s['p50'])} | {fmt(s['p99'])} | {fmt(s['max'])} |")
    add("")
    add("| alias move | alias write ms | move → new version loaded (server clock) s | "
        "move → first answer from it s |")
    add("|---|---:|---:|---:|")
    for mv in s["moves"]:
        add(f"| {mv['what']} | {fmt(mv['alias_ms'], 0)} | {fmt(mv['to_loaded'], 2)} | "
            f"{fmt(mv['to_first_answer'], 2)} |")
    add("")
    add(f"Requests sent while a new version was being loaded (between an alias move and the new version's first "
        f"answer): {s['loading_n']:,}, p50 {fmt(s['loading_p50'])} ms, p99 {fmt(s['loading_p99'])} ms, "
        f"max {fmt(s['loading_max'])} ms. \"Stale answers\" counts answers from the old version to requests sent "
        f"after the new version had already answered (a mixed state); it must be 0. After the run `/health` said "
        f"`{s['health_status']}`, serving v{s['served_after']}, last swap error: {s['last_swap_error']}. "
        f"Server {s['server_cores']:.2f} cores, other processes {s['other_cores']:.2f} cores during the phase.\n")
    if s["error_examples"]:
        add("Errors seen: " + "; ".join(f"`{e}`" for e in s["error_examples"]) + "\n")

    log, c = r["log"], r["costs"]
    add("## The prediction log\n")
    if log.get("exists"):
        by_version = ", ".join(f"v{v}: {n:,}" for v, n in sorted(log["rows_by_version"].items()))
        add(f"`predictions.db` held {log['rows']:,} rows from {log['requests']:,} requests ({by_version}; "
            f"{log['mb']:.1f} MB with its WAL) against {r['rows_acknowledged']:,} rows the server answered with "
            f"HTTP 200 (warm-ups included): "
            f"{'every answered row is logged' if log['rows'] == r['rows_acknowledged'] else 'a MISMATCH'}.\n")
    else:
        add("No `predictions.db` was written.\n")
    add("`poise serve` has no setting to turn logging off, so its cost was measured in-process with the server "
        f"stopped: v{r['trained'][0]['version']} loaded with `versions.load`, `LoadedModel.predict` and "
        "`PredictionStore.log` (into a scratch database) timed on the same rows (median).\n")
    add("| rows | model predict ms | log ms | log / (predict + log) |")
    add("|---:|---:|---:|---:|")
    for rows, cost in c["rows"].items():
        share = cost["log_ms"] / (cost["predict_ms"] + cost["log_ms"])
        add(f"| {int(rows):,} | {fmt(cost['predict_ms'], 2)} | {fmt(cost['log_ms'], 2)} | {share:.0%} |")
    add("")
    one = c["rows"].get(1)
    first = r["latency"][0] if r["latency"] and r["latency"][0]["clients"] == 1 else None
    if one and first:
        add(f"With one client the median request took {first['p50']:.1f} ms at the client; predict + log of one row "
            f"in-process take {one['predict_ms'] + one['log_ms']:.1f} ms, so HTTP, request validation, building the "
            f"frame and the JSON answer add about {first['p50'] - one['predict_ms'] - one['log_ms']:.1f} ms.\n")
    add(f"Other processes used {c['other_cores']:.2f} cores during these in-process timings.\n")
    add(f"Loading v{r['trained'][1]['version']} the way the server's swap does (`poise.deploy.server.load_version`: "
        f"the MLflow model and its registry facts), in-process on the idle machine: {c['load_ms']:,.0f} ms "
        "(median of 3).")
    add("")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------ main
def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, default=None, help="POISE_HOME to use (default: a fresh temp folder, "
                                                                "deleted afterwards); must be empty or new")
    parser.add_argument("--budget", type=float, default=20.0, help="training seconds per version")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 2, 8], help="client counts for latency")
    parser.add_argument("--requests", type=int, default=2000, help="measured single-row requests per level")
    parser.add_argument("--warmup", type=int, default=100, help="single-row requests before each level")
    parser.add_argument("--batch-rows", type=int, default=10_000)
    parser.add_argument("--batch-repeats", type=int, default=5)
    parser.add_argument("--swap-clients", type=int, default=8)
    parser.add_argument("--swap-via", choices=["api", "cli"], default="api",
                        help="move aliases in-process (api) or with `poise promote` / `poise rollback` (cli)")
    parser.add_argument("--settle", type=float, default=4.0, help="seconds of load before and after each swap")
    parser.add_argument("--swap-seconds", type=float, default=12.0, help="minimum length of the hot-swap phase")
    parser.add_argument("--poll", type=float, default=2.0, help="the server's --poll (its default is 2 s)")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each phase, wait up to this many seconds for other work on the machine to stop")
    parser.add_argument("--max-other", type=float, default=0.15,
                        help="repeat a phase when other processes used more cores than this during it")
    parser.add_argument("--attempts", type=int, default=4, help="at most this many tries per phase")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    args = parser.parse_args()

    if args.home is not None:
        home = args.home.expanduser().resolve()
        if home.exists() and any(home.iterdir()):
            raise SystemExit(f"{home} is not empty: the benchmark needs a fresh POISE_HOME")
        home.mkdir(parents=True, exist_ok=True)
        owned = False
    else:
        home, owned = Path(tempfile.mkdtemp(prefix="poise-serve-bench-")), True
    os.environ["POISE_HOME"] = str(home)
    os.environ.pop("POISE_TRACKING_URI", None)
    os.environ.pop("POISE_ARTIFACT_ROOT", None)
    os.environ.pop("POISE_OPTUNA_STORAGE", None)
    say(f"POISE_HOME={home}")

    import pandas as pd

    from poise.settings import get_settings, reset_settings

    reset_settings()
    from poise.registry import tracking

    tracking.connect(get_settings())

    results: dict[str, Any] = {
        "command": "python " + " ".join(shlex.quote(a) for a in [os.path.relpath(__file__, ROOT), *sys.argv[1:]]),
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"), "machine": machine(), "budget": args.budget,
        "warmup": args.warmup, "settle": args.settle, "poll": args.poll, "wait_idle": args.wait_idle,
        "max_other": args.max_other,
    }
    server = None
    try:
        results["trained"] = trained = train_two_versions(args.budget)
        v1, v2 = trained[0]["version"], trained[1]["version"]
        features = trained[0]["features"]
        frame = pd.read_csv(DATA)[features]
        bodies = [json.dumps({"record": row}).encode() for row in frame.head(1000).to_dict(orient="records")]

        say("starting poise serve")
        server, command = start_server(home, free_port(), args.poll)
        results["server_command"] = ["poise", *command[1:]]
        results["startup_seconds"] = server.startup_seconds
        say(f"  {server.base} ready after {server.startup_seconds:.1f} s")
        rows_ok = 0

        results["latency"], results["discarded"] = [], []

        def steady(label: str, run: Any, other_of: Any, rows_of: Any, errors_of: Any) -> Any:
            """Run a phase; repeat it (up to --attempts) while other processes used more than --max-other cores.

            A discarded attempt's errors are kept and reported: a repeat may never hide a failure."""
            nonlocal rows_ok
            for attempt in range(1, args.attempts + 1):
                if args.wait_idle > 0:
                    wait_until_idle(args.wait_idle, args.max_other)
                outcome = run()
                rows_ok += rows_of(outcome)
                other = other_of(outcome)
                if other <= args.max_other or attempt == args.attempts:
                    return outcome
                results["discarded"].append({"phase": label, "other_cores": other, "errors": errors_of(outcome)})
                say(f"  other processes used {other:.2f} cores during {label}: measuring it again")
            raise AssertionError("unreachable")

        for clients in args.concurrency:
            say(f"single-row /predict, {clients} client(s), {args.requests} requests")
            phase = steady(f"single-row, {clients} client(s)",
                           lambda c=clients: latency_phase(server, bodies, c, args.requests, args.warmup),
                           lambda o: o["other_cores"], lambda o: o["rows_ok"] + o["warmup_rows"],
                           lambda o: o["errors"])
            results["latency"].append(phase)
            say(f"  {phase['rps']:.1f} req/s, p50 {phase['p50']:.1f} ms, p99 {phase['p99']:.1f} ms, "
                f"{phase['errors']} errors {phase['error_examples']}, other cores {phase['other_cores']:.2f}")

        say(f"batches of {args.batch_rows} rows")
        batch_frame = pd.concat([frame] * (args.batch_rows // len(frame) + 1)).head(args.batch_rows)
        batch_frame = batch_frame.reset_index(drop=True)
        results["batch"], _ = steady("batches", lambda: batch_phase(server, batch_frame, args.batch_repeats),
                                     lambda o: o[0][0]["other_cores"], lambda o: o[1],
                                     lambda o: sum(b["errors"] for b in o[0]))

        say(f"hot swap under load, {args.swap_clients} clients")
        results["swap"] = s = steady(
            "the hot swap",
            lambda: summarise_swap(swap_phase(server, bodies, args.swap_clients, v1, v2, args.swap_via, home,
                                              args.settle, args.swap_seconds)),
            lambda o: o["other_cores"], lambda o: o["rows_ok"], lambda o: o["errors"])
        say(f"  {s['requests']} requests, {s['errors']} errors, per version {s['by_version']}, stale {s['stale']}, "
            f"other cores {s['other_cores']:.2f}")
        if s["error_examples"]:
            say(f"  errors: {s['error_examples']}")

        results["rss_mb"] = server.rss_mb()
        results["rows_acknowledged"] = rows_ok
        server.stop()
        say("checking the prediction log; timing scoring and logging in-process")
        results["log"] = prediction_log(home)
        for attempt in range(1, args.attempts + 1):
            if args.wait_idle > 0:
                wait_until_idle(args.wait_idle, args.max_other)
            results["costs"] = in_process_costs(frame, home, v1, v2)
            if results["costs"]["other_cores"] <= args.max_other or attempt == args.attempts:
                break
            results["discarded"].append({"phase": "in-process costs", "errors": 0,
                                         "other_cores": results["costs"]["other_cores"]})
    finally:
        if server is not None:
            server.stop()
            if server.proc.returncode not in (0, None, -15):  # -15: uvicorn re-raises the SIGTERM it handled
                say(f"server exit code {server.proc.returncode}; log tail:\n{server.log_path.read_text()[-2000:]}")
        if owned:
            shutil.rmtree(home, ignore_errors=True)

    report = render(results)
    print(report)
    if args.out is not None:
        args.out.write_text(report + "\n")
        say(f"wrote {args.out}")


if __name__ == "__main__":
    main()
