"""Batch coding: reading notes files, coding them (with skipped rows marked), the downloads, the
CLI (`vetllm predict --file --out`) and the app handlers."""

import csv
import io
import json
from pathlib import Path

import gradio as gr
import pytest

from vetllm.batchcode import (
    CODED_COLUMNS,
    code_notes,
    coded_csv,
    coded_jsonl,
    read_notes_file,
)
from vetllm.errors import VetLLMError


def _answer(note: str) -> dict:
    """A fake model answer: mastitis for udder notes, nothing otherwise."""
    if "udder" in note:
        return {"codes": [{"code": "72934000", "name": "Mastitis", "valid_sctid": True,
                           "confidence": 0.91}], "raw_output": "72934000"}  # fmt: skip
    return {"codes": [], "raw_output": "", "abstained": True, "reason": "low confidence"}


def _fake_predict(notes):
    return [_answer(n) for n in notes]


@pytest.mark.parametrize(
    "name, text, column",
    [
        ("n.csv", "id,clinical_note,farm\n1,Cow with swollen udder,A\n2,Goat coughing,B\n", None),
        ("n.csv", "id;text;farm\n1;Cow with swollen udder;A\n2;Goat coughing;B\n", "text"),
        ("n.jsonl", '{"id": 1, "note": "Cow with swollen udder"}\n{"id": 2, "note": "Goat coughing"}\n', None),
        ("n.json", '["Cow with swollen udder", "Goat coughing"]', None),
        ("n.txt", "Cow with swollen udder\n\nGoat coughing\n", None),
    ],
)  # fmt: skip
def test_every_format_reads_its_notes_and_keeps_the_columns(tmp_path, name, text, column):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    table = read_notes_file(path, column)
    assert table.notes() == ["Cow with swollen udder", "Goat coughing"]
    rows = code_notes(table, _fake_predict, "run-a", max_chars=100)
    assert rows[0]["codes"] == ["72934000"] and rows[0]["diseases"] == ["Mastitis"]
    assert rows[0]["sctid_valid"] == ["valid"] and rows[0]["confidence"] == 0.91
    assert rows[1]["abstained"] is True and rows[1]["reason"] == "low confidence"
    for original in table.columns:
        assert rows[0][original] == table.rows[0][original]  # original columns kept


def test_empty_and_too_long_notes_are_marked_not_predicted(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text('note\nCow with swollen udder\n" "\n' + "x" * 30 + "\n", encoding="utf-8")
    seen = []

    def predict(notes):
        seen.extend(notes)
        return _fake_predict(notes)

    rows = code_notes(read_notes_file(path), predict, "r", max_chars=25)
    assert seen == ["Cow with swollen udder"]  # only the usable note reached the model
    assert rows[1]["reason"] == "not predicted: empty note" and rows[1]["abstained"]
    assert "over the limit of 25" in rows[2]["reason"]


def test_downloads_escape_formulas_and_keep_every_column(tmp_path):
    path = tmp_path / "n.csv"
    path.write_text('id,note\n=cmd,"=HYPERLINK(""x"") udder"\n', encoding="utf-8")
    table = read_notes_file(path)
    rows = code_notes(table, _fake_predict, "r", max_chars=100)
    parsed = list(csv.reader(io.StringIO(coded_csv(rows, table.columns))))
    assert parsed[0] == ["id", "note", *CODED_COLUMNS]
    assert parsed[1][0] == "'=cmd" and parsed[1][1].startswith("'=HYPERLINK")
    assert parsed[1][2] == "72934000"
    line = json.loads(coded_jsonl(rows).splitlines()[0])
    assert line["note"].startswith("=HYPERLINK") and line["codes"] == ["72934000"]


def test_a_csv_the_project_wrote_reads_back_without_the_formula_guard(tmp_path):
    from vetllm.data.records import Record
    from vetllm.data.writing import guarded_csv, write_records

    note = "-ve for FMD; +ve for mastitis, swollen udder"
    path = write_records([Record(note=note, labels=("72934000",))], tmp_path / "w.csv")
    assert "'-ve for FMD" in path.read_text(encoding="utf-8")  # escaped on disk
    seen = []

    def predict(notes):
        seen.extend(notes)
        return _fake_predict(notes)

    code_notes(read_notes_file(path), predict, "r", max_chars=200)
    assert seen == [note]  # the model gets the note as written, not "'-ve ..."
    path = tmp_path / "h.csv"
    path.write_text(guarded_csv([{"=id": "@7", "note": note}], ["=id", "note"]), encoding="utf-8")
    table = read_notes_file(path, "=id")  # --column matches the header as written
    assert table.columns == ["=id", "note"] and table.notes() == ["@7"]
    assert read_notes_file(path).notes() == [note]


def test_bad_files_get_clear_messages(tmp_path):
    cases = {"n.xlsx": "x", "n.csv": "note\n", "n.json": '{"note": "x"}'}
    for name, text in cases.items():
        path = tmp_path / name
        path.write_text(text, encoding="utf-8")
        with pytest.raises(VetLLMError, match=name):
            read_notes_file(path)
    many = tmp_path / "many.txt"
    many.write_text("note\n" * 5, encoding="utf-8")
    with pytest.raises(VetLLMError, match="limit of 3 per file"):
        read_notes_file(many, max_rows=3)
    with pytest.raises(VetLLMError, match="no column 'missing'"):
        read_notes_file(many, "missing")


def test_cli_codes_a_file_into_csv(quick_run, tmp_path, capsys):
    from vetllm.cli import main

    notes = tmp_path / "notes.csv"
    notes.write_text(
        "visit,note\n7,Cow high fever drop in milk swollen udder\n8,\n", encoding="utf-8"
    )
    out = tmp_path / "coded.csv"
    code = main(["predict", "--run", str(quick_run), "--file", str(notes), "--out", str(out)])
    assert code == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["visit"] for r in rows] == ["7", "8"] and rows[0]["codes"]
    assert rows[0]["run"] == quick_run.name and rows[1]["abstained"] == "True"
    summary = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert summary["notes"] == 2 and summary["notes_per_s"] > 0


class _Prediction:
    def __init__(self, note):
        self.note = note

    def to_api_dict(self, catalogue=None):
        return _answer(self.note)


class _Predictor:
    catalogue = None

    def predict(self, notes, decoding="free", batch_size=16):
        return [_Prediction(n) for n in notes]


def _handlers(tmp_path, **settings):
    from vetllm.runs.directory import RunDirectory
    from vetllm.ui.batch_handlers import BatchHandlers
    from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache
    from vetllm.ui.settings import AppSettings

    run = RunDirectory(tmp_path / "runs" / "served")
    run.reset_status("completed", created_at="1")
    run.model_dir.mkdir(parents=True)
    app = AppSettings(runs_dir=tmp_path / "runs", **settings)
    return BatchHandlers(PredictHandlers(app, PredictorCache(lambda p: _Predictor())))


def test_the_app_reads_an_upload_deletes_it_and_codes_with_the_served_run(tmp_path):
    handlers = _handlers(tmp_path)
    upload = tmp_path / "clinic.csv"
    upload.write_text("farm,text\nA,Cow with swollen udder\nB,Goat coughing\n", encoding="utf-8")
    table, column, summary = handlers.read_upload(str(upload))
    assert not upload.exists() and column.value == "text" and "2 notes" in summary
    frame, csv_button, jsonl_button, message = handlers.code_file(table, "text", "free", None,
                                                                  progress=lambda *a, **k: None)  # fmt: skip
    assert list(frame["codes"]) == ["72934000", "-"] and list(frame["farm"]) == ["A", "B"]
    assert "with **served**" in message
    csv_path, jsonl_path = Path(csv_button.value["path"]), Path(jsonl_button.value["path"])
    assert csv_path.name == "clinic-coded.csv" and jsonl_path.name == "clinic-coded.jsonl"
    assert "72934000" in csv_path.read_text() and len(jsonl_path.read_text().splitlines()) == 2


def test_a_hosted_app_limits_rows_with_a_clear_message(tmp_path):
    handlers = _handlers(tmp_path, hosted=True)
    upload = tmp_path / "big.txt"
    upload.write_text("cow with fever\n" * 501, encoding="utf-8")
    with pytest.raises(gr.Error, match="over this app's limit of 500"):
        handlers.read_upload(str(upload))
    assert not upload.exists()  # refused uploads are deleted too
    answer = handlers.code_notes_api(["Cow with swollen udder", ""], "free", "")
    assert answer["run"] == "served" and answer["rows"][0]["codes"] == ["72934000"]
    assert answer["rows"][1]["reason"] == "not predicted: empty note"
