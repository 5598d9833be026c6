"""Write records back to disk in the source format; the project's one CSV and JSONL writers.

`write_records()` writes a JSON list, JSON Lines or CSV file, chosen by the file's suffix
(`FORMATS`, the same table the loader reads by), regenerating `instruction` and `output` from a
prompt template; the write is atomic (a temporary file, then a rename), so a reader never sees
half a file. Every CSV the project writes (records, batch-coded notes, evaluation predictions)
goes through `guarded_csv`: a pandas table written with `to_csv`, every header and cell passed
through `escape_formula` first, because a spreadsheet runs a cell that starts with `=`, `+`,
`-`, `@`, a tab or a carriage return as a formula; `unescape_formula` removes the apostrophe
again when `vetllm.data.text_formats` parses the file, so the note text round-trips unchanged. Every
JSONL goes through `jsonl_text` (UTF-8, one object per line, non-ASCII kept).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Callable, Iterable, Mapping, Sequence
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
        text = jsonl_text(rows)
    else:
        text = _records_csv(rows)
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


def is_missing(value: object) -> bool:
    """True for None and NaN (pandas' mark for a key a row does not have)."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def json_cell_text(value: object) -> str:
    """A cell as text: empty when missing, lists and objects as JSON, anything else as str()."""
    if is_missing(value):
        return ""
    if isinstance(value, (list, tuple, dict)):
        return json.dumps(value, ensure_ascii=False)
    return str(value)


def guarded_csv(
    rows: Iterable[Mapping],
    columns: Sequence[str],
    cell_text: Callable[[object], str] = json_cell_text,
) -> str:
    """CSV text for spreadsheets: one line per row, `columns` in order, "\n" line ends.

    Every cell becomes text through `cell_text` (a key a row lacks arrives as NaN), then every
    header and cell goes through `escape_formula`; no CSV leaves the project without it.
    """
    import pandas as pd  # only when a CSV is written: reading data never imports pandas

    # dtype=object keeps ints as ints: a column with a gap would otherwise turn 1 into 1.0.
    frame = pd.DataFrame(list(rows), columns=list(columns), dtype=object)
    safe = frame.map(lambda value: escape_formula(cell_text(value)))
    safe.columns = [escape_formula(str(column)) for column in frame.columns]
    return safe.to_csv(index=False, lineterminator="\n")


def jsonl_text(rows: Iterable[Mapping], default: Callable[[object], object] | None = None) -> str:
    """JSON Lines text: one object per line, UTF-8 with non-ASCII kept, a final newline.

    json.dumps, not pandas' to_json: that writes 1 as 1.0 in a column with gaps, "/" as "\\/",
    a null for every key a row lacks, and floats cut to 10 digits.
    """
    return "".join(
        json.dumps(dict(row), ensure_ascii=False, default=default) + "\n" for row in rows
    )


def _records_csv(rows: list[dict]) -> str:
    """Source rows as CSV: codes joined with '; ' (as the loader reads them), other lists JSON."""
    columns = list(dict.fromkeys(key for row in rows for key in row))
    joined = [{**row, "snomed_codes": "; ".join(map(str, row["snomed_codes"]))} for row in rows]
    return guarded_csv(joined, columns)
