"""Downloads the UI offers: evaluation predictions as CSV, safe to open in a spreadsheet.

A cell that starts with `=`, `+`, `-`, `@` (or a tab / carriage return) would run as a formula
in Excel or LibreOffice (`=HYPERLINK(...)` in a note is the classic attack), so such cells get
a leading apostrophe, which spreadsheets show as text. The rule itself is
`vetllm.data.writing.escape_formula`, shared with the data writer.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Mapping

from vetllm.data.writing import escape_formula

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


def safe_cell(value: object) -> str:
    """The value as CSV text, with a leading ' when a spreadsheet would read it as a formula."""
    if value is None:
        return ""
    if isinstance(value, (list, tuple)):
        text = "; ".join(str(item) for item in value)
    elif isinstance(value, Mapping):
        text = "; ".join(f"{key}={item}" for key, item in value.items())
    else:
        text = str(value)
    return escape_formula(text)


def predictions_to_csv(rows: Iterable[Mapping]) -> str:
    """Evaluation predictions (eval/predictions.jsonl rows) as CSV text with escaped cells."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(PREDICTION_COLUMNS)
    for row in rows:
        writer.writerow([safe_cell(row.get(column)) for column in PREDICTION_COLUMNS])
    return buffer.getvalue()
