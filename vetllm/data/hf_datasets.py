"""What `vetllm.data` reads through Apache Arrow and Hugging Face `datasets`: Parquet files, Hub
datasets, and records as a `datasets.Dataset`.

`read_parquet_rows()` streams a local Parquet file's rows with `pyarrow.parquet` (installed
with `datasets`), a batch at a time, without `datasets`: its `load_dataset("parquet")` imports
torch (`vetllm data validate x.parquet` took 1.9 s that way, about 0.3 s now) and writes lock
files to a cache. `read_hub_rows()` loads a data source written `hub:user/name[:split]` (split `train`
by default; slices such as `train[:500]` work; `parse_hub_source` checks that form without the
network) into the usual Hugging Face cache, as models are; with the hub offline
(HF_HUB_OFFLINE=1) a dataset that is not cached fails at once with a message saying how to bring
it over. Only hub: sources (and `records_dataset()`) import `datasets`, inside the function:
importing it takes about a second, and its `load_dataset` imports torch. Both readers hand back
plain rows (lists, text, numbers) for the row rules of `vetllm.data.validation`;
`records_dataset()` turns validated records into a `datasets.Dataset`. Every error of datasets
or pyarrow becomes a `DataError` naming the source.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vetllm.data.records import Record
from vetllm.errors import DataError

HUB_PREFIX = "hub:"  # a data value starting so names a Hub dataset, not a file
HUB_FORM = "write hub:USER/NAME or hub:USER/NAME:SPLIT, e.g. hub:someone/vet-notes:train"
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_SPLIT = re.compile(r"[\w.-]+(\[[\w:%+-]*\])?")  # "train", "validation", "train[:10%]"
_OFFLINE_VALUES = ("1", "true", "yes", "on")
PARQUET_BATCH_ROWS = 1024  # rows per read: memory stays small whatever the file's size


@dataclass
class ArrowRows:
    """A source read through Arrow: its column names and its rows (read lazily)."""

    columns: list[str]
    rows: Iterator[dict]


def is_hub_source(value: object) -> bool:
    """True for a data value of the form `hub:user/name[:split]`."""
    return str(value).startswith(HUB_PREFIX)


def parse_hub_source(value: str) -> tuple[str, str]:
    """`hub:user/name[:split]` -> (repo id, split); DataError when it is not of that form.

    Only the form is checked (no network): configs and the CLI check it before a run starts."""
    repo, _, split = value[len(HUB_PREFIX) :].partition(":")
    split = split or "train"
    if not _REPO_ID.fullmatch(repo) or not _SPLIT.fullmatch(split):
        raise DataError(f"{value}: not a Hub dataset name; {HUB_FORM}")
    return repo, split


def _import_datasets(name: str):
    """The `datasets` module, or DataError: a bare GPU image may lack it (text formats do not
    need it)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{name}: needs the `datasets` package (it reads Hub datasets), which is "
            "not installed; pip install datasets, or give a JSON, JSON Lines or CSV file"
        ) from None
    datasets.disable_progress_bars()  # one load is one line of output, not a progress bar
    return datasets


# ---------------------------------------------------------------- Parquet


def read_parquet_rows(path: Path, name: str) -> ArrowRows:
    """The rows of a local Parquet file, read a batch at a time (never the whole file at once)."""
    parquet = _import_parquet(name)
    handle = None
    try:
        handle = parquet.ParquetFile(path)
        columns = list(handle.schema_arrow.names)
    except Exception as error:  # pyarrow raises many types; none may reach a user
        if handle is not None:
            handle.close()
        raise _unreadable(name, "Parquet", error, path) from None
    return ArrowRows(columns, _parquet_rows(handle, name, path))


def _import_parquet(name: str):
    """`pyarrow.parquet`, or DataError: a bare GPU image may lack it (text formats do not)."""
    try:
        import pyarrow.parquet as parquet
    except ImportError:
        raise DataError(
            f"{name}: needs the `pyarrow` package to read Parquet (it comes with `datasets`), "
            "which is not installed; pip install datasets, or give a JSON, JSON Lines or CSV file"
        ) from None
    return parquet


def _parquet_rows(handle, name: str, path: Path) -> Iterator[dict]:
    """Plain rows of an open ParquetFile; a damaged row group shows only when it is read."""
    try:
        for batch in handle.iter_batches(batch_size=PARQUET_BATCH_ROWS):
            for row in batch.to_pylist():
                yield _plain(row)
    except Exception as error:  # pyarrow raises many types; none may reach a user
        raise _unreadable(name, "Parquet", error, path) from None
    finally:
        handle.close()


def _rows(dataset, name: str) -> Iterator[dict]:
    """Plain rows of a Hub dataset; a read error part way becomes a DataError."""
    try:
        with _quiet():
            for row in dataset:
                yield _plain(row)
    except Exception as error:  # pyarrow and datasets raise many types
        raise _unreadable(name, "a Hub dataset", error) from None


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """datasets logs a read error (with the file's path) before raising it: the DataError made
    from it says what is wrong instead, so its log stays quiet meanwhile."""
    from datasets.utils import logging as datasets_logging

    level = datasets_logging.get_verbosity()
    datasets_logging.set_verbosity(logging.CRITICAL)
    try:
        yield
    finally:
        datasets_logging.set_verbosity(level)


def _plain(row: dict) -> dict:
    """Only JSON types: dates, decimals or bytes become text, so records can be written again."""
    return json.loads(json.dumps(row, default=str))


def _unreadable(name: str, kind: str, error: Exception, path: Path | None = None) -> DataError:
    reason = (str(error).strip().splitlines() or [""])[0]
    if path is not None:  # the name the user knows, never the server's path
        reason = reason.replace(str(path), name)
    reason = reason[:200]
    return DataError(
        f"{name}: cannot be read as {kind} ({type(error).__name__}: {reason}); "
        "export it again, or save it as JSON, JSON Lines or CSV"
    )


# ---------------------------------------------------------------- Hub


def hub_offline() -> bool:
    """True when the environment switches the Hugging Face Hub off (read at each call)."""
    flags = (os.environ.get(key, "") for key in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE"))
    return any(flag.strip().lower() in _OFFLINE_VALUES for flag in flags)


def read_hub_rows(value: str) -> ArrowRows:
    """The rows of a Hub dataset split; offline, only a dataset already in the cache loads."""
    repo, split = parse_hub_source(value)
    datasets = _import_datasets(value)
    if hub_offline() and not datasets.config.HF_HUB_OFFLINE:
        # datasets read HF_HUB_OFFLINE when it was imported, before it was set: it would go
        # to the network, so stop here.
        raise _offline(value, repo, split)
    try:
        with _quiet():
            dataset = datasets.load_dataset(repo, split=split)
    except Exception as error:  # network, hub and pyarrow errors of many types
        raise _hub_error(value, repo, split, error) from None
    return ArrowRows(list(dataset.column_names), _rows(dataset, value))


def _hub_error(value: str, repo: str, split: str, error: Exception) -> DataError:
    from datasets.exceptions import DatasetNotFoundError

    if isinstance(error, ValueError) and "split" in str(error).lower():  # cached, wrong split
        reason = str(error).strip().splitlines()[0][:200]
        return DataError(f"{value}: dataset {repo!r} has no split {split!r} ({reason})")
    if hub_offline():
        return _offline(value, repo, split)
    if isinstance(error, DatasetNotFoundError):
        return DataError(
            f"{value}: no dataset {repo!r} on the Hugging Face Hub, or it is private or gated; "
            "check the name, or log in (huggingface-cli login) if you have access"
        )
    if isinstance(error, ConnectionError):
        return DataError(
            f"{value}: the Hugging Face Hub could not be reached; check the network, or use a "
            "local file (JSON, JSONL, CSV or Parquet)"
        )
    return _unreadable(value, "a Hub dataset", error)


def _offline(value: str, repo: str, split: str) -> DataError:
    export = f"datasets.load_dataset('{repo}', split='{split}').to_json('data.jsonl')"
    return DataError(
        f"{value}: not in this machine's datasets cache, and the hub is offline "
        f'(HF_HUB_OFFLINE=1); on a connected machine run `python -c "import datasets; '
        f'{export}"`, copy data.jsonl here and give that file instead'
    )


# ---------------------------------------------------------------- records as a Dataset


def records_dataset(records: list[Record]):
    """Validated records as a `datasets.Dataset` (columns input, snomed_codes, animal,
    disease, line); the types are fixed, so no row can make Arrow guess another."""
    datasets = _import_datasets("LoadResult.to_dataset()")
    features = datasets.Features(
        {
            "input": datasets.Value("string"),
            "snomed_codes": datasets.List(datasets.Value("string")),
            "animal": datasets.Value("string"),
            "disease": datasets.Value("string"),
            "line": datasets.Value("int64"),
        }
    )
    columns = {
        "input": [r.note for r in records],
        "snomed_codes": [list(r.labels) for r in records],
        "animal": [r.species for r in records],
        "disease": [r.disease for r in records],
        "line": [r.line for r in records],
    }
    return datasets.Dataset.from_dict(columns, features=features)
