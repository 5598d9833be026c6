"""The "does not beat bag-of-words" flag: evaluation summary headline and report concern."""

from __future__ import annotations

from vetllm.analysis import SOURCE_LOSS_HISTORY, analyse_losses
from vetllm.engine.evaluate import render_summary
from vetllm.evaluation_checks import baseline_verdict
from vetllm.report import report_concerns

BAG_OF_WORDS = {"accuracy": 0.94, "ci": [0.90, 0.965], "correct": 204, "n": 217,
                "description": "TF-IDF + logistic regression"}  # fmt: skip


def _metrics(lenient: float, ci: list[float]) -> dict:
    return {
        "run": "r", "data": "val", "n": 217, "skipped_rows": 0, "decoding": "free",
        "notes_per_s": 10.0, "strict_accuracy": lenient, "lenient_accuracy": lenient,
        "format_valid_rate": 1.0, "strict_ci": ci, "lenient_ci": ci, "micro_f1": 0.9,
        "macro_f1": 0.8, "per_code": [], "baselines": {"bag_of_words": BAG_OF_WORDS},
        "baselines_trained_on": "train", "baseline_verdict": baseline_verdict(lenient, ci, BAG_OF_WORDS),
    }  # fmt: skip


def test_summary_headline_says_when_the_model_does_not_beat_bag_of_words():
    tie = render_summary(_metrics(0.935, [0.89, 0.96]))
    first_lines = "\n".join(tie.splitlines()[:4])
    assert "does not beat bag-of-words: 93.5% vs 94.0%" in first_lines
    clear = render_summary(_metrics(0.99, [0.975, 0.998]))
    assert "does not" not in "\n".join(clear.splitlines()[:4])
    assert "beats the bag-of-words baseline" in clear


def test_report_concern_for_the_baseline():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=201)
    codes = {
        c["code"]: c for c in report_concerns(analysis, evaluation=_metrics(0.95, [0.91, 0.97]))
    }
    concern = codes["not_better_than_bag_of_words"]
    assert concern["severity"] == "warning" and "intervals overlap" in concern["message"]
    clear = report_concerns(analysis, evaluation=_metrics(0.99, [0.975, 0.998]))
    assert "not_better_than_bag_of_words" not in {c["code"] for c in clear}
