"""Using registered models: ``poise predict``, ``poise models``, ``poise promote``."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

import typer

from poise.cli.common import console, print_json, print_notes, stdout, user_errors

if TYPE_CHECKING:  # pandas loads when rows are scored, not with the CLI
    import pandas as pd

HEADLINE = {"average_precision": "AP", "mcc": "MCC", "roc_auc": "ROC-AUC"}


def register(app: typer.Typer) -> None:
    app.command("predict")(predict_command)
    app.command("models")(models_command)
    app.command("promote")(promote_command)


@user_errors
def predict_command(
    data: Path = typer.Argument(..., help="Rows to score: CSV (any delimiter, .gz ok) or Parquet."),
    model: str = typer.Option(..., "--model", help="NAME (its @champion, else newest), NAME@ALIAS or NAME:VERSION."),
    out: Path = typer.Option(..., "--out", "-o", help="Where to write the CSV of proba and pred."),
    allow_extra: bool = typer.Option(False, "--allow-extra", help="Ignore columns the model does not know."),
    force: bool = typer.Option(False, "--force", help="Overwrite --out even when it is the input file."),
) -> None:
    """Write one row per input row: proba (positive class) and pred (label in the target's own values)."""
    from poise.registry import tracking, versions
    from poise.settings import get_settings
    from poise.tools.data import load_table, reading_notes

    versions.parse_ref(model)  # a malformed model reference fails before the table is read
    if not force and _same_file(data, out):
        from poise.errors import PoiseError

        raise PoiseError(f"--out {out} is the input file {data}: writing there would replace your data "
                         "with proba and pred", "write elsewhere (--out predictions.csv), or pass --force")
    frame = load_table(data)
    print_notes(reading_notes(frame))
    tracking.connect(get_settings())
    loaded = versions.load(model)
    scored = loaded.predict(frame, allow_extra=allow_extra)
    _write_atomically(scored, out)
    positives = int((scored["pred"] == loaded.card.positive_label).sum())
    console.print(
        f"{len(scored)} rows scored by {loaded.name} v{loaded.version}: {positives} predicted "
        f"{loaded.card.positive_label!r} → {out}",
        highlight=False,
    )


def _same_file(data: Path, out: Path) -> bool:
    """Whether writing ``out`` would replace ``data``: the same path, through a symlink or a hard link."""
    data, out = data.expanduser(), out.expanduser()
    if data.resolve() == out.resolve():
        return True
    try:
        return out.exists() and os.path.samefile(data, out)
    except OSError:
        return False


def _write_atomically(frame: pd.DataFrame, path: Path) -> None:
    """Write next to the destination and rename, so a failure never leaves a half-written file.

    A symlinked destination keeps its link: the file it points to is the one replaced.
    """
    path = path.expanduser().resolve()
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(handle)
    try:
        frame.to_csv(tmp, index=False)
        os.chmod(tmp, path.stat().st_mode & 0o777 if path.exists() else 0o666 & ~_umask())  # not mkstemp's 0600
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@user_errors
def models_command(as_json: bool = typer.Option(False, "--json", help="Print JSON instead of a table.")) -> None:
    """Registered models, their versions, aliases and headline holdout metrics."""
    from poise.registry import tracking, versions
    from poise.settings import get_settings

    tracking.connect(get_settings())
    found = versions.list_models()
    if as_json:
        print_json(found)
        return
    if not found:
        console.print("no registered models yet: train one with `poise train DATA --target COLUMN`")
        return
    from rich.table import Table

    table = Table(show_edge=False, title="holdout metrics of each registered version")
    for column in ("model", "ver", "aliases", "strategy / estimator", *HEADLINE.values(), "created (UTC)"):
        table.add_column(column, justify="right" if column in HEADLINE.values() else "left")
    for entry in found:
        for v in reversed(entry["versions"]):
            tags = v["tags"]
            table.add_row(
                entry["name"], v["version"], " ".join("@" + a for a in v["aliases"]),
                f"{tags.get('strategy', '?')} / {tags.get('estimator', '?')}",
                *(_fmt(tags.get(f"holdout.{m}")) for m in HEADLINE), v["created_at"][:16].replace("T", " "),
            )
    stdout.print(table)


def _fmt(value: str | None) -> str:
    return "" if value is None else f"{float(value):.4f}"


@user_errors
def promote_command(
    name: str = typer.Argument(..., help="Registered model name."),
    version: int = typer.Argument(..., help="Version to make @champion."),
) -> None:
    """Make a version @champion; the old champion keeps @previous."""
    from poise.registry import tracking, versions
    from poise.settings import get_settings

    versions.check_name(name)
    tracking.connect(get_settings())
    previous = versions.promote(name, version)
    note = f" (was v{previous}, now @previous)" if previous and previous != str(version) else ""
    stdout.print(f"{name}@champion → v{version}{note}")
    announce_move("promote", name, str(version), f"{name}@champion → v{version}{note}", previous=previous)


def announce_move(action: str, name: str, version: str, summary: str, **output: object) -> None:
    """After a person moved @champion: the audit trail records it and the running servers swap now."""
    from poise.agents.audit import Journal, record_by_hand, who
    from poise.pipelines.deploy import notify_servers
    from poise.settings import get_settings

    answers = notify_servers(name)
    record_by_hand(Journal(get_settings().home / "runs.db"), action, summary, model=name, version=version,
                   approver=who(), output={**output, "servers": answers})
    for url, answer in answers.items():
        console.print(f"{url}: {answer}", highlight=False)
