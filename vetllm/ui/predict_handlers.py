"""Handlers of the Predict & evaluate tab and the `predict` / `evaluate` API endpoints.

Prediction uses `vetllm.engine.predict.Predictor`, loaded once per run and kept in a small
cache; evaluation uses `vetllm.engine.evaluate.evaluate_run`. Both endpoints use the served run
(`vetllm.runs.serving`) unless `predict` names another completed run, so API callers need
nothing but the note (`predict`) or nothing at all (`evaluate`, the bundled validation set; an
endpoint only when the app is local). Answers name the run that answered. Notes are never
logged.
"""

from __future__ import annotations

import json
import threading
from collections import OrderedDict
from pathlib import Path

import gradio as gr

from vetllm.calibration import DECODINGS
from vetllm.config import BUNDLED_DATA
from vetllm.errors import VetLLMError
from vetllm.ui import charts, views
from vetllm.ui.admin import check_admin
from vetllm.ui.batching import MicroBatcher
from vetllm.ui.exports import predictions_to_csv
from vetllm.ui.guards import (
    UPLOAD_CHOICE,
    clean_note,
    discard_upload,
    upload_path,
    user_facing,
    write_temp_file,
)
from vetllm.ui.settings import AppSettings

BUNDLED_VAL_CHOICE = "Bundled validation set"
WORST_CASES = 15  # rows in the worst-cases table


class PredictorCache:
    """One loaded Predictor per run folder, the `capacity` most recently used kept in memory."""

    def __init__(self, load=None, capacity: int = 2):
        self._load = load  # run path -> Predictor; None: Predictor.from_run
        self._capacity = capacity
        self._items: OrderedDict[str, object] = OrderedDict()
        self._lock = threading.Lock()
        self._loading: dict[str, threading.Lock] = {}

    def get(self, run_dir: Path):
        key = str(Path(run_dir).resolve())
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            loading = self._loading.setdefault(key, threading.Lock())
        with loading:  # one load per run even when many requests arrive at once
            with self._lock:
                if key in self._items:
                    return self._items[key]
            predictor = self._build(Path(key))
            with self._lock:
                self._items[key] = predictor
                while len(self._items) > self._capacity:
                    self._items.popitem(last=False)
            return predictor

    def _build(self, run_dir: Path):
        if self._load is not None:
            return self._load(run_dir)
        from vetllm.engine.predict import Predictor

        return Predictor.from_run(run_dir)


class PredictHandlers:
    """Prediction and evaluation handlers bound to one app's settings."""

    def __init__(
        self,
        settings: AppSettings,
        cache: PredictorCache | None = None,
        batcher: MicroBatcher | None = None,
    ):
        self.settings = settings
        self.cache = cache or PredictorCache()
        self.batcher = batcher or MicroBatcher()

    # -- runs ---------------------------------------------------------------------------------
    def completed_runs(self) -> list[str]:
        """Names of runs with a final model, newest first."""
        from vetllm.runs.launcher import list_runs
        from vetllm.runs.serving import completed_run_names

        return completed_run_names(list_runs(self.settings.runs_dir))

    def served_run(self) -> str | None:
        """The run that answers when no run is named (see vetllm.runs.serving)."""
        from vetllm.runs.serving import served_run_name

        return served_run_name(self.settings.runs_dir)

    def _serving_run(self, name: str | None) -> Path:
        if name:
            if not isinstance(name, str) or name not in self.completed_runs():
                raise VetLLMError(
                    f"run: {str(name)[:80]!r} is not a completed run; leave it empty for the "
                    "served model or pick a completed run from the list"
                )
            return self.settings.runs_dir / name
        served = self.served_run()
        if served is None:
            raise VetLLMError(self._no_model_message())
        return self.settings.runs_dir / served

    def _no_model_message(self) -> str:
        from vetllm.runs.launcher import list_runs
        from vetllm.runs.state import ACTIVE_STATES

        for run in list_runs(self.settings.runs_dir):
            if run.get("state") in ACTIVE_STATES:
                step, total = run.get("step") or 0, run.get("total_steps") or "?"
                return (
                    f"no trained model yet: run {run['name']} is training (step {step} of "
                    f"{total}); try again when it completes"
                )
        return "no trained model yet: train one in the Train tab (the CPU default takes ~2 min)"

    # -- prediction ---------------------------------------------------------------------------
    def predict_json(
        self, note: object, decoding: object = "free", run_name: str | None = None
    ) -> dict:
        """Codes for one note as the API's JSON (codes, raw_output, repairs, ...)."""
        text = clean_note(note, self.settings.max_note_chars)
        if decoding not in DECODINGS:
            raise VetLLMError(f"decoding: got {decoding!r}; use 'free' or 'constrained'")
        run_dir = self._serving_run(run_name)
        predictor = self.cache.get(run_dir)
        prediction = self.batcher.predict(predictor, text, decoding)
        answer = prediction.to_api_dict()
        answer["run"] = run_dir.name
        return answer

    @user_facing
    def predict_api(self, note: str, decoding: str = "free", run: str = "") -> dict:
        """Predict SNOMED-CT codes for one livestock clinical note.

        Args:
            note: the clinical note (at most 5,000 characters).
            decoding: "free" (generate, then post-process) or "constrained" (catalogue only).
            run: a completed run's name; empty for the served model.
        Returns:
            codes (code, name, valid_sctid, confidence), raw_output, repairs, run (the run
            that answered); abstained and reason ("no code: refer to a veterinarian (...)") when
            it declines.
        """
        return self.predict_json(note, decoding, run or None)

    @user_facing
    def predict_ui(self, run_name: str | None, note: str, decoding: str):
        """Outputs of the prediction panel: table of codes, raw output, repairs, full JSON."""
        answer = self.predict_json(note, decoding, run_name or None)
        notes = views.repairs_markdown(answer)
        if answer.get("abstained"):
            notes = f"**Abstained: {views.cell(answer.get('reason') or '')}**\n\n{notes}"
        verdict = baseline_sentence(self.settings.runs_dir / answer["run"])
        if verdict:
            notes += f"\n\n> {verdict}"
        return (views.prediction_rows(answer), answer["raw_output"], notes, answer)

    # -- evaluation ----------------------------------------------------------------------------
    @user_facing
    def evaluate(
        self, run_name: str | None, source: str, upload: object, decoding: str, password: str
    ):
        """Score a run on a validation set: headline numbers, tables, charts and a CSV file."""
        from vetllm.engine.evaluate import evaluate_run
        from vetllm.runs.directory import read_jsonl

        try:  # a refused or failed evaluation deletes the upload too
            check_admin(self.settings, password, "evaluating a run")
            if decoding not in DECODINGS:
                raise VetLLMError(f"decoding: got {decoding!r}; use 'free' or 'constrained'")
            run_dir = self._serving_run(run_name or None)
            data, skipped = self._evaluation_data(source, upload)
            # An upload's scores go beside, not over, the run's own validation evaluation.
            out_dir = run_dir / ("eval" if data == BUNDLED_DATA else "eval-upload")
            predictor = self.cache.get(run_dir)
            metrics = evaluate_run(run_dir, data, decoding, out_dir, predictor=predictor)
        finally:
            discard_upload(upload)  # gradio would serve it to anyone who knows its URL
        rows = read_jsonl(out_dir / "predictions.jsonl")
        outputs = self._evaluation_outputs(run_dir.name, metrics, rows)
        return (outputs[0] + skipped, *outputs[1:])

    @user_facing
    def evaluate_api(self, decoding: str = "free") -> dict:
        """Score the served model on the bundled validation set (local apps only).

        Args:
            decoding: "free" (generate, then post-process) or "constrained" (catalogue only).
        Returns:
            metrics.json: n, strict/lenient accuracy with 95% CIs, format_valid_rate,
            micro/macro F1, per-code scores, confusion matrix, baselines on the same notes.
        """
        from vetllm.engine.evaluate import evaluate_run

        # Registered only when the app is local; checked again so a shared app never runs it.
        self.settings.require_admin(None, "evaluating a run through the API")
        if decoding not in DECODINGS:
            raise VetLLMError(f"decoding: got {decoding!r}; use 'free' or 'constrained'")
        run_dir = self._serving_run(None)
        metrics = evaluate_run(
            run_dir, BUNDLED_DATA, decoding, run_dir / "eval", predictor=self.cache.get(run_dir)
        )
        return metrics

    def _evaluation_data(self, source: str, upload: object) -> tuple:
        """(BUNDLED_DATA or the uploaded records, Markdown on the rows skipped and why)."""
        if source != UPLOAD_CHOICE:
            discard_upload(upload)
            return BUNDLED_DATA, ""
        path = upload_path(upload)
        if path is None:
            raise VetLLMError(
                "data: choose a validation file to upload (JSON, JSONL, CSV or Parquet)"
            )
        if path.stat().st_size > self.settings.max_upload_bytes:
            discard_upload(upload)
            raise VetLLMError(
                f"{path.name}: {path.stat().st_size:,} bytes is over the upload limit of "
                f"{self.settings.max_upload_bytes:,} bytes"
            )
        from vetllm.data.loading import load_dataset_file

        result = load_dataset_file(path, on_error="skip", display_name=path.name)
        return result.records, skipped_markdown(result)

    @staticmethod
    def _evaluation_outputs(run_name: str, metrics: dict, rows: list[dict]):
        from vetllm.metrics import format_scores_markdown

        # headline numbers only: the per-code table is shown as a sortable dataframe below
        headline = format_scores_markdown(metrics).split("\n| code |")[0]
        verdict = metrics.get("baseline_verdict") or {}
        if verdict and not verdict.get("beats_bag_of_words"):
            headline = f"**{verdict['sentence']}**\n\n{headline}"
        if metrics.get("share_in_training_data"):
            headline += (
                f"\n> {metrics['share_in_training_data']:.0%} of these notes are also in the run's "
                "training data: those are memorised, not predicted.\n"
            )
        per_code = [
            [r["code"], r.get("name") or "-", {True: "yes", False: "NO", None: "-"}[r.get("valid_sctid")],
             r["support"], round(r["precision"], 3), round(r["recall"], 3), round(r["f1"], 3)]
            for r in metrics.get("per_code", [])
        ]  # fmt: skip
        confusion = metrics.get("confusion") or {}
        names = dict(zip(confusion.get("labels", []), confusion.get("names", []), strict=False))
        comparison = views.baseline_rows(run_name, metrics, metrics.get("baselines", {}))
        decoding = metrics.get("decoding", "free")  # in the name: free and constrained differ
        csv_path = write_temp_file(
            predictions_to_csv(rows), f"predictions-{run_name}-{decoding}.csv"
        )
        download = gr.DownloadButton(value=csv_path, visible=True)
        return (
            headline,
            per_code,
            charts.confusion_figure(
                confusion.get("labels", []), confusion.get("matrix", []), names
            ),
            worst_cases(rows, WORST_CASES, _catalogue_names()),
            views.baseline_table(comparison),
            charts.accuracy_comparison_figure(comparison),
            download,
            *_calibration_figures(metrics),
        )


def _calibration_figures(metrics: dict) -> tuple:
    """Reliability diagram and accuracy-vs-coverage of an evaluation (empty when not scored)."""
    ece = metrics.get("expected_calibration_error")
    title = f"Reliability diagram (ECE {ece:.3f})" if isinstance(ece, float) else None
    reliability = charts.reliability_figure(
        metrics.get("reliability") or [], *filter(None, [title])
    )
    return reliability, charts.coverage_accuracy_figure(metrics.get("selective") or [])


def skipped_markdown(result) -> str:
    """What an evaluation upload lost: how many rows were skipped and why ('' if none)."""
    if not result.skipped_rows:
        return ""
    return (
        f"\n\n**Skipped {result.skipped_rows:,} row(s) of {views.cell(result.source)} that cannot "
        f"be scored** ({len(result.records):,} scored):\n\n"
        + views.problems_markdown(result.problems)
    )


def _catalogue_names() -> dict[str, str]:
    from vetllm.catalogue import load_catalogue

    return {d.label: d.name for d in load_catalogue().diseases}


def _named(codes: list, names: dict[str, str]) -> str:
    return ", ".join(f"{c} ({names[c]})" if c in names else str(c) for c in codes)


def worst_cases(rows: list[dict], limit: int, names: dict[str, str] | None = None) -> list[list]:
    """The wrong predictions, least format-valid and least confident first; codes shown with
    their disease names."""
    names = names or {}
    wrong = [r for r in rows if not r.get("lenient_correct")]
    wrong += [r for r in rows if r.get("lenient_correct") and not r.get("strict_correct")]

    def confidence(row: dict) -> float:
        values = list((row.get("confidence") or {}).values())
        return max(values) if values else 0.0

    wrong.sort(key=lambda r: (bool(r.get("lenient_correct")), -confidence(r)))
    return [
        [
            str(r.get("note", ""))[:160],
            _named(r.get("gold", []), names),
            _named(r.get("codes", []), names) or "(none)",
            str(r.get("raw_output", ""))[:120],
            round(confidence(r), 3),
        ]
        for r in wrong[:limit]
    ]


def baseline_sentence(run_dir: Path) -> str | None:
    """The run's "does not beat bag-of-words" sentence from its last evaluation, if it said so."""
    try:
        metrics = json.loads((run_dir / "eval" / "metrics.json").read_text(encoding="utf-8"))
        verdict = metrics["baseline_verdict"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None if verdict.get("beats_bag_of_words") else verdict.get("sentence")


def refresh_choices(handlers: PredictHandlers, current: str | None = None):
    """Completed runs for the model dropdown, keeping the selection, else the served run."""
    names = handlers.completed_runs()
    value = current if current in names else handlers.served_run()
    return gr.Dropdown(choices=names, value=value)
