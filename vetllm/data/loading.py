"""Read clinical-note data (JSON list, JSONL, CSV, Parquet, a Hub dataset) into validated records.

`load_dataset_file()` reads the source format of DOMAIN.md section 2. A file's format comes
from its name: JSON, JSON Lines and CSV are decoded here (UTF-8, or UTF-16/32 with a byte-order
mark) and parsed by `vetllm.data.text_formats`, which keeps each row's line; Parquet files and
`hub:user/name[:split]` sources are read through Hugging Face `datasets`
(`vetllm.data.hf_datasets`). Problems with the source as a whole (empty, binary, wrong
encoding, not the format its name says, too big, too many rows, a Hub dataset not to be had)
raise `DataError` at once. Each row then goes through the row rules of
`vetllm.data.validation`; row problems are all collected, each with its line (or row) and
field, and either reject the file (`on_error="reject"`) or drop those rows (`on_error="skip"`).
`LoadResult.to_dataset()` gives the records as a `datasets.Dataset`. Nothing here prints a
traceback. Writing records back out is `vetllm.data.writing`.
"""

from __future__ import annotations

import os
import stat
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data import text_formats
from vetllm.data.hf_datasets import (
    ArrowRows,
    is_hub_source,
    read_hub_rows,
    read_parquet_rows,
    records_dataset,
)
from vetllm.data.records import Record
from vetllm.data.text_formats import Budget
from vetllm.data.validation import check_header, record_from_row, summarise_flags
from vetllm.data.writing import FORMATS
from vetllm.errors import DataError, Problem, VetLLMError

__all__ = ["DEFAULT_MAX_BYTES", "DEFAULT_MAX_ROWS", "LoadResult", "load_dataset_file"]

DEFAULT_MAX_BYTES = 50 * 1024 * 1024  # 50 MiB: ~30x the 1,602-note source set as JSON
DEFAULT_MAX_ROWS = 200_000  # far above any hand-labelled set; stops a million-row paste early
READ_FORMATS = {**FORMATS, ".parquet": "parquet"}  # what the loader reads (Parquet: read only)
_PARSERS = {
    "json": text_formats.parse_json_list,
    "jsonl": text_formats.parse_jsonl,
    "csv": text_formats.parse_csv,
}
_BOMS = (
    (b"\xff\xfe\x00\x00", "utf-32", "UTF-32"),
    (b"\x00\x00\xfe\xff", "utf-32", "UTF-32"),
    (b"\xef\xbb\xbf", "utf-8-sig", "UTF-8 with a byte-order mark"),
    (b"\xff\xfe", "utf-16", "UTF-16"),
    (b"\xfe\xff", "utf-16", "UTF-16"),
)


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

    def to_dataset(self):
        """The records as a `datasets.Dataset` (input, snomed_codes, animal, disease, line)."""
        return records_dataset(self.records)


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
    """Read and validate one data source.

    Args:
        path: a .json (list of objects), .jsonl/.ndjson, .csv or .parquet file, or a Hub
            dataset written `hub:user/name[:split]` (split `train` by default).
        on_error: "reject" raises DataError listing every row problem; "skip" drops bad rows
            and returns their problems in `.problems`.
        catalogue: maps codes and disease names to labels (default: the bundled one).
        max_bytes / max_rows: limits that protect the app from accidental huge uploads
            (max_bytes applies to files).
        display_name: the name used in messages (an upload's original name, never a server path).
        time_budget_s: stop with DataError after this many seconds (None: no limit).
    """
    if on_error not in ("reject", "skip"):
        raise VetLLMError(f"on_error: got {on_error!r}; use 'reject' or 'skip'")
    if is_hub_source(path):
        name = display_name or str(path)
        fmt, budget, notices = "hub", Budget(name, time_budget_s), []
        rows = _arrow_rows(read_hub_rows(str(path)), name, max_rows)
    else:
        path = Path(path)
        name = display_name or path.name
        fmt, budget = _format_of(path, name), Budget(name, time_budget_s)
        rows, notices = _file_rows(path, name, fmt, max_bytes, max_rows, budget)
    result = _validate(rows, fmt, name, catalogue or load_catalogue(), budget)
    result.notices[:0] = notices
    _check_usable(result, on_error)
    return result


def _format_of(path: Path, name: str) -> str:
    fmt = READ_FORMATS.get(Path(name).suffix.lower()) or READ_FORMATS.get(path.suffix.lower())
    if fmt is None:
        raise DataError(
            f"{name}: unsupported file type {Path(name).suffix or '(none)'!r}; use .json (a "
            "list of records), .jsonl (one record per line), .csv or .parquet, or a Hub "
            "dataset (hub:user/name)"
        )
    return fmt


def _file_rows(path: Path, name: str, fmt: str, max_bytes: int, max_rows: int, budget: Budget):
    """(rows, notices): the raw rows, each with its line (JSON/JSONL/CSV) or row number
    (Parquet), and notes on how the file was decoded."""
    raw = _read_limited(path, name, max_bytes)
    budget.check(force=True)
    if fmt == "parquet":
        _check_parquet_bytes(raw, name)
        return _arrow_rows(read_parquet_rows(path, name), name, max_rows), []
    text, notices = _decode(raw, name)
    return _PARSERS[fmt](text, name, max_rows, budget), notices


def _check_parquet_bytes(raw: bytes, name: str) -> None:
    if not (raw.startswith(b"PAR1") and raw.endswith(b"PAR1")):
        raise DataError(
            f"{name}: is not a Parquet file (it lacks the PAR1 markers Parquet starts and ends "
            "with); export it again, or give it the suffix of its real format (.json, .csv)"
        )


def _arrow_rows(source: ArrowRows, name: str, max_rows: int) -> Iterable:
    """(row number, row) of a Parquet file or Hub dataset, read as validation goes (which
    checks the time budget), within the row limit."""
    check_header(source.columns, name)  # the same column rules as a CSV header
    for number, row in enumerate(source.rows, start=1):
        if number > max_rows:
            raise text_formats.too_many_rows(name, max_rows)
        yield number, row


def _validate(rows, fmt: str, name: str, catalogue: Catalogue, budget: Budget) -> LoadResult:
    """Every row through the row rules: the records, and every problem of the others."""
    records, problems, flags, n_bad = [], [], Counter(), 0
    for index, (line, row) in enumerate(rows, start=1):
        budget.check(force=index == 1)
        if isinstance(row, Problem):  # the parser already found this row unusable
            row_problems = [row]
        else:
            record, row_problems, row_flags = record_from_row(row, line, name, catalogue)
            flags.update(row_flags)
            row_problems = _where(row_problems, fmt, index)
        if row_problems:
            problems.extend(row_problems)
            n_bad += 1
        else:
            records.append(record)
    return LoadResult(records, problems, fmt, n_bad, summarise_flags(flags), name)


def _where(problems: list[Problem], fmt: str, index: int) -> list[Problem]:
    """Say which record a problem is in where the line alone cannot."""
    if fmt == "json":  # a one-line JSON list has every record on line 1
        return [replace(p, message=f"record {index}: {p.message}") for p in problems]
    if fmt in ("parquet", "hub"):  # no lines: the row number says it
        return [replace(p, line=None, message=f"row {index}: {p.message}") for p in problems]
    return problems


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
