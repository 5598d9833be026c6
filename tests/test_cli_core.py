"""CLI contract of `vetllm postprocess`, `vetllm codes check|list` and `vetllm score`."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from vetllm.cli import main

ASSETS = Path(__file__).parent / "assets"
CONCATENATED = ASSETS / "concatenated_outputs.jsonl"


def run_json(capsys, *argv) -> object:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_postprocess_json(capsys):
    out = run_json(capsys, "postprocess", "Diagnosed conditions: 1679004198462004</s>")
    assert out["codes"] == ["1679004", "198462004"]
    assert out["unknown_codes"] == []
    assert out["repairs"] and "198462004" in out["repairs"][0]


def test_postprocess_text_and_stdin(capsys, monkeypatch):
    assert main(["postprocess", "Diagnosed conditions: appropriate 12345678"]) == 0
    text = capsys.readouterr().out
    assert "codes:         (none)" in text and "unknown:       12345678" in text
    monkeypatch.setattr(sys, "stdin", __import__("io").StringIO("Diagnosed conditions: H.S\n"))
    out = run_json(capsys, "postprocess", "-")
    assert out["codes"] == ["198462004"]


def test_codes_check_json(capsys):
    out = run_json(capsys, "codes", "check", "198462004", "1679004", "409498004", "12", "PPR")
    by_code = {item["code"]: item for item in out}
    assert by_code["198462004"]["valid"] is True
    assert by_code["198462004"]["disease"] == "Hemorrhagic septicemia"
    assert by_code["1679004"]["valid"] is False and "Verhoeff" in by_code["1679004"]["reason"]
    assert by_code["409498004"]["valid"] is True and by_code["409498004"]["disease"] == "Anthrax"
    assert by_code["12"]["valid"] is False and by_code["12"]["kind"] is None
    assert by_code["PPR"]["catalogue_label"] == "1679004"


def test_codes_check_suggested_code_and_text(capsys):
    out = run_json(capsys, "codes", "check", "40214000")
    assert out[0]["suggested_code"] == "409498004"
    assert main(["codes", "check", "72934000", "3974005"]) == 0
    text = capsys.readouterr().out
    assert "72934000: valid" in text and "3974005: INVALID" in text


def test_codes_list(capsys):
    rows = run_json(capsys, "codes", "list")
    by_key = {row["key"]: row for row in rows}
    assert by_key["hs"]["valid_sctid"] is True and by_key["ppr"]["valid_sctid"] is False
    assert by_key["foot-rot"]["label"] == "local:foot-rot"
    assert main(["codes", "list"]) == 0
    assert "local:foot-rot" in capsys.readouterr().out


def test_score_concatenated_outputs(capsys):
    out = run_json(capsys, "score", str(CONCATENATED))
    assert out["n"] == 10
    # strict: lines 1, 6 (text after EOS is ignored), 7 and 10 are clean lists with the gold set
    assert out["strict_accuracy"] == pytest.approx(0.4)
    # lenient adds the split run (2), the repeats (4) and the H.S name (9)
    assert out["lenient_accuracy"] == pytest.approx(0.7)
    assert out["format_valid_rate"] == pytest.approx(0.4)
    assert 0 < out["macro_f1"] < out["micro_f1"] < 1
    codes = {row["code"] for row in out["per_code"]}
    assert {"1679004", "198462004", "local:foot-rot"} <= codes


def test_score_text_table(capsys):
    assert main(["score", str(CONCATENATED)]) == 0
    text = capsys.readouterr().out
    assert "| strict accuracy | 40.0% |" in text and "| lenient accuracy | 70.0% |" in text
    assert "Hemorrhagic septicemia" in text


def test_score_bad_line_is_named(tmp_path, capsys):
    path = tmp_path / "preds.jsonl"
    path.write_text(
        '{"output": "Diagnosed conditions: 1679004", "snomed_codes": ["1679004"]}\n{oops\n'
    )
    assert main(["score", str(path), "--json"]) == 2
    err = capsys.readouterr().err
    assert "preds.jsonl, line 2" in err and "not valid JSON" in err
    assert str(tmp_path) not in err  # no server path


def test_score_through_the_real_entry_point():
    out = subprocess.run(
        [sys.executable, "-m", "vetllm", "score", str(CONCATENATED), "--json"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["lenient_accuracy"] == pytest.approx(0.7)


def write_source_file(path: Path, n: int, seed: int) -> Path:
    from test_baselines import make_records

    rows = [
        {"input": r.note, "snomed_codes": list(r.labels), "animal": r.species}
        for r in make_records(n, seed)
    ]
    path.write_text("\n".join(json.dumps(row) for row in rows) + "\n", encoding="utf-8")
    return path


def test_baselines_command_on_a_split_and_a_test_file(tmp_path, capsys):
    train = write_source_file(tmp_path / "train.jsonl", 200, seed=1)
    out = run_json(capsys, "baselines", str(train), "--test-fraction", "0.25")
    assert set(out["baselines"]) == {"majority", "majority_per_species", "bag_of_words"}
    assert out["n_train"] + out["n_test"] == 200 and out["n_test"] > 20
    assert "predictions" not in out["baselines"]["majority"]
    test = write_source_file(tmp_path / "test.jsonl", 40, seed=2)
    out = run_json(capsys, "baselines", str(train), "--test", str(test), "--predictions")
    assert out["n_test"] == 40 and len(out["baselines"]["bag_of_words"]["predictions"]) == 40
    assert out["baselines"]["bag_of_words"]["accuracy"] > out["baselines"]["majority"]["accuracy"]
    assert main(["baselines", str(train), "--test", str(test)]) == 0
    assert "| bag_of_words |" in capsys.readouterr().out


def test_predict_refuses_a_note_over_the_apps_limit_before_loading_a_model(tmp_path, capsys):
    from vetllm.data.validation import MAX_PREDICT_NOTE_CHARS
    from vetllm.ui.settings import AppSettings

    # One rule for a note to code: the app (and its API) and the CLI use the same number.
    assert AppSettings(runs_dir=tmp_path).max_note_chars == MAX_PREDICT_NOTE_CHARS
    note = "x" * (MAX_PREDICT_NOTE_CHARS + 1)
    assert main(["predict", "--run", str(tmp_path), "fine note", note]) == 2
    error = capsys.readouterr().err
    assert f"note 2: {MAX_PREDICT_NOTE_CHARS + 1:,} characters" in error
    assert f"the limit is {MAX_PREDICT_NOTE_CHARS:,}" in error and "config.yaml" not in error
