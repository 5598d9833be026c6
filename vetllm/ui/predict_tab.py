"""Layout and wiring of the Predict & evaluate tab.

The prediction and evaluation buttons are private events; the `predict` and `evaluate` API
endpoints are registered separately in `vetllm.ui.app` with `gr.api`, so API callers need only
the note (and `evaluate` exists only when the app is local).
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import gradio as gr

from vetllm.calibration import DECODINGS
from vetllm.ui.guards import UPLOAD_CHOICE
from vetllm.ui.predict_handlers import BUNDLED_VAL_CHOICE, PredictHandlers
from vetllm.ui.settings import DATA_FILE_TYPES, PRIVATE, AppSettings

NO_HISTORY = gr.InputHTMLAttributes(autocomplete="off", autocorrect="off", spellcheck=False)


@dataclass
class PredictTab:
    run: gr.Dropdown
    admin_buttons: list


def example_notes() -> list[dict]:
    """The bundled example notes ({title, note}); empty if examples/notes.json is missing."""
    from vetllm.resources import EXAMPLES_DIR

    try:
        notes = json.loads((EXAMPLES_DIR / "notes.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return []
    return (
        [n for n in notes if isinstance(n, dict) and n.get("note")]
        if isinstance(notes, list)
        else []
    )


def _prediction_section(settings: AppSettings, handlers: PredictHandlers) -> gr.Dropdown:
    run = gr.Dropdown(label="Model (a completed run; empty = the served run)", choices=[])
    # No max_length: the browser would cut a long note silently while the API refuses it; one
    # rule, on the server, stated here and answered with the note's length when it is broken.
    note = gr.Textbox(
        label="Clinical note", lines=5,
        info=f"Up to {settings.max_note_chars:,} characters; longer notes are refused, not cut.",
        placeholder="e.g. 2 yr Beetal goat, T 105.8F, sores on lips, runny nose, diarrhoea",
        html_attributes=NO_HISTORY,
    )  # fmt: skip
    examples = example_notes()
    if examples:
        gr.Examples(
            examples=[[n["note"]] for n in examples], inputs=[note],
            example_labels=[str(n.get("title") or n["note"][:40]) for n in examples],
            label="Example notes (click to fill in)", cache_examples=False,
        )  # fmt: skip
    with gr.Row():
        decoding = gr.Radio(list(DECODINGS), value="free", label="Decoding",
                            info="free: generate then post-process; constrained: catalogue codes only")  # fmt: skip
        predict = gr.Button("Predict codes", variant="primary")
    codes = gr.Dataframe(headers=["code", "disease", "SCTID", "confidence"], label="Predicted codes",
                         interactive=False)  # fmt: skip
    with gr.Row():
        raw = gr.Textbox(label="Raw model output", interactive=False, lines=3)
        repairs = gr.Markdown()
    with gr.Accordion("The same answer as the API returns it (JSON)", open=False):
        answer = gr.JSON()
    outputs = [codes, raw, repairs, answer]
    for trigger in (predict.click, note.submit):
        # Cleared first: a refused note (empty, too long) must not leave the last answer showing.
        trigger(_cleared, None, outputs, queue=False, **PRIVATE).then(
            handlers.predict_ui, [run, note, decoding], outputs, concurrency_id="predict",
            concurrency_limit=settings.predict_concurrency, **PRIVATE,
        )  # fmt: skip
    return run


def _select_upload():
    return gr.Radio(value=UPLOAD_CHOICE)


def _cleared():
    return None, "", "", None


def _evaluation_section(
    settings: AppSettings, handlers: PredictHandlers, run: gr.Dropdown, password
) -> gr.Button:
    gr.Markdown("### Evaluate the selected run")
    with gr.Row():
        source = gr.Radio([BUNDLED_VAL_CHOICE, UPLOAD_CHOICE], value=BUNDLED_VAL_CHOICE,
                          label="Validation data")  # fmt: skip
        upload = gr.File(label="Validation file (JSON, JSONL, CSV or Parquet)",
                         elem_id="eval-upload", file_types=DATA_FILE_TYPES,
                         type="filepath")  # fmt: skip
        decoding = gr.Radio(list(DECODINGS), value="free", label="Decoding")
    # Public apps start locked: the button comes alive once the admin password is unlocked.
    evaluate = gr.Button("Evaluate", variant="primary", interactive=not settings.public)
    headline = gr.Markdown()
    with gr.Row():
        comparison_plot = gr.Plot(label="Model vs baselines")
        baselines = gr.Dataframe(
            headers=["model / baseline", "accuracy", "95% CI"], interactive=False
        )
    per_code = gr.Dataframe(headers=["code", "disease", "valid SCTID", "support", "precision",
                                     "recall", "F1"], label="Per code", interactive=False)  # fmt: skip
    confusion = gr.Plot(label="Confusion matrix")
    worst = gr.Dataframe(headers=["note", "gold", "predicted", "raw output", "confidence"],
                         label="Worst cases", interactive=False, wrap=True,
                         column_widths=["34%", "17%", "17%", "22%", "10%"])  # fmt: skip
    with gr.Row():  # is a confidence worth trusting, and what abstaining below it would buy
        reliability = gr.Plot(label="Calibration")
        coverage = gr.Plot(label="Accuracy vs coverage")
    csv_file = gr.DownloadButton("Download predictions as CSV (formula-safe)", visible=False)
    # Uploading a file selects it: the radio must never say "bundled" while a file is waiting.
    upload.upload(_select_upload, None, [source], **PRIVATE)
    evaluate.click(
        handlers.evaluate, [run, source, upload, decoding, password],
        [headline, per_code, confusion, worst, baselines, comparison_plot, csv_file,
         reliability, coverage],
        concurrency_id="evaluate", concurrency_limit=1, api_name="evaluate_in_page", **PRIVATE,
    )  # fmt: skip
    return evaluate


def build_predict_tab(settings: AppSettings, handlers: PredictHandlers, password) -> PredictTab:
    run = _prediction_section(settings, handlers)
    evaluate = _evaluation_section(settings, handlers, run, password)
    return PredictTab(run, [evaluate])
