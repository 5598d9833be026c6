"""evaluate_run and the `vetllm predict` / `vetllm evaluate` commands on a run trained by train().

The run is the real CPU path (`train(cfg)` with the tiny model) for a few dozen steps: the model
is weak, which is fine here; these tests check the files, the numbers' consistency and errors.
"""

from __future__ import annotations

import json

import pytest
import torch

from vetllm.cli import main as cli_main
from vetllm.config import TrainConfig
from vetllm.data.synth import generate_records
from vetllm.data.writing import write_records
from vetllm.engine.evaluate import evaluate_at_finish, evaluate_run, headline_metrics
from vetllm.engine.training import train
from vetllm.errors import VetLLMError

pytestmark = pytest.mark.slow  # trains a tiny model once through the Trainer (~10-30 s)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(run_dir, val_path) of a tiny run trained for 40 steps; train() evaluates it itself."""
    folder = tmp_path_factory.mktemp("evaluate")
    records = generate_records(n=240, seed=1)
    train_path = write_records(records[:200], folder / "train.json")
    val_path = write_records(records[200:], folder / "val.json")
    cfg = TrainConfig(
        name="eval-test",
        data=str(train_path),
        val_data=str(val_path),
        prompt_template="compact",
        note_prefix="",
        max_length=128,
        max_new_tokens=16,
        max_steps=40,
        per_device_batch=16,
        grad_accum=1,
        learning_rate=3e-3,
        logging_steps=10,
        save_steps=1000,
        tiny_vocab_size=600,
        tiny_hidden_size=64,
        tiny_intermediate_size=128,
        tiny_layers=2,
        tiny_heads=4,
        torch_threads=1,
    )
    threads = torch.get_num_threads()
    try:
        status = train(cfg, folder / "run")
    finally:
        torch.set_num_threads(threads)
    assert status["state"] == "completed"
    return folder / "run", val_path


def _lines(path):
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def test_training_wrote_an_evaluation_through_evaluate_run(trained):
    metrics = json.loads((trained[0] / "eval" / "metrics.json").read_text())
    assert metrics["decoding"] == "free" and metrics["n"] == 40
    assert set(metrics["baselines"]) == {"majority", "majority_per_species", "bag_of_words"}


@pytest.mark.parametrize("decoding", ["free", "constrained"])
def test_evaluate_writes_consistent_files(trained, tmp_path, decoding):
    run_dir, val_path = trained
    metrics = evaluate_run(run_dir, val_path, decoding=decoding, out_dir=tmp_path)
    rows = _lines(tmp_path / "predictions.jsonl")
    assert len(rows) == metrics["n"] == 40
    assert sum(r["strict_correct"] for r in rows) == metrics["strict_correct"]
    assert sum(r["lenient_correct"] for r in rows) == metrics["lenient_correct"]
    for row in rows:
        assert {"note", "gold", "raw_output", "codes", "confidence"} <= set(row)
        assert set(row["confidence"]) == set(row["codes"])
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk["lenient_accuracy"] == metrics["lenient_accuracy"]
    assert on_disk["baselines"]["majority"]["n"] == 40
    assert 0.0 <= on_disk["share_in_training_data"] <= 1.0
    assert on_disk["truncated_notes"] == 0  # the synthetic notes fit the 128-token budget
    summary = (tmp_path / "summary.md").read_text()
    assert "## Baselines" in summary and decoding in summary
    # abstentions count as wrong in the accuracies; coverage and accuracy-on-answered beside
    answered = [r for r in rows if not r["abstained"]]
    assert metrics["answered"] == len(answered) and metrics["coverage"] == len(answered) / 40
    assert all(not r["lenient_correct"] and r["codes"] == [] for r in rows if r["abstained"])
    if answered:
        right = sum(r["lenient_correct"] for r in answered)
        assert metrics["accuracy_on_answered"] == pytest.approx(right / len(answered))
    assert metrics["distinct_notes"]["n_records"] == 40
    assert 0.0 <= metrics["expected_calibration_error"] <= 1.0
    assert metrics["selective"][0]["coverage"] == 1.0
    assert sum(row["n"] for row in metrics["reliability"]) == 40
    assert any("40 distinct notes" in w or "distinct notes" in w for w in metrics["warnings"])
    assert metrics["baseline_verdict"]["sentence"] in summary
    assert "## Accuracy vs coverage" in summary and "## Distinct notes" in summary
    if decoding == "constrained":
        assert metrics["strict_accuracy"] == metrics["lenient_accuracy"]
        assert metrics["format_valid_rate"] == 1.0
        assert all(len(r["model_codes"]) == 1 for r in rows)


def test_evaluate_counts_skipped_rows(trained, tmp_path):
    run_dir, val_path = trained
    rows = json.loads(val_path.read_text())[:5]
    rows.append({"input": "", "snomed_codes": ["72934000"]})  # no note text: skipped
    bad = tmp_path / "with_bad_row.json"
    bad.write_text(json.dumps(rows), encoding="utf-8")
    metrics = evaluate_run(run_dir, bad, out_dir=tmp_path / "out", with_baselines=False)
    assert metrics["n"] == 5 and metrics["skipped_rows"] == 1
    assert "baselines" not in metrics


def test_evaluate_missing_file_is_a_clear_error(trained, tmp_path):
    with pytest.raises(VetLLMError, match="nowhere.json"):
        evaluate_run(trained[0], tmp_path / "nowhere.json", out_dir=tmp_path)


def test_evaluate_rejects_unknown_decoding(trained, tmp_path):
    with pytest.raises(VetLLMError, match="decoding"):
        evaluate_run(trained[0], trained[1], decoding="sampled", out_dir=tmp_path)


def test_cli_evaluate_json(trained, tmp_path, capsys):
    run_dir, val_path = trained
    code = cli_main(
        ["evaluate", "--run", str(run_dir), "--data", str(val_path), "--json"]
        + ["--decoding", "constrained", "--out", str(tmp_path)]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("n", "strict_accuracy", "lenient_accuracy", "format_valid_rate", "micro_f1"):
        assert key in out
    assert out["macro_f1"] >= 0.0 and out["strict_accuracy"] == out["lenient_accuracy"]


def test_cli_predict_json_and_no_note_echo(trained, capsys):
    notes = ["Cow SECRET-FARM, oral frothing and foot vesicles", "Goat: fever, nasal discharge"]
    code = cli_main(["predict", "--run", str(trained[0]), *notes, "--decoding", "constrained"])
    assert code == 0
    text = capsys.readouterr().out
    assert "note 2" in text and "SECRET-FARM" not in text
    assert cli_main(["predict", "--run", str(trained[0]), *notes, "--json"]) == 0
    answers = json.loads(capsys.readouterr().out)
    assert len(answers) == 2 and all(a["decoding"] == "free" for a in answers)


def test_cli_predict_empty_note_exits_2(trained, capsys):
    assert cli_main(["predict", "--run", str(trained[0]), "  "]) == 2
    assert "note 1: is empty" in capsys.readouterr().err


def test_cli_predict_on_a_folder_that_is_not_a_run(tmp_path, capsys):
    assert cli_main(["predict", "--run", str(tmp_path), "Cow, fever"]) == 2
    assert "config.yaml" in capsys.readouterr().err


def test_training_calibrated_the_run_and_cli_calibrate_refits(trained, capsys):
    run_dir, val_path = trained
    calibration = json.loads((run_dir / "calibration.json").read_text())
    assert set(calibration["temperatures"]) == {"free"}  # the served default, at training end
    assert calibration["thresholds"] == {"free": None}  # off by default
    code = cli_main(
        ["calibrate", "--run", str(run_dir), "--target-accuracy", "0.9", "--json"]
        + ["--decoding", "constrained", "--data", str(val_path)]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["target_accuracy"] == 0.9 and out["n_notes"] == 40
    assert "ece_before" in out["decodings"]["constrained"]
    assert cli_main(["calibrate", "--run", str(run_dir), "--decoding", "free"]) == 0
    assert "ECE" in capsys.readouterr().out


def test_cli_predict_json_says_abstained_with_the_reason(trained, capsys):
    notes = ["Cow, high fever, nasal discharge", "lorem ipsum dolor sit amet"]
    assert cli_main(["predict", "--run", str(trained[0]), *notes, "--json"]) == 0
    real, nonsense = json.loads(capsys.readouterr().out)
    assert real["abstained"] is False and real["reason"] is None
    assert nonsense["abstained"] is True and nonsense["codes"] == []
    assert nonsense["reason"].startswith("no code: refer to a veterinarian")
    assert cli_main(["predict", "--run", str(trained[0]), *notes]) == 0
    assert "abstained: no code: refer to a veterinarian" in capsys.readouterr().out


def test_a_failed_final_evaluation_is_logged_and_leaves_no_final_metrics(tmp_path):
    lines: list[str] = []
    records = generate_records(n=3, seed=0)
    assert evaluate_at_finish(tmp_path / "not-a-run", records, lines.append) is None
    assert "final evaluation skipped" in lines[0] and "vetllm evaluate --run" in lines[0]
    assert headline_metrics(None) is None
    metrics = {"n": 3, "strict_accuracy": 0.0, "lenient_accuracy": 0.5, "baselines": {}}
    assert headline_metrics(metrics) == {"n": 3, "strict_accuracy": 0.0, "lenient_accuracy": 0.5}
