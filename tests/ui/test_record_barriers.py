"""Barriers to work: recording them, reviewing them, and the distance-travelled chart."""

from __future__ import annotations

from datetime import date

from PySide6.QtGui import QImage

from keyworker_app.forms import load_form
from keyworker_app.records import Barrier, BarrierReview, BarrierStatus
from record_support import TODAY, record_store, save_all, synthetic_participant  # noqa: F401
from ui.barriers_chart import (
    BarriersPanel, DistanceChart, barriers_from_answers, distance_travelled, series_summary,
)
from ui.form_view import FormState, FormView


def _housing(**fields) -> Barrier:
    values = dict(participant_id="p", category="housing", severity=5, identified_on=date(2025, 1, 10),
                  actions=("Referral to housing options",))
    values.update(fields)
    return Barrier(**values)


def test_distance_travelled_series_and_summary() -> None:
    housing = _housing()
    debt = Barrier(participant_id="p", category="debt_finances", severity=3, identified_on=date(2025, 1, 10))
    reviews = [
        BarrierReview(participant_id="p", barrier_id=housing.id, reviewed_on=date(2025, 3, 1), severity=2),
        BarrierReview(participant_id="p", barrier_id=housing.id, reviewed_on=date(2025, 2, 1), severity=4),
        BarrierReview(participant_id="p", barrier_id=housing.id, reviewed_on=date(2025, 4, 1), severity=2),
    ]
    housing_series, debt_series = distance_travelled([housing, debt], reviews)
    assert [s for _, s in housing_series.points] == [5, 4, 2, 2]
    assert series_summary(housing_series) == "Housing: 5 → 2 over 3 reviews"
    assert series_summary(debt_series) == "Debt or money worries: 3, not reviewed yet"


def test_chart_points_follow_severity_and_dates(qtbot) -> None:
    chart = DistanceChart()
    qtbot.addWidget(chart)
    chart.resize(600, 300)
    housing = _housing()
    first = distance_travelled([housing], [])
    chart.set_series(first)
    (only,) = chart.points_for(first[0])
    reviews = [BarrierReview(participant_id="p", barrier_id=housing.id, reviewed_on=date(2025, 3, 1), severity=1)]
    second = distance_travelled([housing], reviews)
    chart.set_series(second)
    start, end = chart.points_for(second[0])
    area = chart.plot_area()
    assert start.y() == area.top() and end.y() == area.bottom()  # 5 at the top, 1 at the bottom
    assert start.x() == area.left() and end.x() == area.right()
    assert only.x() == area.center().x()
    assert chart.accessibleDescription() == "Housing: 5 → 1 over 1 review"
    image = QImage(chart.size(), QImage.Format.Format_RGB32)
    chart.render(image)  # paints without error; the line is drawn in the first colour
    assert image.pixelColor(int(start.x()), int(start.y())) != image.pixelColor(5, 5)


def test_recording_barriers_then_a_review_changes_the_chart(qtbot, record_store) -> None:
    participant = record_store.save(synthetic_participant())
    form_view = FormView()
    qtbot.addWidget(form_view)
    existing: list[Barrier] = []
    form_view.render(FormState(
        load_form("barriers_to_work"), participant.id, TODAY,
        build=lambda s: barriers_from_answers(s.answers, participant.id, existing)))
    form_view.show()
    form_view.set_answer("identified_on", "10/01/2025")
    form_view.editor_object("categories").check("housing").setChecked(True)
    form_view.editor_object("categories").check("transport").setChecked(True)
    assert form_view.is_question_visible("housing_severity")
    assert not form_view.is_question_visible("debt_finances_severity")
    form_view.set_answer("housing_severity", "5")
    form_view.set_answer("housing_actions", "Referral to housing options\nBidding on homes")
    form_view.set_answer("transport_severity", "9")
    assert not form_view.submit()
    assert form_view.error_text("transport_severity") == "Please type a number from 1 to 5."
    form_view.set_answer("transport_severity", "3")
    with qtbot.waitSignal(form_view.sig_save) as saved:
        assert form_view.submit()
    barriers = save_all(record_store, saved.args[0])
    housing = next(b for b in barriers if b.category == "housing")
    assert housing.severity == 5 and housing.actions == ("Referral to housing options", "Bidding on homes")

    panel = BarriersPanel()
    qtbot.addWidget(panel)
    panel.show()

    def render() -> None:
        records = record_store.participant_file(participant.id, audit_view=False).records
        panel.render(participant.id, records["barrier"], records["barrier_review"], TODAY)

    render()
    panel.sig_save.connect(lambda records: (save_all(record_store, records), render()))
    assert panel.table.rowCount() == 2
    assert panel.summary.item(0).text() == "Housing: 5, not reviewed yet"
    before = panel.chart.points_for(panel.chart.series[0])

    panel.review_date.setText("31/12/2030")
    assert not panel.submit_review()
    assert "future" in panel.review_error.text()
    panel.review_date.setText("01/03/2025")
    panel.severity_input(housing.id).setValue(2)
    with qtbot.waitSignal(panel.sig_save) as reviewed:
        assert panel.submit_review()
    new_reviews = [r for r in reviewed.args[0] if isinstance(r, BarrierReview)]
    assert {r.severity for r in new_reviews} == {2, 3}
    assert panel.summary.item(0).text() == "Housing: 5 → 2 over 1 review"
    after = panel.chart.points_for(panel.chart.series[0])
    assert len(after) == len(before) + 1 and after[-1].y() > after[0].y()
    assert panel.table.item(0, 1).text() == "2"
    stored = record_store.participant_file(participant.id, audit_view=False).records["barrier"]
    assert next(b for b in stored if b.id == housing.id).status is BarrierStatus.IMPROVING


def test_recording_a_known_barrier_again_adds_a_review_not_a_duplicate() -> None:
    housing = _housing()
    records = barriers_from_answers(
        {"identified_on": date(2025, 4, 1), "categories": ("housing",), "housing_severity": 3},
        "p", [housing])
    updated, review = records
    assert updated.id == housing.id and updated.severity == 5
    assert isinstance(review, BarrierReview) and review.severity == 3 and review.barrier_id == housing.id
