"""The prediction log: every served row, its probability and label, and the true label once it is known.

One SQLite file under ``POISE_HOME`` (``predictions.db``) in WAL mode, so the drift monitor
and ``poise feedback`` can read and write while the server keeps logging. A request is one
``executemany``: cheap enough to stay on the request path. Rows are addressed by
``(request_id, row)``: the id the server hands back with the predictions and the row's
position in the request, which is all a client needs to send the true label later.

Labels and predictions are stored as JSON so they keep the target's own type (``1`` stays
an int, ``"yes"`` a string).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from poise.contracts import Label
from poise.errors import PoiseError
from poise.settings import Settings, get_settings

if TYPE_CHECKING:  # pandas is imported where it is used: the CLI imports this module lazily anyway
    import numpy as np
    import pandas as pd

FILE_NAME = "predictions.db"
#: Columns ``window`` adds beside the inputs; an input with one of these names is shown as ``input.NAME``.
META_COLUMNS = ("request_id", "row", "model", "version", "at", "proba", "pred", "label", "labelled_at")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    request_id  TEXT    NOT NULL,
    row         INTEGER NOT NULL,
    model       TEXT    NOT NULL,
    version     TEXT    NOT NULL,
    at          TEXT    NOT NULL,
    inputs      TEXT    NOT NULL,
    proba       REAL    NOT NULL,
    pred        TEXT    NOT NULL,
    label       TEXT,
    labelled_at TEXT,
    PRIMARY KEY (request_id, row)
);
CREATE INDEX IF NOT EXISTS predictions_by_model_time ON predictions (model, at);
"""


class FeedbackError(PoiseError):
    """Labels that cannot be attached: an unknown request, or a count that does not match its rows."""


class UnknownRequestError(FeedbackError):
    """No logged prediction carries this request id."""


class RowId(NamedTuple):
    request_id: str
    row: int


@dataclass
class Attached:
    """What a bulk label upload did: how many rows got a label, and which rows matched no prediction."""

    labelled: int = 0
    unknown: list[RowId] = field(default_factory=list)


def default_path(settings: Settings | None = None) -> Path:
    return (settings or get_settings()).home / FILE_NAME


class PredictionStore:
    """Append-only log of served predictions, with labels attached later.

    One connection per store, shared by the server's worker threads behind a lock: SQLite
    serialises writers anyway, and a lock is cheaper than a connection per request.
    """

    def __init__(self, path: Path | str | None = None, *, timeout_seconds: float = 10.0) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, timeout=timeout_seconds, check_same_thread=False,
                                       isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")  # readers never block the server's writes
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; no fsync per request
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as exc:
            raise PoiseError(f"cannot open the prediction log {self.path}: {exc}",
                             "make POISE_HOME writable, or point POISE_HOME somewhere that is") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def log(self, model: str, version: str, inputs: pd.DataFrame, proba: Sequence[float],
            pred: Sequence[Label]) -> list[RowId]:
        """Store one request (its rows in order) under a new request id; returns the id of every row."""
        if not (len(inputs) == len(proba) == len(pred)):
            raise ValueError(f"{len(inputs)} input rows but {len(proba)} probabilities and {len(pred)} labels")
        request_id = str(uuid.uuid4())  # with dashes: never mistaken for a number in a CSV
        at = _now()
        rows = json.loads(inputs.to_json(orient="records", date_format="iso"))  # NaN → null, numpy → JSON
        values = [
            (request_id, i, model, str(version), at, json.dumps(row, separators=(",", ":")), float(p), _dump(y))
            for i, (row, p, y) in enumerate(zip(rows, proba, pred, strict=True))
        ]
        with self._transaction() as db:
            db.executemany(
                "INSERT INTO predictions (request_id, row, model, version, at, inputs, proba, pred) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                values,
            )
        return [RowId(request_id, i) for i in range(len(values))]

    def attach_labels(self, request_id: str, labels: Sequence[Label] | Mapping[int, Label]) -> int:
        """Attach true labels to one request: a list labels every row in order, ``{row: label}`` only some.

        A label sent twice replaces the first (corrections happen). Returns the number of rows labelled.
        """
        n_rows = self._rows_of(request_id)
        if n_rows == 0:
            raise UnknownRequestError(f"no logged prediction has request id {request_id!r}",
                                "use the request_id returned with the predictions")
        if isinstance(labels, Mapping):
            by_row = {int(row): label for row, label in labels.items()}
        else:
            if len(labels) != n_rows:
                raise FeedbackError(
                    f"request {request_id} has {n_rows} row(s) but {len(labels)} label(s) were sent",
                    "send one label per row in request order, or label single rows by their row number",
                )
            by_row = dict(enumerate(labels))
        outside = sorted(row for row in by_row if not 0 <= row < n_rows)
        if outside:
            raise FeedbackError(f"request {request_id} has rows 0..{n_rows - 1}, not {outside}",
                                "use the row's position in the request, counting from 0")
        return self._update([(request_id, row, label) for row, label in by_row.items()]).labelled

    def attach_label(self, request_id: str, row: int, label: Label) -> int:
        return self.attach_labels(request_id, {row: label})

    def attach_labels_frame(self, frame: pd.DataFrame) -> Attached:
        """Bulk labels from a table with columns ``request_id``, ``row``, ``label`` (e.g. ``poise feedback``).

        Rows that match no logged prediction are reported back rather than failing the whole upload:
        a feedback file often spans more than one server's log.
        """
        missing = [c for c in ("request_id", "row", "label") if c not in frame.columns]
        if missing:
            raise FeedbackError(f"the label table lacks column(s) {', '.join(map(repr, missing))}",
                                "give it the columns request_id, row, label (one line per labelled row)")
        rows = frame[["request_id", "row", "label"]]
        if rows["label"].isna().any():
            raise FeedbackError(f"{int(rows['label'].isna().sum())} row(s) have no label",
                                "leave out the rows whose label is not known yet")
        try:
            triples = [(str(r), int(i), _native(y)) for r, i, y in rows.itertuples(index=False, name=None)]
        except (TypeError, ValueError) as exc:
            raise FeedbackError(f"the 'row' column must hold row numbers: {exc}",
                                "use the row's position in its request, counting from 0") from None
        return self._update(triples)

    def window(self, model: str, last_n: int | None = None, since: datetime | None = None,
               version: str | None = None) -> pd.DataFrame:
        """Logged rows of ``model``, oldest first: the inputs as columns, then the META_COLUMNS.

        ``last_n`` keeps the newest n rows, ``since`` those logged at or after a time (naive = UTC),
        ``version`` those served by one version.
        """
        import pandas as pd

        where, params = ["model = ?"], [model]
        if since is not None:
            where.append("at >= ?")
            params.append(_iso(since))
        if version is not None:
            where.append("version = ?")
            params.append(str(version))
        sql = (f"SELECT request_id, row, model, version, at, inputs, proba, pred, label, labelled_at "
               f"FROM predictions WHERE {' AND '.join(where)} ORDER BY at DESC, rowid DESC")
        if last_n is not None:
            sql += " LIMIT ?"
            params.append(int(last_n))
        with self._lock:
            fetched = self._db.execute(sql, params).fetchall()
        fetched.reverse()
        inputs = pd.DataFrame([json.loads(r[5]) for r in fetched])
        inputs = inputs.rename(columns={c: f"input.{c}" for c in inputs.columns if c in META_COLUMNS})
        meta = pd.DataFrame(
            [(r[0], r[1], r[2], r[3], r[4], r[6], _load(r[7]), _load(r[8]), r[9]) for r in fetched],
            columns=list(META_COLUMNS),
        )
        meta["at"] = pd.to_datetime(meta["at"], utc=True)
        meta["labelled_at"] = pd.to_datetime(meta["labelled_at"], utc=True)
        return pd.concat([inputs, meta], axis=1)

    def _rows_of(self, request_id: str) -> int:
        with self._lock:
            found = self._db.execute("SELECT COUNT(*) FROM predictions WHERE request_id = ?", (request_id,))
            return int(found.fetchone()[0])

    def _update(self, triples: list[tuple[str, int, Label]]) -> Attached:
        """Set labels in one transaction; pairs that matched nothing come back in ``unknown``."""
        at = _now()
        outcome = Attached()
        with self._transaction() as db:
            for request_id, row, label in triples:
                changed = db.execute(
                    "UPDATE predictions SET label = ?, labelled_at = ? WHERE request_id = ? AND row = ?",
                    (_dump(label), at, request_id, row),
                ).rowcount
                if changed:
                    outcome.labelled += 1
                else:
                    outcome.unknown.append(RowId(request_id, row))
        return outcome

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (one commit, not one per row), taken up front so it cannot deadlock."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
            self._db.execute("COMMIT")


def _native(value: Label | np.generic) -> Label:
    """numpy scalars (from pandas) → Python values, so JSON keeps ints as ints."""
    return value.item() if hasattr(value, "item") else value


def _dump(value: Label | np.generic) -> str:
    return json.dumps(_native(value))


def _load(text: str | None) -> Label | None:
    return None if text is None else json.loads(text)


def _iso(moment: datetime) -> str:
    """One fixed-width UTC format, so times compare correctly as text."""
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.isoformat(timespec="microseconds")


def _now() -> str:
    return _iso(datetime.now(UTC))
