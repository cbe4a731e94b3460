"""How serious a drift report is: "none", "watch" or "act", with the reasons in words.

The thresholds are the user's (a ``MonitorPolicy``); this module only applies them, the same way
every time, so a retrain can always be traced to the numbers that caused it. Small windows are
never judged: twenty rows drift by chance, and a retrain on chance is worse than none.

Signals, strongest first:

* act: the share of drifted features reaches ``drift_share_act``, or the metric on enough labelled
  rows has dropped by ``decay_act`` or more;
* watch: the share reaches ``drift_share_watch``, the predicted probabilities drifted, the metric
  dropped by ``decay_watch``, or the minority share moved by ``prior_shift_ratio`` (a label-prior
  shift, which re-tuning the threshold or re-weighting the posteriors can answer without a retrain).
"""

from __future__ import annotations

from poise.contracts import DriftReport, FeatureDrift, MonitorPolicy, Severity

_RANK: dict[str, int] = {"none": 0, "watch": 1, "act": 2}
#: How many drifted features a reason names before it says "and N more".
NAMED_FEATURES = 5


def assess(report: DriftReport, policy: MonitorPolicy | None = None) -> DriftReport:
    """A copy of ``report`` with ``severity``, ``reasons``, ``prior_shift`` and ``policy`` set."""
    policy = policy or MonitorPolicy()
    small = _too_small(report, policy)
    if small:
        return _judged(report, policy, "none", [small], prior_shift=False)

    found: list[tuple[Severity, str]] = []
    found += _feature_signal(report, policy)
    found += _prediction_signal(report, policy)
    found += _decay_signal(report, policy)
    prior = _prior_signal(report, policy)
    found += prior

    severity: Severity = max((level for level, _ in found), key=_RANK.__getitem__, default="none")
    reasons = [reason for _, reason in sorted(found, key=lambda item: -_RANK[item[0]])]
    if severity == "none":
        reasons.insert(0, "No signal reached the policy's thresholds.")
    return _judged(report, policy, severity, reasons, prior_shift=any(level != "none" for level, _ in prior))


def label_prior_shift(reference_share: float | None, current_share: float | None, policy: MonitorPolicy) -> bool:
    """Whether the minority share moved by the policy's ratio or more, up or down."""
    if reference_share is None or current_share is None:
        return False
    low, high = sorted((reference_share, current_share))
    if low == 0.0:
        return high > 0.0
    return high / low >= policy.prior_shift_ratio * (1.0 - 1e-9)  # 0.06 / 0.04 is 1.4999999999999998


# -- signals: each returns [(severity, sentence)] ------------------------------------------------


def _too_small(report: DriftReport, policy: MonitorPolicy) -> str | None:
    for name, rows in (("current", report.current_rows), ("reference", report.reference_rows)):
        if rows < policy.min_rows:
            return (
                f"The {name} window has {rows} rows, fewer than the {policy.min_rows} the policy needs: "
                "too few to tell drift from chance, so nothing is judged until more rows arrive."
            )
    return None


def _feature_signal(report: DriftReport, policy: MonitorPolicy) -> list[tuple[Severity, str]]:
    drifted = sorted((f for f in report.features if f.drifted), key=_strength, reverse=True)
    total, share = len(report.features), report.drifted_share
    counted = f"{len(drifted)} of {total} features drifted ({share:.0%})"
    if share >= policy.drift_share_act and drifted:
        return [("act", f"{counted}, at or above the {policy.drift_share_act:.0%} that calls for action: "
                        f"{_name_features(drifted)}.")]
    if share >= policy.drift_share_watch and drifted:
        return [("watch", f"{counted}, at or above the {policy.drift_share_watch:.0%} worth watching: "
                          f"{_name_features(drifted)}.")]
    if drifted:
        return [("none", f"{counted}, below the {policy.drift_share_watch:.0%} worth watching: "
                         f"{_name_features(drifted)}.")]
    return [("none", f"None of the {total} features drifted.")]


def _prediction_signal(report: DriftReport, policy: MonitorPolicy) -> list[tuple[Severity, str]]:
    drift = report.prediction_drift
    if drift is None or not drift.drifted:
        return []
    level: Severity = "watch" if policy.watch_prediction_drift else "none"
    return [(level, f"The predicted probabilities drifted ({_describe(drift)}).")]


def _decay_signal(report: DriftReport, policy: MonitorPolicy) -> list[tuple[Severity, str]]:
    if report.decay is None or report.metric is None:
        return []
    figures = (f"{report.metric} is {report.current_score:.3f} on {report.labelled_rows} labelled rows against "
               f"{report.reference_score:.3f} on the holdout (decay {report.decay:+.3f})")
    if report.labelled_rows < policy.min_labelled_rows:
        return [("none", f"{figures}; fewer than the {policy.min_labelled_rows} labelled rows the policy needs, "
                         "so decay is not judged yet.")]
    if report.decay >= policy.decay_act:
        return [("act", f"{figures}, at or above the {policy.decay_act:.3f} that calls for action.")]
    if report.decay >= policy.decay_watch:
        return [("watch", f"{figures}, at or above the {policy.decay_watch:.3f} worth watching.")]
    return []


def _prior_signal(report: DriftReport, policy: MonitorPolicy) -> list[tuple[Severity, str]]:
    ref, cur = report.reference_minority_share, report.current_minority_share
    if not label_prior_shift(ref, cur, policy):
        return []
    if report.minority_share_source == "labels" and report.labelled_rows < policy.min_labelled_rows:
        return [("none", f"The share of minority labels moved from {ref:.2%} to {cur:.2%}, but on "
                         f"{report.labelled_rows} labelled rows, fewer than the {policy.min_labelled_rows} "
                         "the policy needs, so the prior is not judged yet.")]
    what = ("the share of minority labels" if report.minority_share_source == "labels"
            else "the mean predicted minority probability")
    ratio = report.minority_share_ratio
    times = f"×{ratio:.2f}" if ratio not in (None, float("inf")) else "from none"
    return [("watch", f"Label-prior shift: {what} moved from {ref:.2%} to {cur:.2%} ({times}, "
                      f"past the policy's ×{policy.prior_shift_ratio:g}); re-tuning the threshold or re-weighting "
                      "the probabilities to the new prior may recover performance without a retrain.")]


# -- helpers -------------------------------------------------------------------------------------


def _judged(
    report: DriftReport, policy: MonitorPolicy, severity: Severity, reasons: list[str], *, prior_shift: bool
) -> DriftReport:
    update = {"severity": severity, "reasons": reasons, "prior_shift": prior_shift, "policy": policy.model_dump()}
    return DriftReport.model_validate(report.model_dump() | update)


def _is_p_value(drift: FeatureDrift) -> bool:
    """A p-value test flags drift at or below its threshold, a distance at or above it; Evidently's
    verdict and the score's side of the threshold tell which one this is."""
    return drift.drifted == (drift.score <= drift.threshold) and drift.score != drift.threshold


def _strength(drift: FeatureDrift) -> float:
    """How far past its threshold a score is, comparable across methods (larger = stronger drift)."""
    tiny = 1e-300
    if _is_p_value(drift):
        return drift.threshold / max(drift.score, tiny)
    return drift.score / max(drift.threshold, tiny)


def _describe(drift: FeatureDrift) -> str:
    side = "≤" if _is_p_value(drift) else "≥"
    return f"{drift.method} {drift.score:.3g} {side} {drift.threshold:.3g}"


def _name_features(drifted: list[FeatureDrift]) -> str:
    named = ", ".join(f"{f.column} ({_describe(f)})" for f in drifted[:NAMED_FEATURES])
    more = len(drifted) - NAMED_FEATURES
    return named if more <= 0 else f"{named} and {more} more"
