"""Write records back to disk in the source format, and guard CSV cells against formula injection.

`write_records()` writes a JSON list, JSON Lines or CSV file, chosen by the file's suffix
(`FORMATS`, the same table the loader reads by), regenerating `instruction` and `output` from a
prompt template; the write is atomic (a temporary file, then a rename), so a reader never sees
half a file. A spreadsheet runs a CSV cell that starts with `=`, `+`, `-`, `@`, a tab or a
carriage return as a formula, so such cells get a leading apostrophe (`escape_formula`);
`unescape_formula` removes it again when `vetllm.data.loading` reads the file, so the note text
round-trips unchanged.
"""

from __future__ import annotations

import csv
import io
import json
import os
import tempfile
from pathlib import Path

from vetllm.data.prompts import ALPACA, PromptTemplate
from vetllm.data.records import Record
from vetllm.errors import VetLLMError

# File suffix -> format; shared with the loader so both accept the same names.
FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
# Spreadsheet apps run cells that start with these as formulas (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def write_records(
    records: list[Record], path: str | os.PathLike, template: PromptTemplate = ALPACA
) -> Path:
    """Write records in the source format; .json, .jsonl or .csv by suffix (atomic write).

    CSV cells that a spreadsheet would run as a formula get a leading apostrophe; the loader
    removes it again, so the note text itself is kept.
    """
    path = Path(path)
    fmt = FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise VetLLMError(f"output file {path.name}: use a .json, .jsonl or .csv name")
    rows = [
        r.to_source_dict(template.instruction, template.format_response(r.labels)) for r in records
    ]
    if fmt == "json":
        text = json.dumps(rows, ensure_ascii=False, indent=2) + "\n"
    elif fmt == "jsonl":
        text = "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)
    else:
        text = _csv_text(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(handle, "w", encoding="utf-8", newline="") as out:
        out.write(text)
    os.replace(temp, path)
    return path


def escape_formula(text: str) -> str:
    """A CSV cell's text with a leading apostrophe when a spreadsheet would run it."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


def unescape_formula(cell: str) -> str:
    """Undo `escape_formula`, so CSV round trips keep the note text exactly."""
    if len(cell) > 1 and cell[0] == "'" and cell[1:].startswith(_FORMULA_STARTS):
        return cell[1:]
    return cell


def _csv_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([escape_formula(_csv_cell_text(key, row.get(key))) for key in columns])
    return buffer.getvalue()


def _csv_cell_text(key: str, value: object) -> str:
    if value is None:
        return ""
    if key == "snomed_codes" and isinstance(value, list):
        return "; ".join(str(v) for v in value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)
