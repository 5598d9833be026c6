"""Calibration arithmetic: ECE on hand-computed examples, temperature fit, threshold choice."""

from __future__ import annotations

import math

import pytest

from vetllm.calibration import (
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_table,
    scale_confidence,
    selective_table,
)
from vetllm.errors import VetLLMError

CONFIDENCES = [0.95, 0.85, 0.75, 0.35]
CORRECT = [True, False, True, True]


def test_ece_matches_a_hand_computed_example():
    # 10 bins: each answer alone in its bin; |acc - conf| = 0.05, 0.85, 0.25, 0.65 -> mean 0.45
    assert expected_calibration_error(CONFIDENCES, CORRECT) == pytest.approx(0.45)
    # 2 bins: [0.35] -> 0.65; [0.95, 0.85, 0.75] acc 2/3 conf 0.85 -> 0.1833 (x3); / 4 = 0.3
    assert expected_calibration_error(CONFIDENCES, CORRECT, n_bins=2) == pytest.approx(0.3)


def test_reliability_table_rows():
    rows = reliability_table(CONFIDENCES, CORRECT, n_bins=2)
    assert [(r["low"], r["high"], r["n"]) for r in rows] == [(0.0, 0.5, 1), (0.5, 1.0, 3)]
    assert rows[1]["accuracy"] == pytest.approx(2 / 3)
    assert rows[1]["mean_confidence"] == pytest.approx(0.85)
    # a confidence of exactly 1.0 belongs to the last bin, not a bin past the end
    assert reliability_table([1.0], [True], n_bins=4)[0]["low"] == 0.75


def test_a_perfectly_calibrated_set_has_zero_ece():
    confidences = [0.25] * 4 + [0.75] * 4
    correct = [True, False, False, False, True, True, True, False]
    assert expected_calibration_error(confidences, correct) == pytest.approx(0.0)


def test_temperature_fit_lowers_nll_and_finds_the_analytic_optimum():
    # every answer at 0.99 but only 70% right: the best scaled confidence is 0.7 exactly,
    # reached at T = logit(0.99) / logit(0.7)
    confidences, correct = [0.99] * 10, [True] * 7 + [False] * 3
    temperature = fit_temperature(confidences, correct)
    expected = math.log(0.99 / 0.01) / math.log(0.7 / 0.3)
    assert temperature == pytest.approx(expected, rel=1e-3)
    assert scale_confidence(0.99, temperature) == pytest.approx(0.7, abs=1e-4)
    before = negative_log_likelihood(confidences, correct)
    after = negative_log_likelihood(confidences, correct, temperature)
    assert after < before - 0.5  # 1.39 nats -> 0.61 nats
    assert expected_calibration_error(
        [scale_confidence(c, temperature) for c in confidences], correct
    ) < expected_calibration_error(confidences, correct)


def test_temperature_sharpens_shy_confidences_and_keeps_the_order():
    confidences = [0.6, 0.55, 0.6, 0.45, 0.4, 0.6]
    correct = [True, True, True, False, False, True]
    temperature = fit_temperature(confidences, correct)
    assert temperature < 1.0
    scaled = [scale_confidence(c, temperature) for c in confidences]
    assert sorted(range(6), key=lambda i: scaled[i]) == sorted(
        range(6), key=lambda i: confidences[i]
    )


def test_nothing_to_fit_gives_temperature_one():
    assert fit_temperature([0.9, 0.8], [True, True]) == 1.0
    assert fit_temperature([], []) == 1.0
    assert scale_confidence(0.42, 1.0) == 0.42


def test_bad_inputs_are_clear_errors():
    with pytest.raises(VetLLMError, match="2 confidences but 1 verdicts"):
        expected_calibration_error([0.1, 0.2], [True])
    with pytest.raises(VetLLMError, match=r"\[0, 1\]"):
        fit_temperature([1.5], [True])
    with pytest.raises(VetLLMError, match="target accuracy"):
        choose_threshold([0.5], [True], 1.5)


def test_choose_threshold_takes_the_most_coverage_that_reaches_the_target():
    confidences = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5]
    correct = [True, True, True, False, True, False]
    chosen = choose_threshold(confidences, correct, 0.75)
    # keeping >= 0.6: 4 of 5 right (0.8); keeping all: 4 of 6 (0.67) misses the target
    assert chosen == {"threshold": 0.6, "coverage": 5 / 6, "accuracy": 0.8, "answered": 5}
    assert choose_threshold(confidences, correct, 1.0)["threshold"] == 0.8
    assert choose_threshold([0.9, 0.8], [False, False], 0.5)["threshold"] is None


def test_choose_threshold_never_splits_tied_confidences():
    # the first two tie: a threshold keeps both (1 of 2 right) or neither
    chosen = choose_threshold([0.9, 0.9, 0.5], [True, False, False], 0.9)
    assert chosen["threshold"] is None


def test_selective_table_accuracy_rises_as_coverage_falls():
    confidences = [0.95, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1]
    correct = [True, True, True, True, False, True, False, False, True, False]
    rows = selective_table(confidences, correct, coverages=(1.0, 0.5))
    assert rows[0] == {"target_coverage": 1.0, "threshold": 0.1, "answered": 10,
                       "coverage": 1.0, "accuracy": 0.6}  # fmt: skip
    assert rows[1]["answered"] == 5 and rows[1]["accuracy"] == pytest.approx(0.8)
