"""Tests for the sources read through Hugging Face `datasets` (vetllm.data.hf_datasets): Parquet
files, `hub:user/name[:split]` (offline only: no test reaches the network) and records as a
`datasets.Dataset`; and for the JSON list messages that now come from the `json` module."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from vetllm.data.loading import load_dataset_file
from vetllm.errors import DataError

pd = pytest.importorskip("pandas")
pytest.importorskip("pyarrow")
datasets = pytest.importorskip("datasets")

REPO = Path(__file__).resolve().parent.parent
ASSETS = Path(__file__).parent / "assets" / "data"
NOTE = "Clinical Note: Goat. Clinical presentation includes fever and nasal discharge."
SAMPLE_LABELS = [("198462004",), ("1679004",), ("local:foot-rot",), ("3974005", "72934000")]


def _error(source, **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        load_dataset_file(source, **kwargs)
    return caught.value


def _parquet(tmp_path: Path, rows: list[dict], name: str = "data.parquet") -> Path:
    path = tmp_path / name
    pd.DataFrame(rows).to_parquet(path)
    return path


@pytest.fixture
def no_network(monkeypatch):
    """Any attempt to open a network connection fails the test."""

    def refuse(*args, **kwargs):
        raise AssertionError("the test tried to reach the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


# ------------------------------------------------------------------ Parquet


def test_parquet_loads_the_same_records_as_json(tmp_path):
    rows = json.loads((ASSETS / "source_sample.json").read_text(encoding="utf-8"))
    result = load_dataset_file(_parquet(tmp_path, rows))
    assert result.format == "parquet" and result.problems == []
    assert [r.labels for r in result.records] == SAMPLE_LABELS
    assert [r.species for r in result.records] == ["buffalo", "goat", "sheep", "cow"]
    assert result.records[0].extra["symptoms"][1] == "Neck Swelling"
    assert [r.line for r in result.records] == [1, 2, 3, 4]  # row numbers


def test_parquet_row_problems_name_row_field_and_reason(tmp_path):
    rows = [
        {"input": NOTE, "snomed_codes": ["1679004"]},
        {"input": NOTE, "snomed_codes": ["99999999"]},
        {"input": "  ", "snomed_codes": ["1679004"]},
    ]
    error = _error(_parquet(tmp_path, rows))
    assert [(p.line, p.field) for p in error.problems] == [(None, "snomed_codes"), (None, "input")]
    assert error.problems[0].message.startswith("row 2: code '99999999'")
    assert error.problems[1].message.startswith("row 3: the note is empty")
    result = load_dataset_file(_parquet(tmp_path, rows), on_error="skip")
    assert len(result.records) == 1 and result.skipped_rows == 2


def test_parquet_file_level_problems_are_clear(tmp_path):
    not_parquet = tmp_path / "notes.parquet"
    not_parquet.write_text(f"input,disease\n{NOTE},PPR\n")
    assert "not a Parquet file" in str(_error(not_parquet))
    damaged = tmp_path / "damaged.parquet"
    damaged.write_bytes(b"PAR1" + b"\x00garbage" * 20 + b"PAR1")
    message = str(_error(damaged))
    assert message.startswith("damaged.parquet: cannot be read as Parquet")
    assert "Traceback" not in message
    empty = tmp_path / "empty.parquet"
    empty.write_bytes(b"")
    assert "empty" in str(_error(empty))
    no_label = _parquet(tmp_path, [{"input": NOTE, "age": 3}], "no_label.parquet")
    assert "label column" in str(_error(no_label))


def test_parquet_limits(tmp_path):
    path = _parquet(tmp_path, [{"input": NOTE, "disease": "PPR"}] * 3)
    assert "more than 2 records" in str(_error(path, max_rows=2))
    size = path.stat().st_size
    assert "limit" in str(_error(path, max_bytes=size - 1))


def test_reading_parquet_leaves_nothing_in_the_datasets_cache(tmp_path):
    cache = Path(datasets.config.HF_DATASETS_CACHE)
    before = set(cache.iterdir()) if cache.is_dir() else set()
    load_dataset_file(_parquet(tmp_path, [{"input": NOTE, "disease": "PPR"}]))
    after = set(cache.iterdir()) if cache.is_dir() else set()
    assert after == before


def test_parquet_without_the_datasets_package_says_what_to_install(tmp_path, monkeypatch):
    path = _parquet(tmp_path, [{"input": NOTE, "disease": "PPR"}])
    monkeypatch.setitem(sys.modules, "datasets", None)  # import datasets -> ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)  # ...and pyarrow, which it brings
    assert "pip install datasets" in str(_error(path))
    text = tmp_path / "data.json"
    text.write_text(json.dumps([{"input": NOTE, "disease": "PPR"}]))
    assert load_dataset_file(text).records  # the text formats do not need it


def test_reading_parquet_imports_neither_torch_nor_datasets(tmp_path):
    path = _parquet(tmp_path, [{"input": NOTE, "disease": "PPR"}])
    code = (
        "import sys; from vetllm.data.loading import load_dataset_file;"
        f"assert load_dataset_file({str(path)!r}).records;"
        "print('torch' in sys.modules, 'datasets' in sys.modules)"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_a_parquet_file_larger_than_one_batch_reads_every_row_in_order(tmp_path):
    from vetllm.data.hf_datasets import PARQUET_BATCH_ROWS

    rows = [
        {"input": f"{NOTE} Visit {i}.", "disease": "PPR"} for i in range(PARQUET_BATCH_ROWS + 5)
    ]
    records = load_dataset_file(_parquet(tmp_path, rows)).records
    assert [r.note for r in records] == [row["input"] for row in rows]


# ------------------------------------------------------------------ Hub datasets


def test_a_hub_dataset_offline_fails_at_once_without_the_network(monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    message = str(_error("hub:someone/vet-notes:validation"))
    assert message.startswith("hub:someone/vet-notes:validation: not in this machine's")
    assert "HF_HUB_OFFLINE=1" in message
    assert "load_dataset('someone/vet-notes', split='validation')" in message


@pytest.mark.parametrize("value", ["hub:", "hub:a b/c", "hub:user/name:tr ain", "hub:a/b/c"])
def test_a_malformed_hub_name_is_refused_before_loading(value, no_network):
    assert "write hub:USER/NAME" in str(_error(value))


def test_hub_rows_are_validated_like_file_rows(monkeypatch):
    rows = [
        {"input": NOTE, "snomed_codes": ["1679004"], "animal": "Goat"},
        {"input": NOTE, "snomed_codes": ["PPR"], "animal": "Goat"},
    ]
    calls = []

    def fake_load_dataset(repo, split):  # what a cached Hub dataset gives
        calls.append((repo, split))
        return datasets.Dataset.from_list(rows)

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    result = load_dataset_file("hub:someone/vet-notes", on_error="skip")
    assert calls == [("someone/vet-notes", "train")]  # the split defaults to train
    assert result.format == "hub" and result.source == "hub:someone/vet-notes"
    assert [r.labels for r in result.records] == [("1679004",)]
    [problem] = result.problems
    assert problem.field == "snomed_codes" and problem.line is None
    assert problem.message.startswith("row 2: 'PPR' is a disease name")


@pytest.mark.parametrize(
    "raised, offline, words",
    [
        (ValueError("Unknown split \"tain\". Should be one of ['train']."), "1", "no split 'tain'"),
        ("not found", "0", "no dataset 'someone/vet-notes' on the Hugging Face Hub"),
        (ConnectionError("Couldn't reach the Hub"), "0", "could not be reached"),
        (OSError("disk full"), "0", "cannot be read as a Hub dataset (OSError: disk full)"),
    ],
)
def test_hub_errors_become_clear_data_errors(monkeypatch, no_network, raised, offline, words):
    if raised == "not found":
        raised = datasets.exceptions.DatasetNotFoundError("Dataset doesn't exist on the Hub")

    def fake_load_dataset(repo, split):
        raise raised

    monkeypatch.setattr(datasets, "load_dataset", fake_load_dataset)
    monkeypatch.setenv("HF_HUB_OFFLINE", offline)
    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)  # the fake answers, no network
    message = str(_error("hub:someone/vet-notes:tain"))
    assert message.startswith("hub:someone/vet-notes:tain: ") and words in message


def test_data_validate_cli_with_a_hub_dataset_offline_gives_no_traceback():
    env = dict(os.environ, PYTHONPATH=str(REPO), HF_HUB_OFFLINE="1")
    done = subprocess.run(
        [sys.executable, "-m", "vetllm", "data", "validate", "hub:someone/vet-notes"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    output = done.stdout + done.stderr
    assert done.returncode == 2, output
    assert "Traceback" not in output and "HF_HUB_OFFLINE=1" in output


def test_a_hub_value_in_a_config_is_kept_as_written(tmp_path):
    from vetllm.config import load_config

    config = tmp_path / "run.yaml"
    config.write_text("data: hub:someone/vet-notes:train\nval_data: hub:someone/vet-notes:test\n")
    cfg = load_config(config)
    assert (cfg.data, cfg.val_data) == ("hub:someone/vet-notes:train", "hub:someone/vet-notes:test")
    cfg = load_config(config, ["data=hub:other/notes"])
    assert str(cfg.data_paths()[0]) == "hub:other/notes"


@pytest.mark.parametrize("key", ["data", "val_data"])
@pytest.mark.parametrize("value", ["hub:", "hub:a b/c", "hub:a/b/c"])
def test_config_validate_refuses_a_malformed_hub_value(tmp_path, capsys, no_network, key, value):
    from vetllm.cli import main

    config = tmp_path / "run.yaml"
    config.write_text(f"{key}: '{value}'\n")
    assert main(["config", "validate", str(config)]) == 2
    assert f"{key}: got {value!r}; not a Hub dataset name: write hub:USER/NAME" in (
        capsys.readouterr().err
    )


@pytest.mark.parametrize("flag", ["--data", "--val-data"])
def test_train_refuses_a_malformed_hub_value_before_any_run_folder(
    tmp_path, capsys, no_network, flag
):
    from vetllm.cli import main

    output, value = tmp_path / "runs" / "r", "hub:a b/c"
    code = main(["train", "--config", "tiny-cpu", flag, value, "--output", str(output)])
    assert code == 2 and f"{flag}: {value}: not a Hub dataset name" in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()  # no run folder, no training lock


def test_training_data_from_the_hub_offline_is_the_offline_message(monkeypatch, no_network):
    from vetllm.catalogue import load_catalogue
    from vetllm.config import TrainConfig
    from vetllm.engine.collate import load_training_data

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = TrainConfig(data="hub:someone/vet-notes", val_data=None)
    with pytest.raises(DataError, match="hub is offline"):
        load_training_data(cfg, load_catalogue())


# ------------------------------------------------------------------ records as a Dataset


def test_records_become_a_datasets_dataset_whatever_the_raw_types(tmp_path):
    rows = [
        {"input": NOTE, "snomed_codes": ["1679004"], "animal": "Goat"},
        {"input": NOTE, "snomed_codes": "3974005, 72934000"},  # text where others have a list
        {"input": NOTE, "snomed_codes": 1679004, "age": "2 yr"},  # a number
        {"input": 12, "disease": "PPR"},  # a row problem, not an Arrow error
    ]
    path = tmp_path / "mixed.json"
    path.write_text(json.dumps(rows))
    result = load_dataset_file(path, on_error="skip")
    assert [p.field for p in result.problems] == ["input"]
    dataset = result.to_dataset()
    assert isinstance(dataset, datasets.Dataset) and len(dataset) == 3
    assert dataset.column_names == ["input", "snomed_codes", "animal", "disease", "line"]
    assert dataset[1]["snomed_codes"] == ["3974005", "72934000"]
    assert dataset["animal"] == ["goat", None, None]


# ------------------------------------------------------------------ JSON list messages


def test_json_list_messages_name_the_line(tmp_path):
    deep = '[\n{"input": "a", "disease": "PPR"},\n{"input": "x", "snomed_codes": '
    deep += "[" * 50_000 + "]" * 50_000 + "}\n]"
    path = tmp_path / "deep.json"
    path.write_text(deep)
    assert "line 3: JSON nested too deeply" in str(_error(path))
    path.write_text('[{"input": "a", "disease": "PPR"}]\n[1]\n')
    assert "line 2, column 1: unexpected text after the closing ']'" in str(_error(path))
    path.write_text('[{"input": "a", "disease": "PPR"}\n {"input": "b"}]')
    assert "line 2" in str(_error(path)) and "Expecting ',' delimiter" in str(_error(path))
