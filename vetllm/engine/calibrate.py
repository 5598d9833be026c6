"""Calibrate a run on its validation split: temperatures, threshold, RUN_DIR/calibration.json.

For each decoding the run's model answers every validation note uncalibrated; the answers'
lenient verdicts and confidences fit one temperature (vetllm.calibration), and, when the run
asks for it (`abstain_target_accuracy`), the abstain threshold that reaches that accuracy on
validation with the most coverage. The file also keeps the expected calibration error before
and after (after: fitted on one half of the distinct notes, measured on the other, both ways,
so the number is not judged on the notes it was fitted to), reliability tables and the
accuracy-vs-coverage table. Called at the end of training and by `vetllm calibrate --run R`;
Predictor.from_run applies the file.
"""

from __future__ import annotations

import json
from pathlib import Path

from vetllm.calibration import (
    CALIBRATION_FILE,
    DECODINGS,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    negative_log_likelihood,
    reliability_table,
    scale_confidence,
    selective_table,
)
from vetllm.catalogue import Catalogue
from vetllm.errors import VetLLMError
from vetllm.runs.directory import atomic_write_text


def calibrate_run(
    run_dir: str | Path,
    records=None,
    target_accuracy: float | None = None,
    decodings: tuple[str, ...] = DECODINGS,
    predictor=None,
) -> dict:
    """Fit and write RUN_DIR/calibration.json; returns its content.

    Args:
        records: validation records; default: the run's val_data.
        target_accuracy: choose an abstain threshold for this accuracy; default: the run's
            `abstain_target_accuracy` setting (None: no confidence threshold).
    """
    from vetllm.data.records import note_key
    from vetllm.engine.evaluate import _run_config, load_records
    from vetllm.engine.predict import Predictor
    from vetllm.evaluation_checks import small_validation_warning
    from vetllm.metrics import score_predictions

    run_path = Path(run_dir)
    cfg = _run_config(run_path)
    if records is None:
        if cfg is None or not cfg.val_data:
            raise VetLLMError("calibrate: the run has no val_data; give validation records")
        records = load_records(cfg.val_data, _catalogue(cfg), "validation")[0]
    if target_accuracy is None and cfg is not None:
        target_accuracy = getattr(cfg, "abstain_target_accuracy", None)
    predictor = predictor or Predictor.from_run(run_path)
    saved = predictor.temperatures, predictor.policy
    predictor.temperatures, predictor.policy = {}, None  # raw confidences, nothing abstains
    keys = [note_key(r.note) for r in records]
    result = {"n_notes": len(records), "n_distinct": len(set(keys)), "temperatures": {}}
    result["thresholds"], result["decodings"] = {}, {}
    result["target_accuracy"] = target_accuracy
    try:
        for decoding in decodings:
            predictions = predictor.predict([r.note for r in records], decoding)
            scores = score_predictions(
                [(p.raw_output, list(r.labels)) for p, r in zip(predictions, records, strict=True)],
                predictor.catalogue,
            )
            confidences = [p.confidence for p in predictions]
            correct = [o.lenient_correct for o in scores.outcomes]
            report = calibration_report(confidences, correct, keys, target_accuracy)
            result["decodings"][decoding] = report
            result["temperatures"][decoding] = report["temperature"]
            result["thresholds"][decoding] = report.get("threshold", {}).get("threshold")
    finally:
        predictor.temperatures, predictor.policy = saved
    warning = small_validation_warning(result["n_distinct"], "choose a threshold")
    result["warnings"] = [warning] if warning else []
    atomic_write_text(run_path / CALIBRATION_FILE, json.dumps(result, indent=2))
    predictor.temperatures = dict(result["temperatures"])
    if predictor.policy is not None:
        predictor.policy.thresholds = {k: v for k, v in result["thresholds"].items() if v}
        predictor.policy.target_accuracy = target_accuracy
    return result


def calibration_report(
    confidences: list[float], correct: list[bool], keys: list[str], target: float | None
) -> dict:
    """Temperature, ECE/NLL before and after, reliability and selective tables, threshold."""
    temperature = fit_temperature(confidences, correct)
    scaled = [scale_confidence(c, temperature) for c in confidences]
    report = {
        "temperature": temperature,
        "accuracy": sum(correct) / len(correct) if correct else 0.0,
        "ece_before": expected_calibration_error(confidences, correct),
        "ece_after_in_sample": expected_calibration_error(scaled, correct),
        "ece_after_cross_fitted": _cross_fitted_ece(confidences, correct, keys),
        "nll_before": negative_log_likelihood(confidences, correct),
        "nll_after": negative_log_likelihood(scaled, correct),
        "reliability_before": reliability_table(confidences, correct),
        "reliability_after": reliability_table(scaled, correct),
        "selective": selective_table(scaled, correct),
    }
    if target is not None:
        report["threshold"] = choose_threshold(scaled, correct, target)
    return report


def _cross_fitted_ece(confidences: list[float], correct: list[bool], keys: list[str]) -> float:
    """ECE of temperatures fitted on one half of the distinct notes, applied to the other."""
    import zlib

    halves = [zlib.crc32(key.encode("utf-8")) % 2 for key in keys]  # stable note-level split
    scaled = list(confidences)
    for half in (0, 1):
        fit = [i for i, h in enumerate(halves) if h != half]
        temperature = fit_temperature([confidences[i] for i in fit], [correct[i] for i in fit])
        for i, h in enumerate(halves):
            if h == half:
                scaled[i] = scale_confidence(confidences[i], temperature)
    return expected_calibration_error(scaled, correct)


def calibrate_at_finish(run_path: Path, cfg, records, log) -> None:
    """Calibrate right after training; a failure is logged and never fails the finished run."""
    if not records:
        return
    try:
        result = calibrate_run(run_path, records, decodings=("free",))  # the served default
    except Exception as error:  # noqa: BLE001 - the trained model must not be lost to it
        log(f"calibration skipped ({type(error).__name__}: {error}); run `vetllm calibrate`")
        return
    for decoding, report in result["decodings"].items():
        log(
            f"calibration ({decoding}): temperature {report['temperature']:.3f}, ECE "
            f"{report['ece_before']:.3f} -> {report['ece_after_cross_fitted']:.3f} (cross-fitted)"
        )


def _catalogue(cfg) -> Catalogue:
    from vetllm.catalogue import load_catalogue

    return load_catalogue(cfg.catalogue if cfg else None)
