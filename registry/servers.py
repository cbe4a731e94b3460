"""Model servers running on this machine, so that a promotion can tell them at once.

A server started with ``poise serve`` leaves a small note under ``POISE_HOME/servers`` while
it runs; the deploy flow reads the notes (and ``POISE_SERVER_URLS`` for servers elsewhere)
to ask each server to reload. Servers also poll ``@champion``, so a missed note costs only
the poll interval, never a wrong answer.
"""

from __future__ import annotations

import json
import os
from pathlib import Path


def _folder(home: Path) -> Path:
    return home / "servers"


def announce(home: Path, url: str, model: str) -> Path:
    """Leave a note that a server for ``model`` answers at ``url``; returns the note to withdraw later."""
    folder = _folder(home)
    folder.mkdir(parents=True, exist_ok=True)
    note = folder / f"{os.getpid()}-{abs(hash(url)) % 10**8}.json"
    note.write_text(json.dumps({"url": url, "model": model, "pid": os.getpid()}))
    return note


def withdraw(note: Path) -> None:
    note.unlink(missing_ok=True)


def running(home: Path, model: str | None = None) -> list[str]:
    """URLs of the servers on this machine (for ``model``, when given); notes of dead servers are cleared."""
    urls = []
    for note in sorted(_folder(home).glob("*.json")):
        try:
            entry = json.loads(note.read_text())
            alive = _alive(int(entry["pid"]))
        except (OSError, ValueError, KeyError, TypeError):
            alive, entry = False, {}
        if not alive:
            note.unlink(missing_ok=True)
            continue
        if model is None or entry.get("model") == model:
            urls.append(str(entry["url"]))
    return urls


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: it exists
        return True
    return True
