"""Runs of the lifecycle: ``poise run``, ``plan``, ``runs``, ``show``, ``approve``, ``reject``, ``resume``,
``audit``."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from poise.cli.common import console, print_json, stdout, user_errors

if TYPE_CHECKING:  # the agents load the whole stack: only when a command runs
    from poise.agents.notices import Notice
    from poise.agents.runner import Lifecycle, RunView
    from poise.contracts import Plan, TaskSpec


def register(app: typer.Typer) -> None:
    for name, command in (("run", run_command), ("plan", plan_command), ("runs", runs_command),
                          ("show", show_command), ("approve", approve_command), ("reject", reject_command),
                          ("resume", resume_command), ("audit", audit_command)):
        app.command(name)(command)


def _lifecycle() -> Lifecycle:
    from poise.agents.runner import Lifecycle

    return Lifecycle()


@user_errors
def run_command(
    text: str = typer.Argument(..., help='The task in plain words, e.g. "catch failures in data.csv, 2 minutes".'),
    data: Path | None = typer.Option(None, "--data", "-d", help="The table, if the text does not name it."),
    auto_approve: bool = typer.Option(False, "--auto-approve", help="Train without waiting for approval."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object (never asks)."),
) -> None:
    """Understand the task, profile the data, propose a plan; train once it is approved."""
    lifecycle = _lifecycle()
    with console.status("understanding, profiling and planning…"):
        view = lifecycle.start(text, str(data) if data else None, auto_approve=auto_approve)
    notices = _notices(lifecycle, view.run_id)
    if not as_json:
        if view.pending is not None:
            _show_plan(view)
        _print_notices(notices)
        if view.pending is not None and sys.stdin.isatty() and sys.stdout.isatty():
            view = _ask(lifecycle, view)
    show_outcome(view, as_json, notices)


def _ask(lifecycle: Lifecycle, view: RunView) -> RunView:
    from rich.prompt import Prompt

    choice = Prompt.ask("approve, edit, reject, or decide later?", choices=["a", "e", "r", "l"], default="l",
                        console=console)
    if choice == "a":
        with console.status("training…"):
            return lifecycle.approve(view.run_id)
    if choice == "r":
        return lifecycle.reject(view.run_id, Prompt.ask("reason", console=console))
    if choice == "e":
        path = _write_plan(view)
        editor = os.environ.get("VISUAL") or os.environ.get("EDITOR")
        if not editor:
            console.print(f"edit {path}, then: poise approve {view.run_id} --plan {path}")
            return view
        import subprocess

        subprocess.run([*editor.split(), str(path)], check=False)
        edited = _read_plan(path)
        _print_notices(_edit_notices(lifecycle, view.run_id, edited))
        with console.status("training…"):
            return lifecycle.approve(view.run_id, edited)
    return view


@user_errors
def plan_command(
    text: str = typer.Argument(..., help="The task in plain words."),
    data: Path | None = typer.Option(None, "--data", "-d", help="The table, if the text does not name it."),
    as_json: bool = typer.Option(False, "--json", help="Print the TaskSpec and Plan as JSON."),
) -> None:
    """Understand, profile and plan only: show what poise would do, train nothing."""
    from poise.agents.runner import plan_only

    with console.status("understanding, profiling and planning…"):
        result = plan_only(text, str(data) if data else None)
    if as_json:
        print_json({"task": result["task"], "plan": result["plan"],
                    "notices": [n.as_dict() for n in result["notices"]]})
        return
    from poise.agents.state import Contracts

    saved = Contracts(result)
    _print_plan(saved.task, saved.plan)
    _print_notices(result["notices"])


@user_errors
def runs_command(as_json: bool = typer.Option(False, "--json")) -> None:
    """Every run and where it stands."""
    from poise.agents.audit import Journal
    from poise.settings import get_settings

    rows = [r for r in Journal(get_settings().home / "runs.db").runs() if r["kind"] != "plan"]
    if as_json:
        print_json(rows)
        return
    if not rows:
        console.print('no runs yet: poise run "catch failures in data.csv, two minutes"')
        return
    from rich.table import Table

    table = Table(show_edge=False)
    for column in ("run", "status", "model", "created (UTC)", "task"):
        table.add_column(column)
    for r in rows:
        model = f"{r['model']} v{r['version']}" if r["model"] else ""
        table.add_row(r["run_id"], r["status"], model, r["created_at"][:16].replace("T", " "), r["text"][:60])
    stdout.print(table)


@user_errors
def show_command(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """A run's task, plan, decision, candidate and gate."""
    lifecycle = _lifecycle()
    view = lifecycle.view(run_id)
    notices = _notices(lifecycle, view.run_id)
    if as_json:
        print_json(_view_json(view, notices))
        return
    _show_plan(view)
    _print_notices(notices)
    show_outcome(view, False)


@user_errors
def approve_command(
    run_id: str = typer.Argument(...),
    plan: Path | None = typer.Option(None, "--plan", help="An edited plan (JSON or YAML) to approve instead."),
    approver: str | None = typer.Option(None, "--as", help="Who approves (default: the login name)."),
    as_json: bool = typer.Option(False, "--json"),
) -> None:
    """Approve a waiting run (optionally with an edited plan) and train it."""
    lifecycle = _lifecycle()
    edited = _read_plan(plan) if plan else None
    view = lifecycle.view(run_id)
    if not as_json:  # what the person approves: the earlier notices, and what the edit check changes
        _print_notices([*_notices(lifecycle, view.run_id), *_edit_notices(lifecycle, view.run_id, edited)])
    with console.status("training…"):
        view = lifecycle.approve(run_id, edited, approver)
    show_outcome(view, as_json, _notices(lifecycle, view.run_id))


@user_errors
def reject_command(
    run_id: str = typer.Argument(...),
    reason: str = typer.Option(..., "--reason", help="Why: it lands in the audit trail."),
    approver: str | None = typer.Option(None, "--as", help="Who rejects (default: the login name)."),
) -> None:
    """Reject a waiting run: nothing is trained or registered."""
    view = _lifecycle().reject(run_id, reason, approver)
    stdout.print(f"run {view.run_id}: {view.status}")


@user_errors
def resume_command(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Continue a run from its last checkpoint (after a crash or a kill)."""
    with console.status("resuming…"):
        view = _lifecycle().resume(run_id)
    show_outcome(view, as_json)


@user_errors
def audit_command(run_id: str = typer.Argument(...), as_json: bool = typer.Option(False, "--json")) -> None:
    """Every decision of a run: step, mind, summary, repairs, approver, time."""
    lifecycle = _lifecycle()
    view = lifecycle.view(run_id)
    events = lifecycle.journal.events(view.run_id)
    if as_json:
        print_json([e.model_dump(mode="json") for e in events])
        return
    stdout.print(f"[bold]audit trail of run {view.run_id}[/] ({view.status})")
    for e in events:
        cost = "" if e.latency_seconds is None else f", {e.latency_seconds:.2f} s"
        cost += "" if e.tokens is None else f", {e.tokens} tokens"
        who = f" by {e.approver}" if e.approver else ""
        stdout.print(f"{e.at:%Y-%m-%d %H:%M:%S}  [bold]{e.step}[/] ({e.mind}{who}{cost}): {e.summary}",
                     highlight=False)
        for repair in e.repairs:
            stdout.print(f"    repaired: {repair}", markup=False, highlight=False)
        for words in e.not_understood:
            stdout.print(f"    not understood: {words!r}", markup=False, highlight=False)


# ---------------------------------------------------------------------- display
def _view_json(view: RunView, notices: list[Notice] | None = None) -> dict[str, Any]:
    keys = ("task", "plan", "report", "diagnosis", "recovery", "decision", "candidate", "gate")
    return {"run_id": view.run_id, "status": view.status, **{k: view.values.get(k) for k in keys},
            "notices": [n.as_dict() for n in notices or []]}


def _notices(lifecycle: Lifecycle, run_id: str) -> list[Notice]:
    from poise.agents.notices import notices

    return notices(lifecycle.journal.events(run_id))


def _edit_notices(lifecycle: Lifecycle, run_id: str, edited: Plan | None) -> list[Notice]:
    """What checking an edited plan changes, before it trains (an edit naming nothing known is an error here)."""
    from poise.agents.notices import Notice

    if edited is None:
        return []
    _, repairs = lifecycle.check_edit(run_id, edited)
    return [Notice("approve", "repaired", repair) for repair in repairs]


def _print_notices(notices: list[Notice]) -> None:
    """Repairs and words not understood, where the person decides (not only in the audit)."""
    if notices:
        stdout.print("[bold yellow]check[/]: what poise changed, chose or did not understand:")
    for notice in notices:
        stdout.print(f"  {notice.line()}", markup=False, highlight=False)


def show_outcome(view: RunView, as_json: bool, notices: list[Notice] | None = None) -> None:
    if as_json:
        print_json(_view_json(view, notices))
        return
    recovery = view.values.get("recovery")
    if recovery:
        for line in view.values.get("diagnosis", []):
            stdout.print(f"  {line}", highlight=False)
        action = recovery["action"] or "no recovery"
        stdout.print(f"[bold]{action}[/]: " + "; ".join(recovery["reasons"]), highlight=False)
    if view.pending is not None:
        stdout.print(f"run [bold]{view.run_id}[/] is waiting for approval:\n"
                     f"  poise show {view.run_id}\n  poise approve {view.run_id} [--plan EDITED.yaml]\n"
                     f"  poise reject {view.run_id} --reason \"...\"")
        return
    candidate, gate = view.values.get("candidate"), view.values.get("gate")
    if candidate:
        metric = candidate["metric"]
        stdout.print(f"{candidate['model_name']} v{candidate['version']}: {candidate['strategy']} + "
                     f"{candidate['estimator']}, holdout {metric} {candidate['holdout_metrics'][metric]:.4f}, "
                     f"average precision {candidate['holdout_metrics']['average_precision']:.4f}")
        for choice in candidate.get("choices", []):  # runs recorded before choices were kept have none
            stdout.print(f"  {choice}", highlight=False)
    if gate:
        verdict = "[green]passed[/]" if gate["passed"] else "[red]not passed[/]"
        stdout.print(f"gates {verdict}: " + "; ".join(gate["reasons"]))
    if view.status == "deployed":
        stdout.print(f"{candidate['model_name']}@champion → v{candidate['version']}; serve it: "
                     f"poise serve --model {candidate['model_name']}")
    elif candidate and gate and view.status in ("gated out", "not deployed"):
        stdout.print(f"a person may still promote it: poise promote {candidate['model_name']} {candidate['version']}")
    stdout.print(f"run {view.run_id}: {view.status}")


def _show_plan(view: RunView) -> None:
    if view.task and view.plan:
        _print_plan(view.task, view.plan)


def _print_plan(task: TaskSpec, plan: Plan) -> None:
    constraint = (f" with precision ≥ {task.min_precision}" if task.metric == "recall_at_precision"
                  else f" with recall ≥ {task.min_recall}" if task.metric == "precision_at_recall" else "")
    stdout.print(f"[bold]task[/]: predict [cyan]{task.target}[/] in {task.data}; maximise {task.metric}{constraint};"
                 f" {task.budget_seconds:g} s; seed {task.seed}")
    stdout.print("[bold]data steps[/]:" if plan.data_steps else "[bold]data steps[/]: none")
    for step in plan.data_steps:
        what = f" = {step.op} of {' and '.join(step.inputs)}" if step.action == "derive" else ""
        stdout.print(f"  {step.action} [cyan]{step.column}[/]{what}: {step.reason}", highlight=False)
    stdout.print(f"[bold]search[/]: {', '.join(plan.search.strategies)}\n  × {', '.join(plan.search.models)}\n"
                 f"  {plan.cv_folds}-fold stratified CV, {plan.budget_seconds:g} s, up to {plan.ensemble_size} "
                 "candidates blended")
    gates = ", ".join(f"{k} ≥ {v}" for k, v in plan.gates.min_holdout.items())
    stdout.print(f"[bold]gates[/]: {gates}" + ("; must match or beat @champion" if plan.gates.must_beat_champion
                                               else ""))
    stdout.print("[bold]final model[/]: " + (
        f"trained on every labelled row once the {plan.holdout_fraction:.0%} holdout has judged the recipe"
        if plan.final_fit_on_all_rows else f"trained without the {plan.holdout_fraction:.0%} holdout"))
    if plan.rationale:
        stdout.print("[bold]why[/]:")
        for line in plan.rationale:
            stdout.print(f"  - {line}", highlight=False)


def _write_plan(view: RunView) -> Path:
    from poise.settings import get_settings

    path = get_settings().home / "runs" / view.run_id / "plan.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(view.values["plan"], indent=2))
    return path


def _read_plan(path: Path) -> Plan:
    """An edited plan from JSON or YAML; validated like any other plan."""
    import yaml
    from pydantic import ValidationError

    from poise.contracts import Plan
    from poise.errors import PoiseError

    if not path.exists():
        raise PoiseError(f"no such plan file: {path}", "pass the path of an edited plan (JSON or YAML)")
    text = path.read_text()
    try:
        payload = yaml.safe_load(text) if path.suffix.lower() in (".yaml", ".yml") else json.loads(text)
        return Plan.model_validate(payload)
    except (ValueError, ValidationError, yaml.YAMLError) as exc:
        first = str(exc).splitlines()[:3]
        raise PoiseError(f"{path} is not a valid plan: {' '.join(first)}",
                         "start from `poise show RUN --json` (its 'plan' part) and edit that") from None
