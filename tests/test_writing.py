"""The project's one CSV writer (formula guard on every cell) and one JSONL writer."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path

from vetllm.data.loading import load_dataset_file
from vetllm.data.records import Record
from vetllm.data.writing import guarded_csv, jsonl_text, write_records

PACKAGE = Path(__file__).resolve().parent.parent / "vetllm"


def test_guarded_csv_escapes_every_header_and_cell():
    rows = [{"=sum": "=1+1", "note": "+cow", "n": -3}, {"note": "@x", "=sum": "\tcmd"}]
    text = guarded_csv(rows, ["=sum", "note", "n"])
    parsed = list(csv.reader(io.StringIO(text)))
    assert parsed == [["'=sum", "note", "n"], ["'=1+1", "'+cow", "'-3"], ["'\tcmd", "'@x", ""]]


def test_guarded_csv_keeps_ints_lists_and_plain_text():
    rows = [{"id": 1, "codes": ["1", "2"], "extra": {"k": "é"}}, {"codes": []}, {"id": 20}]
    text = guarded_csv(rows, ["id", "codes", "extra"])
    # a gap in the id column must not turn 1 into 1.0; "\n" line ends; non-ASCII kept
    assert text == 'id,codes,extra\n1,"[""1"", ""2""]","{""k"": ""é""}"\n,[],\n20,,\n'
    assert guarded_csv([], ["a", "b"]) == "a,b\n"


def test_jsonl_text_is_utf8_one_object_per_line():
    rows = [{"note": "Kuh mit Fieber, 40 °C", "url": "a/b", "id": 1}, {"note": "é", "x": None}]
    text = jsonl_text(rows)
    assert text == (
        '{"note": "Kuh mit Fieber, 40 °C", "url": "a/b", "id": 1}\n{"note": "é", "x": null}\n'
    )
    assert [json.loads(line) for line in text.splitlines()] == rows
    assert jsonl_text([]) == ""


def test_a_formula_like_column_name_is_escaped_in_written_records(tmp_path):
    record = Record("Cow with fever.", ("72934000",), "cattle", None, None, {"=cmd()": "-2"})
    path = write_records([record], tmp_path / "out.csv")
    header, row = list(csv.reader(path.read_text(encoding="utf-8").splitlines()))
    assert "'=cmd()" in header and row[header.index("'=cmd()")] == "'-2"
    loaded = load_dataset_file(path).records[0]
    assert loaded.note == "Cow with fever."
    assert loaded.extra.get("=cmd()") == "-2"  # header and cell read back as written


def test_no_csv_is_written_outside_the_guarded_writer():
    writers = re.compile(r"\bcsv\.(writer|DictWriter)\(|\.to_csv\(")
    found = [
        str(path.relative_to(PACKAGE))
        for path in PACKAGE.rglob("*.py")
        if writers.search(path.read_text(encoding="utf-8"))
    ]
    assert found == ["data/writing.py"]
