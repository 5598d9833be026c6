"""Grouped bootstrap, distinct-note accuracy, and the evaluation's warnings and baseline flag."""

from __future__ import annotations

import pytest

from vetllm.evaluation_checks import (
    baseline_verdict,
    dominance_warning,
    grouped_accuracy,
    label_support_warnings,
    paired_gap,
    small_validation_warning,
)


def test_distinct_accuracy_counts_each_note_once():
    # note a: 8 records all right; b, c: one record each, wrong
    keys = ["a"] * 8 + ["b", "c"]
    correct = [True] * 8 + [False, False]
    result = grouped_accuracy(keys, correct, resamples=200)
    assert result["record_accuracy"] == pytest.approx(0.8)
    assert result["distinct_accuracy"] == pytest.approx(1 / 3)
    assert (result["n_records"], result["n_distinct"]) == (10, 3)


def test_grouped_bootstrap_is_wider_than_treating_repeats_as_independent():
    # 20 notes, each repeated 10 times, 15 right: resampling notes, not records
    keys = [f"n{i}" for i in range(20) for _ in range(10)]
    correct = [i < 15 for i in range(20) for _ in range(10)]
    grouped = grouped_accuracy(keys, correct, seed=1)
    ungrouped = grouped_accuracy([str(i) for i in range(200)], correct, seed=1)
    width = lambda ci: ci[1] - ci[0]  # noqa: E731
    assert width(grouped["record_ci"]) > 1.8 * width(ungrouped["record_ci"])
    low, high = grouped["record_ci"]
    assert low < 0.75 < high and 0.5 < low and high <= 0.95


def test_grouped_bootstrap_is_deterministic_and_handles_edges():
    keys, correct = ["a", "b", "a"], [True, False, True]
    assert grouped_accuracy(keys, correct, seed=3) == grouped_accuracy(keys, correct, seed=3)
    assert grouped_accuracy([], [])["n_records"] == 0
    with pytest.raises(ValueError, match="2 keys but 1 verdicts"):
        grouped_accuracy(["a", "b"], [True])


def test_paired_gap_is_exact_and_its_interval_is_grouped_by_note():
    # 10 notes x 10 copies: A right on all, B wrong on one whole note -> gap +0.1.
    keys = [f"n{i}" for i in range(10) for _ in range(10)]
    a = [True] * 100
    b = [key != "n0" for key in keys]
    result = paired_gap(keys, a, b, seed=1)
    assert result["gap"] == pytest.approx(0.1)
    low, high = result["ci"]
    assert low == 0.0 and 0.1 < high <= 0.4  # a resample may miss n0 (gap 0), or draw it often
    # The same 10 wrong records spread over 10 notes of 100 distinct: a narrower interval.
    spread = paired_gap([f"n{i}" for i in range(100)], a, [i % 10 != 0 for i in range(100)])
    assert spread["gap"] == pytest.approx(0.1)
    assert spread["ci"][1] - spread["ci"][0] < high - low
    # Identical answerers: no gap, no interval; swapping them flips the sign.
    assert paired_gap(keys, b, b) == {"gap": 0.0, "ci": [0.0, 0.0]}
    assert paired_gap(keys, b, a, seed=1)["gap"] == pytest.approx(-0.1)
    assert paired_gap([], [], []) == {"gap": 0.0, "ci": [0.0, 0.0]}
    with pytest.raises(ValueError, match="2 keys, 2 and 1 verdicts"):
        paired_gap(["a", "b"], [True, True], [True])


def test_dominance_warning_fires_when_a_few_notes_hold_most_records():
    # the case: 88 notes, 8 of them 41% of 300 records
    keys = [f"top{i}" for i in range(8) for _ in range(15)] + [f"n{i}" for i in range(80)]
    keys += [f"n{i}" for i in range(80)] + [f"n{i}" for i in range(20)]
    message = dominance_warning(keys)
    assert message and "9 of 88 distinct notes" in message
    assert dominance_warning([f"n{i}" for i in range(50) for _ in range(2)]) is None


def test_small_validation_and_label_support_warnings():
    assert "grouped by note" in small_validation_warning(88)
    assert small_validation_warning(150) is None
    train = [["A"]] * 30 + [["B"]] * 4
    warnings = label_support_warnings([["A"], ["B"], ["C"], ["C"]], train)
    assert any("C (2 evaluated records) never occur" in w for w in warnings)
    assert any("B (4)" in w for w in warnings)
    assert label_support_warnings([["A"]], train) == []


@pytest.mark.parametrize(
    "model, model_ci, beats, words",
    [
        (0.95, [0.93, 0.97], True, "beats the bag-of-words"),
        (0.92, [0.88, 0.95], False, "does not clearly beat"),
        (0.85, [0.80, 0.89], False, "does not beat bag-of-words"),
    ],
)
def test_baseline_flag(model, model_ci, beats, words):
    verdict = baseline_verdict(model, model_ci, {"accuracy": 0.90, "ci": [0.86, 0.92]})
    assert verdict["beats_bag_of_words"] is beats
    assert words in verdict["sentence"]
