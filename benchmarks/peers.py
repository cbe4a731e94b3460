"""The peers poise is compared with, each run as a user would: one process to fit, one to predict.

    python benchmarks/peers.py flaml fit --train train.csv --model DIR --budget 60 --seed 0 --threads 1
    python benchmarks/peers.py flaml predict --test test.csv --model DIR --out predictions.csv

Systems: ``flaml`` (FLAML 2.7, metric "ap"), ``autogluon`` (AutoGluon 1.6, eval_metric
"average_precision"; run it with benchmarks/.venv-autogluon/bin/python, see setup_autogluon.sh) and
``hgb`` (scikit-learn's HistGradientBoostingClassifier with its defaults; no budget).
The training table's label column is ``target`` (1 = the rare class). ``predict`` writes one row per
test row: ``proba`` (of class 1) and ``pred`` (the system's own decision, 0/1).

Only pandas and scikit-learn are imported at the top: this file runs in AutoGluon's venv too.
"""

from __future__ import annotations

import argparse
import json
import pickle
import sys
import time
import warnings
from pathlib import Path

import pandas as pd

LABEL = "target"


# ------------------------------------------------------------------------------------------ FLAML
def _with_dates(X: pd.DataFrame) -> pd.DataFrame:
    """FLAML featurises datetime columns itself when they have a datetime dtype."""
    X = X.copy()
    for col in X.select_dtypes(["object", "string"]):
        if col.lower() in ("timestamp", "date", "datetime", "time"):
            X[col] = pd.to_datetime(X[col])
    return X


def flaml_fit(train: pd.DataFrame, model: Path, budget: float, seed: int, threads: int) -> dict:
    import flaml
    from flaml import AutoML

    automl = AutoML()
    automl.fit(_with_dates(train.drop(columns=[LABEL])), train[LABEL].to_numpy(), task="classification",
               metric="ap", time_budget=budget, seed=seed, n_jobs=threads, verbose=0, log_file_name="")
    (model / "flaml.pkl").write_bytes(pickle.dumps(automl))
    return {"version": flaml.__version__, "best": automl.best_estimator}


def flaml_predict(test: pd.DataFrame, model: Path) -> tuple:
    automl = pickle.loads((model / "flaml.pkl").read_bytes())
    X = _with_dates(test)
    return automl.predict_proba(X)[:, 1], automl.predict(X)


# ------------------------------------------------------------------------------------------ AutoGluon
#: AutoGluon's default preset. Its docs call "good_quality" significantly more accurate but ~20x slower
#: to train (bagging, stacking, refit), so at budgets of a minute or two the default is its fair choice;
#: --preset changes it.
AUTOGLUON_PRESET = "medium_quality"


def autogluon_fit(train: pd.DataFrame, model: Path, budget: float, seed: int, threads: int,
                  preset: str = AUTOGLUON_PRESET) -> dict:
    import autogluon.tabular
    from autogluon.tabular import TabularPredictor

    # the learner's random_state seeds AutoGluon's holdout split (its models keep their own fixed seeds)
    predictor = TabularPredictor(label=LABEL, eval_metric="average_precision", path=str(model / "ag"),
                                 verbosity=0, learner_kwargs={"random_state": seed})
    predictor.fit(train, time_limit=budget, presets=preset, num_cpus=threads, num_gpus=0)
    return {"version": autogluon.tabular.__version__, "preset": preset,
            "best": predictor.model_best}


def autogluon_predict(test: pd.DataFrame, model: Path) -> tuple:
    from autogluon.tabular import TabularPredictor

    predictor = TabularPredictor.load(str(model / "ag"), require_py_version_match=False)
    return predictor.predict_proba(test)[1].to_numpy(), predictor.predict(test).to_numpy()


# ------------------------------------------------------------------------------------------ default HGB
def hgb_fit(train: pd.DataFrame, model: Path, budget: float, seed: int, threads: int) -> dict:
    """Defaults, with text columns ordinal-encoded and handed to HGB as categorical where they fit its bins."""
    import numpy as np
    import sklearn
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OrdinalEncoder

    X = train.drop(columns=[LABEL])
    text = [c for c in X.columns if not pd.api.types.is_numeric_dtype(X[c])]
    encode = ColumnTransformer(
        [("text", OrdinalEncoder(handle_unknown="use_encoded_value", unknown_value=np.nan,
                                 encoded_missing_value=np.nan), text)],
        remainder="passthrough", verbose_feature_names_out=False).set_output(transform="pandas")
    # HGB's native categories must fit in its 255 bins; longer ones stay ordinal codes
    categorical = [c for c in text if X[c].nunique() < 255]
    pipeline = make_pipeline(encode, HistGradientBoostingClassifier(
        random_state=seed, categorical_features=categorical or None))
    pipeline.fit(X, train[LABEL].to_numpy())
    (model / "hgb.pkl").write_bytes(pickle.dumps(pipeline))
    return {"version": sklearn.__version__, "categorical": len(categorical)}


def hgb_predict(test: pd.DataFrame, model: Path) -> tuple:
    pipeline = pickle.loads((model / "hgb.pkl").read_bytes())
    return pipeline.predict_proba(test)[:, 1], pipeline.predict(test)


SYSTEMS = {"flaml": (flaml_fit, flaml_predict), "autogluon": (autogluon_fit, autogluon_predict),
           "hgb": (hgb_fit, hgb_predict)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("system", choices=list(SYSTEMS))
    parser.add_argument("step", choices=["fit", "predict"])
    parser.add_argument("--model", type=Path, required=True, help="folder the fitted model is kept in")
    parser.add_argument("--train", type=Path, help="fit: the training CSV, label column 'target'")
    parser.add_argument("--budget", type=float, default=60.0, help="fit: seconds (ignored by hgb)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="fit: cores the system may use")
    parser.add_argument("--preset", default=AUTOGLUON_PRESET, help="fit: AutoGluon's preset")
    parser.add_argument("--test", type=Path, help="predict: CSV of feature columns")
    parser.add_argument("--out", type=Path, help="predict: where to write proba,pred")
    args = parser.parse_args()
    fit, predict = SYSTEMS[args.system]
    warnings.simplefilter("ignore")
    if args.step == "fit":
        if args.train is None:
            parser.error("fit needs --train")
        args.model.mkdir(parents=True, exist_ok=True)
        train = pd.read_csv(args.train)
        started = time.monotonic()
        extra = {"preset": args.preset} if args.system == "autogluon" else {}
        facts = fit(train, args.model, args.budget, args.seed, args.threads, **extra)
        facts["seconds"] = time.monotonic() - started  # the fit call alone, without start-up and imports
        (args.model / "fit.json").write_text(json.dumps(facts, default=str))
    else:
        if args.test is None or args.out is None:
            parser.error("predict needs --test and --out")
        proba, pred = predict(pd.read_csv(args.test), args.model)
        pd.DataFrame({"proba": proba, "pred": pred}).to_csv(args.out, index=False)
    print(json.dumps({"system": args.system, "step": args.step, "ok": True}), file=sys.stderr)


if __name__ == "__main__":
    main()
