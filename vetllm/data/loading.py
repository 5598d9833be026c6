"""Load clinical-note data sets (JSON list, JSONL, CSV) with file- and row-level validation.

`load_dataset_file()` reads the source format of DOMAIN.md section 2 and turns each row into a
`Record` whose labels are catalogue labels. Problems with the file as a whole (empty, binary,
wrong encoding, not the format its name says, too big, too many rows) raise `DataError` at once.
Problems with rows are all collected, each with its line and field: they either reject the file
(`on_error="reject"`) or drop those rows (`on_error="skip"`). Nothing here prints a traceback.
Row rules (which fields, which types) are at the bottom; `write_records` writes the same format.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import tempfile
from dataclasses import dataclass, field, replace
from pathlib import Path

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.prompts import ALPACA, PromptTemplate
from vetllm.data.records import Record
from vetllm.errors import DataError, Problem, VetLLMError

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: ~30x the 1,602-note source set as JSON
DEFAULT_MAX_ROWS = 200_000  # far above any hand-labelled set; stops a million-row paste early
FORMATS = {".json": "json", ".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 with a byte-order mark"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
# Spreadsheet apps run cells that start with these as formulas (CSV injection).
_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


@dataclass
class LoadResult:
    """What a load produced: usable records, the problems of skipped rows, and notes on fixes."""

    records: list[Record]
    problems: list[Problem]
    format: str
    skipped_rows: int
    notices: list[str] = field(default_factory=list)
    source: str = ""

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "format": self.format,
            "n_records": len(self.records),
            "skipped_rows": self.skipped_rows,
            "problems": [
                {"line": p.line, "field": p.field, "message": p.message} for p in self.problems
            ],
            "notices": list(self.notices),
        }


def load_dataset_file(
    path: str | os.PathLike,
    *,
    on_error: str = "reject",
    catalogue: Catalogue | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    display_name: str | None = None,
    max_rows: int = DEFAULT_MAX_ROWS,
) -> LoadResult:
    """Read and validate one data file.

    Args:
        path: a .json (list of objects), .jsonl/.ndjson or .csv file.
        on_error: "reject" raises DataError listing every row problem; "skip" drops bad rows
            and returns their problems in `.problems`.
        catalogue: maps codes and disease names to labels (default: the bundled one).
        max_bytes / max_rows: limits that protect the app from accidental huge uploads.
        display_name: the name used in messages (an upload's original name, never a server path).
    """
    if on_error not in ("reject", "skip"):
        raise VetLLMError(f"on_error: got {on_error!r}; use 'reject' or 'skip'")
    path = Path(path)
    name = display_name or path.name
    fmt = FORMATS.get(Path(name).suffix.lower()) or FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}; "
            "use .json (a list of records), .jsonl (one record per line) or .csv"
        )
    text, notices = _decode(_read_limited(path, name, max_bytes), name)
    parse = {"json": _parse_json_list, "jsonl": _parse_jsonl, "csv": _parse_csv}[fmt]
    rows = parse(text, name, max_rows)
    catalogue = catalogue or load_catalogue()
    records, problems, flags, n_bad = [], [], {}, 0
    for index, (line, row) in enumerate(rows, start=1):
        if isinstance(row, Problem):
            problems.append(row)
            n_bad += 1
            continue
        record, row_problems, row_flags = record_from_row(row, line, name, catalogue)
        for flag in row_flags:
            flags[flag] = flags.get(flag, 0) + 1
        if row_problems:
            if fmt == "json":  # a one-line JSON list has every record on line 1
                row_problems = [
                    replace(p, message=f"record {index}: {p.message}") for p in row_problems
                ]
            problems.extend(row_problems)
            n_bad += 1
        else:
            records.append(record)
    notices.extend(summarise_flags(flags))
    return _finish(name, fmt, records, problems, n_bad, notices, on_error)


def _finish(name, fmt, records, problems, n_bad, notices, on_error) -> LoadResult:
    if problems and on_error == "reject":
        raise DataError(
            f"{name}: {len(problems)} problem(s) in {n_bad} row(s); fix them, or skip bad rows "
            "(CLI --skip-bad-rows, on_error='skip')",
            problems,
        )
    if not records:
        if problems:
            raise DataError(f"{name}: no usable records; every row has a problem", problems)
        raise DataError(f"{name}: contains no records")
    return LoadResult(records, problems, fmt, n_bad, notices, name)


# ---------------------------------------------------------------- bytes and text


def _read_limited(path: Path, name: str, max_bytes: int) -> bytes:
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)  # +1 byte tells "at the limit" from "over it"
    except FileNotFoundError:
        raise DataError(f"{name}: file not found") from None
    except IsADirectoryError:
        raise DataError(f"{name}: is a folder, not a data file") from None
    except OSError as error:
        raise DataError(f"{name}: cannot be read ({error.strerror})") from None
    if len(raw) > max_bytes:
        raise DataError(
            f"{name}: is larger than the {_size(max_bytes)} limit; split it into smaller "
            "files or raise max_bytes"
        )
    if not raw.strip():
        raise DataError(f"{name}: is empty (0 records); export the data again")
    return raw


def _size(n_bytes: int) -> str:
    return f"{n_bytes / 2**20:.1f} MiB" if n_bytes >= 2**20 else f"{n_bytes:,} bytes"


def _decode(raw: bytes, name: str) -> tuple[str, list[str]]:
    """Bytes to text: BOM-marked UTF-8/16/32 accepted, anything else must be UTF-8."""
    if raw.startswith(b"\x1f\x8b"):
        raise DataError(
            f"{name}: is gzip-compressed, not text; decompress it (gunzip) and load the file inside"
        )
    if raw.startswith(b"PK\x03\x04"):
        raise DataError(
            f"{name}: is a ZIP archive or an Excel workbook, not text; export it as CSV (UTF-8)"
        )
    for bom, encoding, label in _BOMS:
        if raw.startswith(bom):
            try:
                return raw.decode(encoding), [f"decoded as {label}"]
            except UnicodeDecodeError:
                raise DataError(
                    f"{name}: starts with a {label} byte-order mark but is not valid {label}; "
                    "save it again as UTF-8"
                ) from None
    head = raw[:65536]
    if head.count(b"\x00") * 10 > len(head):  # >10% NUL bytes: not a text file
        looks_utf16 = (
            head[1::2].count(b"\x00") > len(head) // 3 or head[0::2].count(0) > len(head) // 3
        )
        what = "UTF-16 text without a byte-order mark" if looks_utf16 else "binary data"
        raise DataError(f"{name}: looks like {what}, not UTF-8 text; save it as UTF-8")
    try:
        return raw.decode("utf-8"), []
    except UnicodeDecodeError as error:
        line = raw[: error.start].count(b"\n") + 1
        byte = raw[error.start : error.start + 1].hex()
        raise DataError(
            f"{name}: is not UTF-8 text (byte 0x{byte} on line {line}, offset {error.start}); "
            "it may be binary or saved as Latin-1/Windows-1252: save it as UTF-8 "
            "(Excel: 'CSV UTF-8')"
        ) from None


# ---------------------------------------------------------------- JSON


class _LineCounter:
    """Line number of a position in text, counted incrementally (positions only grow)."""

    def __init__(self, text: str):
        self.text, self.position, self.line = text, 0, 1

    def at(self, position: int) -> int:
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line


def _decoder() -> json.JSONDecoder:
    # NaN/Infinity are not JSON; keep them as a marker so the row check can name the field.
    return json.JSONDecoder(parse_constant=NonFinite)


def _parse_json_list(text: str, name: str, max_rows: int) -> list[tuple[int, object]]:
    """Walk the top-level list item by item so every record keeps its line number."""
    decoder, lines, rows = _decoder(), _LineCounter(text), []
    pos = _WHITESPACE.match(text, 0).end()
    if not text.startswith("[", pos):
        _raise_not_a_list(text, name)
    pos += 1
    while True:
        pos = _WHITESPACE.match(text, pos).end()
        if pos >= len(text):
            raise DataError(f"{name}: ends before the closing ']' (truncated file?)")
        if text[pos] == "]" and not rows:
            break
        try:
            item, end = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as error:
            raise _json_syntax_error(name, text, error) from None
        except RecursionError:
            raise _too_deep(name, lines.at(pos)) from None
        rows.append((lines.at(pos), _object_or_problem(item, name, lines.line, len(rows) + 1)))
        if len(rows) > max_rows:
            raise _too_many_rows(name, max_rows)
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            after = _WHITESPACE.match(text, pos + 1).end()
            if text.startswith("]", after):
                raise DataError(
                    f"{name}: line {lines.at(pos)}: trailing comma before ']'; JSON does not "
                    "allow it: delete the last comma"
                )
            pos += 1
        elif text.startswith("]", pos):
            break
        elif pos >= len(text):
            raise DataError(f"{name}: ends before the closing ']' (truncated file?)")
        else:
            raise DataError(
                f"{name}: line {lines.at(pos)}: expected ',' or ']' after record {len(rows)}, "
                f"found {text[pos]!r}"
            )
    tail = _WHITESPACE.match(text, pos + 1).end()
    if tail < len(text):
        raise DataError(f"{name}: line {lines.at(tail)}: unexpected text after the closing ']'")
    return rows


def _object_or_problem(item: object, name: str, line: int, index: int) -> object:
    if isinstance(item, dict):
        return item
    return Problem(name, line, None, f"record {index} is {_kind(item)}; expected an object {{...}}")


def _raise_not_a_list(text: str, name: str) -> None:
    try:
        value = _decoder().decode(text)
    except json.JSONDecodeError as error:
        if error.msg == "Extra data" and text.lstrip().startswith("{"):
            raise DataError(
                f"{name}: looks like JSON Lines (one object per line), not a JSON list; "
                "rename it to .jsonl"
            ) from None
        raise _json_syntax_error(name, text, error) from None
    except RecursionError:
        raise _too_deep(name, 1) from None
    hint = ""
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list) and v]
        if lists:
            hint = f" (the records may be the list under {lists[0]!r}: save only that list)"
    raise DataError(
        f"{name}: the top level is {_kind(value)}; expected a list of records "
        f'[{{"input": ..., "snomed_codes": [...]}}, ...]{hint}'
    )


def _json_syntax_error(name: str, text: str, error: json.JSONDecodeError) -> DataError:
    where = f"line {error.lineno}, column {error.colno}"
    before = text[: error.pos].rstrip()
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        return DataError(f"{name}: ends in the middle of a value at {where} (truncated file?)")
    if before.endswith(",") and error.msg.startswith(("Expecting value", "Expecting property")):
        return DataError(f"{name}: {where}: trailing comma; JSON does not allow it: delete it")
    if error.msg.startswith("Invalid control character"):
        return DataError(
            f"{name}: {where}: a raw control character (NUL byte, tab or line break) inside a "
            "string; JSON needs them escaped (\\n, \\t) and NUL bytes removed"
        )
    return DataError(f"{name}: not valid JSON at {where}: {error.msg}")


def _too_deep(name: str, line: int) -> DataError:
    return DataError(f"{name}: line {line}: JSON nested too deeply; records are flat objects")


def _too_many_rows(name: str, max_rows: int) -> DataError:
    return DataError(
        f"{name}: has more than {max_rows:,} records, the limit; split the file or raise max_rows"
    )


def _kind(value: object) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"a boolean ({str(value).lower()})"
    if isinstance(value, str):
        return "a string"
    return f"a number ({value})"


def _parse_jsonl(text: str, name: str, max_rows: int) -> list[tuple[int, object]]:
    head = text.lstrip()
    if head.startswith("["):
        raise DataError(
            f"{name}: starts with '[' like a JSON list; JSON Lines has one object per line: "
            "rename it to .json if it is a list"
        )
    decoder, rows = _decoder(), []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.strip(" \t\r")
        if not line:
            continue
        if len(rows) >= max_rows:
            raise _too_many_rows(name, max_rows)
        try:
            item = decoder.decode(line)
        except json.JSONDecodeError as error:
            rows.append(
                (
                    line_no,
                    Problem(
                        name, line_no, None, f"not valid JSON: {error.msg} (column {error.colno})"
                    ),
                )
            )
            continue
        except RecursionError:
            rows.append((line_no, Problem(name, line_no, None, "JSON nested too deeply")))
            continue
        rows.append((line_no, _object_or_problem(item, name, line_no, len(rows) + 1)))
    return rows


# ---------------------------------------------------------------- CSV


def _parse_csv(text: str, name: str, max_rows: int) -> list[tuple[int, object]]:
    if text.lstrip()[:1] in ("[", "{"):
        raise DataError(f"{name}: looks like JSON, not CSV; rename it to .json or .jsonl")
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    rows, start = [], 1
    try:
        header = [cell.strip() for cell in next(reader)]
        _check_header(header, name)
        start = reader.line_num + 1
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= max_rows:
                raise _too_many_rows(name, max_rows)
            if len(cells) != len(header):
                message = (
                    f"has {len(cells)} cells but the header has {len(header)} columns; "
                    "quote cells that contain the delimiter or line breaks"
                )
                rows.append((line, Problem(name, line, None, message)))
                continue
            rows.append((line, dict(zip(header, map(_unescape_formula, cells), strict=True))))
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            raise DataError(
                f'{name}: line {start}: a quote (") opened here is never closed; close it or '
                "remove it"
            ) from None
        raise DataError(f"{name}: line {start}: not valid CSV ({error})") from None
    if not rows:
        raise DataError(f"{name}: has a header but no records")
    return rows


def _check_header(header: list[str], name: str) -> None:
    lowered = [h.lower() for h in header]
    missing = []
    if not set(lowered) & set(NOTE_FIELDS):
        missing.append("a note column ('input')")
    if not set(lowered) & set(CODE_FIELDS + DISEASE_FIELDS):
        missing.append("a label column ('snomed_codes' or 'disease')")
    duplicated = sorted({h for h in lowered if lowered.count(h) > 1 and h})
    if duplicated:
        missing.append(f"unique column names (repeated: {', '.join(duplicated)})")
    if missing:
        shown = ", ".join(repr(h) for h in header[:12])
        raise DataError(f"{name}: the header needs {' and '.join(missing)}; found {shown}")


def _unescape_formula(cell: str) -> str:
    """Undo write_records' formula guard so CSV round trips keep the note text exactly."""
    if len(cell) > 1 and cell[0] == "'" and cell[1] in "=+-@\t\r":
        return cell[1:]
    return cell


# ---------------------------------------------------------------- writing


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


def _csv_text(rows: list[dict]) -> str:
    columns = list(dict.fromkeys(key for row in rows for key in row))
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow([_csv_cell(key, row.get(key)) for key in columns])
    return buffer.getvalue()


def _csv_cell(key: str, value: object) -> str:
    if value is None:
        text = ""
    elif key == "snomed_codes" and isinstance(value, list):
        text = "; ".join(str(v) for v in value)
    elif isinstance(value, (list, dict)):
        text = json.dumps(value, ensure_ascii=False)
    else:
        text = str(value)
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


# ---------------------------------------------------------------- row rules

NOTE_FIELDS = ("input", "note", "clinical_note", "text")
CODE_FIELDS = ("snomed_codes", "snomed_code", "codes", "labels")
DISEASE_FIELDS = ("disease", "diagnosis")
SPECIES_FIELDS = ("animal", "species")
_REGENERATED = ("instruction", "output")  # rebuilt from the template when written
MAX_NOTE_CHARS = 20_000  # source notes are ~150-300 characters; 20k is a pasted document
# Zero-width and bidirectional controls hide text and reorder it on screen ("Trojan source");
# ZWJ/ZWNJ (U+200C/D) are kept because Urdu and Persian spelling needs them.
_INVISIBLE = re.compile(
    "[\u00ad\u061c\u200b\u200e\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff]"
)
_CONTROL = re.compile("[\x01-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")
_CODE_SEPARATORS = re.compile(r"[,;|\s]+")
_NAME_SEPARATORS = re.compile(r"\s*(?:[,;/+&]|\band\b)\s*", re.I)
_FLAG_TEXT = {
    "invisible": "removed zero-width or bidirectional control characters from {n} note(s)",
    "control": "replaced control characters with spaces in {n} note(s)",
    "mismatch": "{n} record(s) name a disease that differs from their snomed_codes; the codes "
    "were used",
}


class NonFinite(float):
    """A NaN/Infinity read from JSON, kept distinguishable so the message can name it."""

    def __new__(cls, name: str):
        value = super().__new__(cls, name.replace("-Infinity", "-inf").replace("Infinity", "inf"))
        value.name = name
        return value


def summarise_flags(flags: dict[str, int]) -> list[str]:
    return [_FLAG_TEXT[key].format(n=count) for key, count in flags.items()]


def record_from_row(
    row: dict, line: int, source: str, catalogue: Catalogue
) -> tuple[Record | None, list[Problem], set[str]]:
    """One raw row (a JSON object or CSV cells by header) to a Record, or its problems."""
    keys = {str(key).strip().lower(): key for key in row}
    problems, flags = [], set()

    def problem(field_name: str | None, message: str) -> None:
        problems.append(Problem(source, line, field_name, message))

    note_field = _first(keys, NOTE_FIELDS)
    note = None
    if note_field is None or row[keys[note_field]] is None:
        problem(note_field or "input", "missing note text; every record needs an 'input' field")
    else:
        note, message = _clean_note(row[keys[note_field]], flags)
        if message:
            problem(keys[note_field], message)
    labels, disease_name = _labels(row, keys, catalogue, problem, flags)
    species = _species(row, keys, problem)
    used = {note_field, _first(keys, CODE_FIELDS), _first(keys, DISEASE_FIELDS)}
    used |= {_first(keys, SPECIES_FIELDS), *_REGENERATED}
    extra = {keys[k]: _extra_value(row[keys[k]]) for k in keys if k not in used}
    extra = {k: v for k, v in extra.items() if v not in (None, "")}
    for field_name, value in extra.items():
        if _contains_non_finite(value):
            problem(field_name, "holds NaN or Infinity, which JSON does not allow; use null")
    if problems:
        return None, problems, flags
    record = Record(note, labels, species, disease_name, line, extra)
    return record, problems, flags


def _first(keys: dict, names: tuple[str, ...]) -> str | None:
    return next((name for name in names if name in keys), None)


def _clean_note(value: object, flags: set[str]) -> tuple[str | None, str | None]:
    if not isinstance(value, str):
        return None, f"the note must be text, got {_describe(value)}"
    position = value.find("\x00")
    if position >= 0:
        return None, (
            f"contains a NUL character (\\x00) at position {position}; remove it "
            "(binary data or a broken export?)"
        )
    text = _INVISIBLE.sub("", value)
    if text != value:
        flags.add("invisible")
    cleaned = _CONTROL.sub(" ", text)
    if cleaned != text:
        flags.add("control")
    cleaned = cleaned.strip()
    if not cleaned:
        return None, "the note is empty or only whitespace"
    if len(cleaned) > MAX_NOTE_CHARS:
        return None, (
            f"the note is {len(cleaned):,} characters long; the limit is {MAX_NOTE_CHARS:,} "
            "per note: shorten it or split it into separate records"
        )
    return cleaned, None


def _describe(value: object) -> str:
    if isinstance(value, NonFinite):
        return f"{value.name} (not valid JSON)"
    return _kind(value)


def _labels(row, keys, catalogue, problem, flags) -> tuple[tuple[str, ...], str | None]:
    """Labels from snomed_codes (authoritative) or else from the disease name."""
    code_key, disease_key = _first(keys, CODE_FIELDS), _first(keys, DISEASE_FIELDS)
    codes = (
        _code_labels(row[keys[code_key]], keys[code_key], catalogue, problem) if code_key else []
    )
    raw_disease = row[keys[disease_key]] if disease_key else None
    if raw_disease is not None and not isinstance(raw_disease, str):
        problem(keys[disease_key], f"must be a disease name (text), got {_describe(raw_disease)}")
        raw_disease = None
    disease_name = raw_disease.strip() if raw_disease and raw_disease.strip() else None
    named = _diseases_named(disease_name, catalogue) if disease_name else None
    if codes is None:  # the codes had problems, already reported
        return (), disease_name
    if codes:
        if named and not {d.label for d in named} & set(codes):
            flags.add("mismatch")
        return tuple(dict.fromkeys(codes)), disease_name
    if named:
        return tuple(dict.fromkeys(d.label for d in named)), disease_name
    if disease_name:
        problem(
            keys[disease_key],
            f"disease {disease_name!r} is not in the catalogue and there are no snomed_codes; "
            "add it as a variant in a catalogue file (load_catalogue(extra_path), CLI "
            "--catalogue FILE) or give its code",
        )
    else:
        state = "is empty or null" if code_key else "is missing"
        problem(
            keys[code_key] if code_key else "snomed_codes",
            f"missing label: snomed_codes {state} and there is no 'disease' name; give "
            "'snomed_codes' (a list of codes) or a 'disease' name",
        )
    return (), disease_name


def _diseases_named(name: str, catalogue: Catalogue) -> list | None:
    disease = catalogue.lookup_name(name)
    if disease is not None:
        return [disease]
    parts = [p for p in _NAME_SEPARATORS.split(name) if p]
    found = [catalogue.lookup_name(p) for p in parts]
    return found if len(parts) > 1 and all(found) else None


def _code_labels(value: object, field_name: str, catalogue: Catalogue, problem) -> list | None:
    """Catalogue labels from a codes value; None when it has problems (each reported)."""
    items, type_problems = _code_items(value)
    for message in type_problems:
        problem(field_name, message)
    labels, unknown = [], False
    for code in items:
        disease = catalogue.by_label(code)
        if disease is None:
            problem(field_name, _unknown_code_message(code, catalogue))
            unknown = True
        else:
            labels.append(disease.label)
    return None if type_problems or unknown else labels


def _code_items(value: object) -> tuple[list[str], list[str]]:
    if value is None:
        return [], []
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):  # CSV cells may hold a JSON list string
            try:
                value = json.loads(text)
            except (json.JSONDecodeError, RecursionError):
                return [], [f"{text[:60]!r} starts like a JSON list but is not valid JSON"]
        else:
            return [c for c in _CODE_SEPARATORS.split(text) if c], []
    was_list = isinstance(value, list)
    value = value if was_list else [value]
    items, problems = [], []
    for index, item in enumerate(value, start=1):
        if isinstance(item, str):
            items.extend(c for c in _CODE_SEPARATORS.split(item) if c)
        elif isinstance(item, int) and not isinstance(item, bool):
            items.append(str(item))  # an integer code loses nothing
        else:
            where = f"item {index}" if was_list else "the value"
            problems.append(f'{where} is {_describe(item)}; codes are text, e.g. ["198462004"]')
    return items, problems


def _unknown_code_message(code: str, catalogue: Catalogue) -> str:
    named = catalogue.lookup_name(code)
    if named is not None:
        return (
            f"{code!r} is a disease name, not a code; put names in 'disease' or use its label "
            f"{named.label!r}"
        )
    return (
        f"code {code!r} is not in the disease catalogue; if it is right, add it to a catalogue "
        "file shaped like catalogue.json and load it (load_catalogue(extra_path), CLI "
        "--catalogue FILE)"
    )


def _species(row, keys, problem) -> str | None:
    key = _first(keys, SPECIES_FIELDS)
    value = row[keys[key]] if key else None
    if value is None:
        return None
    if not isinstance(value, str):
        problem(keys[key], f"the species must be text, got {_describe(value)}")
        return None
    return value.strip().lower() or None


def _extra_value(value: object) -> object:
    if isinstance(value, str) and value.strip().startswith(("[", "{")):
        try:  # CSV cells hold lists (e.g. 'symptoms') and objects as JSON strings
            return json.loads(value)
        except (json.JSONDecodeError, RecursionError):
            return value
    return value


def _contains_non_finite(value: object) -> bool:
    if isinstance(value, str):
        return False  # the common case: no walk needed
    stack = [value]  # iterative: values may be nested close to the JSON depth limit
    while stack:
        item = stack.pop()
        if isinstance(item, NonFinite):
            return True
        if isinstance(item, dict):
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return False
