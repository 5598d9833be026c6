"""What `vetllm.data` asks of Hugging Face `datasets`: Parquet files, Hub datasets, and records
as a `datasets.Dataset`.

`read_parquet_rows()` streams a local Parquet file's rows through `datasets.load_dataset`; a
temporary folder takes the few lock files datasets writes, so reading a file leaves nothing in
the user's cache. `read_hub_rows()` loads a data source written `hub:user/name[:split]` (split
`train` by default; slices such as `train[:500]` work) into the usual Hugging Face cache, as
models are; with the hub offline (HF_HUB_OFFLINE=1) a dataset that is not cached fails at once
with a message saying how to bring it over. Both hand back plain rows (lists, text, numbers)
for the row rules of `vetllm.data.validation`; `records_dataset()` turns validated records
into a `datasets.Dataset`. Every error of datasets or pyarrow becomes a `DataError` naming the
source. `datasets` is imported inside the functions: it costs about half a second, and the
text formats do not need it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from vetllm.data.records import Record
from vetllm.errors import DataError

HUB_PREFIX = "hub:"  # a data value starting so names a Hub dataset, not a file
_REPO_ID = re.compile(r"[A-Za-z0-9][\w.-]*(/[\w.-]+)?")
_SPLIT = re.compile(r"[\w.-]+(\[[\w:%+-]*\])?")  # "train", "validation", "train[:10%]"
_OFFLINE_VALUES = ("1", "true", "yes", "on")


@dataclass
class ArrowRows:
    """A source read through `datasets`: its column names and its rows (read lazily)."""

    columns: list[str]
    rows: Iterator[dict]


def is_hub_source(value: object) -> bool:
    """True for a data value of the form `hub:user/name[:split]`."""
    return str(value).startswith(HUB_PREFIX)


def parse_hub_source(value: str) -> tuple[str, str]:
    """`hub:user/name[:split]` -> (repo id, split); DataError when it is not of that form."""
    repo, _, split = value[len(HUB_PREFIX) :].partition(":")
    split = split or "train"
    if not _REPO_ID.fullmatch(repo) or not _SPLIT.fullmatch(split):
        raise DataError(
            f"{value}: not a Hub dataset name; write hub:USER/NAME or hub:USER/NAME:SPLIT, "
            "e.g. hub:someone/vet-notes:train"
        )
    return repo, split


def _import_datasets(name: str):
    """The `datasets` module, or DataError: a bare GPU image may lack it (text formats do not
    need it)."""
    try:
        import datasets
    except ImportError:
        raise DataError(
            f"{name}: needs the `datasets` package (it reads Parquet and Hub data), which is "
            "not installed; pip install datasets, or give a JSON, JSON Lines or CSV file"
        ) from None
    datasets.disable_progress_bars()  # one load is one line of output, not a progress bar
    return datasets


# ---------------------------------------------------------------- Parquet


def read_parquet_rows(path: Path, name: str) -> ArrowRows:
    """The rows of a local Parquet file, streamed (no Arrow copy of the file is written)."""
    datasets = _import_datasets(name)
    cache = tempfile.TemporaryDirectory(prefix="vetllm-parquet-")
    try:
        with _quiet():
            stream = datasets.load_dataset(
                "parquet", data_files=str(path), split="train", streaming=True, cache_dir=cache.name
            )
        columns = list(stream.column_names or [])
    except Exception as error:  # pyarrow and datasets raise many types; none may reach a user
        cache.cleanup()
        raise _unreadable(name, "Parquet", error, path) from None
    return ArrowRows(columns, _rows(stream, name, "Parquet", cache, path))


def _rows(dataset, name: str, kind: str, cache=None, path=None) -> Iterator[dict]:
    """Plain rows of a dataset; a read error part way becomes a DataError."""
    try:
        with _quiet():
            for row in dataset:
                yield _plain(row)
    except Exception as error:  # a damaged row group shows only when it is read
        raise _unreadable(name, kind, error, path) from None
    finally:
        if cache is not None:
            cache.cleanup()


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
    return ArrowRows(list(dataset.column_names), _rows(dataset, value, "a Hub dataset"))


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
