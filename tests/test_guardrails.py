"""Guardrails between every Brain and every action."""

from __future__ import annotations

import pytest

from poise.agents.guardrails import check_plan, plan_from_draft, task_from_draft
from poise.contracts import ColumnDrop, DerivedFeature, PlanDraft, SearchSpace, TaskDraft, TaskSpec
from poise.errors import PoiseError
from poise.settings import get_settings
from poise.tools import data, planning
from tests.conftest import AI4I

COLUMNS = ["udi", "product_id", "type", "air_temperature_k", "process_temperature_k", "rotational_speed_rpm",
           "torque_nm", "tool_wear_min", "target"]
TEXT = "catch machine failures, precision at least 0.5, two minutes"
RULES = TaskDraft(target="target", min_precision=0.5, budget_seconds=120.0)


def task_from(draft: TaskDraft, rules: TaskDraft = RULES):
    task, repairs, _ = task_from_draft(draft, rules=rules, columns=COLUMNS, data=str(AI4I), settings=get_settings(),
                                       text=TEXT)
    return task, repairs


def test_the_text_decides_what_it_states():
    llm = TaskDraft(target="target", metric="recall_at_precision", min_precision=0.9, budget_seconds=99999)
    task, repairs = task_from(llm)
    assert task.min_precision == 0.5 and task.budget_seconds == 120.0
    assert any("budget_seconds: 99999" in r for r in repairs)
    assert any("min_precision" in r for r in repairs)


def test_a_hallucinated_target_falls_back_to_the_rules_or_fails_clearly():
    task, repairs = task_from(TaskDraft(target="failure_flag", min_precision=0.5))
    assert task.target == "target" and any("failure_flag" in r for r in repairs)
    with pytest.raises(PoiseError, match="'failure_flag' was proposed as the column to predict"):
        task_from(TaskDraft(target="failure_flag"), rules=TaskDraft())
    with pytest.raises(PoiseError, match="names none"):
        task_from(TaskDraft(), rules=TaskDraft())


def test_target_spelling_follows_the_header_and_metric_needs_its_parameter():
    task, repairs = task_from(TaskDraft(target="TARGET", metric="precision_at_recall"), rules=TaskDraft())
    assert task.target == "target" and task.metric == "average_precision"
    assert any("without a recall floor" in r for r in repairs)


def test_budget_is_capped_by_settings(monkeypatch):
    settings = get_settings().model_copy(update={"max_budget_seconds": 60.0})
    task, repairs, _ = task_from_draft(TaskDraft(target="target", budget_seconds=600), rules=TaskDraft(),
                                    columns=COLUMNS, data=str(AI4I), settings=settings, text="x")
    assert task.budget_seconds == 60.0 and any("cap" in r for r in repairs)


@pytest.fixture(scope="module")
def ai4i():
    frame = data.load_table(AI4I)
    table = data.prepare_target(frame, "target")
    profile = data.profile_table(table, source=str(AI4I), target="target", data_fingerprint="-")
    task = TaskSpec(data=str(AI4I), target="target")
    return task, profile, planning.default_plan(task, profile)


def test_plan_drafts_cannot_reach_outside_the_data_or_the_registries(ai4i):
    task, profile, baseline = ai4i
    draft = PlanDraft(
        drop=[ColumnDrop(column="customer_age", reason="made up"), ColumnDrop(column="type", reason="noise")],
        derive=[DerivedFeature(op="product", a="torque_nm", b="rotational_speed_rpm", reason="power"),
                DerivedFeature(op="ratio", a="target", b="torque_nm", reason="uses the label"),
                DerivedFeature(op="difference", a="type", b="torque_nm", reason="categorical input")],
        strategies=["smote", "gan_oversampler"], models=["hist_gradient_boosting", "xgboost"],
    )
    plan, repairs = plan_from_draft(draft, task=task, profile=profile, baseline=baseline, settings=get_settings())
    assert plan.dropped_columns == ["type", "udi", "product_id"]  # identifiers added back
    assert [s.inputs for s in plan.derived] == [["torque_nm", "rotational_speed_rpm"]]
    assert plan.search.strategies == ["smote", "none", "class_weight"]
    assert plan.search.models == ["hist_gradient_boosting"]
    text = "\n".join(repairs)
    for expected in ("customer_age", "the target is never a feature", "inputs must be numeric", "gan_oversampler",
                     "xgboost", "drop 'udi' added", "'none' added"):
        assert expected in text


def test_an_edited_plan_is_checked_like_any_other(ai4i):
    task, profile, baseline = ai4i
    edited = baseline.model_copy(update={"search": SearchSpace(strategies=["qc_smote"], models=["mlp"]),
                                         "data_steps": [], "budget_seconds": 10 * 24 * 3600.0 / 2})
    plan, repairs = check_plan(edited, task=task, profile=profile, baseline=baseline, settings=get_settings())
    assert {"udi", "product_id"} <= set(plan.dropped_columns)
    assert plan.search.strategies == ["qc_smote", "none", "class_weight"]
    assert plan.budget_seconds == get_settings().max_budget_seconds
    assert len(repairs) == 5


def test_an_edited_plan_naming_nothing_known_is_refused_with_the_known_names(ai4i):
    task, profile, baseline = ai4i
    for search, unknown, known in ((SearchSpace(strategies=["magic"], models=["mlp"]), "'magic'", "smote"),
                                   (SearchSpace(strategies=["smote"], models=["gpt", "svm9"]), "'gpt', 'svm9'",
                                    "hist_gradient_boosting")):
        edited = baseline.model_copy(update={"search": search})
        with pytest.raises(PoiseError) as caught:
            check_plan(edited, task=task, profile=profile, baseline=baseline, settings=get_settings(), edited=True)
        assert unknown in caught.value.problem and known in caught.value.fix
    partly = baseline.model_copy(update={"search": SearchSpace(strategies=["smote", "magic"], models=["mlp"])})
    plan, repairs = check_plan(partly, task=task, profile=profile, baseline=baseline, settings=get_settings(),
                               edited=True)
    assert "magic" not in plan.search.strategies and any("'magic' removed" in r for r in repairs)


def read(text: str, columns: list[str], llm: TaskDraft | None = None):
    from poise.agents.understand import read_task

    reading = read_task(text, columns, "t.csv")
    return task_from_draft(llm or reading.draft, rules=reading, columns=columns, data="t.csv",
                           settings=get_settings(), text=text)


def test_a_target_the_text_names_must_exist_and_close_names_are_offered():
    columns = ["customer_id", "churn_date", "tenure", "target"]
    with pytest.raises(PoiseError) as caught:
        read("predict churn in base2k.csv, 10 seconds", columns)
    assert "'churn'" in caught.value.problem and "'churn_date'" in caught.value.fix
    with pytest.raises(PoiseError, match="'churned'"):  # the LLM cannot swap the named column for another
        read("the label is `churned`", columns, llm=TaskDraft(target="target"))


def test_a_target_poise_picks_is_said_where_the_person_decides():
    task, repairs, _ = read("catch the rare cases, 10 seconds", COLUMNS)
    assert task.target == "target"
    assert any("names no column" in r and "'target'" in r for r in repairs)
    task, repairs, _ = read("predict target, 10 seconds", COLUMNS)
    assert not any("names no column" in r for r in repairs)


@pytest.mark.parametrize("text", ["precision at least 150%", "keep recall above 0", "within 99999 hours",
                                  "Präzision mindestens 120 %"])
def test_numbers_out_of_range_are_errors(text):
    with pytest.raises(PoiseError, match="cannot do"):
        read(text, COLUMNS)


def test_numbers_not_understood_are_reported_unless_the_mind_used_them():
    text = "predict target, precision at least 50%, 5-fold CV, top 10 percent, 2 minutes"
    task, _, unread = read(text, COLUMNS)
    assert (task.min_precision, task.budget_seconds) == (0.5, 120)
    assert unread == ["5-fold", "10 percent"]
    _, _, unread = read("predict target, Präzision ≥ 50 %, schnell: 3 Min.", COLUMNS)
    assert unread == []  # German keywords are read
    # an LLM that understood "ten per cent" as a floor of 0.1: the words are used, no longer reported
    _, _, unread = read(text, COLUMNS, llm=TaskDraft(target="target", min_recall=0.1))
    assert unread == ["5-fold"]


def test_notices_render_the_repairs_and_the_words_not_understood_of_the_decision_steps():
    from poise.agents.notices import notice_lines, notices
    from poise.contracts import AuditEvent

    events = [
        AuditEvent(run_id="r", step="understand", mind="rules", summary="s", repairs=["target: a → b"],
                   not_understood=["5-fold"]),
        AuditEvent(run_id="r", step="train", mind="search", summary="s", repairs=["not a decision step"]),
        AuditEvent(run_id="r", step="approve", mind="person", summary="s", repairs=["strategy 'x' removed"]),
    ]
    assert [(n.step, n.kind) for n in notices(events)] == [
        ("understand", "repaired"), ("understand", "not understood"), ("approve", "repaired")]
    lines = notice_lines(events)
    assert lines[0] == "understand: repaired: target: a → b"
    assert lines[1].startswith("understand: not understood: '5-fold'")
