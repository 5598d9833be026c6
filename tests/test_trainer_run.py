"""Analysing Trainer runs made elsewhere: the source's published run and a real Trainer folder.

The source case: its published loss table (DOMAIN.md section 1, tests/assets/seed_trainer_state)
with its recipe (1,602 samples, micro-batch 2 x accumulation 4, drop_last, 3 epochs) must read
201 steps per epoch, 603 in all, nothing dropped, 100% coverage; arguments that cannot produce
the logged steps are flagged with the configurations that can. The real case: a plain
`transformers.Trainer` script (not `vetllm train`) trains a tiny LLaMA on CPU in a subprocess and
its output folder is analysed as a user would, with its data file and arguments JSON.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest

from vetllm.cli import main
from vetllm.consistency import check_consistency, infer_logged_run
from vetllm.coverage import plan_coverage
from vetllm.data.records import Record
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError
from vetllm.trainer_report import analyse_run_files, render_trainer_run_report
from vetllm.trainer_run import normalise_training_args, read_trainer_state

ASSETS = Path(__file__).parent / "assets"
SEED_STATE = ASSETS / "seed_trainer_state.json"
SOURCE_ARGS = {"per_device_train_batch_size": 2, "gradient_accumulation_steps": 4,
               "num_train_epochs": 3, "dataloader_drop_last": True}  # fmt: skip
WRONG_ARGS = {**SOURCE_ARGS, "per_device_train_batch_size": 4, "gradient_accumulation_steps": 8}


def _args_file(tmp_path: Path, values: dict, name: str = "training_args.json") -> Path:
    path = tmp_path / name
    path.write_text(json.dumps(values), encoding="utf-8")
    return path


def _questions(report: str) -> list[str]:
    section = report.split("## The two questions")[1].split("\n## ")[0]
    return [line for line in section.splitlines() if line.startswith("- **")]


def test_source_recipe_reads_201_steps_per_epoch_603_in_all_nothing_dropped(tmp_path):
    result = analyse_run_files(SEED_STATE, args_file=_args_file(tmp_path, SOURCE_ARGS),
                               samples=1602)  # fmt: skip
    check = result.check
    assert check.logged.candidates == [201] and check.logged.final_step == 603
    assert check.agrees is True and check.mismatches == []
    assert result.plan.steps_per_epoch == 201 and result.plan.total_steps == 603
    assert result.plan.samples_dropped_per_epoch == 0 and result.plan.coverage == 1.0
    report = render_trainer_run_report(result)
    loss_line, whole_line = _questions(report)
    assert "How did we achieve such low loss so quickly?" in loss_line
    assert "98.2% (3.3359 at step 10 to 0.0587 at step 200, epoch 1.00)" in loss_line
    assert whole_line.startswith("- **Was the model trained on the whole dataset?** Yes: all 1,602")
    assert "nothing dropped (100% coverage)" in whole_line
    assert "201 steps per epoch x 3 epochs = 603 steps, as logged" in whole_line
    assert "| 3 | 403-603 | 603 |" in report  # the epoch table has all 3 epochs
    assert "## The training report" in report and "### Loss history" in report


def test_arguments_that_cannot_produce_the_logged_steps_are_flagged(tmp_path):
    result = analyse_run_files(SEED_STATE, args_file=_args_file(tmp_path, WRONG_ARGS),
                               samples=1602)  # fmt: skip
    check = result.check
    assert check.agrees is False
    assert check.plan.steps_per_epoch == 50 and check.plan.total_steps == 150
    assert "the arguments give 50 steps per epoch, the log 201" in check.mismatches
    assert "the arguments give 150 steps in all, the run planned 603" in check.mismatches
    assert any("train_batch_size 2" in m for m in check.mismatches)
    fits = {(r["per_device_batch"], r["grad_accum"], r["drop_last"]) for r in check.fitting}
    assert fits == {(1, 8, False), (1, 8, True), (2, 4, False), (2, 4, True), (4, 2, False),
                    (8, 1, False)}  # fmt: skip
    assert check.fitting_summary.startswith("micro-batch x accumulation = 8: ")
    report = render_trainer_run_report(result)
    assert "- **mismatch**: the arguments give 50 steps per epoch, the log 201" in report
    # still answered: the one configuration that fits the log and train_batch_size 2 covers all
    assert result.plan.per_device_batch == 2 and result.plan.coverage == 1.0
    assert "the declared arguments cannot produce this log" in _questions(report)[1]


def test_without_the_data_size_the_report_says_what_the_arguments_imply(tmp_path):
    result = analyse_run_files(SEED_STATE, args_file=_args_file(tmp_path, SOURCE_ARGS))
    assert result.check.implied_samples == [1602, 1609]
    whole = result.answers["whole"]
    assert whole.startswith("Cannot tell without the data size") and "1,602-1,609" in whole
    assert "give the training file" in result.answers["loss"]


def test_full_precision_epochs_pin_steps_per_epoch_where_rounding_cannot():
    plan = plan_coverage(1602, 2, 4, 3, drop_last=True)
    history = [{"step": s, "epoch": plan.logged_epoch(s), "loss": 1.0} for s in (10, 20)]
    logged = infer_logged_run(history)
    assert plan.steps_per_epoch in logged.candidates
    exact = infer_logged_run(history + [{"step": 201, "epoch": 1.0, "loss": 0.5}])
    assert exact.candidates == [201]
    rounded = [{"step": s, "epoch": round(plan.logged_epoch(s), 2), "loss": 1.0} for s in (10, 20)]
    assert len(infer_logged_run(rounded).candidates) > 1  # 2 decimals: several values fit


def test_training_arguments_problems_are_listed_together():
    with pytest.raises(VetLLMError) as raised:
        normalise_training_args({"gradient_accumulation_steps": 0, "num_train_epochs": "3",
                                 "dataloader_drop_last": "yes"}, "args.json")  # fmt: skip
    message = str(raised.value)
    for field in ("per_device_train_batch_size: missing", "gradient_accumulation_steps",
                  "num_train_epochs", "dataloader_drop_last"):  # fmt: skip
        assert field in message
    values = normalise_training_args({"per_device_train_batch_size": 2.0, "max_steps": -1})
    assert values["per_device_train_batch_size"] == 2 and values["max_steps"] is None
    assert values["num_train_epochs"] == 3.0 and values["dataloader_drop_last"] is False


def test_cli_analyze_source_with_args_json_and_flags(tmp_path, capsys):
    args = _args_file(tmp_path, WRONG_ARGS)
    assert main(["analyze", str(SEED_STATE), "--args", str(args), "--samples", "1602"]) == 0
    out = capsys.readouterr().out
    assert "micro-batch x accumulation = 8" in out and "**mismatch**" in out
    flags = ["--batch-size", "2", "--grad-accum", "4", "--json"]  # flags override the JSON
    assert main(["analyze", str(SEED_STATE), "--args", str(args), "--samples", "1602", *flags]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["consistency"]["agrees"] is True
    assert data["analysis"]["plateau"]["start_step"] == 200
    assert set(data["questions"]) == {"How did we achieve such low loss so quickly?",
                                      "Was the model trained on the whole dataset?"}  # fmt: skip
    assert main(["analyze", str(SEED_STATE), "--batch-size", "two", "--samples", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--batch-size: expected a number, got 'two'" in err and "--samples" in err


def _source_like_data(tmp_path: Path) -> tuple[Path, Path]:
    """1,602 training rows over 444 distinct notes; a validation file half made of them."""
    from vetllm.data.synth import generate_records

    distinct = generate_records(n=600, seed=3)
    notes = list({r.note: r for r in distinct}.values())[:444]
    assert len(notes) == 444
    rows = [notes[i % 444] for i in range(1602)]
    rows[0] = Record(note=rows[0].note, labels=("1679004",), species=rows[0].species)  # conflict
    seen = {r.note for r in notes}
    unseen = [r for r in generate_records(n=200, seed=9) if r.note not in seen]
    val = notes[:20] + list({r.note: r for r in unseen}.values())[:20]
    train_path, val_path = tmp_path / "train.json", tmp_path / "val.json"
    write_records(rows, train_path)
    write_records(val, val_path)
    return train_path, val_path


def test_data_join_counts_duplicates_exposures_conflicts_and_leakage(tmp_path):
    train, val = _source_like_data(tmp_path)
    result = analyse_run_files(SEED_STATE, args_file=_args_file(tmp_path, SOURCE_ARGS),
                               data=train, val_data=val)  # fmt: skip
    assert result.check.samples == 1602 and result.check.agrees
    assert result.stats.n_unique_notes == 444 and max(result.copies_per_note) == 4
    assert result.plan.exposures == 4806
    assert result.plan.exposures_per_unique_note == pytest.approx(4806 / 444)
    assert result.stats.n_conflicting_notes == 1
    assert result.leakage.n_leaked_notes == 20
    loss = result.answers["loss"]
    assert "1,602 training rows (training file) hold only 444 distinct notes" in loss
    assert "10.8 times (4,806 exposures / 444 notes" in loss
    assert "of the validation notes (20 of " in loss
    report = render_trainer_run_report(result)
    assert "accuracy ceiling (majority label set per note)" in report


def test_a_folder_with_only_training_args_bin_is_never_unpickled(tmp_path):
    run = tmp_path / "out"
    (run / "checkpoint-603").mkdir(parents=True)
    (run / "checkpoint-603" / "trainer_state.json").write_text(SEED_STATE.read_text())
    (run / "checkpoint-603" / "training_args.bin").write_bytes(b"\x80\x04not a pickle to open")
    result = analyse_run_files(run)
    assert result.check.declared is None
    assert any("training_args.bin found but not read" in n for n in result.notes)
    assert any("checkpoint-603/trainer_state.json, the newest of 1" in n for n in result.notes)
    with pytest.raises(VetLLMError, match="no trainer_state.json and no checkpoint-N"):
        analyse_run_files(tmp_path)


TRAINER_SCRIPT = r'''
"""A plain transformers.Trainer script, as a user would write it (no vetllm inside)."""
import json, sys
import torch
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

data_file, out_dir = sys.argv[1], sys.argv[2]
rows = json.load(open(data_file, encoding="utf-8"))
texts = [r["instruction"] + " " + r["input"] + " " + r["output"] for r in rows]

class Notes(torch.utils.data.Dataset):
    def __len__(self):
        return len(texts)
    def __getitem__(self, i):
        ids = torch.tensor(list(texts[i].encode("utf-8")[:48]) + [0] * 48)[:48]
        return {"input_ids": ids, "labels": ids.clone()}

torch.manual_seed(0)
model = LlamaForCausalLM(LlamaConfig(vocab_size=256, hidden_size=16, intermediate_size=32,
    num_hidden_layers=1, num_attention_heads=2, num_key_value_heads=2, max_position_embeddings=64))
args = TrainingArguments(output_dir=out_dir, per_device_train_batch_size=4,
    gradient_accumulation_steps=2, num_train_epochs=2, dataloader_drop_last=True,
    logging_steps=1, save_steps=3, save_strategy="steps", report_to="none",
    disable_tqdm=True, use_cpu=True, learning_rate=1e-2, seed=0)
json.dump(args.to_dict(), open(out_dir + "-args.json", "w"), default=str)
Trainer(model=model, args=args, train_dataset=Notes()).train()
'''


@pytest.fixture(scope="module")
def trainer_folder(tmp_path_factory):
    """A real Trainer output folder: 37 notes, 4 x 2, drop_last, 2 epochs, a checkpoint every 3."""
    pytest.importorskip("transformers")
    from vetllm.data.synth import generate_records

    root = tmp_path_factory.mktemp("plain-trainer")
    records = generate_records(n=30, seed=1)
    records += records[:7]  # 7 duplicated notes: 37 rows, 30 distinct
    write_records(records, root / "train.json")
    script = root / "train_plain.py"
    script.write_text(TRAINER_SCRIPT, encoding="utf-8")
    done = subprocess.run(
        [sys.executable, str(script), str(root / "train.json"), str(root / "out")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return root


def test_a_real_trainer_output_folder_is_analysed(trainer_folder):
    root = trainer_folder
    plan = plan_coverage(37, 4, 2, 2, drop_last=True)  # 9 micro-batches: 5 steps, 1 dropped
    checkpoints = sorted(p.name for p in (root / "out").glob("checkpoint-*"))
    assert "checkpoint-3" in checkpoints and f"checkpoint-{plan.total_steps}" in checkpoints
    result = analyse_run_files(root / "out", args_file=root / "out-args.json",
                               data=root / "train.json")  # fmt: skip
    check = result.check
    assert check.logged.candidates == [plan.steps_per_epoch] == [5]
    assert check.logged.final_step == plan.total_steps == 10
    assert check.logged.micro_batch == 4 and check.agrees is True
    assert result.plan.samples_dropped_per_epoch == 1
    assert result.answers["whole"].startswith("No: 1 of 37 samples are left out in each epoch")
    assert "37 training rows (training file) hold only 30 distinct notes" in result.answers["loss"]
    report = render_trainer_run_report(result)
    assert f"read checkpoint-{plan.total_steps}/trainer_state.json" in report
    assert "| 2 | 6-10 | 10 |" in report


def test_a_real_checkpoint_from_the_middle_of_a_run_says_so(trainer_folder):
    history, state = read_trainer_state(
        trainer_folder / "out" / "checkpoint-6" / "trainer_state.json"
    )
    logged = infer_logged_run(history, state)
    assert logged.final_step == 6 and logged.planned_steps == 10 and logged.complete is False
    assert logged.candidates == [5]
    result = analyse_run_files(trainer_folder / "out" / "checkpoint-6")
    assert result.answers["whole"].startswith("No: the log ends at step 6 of the 10 planned")
    check = check_consistency(logged, normalise_training_args(SOURCE_ARGS), 37)
    assert check.agrees is False and check.fitting  # 2 x 4 cannot give 5 steps from 37 rows


def test_cli_reads_training_args_bin_only_when_asked(trainer_folder, capsys):
    out = trainer_folder / "out"
    data = ["--data", str(trainer_folder / "train.json"), "--json"]
    assert main(["analyze", str(out), *data]) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["consistency"]["declared"] is None
    assert any("not read" in n for n in plain["notes"])
    assert main(["analyze", str(out), *data, "--unpickle-training-args-bin"]) == 0
    opted = json.loads(capsys.readouterr().out)
    assert opted["consistency"]["agrees"] is True
    assert opted["consistency"]["declared"]["dataloader_drop_last"] is True
    assert math.isclose(opted["plan"]["coverage"], 36 / 37)


def test_the_core_of_the_analysis_imports_neither_torch_nor_gradio():
    code = (
        "import sys, vetllm.trainer_report, vetllm.consistency, vetllm.trainer_run; "
        "print('torch' in sys.modules, 'gradio' in sys.modules)"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_a_vetllm_run_folder_is_read_from_its_metrics_jsonl(tmp_path):
    rows = [{"step": s, "epoch": s / 201, "loss": 3.0 / s} for s in range(10, 604, 10)]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = analyse_run_files(tmp_path, samples=1602)
    assert result.check.logged.candidates == [201]
    assert result.name.endswith("metrics.jsonl")
