"""Demo tables for drift monitoring and recovery: what a first model learns from, and what arrives later.

AI4I 2020 (``poise/examples/ai4i2020.csv``, 10,000 rows): the rows are shuffled with a fixed seed
(``DataFrame.sample(frac=1, random_state=SEED)``, seed 0 by default) and cut into three parts that
never share a row:

* ``history.csv``: the first 60 % (6,000 rows), what the first champion is trained on;
* ``live_same.csv``: the next 20 % (2,000 rows), unchanged: live data of the same distribution;
* ``live_shift.csv``: the last 20 % (2,000 rows) with a documented covariate shift, as if the
  sensors had been re-calibrated: **air and process temperature +3 K, torque × 1.2** (rounded to
  0.1, the file's own precision). Only the readings move: the machines, and so the labels (the
  original ``target`` of each row), stay as they were. A model that learned "high torque × speed
  means a power failure" now sees inflated torque and must re-learn where the boundary lies.

Occupancy detection (``benchmarks/data/occupancy_detection.csv``, 20,560 rows, one a minute,
2015-02-02 to 2015-02-18): cut in time, no shuffling, no change to any value:

* ``history.csv``: the first days, before 2015-02-11 (02-02 .. 02-10, 10,808 rows);
* ``live.csv``: the last days, from 2015-02-11 (02-11 .. 02-18, 9,752 rows). Nothing is
  simulated: a week later the room's CO2, humidity and temperature readings differ from the first
  days (see ``benchmarks/data/README.md``).

Every live file keeps the ``target`` column, so its labels can be fed back later (``/feedback``
or ``poise feedback``); a client sends only the feature columns to ``/predict``.

    python -m poise.examples.drift --out /tmp/drift            # both datasets
    python -m poise.examples.drift --dataset ai4i --out /tmp/ai4i --seed 1
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

TARGET = "target"
HERE = Path(__file__).resolve().parent
AI4I_CSV = HERE / "ai4i2020.csv"
#: In a checkout of the repository; pass ``source=`` (``--source``) anywhere else.
OCCUPANCY_CSV = HERE.parents[1] / "benchmarks" / "data" / "occupancy_detection.csv"

DATASETS = ("ai4i", "occupancy")
HISTORY_SHARE = 0.6
SAME_SHARE = 0.2
#: The AI4I covariate shift: column → (kind, amount). "add" adds, "scale" multiplies.
AI4I_SHIFT: dict[str, tuple[str, float]] = {
    "air_temperature_k": ("add", 3.0),
    "process_temperature_k": ("add", 3.0),
    "torque_nm": ("scale", 1.2),
}
OCCUPANCY_SPLIT = "2015-02-11"


@dataclass
class Table:
    """One written demo table and what it is."""

    name: str
    frame: pd.DataFrame
    about: str
    path: Path | None = None

    @property
    def positives(self) -> int:
        return int((self.frame[TARGET] == 1).sum())


def describe_shift() -> str:
    """The AI4I shift in words, e.g. for the demo's output."""
    parts = [f"{col} {'+' if kind == 'add' else '×'}{amount:g}{' K' if kind == 'add' else ''}"
             for col, (kind, amount) in AI4I_SHIFT.items()]
    return ", ".join(parts) + " (labels unchanged)"


def apply_shift(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of AI4I rows with the documented sensor shift applied."""
    shifted = frame.copy()
    for column, (kind, amount) in AI4I_SHIFT.items():
        moved = shifted[column] + amount if kind == "add" else shifted[column] * amount
        shifted[column] = moved.round(1)
    return shifted


def ai4i_tables(seed: int = 0, source: Path | str = AI4I_CSV, history_share: float = HISTORY_SHARE,
                same_share: float = SAME_SHARE) -> list[Table]:
    """history / live_same / live_shift of AI4I: disjoint parts of one shuffle."""
    if not (0 < history_share and 0 < same_share and history_share + same_share < 1):
        raise ValueError("history_share and same_share must be positive and leave rows for live_shift")
    frame = pd.read_csv(source).sample(frac=1.0, random_state=seed).reset_index(drop=True)
    cut1 = int(round(history_share * len(frame)))
    cut2 = cut1 + int(round(same_share * len(frame)))
    history, same, later = frame.iloc[:cut1], frame.iloc[cut1:cut2], frame.iloc[cut2:]
    return [
        Table("history", history, f"rows the first model is trained on ({history_share:.0%}, seed {seed})"),
        Table("live_same", same, "held-back rows, same distribution"),
        Table("live_shift", apply_shift(later), f"held-back rows, shifted: {describe_shift()}"),
    ]


def occupancy_tables(source: Path | str = OCCUPANCY_CSV, split_at: str = OCCUPANCY_SPLIT) -> list[Table]:
    """history (the first days) / live (the last days) of the occupancy data, cut in time."""
    source = Path(source)
    if not source.exists():
        raise FileNotFoundError(f"{source} not found: it ships with the repository (benchmarks/data); "
                                "pass its path with --source")
    frame = pd.read_csv(source)  # timestamps stay text: exactly what a client would send
    when = pd.to_datetime(frame["timestamp"])
    if not when.is_monotonic_increasing:
        raise ValueError(f"{source} is not ordered by time")
    early = when < pd.Timestamp(split_at)
    if early.all() or not early.any():
        raise ValueError(f"{split_at} does not fall inside {when.min()} .. {when.max()}")

    def days(part: pd.Series) -> str:
        return f"{part.min():%Y-%m-%d} .. {part.max():%Y-%m-%d}"

    return [
        Table("history", frame[early].reset_index(drop=True), f"the first days, {days(when[early])}"),
        Table("live", frame[~early].reset_index(drop=True), f"the last days, {days(when[~early])} (time drift)"),
    ]


def write_tables(dataset: str, folder: Path | str, seed: int = 0, source: Path | str | None = None) -> list[Table]:
    """Write the demo tables of ``dataset`` into ``folder`` (created); returns them with their paths."""
    if dataset not in DATASETS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    if dataset == "ai4i":
        tables = ai4i_tables(seed, source or AI4I_CSV)
    else:
        tables = occupancy_tables(source or OCCUPANCY_CSV)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for table in tables:
        table.path = folder / f"{table.name}.csv"
        table.frame.to_csv(table.path, index=False)
    return tables


def summary(tables: list[Table]) -> list[str]:
    """One line per table: file, rows, positives, what it is."""
    return [f"{str(t.path or t.name):<48} {len(t.frame):>6,} rows {t.positives:>5,} positives "
            f"({t.positives / len(t.frame):.2%})  {t.about}" for t in tables]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        prog="python -m poise.examples.drift",
        description="Write the drift demo tables: AI4I history / live_same / live_shift (shift: "
                    f"{describe_shift()}) and occupancy history / live (first days / last days).",
    )
    parser.add_argument("--dataset", choices=[*DATASETS, "both"], default="both")
    parser.add_argument("--out", type=Path, default=Path("drift-tables"),
                        help="Folder to write into; with --dataset both, one sub-folder per dataset "
                             "(default: ./drift-tables).")
    parser.add_argument("--seed", type=int, default=0, help="Shuffle seed of the AI4I split (default 0).")
    parser.add_argument("--source", type=Path, default=None,
                        help="The source CSV (default: the shipped AI4I file / the repository's occupancy file).")
    args = parser.parse_args(argv)
    chosen = DATASETS if args.dataset == "both" else (args.dataset,)
    if args.source is not None and len(chosen) > 1:
        parser.error("--source names one file: pass --dataset too")
    for dataset in chosen:
        folder = args.out / dataset if len(chosen) > 1 else args.out
        print(f"{dataset}:")
        for line in summary(write_tables(dataset, folder, args.seed, args.source)):
            print("  " + line)
    print("the live files keep the target column: send the features to /predict, the target back as labels")


if __name__ == "__main__":
    main()
