"""FormView renders real form definitions: checks, conditions, tidied answers, drafts."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QComboBox, QLineEdit

from keyworker_app.forms import FieldType, list_forms, load_form
from keyworker_app.records import Assessment, Outcome, OutcomeKind, Participant
from keyworker_app.store.store import Draft
from record_support import TODAY, record_store, save_all, synthetic_participant  # noqa: F401
from ui.form_view import DRAFT_DELAY_MS, FormState, FormView, draft_key_for


def _view(qtbot, form_id: str, **state) -> FormView:
    view = FormView()
    qtbot.addWidget(view)
    form = load_form(form_id)
    state.setdefault("participant_id", "p-1")
    view.render(FormState(form=form, today=TODAY, **state))
    view.show()
    return view


def test_every_shipped_form_renders_with_an_editor_per_question(qtbot) -> None:
    for form in list_forms():
        view = _view(qtbot, form.id)
        for question in form.fields:
            editor = view.editor(question.id)
            assert editor.accessibleName(), question.id
            if question.required:
                assert "required" in view._rows[question.id].accessible_name


def test_invalid_then_valid_assessment_shows_messages_then_saves(qtbot) -> None:
    participant = synthetic_participant()
    view = _view(qtbot, "initial_assessment", participant_id=participant.id,
                 targets={"participant": participant}, assessor="KW-1", draft_key="k")
    qtbot.keyClicks(view.editor("assessed_on"), "31/02/2025")
    qtbot.keyClicks(view.editor("hours_wanted"), "ninety")

    with qtbot.assertNotEmitted(view.sig_save):
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)

    assert view.error_text("assessed_on") == "That date doesn't exist. Please check the day and the month."
    assert view.error_text("contact_type") == "This question needs an answer."
    assert view.error_text("hours_wanted") == "Please type a whole number, like 12."
    entries = view.summary_entries()
    assert "Date of the assessment: That date doesn't exist. Please check the day and the month." in entries
    assert view.summary.isVisible() and "problem with" in view.summary_heading.text()
    assert view.focusWidget() is view.summary_list
    # The message is also in the field's accessible description, for screen readers.
    assert "doesn't exist" in view.editor("assessed_on").accessibleDescription()

    # Activating a summary entry moves focus to its question.
    item = next(view.summary_list.item(i) for i in range(view.summary_list.count())
                if view.summary_list.item(i).text().startswith("How did you meet?"))
    view.summary_list.itemActivated.emit(item)
    assert view.focusWidget() is view.editor("contact_type")

    view.editor("assessed_on").setText("")
    qtbot.keyClicks(view.editor("assessed_on"), "2025-05-01")
    view.editor("hours_wanted").setText("")
    qtbot.keyClicks(view.editor("hours_wanted"), " 16 ")
    combo = view.editor("contact_type")
    assert isinstance(combo, QComboBox)
    combo.setCurrentIndex(combo.findData("home_visit"))
    status = view.editor("employment_status")
    status.setCurrentIndex(status.findData("01"))
    assert view.is_question_visible("weekly_hours_worked")
    hours = view.editor("weekly_hours_worked")
    hours.setCurrentIndex(1)

    # The latest answers are kept as the draft first; the form never discards it on saving
    # (the window does, once the save has worked).
    with qtbot.waitSignal(view.sig_save) as saved, qtbot.waitSignal(view.sig_save_draft), \
            qtbot.assertNotEmitted(view.sig_discard_draft):
        qtbot.mouseClick(view.save_button, Qt.MouseButton.LeftButton)
    records = saved.args[0]
    updated = next(r for r in records if isinstance(r, Participant))
    assessment = next(r for r in records if isinstance(r, Assessment))
    assert updated.id == participant.id and updated.employment_status == "01"
    assert updated.weekly_hours_worked == hours.itemData(1)
    assert assessment.form_id == "initial_assessment" and assessment.form_version == 1
    assert assessment.answers["assessed_on"] == date(2025, 5, 1)
    assert assessment.answers["contact_type"] == "home_visit"
    assert assessment.answers["hours_wanted"] == 16
    assert "employment_status" not in assessment.answers  # kept on the participant only
    assert assessment.completed_on == TODAY and assessment.assessor == "KW-1"
    assert not view.summary.isVisible() and view.error_text("assessed_on") == ""
    # Tidied answers are written back on screen.
    assert view.editor("assessed_on").text() == "01/05/2025"
    assert view.editor("hours_wanted").text() == "16"


def test_saved_assessment_goes_into_the_real_store(qtbot, record_store) -> None:
    participant = record_store.save(synthetic_participant())
    view = _view(qtbot, "progress_review", participant_id=participant.id,
                 targets={"participant": participant})
    view.set_answer("reviewed_on", "14/05/2025")
    view.set_answer("contact_type", "phone")
    view.set_answer("progress_summary", "Went to two interviews.")
    view.set_answer("employment_status", "02")
    with qtbot.waitSignal(view.sig_save) as saved:
        assert view.submit()
    save_all(record_store, saved.args[0])
    stored = record_store.participant_file(participant.id).records["assessment"]
    assert [a.form_id for a in stored] == ["progress_review"]
    assert stored[0].answers["progress_summary"] == "Went to two interviews."
    assert record_store.participants.get(participant.id).employment_status == "02"


def test_conditional_questions_appear_and_disappear_live(qtbot) -> None:
    participant = synthetic_participant()
    view = _view(qtbot, "registration", targets={"participant": participant})
    assert not view.is_question_visible("disability_description")
    assert not view.editor("disability_description").isVisible()
    view.editor("disability").setCurrentIndex(view.editor("disability").findData("yes"))
    assert view.is_question_visible("disability_description")
    assert view.editor("disability_description").isVisible()
    view.editor("disability").setCurrentIndex(view.editor("disability").findData("no"))
    assert not view.editor("disability_description").isVisible()

    esf = _view(qtbot, "esf_participant")
    assert not esf.is_question_visible("signature")
    esf.set_answer("remote_delivery", False)
    assert esf.is_question_visible("signature") and not esf.is_question_visible("signature_arrangements")
    esf.set_answer("remote_delivery", True)
    assert esf.is_question_visible("signature_arrangements") and not esf.is_question_visible("signature")


def test_hidden_answers_are_not_kept_and_uk_formats_are_tidied(qtbot) -> None:
    participant = synthetic_participant(ni_number="", postcode="")
    view = _view(qtbot, "registration", participant_id=participant.id, targets={"participant": participant})
    view.set_answer("disability", "yes")
    view.set_answer("disability_description", "Uses a wheelchair")
    view.set_answer("disability", "no")
    view.editor("ni_number").setText("")
    qtbot.keyClicks(view.editor("ni_number"), "ab 12 34 56 c")
    view.editor("postcode").setText("")
    qtbot.keyClicks(view.editor("postcode"), "m11ae")
    view.set_answer("address_line1", "1 Test Street")
    view.set_answer("employment_status", "02")
    with qtbot.waitSignal(view.sig_save) as saved:
        view.submit()
    assert view.editor("ni_number").text() == "AB123456C"
    assert view.editor("postcode").text() == "M1 1AE"
    updated = next(r for r in saved.args[0] if isinstance(r, Participant))
    assert updated.ni_number == "AB123456C" and updated.postcode == "M1 1AE"
    assert updated.disability == "no" and updated.disability_description == ""


def test_draft_is_emitted_after_a_pause_and_restored_on_render(qtbot) -> None:
    key = draft_key_for("p-1", "initial_assessment")
    view = _view(qtbot, "initial_assessment", draft_key=key)
    with qtbot.waitSignal(view.sig_save_draft, timeout=DRAFT_DELAY_MS * 5) as blocker:
        qtbot.keyClicks(view.editor("work_history"), "Warehouse work")
        view.editor("barrier_categories").click()  # the first tick box: a multichoice answer
    emitted_key, form_id, participant_id, answers = blocker.args
    assert (emitted_key, form_id, participant_id) == (key, "initial_assessment", "p-1")
    assert answers["work_history"] == "Warehouse work"
    first_category = load_form("initial_assessment").field("barrier_categories").options()[0].code
    assert answers["barrier_categories"] == [first_category]

    # After a lock: a fresh view, rendered with the stored draft, shows the same answers.
    fresh = _view(qtbot, "initial_assessment", draft_key=key,
                  draft=Draft(key, form_id, participant_id, answers, "2025-05-14T10:00:00+00:00"))
    assert fresh.editor("work_history").toPlainText() == "Warehouse work"
    assert fresh.editor("barrier_categories").isChecked()
    # Rendering the same form again does not wipe what is being typed.
    qtbot.keyClicks(fresh.editor("job_goal"), "Driver")
    fresh.render(fresh.state)
    assert fresh.editor("job_goal").text() == "Driver"


def test_draft_for_another_form_or_key_is_not_restored(qtbot) -> None:
    key = draft_key_for("p-1", "initial_assessment")
    other = Draft("p-1:progress_review:new", "progress_review", "p-1", {"job_goal": "X"}, "")
    view = _view(qtbot, "initial_assessment", draft_key=key, draft=other)
    assert view.editor("job_goal").text() == ""


def test_flush_draft_emits_at_once_for_a_lock(qtbot) -> None:
    view = _view(qtbot, "progress_review", draft_key="k")
    view.set_answer("progress_summary", "Halfway")
    assert view.has_pending_draft()
    with qtbot.waitSignal(view.sig_save_draft, timeout=100) as blocker:
        view.flush_draft()
    assert blocker.args[3] == {"progress_summary": "Halfway"}


def test_exit_form_makes_outcomes_with_numbers_and_choices(qtbot) -> None:
    participant = synthetic_participant()
    view = _view(qtbot, "exit", participant_id=participant.id, targets={"participant": participant})
    view.set_answer("exit_on", "30/04/2025")
    view.set_answer("exit_reason", "completed")
    view.set_answer("got_job", True)
    view.set_answer("job_start_on", "01/05/2025")
    view.set_answer("employer", "Test Bakery Ltd")
    view.set_answer("job_title", "Baker")
    view.set_answer("weekly_hours", "22.5")
    view.set_answer("further_support", False)
    with qtbot.waitSignal(view.sig_save) as saved:
        assert view.submit()
    outcome = next(r for r in saved.args[0] if isinstance(r, Outcome))
    assert outcome.weekly_hours == 22.5 and outcome.employer == "Test Bakery Ltd"
    assert outcome.exit_reason is not None and outcome.exit_reason.value == "completed"
    assessment = next(r for r in saved.args[0] if isinstance(r, Assessment))
    assert assessment.answers["got_job"] is True
    assert view.editor("weekly_hours").text() == str(Decimal("22.5"))
    assert outcome.kind is OutcomeKind.JOB_START  # the generic builder; the record view makes it an exit


def test_tab_order_follows_the_questions(qtbot) -> None:
    view = _view(qtbot, "referral")
    view.set_answer("source_type", "nhs_trust")
    form = load_form("referral")
    expected = [view.editor(q.id) for q in form.fields if view.is_question_visible(q.id)]
    first = expected[0]
    first.setFocus()
    seen = [first]
    widget = first
    for _ in range(len(expected) - 1):
        widget = widget.nextInFocusChain()
        while not (widget.isVisible() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
            widget = widget.nextInFocusChain()
        seen.append(widget)
    assert seen == expected
    assert all(isinstance(w, (QLineEdit, QComboBox)) or w.accessibleName() for w in seen)


def test_every_field_type_has_an_editor(qtbot) -> None:
    types_used = {q.type for form in list_forms() for q in form.fields}
    assert FieldType.SIGNATURE in types_used and FieldType.MULTICHOICE in types_used
    view = _view(qtbot, "registration")
    assert view.editor("date_of_birth").placeholderText() == "DD/MM/YYYY"
    assert "AB 12 34 56 C" in view.editor("ni_number").placeholderText()
