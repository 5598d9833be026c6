"""Hostile data files of issue 11: each was a crash, a hang or a silent fix before.

Column bombs (item 1), codes of thousands of digits (10), lone surrogates (11), duplicate and
aliased keys (12) and named pipes (19). Every test asserts a clear DataError, never a traceback.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from vetllm.data.loading import load_dataset_file
from vetllm.data.validation import MAX_COLUMNS, check_header
from vetllm.errors import DataError

NOTE = "Clinical Note: Goat. Clinical presentation includes fever and nasal discharge."
REPO = Path(__file__).resolve().parent.parent


def _error(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        load_dataset_file(path, **kwargs)
    return caught.value


def _messages(error: DataError) -> str:
    return str(error) + " " + " ".join(p.message + f" [{p.field}]" for p in error.problems)


# -- item 1: column bombs and the time budget -------------------------------------------------
def test_a_header_with_too_many_columns_is_refused_naming_the_limit(tmp_path):
    header = ["input", "snomed_codes"] + [f"c{i}" for i in range(MAX_COLUMNS)]
    path = tmp_path / "wide.csv"
    path.write_text(",".join(header) + "\n" + ",".join([NOTE, "1679004"] + [""] * MAX_COLUMNS))
    message = str(_error(path))
    assert f"{MAX_COLUMNS + 2:,} columns" in message and f"{MAX_COLUMNS:,}" in message


def test_check_header_refuses_a_column_bomb_before_looking_at_names():
    header = ["input", "snomed_codes"] + ["x"] * 100_000  # 100k repeats: no quadratic count
    with pytest.raises(DataError, match="100,002 columns"):
        check_header(header, "data.csv")


def test_a_json_row_with_too_many_fields_is_a_row_problem(tmp_path):
    row = {"input": NOTE, "snomed_codes": ["1679004"]}
    row.update({f"c{i}": 1 for i in range(MAX_COLUMNS)})
    path = tmp_path / "wide.json"
    path.write_text(json.dumps([row, {"input": NOTE, "snomed_codes": ["1679004"]}]))
    result = load_dataset_file(path, on_error="skip")
    assert len(result.records) == 1
    assert (
        "fields" in result.problems[0].message and f"{MAX_COLUMNS:,}" in result.problems[0].message
    )


def test_the_time_budget_stops_a_long_check_with_a_clear_message(tmp_path):
    rows = [{"input": f"{NOTE} {i}", "snomed_codes": ["1679004"]} for i in range(50)]
    path = tmp_path / "data.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in rows))
    message = str(_error(path, time_budget_s=0.0))
    assert "time limit" in message and "data.jsonl" in message


# -- item 10: codes of thousands of digits -----------------------------------------------------
@pytest.mark.parametrize("suffix", ["json", "jsonl", "csv"])
def test_a_code_of_5000_digits_is_a_row_problem_quoted_short(tmp_path, suffix):
    code = "9" * 5000
    path = tmp_path / f"data.{suffix}"
    if suffix == "json":
        path.write_text(f'[{{"input": "{NOTE}", "snomed_codes": [{code}]}}]')
    elif suffix == "jsonl":
        path.write_text(f'{{"input": "{NOTE}", "snomed_codes": [{code}]}}\n')
    else:
        path.write_text(f'input,snomed_codes\n"{NOTE}","[{code}]"\n')
    error = _error(path)
    text = _messages(error)
    assert "5,000 digits" in text or "5,000 characters" in text
    assert len(text) < 1500  # the value is shortened, not echoed whole


def test_a_9_mb_code_string_is_not_echoed_whole(tmp_path):
    path = tmp_path / "data.json"
    path.write_text(json.dumps([{"input": NOTE, "snomed_codes": ["7" * 200_000]}]))
    error = _error(path)
    assert len(_messages(error)) < 1500


def test_data_validate_cli_gives_no_traceback_for_a_huge_integer(tmp_path):
    path = tmp_path / "data.jsonl"
    path.write_text(f'{{"input": "{NOTE}", "snomed_codes": [{"1" * 4400}]}}\n')
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "vetllm", "data", "validate", str(path)],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert done.returncode == 2
    assert "Traceback" not in done.stderr + done.stdout
    assert "digits" in done.stdout + done.stderr


# -- item 11: lone surrogates ------------------------------------------------------------------
def test_a_lone_surrogate_in_a_note_is_refused(tmp_path):
    path = tmp_path / "data.json"
    path.write_text('[{"input": "cow \\udcff fever", "snomed_codes": ["1679004"]}]')
    error = _error(path)
    assert "surrogate" in _messages(error) and error.problems[0].field == "input"


def test_data_split_of_a_note_with_a_lone_surrogate_gives_no_traceback(tmp_path):
    good = [{"input": f"{NOTE} {i}", "snomed_codes": ["1679004"]} for i in range(6)]
    text = json.dumps(good)[:-1] + ', {"input": "cow \\udcff fever", "snomed_codes": ["1679004"]}]'
    path = tmp_path / "data.json"
    path.write_text(text)
    env = dict(os.environ, PYTHONPATH=str(REPO))
    done = subprocess.run(
        [sys.executable, "-m", "vetllm", "data", "split", str(path), "--out",
         str(tmp_path / "out"), "--skip-bad-rows"],
        capture_output=True, text=True, env=env, timeout=120,
    )  # fmt: skip
    assert "Traceback" not in done.stderr, done.stderr
    assert done.returncode == 0, done.stderr
    written = json.loads((tmp_path / "out" / "train.json").read_text(encoding="utf-8"))
    assert all("\udcff" not in r["input"] for r in written)


# -- item 12: duplicate and aliased keys -------------------------------------------------------
@pytest.mark.parametrize(
    "text, words",
    [
        (f'{{"input": "{NOTE}", "snomed_codes": ["1679004"], "snomed_codes": ["3974005"]}}',
         "'snomed_codes' twice"),
        (f'{{"input": "{NOTE}", "note": "other", "snomed_codes": ["1679004"]}}',
         "'input' and 'note'"),
        (f'{{"input": "{NOTE}", "Input": "other", "snomed_codes": ["1679004"]}}',
         "'input' and 'Input'"),
    ],
)  # fmt: skip
def test_duplicate_or_aliased_keys_are_reported(tmp_path, text, words):
    path = tmp_path / "data.jsonl"
    path.write_text(text + "\n")
    assert words in _messages(_error(path))


def test_an_aliased_csv_header_is_reported(tmp_path):
    path = tmp_path / "data.csv"
    path.write_text(f'input,note,snomed_codes\n"{NOTE}",x,1679004\n')
    assert "'input' and 'note'" in str(_error(path))


# -- item 19: named pipes and other non-regular files -----------------------------------------
def test_a_named_pipe_is_refused_without_blocking(tmp_path):
    pipe = tmp_path / "x.json"
    os.mkfifo(pipe)
    message = str(_error(pipe))
    assert "not a regular file" in message
