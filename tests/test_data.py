"""Loading, target handling, holdout splitting and profiling."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

from poise.contracts import normalise_column_name
from poise.errors import DataError
from poise.tools import data
from tests.conftest import AI4I, DATA


def test_loads_csv_with_other_delimiters_compression_and_encodings(tmp_path, mixed_frame):
    mixed_frame.to_csv(tmp_path / "semi.csv", sep=";", index=False)
    with gzip.open(tmp_path / "tab.tsv.gz", "wt") as handle:
        mixed_frame.to_csv(handle, sep="\t", index=False)
    latin = mixed_frame.assign(colour=mixed_frame["colour"].replace("red", "rouge café"))
    latin.to_csv(tmp_path / "latin.csv", index=False, encoding="cp1252")
    mixed_frame.to_parquet(tmp_path / "table.parquet")
    for name in ("semi.csv", "tab.tsv.gz", "table.parquet"):
        loaded = data.load_table(tmp_path / name)
        assert list(loaded.columns) == list(mixed_frame.columns), name
        assert len(loaded) == len(mixed_frame)
    assert "rouge café" in set(data.load_table(tmp_path / "latin.csv")["colour"])


def test_bad_files_are_clear_errors(tmp_path):
    with pytest.raises(DataError, match="no such file"):
        data.load_table(tmp_path / "missing.csv")
    (tmp_path / "empty.csv").write_text("")
    with pytest.raises(DataError, match="empty"):
        data.load_table(tmp_path / "empty.csv")
    (tmp_path / "one.csv").write_text("only\n1\n2\n")
    with pytest.raises(DataError, match="1 columns"):
        data.load_table(tmp_path / "one.csv")


def test_string_labels_positive_is_the_rarer_class(mixed_frame):
    table = data.prepare_target(mixed_frame, "label")
    counts = mixed_frame["label"].value_counts()
    assert table.positive_label == counts.idxmin()
    assert table.y.sum() == counts.min()
    assert "label" not in table.features.columns


def test_stated_positive_label_matches_by_value(mixed_frame):
    table = data.prepare_target(mixed_frame, "label", positive_label="NO")
    assert table.positive_label == "no"
    ints = pd.DataFrame({"x": range(10), "y": [0, 1] * 5})
    assert data.prepare_target(ints, "y", positive_label="1").positive_label == 1


def test_target_problems_are_clear_errors(mixed_frame):
    with pytest.raises(DataError, match="single class"):
        data.prepare_target(mixed_frame.assign(label="no"), "label")
    with pytest.raises(DataError, match="does not occur"):
        data.prepare_target(mixed_frame, "label", positive_label="maybe")
    three = mixed_frame.assign(label=np.resize(["a", "b", "c"], len(mixed_frame)))
    with pytest.raises(DataError, match="--positive"):
        data.prepare_target(three, "label")
    assert data.prepare_target(three, "label", positive_label="a").negative_label == "rest"
    with pytest.raises(DataError, match="did you mean 'label'"):
        data.prepare_target(mixed_frame, "labels")


def test_column_names_match_despite_case_spaces_and_punctuation():
    frame = pd.DataFrame({"Churned?": [0, 1], "Monthly Charges": [1.0, 2.0]})
    assert data.resolve_column(frame, "churned") == "Churned?"
    assert data.resolve_column(frame, "monthly_charges") == "Monthly Charges"
    assert normalise_column_name("Air temperature [K]") == normalise_column_name("air_temperature_k")
    assert normalise_column_name(2020) == "2020"


def test_rows_without_a_label_are_dropped_and_counted(mixed_frame):
    frame = mixed_frame.copy()
    frame.loc[:9, "label"] = np.nan
    table = data.prepare_target(frame, "label")
    assert table.n_missing_target == 10 and len(table.y) == len(frame) - 10


def test_holdout_is_stratified_and_disjoint(mixed_frame):
    table = data.prepare_target(mixed_frame.reset_index(names="row"), "label")
    train, hold = data.split_holdout(table, 0.25)
    assert len(hold.y) == pytest.approx(0.25 * len(table.y), rel=0.15)
    assert set(train.features["row"]).isdisjoint(hold.features["row"])
    assert len(train.y) + len(hold.y) == len(table.y)
    assert abs(hold.y.mean() - table.y.mean()) < 0.03


def test_a_row_keeps_its_side_when_rows_are_added_or_reordered():
    """A champion trained on last month's file is never scored on rows it learned from."""
    frame = data.load_table(AI4I)
    older = frame.iloc[:6000]
    newer = pd.concat([frame.iloc[6000:], older]).sample(frac=1.0, random_state=1)  # more rows, another order
    sides = []
    for version in (older, newer):
        train, hold = data.split_holdout(data.prepare_target(version, "target"), 0.2)
        sides.append((set(train.features["udi"]), set(hold.features["udi"])))
    (old_train, old_hold), (new_train, new_hold) = sides
    assert old_hold <= new_hold and old_train <= new_train
    assert new_hold.isdisjoint(old_train)
    positives = data.split_holdout(data.prepare_target(newer, "target"), 0.2)[1].y.sum()
    assert positives == pytest.approx(0.2 * 339, rel=0.25)


def test_profile_finds_identifiers_on_ai4i():
    frame = data.load_table(AI4I)
    table = data.prepare_target(frame, "target")
    profile = data.profile_table(table, source=str(AI4I), target="target", data_fingerprint=data.fingerprint(frame))
    flagged = {c.name for c in profile.columns if c.is_identifier}
    assert flagged == {"udi", "product_id"}
    assert profile.column("type").kind == "categorical"
    assert profile.class_counts == {"1": 339, "0": 9661}
    assert profile.imbalance_ratio == pytest.approx(9661 / 339)
    assert not any(c.is_leak for c in profile.columns)


def test_profile_flags_a_leak_a_constant_and_a_time_column(mixed_frame):
    table = data.prepare_target(mixed_frame, "label")
    features = table.features.assign(
        outcome_code=table.y * 10 + np.random.default_rng(1).normal(0, 0.1, len(table.y)),
        site="A",
        seen_at=pd.date_range("2024-01-01", periods=len(table.y), freq="h").astype(str),
    )
    table = data.LabelledTable(features, table.y, table.positive_label, table.negative_label)
    profile = data.profile_table(table, source="mem", target="label", data_fingerprint="x")
    assert profile.column("outcome_code").is_leak
    assert not profile.column("x1").is_leak
    assert profile.column("site").is_constant
    assert profile.column("seen_at").kind == "datetime"
    assert profile.column("x2").n_missing == 30


def test_a_category_that_records_the_outcome_is_a_leak_and_a_code_without_signal_is_not():
    rng = np.random.default_rng(3)
    y = (rng.random(3000) < 0.1).astype(np.int8)
    features = pd.DataFrame({
        "outcome_code": np.where(y == 1, rng.integers(0, 10, 3000), rng.integers(10, 100, 3000)).astype(str),
        "branch": rng.integers(0, 140, 3000).astype(str),  # many levels, no signal: scored out of fold, no leak
    })
    profile = data.profile_table(data.LabelledTable(features, y, 1, 0), source="mem", target="y",
                                 data_fingerprint="x")
    assert profile.column("outcome_code").kind == profile.column("branch").kind == "categorical"
    assert profile.column("outcome_code").is_leak
    assert profile.column("branch").separation < 0.6 and not profile.column("branch").is_leak


def test_fingerprint_follows_content_not_format(tmp_path):
    frame = data.load_table(DATA / "pima_diabetes.csv")
    frame.to_parquet(tmp_path / "pima.parquet")
    assert data.fingerprint(data.load_table(tmp_path / "pima.parquet")) == data.fingerprint(frame)
    changed = frame.copy()
    changed.iloc[0, 0] += 1
    assert data.fingerprint(changed) != data.fingerprint(frame)


# ---------------------------------------------------------------------------- odd data, read as meant
def _notes(frame: pd.DataFrame, kind: str) -> list[str]:
    return [str(note) for note in data.reading_notes(frame) if note.kind == kind]


def test_decimal_commas_are_numbers_in_files_and_uploads(tmp_path, mixed_frame):
    text = mixed_frame.to_csv(sep=";", decimal=",", index=False)
    assert "," in text.splitlines()[1]  # the file really uses decimal commas
    (tmp_path / "eu.csv").write_text(text, encoding="cp1252")
    for loaded in (data.load_table(tmp_path / "eu.csv"), data.read_csv_bytes(text.encode())):
        assert pd.api.types.is_float_dtype(loaded["x1"]) and pd.api.types.is_float_dtype(loaded["x2"])
        np.testing.assert_allclose(loaded["x1"], mixed_frame["x1"])
        assert loaded["x2"].isna().sum() == mixed_frame["x2"].isna().sum()
        assert _notes(loaded, "number_format") == ["numbers use a decimal comma, and were read so"]


def test_thousands_separators_only_when_unambiguous():
    eu = data.read_csv_bytes(b"amount;price;y\n1.234,5;3,25;0\n2.000;1,5;1\n12;7;0\n")
    assert eu["amount"].tolist() == [1234.5, 2000.0, 12.0] and eu["price"].tolist() == [3.25, 1.5, 7.0]
    us = data.read_csv_bytes(b'amount,y\n"1,234.5",0\n"2,000",1\n3.5,0\n')
    assert us["amount"].tolist() == [1234.5, 2000.0, 3.5]
    assert "','" in _notes(us, "number_format")[0]
    # "1.5" beside "2,5": the file reads with decimal points, and the one column with commas as itself
    mixed = data.read_csv_bytes(b"a;b;y\n1.5;2,5;0\n2.5;3,5;1\n")
    assert mixed["a"].tolist() == [1.5, 2.5] and mixed["b"].tolist() == [2.5, 3.5]
    assert _notes(mixed, "number_format") == ["column 'b' uses a decimal comma, unlike the rest of the file, "
                                              "and was read so"]
    # "1.5" beside "2,500": that comma is a thousands separator
    assert data.read_csv_bytes(b"a;b;y\n1.5;2,500;0\n2.5;3,750;1\n")["b"].tolist() == [2500, 3750]
    plain = data.read_csv_bytes(b"a,b,y\n1.500,2,0\n2.250,3,1\n")  # the pandas default reading stands
    assert plain["a"].tolist() == [1.5, 2.25] and not data.reading_notes(plain)


def test_a_mostly_numeric_column_keeps_its_numbers_and_names_the_junk(tmp_path):
    values = [f"{v:.2f}" for v in np.linspace(0, 10, 100)]
    values[3], values[40], values[77] = "error", "?", "-"
    frame = data.read_csv_bytes(("temp,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(values))).encode())
    assert pd.api.types.is_float_dtype(frame["temp"])
    assert frame["temp"].isna().sum() == 3 and frame["temp"][10] == pytest.approx(float(values[10]))
    [note] = _notes(frame, "junk")
    assert "'temp'" in note and "3 cell(s)" in note and "'error'" in note
    # a tenth of the cells being words is a categorical column, not junk: left as written, no note
    values = ["low", "high"] * 5 + [str(v) for v in range(90)]
    frame = data.read_csv_bytes(("level,y\n" + "".join(f"{v},{i % 2}\n" for i, v in enumerate(values))).encode())
    assert not pd.api.types.is_numeric_dtype(frame["level"]) and not _notes(frame, "junk")


def test_infinities_are_missing_and_said_so(tmp_path):
    (tmp_path / "inf.csv").write_text("a,b,y\n1,inf,0\n-inf,2,1\n3,Infinity,0\n4,5,1\n")
    frame = data.load_table(tmp_path / "inf.csv")
    assert frame["a"].isna().tolist() == [False, True, False, False]
    assert frame["b"].isna().tolist() == [True, False, True, False]
    [note] = _notes(frame, "infinite")
    assert "'a' (1 row)" in note and "'b' (2 rows)" in note


def test_empty_and_repeated_column_names_become_distinct(tmp_path):
    frame = data.read_csv_bytes(b"a,a, a ,,b,\n1,2,3,4,5,\n6,7,8,9,10,\n")
    assert list(frame.columns) == ["a", "a_2", "a_3", "column_4", "b"]
    assert frame["column_4"].tolist() == [4, 9]
    notes = _notes(frame, "columns")
    assert any("neither a name nor values" in n for n in notes)
    assert any("'a' → 'a_2'" in n and "column 4 (no name) → 'column_4'" in n for n in notes)


def test_reading_notes_and_missing_targets_reach_the_profile(tmp_path):
    rows = "".join(f"{i % 7},{'n/a' if i == 5 else i % 2}\n" for i in range(40)).replace("3,1\n", "3,\n", 1)
    (tmp_path / "t.csv").write_text("x,y\n" + rows.replace("6,0\n", "inf,0\n", 1))
    table = data.prepare_target(data.load_table(tmp_path / "t.csv"), "y")
    assert table.n_missing_target == 2
    train_part, _ = data.split_holdout(table, 0.25)
    profile = data.profile_table(train_part, source="t", target="y", data_fingerprint="-")
    assert any("infinite" in n for n in profile.notes)
    assert any("2 row(s) with no value in the target column 'y' were left out" in n for n in profile.notes)


def test_a_corrupt_archive_is_a_data_error(tmp_path):
    with gzip.open(tmp_path / "t.csv.gz", "wb") as handle:
        handle.write(b"a,b\n" + b"1,2\n" * 50_000)
    whole = (tmp_path / "t.csv.gz").read_bytes()
    (tmp_path / "cut.csv.gz").write_bytes(whole[: len(whole) // 2])
    (tmp_path / "bad.csv.gz").write_bytes(whole[:20] + bytes(200) + whole[220:])
    for name in ("cut.csv.gz", "bad.csv.gz"):
        with pytest.raises(DataError, match="could not read|binary"):
            data.load_table(tmp_path / name)


def test_unreadable_uploads_are_data_errors():
    with pytest.raises(DataError, match="binary"):
        data.read_csv_bytes(b"a,b\n\x00\x01\x02")
    with pytest.raises(DataError, match="could not read"):
        data.read_csv_bytes(b'a,b\n1,"2\n3,4\n')


def test_model_names_are_checked_before_any_work():
    from pydantic import ValidationError

    from poise.contracts import TaskSpec, model_name_problem
    from poise.errors import PoiseError
    from poise.registry.versions import check_name

    for good in ("ai4i-2020", "churn_v2.1", "_x", "A" * 100):
        assert model_name_problem(good) is None, good
    for bad, named in (("a/b", "'/' at position 2"), ("x y", "' '"), (".hidden", "starts with '.'"),
                       ("-x", "starts with '-'"), ("", "is empty"), ("a" * 101, "101 characters")):
        assert named in model_name_problem(bad), bad
    with pytest.raises(ValidationError, match="'/' at position 2"):
        TaskSpec(data="x.csv", target="y", model_name="a/b")
    with pytest.raises(PoiseError, match="letters, digits"):
        check_name("a\\b")


def test_the_model_refuses_infinite_numbers():
    from poise.registry.model import ModelCard, ModelInputError

    card = ModelCard(target="y", positive_label=1, negative_label=0, threshold=0.5, numeric=["a"])
    assert card.prepare(pd.DataFrame({"a": [1.0, None]}))["a"].isna().tolist() == [False, True]
    with pytest.raises(ModelInputError, match="'a' holds an infinite value in row 1"):
        card.prepare(pd.DataFrame({"a": ["1", "-inf"]}))


def test_frames_with_notes_still_write_parquet(tmp_path):
    frame = data.read_csv_bytes(b"a;b;y\n1,5;inf;0\n2,5;3;1\n")
    assert data.reading_notes(frame)
    frame.head(1).to_parquet(tmp_path / "derived.parquet")  # attrs travel into derived frames and files
    table = data.prepare_target(frame, "y")
    assert table.notes and not data.reading_notes(table.features)
