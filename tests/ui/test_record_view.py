"""The participant record as a whole: sections, notes, forms, drafts, history, accessibility."""

from __future__ import annotations

from datetime import datetime, timezone

from PySide6.QtCore import Qt
from PySide6.QtWidgets import QAbstractSpinBox, QComboBox, QWidget

from keyworker_app.programmes import list_programmes, load_programme
from keyworker_app.records import (
    Assessment, CaseNote, Confidentiality, Outcome, OutcomeKind, ParticipantStatus, Referral,
)
from record_support import (  # noqa: F401
    KEYWORKER, PROGRAMME, TODAY, Glue, record_state, record_store, synthetic_participant,
)
from ui.record import SECTIONS, ParticipantRecordView, SentItem


def _participant(store):
    participant = store.save(synthetic_participant())
    store.save(Referral(participant_id=participant.id, source_organisation="Test NHS Trust",
                        reason="Off work with anxiety"))
    return participant


def test_sections_follow_the_programme(qtbot, record_store) -> None:
    glue = Glue(qtbot, record_store, _participant(record_store).id)
    view = glue.view
    assert view.section_ids() == ["profile", "referral", "assessments", "barriers", "action_plan",
                                  "notes", "consent", "esf", "outcomes", "sharing", "audit"]
    assert "household" not in view.section_ids()  # Early Help only
    assert view._items["action_plan"].text() == "Return to Work plan /\nThrive in Work plan"
    assert view.action_plan_page.heading.text() == "Return to Work plan / Thrive in Work plan"
    assert view.title.text() == "Testy Example (WW-000042)"
    profile = view.profile_table
    rows = {profile.cell(r, 0): profile.cell(r, 1) for r in range(profile.row_count())}
    assert rows["National Insurance number"] == "AB123456C"
    assert rows["Gender"] == "Female"
    assert rows["Programme"] == "Working Well Specialist Employment Service: Individual Placement and Support"
    referral = {view.referral_table.cell(r, 0): view.referral_table.cell(r, 1)
                for r in range(view.referral_table.row_count())}
    assert referral["Main reason for the referral"] == "Off work with anxiety"
    view.nav.setCurrentRow(view.nav.row(view._items["consent"]))
    assert view.current_section() == "consent"


def test_health_team_notes_never_appear_and_a_note_is_added(qtbot, record_store) -> None:
    participant = _participant(record_store)
    record_store.save(CaseNote(participant_id=participant.id, summary="Visible note",
                               contact_on=datetime(2025, 5, 1, 10, tzinfo=timezone.utc)))
    record_store.save(CaseNote(participant_id=participant.id, summary="Clinical detail",
                               confidentiality=Confidentiality.HEALTH_TEAM))
    glue = Glue(qtbot, record_store, participant.id)
    view = glue.view
    view.show_section("notes")
    notes = [view.notes_table.cell(r, 4) for r in range(view.notes_table.row_count())]
    assert notes == ["Visible note"]
    confidentiality = [view.note_confidentiality.itemData(i) for i in range(view.note_confidentiality.count())]
    assert "health_team" not in confidentiality

    view.note_date.setText("14/05/2025")
    assert not view.save_note()
    assert view.note_error.text() == "Please write what happened."
    qtbot.keyClicks(view.note_text, "Phoned about the interview on Friday.")
    view.note_type.setCurrentIndex(view.note_type.findData("phone"))
    with qtbot.waitSignal(view.sig_save):
        qtbot.mouseClick(view.note_save, Qt.MouseButton.LeftButton)
    assert view.notes_table.cell(0, 4) == "Phoned about the interview on Friday."
    assert view.notes_table.cell(0, 1) == "Phone call"
    assert view.notes_table.cell(0, 3) == KEYWORKER


def test_delete_needs_a_reason(qtbot, record_store) -> None:
    participant = _participant(record_store)
    note = record_store.save(CaseNote(participant_id=participant.id, summary="Typed in the wrong file"))
    glue = Glue(qtbot, record_store, participant.id)
    table = glue.view.notes_table
    table.table.selectRow(0)
    with qtbot.assertNotEmitted(glue.view.sig_delete):
        table.delete_button.click()
    assert "say why" in table.problem.text()
    table.table.selectRow(0)
    table.reason.setText("Wrong participant")
    with qtbot.waitSignal(glue.view.sig_delete):
        table.delete_button.click()
    assert glue.deleted == [("case_note", note.id, "Wrong participant")]
    assert table.row_count() == 0


def test_assessment_form_from_the_record_with_a_draft_restored_after_rerender(qtbot, record_store) -> None:
    participant = _participant(record_store)
    glue = Glue(qtbot, record_store, participant.id)
    view = glue.view
    view.show_section("assessments")
    form = view.open_form("progress_review")
    assert view.current_section() == "form"
    with qtbot.waitSignal(view.sig_save_draft, timeout=5000):
        qtbot.keyClicks(form.editor("progress_summary"), "Started volunteering")
    assert [d.form_id for d in record_store.drafts()] == ["progress_review"]
    qtbot.keyClicks(form.editor("next_steps"), "Apply for two jobs")
    with qtbot.waitSignal(view.sig_save_draft, timeout=100):
        view.flush_drafts()  # before a lock: no waiting for the pause
    assert record_store.drafts()[0].answers["next_steps"] == "Apply for two jobs"
    # The app locks: the view is thrown away. A new one offers the draft and restores it.
    second = Glue(qtbot, record_store, participant.id).view
    assert second.drafts_list.count() == 1
    second._resume_draft(second.drafts_list.item(0))
    restored = second.form_view
    assert restored.editor("progress_summary").toPlainText() == "Started volunteering"
    restored.set_answer("reviewed_on", "14/05/2025")
    restored.set_answer("contact_type", "video")
    restored.set_answer("employment_status", "02")
    key = record_store.drafts()[0].key
    with qtbot.waitSignal(second.sig_save_form) as saved:
        assert restored.submit()
    assert saved.args[1] == key  # the window discards it once the save has worked
    assert record_store.drafts() == []
    assert second.current_section() == "profile"
    assessments = record_store.participant_file(participant.id, audit_view=False).records["assessment"]
    assert [a.form_id for a in assessments] == ["progress_review"]
    second.show_section("assessments")
    assert second.assessment_table.cell(0, 0) == "Progress review"
    second.assessment_table.table.selectRow(0)
    detail = {second.assessment_detail.cell(r, 0): second.assessment_detail.cell(r, 1)
              for r in range(second.assessment_detail.row_count())}
    assert detail["What has happened since the last review?"] == "Started volunteering"
    assert detail["How did you meet?"] == "Video call"


def test_action_plan_and_exit_forms_make_their_records(qtbot, record_store) -> None:
    participant = _participant(record_store)
    glue = Glue(qtbot, record_store, participant.id)
    view = glue.view
    form = view.open_form("action_plan")
    form.set_answer("kind", "thrive_in_work")
    form.set_answer("goal", "Stay in my job")
    form.set_answer("agreed_on", "14/05/2025")
    form.set_answer("employer_aware", True)
    form.set_answer("step_1_action", "Ask for a phased return")
    form.set_answer("step_1_owner", "Participant")
    with qtbot.waitSignal(view.sig_save_form):
        assert form.submit()
    view.show_section("action_plan")
    assert view.plan_table.cell(0, 0) == "Thrive in Work plan"
    view.plan_table.table.selectRow(0)
    assert view.plan_steps.cell(0, 0) == "Ask for a phased return"

    form = view.open_form("exit")
    form.set_answer("exit_on", "14/05/2025")
    form.set_answer("exit_reason", "left_early")
    form.set_answer("got_job", True)
    form.set_answer("job_start_on", "12/05/2025")
    form.set_answer("employer", "Test Garage")
    form.set_answer("job_title", "Mechanic")
    form.set_answer("weekly_hours", "30")
    form.set_answer("further_support", False)
    form.set_answer("onward_referrals", "Debt advice\nHousing options")
    with qtbot.waitSignal(view.sig_save_form):
        assert form.submit()
    stored = record_store.participant_file(participant.id, audit_view=False)
    outcomes = {o.kind: o for o in stored.records["outcome"] if isinstance(o, Outcome)}
    assert outcomes[OutcomeKind.EXIT].onward_referrals == ("Debt advice", "Housing options")
    assert outcomes[OutcomeKind.JOB_START].employer == "Test Garage"
    assert stored.participant.status is ParticipantStatus.EXITED
    assert any(isinstance(a, Assessment) and a.form_id == "exit" for a in stored.records["assessment"])
    assert view.outcomes_table.row_count() == 2


def test_sharing_and_audit_history(qtbot, record_store) -> None:
    participant = _participant(record_store)
    sent = SentItem(sent_at="2025-05-02T09:30:00+00:00", recipient="The participant's employer",
                    record_type="outcome", record_id="o-1", sharing_profile="employer",
                    lawful_basis="Article 6(1)(a): consent", status="accepted")
    glue = Glue(qtbot, record_store, participant.id, sharing=(sent,))
    view = glue.view
    assert [view.sharing_table.cell(0, c) for c in range(5)] == [
        "2025-05-02 09:30", "The participant's employer", "Outcomes", "Article 6(1)(a): consent", ""]
    actions = {view.audit_table.cell(r, 2) for r in range(view.audit_table.row_count())}
    assert "create" in actions
    empty = Glue(qtbot, record_store, participant.id).view
    assert empty.sharing_table.cell(0, 1) == "Nothing has been shared yet."


def _ancestors(widget: QWidget) -> list[QWidget]:
    found = []
    parent = widget.parentWidget()
    while parent is not None:
        found.append(parent)
        parent = parent.parentWidget()
    return found


def _focusable(view: QWidget) -> list[QWidget]:
    found = []
    for widget in view.findChildren(QWidget):
        if not widget.focusPolicy() & Qt.FocusPolicy.TabFocus:
            continue
        parent = widget.parentWidget()
        if isinstance(parent, QAbstractSpinBox):
            continue  # a spin box's own text field: the spin box carries the name
        if any(isinstance(a, QComboBox) for a in _ancestors(widget)):
            continue  # a drop-down's own pop-up list: the drop-down carries the name
        found.append(widget)
    return found


def test_every_focusable_control_has_an_accessible_name(qtbot, record_store) -> None:
    participant = _participant(record_store)
    record_store.save(CaseNote(participant_id=participant.id, summary="A note"))
    glue = Glue(qtbot, record_store, participant.id)
    view = glue.view
    for section in view.section_ids():
        view.show_section(section)
    view.open_form("registration")
    view.barriers.render(participant.id, [], [], TODAY)
    missing = [f"{type(w).__name__} {w.objectName()!r} in {type(w.parentWidget()).__name__}"
               for w in _focusable(view) if not w.accessibleName().strip()]
    assert missing == []


def test_keyboard_moves_from_the_sections_list_into_the_page(qtbot, record_store) -> None:
    glue = Glue(qtbot, record_store, _participant(record_store).id)
    view = glue.view
    view.show_section("notes")
    widget = view.nav.nextInFocusChain()
    while not (widget.isVisible() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
        widget = widget.nextInFocusChain()
    assert widget is view.notes_table.table


def test_flush_drafts_keeps_only_forms_with_something_typed(qtbot, record_store) -> None:
    glue = Glue(qtbot, record_store, _participant(record_store).id)
    view = glue.view
    form = view.open_form("progress_review")
    with qtbot.assertNotEmitted(view.sig_save_draft):
        view.flush_drafts()  # opened, nothing typed: no "unfinished form" left behind
    qtbot.keyClicks(form.editor("progress_summary"), "Went to the job fair")
    with qtbot.waitSignal(view.sig_save_draft, timeout=100) as kept:
        view.flush_drafts()  # without waiting for the typing pause
    assert kept.args[3] == {"progress_summary": "Went to the job fair"}
    with qtbot.assertNotEmitted(view.sig_save_draft):
        view.flush_drafts()  # already kept, nothing new


def test_built_a_section_at_a_time_it_works_as_if_built_at_once(qtbot, record_store) -> None:
    participant = _participant(record_store)
    record_store.save(CaseNote(participant_id=participant.id, summary="A note"))
    view = ParticipantRecordView(build_now=False)
    qtbot.addWidget(view)
    view.resize(1200, 900)
    view.show()
    assert not view.built and view.nav.count() == len(SECTIONS)
    view.prepare_for(list_programmes(), load_programme(PROGRAMME))
    steps = 1
    while view.build_step():
        steps += 1
    assert view.built and steps > len(SECTIONS)  # each section, then the first-render work
    # The consent boxes were made ahead: rendering shows those, and makes none.
    made = {id(b) for boxes in view.consent._box_pool.values() for b in boxes}
    assert made
    view.render(record_state(record_store, participant.id))
    assert {id(b) for boxes in view.consent._box_pool.values() for b in boxes} == made
    assert {id(b) for b in view.consent._boxes.values()} <= made
    # From the keyboard: down the sections list, then Tab into the page.
    view.nav.setFocus()
    assert view.current_section() == "profile"
    qtbot.keyClick(view.nav, Qt.Key.Key_Down)
    assert view.current_section() == "referral"  # household is hidden for this programme
    view.show_section("notes")
    assert view.notes_table.row_count() == 1 and view.notes_table.cell(0, 4) == "A note"
    widget = view.nav.nextInFocusChain()
    while not (widget.isVisible() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
        widget = widget.nextInFocusChain()
    assert widget is view.notes_table.table


def test_the_first_render_builds_whatever_is_left(qtbot, record_store) -> None:
    participant = _participant(record_store)
    view = ParticipantRecordView(build_now=False)
    qtbot.addWidget(view)
    view.build_step()
    view.flush_drafts()  # nothing built to type into: nothing to keep, and no error
    view.render(record_state(record_store, participant.id))
    assert view.built and view.title.text() == "Testy Example (WW-000042)"
    assert view.referral_table.row_count() > 0


def test_render_soon_fills_the_section_on_screen_first_and_the_rest_after(qtbot, record_store) -> None:
    participant = _participant(record_store)
    glue = Glue(qtbot, record_store, participant.id)
    view = glue.view
    view.show_section("referral")
    audited = view.audit_table.row_count()
    record_store.save(CaseNote(participant_id=participant.id, summary="Rang about the CV"))
    view.render_soon(record_state(record_store, participant.id))
    assert view.referral_table.row_count() > 0
    assert not view.rendered and view.notes_table.row_count() == 0  # not filled yet
    # Arrowing down the sections list to a section fills it as it is shown.
    view.nav.setFocus()
    while view.current_section() != "notes":
        qtbot.keyClick(view.nav, Qt.Key.Key_Down)
    assert view.notes_table.cell(0, 4) == "Rang about the CV"
    # The others are filled in the idle moments after.
    assert view.audit_table.row_count() == audited
    qtbot.waitUntil(lambda: view.rendered)
    assert view.audit_table.row_count() > audited  # the note's save is in the audit history


def test_the_sections_list_keeps_its_width_from_one_programme_to_the_next(qtbot, record_store) -> None:
    """Built for every programme, the list is already as wide as its widest entry: opening
    someone on another programme (another action plan name, household shown) never lays
    the record out again."""
    participant = _participant(record_store)
    view = ParticipantRecordView(build_now=False)
    qtbot.addWidget(view)
    view.resize(1200, 900)
    view.show()
    view.prepare_for(list_programmes(), load_programme("early_help"))
    view.finish_building()
    width = view.nav.width()
    for programme in ("early_help", PROGRAMME, "working_well", PROGRAMME):
        view.render(record_state(record_store, participant.id, programme=programme))
        assert view.nav.width() == width
    assert view._items["action_plan"].text() == "Return to Work plan /\nThrive in Work plan"
    assert view._items["action_plan"].toolTip() == "Return to Work plan / Thrive in Work plan"
    # Every entry still fits: none is cut off.
    assert view.nav.sizeHintForColumn(0) <= view.nav.viewport().width()


def test_after_render_soon_the_turn_that_paints_the_record_fills_no_other_section(qtbot, record_store) -> None:
    """The section on screen is filled at once; the first hidden one only a few turns of
    the event loop later (``FILL_AFTER_TURNS``), one a turn, so the record's paint never
    waits behind them."""
    from PySide6.QtWidgets import QApplication

    from ui.record import FILL_AFTER_TURNS

    participant = _participant(record_store)
    view = Glue(qtbot, record_store, participant.id).view
    view.render_soon(record_state(record_store, participant.id))
    stale = list(view._stale)
    assert "profile" not in stale and len(stale) > 1
    QApplication.processEvents()   # one turn of the event loop: it paints the record
    assert view._stale == stale
    for _turn in range(FILL_AFTER_TURNS - 1):   # the window's list repaints in these
        QApplication.processEvents()
        assert view._stale == stale
    QApplication.processEvents()
    assert view._stale == stale[1:]   # then one section a turn
    qtbot.waitUntil(lambda: view.rendered)
