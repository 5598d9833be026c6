"""Batch coding in the app: a file of notes in, a table and CSV / JSONL downloads out.

An upload is read at once into server-side session state (`vetllm.batchcode.NotesTable`) and
deleted from gradio's cache; the note column can then be picked (CSV and JSON objects). Coding
runs the chosen run (the served one by default) over the notes in chunks with `gr.Progress`.
Public apps limit the rows per file (`PUBLIC_MAX_ROWS`); the `code_notes` API endpoint takes a
list of notes under the same limits. Notes are never logged.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from vetllm.batchcode import (
    CODED_COLUMNS,
    NotesTable,
    code_notes,
    coded_csv,
    coded_jsonl,
    predict_with,
    read_notes_file,
)
from vetllm.calibration import DECODINGS
from vetllm.errors import VetLLMError
from vetllm.ui.guards import discard_upload, upload_path, user_facing, write_temp_file
from vetllm.ui.predict_handlers import PredictHandlers

PUBLIC_MAX_ROWS = 500  # notes per file in a shared / hosted app (~10 s of CPU on the tiny model)
LOCAL_MAX_ROWS = 100_000
PREVIEW_ROWS = 200  # rows shown in the page; the downloads hold every row
PREVIEW_CHARS = 160  # characters of each original cell shown in the page


class BatchHandlers:
    """Batch-coding handlers; share the Predictor cache and run rules of `PredictHandlers`."""

    def __init__(self, predict: PredictHandlers):
        self.predict = predict
        self.settings = predict.settings

    @property
    def max_rows(self) -> int:
        return PUBLIC_MAX_ROWS if self.settings.public else LOCAL_MAX_ROWS

    @user_facing
    def read_upload(self, upload: object):
        """Read the uploaded notes file (then delete it); the column picker and a summary."""
        path = upload_path(upload)
        if path is None:
            return None, gr.Dropdown(choices=[], value=None), ""
        try:
            table = read_notes_file(path, display_name=path.name, max_rows=self.max_rows,
                                    max_bytes=self.settings.max_upload_bytes)  # fmt: skip
        finally:
            discard_upload(upload)  # gradio would serve it to anyone who knows its URL
        summary = (
            f"**{len(table.rows):,} notes** read; the note column is **{table.note_column}** "
            "(change it below if that is wrong), then press **Code the file**."
        )
        return table, gr.Dropdown(choices=table.columns, value=table.note_column), summary

    @user_facing
    def code_file(self, table: NotesTable | None, column: str | None, decoding: str,
                  run_name: str | None, progress=gr.Progress()):  # noqa: B008  # fmt: skip
        """Code every note: preview table, CSV and JSONL downloads and a summary line."""
        if table is None:
            raise VetLLMError("file: upload a notes file first (CSV, JSONL, JSON or .txt)")
        if decoding not in DECODINGS:
            raise VetLLMError(f"decoding: got {decoding!r}; use 'free' or 'constrained'")
        if column:
            if column not in table.columns:
                raise VetLLMError(f"column: {column!r} is not a column of {table.name}")
            table.note_column = column
        run_dir = self.predict._serving_run(run_name or None)
        predictor = self.predict.cache.get(run_dir)
        progress(0, desc="loading the model")

        def report(done: int, total: int) -> None:
            progress(done / max(total, 1), desc=f"coded {done:,} of {total:,} notes")

        rows = code_notes(table, predict_with(predictor, decoding), run_dir.name,
                          max_chars=self.settings.max_note_chars, progress=report)  # fmt: skip
        stem = table.name.rsplit(".", 1)[0][:40] or "notes"
        csv_path = write_temp_file(coded_csv(rows, table.columns), f"{stem}-coded.csv")
        jsonl_path = write_temp_file(coded_jsonl(rows), f"{stem}-coded.jsonl")
        skipped = sum(r["reason"].startswith("not predicted") for r in rows)
        summary = (
            f"Coded **{len(rows) - skipped:,} of {len(rows):,} notes** with **{run_dir.name}**; "
            f"{sum(r['abstained'] for r in rows):,} abstained or skipped (see 'reason')."
        )
        return (preview_frame(rows, table), gr.DownloadButton(value=csv_path, visible=True),
                gr.DownloadButton(value=jsonl_path, visible=True), summary)  # fmt: skip

    @user_facing
    def code_notes_api(self, notes: list[str], decoding: str = "free", run: str = "") -> dict:
        """Code a list of livestock clinical notes in one call (batch coding).

        Args:
            notes: the clinical notes (each at most 5,000 characters; 500 per call on a shared app).
            decoding: "free" (generate, then post-process) or "constrained" (catalogue only).
            run: a completed run's name; empty for the served model.
        Returns:
            run (the run that answered) and rows: per note codes, diseases, sctid_valid,
            confidence, abstained, reason.
        """
        if not isinstance(notes, list) or not notes:
            raise VetLLMError("notes: send a non-empty list of notes (strings)")
        if len(notes) > self.max_rows:
            raise VetLLMError(
                f"notes: {len(notes):,} notes is over this app's limit of {self.max_rows:,} per "
                "call; send them in smaller lists"
            )
        if decoding not in DECODINGS:
            raise VetLLMError(f"decoding: got {decoding!r}; use 'free' or 'constrained'")
        run_dir = self.predict._serving_run(run or None)
        predictor = self.predict.cache.get(run_dir)
        table = NotesTable("notes", ["note"], [{"note": n} for n in notes], "note")
        rows = code_notes(table, predict_with(predictor, decoding), run_dir.name,
                          max_chars=self.settings.max_note_chars)  # fmt: skip
        return {"run": run_dir.name, "rows": [{k: r[k] for k in CODED_COLUMNS} for r in rows]}


def preview_frame(rows: list[dict], table: NotesTable) -> pd.DataFrame:
    """The first PREVIEW_ROWS coded rows for the page: original columns (cut), then codes."""
    originals = [c for c in table.columns if c not in CODED_COLUMNS]
    shown = []
    for row in rows[:PREVIEW_ROWS]:
        entry = {c: str(row.get(c, ""))[:PREVIEW_CHARS] for c in originals}
        entry.update(
            codes=", ".join(row["codes"]) or "-",
            diseases=", ".join(row["diseases"]) or "-",
            sctid_valid=", ".join(row["sctid_valid"]) or "-",
            confidence=row["confidence"],
            abstained="yes" if row["abstained"] else "no",
            reason=row["reason"],
        )
        shown.append(entry)
    return pd.DataFrame(shown)
