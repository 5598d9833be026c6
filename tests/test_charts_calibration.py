"""The reliability diagram and the accuracy-vs-coverage chart, from the calibration tables."""

from __future__ import annotations

from vetllm.calibration import reliability_table, selective_table
from vetllm.ui import charts

CONFIDENCES = [0.95, 0.9, 0.85, 0.7, 0.6, 0.4, 0.3]
CORRECT = [True, True, False, True, False, True, False]


def test_reliability_figure_has_the_diagonal_and_one_point_per_bin():
    rows = reliability_table(CONFIDENCES, CORRECT, n_bins=5)
    figure = charts.reliability_figure(rows)
    diagonal, model = figure.data
    assert list(diagonal.x) == [0, 1] and list(diagonal.y) == [0, 1]
    assert list(model.x) == [row["mean_confidence"] for row in rows]
    assert list(model.y) == [row["accuracy"] for row in rows]
    assert len(model.marker.size) == len(rows)
    assert charts.reliability_figure([]).data[1].x in (None, ())


def test_coverage_figure_runs_left_to_right_and_marks_the_threshold():
    rows = selective_table(CONFIDENCES, CORRECT, coverages=(1.0, 0.5, 0.3))
    figure = charts.coverage_accuracy_figure(rows, {"coverage": 0.43, "accuracy": 1.0})
    curve, star = figure.data
    assert list(curve.x) == sorted(curve.x) and curve.x[-1] == 1.0
    assert curve.y[-1] == rows[0]["accuracy"]
    assert (star.x[0], star.y[0]) == (0.43, 1.0)
    assert len(charts.coverage_accuracy_figure(rows, {"coverage": None}).data) == 1
