"""Outcomes and exit: a job start (with its MHSDS codes) and sustainment points recorded
through their forms, on real records in the encrypted store."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import Qt

from keyworker_app.records import Outcome, OutcomeKind
from record_support import KEYWORKER, Glue, record_store, synthetic_participant, type_answers  # noqa: F401


def _glue(qtbot, store) -> Glue:
    glue = Glue(qtbot, store, store.save(synthetic_participant()).id)
    glue.view.show_section("outcomes")
    return glue


def _record_job_start(qtbot, glue: Glue) -> Outcome:
    view = glue.view
    qtbot.mouseClick(view.job_start_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    type_answers(qtbot, form, {"started_on": "01/11/2024", "employer": "Example Bakery Ltd",
                               "job_title": "Baker", "weekly_hours": "22.5"})
    form.set_answer("mhsds_employment_status", "01")
    form.set_answer("mhsds_weekly_hours", "02")
    with qtbot.waitSignal(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    (outcome,) = glue.stored("outcome")
    return outcome


def test_the_outcome_forms_have_buttons_not_assessment_buttons(qtbot, record_store) -> None:
    view = _glue(qtbot, record_store).view
    assert view.job_start_button.isVisible() and view.sustainment_button.isVisible()
    assert view.job_start_button.accessibleName() == "Record a job start"
    assert view.sustainment_button.accessibleName() == "Record a sustainment point"
    titles = {b.text() for b in view._assessment_button_widgets}
    assert not titles & {"Job start…", "Sustainment point…"}


def test_record_a_job_start_with_its_mhsds_codes(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    qtbot.mouseClick(view.job_start_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    assert form.title.text() == "Job start"
    assert not form.is_question_visible("mhsds_weekly_hours")
    qtbot.keyClicks(form.editor("started_on"), "01/11/2024")
    qtbot.keyClicks(form.editor("weekly_hours"), "90")
    form.set_answer("mhsds_employment_status", "01")
    assert form.is_question_visible("mhsds_weekly_hours")

    with qtbot.assertNotEmitted(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    assert form.error_text("employer") == "This question needs an answer."
    assert form.error_text("weekly_hours")  # more than 80 hours a week
    assert form.error_text("mhsds_weekly_hours") == "This question needs an answer."
    assert glue.stored("outcome") == []

    qtbot.keyClicks(form.editor("employer"), "Example Bakery Ltd")
    qtbot.keyClicks(form.editor("job_title"), "Baker")
    form.editor("weekly_hours").clear()
    qtbot.keyClicks(form.editor("weekly_hours"), "22.5")
    form.set_answer("mhsds_weekly_hours", "02")
    with qtbot.waitSignal(view.sig_save_form) as saved:
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)

    (emitted,) = saved.args[0]  # every answer maps to the outcome
    assert isinstance(emitted, Outcome)
    (outcome,) = glue.stored("outcome")
    assert outcome.id == emitted.id and outcome.participant_id == glue.participant_id
    assert outcome.kind is OutcomeKind.JOB_START
    assert outcome.outcome_on == date(2024, 11, 1)
    assert (outcome.employer, outcome.job_title, outcome.weekly_hours) == ("Example Bakery Ltd", "Baker", 22.5)
    assert (outcome.mhsds_employment_status, outcome.mhsds_weekly_hours) == ("01", "02")
    assert glue.stored("assessment") == []
    assert view.current_section() == "outcomes"
    table = view.outcomes_table
    assert [table.cell(0, c) for c in range(5)] == ["Job start", "01/11/2024", "Example Bakery Ltd", "Baker", "22.5"]


def test_record_a_sustainment_point(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    job = _record_job_start(qtbot, glue)

    qtbot.mouseClick(view.sustainment_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    assert form.title.text() == "Sustainment point"
    assert not form.is_question_visible("weekly_hours")
    qtbot.keyClicks(form.editor("sustained_on"), "14/05/2025")
    form.set_answer("still_in_work", True)
    assert form.is_question_visible("weekly_hours")
    with qtbot.assertNotEmitted(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    assert form.error_text("weekly_hours") == "This question needs an answer."

    qtbot.keyClicks(form.editor("weekly_hours"), "25")
    qtbot.keyClicks(form.editor("notes"), "Moved to the early shift.")
    with qtbot.waitSignal(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)

    outcomes = {o.kind: o for o in glue.stored("outcome")}
    sustained = outcomes[OutcomeKind.SUSTAINMENT]
    assert sustained.outcome_on == date(2025, 5, 14) and sustained.weekly_hours == 25.0
    # The job it sustains is the latest job start's.
    assert (sustained.employer, sustained.job_title) == (job.employer, job.job_title)
    # Still in work and the notes are kept on the outcome itself: no side assessment.
    assert sustained.in_work is True and sustained.notes == "Moved to the early shift."
    assert glue.stored("assessment") == []
    assert outcomes[OutcomeKind.JOB_START].in_work is None and outcomes[OutcomeKind.JOB_START].notes == ""
    table = view.outcomes_table
    assert table.row_count() == 2
    assert {table.cell(r, 0) for r in range(2)} == {"Job start", "Sustainment"}


def test_a_check_that_finds_them_out_of_work_is_one_outcome_marked_not_in_work(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    job = _record_job_start(qtbot, glue)
    qtbot.mouseClick(view.sustainment_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    qtbot.keyClicks(form.editor("sustained_on"), "14/05/2025")
    form.set_answer("still_in_work", False)
    qtbot.keyClicks(form.editor("notes"), "The contract ended in April.")
    with qtbot.waitSignal(view.sig_save_form) as saved:
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    (check,) = saved.args[0]
    assert isinstance(check, Outcome) and check.kind is OutcomeKind.SUSTAINMENT
    assert check.in_work is False and check.notes == "The contract ended in April."
    assert check.weekly_hours is None  # not asked when they are out of work
    assert (check.employer, check.job_title) == (job.employer, job.job_title)
    assert check.outcome_on == date(2025, 5, 14)
    assert glue.stored("assessment") == []
    stored = {o.kind: o for o in glue.stored("outcome")}
    assert set(stored) == {OutcomeKind.JOB_START, OutcomeKind.SUSTAINMENT}
    assert stored[OutcomeKind.SUSTAINMENT].in_work is False
    table = view.outcomes_table
    assert table.row_count() == 2
    assert {table.cell(r, 0) for r in range(2)} == {"Job start", "Sustainment (not in work)"}
