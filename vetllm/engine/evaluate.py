"""Evaluate a trained run on a data set: predictions, scores beside baselines, and a summary.

Writes RUN_DIR/eval/ (or `out_dir`): `predictions.jsonl` (one line per note: note, gold, raw
output, post-processed codes, strict and lenient verdicts, confidences), `metrics.json` (the
model's scores from `score_predictions` and the three baselines fitted on the run's own training
data, side by side) and `summary.md`. Files are written atomically so the app never reads half a
file. Note text goes only into predictions.jsonl, never to stdout. Training's final evaluation is
`evaluate_at_finish` (the same files; a failure is logged and never fails the finished run), and
`headline_metrics` the part of the result kept as the run's `final_metrics`.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.config import BUNDLED_DATA
from vetllm.data.records import Record
from vetllm.data.writing import jsonl_text
from vetllm.errors import VetLLMError
from vetllm.runs.directory import atomic_write_text

# The scores kept in status.json and the run card as `final_metrics` (seeds, serving, the app).
HEADLINE_KEYS = ("n", "strict_accuracy", "lenient_accuracy", "format_valid_rate")


def evaluate_run(
    run_dir: str | Path,
    data_path_or_records: str | Path | list[Record],
    decoding: str = "free",
    out_dir: str | Path | None = None,
    *,
    batch_size: int = 16,
    predictor=None,
    with_baselines: bool = True,
    data_name: str | None = None,
) -> dict:
    """Predict every note of the data set with the run's model, score it, write eval files.

    Args:
        run_dir: a completed run directory (config.yaml + model/).
        data_path_or_records: a JSON/JSONL/CSV/Parquet file in the source format, a Hub
            dataset (`hub:user/name[:split]`), "bundled" (the repository's validation
            examples), or records already loaded.
        decoding: "free" or "constrained" (see vetllm.engine.predict).
        out_dir: where to write; RUN_DIR/eval by default.
        predictor: an already loaded Predictor for this run (saves reloading the model).
        with_baselines: fit the majority / per-species / bag-of-words baselines on the run's
            training data and score them on the same notes.
        data_name: how to name the data in the summary (default: the file name).

    Returns:
        The content of metrics.json (scores, baselines, timing, file names).
    """
    from vetllm.engine.predict import Predictor
    from vetllm.evaluation_checks import baseline_verdict
    from vetllm.metrics import coverage_scores, score_predictions

    run_path = Path(run_dir)
    cfg = _run_config(run_path)
    catalogue = load_catalogue(cfg.catalogue if cfg else None)
    records, default_name, skipped = load_records(data_path_or_records, catalogue, "validation")
    predictor = predictor or Predictor.from_run(run_path)
    started = time.perf_counter()
    predictions = predictor.predict([r.note for r in records], decoding, batch_size=batch_size)
    elapsed_s = time.perf_counter() - started
    pairs = list(zip(predictions, records, strict=True))
    # An abstention is a wrong answer here, so the accuracies compare with the baselines.
    scores = score_predictions(
        [("" if p.abstained else p.raw_output, list(r.labels)) for p, r in pairs], catalogue
    )
    answers = score_predictions([(p.raw_output, list(r.labels)) for p, r in pairs], catalogue)
    metrics = {
        "run": run_path.name,
        "data": data_name or default_name,
        "decoding": decoding,
        "skipped_rows": skipped,
        "predict_seconds": round(elapsed_s, 3),
        "notes_per_s": round(len(records) / elapsed_s, 2) if elapsed_s > 0 else None,
        # Notes longer than the model's prompt budget were cut before prediction.
        "truncated_notes": sum(bool(p.warnings) for p in predictions),
        **scores.to_dict(),
    }
    # The output format is the model's, judged before abstaining ("" is not its answer).
    metrics["format_valid"] = answers.format_valid
    metrics["format_valid_rate"] = answers.format_valid_rate
    metrics.update(
        coverage_scores(
            [o.lenient_correct for o in scores.outcomes], [not p.abstained for p in predictions]
        )
    )
    metrics.update(_selective_numbers(predictions, answers, records))
    if with_baselines and cfg is not None:
        metrics.update(_baselines_beside(cfg, records, catalogue))
    metrics["warnings"] = _warnings(metrics, records)
    bag_of_words = metrics.get("baselines", {}).get("bag_of_words")
    if bag_of_words:
        metrics["baseline_verdict"] = baseline_verdict(
            metrics["lenient_accuracy"], metrics["lenient_ci"], bag_of_words
        )
    target = Path(out_dir) if out_dir else run_path / "eval"
    target.mkdir(parents=True, exist_ok=True)
    _write_predictions(target / "predictions.jsonl", records, predictions, scores.outcomes)
    metrics["files"] = {"predictions": "predictions.jsonl", "summary": "summary.md"}
    atomic_write_text(target / "metrics.json", json.dumps(metrics, indent=2, ensure_ascii=False))
    atomic_write_text(target / "summary.md", render_summary(metrics))
    return metrics


def evaluate_at_finish(run_path: Path, records: list[Record], log) -> dict | None:
    """Free-decoding evaluation right after training, into RUN_DIR/eval; None if it failed.

    A failure is logged and never fails the finished run (its served step's validation scores
    stand), as calibration at finish does.
    """
    try:
        metrics = evaluate_run(run_path, records, decoding="free")
    except Exception as error:  # noqa: BLE001 - the trained model must not be lost to it
        log(
            f"final evaluation skipped ({type(error).__name__}: {error}); retry with "
            "`vetllm evaluate --run RUN_DIR --data VALIDATION_FILE`"
        )
        return None
    log(
        "validation (free decoding): strict {strict_accuracy:.3f}, lenient {lenient_accuracy:.3f} "
        "on {n} notes".format(**metrics)
    )
    return metrics


def headline_metrics(metrics: dict | None) -> dict | None:
    """n, strict and lenient accuracy and format validity of an evaluate_run result."""
    if not metrics:
        return None
    return {key: metrics[key] for key in HEADLINE_KEYS if key in metrics}


def _selective_numbers(predictions, answers, records) -> dict:
    """Calibration and accuracy-vs-coverage of the model's answers, and distinct-note accuracy.

    Calibration is judged on the answers the model would give (before abstaining), against
    their own verdicts; accuracy over distinct notes counts abstentions as wrong, as the
    headline accuracies do.
    """
    from vetllm.calibration import expected_calibration_error, reliability_table, selective_table
    from vetllm.data.records import note_key
    from vetllm.evaluation_checks import grouped_accuracy

    confidences = [p.confidence or 0.0 for p in predictions]
    correct = [o.lenient_correct for o in answers.outcomes]
    verdicts = [
        ok and not p.abstained for p, ok in zip(predictions, correct, strict=True)
    ]  # abstained: wrong
    return {
        "expected_calibration_error": expected_calibration_error(confidences, correct),
        "reliability": reliability_table(confidences, correct),
        "selective": selective_table(confidences, correct),
        "abstain_reasons": _reason_counts(predictions),
        "distinct_notes": grouped_accuracy([note_key(r.note) for r in records], verdicts),
    }


def _reason_counts(predictions) -> dict:
    """How many notes abstained for each kind of reason."""
    from vetllm.abstention import reason_kind

    counts: dict[str, int] = {}
    for prediction in predictions:
        if prediction.abstained and prediction.reason:
            kind = reason_kind(prediction.reason)
            counts[kind] = counts.get(kind, 0) + 1
    return counts


def _warnings(metrics: dict, records: list[Record]) -> list[str]:
    from vetllm.data.records import note_key
    from vetllm.evaluation_checks import dominance_warning, small_validation_warning

    warnings = [dominance_warning([note_key(r.note) for r in records])]
    warnings.append(small_validation_warning(metrics["distinct_notes"]["n_distinct"]))
    warnings += metrics.pop("label_warnings", [])
    return [w for w in warnings if w]


def _run_config(run_path: Path):
    """The run's TrainConfig, or None when the folder has no config.yaml (e.g. in tests)."""
    from vetllm.config import load_config

    if not (run_path / "config.yaml").is_file():
        return None
    return load_config(run_path / "config.yaml")


def load_records(source, catalogue: Catalogue, which: str) -> tuple[list[Record], str, int]:
    """(records, a display name, rows skipped) for a path, a Hub source, "bundled" or records.

    `which` ("training" or "validation") picks the bundled file; bad rows are skipped and counted.
    """
    if isinstance(source, (list, tuple)):
        if not source or not all(isinstance(r, Record) for r in source):
            raise VetLLMError("data: expected a non-empty list of Record objects or a file path")
        return list(source), f"{len(source)} records", 0
    from vetllm.data.hf_datasets import is_hub_source
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.synth import bundled_examples

    if str(source) == BUNDLED_DATA:
        train, val = bundled_examples()
        path, name = (val if which == "validation" else train), f"bundled {which} examples"
    else:
        path = Path(source)
        name = str(source) if is_hub_source(source) else path.name
    if not is_hub_source(source) and not path.is_file():
        raise VetLLMError(
            f"data: file {name} not found; give a JSON, JSONL, CSV or Parquet file, "
            "hub:USER/NAME[:SPLIT] or 'bundled'"
        )
    loaded = load_dataset_file(path, on_error="skip", catalogue=catalogue, display_name=name)
    if not loaded.records:
        raise VetLLMError(f"data: {name} has no usable records ({loaded.skipped_rows} skipped)")
    return loaded.records, name, loaded.skipped_rows


def _baselines_beside(cfg, records: list[Record], catalogue: Catalogue) -> dict:
    """Baselines fitted on the run's training data, plus how many eval notes that data holds."""
    from vetllm.baselines import run_baselines
    from vetllm.data.records import note_key
    from vetllm.evaluation_checks import label_support_warnings

    try:
        train, train_name, _ = load_records(cfg.data, catalogue, "training")
    except VetLLMError as error:
        return {"baselines": {}, "baselines_error": str(error)}
    try:
        results = run_baselines(train, records, seed=cfg.seed)
    except ImportError as error:  # scikit-learn is optional on a bare GPU machine
        return {"baselines": {}, "baselines_error": f"baselines need {error.name}; install it"}
    seen = {note_key(r.note) for r in train}
    leaked = sum(note_key(r.note) in seen for r in records)
    label_warnings = label_support_warnings([r.labels for r in records], [r.labels for r in train])
    return {
        "label_warnings": label_warnings,
        "baselines": {
            name: {k: v for k, v in result.items() if k != "predictions"}
            for name, result in results.items()
        },
        "baselines_trained_on": train_name,
        # Notes also in the training data score as memorised, not predicted.
        "share_in_training_data": leaked / len(records),
    }


def _write_predictions(path: Path, records, predictions, outcomes) -> None:
    rows = []
    for index, (record, prediction, outcome) in enumerate(
        zip(records, predictions, outcomes, strict=True), start=1
    ):
        row = {
            "index": index,
            "note": record.note,
            "gold": list(record.labels),
            "raw_output": prediction.raw_output,
            "codes": prediction.codes,
            "strict_correct": outcome.strict_correct,
            "lenient_correct": outcome.lenient_correct,
            "format_valid": prediction.result.format_valid,
            "confidence": {
                k: round(v, 4) for k, v in prediction.confidences.items() if k in prediction.codes
            },
            "answer_confidence": _rounded(prediction.confidence),
            "abstained": prediction.abstained,
            "reason": prediction.reason,
            "model_codes": list(prediction.result.codes),  # what it would have answered
            "repairs": list(prediction.result.repairs),
            "unknown_codes": list(prediction.result.unknown_codes),
            "decoding": prediction.decoding,
        }
        rows.append(row)
    atomic_write_text(path, jsonl_text(rows))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def render_summary(metrics: dict) -> str:
    """The Markdown summary: model scores, baselines beside them, and what to read into them."""
    from vetllm.baselines import format_baselines_markdown
    from vetllm.metrics import format_scores_markdown

    verdict = metrics.get("baseline_verdict")
    parts = [
        f"# Evaluation of run `{metrics['run']}`\n",
        *(
            [f"**{verdict['sentence']}**\n"]
            if verdict and not verdict["beats_bag_of_words"]
            else []
        ),
        f"Data: {metrics['data']} ({metrics['n']} notes, {metrics['skipped_rows']} rows skipped). "
        f"Decoding: **{metrics['decoding']}**. Speed: {metrics['notes_per_s']} notes/s.\n",
        format_scores_markdown(metrics),
    ]
    if metrics["decoding"] == "constrained":
        parts.append(
            "Constrained decoding can only produce catalogue labels, so strict equals lenient "
            "by construction.\n"
        )
    parts += honest_sections(metrics)
    if metrics.get("baselines"):
        parts.append(f"\n## Baselines (fitted on {metrics['baselines_trained_on']})\n")
        parts.append(format_baselines_markdown(metrics["baselines"]))
        best = max(metrics["baselines"].items(), key=lambda item: item[1]["accuracy"])
        beats = "beats" if metrics["lenient_accuracy"] > best[1]["accuracy"] else "does not beat"
        parts.append(
            f"\nThe model ({metrics['lenient_accuracy']:.1%} lenient) {beats} the best "
            f"baseline ({best[0]}, {best[1]['accuracy']:.1%}).\n"
        )
        if verdict:
            parts.append(verdict["sentence"] + "\n")
        share = metrics.get("share_in_training_data", 0.0)
        if share:
            parts.append(
                f"\n**Leakage:** {share:.1%} of these notes also appear verbatim in the training "
                "data; split by note text for an honest score.\n"
            )
    elif metrics.get("baselines_error"):
        parts.append(f"\nBaselines not computed: {metrics['baselines_error']}\n")
    return "\n".join(parts)


def honest_sections(metrics: dict) -> list[str]:
    """Markdown: warnings, distinct-note accuracy, accuracy vs coverage, reliability."""
    parts = []
    if metrics.get("warnings"):
        parts.append("\n## Warnings\n")
        parts += [f"- {warning}" for warning in metrics["warnings"]]
    distinct = metrics.get("distinct_notes") or {}
    if distinct.get("n_distinct"):
        low, high = distinct["distinct_ci"]
        r_low, r_high = distinct["record_ci"]
        parts.append(
            f"\n## Distinct notes\n\n{distinct['n_records']} records are "
            f"{distinct['n_distinct']} distinct notes. Lenient accuracy over distinct notes "
            f"(each counted once): **{distinct['distinct_accuracy']:.1%}** "
            f"({low:.1%} - {high:.1%}); over records {distinct['record_accuracy']:.1%} with a "
            f"note-grouped bootstrap interval of {r_low:.1%} - {r_high:.1%}.\n"
        )
    if metrics.get("selective"):
        parts.append(
            "\n## Accuracy vs coverage\n\nThe model's answers before abstaining, keeping only the "
            "most confident.\n\n"
            "| coverage | answered | confidence at least | lenient accuracy |\n|---|---|---|---|"
        )
        parts += [
            f"| {row['coverage']:.0%} | {row['answered']} | {row['threshold']:.3f} | "
            f"{row['accuracy']:.1%} |"
            for row in metrics["selective"]
        ]
    if metrics.get("reliability"):
        parts.append(
            f"\n## Calibration\n\nExpected calibration error: "
            f"{metrics['expected_calibration_error']:.3f}.\n\n"
            "| confidence | answers | mean confidence | accuracy |\n|---|---|---|---|"
        )
        parts += [
            f"| {row['low']:.1f} - {row['high']:.1f} | {row['n']} | "
            f"{row['mean_confidence']:.3f} | {row['accuracy']:.1%} |"
            for row in metrics["reliability"]
        ]
    return parts
