"""Loading, target handling, holdout splitting and profiling."""

from __future__ import annotations

import gzip

import numpy as np
import pandas as pd
import pytest

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


def test_fingerprint_follows_content_not_format(tmp_path):
    frame = data.load_table(DATA / "pima_diabetes.csv")
    frame.to_parquet(tmp_path / "pima.parquet")
    assert data.fingerprint(data.load_table(tmp_path / "pima.parquet")) == data.fingerprint(frame)
    changed = frame.copy()
    changed.iloc[0, 0] += 1
    assert data.fingerprint(changed) != data.fingerprint(frame)
