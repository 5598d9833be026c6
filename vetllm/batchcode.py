"""Batch coding: a file of notes without codes in, the same rows with codes out.

`read_notes_file` reads CSV (pick the note column), JSON Lines, a JSON list (of objects or of
strings) or plain text (one note per line), keeping every original column; a CSV's headers and
cells lose the formula guard the project's writer adds, as the data loader's do. `code_notes` sends
the notes through a prediction function in chunks and adds, per row: the codes, their disease
names, whether each SCTID is valid, the confidence, whether the model abstained and why, and the
run that answered. A row whose note is empty or too long is not predicted: it is marked
abstained with the reason. `coded_csv` / `coded_jsonl` write the result through the project's
one CSV and JSONL writers (`vetllm.data.writing`: CSV cells a spreadsheet would run as formulas
are escaped). Imports neither torch nor gradio.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.data.loading import _decode, _read_limited
from vetllm.data.text_formats import guess_delimiter, header_names
from vetllm.data.validation import normalise_note_text
from vetllm.data.writing import guarded_csv, json_cell_text, jsonl_text, unescape_formula
from vetllm.errors import VetLLMError

NOTE_FORMATS = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json",
                ".txt": "text"}  # fmt: skip
NOTE_COLUMN_GUESSES = ("note", "notes", "input", "text", "clinical_note", "clinical note")
CODED_COLUMNS = ("codes", "diseases", "sctid_valid", "confidence", "abstained", "reason", "run")
SCTID_WORDS = {True: "valid", False: "invalid", None: "no SCTID"}
TEXT_COLUMN = "note"  # the column name for plain-text and string-list files


@dataclass
class NotesTable:
    """The rows of a notes file (original columns kept) and which column holds the note."""

    name: str
    columns: list[str]
    rows: list[dict]
    note_column: str
    notices: list[str] = field(default_factory=list)

    def notes(self) -> list[object]:
        return [row.get(self.note_column) for row in self.rows]


def note_format(name: str) -> str:
    """'csv', 'jsonl', 'json' or 'text' from a file name; VetLLMError for anything else."""
    fmt = NOTE_FORMATS.get(Path(name).suffix.lower())
    if fmt is None:
        raise VetLLMError(
            f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}; use .csv (pick "
            "the note column), .jsonl, .json or .txt (one note per line)"
        )
    return fmt


def read_notes_file(path: Path, column: str | None = None, *, display_name: str | None = None,
                    max_bytes: int = 50 * 2**20, max_rows: int | None = None) -> NotesTable:  # fmt: skip
    """Read a notes file; `column` names the note column (guessed when None)."""
    path = Path(path)
    name = display_name or path.name
    fmt = note_format(name)
    text, notices = _decode(_read_limited(path, name, max_bytes), name)
    columns, rows = {"csv": _csv, "jsonl": _jsonl, "json": _json, "text": _text}[fmt](text, name)
    if not rows:
        raise VetLLMError(f"{name}: contains no notes")
    if max_rows is not None and len(rows) > max_rows:
        raise VetLLMError(
            f"{name}: {len(rows):,} notes is over this app's limit of {max_rows:,} per file; "
            "split the file, or code it with `vetllm predict --file` on your own machine"
        )
    chosen = pick_note_column(columns, column, name)
    return NotesTable(name, columns, rows, chosen, notices)


def pick_note_column(columns: list[str], wanted: str | None, name: str) -> str:
    """The wanted column if it exists, else a column named like a note, else the first."""
    if wanted:
        if wanted not in columns:
            raise VetLLMError(
                f"column: {name} has no column {wanted!r}; its columns are {', '.join(columns)}"
            )
        return wanted
    lowered = {c.strip().lower(): c for c in columns}
    return next((lowered[g] for g in NOTE_COLUMN_GUESSES if g in lowered), columns[0])


def _csv(text: str, name: str) -> tuple[list[str], list[dict]]:
    """Header and rows, read as the data loader reads CSV (`vetllm.data.text_formats`: the same
    delimiter guess, the writer's formula guard removed from headers and cells), but lenient:
    any columns, and a short or long row keeps the cells it has."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=guess_delimiter(text))
    try:
        header = header_names(next(reader))
        rows = [
            dict(zip(header, map(unescape_formula, cells), strict=False))
            for cells in reader
            if any(cells)
        ]
    except csv.Error as error:
        raise VetLLMError(f"{name}: line {reader.line_num}: not valid CSV ({error})") from None
    if not any(header):
        raise VetLLMError(f"{name}: the first line should name the columns (e.g. note)")
    return header, rows


def _jsonl(text: str, name: str) -> tuple[list[str], list[dict]]:
    items = []
    for number, line in enumerate(text.split("\n"), start=1):
        if line.strip():
            try:
                items.append(json.loads(line))
            except ValueError as error:
                raise VetLLMError(f"{name}: line {number}: not valid JSON ({error})") from None
    return _objects(items, name)


def _json(text: str, name: str) -> tuple[list[str], list[dict]]:
    try:
        items = json.loads(text)
    except ValueError as error:
        raise VetLLMError(f"{name}: not valid JSON ({error})") from None
    if not isinstance(items, list):
        raise VetLLMError(f"{name}: expected a list of notes or of objects with a note field")
    return _objects(items, name)


def _objects(items: list, name: str) -> tuple[list[str], list[dict]]:
    rows = []
    for number, item in enumerate(items, start=1):
        if isinstance(item, str):
            rows.append({TEXT_COLUMN: item})
        elif isinstance(item, dict):
            rows.append(item)
        else:
            raise VetLLMError(f"{name}: item {number} is neither a note nor an object")
    columns = list(dict.fromkeys(key for row in rows for key in row))
    return columns, rows


def _text(text: str, name: str) -> tuple[list[str], list[dict]]:
    return [TEXT_COLUMN], [{TEXT_COLUMN: line} for line in text.splitlines() if line.strip()]


# -- coding ------------------------------------------------------------------------------------------
PredictBatch = Callable[[list[str]], list[Mapping]]


def check_note(note: object, max_chars: int) -> tuple[str | None, str]:
    """(cleaned note, '') when it can be predicted, else (None, the reason it is skipped)."""
    if not isinstance(note, str):
        return None, "no note text in this row"
    text = normalise_note_text(note)
    if not text:
        return None, "empty note"
    if len(text) > max_chars:
        return None, f"note is {len(text):,} characters, over the limit of {max_chars:,}"
    return text, ""


def code_notes(table: NotesTable, predict: PredictBatch, run: str, *, max_chars: int,
               chunk: int = 64, progress: Callable[[int, int], None] | None = None) -> list[dict]:  # fmt: skip
    """The table's rows with CODED_COLUMNS added (original columns first, unchanged)."""
    checked = [check_note(note, max_chars) for note in table.notes()]
    todo = [i for i, (text, _) in enumerate(checked) if text is not None]
    answers: dict[int, Mapping] = {}
    for start in range(0, len(todo), chunk):
        part = todo[start : start + chunk]
        for index, answer in zip(part, predict([checked[i][0] for i in part]), strict=True):
            answers[index] = answer
        if progress is not None:
            progress(min(start + chunk, len(todo)), len(todo))
    coded = []
    for index, row in enumerate(table.rows):
        answer = answers.get(index)
        extra = coded_fields(answer, run) if answer else skipped_fields(checked[index][1], run)
        coded.append({**row, **extra})
    return coded


def coded_fields(answer: Mapping, run: str) -> dict:
    """The added columns for one answer (the API dict of a prediction)."""
    codes = list(answer.get("codes") or [])
    confidences = [c.get("confidence") for c in codes if c.get("confidence") is not None]
    return {
        "codes": [c.get("code") for c in codes],
        "diseases": [c.get("name") or "not in catalogue" for c in codes],
        "sctid_valid": [SCTID_WORDS.get(c.get("valid_sctid"), "-") for c in codes],
        "confidence": round(min(confidences), 4) if confidences else None,
        "abstained": bool(answer.get("abstained", False)),
        "reason": answer.get("reason") or ("" if codes else "no catalogue code found"),
        "run": run,
    }


def skipped_fields(reason: str, run: str) -> dict:
    return {"codes": [], "diseases": [], "sctid_valid": [], "confidence": None,
            "abstained": True, "reason": f"not predicted: {reason}", "run": run}  # fmt: skip


def coded_cell_text(value: object) -> str:
    """A coded cell as text: lists joined with '; ', objects as JSON, missing as empty."""
    if isinstance(value, (list, tuple)):
        return "; ".join("" if v is None else str(v) for v in value)
    return json_cell_text(value)


def coded_csv(rows: Iterable[Mapping], columns: list[str]) -> str:
    """CSV text: the original columns, then CODED_COLUMNS; formula-like cells escaped."""
    header = [c for c in columns if c not in CODED_COLUMNS] + list(CODED_COLUMNS)
    return guarded_csv(rows, header, coded_cell_text)


def coded_jsonl(rows: Iterable[Mapping]) -> str:
    """JSON Lines text, one coded row per line (values as they are: lists stay lists)."""
    return jsonl_text(rows, default=str)


def predict_with(predictor, decoding: str = "free", batch_size: int = 32) -> PredictBatch:
    """A PredictBatch over a loaded `vetllm.engine.predict.Predictor` (API dicts per note)."""

    def predict(notes: list[str]) -> list[Mapping]:
        predictions = predictor.predict(notes, decoding, batch_size=batch_size)
        return [p.to_api_dict(predictor.catalogue) for p in predictions]

    return predict


def write_coded(rows: list[dict], columns: list[str], out: Path) -> Path:
    """Write coded rows to `out`: .jsonl / .ndjson as JSON Lines, anything else as CSV."""
    out = Path(out)
    if out.suffix.lower() in (".jsonl", ".ndjson"):
        text = coded_jsonl(rows)
    elif out.suffix.lower() == ".csv":
        text = coded_csv(rows, columns)
    else:
        raise VetLLMError(f"--out {out.name}: use a .csv or .jsonl file name")
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text, encoding="utf-8")
    return out
