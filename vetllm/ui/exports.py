"""Downloads the UI offers: evaluation predictions as CSV, safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@` (or a tab / carriage return) would run as a formula
in Excel or LibreOffice (`=HYPERLINK(...)` in a note is the classic attack), so such cells get
a leading apostrophe, which spreadsheets show as text. The CSV is written by
`vetllm.data.writing.guarded_csv`, the writer (and guard) every CSV of the project shares.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from vetllm.data.writing import escape_formula, guarded_csv, is_missing

PREDICTION_COLUMNS = (
    "index",
    "note",
    "gold",
    "codes",
    "raw_output",
    "strict_correct",
    "lenient_correct",
    "format_valid",
    "confidence",
    "repairs",
    "decoding",
)


def prediction_cell_text(value: object) -> str:
    """A predictions cell as text: lists joined with '; ', {code: confidence} as 'code=0.9'."""
    if is_missing(value):
        return ""
    if isinstance(value, (list, tuple)):
        return "; ".join(str(item) for item in value)
    if isinstance(value, Mapping):
        return "; ".join(f"{key}={item}" for key, item in value.items())
    return str(value)


def safe_cell(value: object) -> str:
    """The value as CSV text, with a leading ' when a spreadsheet would read it as a formula."""
    return escape_formula(prediction_cell_text(value))


def predictions_to_csv(rows: Iterable[Mapping]) -> str:
    """Evaluation predictions (eval/predictions.jsonl rows) as CSV text with escaped cells."""
    return guarded_csv(rows, PREDICTION_COLUMNS, prediction_cell_text)
