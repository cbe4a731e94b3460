"""``poise train``: search, register and gate a model for one table."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from poise.cli.common import console, print_json, print_notes, stdout, user_errors

if TYPE_CHECKING:  # the contracts load pydantic and the pipelines the whole stack: not for `poise --help`
    from poise.contracts import Label
    from poise.pipelines.train import TrainingOutcome
    from poise.tools.search import TrialRecord

# The help is built before any command runs, so it cannot read poise.contracts without slowing every
# start-up; tests/test_cli.py checks that it names exactly the contracts' METRICS and that --budget's
# shown default is the contracts' DEFAULT_BUDGET_SECONDS.
METRIC_HELP = (
    "What to maximise: average_precision, roc_auc, mcc, balanced_accuracy, f1, f_beta, g_mean, "
    "recall_at_precision (needs --min-precision), precision_at_recall (needs --min-recall)."
)
BUDGET_SHOWN = "120 s"


def register(app: typer.Typer) -> None:
    app.command("train")(train_command)


@user_errors
def train_command(
    data: Path = typer.Argument(..., help="The table: CSV (any delimiter, .gz ok) or Parquet."),
    target: str = typer.Option(..., "--target", "-t", help="The column to predict."),
    metric: str | None = typer.Option(None, "--metric", "-m", help=METRIC_HELP),
    min_precision: float | None = typer.Option(None, "--min-precision",
                                               help="Precision floor for recall_at_precision."),
    min_recall: float | None = typer.Option(None, "--min-recall", help="Recall floor for precision_at_recall."),
    beta: float = typer.Option(1.0, "--beta", help="Beta of f_beta (beta > 1 favours recall)."),
    positive: str | None = typer.Option(None, "--positive", help="The class to catch (default: the rarer one)."),
    budget: float | None = typer.Option(None, "--budget", "-b", show_default=BUDGET_SHOWN,
                                        help="Seconds for the whole command: it ends within budget × 1.10 + 10 s, "
                                        "search and refit taking what start-up, evaluation and registration leave."),
    name: str | None = typer.Option(None, "--name", "-n",
                                    help="Registered model name (default: from the file name)."),
    seed: int = typer.Option(0, "--seed", help="Random seed: same data, seed and budget give the same search."),
    promote: bool = typer.Option(True, "--promote/--no-promote", help="Make it @champion if it passes the gates."),
    as_json: bool = typer.Option(False, "--json", help="Print one JSON object instead of the summary."),
) -> None:
    """Search imbalance strategies × models × hyperparameters, register the winner, and gate it."""
    from poise.pipelines import budget as timing_budget
    from poise.pipelines import runtime
    from poise.settings import get_settings

    started = timing_budget.process_started()
    runtime.start_prefect_server(get_settings().home)  # it starts while the libraries load and the data is read
    from poise.contracts import DEFAULT_BUDGET_SECONDS, TaskSpec
    from poise.pipelines.train import train

    budget = DEFAULT_BUDGET_SECONDS if budget is None else budget
    if metric is None:  # a stated constraint names the metric
        metric = "recall_at_precision" if min_precision else "precision_at_recall" if min_recall \
            else "f_beta" if beta != 1.0 else "average_precision"
    task = TaskSpec(
        data=str(data), target=target, positive_label=_label(positive), metric=metric,
        min_precision=min_precision, min_recall=min_recall, beta=beta, budget_seconds=budget, seed=seed,
        model_name=name,
    )
    if as_json:
        outcome = train(task, promote_if_passed=promote, started=started)
    else:
        with _SearchProgress(budget) as progress:
            outcome = train(task, promote_if_passed=promote, on_stage=progress.stage, on_trial=progress.trial,
                            started=started)
    print_notes(outcome.profile.notes)  # stderr: with --json they are also in the summary, as "warnings"
    if as_json:
        print_json(_summary(outcome))
    else:
        _print_summary(outcome)


def _label(text: str | None) -> Label | None:
    """'1' → 1, '2.0' → 2.0, 'yes' → 'yes': labels compare by value with the data's own."""
    if text is None:
        return None
    for cast in (int, float):
        try:
            return cast(text)
        except ValueError:
            continue
    return text


def _summary(outcome: TrainingOutcome) -> dict[str, Any]:
    c = outcome.candidate
    return {
        "model": c.model_name,
        "version": c.version,
        "run_id": c.run_id,
        "strategy": c.strategy,
        "estimator": c.estimator,
        "params": c.params,
        "threshold": c.threshold,
        "metric": c.metric,
        "cv_score": c.cv_score,
        "holdout": c.holdout_metrics,
        "cv": c.cv_metrics,
        "trained_on": c.trained_on,
        "choices": c.choices,
        "positive_label": c.positive_label,
        "n_trials": c.n_trials,
        "gate": outcome.gate.model_dump(mode="json"),
        "promoted": outcome.promoted,
        "seconds": round(outcome.seconds, 2),
        "search_seconds": round(c.search_seconds, 2),
        "budget_seconds": outcome.plan.budget_seconds,
        "plan": outcome.plan.model_dump(mode="json"),
        "warnings": outcome.profile.notes,
        "timing": outcome.timing.report(),
    }


def _print_summary(outcome: TrainingOutcome) -> None:
    from rich.table import Table

    c = outcome.candidate
    out = stdout
    out.print(
        f"\n[bold]{c.model_name}[/] version [bold]{c.version}[/]: {c.strategy} + {c.estimator}, "
        f"threshold {c.threshold:.4f}, {c.n_trials} trials in {outcome.seconds:.0f} s"
    )
    for step in outcome.plan.data_steps:
        out.print(f"  {step.action} [cyan]{step.column}[/]: {step.reason}", highlight=False)
    table = Table(title=f"holdout ({c.metric} optimised; CV {c.cv_score:.4f})", show_edge=False)
    table.add_column("metric")
    table.add_column("holdout", justify="right")
    table.add_column("cross-validated", justify="right")
    for key, value in c.holdout_metrics.items():
        style = "bold" if key == c.metric else None
        table.add_row(key, f"{value:.4f}", f"{c.cv_metrics.get(key, float('nan')):.4f}", style=style)
    out.print(table)
    if c.trained_on:
        out.print(f"the registered model learned from {c.trained_on}", highlight=False)
    if c.choices:
        out.print("how it was chosen:")
    for choice in c.choices:
        out.print(f"  {choice}", highlight=False)
    gate = outcome.gate
    for warning in gate.warnings:
        out.print(f"[yellow]warning:[/] {warning}", highlight=False)
    verdict = "[green]passed[/]" if gate.passed else "[red]not passed[/]"
    out.print(f"gates {verdict}:", highlight=False)
    for reason in gate.reasons:
        if reason not in gate.warnings:
            out.print(f"  {reason}", highlight=False)
    if outcome.promoted:
        out.print(f"[green]{c.model_name}@champion[/] is now version {c.version}")
    else:
        out.print(f"registered as {c.model_name}@challenger (version {c.version}); not promoted"
                  + (f" (to deploy it anyway: poise promote {c.model_name} {c.version})" if gate.warnings else ""))
    out.print("time: " + ", ".join(f"{k} {v:.1f} s" for k, v in outcome.timing.report().items() if v is not None),
              highlight=False)
    out.print(f"score a file: poise predict DATA.csv --model {c.model_name}:{c.version} --out predictions.csv")


class _SearchProgress:
    """A rich progress display fed by the search's stage and trial callbacks."""

    def __init__(self, budget: float) -> None:
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

        self.budget = budget
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), BarColumn(), TimeElapsedColumn(),
            TextColumn("{task.fields[status]}"), console=console, transient=False,
        )
        self.task = self.progress.add_task("starting", total=budget, status="")

    def __enter__(self) -> _SearchProgress:
        self.progress.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.update(self.task, completed=self.budget)
        self.progress.__exit__(*exc)

    def stage(self, name: str) -> None:
        self.progress.update(self.task, description=name)

    def trial(self, record: TrialRecord) -> None:
        best = "–" if record.best_score is None else f"{record.best_score:.4f}"
        self.progress.update(
            self.task, completed=min(record.elapsed, self.budget),
            status=f"trial {record.number + 1}: {record.strategy}/{record.estimator} {record.state} · best {best}",
        )
