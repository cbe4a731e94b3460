"""Recovery benchmark: from a drifting batch with its labels to the new champion answering, step by step.

For each dataset, in one fresh ``POISE_HOME`` (a temporary folder unless ``--home``):

1. the demo tables of ``poise.examples.drift`` are written: AI4I history / live_same / live_shift
   (air and process temperature +3 K, torque × 1.2, labels unchanged), occupancy history (the
   first days) / live (the last days);
2. a champion is trained on the history (the data-driven plan, ``--budget`` seconds);
3. ``poise serve`` starts as a real subprocess on a free loopback port;
4. AI4I only, a control: the unshifted live rows and their labels are sent and a recovery check
   runs on them (it should change nothing);
5. the drifting batch (AI4I live_shift, occupancy live) goes to ``/predict`` in batches of 250
   rows and its labels to ``/feedback``. The clock starts when the last label is attached; a
   recovery check runs at once (``Lifecycle().recover(NAME, window=rows, budget_seconds=budget)``,
   in a process that is already up, as ``poise watch`` is), while a thread polls ``GET /model``
   every 0.1 s. The clock stops when ``/model`` first names another version;
6. the steps are timed from the run's audit trail (``Journal.events(run_id)``: each step's event
   is written when the step ends): monitor (load the champion and the logged window, Evidently
   with its HTML report, store the report), decide (diagnose, recompose, approve by policy),
   retrain, gate (paired bootstrap on recent labelled rows neither model saw), deploy (alias
   move, servers told); the metric before and after comes from the gate report.

With ``--monitor-detail`` the occupancy drift check is taken apart afterwards: one
``check_drift`` of the same reference and window, with and without the HTML report, without the
date/time column (what the monitor checks) and with it as a categorical column (what it would
cost to watch it).

    python benchmarks/recovery.py --budget 60 --monitor-detail --out benchmarks/recovery_results.md

The machine is shared: before each dataset the benchmark can wait (``--wait-idle``) for other
processes to stop, and it reports how many cores other processes used while it measured. The raw
numbers are kept in ``POISE_HOME/recovery-results.json``; ``--render THAT.json --out FILE`` redraws
the tables without running anything. The reading of the numbers in ``recovery_results.md`` is
written by hand after a run.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

from common import machine_info, say

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DATASETS = ("ai4i", "occupancy")
STEPS = ("monitor", "decide", "retrain", "gate", "deploy")


# ---------------------------------------------------------------------- who else uses the machine
def _processes() -> dict[int, tuple[int, float]]:
    """pid → (parent pid, CPU seconds used so far: user + system) of every process."""
    import psutil

    found = {}
    for process in psutil.process_iter(["ppid", "cpu_times"]):
        times = process.info["cpu_times"]
        if times is not None:  # None: gone or not ours to read
            found[process.pid] = (process.info["ppid"], times.user + times.system)
    return found


def _outside(processes: dict[int, tuple[int, float]], root: int) -> set[int]:
    """Processes that are not ``root`` nor below it."""
    children: dict[int, list[int]] = {}
    for pid, (parent, _) in processes.items():
        children.setdefault(parent, []).append(pid)
    ours, stack = set(), [root]
    while stack:
        pid = stack.pop()
        ours.add(pid)
        stack += children.get(pid, [])
    return set(processes) - ours


class OtherLoad:
    """Cores used by processes outside this benchmark's process tree between start() and cores().

    Counted from the other processes' own CPU times (a process that starts and ends in between is
    missed), so the benchmark's own short-lived children are never taken for someone else's work.
    """

    def start(self) -> OtherLoad:
        self._t, self._before = time.monotonic(), _processes()
        return self

    def cores(self) -> float:
        seconds = time.monotonic() - self._t
        now = _processes()
        others = _outside(now, os.getpid())
        used = sum(now[pid][1] - (self._before[pid][1] if pid in self._before else 0) for pid in others)
        return max(0.0, used / max(seconds, 1e-9))


def wait_until_idle(limit: float, max_other: float = 0.15, quiet_seconds: float = 10.0) -> float:
    """Wait (at most ``limit`` s) until other processes use fewer than ``max_other`` cores for a while."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        probe = OtherLoad().start()
        time.sleep(quiet_seconds)
        if probe.cores() < max_other:
            break
        say("  the machine is busy with other work; waiting")
    return time.monotonic() - started


# ---------------------------------------------------------------------- one dataset
class VersionWatch(threading.Thread):
    """Poll GET /model until it names a version other than ``old``; records when (UTC)."""

    def __init__(self, url: str, old: str, every: float = 0.1) -> None:
        super().__init__(daemon=True)
        self.url, self.old, self.every = url, old, every
        self.seen: tuple[str, datetime] | None = None
        self.stop = threading.Event()

    def run(self) -> None:
        import httpx

        with httpx.Client(base_url=self.url, timeout=10.0) as client:
            while not self.stop.is_set():
                try:
                    version = str(client.get("/model").json()["version"])
                except (httpx.HTTPError, ValueError, KeyError):
                    version = self.old
                if version != self.old:
                    self.seen = (version, datetime.now(UTC))
                    return
                self.stop.wait(self.every)


def step_seconds(events: list[Any], started: datetime) -> dict[str, float]:
    """Seconds per step from the audit events' times (each written when its step ends)."""
    at = {e.step: e.at for e in events}
    edges = [("monitor", started, at.get("monitor")), ("decide", at.get("monitor"), at.get("approve")),
             ("retrain", at.get("approve"), at.get("train")), ("gate", at.get("train"), at.get("gate")),
             ("deploy", at.get("gate"), at.get("deploy"))]
    return {name: (end - begin).total_seconds() for name, begin, end in edges if begin and end}


def judging_rows(recent: str | None, target: str, positive: Any, fraction: float) -> tuple[int, int] | None:
    """(rows, positives) the gate judged on: the same split of the recent labelled rows the recovery made."""
    from types import SimpleNamespace

    from poise.pipelines.recover import recent_parts

    if not recent:
        return None
    champion = SimpleNamespace(card=SimpleNamespace(target=target, positive_label=positive))
    _, judge = recent_parts(recent, champion, fraction)  # type: ignore[arg-type]
    return len(judge.y), int(judge.y.sum())


def run_dataset(dataset: str, budget: float, home: Path, seed: int, wait_idle: float) -> dict[str, Any]:
    import httpx
    import pandas as pd

    from poise.agents.runner import Lifecycle
    from poise.contracts import TaskSpec
    from poise.examples import drift
    from poise.examples.harness import ModelServer, model_info, send_labels, send_rows
    from poise.pipelines.train import train

    name = f"bench-recovery-{dataset}"
    result: dict[str, Any] = {"dataset": dataset, "model": name}
    tables = {t.name: t for t in drift.write_tables(dataset, home / "tables" / dataset, seed)}
    result["tables"] = {k: {"rows": len(t.frame), "positives": t.positives, "about": t.about}
                        for k, t in tables.items()}
    if wait_idle > 0:
        result["waited"] = wait_until_idle(wait_idle)
    say(f"{dataset}: training the champion on the history ({budget:g} s)")
    outcome = train(TaskSpec(data=str(tables["history"].path), target=drift.TARGET, budget_seconds=budget,
                             model_name=name, seed=seed))
    c = outcome.candidate
    result["champion"] = {"version": c.version, "strategy": c.strategy, "estimator": c.estimator,
                          "n_trials": c.n_trials, "seconds": outcome.seconds, "metric": c.metric,
                          "holdout": c.holdout_metrics[c.metric], "promoted": outcome.promoted}
    if not outcome.promoted:
        raise RuntimeError(f"{name} v{c.version} did not pass its gates: {outcome.gate.reasons}")

    lifecycle = Lifecycle()
    server = ModelServer(name, home, home / "logs" / f"serve-{name}.log")
    try:
        server.start()
        with httpx.Client(base_url=server.url, timeout=300.0) as client:
            features = list(model_info(client)["features"])
            if dataset == "ai4i":
                say(f"{dataset}: control batch (live_same)")
                frame = pd.read_csv(tables["live_same"].path)
                sent = send_rows(client, frame, features, drift.TARGET)
                send_labels(client, sent)
                began = time.monotonic()
                view = lifecycle.recover(name, window=sent.rows, budget_seconds=budget)
                result["control"] = {"rows": sent.rows, "seconds": time.monotonic() - began, "status": view.status,
                                     "severity": view.values["report"]["severity"],
                                     "decay": view.values["report"].get("decay"),
                                     "action": (view.values.get("recovery") or {}).get("action")}
            drifting = tables["live_shift" if dataset == "ai4i" else "live"]
            frame = pd.read_csv(drifting.path)
            say(f"{dataset}: drifting batch ({len(frame):,} rows) and its labels")
            began = time.monotonic()
            sent = send_rows(client, frame, features, drift.TARGET)
            predict_seconds = time.monotonic() - began
            labelled = send_labels(client, sent)
            feedback_seconds = time.monotonic() - began - predict_seconds
            old = str(model_info(client)["version"])

            if wait_idle > 0:
                say(f"{dataset}: waiting for the machine to be idle before the clock starts")
                result["waited_before_recovery"] = wait_until_idle(wait_idle)
            load = OtherLoad().start()
            watch = VersionWatch(server.url, old)
            t0 = datetime.now(UTC)
            watch.start()
            say(f"{dataset}: recovery check (the clock runs)")
            view = lifecycle.recover(name, window=sent.rows, budget_seconds=budget)
            returned = datetime.now(UTC)
            if view.status == "deployed":
                watch.join(timeout=60)
            watch.stop.set()
            other = load.cores()
    finally:
        server.stop()
        lifecycle.close()

    values = view.values
    report, recovery, gate = values.get("report") or {}, values.get("recovery") or {}, values.get("gate")
    events = lifecycle.journal.events(view.run_id)
    result.update({
        "batch": {"rows": sent.rows, "positives": sum(sent.y()), "labelled": labelled,
                  "requests": len(sent.request_ids), "predict_seconds": predict_seconds,
                  "feedback_seconds": feedback_seconds},
        "run_id": view.run_id, "status": view.status, "other_cores": other,
        "steps": step_seconds(events, t0),
        "returned_seconds": (returned - t0).total_seconds(),
        "served": None if watch.seen is None else {"version": watch.seen[0],
                                                   "seconds": (watch.seen[1] - t0).total_seconds()},
        "report": {k: report.get(k) for k in ("severity", "reasons", "drifted_share", "decay", "current_score",
                                              "reference_score", "labelled_rows", "current_rows",
                                              "reference_rows")},
        "drifted": sorted(f["column"] for f in report.get("features", []) if f["drifted"]),
        "recovery": {k: recovery.get(k) for k in ("action", "reasons", "reference_fraction",
                                                  "recent_eval_fraction", "unattended")},
        "candidate": None if not values.get("candidate") else {
            k: values["candidate"][k] for k in ("version", "strategy", "estimator", "n_trials", "threshold")},
        "gate": gate,
        "judged": judging_rows(values.get("recent"), drift.TARGET, 1, recovery.get("recent_eval_fraction") or 0.5),
    })
    return result


# ---------------------------------------------------------------------- the monitor step, taken apart
def monitor_detail(name: str, version: str, rows: int, home: Path) -> list[dict[str, Any]]:
    """check_drift on the champion's reference and its logged window: HTML or not, date/time column or not."""
    import numpy as np

    from poise.monitors.drift import check_drift
    from poise.pipelines.monitor import binary_labels
    from poise.registry import tracking, versions
    from poise.registry.predictions import PredictionStore, default_path
    from poise.settings import get_settings

    tracking.connect(get_settings())
    loaded = versions.load(f"{name}:{version}")
    card = loaded.card
    reference = versions.reference(name, version)
    reference = reference[reference[versions.PART] == "train"].reset_index(drop=True)
    logged = PredictionStore(default_path()).window(name, last_n=rows, version=version)
    window = card.prepare(logged[card.features])
    labels = binary_labels(logged["label"], card.positive_label)
    out = []
    for with_dates in (True, False):
        dates = list(card.datetime) if with_dates else []
        features = [*card.numeric, *card.categorical, *dates]
        for html in (False, True):
            path = home / "monitor-detail" / f"{'with' if with_dates else 'without'}-dates.html" if html else None
            say(f"check_drift: date/time column {'in' if with_dates else 'out'}, HTML {'yes' if html else 'no'}")
            began = time.monotonic()
            report = check_drift(reference[features], window[features], numeric=card.numeric,
                                 categorical=[*card.categorical, *dates],
                                 reference_proba=reference[versions.PROBA].to_numpy(float),
                                 current_proba=logged["proba"].to_numpy(float),
                                 reference_labels=reference[versions.LABEL].to_numpy(int),
                                 current_labels=labels[~np.isnan(labels)].astype(int),
                                 html_path=path)
            out.append({"dates": with_dates, "html": html, "seconds": time.monotonic() - began,
                        "html_mb": None if path is None else path.stat().st_size / 2**20,
                        "drifted": sorted(f.column for f in report.features if f.drifted),
                        "features": len(report.features)})
    return out


# ---------------------------------------------------------------------- the report
def machine() -> str:
    cpu = machine_info()["cpu"]
    versions = " · ".join(f"{p} {metadata.version(p)}" for p in ("scikit-learn", "evidently", "mlflow", "prefect",
                                                                 "langgraph"))
    return (f"Python {platform.python_version()} · {versions} · {platform.machine()}, {os.cpu_count()} cores "
            f"({cpu})")


def _s(seconds: float | None) -> str:
    return "–" if seconds is None else f"{seconds:.1f} s"


def render(results: list[dict[str, Any]], detail: list[dict[str, Any]] | None, meta: dict[str, Any]) -> str:
    lines: list[str] = []
    add = lines.append
    add("# Recovery: from a drifting batch to a new champion serving\n")
    add("Regenerate the tables below with:\n")
    add("```bash")
    add(meta["command"])
    add("```\n")
    add(f"{meta['date']} · {meta['machine']} · budget {meta['budget']:g} s for the first training and for the "
        f"retrain · seed {meta['seed']}\n")
    add("One drift check alone (100,000 rows × 20 columns, with and without the HTML report) is timed in "
        "[drift_results.md](drift_results.md); it is not repeated here.\n")
    add("The data are the demo tables of `poise.examples.drift` (run the same loop with "
        "`python -m poise.examples.drift_demo`):\n")
    for r in results:
        for key, t in r["tables"].items():
            add(f"- {r['dataset']} `{key}.csv`: {t['rows']:,} rows, {t['positives']:,} positives — {t['about']}")
    add("")
    add("The clock starts when the last label of the drifting batch is attached and stops when `GET /model` "
        "(polled every 0.1 s) first names the new version. The steps are read from the recovery run's audit "
        "trail; each event is written when its step ends. The recovery runs in a process that is already up "
        "(imports paid), as `poise watch` is; a `poise watch --every S` adds up to S seconds before the check "
        "starts.\n")

    add("## Time\n")
    head = ["", *[r["dataset"] for r in results]]
    add("| " + " | ".join(head) + " |")
    add("|" + "---|" * len(head))
    rows = [
        ("drifting batch", lambda r: f"{r['batch']['rows']:,} rows, {r['batch']['positives']:,} positives"),
        ("sent to /predict (250 rows a request)", lambda r: _s(r["batch"]["predict_seconds"])),
        ("labels sent to /feedback", lambda r: _s(r["batch"]["feedback_seconds"])),
        *[(f"**{s}**", lambda r, s=s: _s(r["steps"].get(s))) for s in STEPS],
        ("recovery check returned", lambda r: _s(r["returned_seconds"])),
        ("**labels attached → new version answers**",
         lambda r: f"**{_s(r['served']['seconds'])}** (v{r['served']['version']})" if r["served"] else
         f"not replaced ({r['status']})"),
        ("other processes on the machine meanwhile", lambda r: f"{r['other_cores']:.2f} cores"),
    ]
    for label, cell in rows:
        add(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    add("")

    add("## Before and after\n")
    add("| | " + " | ".join(r["dataset"] for r in results) + " |")
    add("|" + "---|" * (len(results) + 1))

    def gate_cell(r: dict[str, Any], what: str) -> str:
        g = r["gate"]
        if not g:
            return "–"
        if what == "champion":
            return f"{g['champion_score']:.4f} (v{g['champion_version']})"
        if what == "challenger":
            return f"{g['candidate_score']:.4f} (v{r['candidate']['version']})"
        low, high = g["difference_ci"]
        return f"{g['candidate_score'] - g['champion_score']:+.4f} [{low:+.4f}, {high:+.4f}]"

    metric_rows = [
        ("metric", lambda r: r["champion"]["metric"]),
        ("champion on its original holdout", lambda r: f"{r['champion']['holdout']:.4f} "
                                                       f"(v{r['champion']['version']}, "
                                                       f"{r['champion']['strategy']}/{r['champion']['estimator']})"),
        ("champion on all recent labelled rows", lambda r: f"{r['report']['current_score']:.4f} "
                                                           f"(decay {r['report']['decay']:+.4f})"
         if r["report"].get("current_score") is not None else "–"),
        ("severity; drifted features", lambda r: f"{r['report']['severity']}; {', '.join(r['drifted']) or 'none'}"),
        ("decision", lambda r: f"{r['recovery']['action'] or 'none'} (old rows kept: "
                               f"{r['recovery']['reference_fraction']:.0%})"),
        ("challenger", lambda r: f"v{r['candidate']['version']} {r['candidate']['strategy']}/"
                                 f"{r['candidate']['estimator']}, {r['candidate']['n_trials']} trials"
         if r["candidate"] else "–"),
        ("judging rows (recent, seen by neither)",
         lambda r: f"{r['judged'][0]:,} ({r['judged'][1]:,} positives)" if r["judged"] else "–"),
        ("**champion on the judging rows**", lambda r: gate_cell(r, "champion")),
        ("**challenger on the judging rows**", lambda r: gate_cell(r, "challenger")),
        ("difference [95% paired-bootstrap CI]", lambda r: gate_cell(r, "difference")),
        ("outcome", lambda r: r["status"]),
    ]
    for label, cell in metric_rows:
        add(f"| {label} | " + " | ".join(cell(r) for r in results) + " |")
    add("")
    add("The gate's own words:\n")
    for r in results:
        for reason in (r["gate"] or {}).get("reasons", []):
            add(f"- {r['dataset']}: {reason}")
    add("")
    controls = [r for r in results if r.get("control")]
    for r in controls:
        c = r["control"]
        decay = "–" if c["decay"] is None else f"{c['decay']:+.4f}"
        add(f"Control ({r['dataset']}): the {c['rows']:,} unshifted live rows with their labels, checked the same "
            f"way before the drifting batch: severity {c['severity']}, decay {decay}, "
            f"{c['action'] or 'no recovery'} ({c['status']}) in {c['seconds']:.1f} s.\n")

    if detail:
        add("## Why the monitor leaves date/time columns out\n")
        add("One `check_drift` of the occupancy champion's reference against the same logged window: without the "
            "`timestamp` column (what the monitor checks) and with it passed to Evidently as a categorical "
            "column, which is what watching a raw date/time column means:\n")
        add("| date/time column | HTML report | time | HTML size | drifted |")
        add("|---|---|---|---|---|")
        for d in detail:
            size = "–" if d["html_mb"] is None else f"{d['html_mb']:.1f} MB"
            add(f"| {'in' if d['dates'] else 'out'} | {'yes' if d['html'] else 'no'} | {d['seconds']:.1f} s | "
                f"{size} | {', '.join(d['drifted'])} ({len(d['drifted'])} of {d['features']}) |")
        add("")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", choices=DATASETS, default=list(DATASETS))
    parser.add_argument("--budget", type=float, default=60.0, help="seconds for the first training and the retrain")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--home", type=Path, default=None, help="POISE_HOME (default: a new temporary folder)")
    parser.add_argument("--monitor-detail", action="store_true",
                        help="also time check_drift on the occupancy window with/without the HTML report and "
                             "the date/time column")
    parser.add_argument("--wait-idle", type=float, default=0.0,
                        help="before each dataset and before the clock starts, wait up to this many seconds for "
                             "other work on the machine to stop")
    parser.add_argument("--out", type=Path, default=None, help="write the markdown report here")
    parser.add_argument("--render", type=Path, default=None,
                        help="only redraw the markdown from a run's recovery-results.json (in its POISE_HOME)")
    args = parser.parse_args()
    if args.render is not None:
        saved = json.loads(args.render.read_text())
        text = render(saved["results"], saved["monitor_detail"], saved["meta"])
        if args.out:
            args.out.write_text(text)
        print(text)
        return
    home = (args.home or Path(tempfile.mkdtemp(prefix="poise-recovery-bench-"))).resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["POISE_HOME"] = str(home)  # before poise.settings is first imported
    sys.path.insert(0, str(ROOT))
    say(f"POISE_HOME={home}")
    meta = {"command": "python benchmarks/recovery.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]),
            "date": f"{datetime.now(UTC):%Y-%m-%d}", "machine": machine(), "budget": args.budget, "seed": args.seed}
    results = [run_dataset(d, args.budget, home, args.seed, args.wait_idle) for d in args.datasets]
    detail = None
    occupancy = next((r for r in results if r["dataset"] == "occupancy"), None)
    if args.monitor_detail and occupancy is not None:
        if args.wait_idle > 0:
            wait_until_idle(args.wait_idle)
        detail = monitor_detail(occupancy["model"], occupancy["champion"]["version"], occupancy["batch"]["rows"],
                                home)
    (home / "recovery-results.json").write_text(json.dumps({"results": results, "monitor_detail": detail,
                                                            "meta": meta}, indent=2, default=str))
    text = render(results, detail, meta)
    if args.out:
        args.out.write_text(text)
        say(f"wrote {args.out}")
    print(text)


if __name__ == "__main__":
    main()
