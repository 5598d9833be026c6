"""Parse the text source formats (JSON list, JSON Lines, CSV) into raw rows with their lines.

The standard library parses: `json` (whose errors give line and column) and `csv`. Each row
keeps the physical line it starts on, and a row that cannot be parsed becomes one `Problem`,
so the row rules of `vetllm.data.validation` can name line, field and reason for every row.
The row limit and the time budget (`Budget`, shared with the other sources) are checked while
parsing, so a huge or slow file stops early. Every cell and header loses the writer's formula
guard (`unescape_formula`); `guess_delimiter` and `header_names` are shared with batch coding's
notes reader (`vetllm.batchcode`), so both read a CSV the project wrote the same way.

Hugging Face `datasets` does not read these files for validation, because it changes what the
messages are about (checked with datasets 5.2 / pyarrow 26): it drops line numbers, reads NaN
as null, keeps only the last of two repeated keys, reads a 5,000-digit code as `inf`, gives
every row every column (so "field missing" and "field null" look the same, and a file using
`input` in some rows and `note` in others looks aliased in every row), and refuses non-object
records, lone surrogates and ragged CSV rows as a whole file. The validated records become a
`datasets.Dataset` afterwards (`LoadResult.to_dataset`).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import re
import time
from collections.abc import Iterator

from vetllm.data.validation import check_header, json_decoder, kind_of
from vetllm.data.writing import unescape_formula
from vetllm.errors import DataError, Problem

# A row as parsed: (line number, the raw object or CSV cells by header | the row's one problem).
ParsedRow = tuple[int, dict | Problem]
_WHITESPACE = re.compile(r"[ \t\n\r]*")  # JSON's whitespace, as the json module skips it
# The syntax check of a whole JSON list: C speed; parse_int=str so that a code of thousands of
# digits (over Python's 4,300-digit int limit) is left to the row check to name.
_SYNTAX_CHECK = json.JSONDecoder(parse_int=str)
_BUDGET_EVERY = 64  # rows between clock reads of the time budget


class Budget:
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


def too_many_rows(name: str, max_rows: int) -> DataError:
    return DataError(
        f"{name}: has more than {max_rows:,} records, the limit; split the file or raise max_rows"
    )


# ---------------------------------------------------------------- JSON list


class _LineCounter:
    """Line number of a position in text, counted incrementally (positions only grow)."""

    def __init__(self, text: str):
        self.text, self.position, self.line = text, 0, 1

    def at(self, position: int) -> int:
        self.line += self.text.count("\n", self.position, position)
        self.position = position
        return self.line


def parse_json_list(text: str, name: str, max_rows: int, budget: Budget) -> list[ParsedRow]:
    """`json` checks the whole file (syntax errors with line and column, the top-level type,
    the row count); then each record is decoded again where it starts, to learn its line."""
    value = _check_syntax(text, name)
    if not isinstance(value, list):
        raise _not_a_list(name, json_decoder().decode(text))
    if len(value) > max_rows:
        raise too_many_rows(name, max_rows)
    del value  # the records are decoded again below, with the row rules' markers
    rows = []
    for index, (line, item) in enumerate(_records_with_lines(text, name), start=1):
        budget.check()
        rows.append((line, _object_or_problem(item, name, line, index)))
    return rows


def _records_with_lines(text: str, name: str) -> Iterator[tuple[int, object]]:
    """(line, record) for each top-level record of a JSON list, decoded with the marking decoder
    of the row rules (NaN, repeated keys, huge integers). The list is known to be valid JSON,
    except when called to find a record nested too deeply (it raises that error, with the line)."""
    decoder, lines = json_decoder(), _LineCounter(text)
    pos = _WHITESPACE.match(text).end() + 1  # just after the opening '['
    pos = _WHITESPACE.match(text, pos).end()
    while not text.startswith("]", pos):
        try:
            item, end = decoder.raw_decode(text, pos)
        except RecursionError:
            raise _too_deep(name, lines.at(pos)) from None
        yield lines.at(pos), item
        pos = _WHITESPACE.match(text, end).end()
        if text.startswith(",", pos):
            pos = _WHITESPACE.match(text, pos + 1).end()


def _check_syntax(text: str, name: str) -> object:
    """The whole file decoded by `json`, or DataError naming the line of what is wrong."""
    try:
        return _SYNTAX_CHECK.decode(text)
    except json.JSONDecodeError as error:
        raise _json_syntax_error(name, text, error) from None
    except RecursionError:
        pass  # json does not say where; the search below finds the record nested too deeply
    if text.lstrip(" \t\n\r").startswith("["):
        with contextlib.suppress(json.JSONDecodeError):  # the records before it are valid
            for _ in _records_with_lines(text, name):  # raises DataError naming its line
                pass
    raise _too_deep(name, 1)


def _object_or_problem(item: object, name: str, line: int, index: int) -> dict | Problem:
    if isinstance(item, dict):
        return item
    return Problem(
        name, line, None, f"record {index} is {kind_of(item)}; expected an object {{...}}"
    )


def _not_a_list(name: str, value: object) -> DataError:
    hint = ""
    if isinstance(value, dict):
        lists = [k for k, v in value.items() if isinstance(v, list) and v]
        if lists:
            hint = f" (the records may be the list under {lists[0]!r}: save only that list)"
    return DataError(
        f"{name}: the top level is {kind_of(value)}; expected a list of records "
        f'[{{"input": ..., "snomed_codes": [...]}}, ...]{hint}'
    )


def _json_syntax_error(name: str, text: str, error: json.JSONDecodeError) -> DataError:
    where = f"line {error.lineno}, column {error.colno}"
    before = text[: error.pos].rstrip()
    if error.pos >= len(text.rstrip()) or error.msg.startswith("Unterminated string"):
        return DataError(f"{name}: ends in the middle of a value at {where} (truncated file?)")
    if before.endswith(",") and error.msg.startswith(("Expecting value", "Expecting property")):
        comma = len(before) - 1  # name the comma's line, not the line of the ']' after it
        line, column = text.count("\n", 0, comma) + 1, comma - text.rfind("\n", 0, comma)
        return DataError(
            f"{name}: line {line}, column {column}: trailing comma; JSON does not allow it: "
            "delete it"
        )
    if error.msg.startswith("Invalid control character"):
        return DataError(
            f"{name}: {where}: a raw control character (NUL byte, tab or line break) inside a "
            "string; JSON needs them escaped (\\n, \\t) and NUL bytes removed"
        )
    if error.msg == "Extra data":
        return _extra_data_error(name, text, where)
    return DataError(f"{name}: not valid JSON at {where}: {error.msg}")


def _extra_data_error(name: str, text: str, where: str) -> DataError:
    start = text.lstrip(" \t\n\r")[:1]
    if start == "{":
        return DataError(
            f"{name}: looks like JSON Lines (one object per line), not a JSON list; "
            "rename it to .jsonl"
        )
    what = "the closing ']'" if start == "[" else "the first JSON value"
    return DataError(f"{name}: {where}: unexpected text after {what}; a file holds one list")


def _too_deep(name: str, line: int) -> DataError:
    return DataError(f"{name}: line {line}: JSON nested too deeply; records are flat objects")


# ---------------------------------------------------------------- JSON Lines


def parse_jsonl(text: str, name: str, max_rows: int, budget: Budget) -> list[ParsedRow]:
    if text.lstrip().startswith("["):
        raise DataError(
            f"{name}: starts with '[' like a JSON list; JSON Lines has one object per line: "
            "rename it to .json if it is a list"
        )
    decoder, rows = json_decoder(), []
    for line_no, line in enumerate(text.split("\n"), start=1):
        line = line.strip(" \t\r")
        if not line:
            continue
        if len(rows) >= max_rows:
            raise too_many_rows(name, max_rows)
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


def parse_csv(text: str, name: str, max_rows: int, budget: Budget) -> list[ParsedRow]:
    if text.lstrip()[:1] in ("[", "{"):
        raise DataError(f"{name}: looks like JSON, not CSV; rename it to .json or .jsonl")
    delimiter = guess_delimiter(text)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = header_names(next(reader))
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


def guess_delimiter(text: str) -> str:
    """The CSV delimiter: whichever of comma, semicolon and tab the first line has most of."""
    first_line = text.split("\n", 1)[0]
    return max((",", ";", "\t"), key=first_line.count)


def header_names(cells: list[str]) -> list[str]:
    """A CSV header's column names: trimmed, and the formula guard of the writer removed."""
    return [unescape_formula(cell.strip()) for cell in cells]


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
                raise too_many_rows(name, max_rows)
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
