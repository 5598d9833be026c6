"""Layout and wiring of the "Code a file" tab: upload notes, pick the column, code, download.

The upload is read into session state and deleted at once; coding is a private event (the
`code_notes` API endpoint, registered in `vetllm.ui.app`, is the programmatic way in).
"""

from __future__ import annotations

import gradio as gr

from vetllm.calibration import DECODINGS
from vetllm.ui.batch_handlers import LOCAL_MAX_ROWS, PUBLIC_MAX_ROWS, BatchHandlers
from vetllm.ui.settings import PRIVATE, AppSettings

NOTE_FILE_TYPES = [".csv", ".jsonl", ".json", ".txt"]


def _cleared_file():
    return None  # the upload was read and deleted; the summary names it


def build_batch_tab(settings: AppSettings, handlers: BatchHandlers, run: gr.Dropdown) -> None:
    limit = PUBLIC_MAX_ROWS if settings.public else LOCAL_MAX_ROWS
    gr.Markdown(
        "Upload a file of notes without codes; get the same rows back with codes, disease names, "
        "SCTID validity, confidence and whether the model abstained. CSV (pick the note column), "
        f"JSONL, JSON or plain text (one note per line); up to {limit:,} notes per file here. "
        "The model is the one chosen in the Predict tab (the served run by default)."
    )
    table = gr.State(None)
    with gr.Row():
        upload = gr.File(label="Notes file", file_types=NOTE_FILE_TYPES, type="filepath",
                         elem_id="batch-upload")  # fmt: skip
        with gr.Column():
            column = gr.Dropdown(label="Note column", choices=[])
            decoding = gr.Radio(list(DECODINGS), value="free", label="Decoding")
            code = gr.Button("Code the file", variant="primary")
    summary = gr.Markdown()
    with gr.Row():
        csv_file = gr.DownloadButton("Download coded CSV (formula-safe)", visible=False)
        jsonl_file = gr.DownloadButton("Download coded JSONL", visible=False)
    coded = gr.Dataframe(label="Coded notes (first 200 rows; the downloads hold every row)",
                         interactive=False, wrap=True)  # fmt: skip
    upload.upload(handlers.read_upload, [upload], [table, column, summary], **PRIVATE).then(
        _cleared_file, None, [upload], **PRIVATE
    )
    code.click(
        handlers.code_file, [table, column, decoding, run], [coded, csv_file, jsonl_file, summary],
        concurrency_id="predict", concurrency_limit=settings.predict_concurrency, **PRIVATE,
    )  # fmt: skip
