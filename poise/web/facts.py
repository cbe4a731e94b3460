"""What the pages show, gathered from the same places the CLI reads: the journal, the checkpoints,
the registry and the kept drift reports. No HTML here."""

from __future__ import annotations

import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from poise.errors import PoiseError

if TYPE_CHECKING:  # pandas loads with the first model page, FastAPI with the console's app
    import pandas as pd
    from fastapi import UploadFile

    from poise.agents.audit import Journal
    from poise.contracts import AuditEvent

#: Table formats ``tools.data.load_table`` reads.
TABLE_SUFFIXES = (".csv", ".csv.gz", ".csv.bz2", ".csv.xz", ".tsv", ".txt", ".parquet", ".pq")
MAX_UPLOAD_BYTES = 512 * 1024 * 1024
HIDDEN_KINDS = ("plan",)  # `poise plan` leaves a row of its own that is no run of anyone's


# ---------------------------------------------------------------------- uploads
def save_upload(upload: UploadFile, home: Path) -> Path:
    """Keep an uploaded table under ``POISE_HOME/uploads/ID/NAME`` (its own folder, so names never clash)."""
    name = Path(upload.filename or "").name
    if not name.lower().endswith(TABLE_SUFFIXES):
        raise PoiseError(f"{name or 'the upload'!r} is not a table poise reads",
                         f"upload a file ending in {', '.join(TABLE_SUFFIXES)}")
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", name).lstrip(".") or "table.csv"
    folder = home / "uploads" / uuid.uuid4().hex[:8]
    folder.mkdir(parents=True)
    path = folder / safe
    with path.open("wb") as out:
        shutil.copyfileobj(upload.file, out, length=1024 * 1024)
    if path.stat().st_size > MAX_UPLOAD_BYTES or path.stat().st_size == 0:
        size = path.stat().st_size
        shutil.rmtree(folder, ignore_errors=True)
        raise PoiseError(f"{name!r} is {'empty' if size == 0 else f'{size / 2**20:.0f} MiB'}",
                         f"upload a table of rows, at most {MAX_UPLOAD_BYTES // 2**20} MiB")
    return path


def known_tables(home: Path) -> list[Path]:
    """Tables uploaded before, newest first."""
    folder = home / "uploads"
    if not folder.is_dir():
        return []
    found = [p for p in folder.glob("*/*") if p.is_file() and p.name.lower().endswith(TABLE_SUFFIXES)]
    return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)


def known_table(home: Path, chosen: str) -> Path:
    """A table picked from the list: only ones the console itself keeps."""
    for path in known_tables(home):
        if str(path) == chosen:
            return path
    raise PoiseError(f"{chosen!r} is not one of the known tables", "upload the file, or pick one from the list")


# ---------------------------------------------------------------------- runs
def runs(journal: Journal, limit: int = 200) -> list[dict[str, Any]]:
    return [r for r in journal.runs(limit=limit) if r["kind"] not in HIDDEN_KINDS]


def repairs_by_step(events: list[AuditEvent]) -> dict[str, list[str]]:
    """What the guardrails changed and which words were not used, per step: the CLI's notices."""
    from poise.agents.notices import notices

    found: dict[str, list[str]] = {}
    for notice in notices(events, steps={event.step for event in events}):
        found.setdefault(notice.step, []).append(f"{notice.kind}: {notice.text}")
    return found


# ---------------------------------------------------------------------- models
_REFERENCES: dict[tuple[str, str], pd.DataFrame | None] = {}
_ARTIFACTS: dict[tuple[str, str], dict[str, Any] | None] = {}
_cache_lock = threading.Lock()


@dataclass
class VersionFacts:
    name: str
    version: str
    aliases: list[str]
    tags: dict[str, str]
    holdout: dict[str, float]
    run_id: str | None
    created_at: str | None
    threshold: float | None
    task: dict[str, Any] | None
    plan: dict[str, Any] | None
    reference: pd.DataFrame | None  # the holdout part


_LISTING: dict[str, Any] = {"stamp": None, "models": None}


def registered_models(tracking_uri: str) -> list[dict[str, Any]]:
    """``versions.list_models()`` (what ``poise models`` shows), asked again only when the store has changed.

    An embedded SQLite store changes its file (or its write-ahead log) on every write, so their times and
    sizes tell; a tracking server is asked at most every two seconds.
    """
    from poise.registry import versions

    stamp = _store_stamp(tracking_uri)
    with _cache_lock:
        if stamp is not None and _LISTING["stamp"] == stamp:
            return _LISTING["models"]
    found = versions.list_models()
    with _cache_lock:
        _LISTING.update(stamp=stamp, models=found)
    return found


def _store_stamp(tracking_uri: str) -> tuple[object, ...]:
    if not tracking_uri.startswith("sqlite:///"):
        return ("ttl", int(time.monotonic() // 2))
    database = Path(tracking_uri.removeprefix("sqlite:///"))
    stamps = []
    for path in (database, database.with_name(database.name + "-wal")):
        try:
            info = path.stat()
            stamps.append((info.st_mtime_ns, info.st_size))
        except OSError:
            stamps.append(None)
    return tuple(stamps)


def model_entry(name: str, tracking_uri: str) -> dict[str, Any]:
    """The model's versions (oldest first) with their aliases and tags, as ``poise models`` lists them."""
    listing = registered_models(tracking_uri)
    for entry in listing:
        if entry["name"] == name:
            return entry
    known = [e["name"] for e in listing]
    raise PoiseError(f"no registered model named {name!r}",
                     f"registered models: {', '.join(known)}" if known else "train one first: describe a task")


def version_facts(entry: dict[str, Any], version: str | None) -> VersionFacts | None:
    """One version's facts for the model page: the chosen one, else @champion, else the newest."""
    if not entry["versions"]:
        return None
    by_version = {v["version"]: v for v in entry["versions"]}
    if version is None:
        version = next((v["version"] for v in entry["versions"] if "champion" in v["aliases"]),
                       entry["versions"][-1]["version"])
    if version not in by_version:
        raise PoiseError(f"model {entry['name']!r} has no version {version}",
                         f"its versions: {', '.join(by_version)}")
    chosen = by_version[version]
    tags = chosen["tags"]
    holdout = {k.removeprefix("holdout."): float(v) for k, v in tags.items() if k.startswith("holdout.")
               and _is_number(v)}
    threshold = float(tags["threshold"]) if _is_number(tags.get("threshold")) else None
    run_id = chosen["run_id"]
    return VersionFacts(entry["name"], version, chosen["aliases"], tags, holdout, run_id, chosen["created_at"],
                        threshold, _artifact(run_id, "task.json"), _artifact(run_id, "plan.json"),
                        _holdout_reference(entry["name"], version))


def _is_number(value: object) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _artifact(run_id: str | None, name: str) -> dict[str, Any] | None:
    """A JSON artifact of a training run; runs never change, so each is read once."""
    from poise.registry import tracking

    if run_id is None:
        return None
    key = (run_id, name)
    with _cache_lock:
        if key in _ARTIFACTS:
            return _ARTIFACTS[key]
    value = tracking.read_json(run_id, name)
    with _cache_lock:
        _ARTIFACTS[key] = value
    return value


def _holdout_reference(name: str, version: str) -> pd.DataFrame | None:
    """The holdout rows of the version's reference (label and score), or None for a version without one."""
    from poise.errors import ModelNotFoundError
    from poise.registry import versions

    key = (name, version)
    with _cache_lock:
        if key in _REFERENCES:
            return _REFERENCES[key]
    try:
        frame = versions.reference(name, version)
        part = frame.loc[frame[versions.PART] == "holdout", [versions.LABEL, versions.PROBA]]
    except ModelNotFoundError:
        part = None
    with _cache_lock:
        _REFERENCES[key] = part
    return part


def producing_runs(journal: Journal, name: str) -> dict[str, str]:
    """version → the poise run that trained it (lifecycle or recovery), from the journal."""
    found: dict[str, str] = {}
    for row in journal.runs(limit=5000):
        if row["model"] == name and row["version"] and row["kind"] in ("lifecycle", "recovery"):
            found.setdefault(row["version"], row["run_id"])
    return found


# ---------------------------------------------------------------------- monitoring
def monitored_models(home: Path) -> list[str]:
    folder = home / "monitoring"
    return sorted(p.name for p in folder.iterdir() if p.is_dir()) if folder.is_dir() else []


def report_points(reports: list[tuple[Path, Any]]) -> list[dict[str, Any]]:
    return [{"at": r.created_at.isoformat(), "severity": r.severity, "drifted_share": r.drifted_share,
             "version": r.model_version, "stem": path.stem} for path, r in reports]


def report_html(home: Path, name: str, stem: str) -> Path:
    """The Evidently HTML of one kept report; only files inside that model's report folder."""
    from poise.pipelines.monitor import report_folder

    if name not in monitored_models(home) or not re.fullmatch(r"[\w.-]+", stem):
        raise PoiseError(f"{stem!r} is not a report name", "open a report from the monitoring page")
    path = report_folder(name) / f"{stem}.html"
    if not path.is_file():
        raise PoiseError(f"no HTML report {stem!r} for {name!r}", "open a report from the monitoring page")
    return path
