"""Calibration of answer confidences: temperature scaling, ECE, reliability, abstain threshold.

A confidence is calibrated when, of the answers given with confidence about 0.8, about 80% are
right. Temperature scaling rescales each confidence's log-odds by one number T fitted on the
validation split (the answers' correctness is the target, binary negative log-likelihood the
loss): `sigmoid(logit(c) / T)`. T > 1 softens over-confident answers, T < 1 sharpens shy ones,
and the order of answers never changes, so accuracy and the accuracy-vs-coverage curve stay the
same; only what the numbers mean changes.

Expected calibration error (ECE): confidences split into equal-width bins; the share-weighted
mean of |accuracy - mean confidence| over the bins. The abstain threshold is the lowest
confidence at which the answers kept (confidence >= threshold) reach a target accuracy on
validation, i.e. the most coverage that target allows. Pure Python: no torch.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from pathlib import Path

from vetllm.errors import VetLLMError

# How a run answers (engine/predict.py): generate then post-process, or only catalogue labels.
# Calibration keeps one temperature per decoding; the app, CLI and engine all accept these.
DECODINGS = ("free", "constrained")
EPSILON = 1e-6  # confidences are clipped to [EPSILON, 1 - EPSILON] before taking log-odds
TEMPERATURE_RANGE = (0.05, 20.0)  # search interval of T; outside it the fit is meaningless
DEFAULT_BINS = 10
COVERAGE_POINTS = (1.0, 0.95, 0.9, 0.8, 0.7, 0.6, 0.5)


def _check_pairs(confidences: Sequence[float], correct: Sequence[bool]) -> None:
    problems = []
    if len(confidences) != len(correct):
        problems.append(f"{len(confidences)} confidences but {len(correct)} verdicts")
    bad = [c for c in confidences if not (isinstance(c, (int, float)) and 0.0 <= c <= 1.0)]
    if bad:
        problems.append(f"confidences must lie in [0, 1], got e.g. {bad[0]!r}")
    if problems:
        raise VetLLMError("calibration: " + "; ".join(problems))


def scale_confidence(confidence: float, temperature: float) -> float:
    """`sigmoid(logit(confidence) / temperature)`; T = 1 returns the confidence unchanged."""
    if temperature == 1.0:
        return float(confidence)
    c = min(max(float(confidence), EPSILON), 1.0 - EPSILON)
    z = math.log(c / (1.0 - c)) / temperature
    return 1.0 / (1.0 + math.exp(-z)) if z >= 0 else math.exp(z) / (1.0 + math.exp(z))


def negative_log_likelihood(
    confidences: Sequence[float], correct: Sequence[bool], temperature: float = 1.0
) -> float:
    """Mean binary NLL (nats) of the verdicts under the (scaled) confidences."""
    _check_pairs(confidences, correct)
    if not confidences:
        return 0.0
    total = 0.0
    for c, ok in zip(confidences, correct, strict=True):
        p = min(max(scale_confidence(c, temperature), EPSILON), 1.0 - EPSILON)
        total -= math.log(p if ok else 1.0 - p)
    return total / len(confidences)


def fit_temperature(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """The T in TEMPERATURE_RANGE that minimises the NLL (golden-section search on log T).

    The NLL of a one-parameter logistic model is convex in 1/T, so one minimum exists; with
    no answers, or all right or all wrong, there is nothing to fit and T = 1 is returned.
    """
    _check_pairs(confidences, correct)
    if not confidences or all(correct) or not any(correct):
        return 1.0
    low, high = (math.log(t) for t in TEMPERATURE_RANGE)
    ratio = (math.sqrt(5.0) - 1.0) / 2.0
    a, b = high - ratio * (high - low), low + ratio * (high - low)

    def loss(log_t: float) -> float:
        return negative_log_likelihood(confidences, correct, math.exp(log_t))

    fa, fb = loss(a), loss(b)
    for _ in range(60):  # the interval shrinks by 0.618 each step: 60 steps reach ~1e-12
        if fa <= fb:
            high, b, fb = b, a, fa
            a = high - ratio * (high - low)
            fa = loss(a)
        else:
            low, a, fa = a, b, fb
            b = low + ratio * (high - low)
            fb = loss(b)
    best = math.exp((low + high) / 2.0)
    # Never return a T worse than leaving the confidences alone.
    return best if loss(math.log(best)) <= loss(0.0) else 1.0


def reliability_table(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = DEFAULT_BINS
) -> list[dict]:
    """One row per non-empty equal-width bin: low, high, n, mean confidence, accuracy."""
    _check_pairs(confidences, correct)
    if n_bins < 1:
        raise VetLLMError(f"calibration: n_bins must be 1 or more, got {n_bins}")
    bins: list[list[tuple[float, bool]]] = [[] for _ in range(n_bins)]
    for c, ok in zip(confidences, correct, strict=True):
        bins[min(int(c * n_bins), n_bins - 1)].append((c, bool(ok)))
    rows = []
    for index, members in enumerate(bins):
        if members:
            rows.append(
                {
                    "low": index / n_bins,
                    "high": (index + 1) / n_bins,
                    "n": len(members),
                    "mean_confidence": sum(c for c, _ in members) / len(members),
                    "accuracy": sum(ok for _, ok in members) / len(members),
                }
            )
    return rows


def expected_calibration_error(
    confidences: Sequence[float], correct: Sequence[bool], n_bins: int = DEFAULT_BINS
) -> float:
    """Share-weighted mean |accuracy - mean confidence| over equal-width confidence bins."""
    rows = reliability_table(confidences, correct, n_bins)
    n = sum(row["n"] for row in rows)
    if not n:
        return 0.0
    return sum(row["n"] * abs(row["accuracy"] - row["mean_confidence"]) for row in rows) / n


def selective_table(
    confidences: Sequence[float],
    correct: Sequence[bool],
    coverages: Sequence[float] = COVERAGE_POINTS,
) -> list[dict]:
    """Accuracy when only the most confident answers are kept, at each target coverage.

    Each row: the coverage asked for, the confidence threshold that gives it, how many answers
    are kept and their accuracy. Ties at the threshold are all kept, so `answered` may exceed
    the target a little.
    """
    _check_pairs(confidences, correct)
    ranked = sorted(zip(confidences, correct, strict=True), key=lambda pair: -pair[0])
    rows = []
    for coverage in coverages:
        if not ranked:
            break
        keep = max(1, math.ceil(coverage * len(ranked)))
        threshold = ranked[keep - 1][0]
        kept = [ok for c, ok in ranked if c >= threshold]
        rows.append(
            {
                "target_coverage": coverage,
                "threshold": threshold,
                "answered": len(kept),
                "coverage": len(kept) / len(ranked),
                "accuracy": sum(kept) / len(kept),
            }
        )
    return rows


def choose_threshold(
    confidences: Sequence[float], correct: Sequence[bool], target_accuracy: float
) -> dict:
    """The lowest threshold whose kept answers reach `target_accuracy`: the most coverage.

    Returns {"threshold", "coverage", "accuracy", "answered"}; threshold None when no threshold
    reaches the target (then nothing is gained by abstaining on confidence).
    """
    _check_pairs(confidences, correct)
    if not 0.0 < target_accuracy <= 1.0:
        raise VetLLMError(
            f"target accuracy: got {target_accuracy!r}; use a share above 0 and at most 1, e.g. 0.95"
        )
    ranked = sorted(zip(confidences, correct, strict=True), key=lambda pair: -pair[0])
    best = {"threshold": None, "coverage": 0.0, "accuracy": None, "answered": 0}
    right = 0
    for index, (c, ok) in enumerate(ranked):
        right += bool(ok)
        tied_next = index + 1 < len(ranked) and ranked[index + 1][0] == c
        if tied_next:
            continue  # a threshold keeps every answer with this confidence, or none
        answered = index + 1
        if right / answered >= target_accuracy:
            best = {
                "threshold": c,
                "coverage": answered / len(ranked),
                "accuracy": right / answered,
                "answered": answered,
            }
    return best


CALIBRATION_FILE = "calibration.json"  # in the run folder, written by engine/calibrate.py


def load_calibration(run_path: str | Path) -> dict:
    """The run's calibration.json, or {} when it has none (or it is unreadable)."""
    try:
        data = json.loads((Path(run_path) / CALIBRATION_FILE).read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}
