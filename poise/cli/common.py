"""What every command shares: settings before heavy imports, user errors without tracebacks, and a
clean stop on Ctrl-C or SIGTERM (one line saying what was kept, exit code 130 or 143)."""

from __future__ import annotations

import functools
import json
import sys
from collections.abc import Callable, Iterable
from typing import ParamSpec, TypeVar

import typer
from rich.console import Console

P = ParamSpec("P")
R = TypeVar("R")

console = Console(stderr=True, soft_wrap=True)  # progress, errors and notes
stdout = Console(soft_wrap=True)  # results


def user_errors(command: Callable[P, R]) -> Callable[P, R]:
    """Run a command with poise's settings in place; print a PoiseError as 'error / fix' and exit 2.

    SIGINT and SIGTERM stop the command (``poise.stopping``): it prints what the stopped work kept
    and exits with 128 + the signal number, without a traceback.
    """

    @functools.wraps(command)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        from pydantic import ValidationError

        from poise import stopping
        from poise.errors import PoiseError
        from poise.settings import get_settings

        try:
            with stopping.handle_signals():
                get_settings()  # sets the environment the libraries read before they are imported
                return command(*args, **kwargs)
        except stopping.Stopped as exc:
            console.print(exc.message, highlight=False)
            raise typer.Exit(exc.exit_code) from None
        except PoiseError as exc:
            console.print(f"[bold red]error:[/] {exc.problem}", highlight=False)
            if exc.fix:
                console.print(f"[bold]  fix:[/] {exc.fix}", highlight=False)
            raise typer.Exit(2) from None
        except ValidationError as exc:
            for err in exc.errors():
                where = ".".join(str(p) for p in err["loc"]) or "input"
                console.print(f"[bold red]error:[/] {where}: {err['msg']}", highlight=False)
            raise typer.Exit(2) from None

    return wrapper


def print_json(payload: object) -> None:
    """One JSON document on stdout; contracts print as themselves."""
    from pydantic import BaseModel

    if isinstance(payload, BaseModel):
        payload = payload.model_dump(mode="json")
    sys.stdout.write(json.dumps(payload, indent=2, default=str) + "\n")


def print_notes(notes: Iterable[object]) -> None:
    """What poise changed in reading the data, on stderr (stdout stays the result's)."""
    for note in notes:
        console.print(f"[bold yellow]note:[/] {note}", highlight=False)
