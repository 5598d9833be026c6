"""Read clinical-note data files (JSON list, JSONL, CSV) into validated records.

`load_dataset_file()` reads the source format of DOMAIN.md section 2: it picks the format from
the file name, decodes the bytes (UTF-8, or UTF-16/32 with a byte-order mark), enforces the size
and row limits, and parses JSON, JSON Lines or CSV, keeping each row's line number. Problems with
the file as a whole (empty, binary, wrong encoding, not the format its name says, too big, too
many rows) raise `DataError` at once. Each row then goes through the row rules of
`vetllm.data.validation`; row problems are all collected, each with its line and field, and
either reject the file (`on_error="reject"`) or drop those rows (`on_error="skip"`). Nothing
here prints a traceback. `write_records` (from `vetllm.data.writing`) is re-exported here.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import stat
import time
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.records import Record
from vetllm.data.validation import (
    check_header,
    json_decoder,
    kind_of,
    record_from_row,
    summarise_flags,
)
from vetllm.data.writing import FORMATS, unescape_formula, write_records
from vetllm.errors import DataError, Problem, VetLLMError

# write_records and FORMATS are re-exported: callers import them from here.
__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ROWS", "FORMATS", "LoadResult"]
__all__ += ["load_dataset_file", "write_records"]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: ~30x the 1,602-note source set as JSON
DEFAULT_MAX_ROWS = 200_000  # far above any hand-labelled set; stops a million-row paste early
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 with a byte-order mark"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)
_WHITESPACE = re.compile(r"[ \t\n\r]*")
_BUDGET_EVERY = 64  # rows between clock reads of the time budget


class _Budget:
    """A wall-clock limit on one check: the app gives anonymous uploads a few seconds each."""

    def __init__(self, name: str, seconds: float | None):
        self.name, self.seconds, self.count = name, seconds, 0
        self.deadline = None if seconds is None else time.monotonic() + seconds

    def check(self, force: bool = False) -> None:
        """Raise DataError once the limit has passed (the clock is read every few rows)."""
        self.count += 1
        if self.deadline is None or (self.count % _BUDGET_EVERY and not force):
            return
        if time.monotonic() > self.deadline:
            raise DataError(
                f"{self.name}: checking stopped at the time limit of {self.seconds:g} s; "
                "split the file into smaller ones or check it with `vetllm data validate`"
            )


# A row as parsed: (line number, the raw object or CSV cells by header | the row's one problem).
ParsedRow = tuple[int, dict | Problem]


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
    time_budget_s: float | None = None,
) -> LoadResult:
    """Read and validate one data file.

    Args:
        path: a .json (list of objects), .jsonl/.ndjson or .csv file.
        on_error: "reject" raises DataError listing every row problem; "skip" drops bad rows
            and returns their problems in `.problems`.
        catalogue: maps codes and disease names to labels (default: the bundled one).
        max_bytes / max_rows: limits that protect the app from accidental huge uploads.
        display_name: the name used in messages (an upload's original name, never a server path).
        time_budget_s: stop with DataError after this many seconds (None: no limit).
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
    budget = _Budget(name, time_budget_s)
    text, notices = _decode(_read_limited(path, name, max_bytes), name)
    budget.check(force=True)
    parse = {"json": _parse_json_list, "jsonl": _parse_jsonl, "csv": _parse_csv}[fmt]
    rows = parse(text, name, max_rows, budget)
    catalogue = catalogue or load_catalogue()
    records, problems, flags, n_bad = [], [], Counter(), 0
    for index, (line, row) in enumerate(rows, start=1):
        budget.check(force=index == 1)
        if isinstance(row, Problem):  # the parser already found this row unusable
            row_problems = [row]
        else:
            record, row_problems, row_flags = record_from_row(row, line, name, catalogue)
            flags.update(row_flags)
            if fmt == "json":  # a one-line JSON list has every record on line 1
                row_problems = [
                    replace(p, message=f"record {index}: {p.message}") for p in row_problems
                ]
        if row_problems:
            problems.extend(row_problems)
            n_bad += 1
        else:
            records.append(record)
    result = LoadResult(records, problems, fmt, n_bad, notices + summarise_flags(flags), name)
    _check_usable(result, on_error)
    return result


def _check_usable(result: LoadResult, on_error: str) -> None:
    """Raise for a load that yields nothing, or that has row problems when rejecting them."""
    name, problems, n_bad = result.source, result.problems, result.skipped_rows
    if problems and on_error == "reject":
        raise DataError(
            f"{name}: {len(problems)} problem(s) in {n_bad} row(s); fix them, or skip bad rows "
            "(CLI --skip-bad-rows, on_error='skip')",
            problems,
        )
    if not result.records:
        if problems:
            raise DataError(f"{name}: no usable records; every row has a problem", problems)
        raise DataError(f"{name}: contains no records")


# ---------------------------------------------------------------- bytes and text


def _read_limited(path: Path, name: str, max_bytes: int) -> bytes:
    try:
        # O_NONBLOCK: opening a named pipe would otherwise wait for a writer forever.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
        with os.fdopen(fd, "rb") as handle:
            mode = os.fstat(handle.fileno()).st_mode
            if stat.S_ISDIR(mode):
                raise IsADirectoryError
            if not stat.S_ISREG(mode):
                raise DataError(
                    f"{name}: is not a regular file (a pipe, device or socket); give a data file"
                )
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
        looks_utf16 = head[1::2].count(0) > len(head) // 3 or head[0::2].count(0) > len(head) // 3
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
    # NaN/Infinity, repeated keys and huge integers are kept as markers the row check names.
    return json_decoder()


def _parse_json_list(text: str, name: str, max_rows: int, budget: _Budget) -> list[ParsedRow]:
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
        budget.check()
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


def _object_or_problem(item: object, name: str, line: int, index: int) -> dict | Problem:
    if isinstance(item, dict):
        return item
    return Problem(
        name, line, None, f"record {index} is {kind_of(item)}; expected an object {{...}}"
    )


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
        f"{name}: the top level is {kind_of(value)}; expected a list of records "
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


def _parse_jsonl(text: str, name: str, max_rows: int, budget: _Budget) -> list[ParsedRow]:
    if text.lstrip().startswith("["):
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
        budget.check()
        try:
            row = _object_or_problem(decoder.decode(line), name, line_no, len(rows) + 1)
        except json.JSONDecodeError as error:
            message = f"not valid JSON: {error.msg} (column {error.colno})"
            row = Problem(name, line_no, None, message)
        except RecursionError:
            row = Problem(name, line_no, None, "JSON nested too deeply")
        rows.append((line_no, row))
    return rows


# ---------------------------------------------------------------- CSV


def _parse_csv(text: str, name: str, max_rows: int, budget: _Budget) -> list[ParsedRow]:
    if text.lstrip()[:1] in ("[", "{"):
        raise DataError(f"{name}: looks like JSON, not CSV; rename it to .json or .jsonl")
    first_line = text.split("\n", 1)[0]
    delimiter = max((",", ";", "\t"), key=first_line.count)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = [cell.strip() for cell in next(reader)]
    except csv.Error as error:
        raise DataError(f"{name}: line 1: the header is not valid CSV ({error})") from None
    check_header(header, name)
    rows: list[ParsedRow] = []
    first = reader.line_num + 1  # physical line where the records start
    offset = _skip_lines(text, 0, reader.line_num)
    while offset < len(text):
        # A quote that is never closed swallows the rest of the file: that line becomes one
        # problem row and reading resumes on the next line, so other rows keep their own checks.
        broken = _csv_rows(text[offset:], first, header, delimiter, name, max_rows, rows, budget)
        if broken is None:
            break
        offset = _skip_lines(text, offset, broken + 1 - first)
        first = broken + 1
    if not rows:
        raise DataError(f"{name}: has a header but no records")
    return rows


def _skip_lines(text: str, offset: int, lines: int) -> int:
    """The offset just after `lines` more line breaks from `offset` (len(text) if fewer)."""
    for _ in range(lines):
        found = text.find("\n", offset)
        if found < 0:
            return len(text)
        offset = found + 1
    return offset


def _csv_rows(text, first, header, delimiter, name, max_rows, rows, budget) -> int | None:
    """Parse CSV records starting at physical line `first` into `rows`; the line of an unclosed
    quote (recorded as a problem row), or None when the text was read to its end."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = first
    try:
        for cells in reader:
            line, start = start, first + reader.line_num
            if not any(cell.strip() for cell in cells):
                continue
            if len(rows) >= max_rows:
                raise _too_many_rows(name, max_rows)
            budget.check()
            if len(cells) != len(header):
                message = (
                    f"has {len(cells)} cells but the header has {len(header)} columns; "
                    "quote cells that contain the delimiter or line breaks"
                )
                rows.append((line, Problem(name, line, None, message)))
                continue
            rows.append((line, dict(zip(header, map(unescape_formula, cells), strict=True))))
    except csv.Error as error:
        if "unexpected end of data" in str(error):
            message = 'a quote (") opened on this line is never closed; close it or remove it'
        else:
            message = f"not valid CSV ({error})"
        rows.append((start, Problem(name, start, None, message)))
        return start
    return None
