"""Reading tables, naming the target, splitting off the holdout, and profiling.

The order matters for honest evaluation: ``prepare_target`` only finds the label column,
``split_holdout`` puts the holdout aside, and ``profile_table`` (which looks at labels to
find leaks) only ever sees the training part.
"""

from __future__ import annotations

import bz2
import csv
import difflib
import gzip
import hashlib
import io
import lzma
import re
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from poise.contracts import ColumnProfile, DataProfile, Label, normalise_column_name
from poise.errors import DataError

_ENCODINGS = ("utf-8-sig", "cp1252", "latin-1")
_DELIMITERS = ",;\t|"
_OPENERS = {".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open}
_BROKEN = (OSError, EOFError, lzma.LZMAError, zlib.error)  # what a truncated or corrupt archive raises

#: A single column whose univariate ROC-AUC reaches this separates the classes "almost perfectly".
LEAK_SEPARATION = 0.995
_ID_NAME = re.compile(r"(^|[_\W])(id|ids|uid|udi|uuid|guid|key|index|idx|row|rownum|record)($|[_\W])|id$", re.I)


# ---------------------------------------------------------------------------- loading
#: A column of text becomes numeric when at least this share of its non-empty cells are numbers ...
NUMERIC_SHARE = 0.95
#: ... and at least this many are: a handful of cells is too few to call the rest junk.
MIN_NUMERIC_CELLS = 10
#: Where a frame carries its reading notes: ``DataFrame.attrs``, as plain dicts, because pandas copies attrs
#: into whatever is derived from the frame and writes them into Parquet files as JSON.
NOTES = "poise.notes"

NoteKind = Literal["number_format", "junk", "infinite", "columns", "missing_target"]


@dataclass(frozen=True)
class DataNote:
    """One thing poise changed while reading the data, worded for the person who owns it."""

    kind: NoteKind
    message: str
    columns: tuple[str, ...] = ()
    count: int = 0

    def __str__(self) -> str:
        return self.message


def reading_notes(frame: pd.DataFrame) -> list[DataNote]:
    """What ``load_table`` / ``read_csv_bytes`` changed in reading ``frame`` (empty for any other frame)."""
    return [DataNote(n["kind"], n["message"], tuple(n["columns"]), n["count"]) for n in frame.attrs.get(NOTES, ())]


def _attach_notes(frame: pd.DataFrame, notes: list[DataNote]) -> pd.DataFrame:
    frame.attrs[NOTES] = [{**asdict(note), "columns": list(note.columns)} for note in notes]
    return frame


@dataclass(frozen=True)
class _CsvFormat:
    delimiter: str
    decimal: str = "."
    thousands: str | None = None


def load_table(path: str | Path) -> pd.DataFrame:
    """Read a CSV (any delimiter, optionally gzip/bz2/xz-compressed, encoding sniffed) or Parquet file.

    What reading had to change (decimal commas, junk in numeric columns, infinities, nameless or
    repeated column names) is said in ``reading_notes(frame)``.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"no such file: {path}", "check the path; relative paths start from the current directory")
    if path.is_dir():
        raise DataError(f"{path} is a folder, not a table", "pass a .csv, .csv.gz or .parquet file")
    suffixes = [s.lower() for s in path.suffixes]
    if suffixes and suffixes[-1] in (".parquet", ".pq"):
        try:
            frame = _tidy(pd.read_parquet(path), None, None)
        except (ValueError, OSError) as exc:
            raise DataError(f"could not read {path.name}: {exc}", "pass a well-formed Parquet file") from exc
    else:
        frame = _read_csv(path, suffixes)
    if frame.shape[1] < 2 or frame.shape[0] == 0:
        raise DataError(
            f"{path.name} has {frame.shape[0]} rows and {frame.shape[1]} columns",
            "a table needs a header row, at least one feature column, the target column and some rows",
        )
    return frame


def _read_csv(path: Path, suffixes: list[str]) -> pd.DataFrame:
    opener = _OPENERS.get(suffixes[-1] if suffixes else "", open)
    try:
        with opener(path, "rb") as handle:
            raw = handle.read(256 * 1024)
    except _BROKEN as exc:
        raise DataError(f"could not read {path.name}: {exc}", "pass a well-formed CSV or Parquet file") from exc
    if not raw.strip():
        raise DataError(f"{path.name} is empty", "pass a table with a header row and data rows")
    if b"\x00" in raw[:4096]:
        raise DataError(f"{path.name} looks binary, not like a CSV", "pass a CSV, CSV.GZ or Parquet file")
    encoding, text = _decode(raw)
    return _parse(path, text, encoding, path.name)


def read_csv_bytes(raw: bytes) -> pd.DataFrame:
    """A CSV held in memory (an upload), read exactly as ``load_table`` reads a file, notes included."""
    if b"\x00" in raw[:4096]:
        raise DataError("the upload looks binary, not like a CSV", "upload a CSV file")
    _, text = _decode(raw)
    return _parse(io.StringIO(text), text, None, "the CSV")


def _parse(source: Path | io.StringIO, text: str, encoding: str | None, what: str) -> pd.DataFrame:
    """One reader for files and uploads: delimiter, decimal mark and header sniffed from ``text``."""
    fmt = _csv_format(text)
    try:
        frame = pd.read_csv(source, sep=fmt.delimiter, decimal=fmt.decimal, thousands=fmt.thousands,
                            encoding=encoding, compression="infer" if encoding else None, index_col=False,
                            low_memory=False)
    except (ValueError, pd.errors.ParserError, *_BROKEN) as exc:
        raise DataError(f"could not read {what}: {exc}", "pass a well-formed CSV with a header row") from exc
    return _tidy(frame, _header(text, fmt.delimiter), fmt)


def _csv_format(text: str) -> _CsvFormat:
    delimiter = _delimiter(text)
    decimal, thousands = _number_format(text, delimiter)
    return _CsvFormat(delimiter, decimal, thousands)


def _delimiter(text: str) -> str:
    """The candidate that splits the header into two or more fields and the most rows into as many.

    ``csv.Sniffer`` alone prefers ``,`` when every row holds as many decimal commas, even in a
    file delimited by ``;``; the header (which has no numbers) tells the two apart.
    """
    sample = text[: 64 * 1024]
    best, best_score = ",", (-1.0, 0)
    for candidate in _DELIMITERS:
        try:
            rows = [row for row in csv.reader(io.StringIO(sample), delimiter=candidate) if row][:51]
        except csv.Error:
            continue
        if len(rows) > 2 and len(sample) < len(text):
            rows = rows[:-1]  # the sample may end inside the last row
        width = len(rows[0]) if rows else 0
        if width < 2:
            continue
        agree = sum(len(row) == width for row in rows[1:]) / max(len(rows) - 1, 1)
        if (agree, width) > best_score:
            best, best_score = candidate, (agree, width)
    return best


_NUMBER = re.compile(r"[+-]?(\d[\d.,]*|[.,]\d+)([eE][+-]?\d+)?")
_GROUPED = re.compile(r"[+-]?\d{1,3}([.,]\d{3})+")  # 1.234 or 1,234: a decimal mark or a thousands separator
_EUROPEAN = re.compile(r"[+-]?\d{1,3}(\.\d{3})+,\d*([eE][+-]?\d+)?")  # 1.234,5
_AMERICAN = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d*([eE][+-]?\d+)?")  # 1,234.5


def _number_format(text: str, delimiter: str) -> tuple[str, str | None]:
    """The decimal mark and thousands separator the numbers in ``text`` use, from their shapes.

    An unambiguous decimal comma (``21,5``, ``1.234,5``) with no unambiguous decimal point means
    decimal ``,``; a grouped ``1,234.5`` with no decimal comma means thousands ``,``. A cell like
    ``1,500`` alone is ambiguous: in a file not delimited by commas it is read as a decimal comma
    (the European export), else it is left as written. Mixed evidence keeps pandas' defaults.
    """
    rows = list(csv.reader(io.StringIO("\n".join(text.splitlines()[1:200])), delimiter=delimiter))
    cells = [c.strip() for row in rows for c in row if _NUMBER.fullmatch(c.strip())]
    votes = {"comma": 0, "dot": 0, "grouped_dot": 0, "grouped_comma": 0, "eu": 0, "us": 0}
    for cell in cells:
        if _EUROPEAN.fullmatch(cell):
            votes["eu"] += 1
        elif _AMERICAN.fullmatch(cell):
            votes["us"] += 1
        elif "," in cell and "." in cell:
            continue
        elif _GROUPED.fullmatch(cell):
            votes["grouped_comma" if "," in cell else "grouped_dot"] += 1
        elif cell.count(",") == 1:
            votes["comma"] += 1
        elif cell.count(".") == 1:
            votes["dot"] += 1
    european, american = votes["eu"] + votes["comma"], votes["us"] + votes["dot"]
    if european and not american:
        return ",", "." if votes["eu"] or votes["grouped_dot"] else None
    if american and not european:
        return ".", "," if votes["us"] or votes["grouped_comma"] else None
    if not european and not american and votes["grouped_comma"] and not votes["grouped_dot"] and delimiter != ",":
        return ",", None
    return ".", None


def _header(text: str, delimiter: str) -> list[str] | None:
    try:
        return next((row for row in csv.reader(io.StringIO(text), delimiter=delimiter) if row), None)
    except csv.Error:
        return None


def _tidy(frame: pd.DataFrame, header: list[str] | None, fmt: _CsvFormat | None) -> pd.DataFrame:
    """Name every column, make numbers of mostly numeric text, infinities missing; note each change.

    ``fmt`` is None for Parquet, whose column types were declared by its writer and are kept.
    """
    notes: list[DataNote] = []
    frame = _name_columns(frame, header, notes)
    if fmt is not None:
        _read_text_numbers(frame, fmt, notes)
    _infinities_missing(frame, notes)
    return _attach_notes(frame, notes)


def _read_text_numbers(frame: pd.DataFrame, fmt: _CsvFormat, notes: list[DataNote]) -> None:
    """Text columns that are numbers (despite junk, or with a decimal comma of their own) become numeric."""
    if fmt.decimal == ",":
        notes.append(DataNote("number_format", "numbers use a decimal comma"
                              + (" and '.' between thousands" if fmt.thousands else "") + ", and were read so"))
    elif fmt.thousands:
        notes.append(DataNote("number_format", f"numbers use {fmt.thousands!r} between thousands, and were read so"))
    comma = _CsvFormat(fmt.delimiter, ",")
    for name in frame.columns:
        if frame[name].dtype == object or pd.api.types.is_string_dtype(frame[name]):
            frame[name] = _numbers_despite_junk(frame[name], fmt, notes)
        if not pd.api.types.is_numeric_dtype(frame[name]) and _decimal_comma_column(frame[name], fmt):
            frame[name] = _numbers_despite_junk(frame[name], comma, notes)
            if pd.api.types.is_numeric_dtype(frame[name]):
                notes.append(DataNote("number_format", f"column {name!r} uses a decimal comma, unlike the rest of "
                                                       "the file, and was read so", (str(name),)))


def _name_columns(frame: pd.DataFrame, header: list[str] | None, notes: list[DataNote]) -> pd.DataFrame:
    """Every column gets a distinct, non-empty name; a nameless column with no values goes."""
    written = header if header is not None and len(header) == frame.shape[1] else list(frame.columns)
    names = [str(c).strip() for c in written]
    frame = frame.set_axis(range(frame.shape[1]), axis=1)
    blank = [i for i, n in enumerate(names) if not n and frame[i].isna().all()]
    if blank:
        frame = frame.drop(columns=blank)
        notes.append(DataNote("columns", f"{len(blank)} column(s) with neither a name nor values were left out "
                                         "(a delimiter at the end of each line?)", count=len(blank)))
    taken: set[str] = set()
    final, renamed = [], []
    for i in frame.columns:
        base = names[i] or f"column_{i + 1}"
        name, k = base, 2
        while name in taken:
            name, k = f"{base}_{k}", k + 1
        taken.add(name)
        final.append(name)
        if name != names[i]:
            renamed.append(f"{'column ' + str(i + 1) + ' (no name)' if not names[i] else repr(names[i])} → {name!r}")
    if renamed:
        notes.append(DataNote("columns", "column names that were empty or repeated were made distinct: "
                                         + ", ".join(renamed[:10]) + (" …" if len(renamed) > 10 else ""),
                              tuple(final), len(renamed)))
    return frame.set_axis(final, axis=1)


def _decimal_comma_column(series: pd.Series, fmt: _CsvFormat) -> bool:
    """A text column of a file read with decimal points whose cells show an unmistakable decimal comma."""
    if fmt.decimal != "." or fmt.delimiter == ",":
        return False
    cells = series.dropna().astype(str).str.strip()
    unambiguous = cells.str.fullmatch(r"[+-]?\d*,\d+") & ~cells.str.fullmatch(_GROUPED.pattern)
    return bool(unambiguous.any() and not cells.str.contains(".", regex=False).any())


def _numbers_despite_junk(series: pd.Series, fmt: _CsvFormat, notes: list[DataNote]) -> pd.Series:
    """A text column whose cells are almost all numbers becomes numeric; the rest become missing, said so.

    The rule: at least ``NUMERIC_SHARE`` of the non-empty cells, and at least ``MIN_NUMERIC_CELLS``
    of them, read as numbers (with the file's decimal mark and thousands separator). A column whose
    every non-empty cell is a number is numeric however short.
    """
    text = series.astype(object).map(lambda v: str(v).strip(), na_action="ignore")
    filled = text.notna() & (text != "")
    cleaned = text
    if fmt.thousands:
        cleaned = cleaned.str.replace(fmt.thousands, "", regex=False)
    if fmt.decimal != ".":
        cleaned = cleaned.str.replace(fmt.decimal, ".", regex=False)
    numbers = pd.to_numeric(cleaned.where(filled), errors="coerce").astype(float)
    parsed = int(numbers.notna().sum())
    junk = filled & numbers.isna()
    if not parsed or (junk.any() and (parsed < MIN_NUMERIC_CELLS or parsed < NUMERIC_SHARE * filled.sum())):
        return series
    if junk.any():
        tokens = ", ".join(repr(t) for t in text[junk].unique()[:3])
        notes.append(DataNote(
            "junk", f"column {series.name!r} is numeric but {int(junk.sum())} cell(s) were not numbers "
                    f"(such as {tokens}); they were read as missing", (str(series.name),), int(junk.sum())))
    return numbers


def _infinities_missing(frame: pd.DataFrame, notes: list[DataNote]) -> None:
    found: dict[str, int] = {}
    for name in frame.columns:
        column = frame[name]
        if pd.api.types.is_float_dtype(column):
            infinite = np.isinf(column.to_numpy(dtype=float, na_value=np.nan))
            if infinite.any():
                frame[name] = column.mask(infinite)
                found[str(name)] = int(infinite.sum())
    if found:
        where = ", ".join(f"{name!r} ({n} row{'s' if n > 1 else ''})" for name, n in found.items())
        notes.append(DataNote("infinite", f"infinite values (inf, -inf) were read as missing in {where}",
                              tuple(found), sum(found.values())))


def _decode(raw: bytes) -> tuple[str, str]:
    for encoding in _ENCODINGS:
        try:
            return encoding, raw.decode(encoding)
        except UnicodeDecodeError:
            # the sample may end inside a multi-byte character; judge it without the tail
            try:
                return encoding, raw[:-4].decode(encoding)
            except UnicodeDecodeError:
                continue
    return "latin-1", raw.decode("latin-1")


def fingerprint(frame: pd.DataFrame) -> str:
    """A content hash of the table (values and column names), stable across file formats."""
    digest = hashlib.sha256("\x1f".join(map(str, frame.columns)).encode())
    digest.update(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes())
    return digest.hexdigest()


# ---------------------------------------------------------------------------- the target
@dataclass(frozen=True)
class LabelledTable:
    """Features, the 0/1 target (1 = positive) and the labels they stand for."""

    features: pd.DataFrame
    y: np.ndarray
    positive_label: Label
    negative_label: Label
    n_missing_target: int = 0
    notes: tuple[DataNote, ...] = ()


def resolve_column(frame: pd.DataFrame, name: str, what: str = "column") -> str:
    """The column the user meant: exact, else case/space/punctuation-insensitive; else a clear error."""
    if name in frame.columns:
        return name
    wanted = normalise_column_name(name)
    matches = [c for c in frame.columns if normalise_column_name(c) == wanted]
    if len(matches) == 1:
        return matches[0]
    close = difflib.get_close_matches(name, list(map(str, frame.columns)), n=3, cutoff=0.5)
    hint = f"did you mean {', '.join(repr(c) for c in close)}?" if close else "columns are: " + ", ".join(
        repr(c) for c in list(frame.columns)[:30]
    )
    raise DataError(f"{what} {name!r} is not in the table", hint)


def prepare_target(frame: pd.DataFrame, target: str, positive_label: Label | None = None) -> LabelledTable:
    """Split the table into features and a binary 0/1 target; the positive class is stated or the rarer one."""
    target = resolve_column(frame, target, "target column")
    labels = frame[target]
    missing = labels.isna()
    if missing.all():
        raise DataError(f"target column {target!r} is empty", "choose a column that holds the labels")
    notes = reading_notes(frame)
    if missing.any():
        notes.append(DataNote("missing_target", f"{int(missing.sum())} row(s) with no value in the target column "
                                                f"{target!r} were left out", (target,), int(missing.sum())))
    frame, labels = frame.loc[~missing], labels[~missing]
    counts = labels.value_counts()
    if len(counts) < 2:
        raise DataError(
            f"target column {target!r} has a single class ({counts.index[0]!r}); there is nothing to learn",
            "check the target column, or add rows of the other class",
        )
    if positive_label is None:
        if len(counts) > 2:
            raise DataError(
                f"target column {target!r} has {len(counts)} classes: {_show(counts.index)}",
                "poise learns one class against the rest: state which with --positive LABEL",
            )
        # rarer class; on a tie the larger label (1 over 0, 'yes' over 'no')
        positive = sorted(counts.index, key=lambda v: (counts[v], str(v)))[0] if counts.iloc[0] != counts.iloc[1] \
            else sorted(counts.index, key=str)[-1]
    else:
        positive = _match_label(counts.index, positive_label, target)
    y = (labels == positive).to_numpy(dtype=np.int8)
    negatives = [v for v in counts.index if v != positive]
    negative: Label = _python(negatives[0]) if len(negatives) == 1 else "rest"
    features = frame.drop(columns=[target])
    features.attrs.pop(NOTES, None)  # from here on the notes travel with the table, not its features
    return LabelledTable(
        features=features,
        y=y,
        positive_label=_python(positive),
        negative_label=negative,
        n_missing_target=int(missing.sum()),
        notes=tuple(notes),
    )


def _match_label(values: pd.Index, wanted: Label, target: str) -> object:
    for value in values:
        if value == wanted or str(value).strip().lower() == str(wanted).strip().lower():
            return value
    for value in values:  # "1" vs 1.0
        try:
            if float(value) == float(wanted):
                return value
        except (TypeError, ValueError):
            continue
    raise DataError(
        f"positive label {wanted!r} does not occur in {target!r}; its values are {_show(values)}",
        "pass one of those values as the positive label",
    )


def _show(values: pd.Index, limit: int = 8) -> str:
    shown = ", ".join(repr(_python(v)) for v in list(values)[:limit])
    return shown + (f" … ({len(values)} in all)" if len(values) > limit else "")


def _python(value: object) -> Label:
    return value.item() if isinstance(value, np.generic) else value  # type: ignore[return-value]


def row_keys(table: LabelledTable) -> np.ndarray:
    """Each row's key (unsigned 64-bit): a hash of its values and its label, the same in every run and in every
    later version of the file. The holdout is drawn by it, and a version remembers its holdout rows by it."""
    return pd.util.hash_pandas_object(table.features.assign(__label__=table.y), index=False).to_numpy()


def split_holdout(table: LabelledTable, fraction: float) -> tuple[LabelledTable, LabelledTable]:
    """Stratified train/holdout split by row content, made before anything looks at the labels.

    Each row's side follows from a hash of its values, not from a seed or its position: the
    same row lands on the same side in every run and in every later version of the file, so
    a champion trained on an older version is never scored on rows it learned from, and exact
    duplicates never straddle the split. Per class, rows whose hash falls below ``fraction``
    are held out; a class too small for that to be reliable takes its lowest hashes instead.
    """
    n_pos = int(table.y.sum())
    if min(n_pos, len(table.y) - n_pos) < 2:
        raise DataError(
            f"the positive class has {n_pos} row(s) and the negative {len(table.y) - n_pos}; "
            "a holdout needs at least 2 of each",
            "add rows of the rare class",
        )
    unit = row_keys(table) / float(2**64)
    held = unit < fraction
    for cls in (0, 1):
        members = np.flatnonzero(table.y == cls)
        wanted = min(max(1, round(fraction * len(members))), len(members) - 1)
        if len(members) < 100 or not 1 <= held[members].sum() <= len(members) - 1:
            held[members] = False
            held[members[np.argsort(unit[members], kind="stable")[:wanted]]] = True

    def part(mask: np.ndarray) -> LabelledTable:
        idx = np.flatnonzero(mask)
        return LabelledTable(
            table.features.iloc[idx].reset_index(drop=True), table.y[idx], table.positive_label, table.negative_label,
            notes=table.notes,
        )

    return part(~held), part(held)


# ---------------------------------------------------------------------------- profiling
def profile_table(table: LabelledTable, *, source: str, target: str, data_fingerprint: str) -> DataProfile:
    """Types, missingness, cardinality, identifiers, leaks, time columns and the class balance."""
    frame, y = table.features, table.y
    n_pos = int(y.sum())
    n_neg = len(y) - n_pos
    columns = [_profile_column(frame[name], y) for name in frame.columns]
    return DataProfile(
        source=source,
        n_rows=len(frame),
        n_columns=frame.shape[1],
        target=target,
        positive_label=table.positive_label,
        negative_label=table.negative_label,
        class_counts={str(table.positive_label): n_pos, str(table.negative_label): n_neg},
        minority_share=min(n_pos, n_neg) / max(len(y), 1),
        imbalance_ratio=max(n_pos, n_neg) / max(min(n_pos, n_neg), 1),
        n_duplicate_rows=int(frame.duplicated().sum()),
        n_missing_target=table.n_missing_target,
        fingerprint=data_fingerprint,
        columns=columns,
        notes=[str(note) for note in table.notes],
    )


def column_kind(series: pd.Series) -> str:
    """numeric, boolean, datetime, categorical or text (free, high-cardinality strings)."""
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "datetime"
    if pd.api.types.is_numeric_dtype(series):
        return "numeric"
    values = series.dropna()
    if len(values) and _looks_like_dates(values):
        return "datetime"
    n_unique = values.nunique()
    if n_unique <= max(50, int(0.05 * len(values))):
        return "categorical"
    return "text"


def _looks_like_dates(values: pd.Series) -> bool:
    sample = values.astype(str).head(200)
    if not sample.str.contains(r"\d[-/:.]\d", regex=True).mean() > 0.9:
        return False
    parsed = pd.to_datetime(sample, errors="coerce", format="mixed")
    return bool(parsed.notna().mean() > 0.95)


def _profile_column(series: pd.Series, y: np.ndarray) -> ColumnProfile:
    n = len(series)
    n_missing = int(series.isna().sum())
    n_unique = int(series.nunique(dropna=True))
    kind = column_kind(series)
    unique_share = n_unique / max(n - n_missing, 1)
    separation = _separation(series, kind, y) if n_unique > 1 else None
    leak = (
        f"on its own it separates the classes almost perfectly (ROC-AUC {separation:.3f}); "
        "a column like this usually records the outcome itself"
        if separation is not None and separation >= LEAK_SEPARATION
        else None
    )
    return ColumnProfile(
        name=str(series.name),
        dtype=str(series.dtype),
        kind=kind,
        n_missing=n_missing,
        missing_share=n_missing / max(n, 1),
        n_unique=n_unique,
        unique_share=min(unique_share, 1.0),
        is_constant=n_unique <= 1,
        identifier_reason=_identifier_reason(series, kind, unique_share),
        separation=separation,
        leak_reason=leak,
        examples=[str(v)[:60] for v in series.dropna().unique()[:5]],
    )


def _identifier_reason(series: pd.Series, kind: str, unique_share: float) -> str | None:
    name = str(series.name)
    if kind == "text" and unique_share >= 0.95:
        return f"{unique_share:.0%} of its values are distinct strings, like a code or a name"
    if not pd.api.types.is_integer_dtype(series) and kind != "text":
        return None
    if _ID_NAME.search(name) and unique_share >= 0.95:
        return f"its name reads like an identifier and {unique_share:.0%} of its values are distinct"
    values = series.dropna()
    if pd.api.types.is_integer_dtype(series) and unique_share == 1.0 and len(values) > 20:
        steps = np.diff(np.sort(values.to_numpy()))
        if steps.size and np.all(steps == 1):
            return "its values are consecutive integers, one per row, like a row number"
    return None


def _separation(series: pd.Series, kind: str, y: np.ndarray) -> float | None:
    """Univariate ROC-AUC of the column (folded to >= 0.5); categories are target-encoded out of fold."""
    from sklearn.metrics import roc_auc_score

    if kind == "numeric" or kind == "boolean":
        values = pd.to_numeric(series, errors="coerce").astype(float)
        score = values.fillna(values.median() if values.notna().any() else 0.0).to_numpy()
    elif kind == "categorical":
        score = _out_of_fold_target_rate(series.astype("string").fillna("<missing>"), y)
    else:
        return None
    if np.all(score == score[0]):
        return 0.5
    auc = float(roc_auc_score(y, score))
    return max(auc, 1.0 - auc)


def _out_of_fold_target_rate(series: pd.Series, y: np.ndarray, folds: int = 5) -> np.ndarray:
    """Each row's category scored by the positive rate of that category in the other folds (cross-fitting).

    ``TargetEncoder.fit_transform`` cross-fits: a row's own label never reaches its score, so a
    category seen once cannot pass for a perfect separator. The rate is smoothed towards the
    folds' positive rate as ``(positives + 10 · prior) / (rows + 10)``; a category missing from
    the other folds gets that prior.
    """
    from sklearn.preprocessing import TargetEncoder

    encoder = TargetEncoder(target_type="binary", smooth=10.0, **_stratified_folds(folds, seed=0))
    return encoder.fit_transform(series.to_numpy(dtype=object).reshape(-1, 1), y)[:, 0]


def _stratified_folds(folds: int, seed: int) -> dict[str, object]:
    """``TargetEncoder``'s folds, shuffled with a fixed seed so a profile is the same on every run.

    scikit-learn 1.9 takes the splitter itself (and deprecates ``shuffle`` / ``random_state``);
    the versions before it build the same ``StratifiedKFold`` from those two.
    """
    import sklearn
    from sklearn.model_selection import StratifiedKFold
    from sklearn.utils.fixes import parse_version

    if parse_version(sklearn.__version__).release >= (1, 9):
        return {"cv": StratifiedKFold(folds, shuffle=True, random_state=seed)}
    return {"cv": folds, "shuffle": True, "random_state": seed}
