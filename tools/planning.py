"""A data-driven plan from a profile, and the deployment gates a candidate must pass.

``default_plan`` is the plan poise makes without any language model: every decision
comes from the profile and carries a reason a person can check. The agents start from
it (and their guardrails fall back to it).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
import pandas as pd

from poise.contracts import DataProfile, DataStep, GateReport, Gates, Plan, SearchSpace, TaskSpec
from poise.tools.models import MODELS
from poise.tools.strategies import STRATEGIES

#: Judging derived features may take this share of the time left for search and refit: it takes from
#: the search, and a boosted model finds most sums and ratios by itself.
FEATURE_SHARE = 0.15

def data_steps(profile: DataProfile) -> list[DataStep]:
    """Drop identifiers, leaks and constants; expand date/time columns. Each with its reason."""
    steps = []
    for col in profile.columns:
        if col.is_leak:
            steps.append(DataStep(action="drop", column=col.name, reason=f"likely label leak: {col.leak_reason}"))
        elif col.is_identifier:
            steps.append(DataStep(action="drop", column=col.name, reason=f"identifier: {col.identifier_reason}"))
        elif col.is_constant:
            steps.append(DataStep(action="drop", column=col.name, reason="constant: one value in every row"))
        elif col.kind == "datetime":
            steps.append(
                DataStep(action="datetime_features", column=col.name,
                         reason="date/time: expanded into hour, day of week, day of month and month")
            )
    return steps


def cv_folds(profile: DataProfile) -> int:
    """Five folds for small tables, three from 5,000 rows (more trials in the budget); fewer
    when the minority is small, since every fold needs minority rows to score.

    Measured: up to five folds down to 3 positives per fold (fold models see more of the few
    positives) was no better on 18 small development tables and 6 rare generated ones × 3 seeds:
    +0.003 average precision on average, better on 7 tables and worse on 11, where two runs of the
    unchanged search differ by as much; the extra fits leave fewer trials."""
    wanted = 5 if profile.n_rows < 5000 else 3
    return max(2, min(wanted, profile.n_minority // 10))


#: How often the K-fold split is repeated below a count of minority rows: (below, repeats), first match.
REPEATS: tuple[tuple[int, int], ...] = ((60, 3), (200, 2))
#: Above this many rows one split's folds are large enough, and each fit too slow to repeat.
REPEAT_MAX_ROWS = 20_000


def cv_repeats(n_rows: int, n_minority: int) -> int:
    """How often the K-fold split is repeated (with fresh shuffles): on a few dozen positives one split's
    score is mostly luck of the draw, so small tables, which are cheap to fit, average three."""
    if n_rows > REPEAT_MAX_ROWS:
        return 1
    return next((repeats for below, repeats in REPEATS if n_minority < below), 1)


def default_gates(task: TaskSpec, profile: DataProfile) -> Gates:
    """Better than guessing on average precision, and every floor the task states, whatever its metric:
    precision >= ``min_precision`` and recall >= ``min_recall`` at the deployed threshold."""
    from poise.tools.metrics import floors_of

    floors: dict[str, float] = {"average_precision": round(min(0.99, 2 * profile.minority_share), 4)}
    floors.update(floors_of(task.metric_params()))
    return Gates(min_holdout=floors, must_beat_champion=True)


def default_plan(task: TaskSpec, profile: DataProfile) -> Plan:
    """Search every strategy and model that suits this data, within the task's budget."""
    folds = cv_folds(profile)
    rationale = [
        f"minority class is {profile.minority_share:.1%} of {profile.n_rows} training rows "
        f"(imbalance {profile.imbalance_ratio:.1f}:1); '{task.metric}' is the metric to maximise",
        f"{folds}-fold stratified cross-validation on the training part; thresholds tuned on out-of-fold predictions",
        "'none' (tuned threshold only) and 'class_weight' always stand beside the samplers: "
        "oversampling helps only some models, and not monotonically",
        "strong, cheap configurations first (LightGBM and histogram boosting with a tuned threshold, a "
        "class-weighted logistic regression); a sampler, balanced ensemble or blend wins only by more than "
        "twice the standard error of its fold-by-fold gain; the winner's fold models, averaged, are what the "
        "holdout judges",
        "once judged, the winner's recipe is trained again, fold by fold, on every labelled row, holdout "
        "included, and that model is registered: a rare class is too scarce to leave a fifth of it unused (the "
        "holdout scores stay those of the fold models, which never saw it)",
    ]
    repeats = cv_repeats(profile.n_rows, profile.n_minority)
    if repeats > 1:
        rationale.append(f"{profile.n_minority} minority rows: the folds are drawn {repeats} times and the scores "
                         "averaged, so one lucky split does not pick the winner")
    fit_minority = profile.n_minority - -(-profile.n_minority // folds)  # rows a training fold keeps
    strategies = []
    for name, spec in STRATEGIES.items():
        if spec.kind == "sampler" and fit_minority < max(spec.min_minority, 6) and name not in ("random_over",):
            rationale.append(f"skip {name}: {fit_minority} minority rows per fold are too few for its neighbours")
            continue
        if spec.needs_categorical and not any(c.kind in ("categorical", "boolean") for c in profile.columns):
            rationale.append(f"skip {name}: no categorical columns")
            continue
        strategies.append(name)
    rationale += _why_searched(strategies, profile, fit_minority)
    rationale += _how_encoded(profile)
    steps = data_steps(profile)  # each carries its own reason
    return Plan(
        data_steps=steps,
        search=SearchSpace(strategies=strategies, models=list(MODELS)),
        cv_folds=folds,
        budget_seconds=task.budget_seconds,
        gates=default_gates(task, profile),
        rationale=rationale,
    )


def _how_encoded(profile: DataProfile) -> list[str]:
    """What the preprocessing inside every candidate pipeline does with these columns, and why."""
    usable = [c for c in profile.columns if not (c.is_identifier or c.is_leak or c.is_constant)]
    numeric = [c for c in usable if c.kind == "numeric"]
    categorical = [c for c in usable if c.kind in ("categorical", "boolean", "text")]
    with_missing = [c.name for c in usable if c.n_missing]
    lines = []
    if numeric:
        lines.append(f"{len(numeric)} numeric column(s): as they are for boosted trees (which route missing "
                     "values themselves); for the other models median imputation with missing-value indicators, "
                     "then standardised (k-NN samplers, linear models and the MLP need comparable scales)")
    if categorical:
        lines.append(f"{len(categorical)} categorical column(s): boosted trees split on whole categories (ordinal "
                     "codes), the other models see them one-hot encoded; categories under 5 rows grouped, missing "
                     "kept as its own category, unseen categories tolerated at prediction time")
    if with_missing:
        lines.append(f"missing values in {', '.join(with_missing[:8])}: imputed inside each training fold, never "
                     "from validation or holdout rows")
    return lines


def _why_searched(strategies: list[str], profile: DataProfile, fit_minority: int) -> list[str]:
    """One line of reason per group of strategies the plan keeps."""
    kinds = {name: STRATEGIES[name].kind for name in strategies}
    samplers = [n for n, k in kinds.items() if k == "sampler"]
    lines = []
    if samplers:
        lines.append(f"samplers ({', '.join(samplers)}): each training fold keeps {fit_minority} minority rows, "
                     "enough for k-NN oversampling; resampling runs inside the CV folds only")
    if "smote_nc" in strategies:
        lines.append("smote_nc: the table mixes categorical and numeric columns; it interpolates numbers and "
                     "votes on categories instead of averaging one-hot codes")
    if "qc_smote" in strategies:
        overlap = max((c.separation or 0.5) for c in profile.columns)
        lines.append(f"qc_smote: no single column separates the classes well (best ROC-AUC {overlap:.2f}), so they "
                     "overlap; QC-SMOTE keeps synthetic points out of majority regions" if overlap < 0.9 else
                     "qc_smote: quality-controlled SMOTE, kept as a candidate beside plain SMOTE")
    ensembles = [n for n, k in kinds.items() if k == "ensemble"]
    if ensembles:
        lines.append(f"balanced ensembles ({', '.join(ensembles)}): each member sees a balanced sample; strong "
                     "when the minority is small")
    if "focal_loss" in strategies:
        lines.append("focal_loss: the MLP can down-weight the many easy majority rows")
    return lines


def with_derived_features(plan: Plan, profile: DataProfile) -> Plan:
    """The plan with derived features proposed from the column names (not judged yet)."""
    from poise.tools.features import propose_derived

    proposals = [p for p in propose_derived(profile) if p.column not in {s.column for s in plan.data_steps}]
    return plan.model_copy(update={"data_steps": [*plan.data_steps, *proposals]})


def judge_derived(
    plan: Plan, profile: DataProfile, X: pd.DataFrame, y: np.ndarray, seed: int = 0, max_seconds: float | None = None
) -> Plan:
    """Keep the plan's derived features that lift CV average precision on the training part; say why for the rest."""
    from poise.tools import features

    proposals = plan.derived
    if not proposals:
        return plan
    dropped = set(plan.dropped_columns)
    base = [c.name for c in profile.columns if c.kind == "numeric" and c.name not in dropped]
    judged: list[str] = []
    gains = {s.column: gain for s, gain in features.keep_helpful(X, y, proposals, base, seed=seed,
                                                                 max_seconds=max_seconds, judged=judged)}
    steps = [s if s.action != "derive" else s.model_copy(
                 update={"reason": f"{s.reason} (+{gains[s.column]:.3f} average precision in CV)"})
             for s in plan.data_steps if s.action != "derive" or s.column in gains]
    rationale = list(plan.rationale)
    rejected = [p.column for p in proposals if p.column in judged and p.column not in gains]
    unjudged = [p.column for p in proposals if p.column not in judged]
    if rejected:
        rationale.append(f"derived features not kept (no clear gain in CV): {', '.join(rejected)}")
    if unjudged:
        rationale.append(f"derived features not judged in the time allowed, not kept: {', '.join(unjudged)}")
    return plan.model_copy(update={"data_steps": steps, "rationale": rationale})


def judge_derived_within_budget(plan: Plan, profile: DataProfile, X: pd.DataFrame, y: np.ndarray, seed: int = 0,
                                share: float = FEATURE_SHARE) -> Plan:
    """Judge the plan's derived features (``judge_derived``) within ``share`` of its budget, and take the
    time spent out of the search's budget, so the whole run still fits in the time the user gave.

    ``X`` and ``y`` are the training part only (``poise.pipelines.honest_split``): never the holdout.
    """
    import time

    if not plan.derived:
        return plan
    started = time.monotonic()
    judged = judge_derived(plan, profile, X, y, seed, max_seconds=share * plan.budget_seconds)
    spent = time.monotonic() - started
    remaining = max(plan.budget_seconds - spent, (1 - share) * plan.budget_seconds)
    return judged.model_copy(update={
        "budget_seconds": round(remaining, 1),
        "rationale": [*judged.rationale, f"{spent:.0f} s of the {plan.budget_seconds:.0f} s budget went to judging "
                                         f"derived features; the search has {remaining:.0f} s"],
    })


def plan_with_data(task: TaskSpec, profile: DataProfile, X: pd.DataFrame, y: np.ndarray,
                   feature_share: float = FEATURE_SHARE) -> Plan:
    """The data-driven plan plus the derived features that help, judged within a share of the task's budget."""
    return judge_derived_within_budget(with_derived_features(default_plan(task, profile), profile), profile, X, y,
                                       task.seed, feature_share)


#: Fewer positive rows than this in the holdout and no floor can be judged: one row moves recall by
#: more than 10 points, and a 95 % interval of precision or recall spans about half the range. Such a
#: candidate is registered as @challenger and never promoted automatically.
MIN_HOLDOUT_POSITIVES = 10


def gate_floors(gates: Gates, params: Mapping[str, float] | None = None) -> dict[str, float]:
    """The plan's floors, with every floor the task states (``min_precision``, ``min_recall``) added:
    an edited plan cannot drop a promise the person made (the stricter of the two stands)."""
    from poise.tools.metrics import floors_of

    floors = dict(gates.min_holdout)
    for quantity, floor in floors_of(params).items():
        floors[quantity] = max(floor, floors.get(quantity, floor))
    return floors


def check_floors(
    floors: Mapping[str, float],
    values: Mapping[str, float],
    intervals: Mapping[str, tuple[float, float]] | None = None,
    out_of_fold: Mapping[str, float] | None = None,
    where: str = "",
) -> tuple[bool, list[str]]:
    """Whether every floor holds on ``values`` (holdout scores at the deployed threshold), and one reason each.

    A reason shows the value's 95 % interval where ``intervals`` has one, and says plainly when the
    floor was not met even on the out-of-fold rows the threshold was chosen on (the data may not
    support it).
    """
    passed, reasons = True, []
    for name, floor in floors.items():
        value = values.get(name, float("nan"))
        ok = bool(value >= floor)
        passed &= ok
        ci = f" (95% CI {intervals[name][0]:.4f}–{intervals[name][1]:.4f})" if intervals and name in intervals else ""
        reason = f"{where}{name} {value:.4f}{ci} {'≥' if ok else '<'} floor {floor:.4f}"
        if out_of_fold is not None and out_of_fold.get(name, floor) < floor:
            reason += (f"; not met even on the out-of-fold rows the threshold was chosen on "
                       f"({out_of_fold[name]:.4f}): the data may not support this floor")
        reasons.append(reason)
    return passed, reasons


def check_gates(
    gates: Gates,
    metric: str,
    candidate: dict[str, float],
    champion: dict[str, float] | None = None,
    champion_version: str | None = None,
    *,
    params: Mapping[str, float] | None = None,
    intervals: Mapping[str, tuple[float, float]] | None = None,
    out_of_fold: Mapping[str, float] | None = None,
    holdout_positives: int | None = None,
) -> GateReport:
    """Candidate (and champion) holdout metrics, at each model's deployed threshold, against the gates.

    Every floor of the plan and of the task (``params``) must hold; with fewer than
    ``MIN_HOLDOUT_POSITIVES`` positive rows in the holdout the gate does not pass, whatever the
    scores, and says why in ``warnings`` (and first among the reasons).
    """
    warnings = []
    if holdout_positives is not None and holdout_positives < MIN_HOLDOUT_POSITIVES:
        warnings.append(
            f"too little evidence: the holdout holds {holdout_positives} positive row(s), fewer than "
            f"{MIN_HOLDOUT_POSITIVES}, so no floor can be judged; kept as @challenger, not promoted "
            "(add rows of the rare class, or promote it by hand with poise promote if you trust it)")
    passed, reasons = check_floors(gate_floors(gates, params), candidate, intervals, out_of_fold)
    passed &= not warnings
    if gates.must_beat_champion and champion is not None:
        ok = candidate[metric] >= champion[metric]
        passed &= ok
        reasons.append(
            f"{metric} {candidate[metric]:.4f} {'≥' if ok else '<'} champion v{champion_version} "
            f"{champion[metric]:.4f} on the same holdout"
        )
    elif gates.must_beat_champion:
        reasons.append("no champion yet")
    return GateReport(
        passed=bool(passed),
        reasons=[*warnings, *reasons],
        metric=metric,
        candidate_score=candidate[metric],
        champion_version=champion_version,
        champion_score=None if champion is None else champion[metric],
        intervals=dict(intervals or {}),
        warnings=warnings,
    )
