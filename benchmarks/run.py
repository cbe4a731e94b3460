"""poise against baselines and FLAML on every dataset in benchmarks/data.

For each dataset: three stratified 75/25 splits. Every system trains on the same 75 % and
is scored once on the same 25 %: average precision (PR-AUC) and MCC. poise and FLAML get
the same time budget; poise's wall time (search + refit) is reported against it.

    python benchmarks/run.py --budget 30 --out benchmarks/results.md

MCC is taken at each system's own decision rule: poise's threshold tuned on out-of-fold
predictions of the training part; ``predict()`` (probability 0.5) for the baselines and FLAML.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import pandas as pd  # noqa: E402
from sklearn.metrics import average_precision_score, matthews_corrcoef  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

HERE = Path(__file__).resolve().parent

#: Columns no system may use: identifiers and the bank's post-call `duration` (it leaks the label).
DROP = {
    "ai4i2020_predictive_maintenance": ["udi", "product_id"],
    "bank_marketing_additional": ["duration"],
    "taiwan_credit_default": ["id"],
}


@dataclass
class Score:
    dataset: str
    split: int
    system: str
    average_precision: float
    mcc: float
    seconds: float


# ------------------------------------------------------------------------------------------ systems
def _preprocessor(X: pd.DataFrame):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    numeric = X.select_dtypes("number").columns.tolist()
    categorical = [c for c in X.columns if c not in numeric and X[c].nunique() <= 50]
    return ColumnTransformer([
        ("num", make_pipeline(SimpleImputer(strategy="median"), StandardScaler()), numeric),
        ("cat", make_pipeline(SimpleImputer(strategy="most_frequent"),
                              OneHotEncoder(handle_unknown="ignore", sparse_output=False)), categorical),
    ])


def baseline(name: str):
    from imblearn.over_sampling import SMOTE
    from imblearn.pipeline import make_pipeline as imb_pipeline
    from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    def fit(X_train, y_train, X_test, seed, budget):
        prep = _preprocessor(X_train)
        model = {
            "logreg-balanced": lambda: make_pipeline(prep, LogisticRegression(class_weight="balanced", max_iter=2000)),
            "rf-balanced": lambda: make_pipeline(prep, RandomForestClassifier(
                n_estimators=300, class_weight="balanced", n_jobs=-1, random_state=seed)),
            "hgb": lambda: make_pipeline(prep, HistGradientBoostingClassifier(random_state=seed)),
            "smote-hgb": lambda: imb_pipeline(prep, SMOTE(random_state=seed),
                                              HistGradientBoostingClassifier(random_state=seed)),
        }[name]()
        model.fit(X_train, y_train)
        return model.predict_proba(X_test)[:, 1], model.predict(X_test)

    return fit


def flaml_system(X_train, y_train, X_test, seed, budget):
    from flaml import AutoML

    automl = AutoML()
    automl.fit(_with_dates(X_train), y_train, task="classification", metric="ap", time_budget=budget,
               seed=seed, verbose=0, log_file_name="")
    return automl.predict_proba(_with_dates(X_test))[:, 1], automl.predict(_with_dates(X_test))


def _with_dates(X: pd.DataFrame) -> pd.DataFrame:
    """FLAML featurises datetime columns itself when they have a datetime dtype."""
    X = X.copy()
    for col in X.select_dtypes("object"):
        if col.lower() in ("timestamp", "date", "datetime", "time"):
            X[col] = pd.to_datetime(X[col])
    return X


def poise_system(X_train, y_train, X_test, seed, budget):
    from poise.contracts import TaskSpec
    from poise.tools import data, planning
    from poise.tools.preprocess import FeatureColumns
    from poise.tools.search import search

    table = data.LabelledTable(X_train.reset_index(drop=True), y_train, 1, 0)
    profile = data.profile_table(table, source="benchmark", target="target", data_fingerprint="-")
    task = TaskSpec(data="benchmark", target="target", metric="average_precision", budget_seconds=budget, seed=seed)
    plan = planning.plan_with_data(task, profile, table.features, y_train)
    result = search(table.features, y_train, task, plan, FeatureColumns.from_plan(profile, plan))
    proba = result.pipeline.predict_proba(X_test)[:, 1]
    return proba, (proba >= result.threshold).astype(int)


SYSTEMS = {
    "poise": poise_system,
    "flaml": flaml_system,
    "logreg-balanced": baseline("logreg-balanced"),
    "rf-balanced": baseline("rf-balanced"),
    "hgb": baseline("hgb"),
    "smote-hgb": baseline("smote-hgb"),
}


# ------------------------------------------------------------------------------------------ running
def run(data_dir: Path, budget: float, splits: int, systems: list[str], datasets: list[str] | None) -> list[Score]:
    scores = []
    files = sorted(p for p in data_dir.iterdir() if p.name.endswith((".csv", ".csv.gz")))
    for path in files:
        name = path.name.split(".")[0]
        if datasets and name not in datasets:
            continue
        frame = pd.read_csv(path).drop(columns=DROP.get(name, []))
        X, y = frame.drop(columns=["target"]), frame["target"].to_numpy()
        for split in range(splits):
            X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, stratify=y, random_state=split)
            for system in systems:
                started = time.monotonic()
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    proba, pred = SYSTEMS[system](X_train, y_train, X_test, split, budget)
                score = Score(name, split, system, float(average_precision_score(y_test, proba)),
                              float(matthews_corrcoef(y_test, pred)), time.monotonic() - started)
                scores.append(score)
                print(f"{name:34s} split {split} {system:16s} AP {score.average_precision:.4f} "
                      f"MCC {score.mcc:.4f} {score.seconds:6.1f} s", file=sys.stderr, flush=True)
    return scores


def table(scores: list[Score], budget: float, command: str) -> str:
    df = pd.DataFrame([vars(s) for s in scores])
    means = df.groupby(["dataset", "system"])[["average_precision", "mcc"]].mean()
    systems = list(dict.fromkeys(df["system"]))
    lines = [
        "# Benchmark: holdout average precision and MCC",
        "",
        f"Command: `{command}`  ",
        f"Budget for poise and FLAML: {budget:.0f} s per fit. Three stratified 75/25 splits per dataset; "
        "every system sees the same splits. Mean over splits; rank 1 is best.",
        "",
    ]
    for metric, title in (("average_precision", "Average precision (PR-AUC)"), ("mcc", "MCC")):
        wide = means[metric].unstack("system")[systems]
        ranks = wide.rank(axis=1, ascending=False)
        lines += [f"## {title}", "", "| dataset | " + " | ".join(systems) + " |",
                  "|---|" + "---:|" * len(systems)]
        for dataset, row in wide.iterrows():
            best = row.max()
            cells = [f"**{v:.4f}**" if v == best else f"{v:.4f}" for v in row]
            lines.append(f"| {dataset} | " + " | ".join(cells) + " |")
        lines.append("| **mean rank** | " + " | ".join(f"{ranks[s].mean():.2f}" for s in systems) + " |")
        lines.append("")
    poise_time = df[df.system == "poise"].groupby("dataset")["seconds"].agg(["mean", "max"])
    if len(poise_time):
        lines += ["## poise wall time against its budget", "",
                  "Search, refit and derived-feature judging, per fit; the budget covers all of them.", "",
                  "| dataset | mean s | max s | budget s | max / budget |", "|---|---:|---:|---:|---:|"]
        for dataset, row in poise_time.iterrows():
            lines.append(f"| {dataset} | {row['mean']:.1f} | {row['max']:.1f} | {budget:.0f} | "
                         f"{row['max'] / budget:.3f} |")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=HERE / "data", help="folder of CSV files with a 'target' column")
    parser.add_argument("--budget", type=float, default=60.0, help="seconds per fit for poise and FLAML")
    parser.add_argument("--splits", type=int, default=3)
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=list(SYSTEMS))
    parser.add_argument("--datasets", nargs="+", default=None, help="file stems to run (default: all)")
    parser.add_argument("--out", type=Path, default=HERE / "results.md")
    parser.add_argument("--render", type=Path, default=None,
                        help="re-render the table from a results .csv of an earlier run (runs nothing)")
    parser.add_argument("--command", default=None, help="with --render: the command that made the .csv")
    args = parser.parse_args()
    if args.render is not None:
        scores = [Score(**row) for row in pd.read_csv(args.render).to_dict("records")]
        args.out.write_text(table(scores, args.budget, args.command or "python benchmarks/run.py"))
        print(args.out.read_text())
        return
    scores = run(args.data, args.budget, args.splits, args.systems, args.datasets)
    command = "python benchmarks/run.py " + " ".join(sys.argv[1:])
    args.out.write_text(table(scores, args.budget, command))
    pd.DataFrame([vars(s) for s in scores]).to_csv(args.out.with_suffix(".csv"), index=False)
    print(args.out.read_text())


if __name__ == "__main__":
    main()
