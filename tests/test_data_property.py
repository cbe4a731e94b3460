"""The table loader on generated files: it reads what was written, or says why it cannot.

Each example writes a small table the way spreadsheets and scripts do (any of the four delimiters,
a decimal point or comma, thousands separators, four encodings, minimal or full quoting, junk
tokens and infinities in numeric columns, empty and repeated column names, blank lines) and checks
that ``load_table`` either raises poise's own ``DataError`` or returns every numeric column as
numbers equal to those written, with junk and infinities missing exactly where the rule says.
"""

from __future__ import annotations

import csv
import io
import math

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from poise.errors import DataError
from poise.tools import data

WORDS = ["red", "green", "café", "Zürich", "straße", "naïve", "x y", "a;b", "p|q", 'say "hi"', "t\tu"]
JUNK = ["error", "?", "-", "n/a"]  # 'n/a' is pandas' own missing marker; the rest are junk
NAMES = ["a", "b", "a", "", " padded ", "Größe", "x,y"]


@st.composite
def tables(draw: st.DrawFn) -> dict:
    delimiter = draw(st.sampled_from(",;\t|"))
    # nobody writes decimal commas into a comma-delimited file: European exports switch to ';'
    decimal = "." if delimiter == "," else draw(st.sampled_from(".,"))
    thousands = draw(st.booleans())
    n_rows = draw(st.integers(1, 60))
    columns = []
    for _ in range(draw(st.integers(2, 5))):
        name = draw(st.sampled_from(NAMES))
        if draw(st.booleans()):
            places = draw(st.integers(0, 3))
            numbers = draw(st.lists(st.one_of(st.none(), st.integers(-(10**7), 10**7)),
                                    min_size=n_rows, max_size=n_rows))
            cells: list = [None if v is None else v / 10**places for v in numbers]
            for i in draw(st.lists(st.integers(0, n_rows - 1), max_size=2)):
                cells[i] = draw(st.sampled_from([*JUNK, "inf", "-inf"]))
            columns.append({"name": name, "kind": "numeric", "places": places, "cells": cells})
        else:
            cells = draw(st.lists(st.one_of(st.none(), st.sampled_from(WORDS)), min_size=n_rows, max_size=n_rows))
            columns.append({"name": name, "kind": "text", "cells": cells})
    return {
        "delimiter": delimiter, "decimal": decimal, "thousands": thousands, "n_rows": n_rows, "columns": columns,
        "encoding": draw(st.sampled_from(["utf-8", "utf-8-sig", "cp1252", "latin-1"])),
        "quoting": draw(st.sampled_from([csv.QUOTE_MINIMAL, csv.QUOTE_ALL])),
        "blank_lines": draw(st.lists(st.integers(0, n_rows), max_size=3)),
    }


def _number(value: float, places: int, decimal: str, thousands: bool) -> str:
    text = f"{value:,.{places}f}" if thousands and places else f"{value:.{places}f}"
    if decimal == ",":  # 1,234.5 → 1.234,5
        text = text.replace(",", "\x00").replace(".", ",").replace("\x00", ".")
    return text


def _write(table: dict) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=table["delimiter"], quoting=table["quoting"], lineterminator="\n")
    writer.writerow([c["name"] for c in table["columns"]])
    for i in range(table["n_rows"]):
        if i in table["blank_lines"]:
            out.write("\n")
        row = []
        for column in table["columns"]:
            cell = column["cells"][i]
            if isinstance(cell, float):
                cell = _number(cell, column["places"], table["decimal"], table["thousands"])
            row.append("" if cell is None else cell)
        writer.writerow(row)
    return out.getvalue().encode(table["encoding"])


def _check_numeric(loaded: pd.Series, column: dict) -> None:
    cells = column["cells"]
    numbers = [c for c in cells if isinstance(c, float) or c in ("inf", "-inf")]
    junk = [c for c in cells if c in ("error", "?", "-")]
    filled = len(numbers) + len(junk)
    numeric_expected = not junk or (len(numbers) >= data.MIN_NUMERIC_CELLS
                                    and len(numbers) >= data.NUMERIC_SHARE * filled)
    if not numbers:
        return  # nothing to compare: all missing or junk
    if not numeric_expected:
        assert not pd.api.types.is_numeric_dtype(loaded), column["name"]
        return
    assert pd.api.types.is_numeric_dtype(loaded), (column["name"], loaded.tolist()[:5])
    for cell, got in zip(cells, loaded.tolist(), strict=True):
        if isinstance(cell, float):
            assert math.isclose(got, cell, rel_tol=1e-12, abs_tol=1e-12), (cell, got)
        else:  # missing, junk or infinite: all read as missing
            assert got is None or math.isnan(got), (cell, got)


@settings(max_examples=80, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])
@given(tables())
def test_the_loader_reads_what_was_written_or_raises_data_error(tmp_path_factory, table):
    path = tmp_path_factory.mktemp("prop") / "table.csv"
    raw = _write(table)
    path.write_bytes(raw)
    try:
        frame = data.load_table(path)
    except DataError:
        return
    pd.testing.assert_frame_equal(frame, data.read_csv_bytes(raw))
    columns = table["columns"]
    assert len(frame) == table["n_rows"]
    assert frame.columns.is_unique and all(str(c) for c in frame.columns)
    kept = [c for c in columns if c["name"].strip() or any(v is not None and v != "n/a" for v in c["cells"])]
    assert frame.shape[1] == len(kept)
    for position, column in enumerate(kept):
        loaded = frame.iloc[:, position]
        if column["name"].strip() and [c["name"].strip() for c in kept].count(column["name"].strip()) == 1:
            assert loaded.name == column["name"].strip()
        if column["kind"] == "numeric":
            _check_numeric(loaded, column)
        else:
            assert [v if isinstance(v, str) else None for v in loaded.tolist()] == column["cells"]


def test_uploads_are_read_as_files_are(tmp_path):
    text = "temp;pressure;label\n21,5;1013,2;0\n22,25;1.014,5;1\n"
    (tmp_path / "eu.csv").write_text(text)
    from_file, from_upload = data.load_table(tmp_path / "eu.csv"), data.read_csv_bytes(text.encode())
    pd.testing.assert_frame_equal(from_file, from_upload)
    assert [str(n) for n in data.reading_notes(from_file)] == [str(n) for n in data.reading_notes(from_upload)]
