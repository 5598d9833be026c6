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


def test_epoch_lines_fall_on_the_true_boundary_not_the_next_logged_step():
    # 201 steps per epoch, logged every 10: epoch 1 ends at step 201, not at the logged 210
    logged = [{"step": s, "epoch": s / 201} for s in range(10, 603, 10)] + [
        {"step": 603, "epoch": 3.0}
    ]
    assert charts.epoch_boundaries(logged) == pytest.approx([201.0, 402.0])
    sparse = [{"step": s, "epoch": s / 201} for s in (10, 200, 210, 603)]
    assert charts.epoch_boundaries(sparse) == pytest.approx([201.0, 402.0])


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
                     charts.REFERENCE_NAME]  # fmt: skip
    assert list(figure.data[-1].y) == [3.3359, 1.9347]
    dashed = [s for s in figure.layout.shapes if s.line.dash == "dash"]
    assert [s.x0 for s in dashed] == [12]
    dotted = [s.x0 for s in figure.layout.shapes if s.line.dash == "dot"]
    assert sorted(dotted) == [10, 10, 20, 20]  # ends of epochs 1 and 2, for both runs
    assert figure.layout.yaxis.type == "log"


def test_source_overlay_is_labelled_not_comparable():
    assert "not comparable: its loss covered the whole prompt" in charts.REFERENCE_NAME


def test_log_axis_ticks_are_readable_numbers_each_shown_once():
    figure = charts.loss_figure({"a": _history()}, reference=[(10, 0.05, 3.3359)])
    axis = figure.layout.yaxis
    labels = list(axis.ticktext)
    assert len(labels) == len(set(labels))  # not "5, 2, 1, 5, 2, 0.1"
    assert [float(t) for t in labels] == pytest.approx(list(axis.tickvals))
    assert labels == ["0.1", "0.2", "0.5", "1", "2", "5"]  # losses 0.1 to 3.34
    assert charts.log_ticks([1e-4, 5e3])[1][-2:] == ["1,000", "10,000"]  # decades only
    exposure = charts.exposure_figure([1, 1, 47], epochs=3)
    assert exposure.layout.yaxis.dtick == 1  # 1, 10, 100: no first-digit minor labels


def test_plateau_labels_of_compared_runs_do_not_overlap():
    figure = charts.loss_figure(
        {"a": _history(), "b": _history(), "c": _history()},
        plateau_steps={"a": 12, "b": 12, "c": 13},
    )
    labels = [a for a in figure.layout.annotations if a.text.startswith("plateau")]
    assert len(labels) == 3
    assert len({round(a.y, 3) for a in labels}) == 3  # one row per run


def test_loss_smoothing_is_bias_corrected_and_ends_near_the_raw_loss():
    # a loss that falls fast then stays at 0.18: the smoothed line must end at 0.18, not 0.5
    losses = [3.0, 1.0, 0.4, 0.2] + [0.18] * 8
    figure = charts.loss_figure({"a": [{"step": i + 1, "loss": v} for i, v in enumerate(losses)]})
    smoothed = list(figure.data[1].y)
    assert smoothed[0] == pytest.approx(3.0)  # no pull towards 0 at the start
    assert smoothed[-1] == pytest.approx(0.18, abs=0.01)


def test_loss_figure_accepts_dict_reference_and_empty_runs():
    figure = charts.loss_figure({"empty": []}, reference=[{"step": 1, "epoch": 0.1, "loss": 2.0}])
    assert [t.name for t in figure.data] == [charts.REFERENCE_NAME]
    empty = charts.loss_figure({"run": []})
    assert not empty.data and "no training loss" in empty.layout.annotations[0].text


def test_eval_figure_puts_accuracy_on_the_second_axis():
    figure = charts.eval_figure({"run": _history()})
    by_name = {trace.name: trace for trace in figure.data}
    assert by_name["run eval loss"].yaxis in (None, "y")
    assert by_name["run strict accuracy"].yaxis == "y2"
    assert list(by_name["run lenient accuracy"].y) == [0.8]
    assert "not recorded" in figure.layout.title.text  # never implies a size it does not know


def test_eval_figure_states_its_n_and_styles_loss_apart_from_accuracy():
    history = _history()
    history[-1]["eval_n"] = 64
    figure = charts.eval_figure({"run": history})
    assert "lenient accuracy on 64 validation notes" in figure.layout.title.text
    by_name = {trace.name: trace for trace in figure.data}
    loss, lenient = by_name["run eval loss"], by_name["run lenient accuracy on 64 notes"]
    strict = by_name["run strict accuracy on 64 notes"]
    assert loss.line.color != lenient.line.color
    assert loss.line.dash not in (lenient.line.dash, strict.line.dash)
    assert loss.marker.symbol != lenient.marker.symbol
    other = _history()
    other[-1]["eval_n"] = 217
    both = charts.eval_figure({"a": history, "b": other})
    assert "per run in the legend" in both.layout.title.text


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
