"""Tests for vetllm.data.loading, .validation and .writing: the source formats and every bad
input of RELIABILITY.md."""

from __future__ import annotations

import codecs
import csv
import gzip
import io
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from vetllm.catalogue import load_catalogue
from vetllm.data.loading import load_dataset_file
from vetllm.data.records import Record
from vetllm.data.validation import MAX_DATA_NOTE_CHARS
from vetllm.data.writing import write_records
from vetllm.errors import DataError, VetLLMError

ASSETS = Path(__file__).parent / "assets" / "data"
NOTE = "Clinical Note: Goat. Clinical presentation includes fever and nasal discharge."


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content, encoding="utf-8")
    return path


def json_file(tmp_path: Path, rows: list, name: str = "data.json") -> Path:
    return write(tmp_path, name, json.dumps(rows))


def load_error(path: Path, **kwargs) -> DataError:
    with pytest.raises(DataError) as caught:
        load_dataset_file(path, **kwargs)
    return caught.value


# ------------------------------------------------------------------ good files


@pytest.mark.parametrize("suffix", ["json", "jsonl", "csv"])
def test_source_formats_load_the_same_records(suffix):
    result = load_dataset_file(ASSETS / f"source_sample.{suffix}")
    assert result.format == suffix
    assert result.problems == [] and result.skipped_rows == 0
    labels = [r.labels for r in result.records]
    assert labels == [("198462004",), ("1679004",), ("local:foot-rot",), ("3974005", "72934000")]
    assert [r.species for r in result.records] == ["buffalo", "goat", "sheep", "cow"]
    assert result.records[0].extra["symptoms"][1] == "Neck Swelling"
    assert result.records[0].note.startswith("Clinical Note: Buffalo.")
    assert result.records[0].line == (2 if suffix == "json" else 2 if suffix == "csv" else 1)


def test_uncoded_disease_maps_to_local_label_and_name_variants_work(tmp_path):
    rows = [
        {"input": "a lame sheep", "disease": "Foot Rot"},
        {"input": "goat with lip sores", "disease": "Kataa"},
        {"input": "cow with mastits", "disease": "Mastits", "snomed_codes": None},
        {"input": "both", "disease": "FMD and Mastitis"},
    ]
    records = load_dataset_file(json_file(tmp_path, rows)).records
    assert [r.labels for r in records] == [
        ("local:foot-rot",),
        ("1679004",),
        ("72934000",),
        ("3974005", "72934000"),
    ]


@pytest.mark.parametrize(
    "cell, expected",
    [
        ("198462004, 1679004", ("198462004", "1679004")),
        ("198462004;1679004", ("198462004", "1679004")),
        ('["198462004", "1679004"]', ("198462004", "1679004")),
        ("local:foot-rot", ("local:foot-rot",)),
        ("198462004; 198462004", ("198462004",)),
    ],
)
def test_csv_code_cells(tmp_path, cell, expected):
    text = io.StringIO()
    csv.writer(text).writerows([["input", "snomed_codes"], [NOTE, cell]])
    records = load_dataset_file(write(tmp_path, "d.csv", text.getvalue())).records
    assert records[0].labels == expected


def test_integer_codes_are_accepted(tmp_path):
    rows = [{"input": NOTE, "snomed_codes": [198462004]}, {"input": NOTE, "snomed_codes": 1679004}]
    assert [r.labels for r in load_dataset_file(json_file(tmp_path, rows)).records] == [
        ("198462004",),
        ("1679004",),
    ]


def test_semicolon_delimited_csv(tmp_path):
    path = write(tmp_path, "d.csv", "input;disease\nsheep with lameness, fever;Foot Rot\n")
    record = load_dataset_file(path).records[0]
    assert record.note == "sheep with lameness, fever"
    assert record.labels == ("local:foot-rot",)


def test_extra_catalogue_makes_an_unknown_code_known(tmp_path):
    rows = [{"input": NOTE, "snomed_codes": ["409498004"]}, {"input": NOTE, "disease": "Sheep pox"}]
    path = json_file(tmp_path, rows)
    assert "409498004" in str(load_error(path))
    extra = write(
        tmp_path,
        "extra.json",
        json.dumps(
            {
                "diseases": [
                    {"key": "anthrax-valid", "name": "Anthrax (valid)", "code": "409498004"},
                    {"key": "sheep-pox", "name": "Sheep pox", "code": None},
                ]
            }
        ),
    )
    catalogue = load_catalogue(str(extra))
    records = load_dataset_file(path, catalogue=catalogue).records
    assert [r.labels for r in records] == [("409498004",), ("local:sheep-pox",)]


# ------------------------------------------------------------------ file-level problems


def test_zero_byte_file(tmp_path):
    assert "empty" in str(load_error(write(tmp_path, "d.json", b"")))
    assert "empty" in str(load_error(write(tmp_path, "d.csv", b"  \n\n")))


def test_truncated_json(tmp_path):
    text = json.dumps([{"input": NOTE, "disease": "PPR"}] * 3)[:-30]
    message = str(load_error(write(tmp_path, "d.json", text)))
    assert "truncated" in message


def test_truncated_json_between_records(tmp_path):
    text = json.dumps([{"input": NOTE, "disease": "PPR"}] * 3, indent=1)[:-2]
    assert "truncated" in str(load_error(write(tmp_path, "d.json", text)))


def test_trailing_comma_names_its_line(tmp_path):
    text = '[\n {"input": "a", "disease": "PPR"},\n {"input": "b", "disease": "PPR"},\n]\n'
    message = str(load_error(write(tmp_path, "d.json", text)))
    assert "trailing comma" in message and "line 3" in message
    inner = '[{"input": "a", "disease": "PPR",}]'
    assert "trailing comma" in str(load_error(write(tmp_path, "e.json", inner)))


def test_top_level_object_or_scalar(tmp_path):
    wrapped = {"data": [{"input": NOTE, "disease": "PPR"}]}
    message = str(load_error(json_file(tmp_path, wrapped)))
    assert "top level is an object" in message and "'data'" in message
    assert "top level is a number" in str(load_error(write(tmp_path, "n.json", "42")))
    assert "top level is a string" in str(load_error(write(tmp_path, "s.json", '"x"')))


def test_non_utf8_bytes_name_the_line(tmp_path):
    raw = f"input,disease\n{NOTE},PPR\ncaf\xe9 goat,PPR\n".encode("latin-1")
    message = str(load_error(write(tmp_path, "d.csv", raw)))
    assert "not UTF-8" in message and "line 3" in message and "0xe9" in message


def test_utf8_with_bom_is_accepted(tmp_path):
    text = f"input,disease\n{NOTE},PPR\n"
    result = load_dataset_file(write(tmp_path, "d.csv", codecs.BOM_UTF8 + text.encode()))
    assert result.records[0].note == NOTE  # the BOM did not end up in the header or note
    rows = json.dumps([{"input": NOTE, "disease": "PPR"}])
    assert load_dataset_file(write(tmp_path, "d.json", codecs.BOM_UTF8 + rows.encode())).records


def test_utf16_with_bom_is_accepted_and_without_bom_explained(tmp_path):
    text = f"input,disease\n{NOTE},PPR\n"
    result = load_dataset_file(write(tmp_path, "d.csv", text.encode("utf-16")))
    assert result.records[0].labels == ("1679004",)
    assert any("UTF-16" in notice for notice in result.notices)
    message = str(load_error(write(tmp_path, "e.csv", text.encode("utf-16-le"))))
    assert "UTF-16" in message and "byte-order mark" in message


def test_gzip_or_binary_disguised_as_text(tmp_path):
    packed = gzip.compress(json.dumps([{"input": NOTE, "disease": "PPR"}]).encode())
    assert "gzip" in str(load_error(write(tmp_path, "d.json", packed)))
    png = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4
    assert "not UTF-8" in str(load_error(write(tmp_path, "d.csv", png)))
    nul_heavy = b"\x00\x01\x02\x03" * 500
    assert "binary" in str(load_error(write(tmp_path, "e.csv", nul_heavy)))
    assert "ZIP" in str(load_error(write(tmp_path, "book.csv", b"PK\x03\x04" + b"\x00" * 40)))


def test_file_not_in_the_format_its_name_says(tmp_path):
    jsonl = "\n".join(json.dumps({"input": NOTE, "disease": "PPR"}) for _ in range(3))
    assert "rename it to .jsonl" in str(load_error(write(tmp_path, "d.json", jsonl)))
    listing = json.dumps([{"input": NOTE, "disease": "PPR"}])
    assert "rename it to .json" in str(load_error(write(tmp_path, "d.jsonl", listing)))
    assert "looks like JSON" in str(load_error(write(tmp_path, "d.csv", listing)))
    assert "unsupported file type" in str(load_error(write(tmp_path, "d.txt", listing)))


def test_size_limit(tmp_path):
    text = json.dumps([{"input": NOTE, "disease": "PPR"}])
    path = write(tmp_path, "d.json", text)
    size = len(text.encode())
    assert load_dataset_file(path, max_bytes=size).records  # exactly at the limit: fine
    message = str(load_error(path, max_bytes=size - 1))
    assert "limit" in message and f"{size - 1:,} bytes" in message


def test_messages_use_the_display_name_not_the_server_path(tmp_path):
    path = write(tmp_path, "upload_7f3a.json", "[")
    message = str(load_error(path, display_name="my notes.json"))
    assert message.startswith("my notes.json") and str(tmp_path) not in message


def test_deeply_nested_json_gives_no_recursion_error(tmp_path):
    assert "nested too deeply" in str(load_error(write(tmp_path, "d.json", "[" * 100_000)))
    deep_record = '[{"input": "x", "snomed_codes": ' + "[" * 50_000 + "]" * 50_000 + "}]"
    assert "nested too deeply" in str(load_error(write(tmp_path, "e.json", deep_record)))
    deep_line = json.dumps({"input": NOTE, "disease": "PPR"}) + "\n" + "[" * 50_000 + "\n"
    result = load_dataset_file(write(tmp_path, "f.jsonl", deep_line), on_error="skip")
    assert len(result.records) == 1 and "nested too deeply" in result.problems[0].message


@pytest.mark.parametrize("suffix", ["jsonl", "csv", "json"])
def test_a_million_tiny_rows_stop_at_the_row_limit(tmp_path, suffix):
    row = {"input": "a", "disease": "PPR"}
    if suffix == "jsonl":
        text = (json.dumps(row) + "\n") * 1_000_000
    elif suffix == "csv":
        text = "input,disease\n" + "a,PPR\n" * 1_000_000
    else:
        text = "[" + ",".join([json.dumps(row)] * 1_000_000) + "]"
    path = write(tmp_path, f"d.{suffix}", text)
    started = time.perf_counter()
    message = str(load_error(path))
    assert "200,000 records" in message and "limit" in message
    assert time.perf_counter() - started < 10  # seconds: the limit check is early, not at the end


def test_many_rows_under_the_limit_load(tmp_path):
    path = write(
        tmp_path, "d.jsonl", (json.dumps({"input": "a", "disease": "PPR"}) + "\n") * 20_000
    )
    assert len(load_dataset_file(path).records) == 20_000


# ------------------------------------------------------------------ CSV specifics


def test_csv_ragged_rows_are_row_problems(tmp_path):
    text = f"input,disease,animal\n{NOTE},PPR,Goat\nnote with, comma,PPR,Goat\nshort,PPR\n"
    path = write(tmp_path, "d.csv", text)
    error = load_error(path)
    assert [p.line for p in error.problems] == [3, 4]
    assert "4 cells but the header has 3" in error.problems[0].message
    result = load_dataset_file(path, on_error="skip")
    assert len(result.records) == 1 and result.skipped_rows == 2


def test_csv_unclosed_quote(tmp_path):
    text = f'input,disease\n{NOTE},PPR\n"never closed,PPR\n{NOTE},PPR\n'
    message = str(load_error(write(tmp_path, "d.csv", text)))
    assert "never closed" in message and "line 3" in message


def test_quoted_newlines_inside_a_note_survive(tmp_path):
    note = "Goat, 2 yr.\nFever 105F.\r\nNasal discharge."
    buffer = io.StringIO()
    csv.writer(buffer).writerows([["input", "disease"], [note, "PPR"], ["second", "PPR"]])
    records = load_dataset_file(write(tmp_path, "d.csv", buffer.getvalue())).records
    assert records[0].note == note
    assert records[1].line == 5  # physical line numbers count the embedded line breaks


def test_csv_header_only_and_missing_columns(tmp_path):
    assert "header but no records" in str(load_error(write(tmp_path, "d.csv", "input,disease\n")))
    message = str(load_error(write(tmp_path, "e.csv", "text_body,diagnosis_code\nx,1\n")))
    assert "note column" in message and "label column" in message and "'text_body'" in message


# ------------------------------------------------------------------ row-level problems


def test_jsonl_with_one_bad_line_in_the_middle(tmp_path):
    good = json.dumps({"input": NOTE, "disease": "PPR"})
    path = write(tmp_path, "d.jsonl", f"{good}\n{good}\n{{'input': oops}}\n\n{good}\n")
    error = load_error(path)
    assert [p.line for p in error.problems] == [3]
    assert "not valid JSON" in error.problems[0].message
    result = load_dataset_file(path, on_error="skip")
    assert [r.line for r in result.records] == [1, 2, 5]
    assert result.skipped_rows == 1 and result.problems[0].line == 3


@pytest.mark.parametrize(
    "row, field, words",
    [
        ({"disease": "PPR"}, "input", "missing note text"),
        ({"input": None, "disease": "PPR"}, "input", "missing note text"),
        ({"input": NOTE}, "snomed_codes", "missing label"),
        ({"input": NOTE, "snomed_codes": []}, "snomed_codes", "missing label"),
        ({"input": NOTE, "snomed_codes": None}, "snomed_codes", "is empty or null"),
        ({"input": NOTE, "snomed_codes": [None]}, "snomed_codes", "item 1 is null"),
        ({"input": NOTE, "snomed_codes": [["1679004"]]}, "snomed_codes", "item 1 is a list"),
        ({"input": NOTE, "snomed_codes": 3.5}, "snomed_codes", "a number (3.5)"),
        ({"input": NOTE, "snomed_codes": True}, "snomed_codes", "a boolean"),
        ({"input": NOTE, "snomed_codes": {"code": "1"}}, "snomed_codes", "an object"),
        ({"input": NOTE, "disease": 7}, "disease", "a number (7)"),
        ({"input": NOTE, "disease": ["PPR"]}, "disease", "a list"),
        ({"input": NOTE, "snomed_codes": ["99999999"]}, "snomed_codes", "load_catalogue"),
        ({"input": NOTE, "snomed_codes": ["PPR"]}, "snomed_codes", "disease name, not a code"),
        ({"input": NOTE, "disease": "Unicornitis"}, "disease", "not in the catalogue"),
        ({"input": 12, "disease": "PPR"}, "input", "must be text"),
        ({"input": "   \n\t ", "disease": "PPR"}, "input", "only whitespace"),
        ({"input": NOTE, "disease": "PPR", "animal": 3}, "animal", "species must be text"),
        ({"input": "a\u0000b", "disease": "PPR"}, "input", "NUL"),
    ],
)
def test_row_problems_name_line_field_and_reason(tmp_path, row, field, words):
    good = {"input": NOTE, "disease": "PPR"}
    error = load_error(json_file(tmp_path, [good, row]))
    assert len(error.problems) >= 1
    problem = next(p for p in error.problems if p.field == field)
    assert problem.line == 1 and words in problem.message  # json.dumps writes one line
    assert problem.message.startswith("record 2: ")  # so the record index tells them apart
    assert "data.json" in str(problem)


def test_every_row_problem_is_collected_not_only_the_first(tmp_path):
    rows = [{"input": NOTE, "disease": "PPR"}] * 3 + [{"input": ""}, {"x": 1}, {"input": 5}]
    text = "[\n" + ",\n".join(json.dumps(r) for r in rows) + "\n]"
    error = load_error(write(tmp_path, "d.json", text))
    assert sorted({p.line for p in error.problems}) == [5, 6, 7]
    assert len(error.problems) == 6  # note and label problem on each bad row
    assert "problem(s) in 3 row(s)" in str(error)
    result = load_dataset_file(write(tmp_path, "d.json", text), on_error="skip")
    assert len(result.records) == 3 and result.skipped_rows == 3 and len(result.problems) == 6


def test_all_rows_bad_in_skip_mode_is_still_an_error(tmp_path):
    error = load_error(json_file(tmp_path, [{"input": ""}, {"input": "x"}]), on_error="skip")
    assert "no usable records" in str(error) and len(error.problems) == 3


def test_non_object_records_and_empty_list(tmp_path):
    error = load_error(json_file(tmp_path, [{"input": NOTE, "disease": "PPR"}, "text", 5]))
    assert ["record 2 is a string" in p.message for p in error.problems] == [True, False]
    assert "contains no records" in str(load_error(json_file(tmp_path, [])))


def test_nan_and_infinity_are_named(tmp_path):
    text = (
        '[{"input": "a", "snomed_codes": NaN}, {"input": "b", "disease": "PPR", "age": Infinity}]'
    )
    error = load_error(write(tmp_path, "d.json", text))
    assert [(p.field, "NaN" in p.message or "Infinity" in p.message) for p in error.problems] == [
        ("snomed_codes", True),
        ("age", True),
    ]


def test_huge_note_has_a_per_note_limit(tmp_path):
    rows = [{"input": "f" * MAX_DATA_NOTE_CHARS, "disease": "PPR"}]
    assert load_dataset_file(json_file(tmp_path, rows)).records
    rows = [{"input": "f" * (MAX_DATA_NOTE_CHARS + 1), "disease": "PPR"}]
    message = load_error(json_file(tmp_path, rows)).problems[0].message
    assert "20,001 characters" in message and "20,000" in message


def test_invisible_and_control_characters(tmp_path):
    rows = [
        {"input": "fe\u200bver in \u202egoat\u202c\u2066 herd\u2069", "disease": "PPR"},
        {"input": "Urdu ZWNJ kept: \u0645\u200c\u06cc", "disease": "PPR"},
        {"input": "bell\x07 rung", "disease": "PPR"},
    ]
    result = load_dataset_file(json_file(tmp_path, rows))
    notes = [r.note for r in result.records]
    assert notes[0] == "fever in goat herd"
    assert "\u200c" in notes[1]
    assert notes[2] == "bell  rung"
    assert len(result.notices) == 2
    raw_nul = b"input,disease\nfever\x00 goat,PPR\nfine goat,PPR\n"
    error = load_error(write(tmp_path, "d.csv", raw_nul))
    assert error.problems[0].line == 2 and "NUL" in error.problems[0].message


def test_raw_nul_byte_inside_a_json_string(tmp_path):
    raw = b'[{"input": "fever\x00goat", "disease": "PPR"}]'
    assert "control character" in str(load_error(write(tmp_path, "d.json", raw)))


def test_on_error_value_is_checked(tmp_path):
    with pytest.raises(VetLLMError, match="on_error"):
        load_dataset_file(ASSETS / "source_sample.json", on_error="ignore")


# ------------------------------------------------------------------ writing


def test_formula_injection_is_escaped_in_csv_and_the_note_kept(tmp_path):
    note = '=HYPERLINK("http://evil.example","click")'
    records = load_dataset_file(json_file(tmp_path, [{"input": note, "disease": "PPR"}])).records
    assert records[0].note == note
    path = write_records(records, tmp_path / "out.csv")
    cells = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    input_cell = cells[1][cells[0].index("input")]
    assert input_cell == "'" + note
    assert all(not cell.startswith(("=", "+", "-", "@")) for row in cells for cell in row)
    assert load_dataset_file(path).records[0].note == note  # the round trip keeps the text
    written = json.loads(write_records(records, tmp_path / "out.json").read_text())
    assert written[0]["input"] == note


@pytest.mark.parametrize("suffix", ["json", "jsonl", "csv"])
def test_write_records_round_trip(tmp_path, suffix):
    source = load_dataset_file(ASSETS / "source_sample.json").records
    source.append(Record("Goat.\nSecond line, with comma", ("1679004",), "goat", "PPR", None, {}))
    path = write_records(source, tmp_path / f"out.{suffix}")
    back = load_dataset_file(path).records
    assert [(r.note, r.labels, r.species, r.disease) for r in back] == [
        (r.note, r.labels, r.species, r.disease) for r in source
    ]
    assert back[0].extra["symptoms"] == source[0].extra["symptoms"]
    assert not list(tmp_path.glob(".*.tmp"))  # the atomic write left no temp file


def test_write_records_uses_the_template_and_rejects_unknown_suffixes(tmp_path):
    records = load_dataset_file(ASSETS / "source_sample.json").records
    rows = json.loads(write_records(records, tmp_path / "o.json").read_text())
    assert rows[2]["output"] == "Diagnosed conditions: local:foot-rot"
    assert rows[3]["snomed_codes"] == ["3974005", "72934000"]
    with pytest.raises(VetLLMError, match=".json, .jsonl or .csv"):
        write_records(records, tmp_path / "o.xlsx")


def test_core_data_modules_do_not_import_torch_or_gradio():
    code = (
        "import sys, vetllm.data.loading, vetllm.data.validation, vetllm.data.writing,"
        " vetllm.data.stats, vetllm.data.split;"
        "print(sorted(m for m in ('torch', 'gradio', 'transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
