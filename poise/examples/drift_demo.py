"""Drift and recovery end to end, with one command: train, serve, drift, recover, and the new champion serving.

    python -m poise.examples.drift_demo                        # AI4I with a sensor shift, 30 s budgets
    python -m poise.examples.drift_demo --dataset occupancy    # occupancy: first days → last days
    python -m poise.examples.drift_demo --budget 60 --home /tmp/poise-demo

What happens (every step prints the command a user would type for it):

1. the demo tables are written (``poise.examples.drift``: AI4I history / live_same / live_shift with
   air and process temperature +3 K and torque × 1.2; occupancy history / live, cut in time);
2. a first champion is trained on the history (``poise train``);
3. ``poise serve`` starts as a real process on a free loopback port;
4. AI4I: the unshifted live rows go to ``/predict`` in batches and their labels to ``/feedback``;
   a recovery check (``poise recover NAME --window N``) finds nothing worth acting on;
5. AI4I: the shifted rows and their labels follow; the recovery check now diagnoses the drift,
   decides, retrains on recent labelled rows beside old ones, and judges the challenger against
   the champion on recent labelled rows neither model saw (a paired bootstrap CI). If it is
   better by more than the noise, it is deployed and the running server answers with it.
   Occupancy: the last days' rows are served first without labels (a recovery needs labels to
   learn from and to be judged on), then their labels arrive and the recovery check runs again.

A challenger that does not beat the champion stays ``@challenger``: the demo says so; nothing is
re-run until it "wins". Everything is written under ``--home`` (default: a new temporary folder,
kept afterwards so that ``poise audit``, ``poise recoveries`` and ``poise models`` can be run on it).
The server is stopped when the demo ends, however it ends.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from poise.examples import drift
from poise.examples.harness import (
    BATCH_ROWS,
    ModelServer,
    model_info,
    send_labels,
    send_rows,
    serving,
    wait_for_version,
    write_feedback_csv,
)

if TYPE_CHECKING:
    import httpx

    from poise.agents.runner import Lifecycle, RunView
    from poise.contracts import Candidate

console = Console(highlight=False, soft_wrap=True)


# ---------------------------------------------------------------------- output
def step(title: str) -> None:
    console.rule(f"[bold]{title}")


def command(text: str) -> None:
    console.print(f"[cyan]$ {text}[/]")


def note(text: str) -> None:
    console.print(f"  {text}")


def score(metric: str, y: list[int], proba: list[float], threshold: float) -> float | None:
    """The task metric of served probabilities at the served threshold: what a client can compute from its log."""
    import numpy as np

    from poise.tools import metrics

    if len(set(y)) < 2:
        return None
    return float(metrics.metric_value(metric, np.asarray(y), np.asarray(proba), threshold, None))


def show_recovery(view: RunView) -> None:
    """What one recovery check found, decided and (if it trained) how the challenger was judged."""
    values = view.values
    report = values.get("report") or {}
    colour = {"none": "green", "watch": "yellow", "act": "red"}.get(report.get("severity"), "white")
    console.print(f"  severity [bold {colour}]{report.get('severity')}[/] on {report.get('current_rows')} recent "
                  f"rows ({report.get('labelled_rows')} labelled) against {report.get('reference_rows')} "
                  "reference rows")
    for reason in report.get("reasons", []):
        note(f"  · {reason}")
    console.print("  [bold]diagnosis[/]")
    for line in values.get("diagnosis", []):
        note(f"  · {line}")
    recovery = values.get("recovery") or {}
    action = recovery.get("action") or "no recovery"
    console.print(f"  [bold]decision[/]: {action}" + (" (unattended: the plan allows it)"
                                                      if recovery.get("unattended") else ""))
    for reason in recovery.get("reasons", []):
        note(f"  · {reason}")
    candidate = values.get("candidate")
    if candidate:
        console.print(f"  [bold]challenger[/]: v{candidate['version']} {candidate['strategy']}/"
                      f"{candidate['estimator']}, threshold {candidate['threshold']:.4f}")
    gate = values.get("gate")
    if gate:
        verdict = "[green]passed[/]" if gate["passed"] else "[yellow]not passed[/]"
        console.print(f"  [bold]gate[/] {verdict}")
        for reason in gate.get("reasons", []):
            note(f"  · {reason}")
    console.print(f"  run [bold]{view.run_id}[/] → [bold]{view.status}[/]")


# ---------------------------------------------------------------------- the demo
@dataclass
class Phase:
    """One batch of live rows: served, labelled (now or later), then a recovery check."""

    title: str
    table: drift.Table
    labels_later: bool = False
    about: str = ""


def phases(dataset: str, tables: list[drift.Table]) -> list[Phase]:
    by_name = {t.name: t for t in tables}
    if dataset == "ai4i":
        return [Phase("live rows of the same distribution", by_name["live_same"]),
                Phase("live rows after a sensor shift", by_name["live_shift"], about=drift.describe_shift())]
    return [Phase("the last days, labels not known yet", by_name["live"], labels_later=True)]


def run_demo(dataset: str, budget: float, home: Path, seed: int = 0) -> int:
    """The whole demo; POISE_HOME must already point at ``home``. Returns the exit code."""
    import httpx

    from poise.agents.runner import Lifecycle
    from poise.contracts import TaskSpec
    from poise.pipelines.train import train

    name = f"{dataset}-drift-demo"
    folder = home / "tables"

    step("1. the demo tables")
    command(f"python -m poise.examples.drift --dataset {dataset} --out {shlex.quote(str(folder))}")
    tables = drift.write_tables(dataset, folder, seed)
    for line in drift.summary(tables):
        note(line)
    history = tables[0]

    step(f"2. a first champion, trained on the history ({budget:g} s)")
    command(f"poise train {shlex.quote(str(history.path))} --target {drift.TARGET} --budget {budget:g} "
            f"--name {name} --seed {seed}")
    with console.status("training…") as status:
        outcome = train(TaskSpec(data=str(history.path), target=drift.TARGET, budget_seconds=budget,
                                 model_name=name, seed=seed),
                        on_stage=lambda stage: status.update(f"training: {stage}…"))
    first = outcome.candidate
    metric = first.metric
    note(f"{name} v{first.version}: {first.strategy}/{first.estimator}, {first.n_trials} trials in "
         f"{outcome.seconds:.0f} s; holdout {metric} {first.holdout_metrics[metric]:.4f}, threshold "
         f"{first.threshold:.4f}")
    if not outcome.promoted:
        console.print(f"[red]v{first.version} did not pass its gates ({'; '.join(outcome.gate.reasons)}); "
                      "there is no champion to serve[/]")
        return 1
    note(f"[green]{name}@champion = v{first.version}[/]")

    lifecycle = Lifecycle()
    with serving(name, home) as server, httpx.Client(base_url=server.url, timeout=120.0) as client:
        step("3. serve the champion")
        command(f"{server.command} &")
        info = model_info(client)
        note(f"{server.url} answers with {info['name']} v{info['version']} (GET /model); server log: "
             f"{server.log_path}")
        features = list(info["features"])
        champion_version = str(info["version"])
        last: dict[str, Any] = {}
        for number, phase in enumerate(phases(dataset, tables), start=4):
            last = run_phase(number, phase, client, server, lifecycle, name, features, budget, metric, home)
            if last.get("deployed"):
                break

        step("what changed")
        summarise(name, metric, first, champion_version, last, client)
    lifecycle.close()
    console.print(f"\nThe server is stopped. Everything is kept under {home}; to look further:")
    command(f"export POISE_HOME={shlex.quote(str(home))}")
    command("poise recoveries               # every recovery check and its outcome")
    if last.get("run_id"):
        command(f"poise audit {last['run_id']}       # each step of the last one: who decided what, and when")
    command("poise models                   # versions and aliases")
    return 0


def run_phase(number: int, phase: Phase, client: httpx.Client, server: ModelServer, lifecycle: Lifecycle, name: str,
              features: list[str], budget: float, metric: str, home: Path) -> dict[str, Any]:
    import pandas as pd

    table = phase.table
    frame = pd.read_csv(table.path)
    step(f"{number}. {phase.title}")
    if phase.about:
        note(phase.about)
    example = json.dumps({"records": json.loads(frame[features].head(1).to_json(orient="records"))})
    command(f"curl -s {server.url}/predict -H 'content-type: application/json' -d '{example}'   "
            f"# × {len(frame):,} rows, {BATCH_ROWS} a request")
    sent = send_rows(client, frame, features, drift.TARGET)
    note(f"{sent.rows:,} rows scored in {len(sent.request_ids)} requests by version(s) "
         f"{', '.join(sorted(sent.versions))}")
    window = sent.rows
    if phase.labels_later:
        check = f"poise recover {name} --window {window}"
        command(check + "   # before any label is known")
        view = lifecycle.recover(name, window=window)
        show_recovery(view)
    labels_csv = write_feedback_csv(sent, home / "tables" / f"{table.name}-labels.csv")
    command(f"curl -s {server.url}/feedback -H 'content-type: application/json' "
            "-d '{\"request_id\": \"…\", \"labels\": [0, 1, …]}'   # or: "
            f"poise feedback {shlex.quote(str(labels_csv))}")
    labelled = send_labels(client, sent)
    served_score = score(metric, sent.y(), sent.proba, float(model_info(client)["threshold"]))
    note(f"{labelled:,} labels attached ({sum(sent.y()):,} positives); the champion's {metric} on these rows, "
         f"from the probabilities it served: {served_score:.4f}" if served_score is not None else
         f"{labelled:,} labels attached")

    old = str(model_info(client)["version"])
    command(f"poise recover {name} --window {window} --budget {budget:g}")
    with console.status("monitor → diagnose → recompose → …"):
        started = time.monotonic()
        view = lifecycle.recover(name, window=window, budget_seconds=budget)
        if view.pending is not None:  # the plan wants a person for this recovery: the demo is that person
            show_recovery(view)
            command(f"poise approve {view.run_id}")
            view = lifecycle.approve(view.run_id, approver="drift-demo")
        seconds = time.monotonic() - started
    show_recovery(view)
    note(f"recovery check took {seconds:.0f} s")
    outcome: dict[str, Any] = {"run_id": view.run_id, "status": view.status, "view": view, "served_score": served_score,
                               "deployed": False, "old": old}
    if view.status == "deployed":
        command(f"curl -s {server.url}/model   # until the version changes")
        version, waited = wait_for_version(client, old)
        probe = client.post("/predict", json={"records": json.loads(frame[features].head(3).to_json(
            orient="records"))}).json()
        outcome.update(deployed=version != old, new=version)
        note(f"GET /model: v{version} (after {waited:.1f} s of polling); POST /predict now answers with "
             f"version {probe['version']}")
    elif view.values.get("gate"):
        note(f"the challenger stays @challenger; {name}@champion is still v{old} and the server keeps answering "
             "with it")
    return outcome


def summarise(name: str, metric: str, first: Candidate, champion_version: str, last: dict[str, Any],
              client: httpx.Client) -> None:
    view = last.get("view")
    values = view.values if view is not None else {}
    report, gate = values.get("report") or {}, values.get("gate")
    table = Table(show_edge=False, title=f"{metric} of {name}")
    for column in ("model", "scored on", metric):
        table.add_column(column, justify="right" if column == metric else "left")
    table.add_row(f"champion v{champion_version}", "its original holdout", f"{first.holdout_metrics[metric]:.4f}")
    if report.get("current_score") is not None:
        table.add_row(f"champion v{champion_version}", f"the {report['labelled_rows']:,} recent labelled rows",
                      f"{report['current_score']:.4f}")
    if gate:
        judged = "" if gate["metric"] == metric else f" ({gate['metric']})"
        rows = "judging rows (recent, unseen by both)"
        table.add_row(f"champion v{gate['champion_version']}", rows, f"{gate['champion_score']:.4f}{judged}")
        table.add_row(f"challenger v{values['candidate']['version']}", rows, f"{gate['candidate_score']:.4f}{judged}")
    console.print(table)
    if gate:
        low, high = gate["difference_ci"]
        note(f"challenger − champion on the judging rows: {gate['candidate_score'] - gate['champion_score']:+.4f} "
             f"(95% paired-bootstrap CI {low:+.4f} to {high:+.4f})")
    serving_now = model_info(client)["version"]
    if last.get("deployed"):
        console.print(f"[green]{name}@champion moved v{last['old']} → v{serving_now}; the running server answers "
                      "with it without a restart[/]")
    elif gate:
        console.print(f"[yellow]the challenger did not beat the champion by more than the noise of the judging "
                      f"rows; it stays @challenger and v{serving_now} keeps serving[/]")
    else:
        console.print(f"no recovery was run; v{serving_now} keeps serving ({last.get('status')})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m poise.examples.drift_demo",
                                     description="Train, serve, drift, recover: the whole loop on real data.")
    parser.add_argument("--dataset", choices=drift.DATASETS, default="ai4i",
                        help="ai4i: a documented sensor shift; occupancy: first days → last days (default ai4i).")
    parser.add_argument("--budget", type=float, default=30.0,
                        help="Seconds for the first training and for a retrain (default 30).")
    parser.add_argument("--home", type=Path, default=None,
                        help="POISE_HOME for the demo (default: a new temporary folder, kept afterwards).")
    parser.add_argument("--seed", type=int, default=0, help="Seed of the AI4I split and of the searches.")
    args = parser.parse_args(argv)
    home = (args.home or Path(tempfile.mkdtemp(prefix=f"poise-drift-demo-{args.dataset}-"))).expanduser().resolve()
    home.mkdir(parents=True, exist_ok=True)
    os.environ["POISE_HOME"] = str(home)  # before poise.settings is first imported
    console.print(f"POISE_HOME={home}")
    # a plain `kill` of the demo must still stop the server it started
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    try:
        return run_demo(args.dataset, args.budget, home, args.seed)
    except KeyboardInterrupt:
        console.print("[yellow]interrupted; the server was stopped[/]")
        return 130


if __name__ == "__main__":
    sys.exit(main())
