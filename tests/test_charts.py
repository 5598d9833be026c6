"""Charts are pure functions of plain records: check the traces, not the pixels."""

import math
import subprocess
import sys

import pytest

from vetllm.ui import charts


def _history(steps_per_epoch=10, epochs=3):
    records = []
    for step in range(1, steps_per_epoch * epochs + 1):
        records.append(
            {
                "step": step,
                "epoch": step / steps_per_epoch,
                "loss": 3.0 / step,
                "learning_rate": 1e-3 * (1 - step / (steps_per_epoch * epochs)),
            }
        )
    records.append({"step": 30, "epoch": 3.0, "eval_loss": 0.2, "eval_strict_accuracy": 0.7,
                    "eval_lenient_accuracy": 0.8})  # fmt: skip
    return records


def test_smooth_ema_identity_constant_and_bias_corrected():
    assert charts.smooth_ema([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    assert charts.smooth_ema([5.0] * 4, 0.9) == pytest.approx([5.0] * 4)
    smoothed = charts.smooth_ema([10.0, 0.0], 0.5)
    assert smoothed[0] == pytest.approx(10.0)  # no pull towards 0 at the start
    assert 0.0 < smoothed[1] < 10.0
    with pytest.raises(ValueError):
        charts.smooth_ema([1.0], 1.0)


def test_epoch_boundaries_are_the_steps_that_end_an_epoch_but_not_the_run():
    records = [{"step": s, "epoch": s / 4} for s in range(1, 13)]
    assert charts.epoch_boundaries(records) == [4.0, 8.0]
    uneven = [{"step": s, "epoch": s / 201} for s in (10, 200, 210, 603)]
    assert charts.epoch_boundaries(uneven) == [210.0]


def test_series_skips_missing_and_non_finite_values():
    steps, values = charts.series(
        [{"step": 1, "loss": 1.0}, {"step": 2, "loss": math.nan}, {"step": 3}, {"loss": 2.0}],
        "loss",
    )
    assert steps == [1.0] and values == [1.0]


def test_loss_figure_has_raw_smoothed_reference_epochs_and_plateau():
    reference = [(10, 0.05, 3.3359), (20, 0.10, 1.9347)]
    figure = charts.loss_figure(
        {"a": _history(), "b": _history()}, plateau_steps={"a": 12}, reference=reference
    )
    names = [trace.name for trace in figure.data]
    assert names == ["a (raw)", "a (smoothed)", "b (raw)", "b (smoothed)",
                     "source analysis (published)"]  # fmt: skip
    assert list(figure.data[-1].y) == [3.3359, 1.9347]
    dashed = [s for s in figure.layout.shapes if s.line.dash == "dash"]
    assert [s.x0 for s in dashed] == [12]
    dotted = [s.x0 for s in figure.layout.shapes if s.line.dash == "dot"]
    assert sorted(dotted) == [10, 10, 20, 20]  # ends of epochs 1 and 2, for both runs
    assert figure.layout.yaxis.type == "log"


def test_loss_figure_accepts_dict_reference_and_empty_runs():
    figure = charts.loss_figure({"empty": []}, reference=[{"step": 1, "epoch": 0.1, "loss": 2.0}])
    assert [t.name for t in figure.data] == ["source analysis (published)"]
    empty = charts.loss_figure({"run": []})
    assert not empty.data and "no training loss" in empty.layout.annotations[0].text


def test_eval_figure_puts_accuracy_on_the_second_axis():
    figure = charts.eval_figure({"run": _history()})
    by_name = {trace.name: trace for trace in figure.data}
    assert by_name["run eval loss"].yaxis in (None, "y")
    assert by_name["run strict accuracy"].yaxis == "y2"
    assert list(by_name["run lenient accuracy"].y) == [0.8]


def test_learning_rate_figure_follows_the_schedule():
    figure = charts.learning_rate_figure({"run": _history()})
    values = list(figure.data[0].y)
    assert len(values) == 30 and values[0] > values[-1]


def test_coverage_figure_stacks_seen_and_dropped():
    figure = charts.coverage_figure([1600, 1600], [2, 2])
    assert list(figure.data[0].y) == [1600, 1600]
    assert list(figure.data[1].y) == [2, 2]
    assert figure.layout.barmode == "stack"


def test_exposure_distribution_leakage_confusion_and_comparison():
    exposure = charts.exposure_figure([1, 1, 47], epochs=3)
    assert sorted(exposure.data[0].x) == [3, 3, 141]
    distribution = charts.distribution_figure({"PPR": 5, "FMD": 9, "HS": 1}, "labels")
    assert list(distribution.data[0].y) == ["HS", "PPR", "FMD"]  # largest at the top
    leakage = charts.leakage_figure(100, 83)
    assert list(leakage.data[0].y) == [83, 17] and "83%" in leakage.layout.title.text
    confusion = charts.confusion_figure(["1", "2"], [[3, 1], [0, 4]], {"1": "PPR"})
    assert list(confusion.data[0].x) == ["PPR", "2"]
    comparison = charts.accuracy_comparison_figure(
        [{"name": "model", "accuracy": 0.8, "ci": (0.7, 0.9)}]
    )
    assert list(comparison.data[0].error_y.array) == pytest.approx([0.1])
    assert list(comparison.data[0].error_y.arrayminus) == pytest.approx([0.1])


def test_charts_module_imports_neither_gradio_nor_torch():
    code = (
        "import sys, vetllm.ui.charts, vetllm.ui.views, vetllm.ui.exports; "
        "print('gradio' in sys.modules, 'torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
