"""The Household section (Early Help, seed 002): family members added, changed and removed
through the household member form, on real records in the encrypted store."""

from __future__ import annotations

from datetime import date

from PySide6.QtCore import Qt

from keyworker_app.records import HouseholdMember
from record_support import Glue, record_store, synthetic_participant, type_answers  # noqa: F401

EARLY_HELP = "early_help"


def _members(glue: Glue) -> list[HouseholdMember]:
    return [m for m in glue.stored("household_member") if isinstance(m, HouseholdMember)]


def _glue(qtbot, store) -> Glue:
    participant = store.save(synthetic_participant(programme=EARLY_HELP, strand="", participant_ref="EH-000007"))
    glue = Glue(qtbot, store, participant.id, programme=EARLY_HELP)
    glue.view.show_section("household")
    return glue


def _add_child(qtbot, glue: Glue) -> HouseholdMember:
    view = glue.view
    qtbot.mouseClick(view.add_member_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    type_answers(qtbot, form, {"given_name": "Sammy", "family_name": "Example",
                               "date_of_birth": "01/09/2021", "education": "Example Street Nursery"})
    form.set_answer("relationship", "son")
    form.set_answer("gender", "male")
    with qtbot.waitSignal(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    (member,) = _members(glue)
    return member


def test_the_household_section_offers_the_form_and_no_assessment_button(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    assert "household" in view.section_ids()
    assert view.add_member_button.isVisible() and view.edit_member_button.isVisible()
    assert view.add_member_button.accessibleName() == "Add a family member"
    assert all("family member" not in b.text().lower() for b in view._assessment_button_widgets)
    assert not view.job_start_button.isVisible()  # Early Help is not an employment programme


def test_add_a_child_with_invalid_then_valid_answers(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    qtbot.mouseClick(view.add_member_button, Qt.MouseButton.LeftButton)
    assert view.current_section() == "form"
    form = view.form_view
    assert form.title.text() == "Family member"
    qtbot.keyClicks(form.editor("given_name"), "Sammy")
    qtbot.keyClicks(form.editor("date_of_birth"), "31/02/2022")
    qtbot.keyClicks(form.editor("nhs_number"), "943 476 5910")

    with qtbot.assertNotEmitted(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)
    assert form.error_text("family_name") == "This question needs an answer."
    assert form.error_text("relationship") == "This question needs an answer."
    assert "doesn't exist" in form.error_text("date_of_birth")
    assert form.error_text("nhs_number")
    assert _members(glue) == []

    # A three-year-old is allowed: the youngest age on this form is 0, not 16.
    form.editor("date_of_birth").clear()
    qtbot.keyClicks(form.editor("date_of_birth"), "01/09/2021")
    form.editor("nhs_number").clear()
    qtbot.keyClicks(form.editor("nhs_number"), "943 476 5919")
    qtbot.keyClicks(form.editor("family_name"), "Example")
    form.set_answer("relationship", "son")
    form.set_answer("gender", "male")
    form.set_answer("ethnicity", form.editor("ethnicity").itemData(1))
    qtbot.keyClicks(form.editor("language"), "English")
    qtbot.keyClicks(form.editor("health_visitor"), "Example Health Visiting Team")
    qtbot.keyClicks(form.editor("education"), "Example Street Nursery")
    form.set_answer("social_care_status", "early_help_plan")
    with qtbot.waitSignal(view.sig_save_form) as saved:
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)

    (emitted,) = saved.args[0]  # every answer maps to the member: no stray assessment
    assert isinstance(emitted, HouseholdMember)
    (member,) = _members(glue)
    assert member.id == emitted.id and member.participant_id == glue.participant_id
    assert (member.given_name, member.family_name, member.relationship) == ("Sammy", "Example", "son")
    assert member.date_of_birth == date(2021, 9, 1)
    assert member.nhs_number.replace(" ", "") == "9434765919"
    assert (member.gender, member.language) == ("male", "English")
    assert member.health_visitor == "Example Health Visiting Team"
    assert member.social_care_status == "early_help_plan"
    # Back on the Household section, which lists the new member.
    assert view.current_section() == "household"
    table = view.household_table
    assert table.row_count() == 1
    assert [table.cell(0, c) for c in range(4)] == ["Sammy Example", "Son", "01/09/2021", "Example Street Nursery"]


def test_change_a_member_through_the_form(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    member = _add_child(qtbot, glue)

    view.household_table.table.clearSelection()
    qtbot.mouseClick(view.edit_member_button, Qt.MouseButton.LeftButton)
    assert view.household_problem.text() == "Choose a family member in the table first."
    assert view.current_section() == "household"

    view.household_table.table.selectRow(0)
    qtbot.mouseClick(view.edit_member_button, Qt.MouseButton.LeftButton)
    form = view.form_view
    assert form.editor("given_name").text() == "Sammy"
    assert form.editor("date_of_birth").text() == "01/09/2021"
    form.editor("education").clear()
    qtbot.keyClicks(form.editor("education"), "Example Primary School, Reception")
    with qtbot.waitSignal(view.sig_save_form):
        qtbot.mouseClick(form.save_button, Qt.MouseButton.LeftButton)

    (changed,) = _members(glue)
    assert changed.id == member.id and changed.version == member.version + 1
    assert changed.education == "Example Primary School, Reception"
    assert changed.given_name == "Sammy"
    assert view.household_table.cell(0, 3) == "Example Primary School, Reception"


def test_remove_a_member_needs_a_reason(qtbot, record_store) -> None:
    glue = _glue(qtbot, record_store)
    view = glue.view
    member = _add_child(qtbot, glue)
    table = view.household_table
    table.table.selectRow(0)
    with qtbot.assertNotEmitted(view.sig_delete):
        qtbot.mouseClick(table.delete_button, Qt.MouseButton.LeftButton)
    assert "say why" in table.problem.text()

    qtbot.keyClicks(table.reason, "Moved out of the household")
    with qtbot.waitSignal(view.sig_delete) as deleted:
        qtbot.mouseClick(table.delete_button, Qt.MouseButton.LeftButton)
    assert deleted.args == ["household_member", member.id, "Moved out of the household"]
    assert _members(glue) == []
    assert table.row_count() == 0
