"""The served checkpoint: the best validation step is kept and restored, whatever ends training."""

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from safetensors.torch import load_file
from transformers import TrainerCallback, TrainerControl

from vetllm.analysis import analyse_losses, load_log_history
from vetllm.cli.runs_commands import render_run_report
from vetllm.config import TrainConfig, load_config
from vetllm.data.records import Record
from vetllm.data.synth import write_synthetic_dataset
from vetllm.engine import selection, training
from vetllm.engine.selection import (
    LenientEarlyStopping,
    selection_score,
    served_step,
    too_few_to_choose,
    validation_subset,
)
from vetllm.engine.training import train, training_arguments
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory

# Lenient accuracy the faked validation reports at each evaluated step: best at 12, falls after.
FALLING = {6: 0.5, 12: 0.9, 18: 0.6, 24: 0.4}


def test_validation_subset_is_everything_unless_capped_then_spread_evenly():
    records = [Record(note=f"note {i}", labels=("1679004",)) for i in range(10)]
    assert validation_subset(records, None) == records
    assert validation_subset(records, 50) == records
    picked = validation_subset(records, 4)
    assert [r.note for r in picked] == ["note 0", "note 2", "note 5", "note 7"]


def test_selection_score_breaks_ties_by_the_later_step_but_never_outweighs_one_more_note():
    n = 217
    assert selection_score(100 / n, 400, 700, n) > selection_score(100 / n, 200, 700, n)
    assert selection_score(101 / n, 0, 700, n) > selection_score(100 / n, 700, 700, n)
    assert selection_score(0.5, 0, 700, n) == 0.5
    assert selection_score(0.5, 10, 0, n) == 0.5  # no planned steps known: accuracy alone


def _state(history, best, global_step=720, max_steps=720):
    return SimpleNamespace(
        global_step=global_step, max_steps=max_steps, best_global_step=best, log_history=history
    )


def test_served_step_names_the_best_validation_step_and_why():
    history = [
        {"step": 200, "eval_lenient_accuracy": 0.88, "eval_n": 217, "eval_loss": 0.3},
        {"step": 400, "eval_lenient_accuracy": 0.93, "eval_strict_accuracy": 0.9, "eval_n": 217},
        {"step": 400, "loss": 0.1},
    ]
    served = served_step(_state(history, 400), periodic_eval=True)
    assert served["step"] == 400 and served["selected_by"] == "best_validation_lenient_accuracy"
    assert served["summary"] == (
        "best validation accuracy 0.930 at step 400 of 720 (lenient, 217 validation notes)"
    )
    stopped = served_step(_state(history, 400, global_step=600), periodic_eval=True)
    assert "at step 400 of 600 (stopped early; 720 planned)" in stopped["summary"]
    final = served_step(_state([], None), periodic_eval=False)
    assert final["step"] == 720 and final["selected_by"] == "final_step"
    assert final["summary"] == "final step 720: no validation during training"


def test_validation_with_under_100_distinct_notes_chooses_no_step():
    def notes(n_distinct, copies=3):
        return [Record(note=f"note {i}", labels=("1679004",)) for i in range(n_distinct)] * copies

    assert too_few_to_choose(notes(100)) is None
    assert too_few_to_choose(notes(99)) == (
        "validation holds only 99 distinct notes (under 100): too few to choose a step "
        "reliably; prefer cross-validation grouped by note text"
    )  # 297 records, but copies of a note are one note
    history = [
        {"step": 400, "eval_lenient_accuracy": 0.93, "eval_n": 297},
        {"step": 720, "eval_lenient_accuracy": 0.9, "eval_strict_accuracy": 0.8, "eval_n": 297},
    ]
    reason = too_few_to_choose(notes(99))
    final = served_step(_state(history, None), periodic_eval=False, too_few=reason)
    assert final["step"] == 720 and final["selected_by"] == "final_step"
    assert final["lenient_accuracy"] == 0.9 and final["n"] == 297
    assert final["summary"] == (
        "final step 720 (validation accuracy 0.900 there, lenient): validation holds only 99 "
        "distinct notes (under 100): too few to choose a step reliably; prefer cross-validation "
        "grouped by note text"
    )
    stopped = served_step(_state(history, None, global_step=600), False, too_few=reason)
    assert stopped["summary"].startswith("final step 600 (stopped early; 720 planned): ")
    cfg = TrainConfig(eval_steps=50, save_steps=200)
    args = training_arguments(cfg, RunDirectory("unused"), has_eval=True, choose_step=False)
    assert args.eval_steps == 50 and not args.load_best_model_at_end


def test_report_says_which_step_is_served():
    from vetllm.analysis import SOURCE_LOSS_HISTORY
    from vetllm.report import render_training_report

    analysis = analyse_losses(SOURCE_LOSS_HISTORY)
    served = {
        "summary": "best validation accuracy 0.930 at step 400 of 603",
        "strict_accuracy": 0.9,
    }
    text = render_training_report(analysis, served=served)
    assert "## Served model\n\n- best validation accuracy 0.930 at step 400 of 603\n" in text
    assert "strict accuracy at that step: 0.900" in text
    assert "## Served model" not in render_training_report(analysis)


def test_the_validation_cap_is_off_by_default_and_positive_when_set():
    assert TrainConfig().eval_samples is None and TrainConfig(eval_samples=50).eval_samples == 50
    with pytest.raises(VetLLMError, match="eval_samples: got 0"):
        TrainConfig(eval_samples=0)


def test_early_stopping_keeps_its_count_across_a_resume():
    stopper, control = LenientEarlyStopping(patience=2), TrainerControl()
    history = [
        {"step": 6, "eval_lenient_accuracy": 0.9},
        {"step": 12, "eval_lenient_accuracy": 0.8},
    ]
    stopper.on_train_begin(None, SimpleNamespace(log_history=history), control)
    stopper.on_evaluate(None, None, control, metrics={"eval_lenient_accuracy": 0.85})
    assert control.should_training_stop  # two evaluations without a gain over 0.9


def test_checkpoints_follow_evaluations_and_the_best_is_loaded_at_the_end(tmp_path):
    cfg = TrainConfig(eval_steps=50, save_steps=200)
    args = training_arguments(cfg, RunDirectory(tmp_path), has_eval=True)
    assert args.save_steps == 50 and args.load_best_model_at_end
    assert args.metric_for_best_model == "selection_score" and args.greater_is_better
    plain = training_arguments(cfg.replace(eval_steps=None), RunDirectory(tmp_path), has_eval=True)
    assert plain.save_steps == 200 and not plain.load_best_model_at_end


# -- real tiny runs with a faked validation score ----------------------------------------------
@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    """Validation with 111 distinct notes: enough to choose a step (selection.py)."""
    folder = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(folder, n=240, seed=1, val_fraction=0.5)
    return folder


def quick_config(data_dir, **changes) -> TrainConfig:
    settings = dict(
        name="select",
        ensemble=1,  # one model: which step it serves (tests/test_ensemble.py: several)
        bag_of_words_vote=False,
        data=str(data_dir / "train.json"),
        val_data=str(data_dir / "val.json"),
        max_steps=24,
        logging_steps=3,
        eval_steps=6,
        save_steps=6,
        final_eval=False,
        tiny_vocab_size=400,
        tiny_hidden_size=32,
        tiny_heads=2,
        tiny_layers=1,
        tiny_intermediate_size=64,
        torch_threads=1,
    )
    settings.update(changes)
    return load_config("configs/tiny-cpu.yaml").replace(**settings)


class _StepTracker(TrainerCallback):
    """Records the optimizer step (the faked scorer answers by step) and can crash at one."""

    def __init__(self, crash_at=None):
        self.step, self.crash_at = 0, crash_at

    def on_step_end(self, args, state, control, **kwargs):
        self.step = state.global_step
        if state.global_step == self.crash_at:
            raise RuntimeError("simulated crash")


def fake_validation(monkeypatch, accuracy_by_step, crash_at=None):
    """Validation reports `accuracy_by_step[step]`; everything else (loss, saving) is real."""
    tracker = _StepTracker(crash_at)
    build = training._build_trainer

    def build_with_tracker(*args, **kwargs):
        trainer = build(*args, **kwargs)
        trainer.add_callback(tracker)
        return trainer

    def scores(self, model):
        value = accuracy_by_step[tracker.step]
        return {"strict_accuracy": value, "lenient_accuracy": value}

    monkeypatch.setattr(training, "_build_trainer", build_with_tracker)
    monkeypatch.setattr(selection.GenerationEval, "__call__", scores)


def assert_serves_checkpoint(
    run: RunDirectory, step: int, not_step: int, weights: str = "model.safetensors"
) -> None:
    served = load_file(run.model_dir / weights)
    best = load_file(run.checkpoints_dir / f"checkpoint-{step}" / weights)
    assert served.keys() == best.keys()
    assert all((served[k] == best[k]).all() for k in served)
    other = load_file(run.checkpoints_dir / f"checkpoint-{not_step}" / weights)
    assert any((served[k] != other[k]).any() for k in served)


@pytest.mark.slow
def test_a_run_whose_accuracy_falls_late_serves_the_earlier_step(data_dir, tmp_path, monkeypatch):
    fake_validation(monkeypatch, FALLING)
    run = RunDirectory(tmp_path / "run")
    status = train(quick_config(data_dir, final_eval=True), run.path)
    assert status["state"] == "completed" and status["step"] == 24
    assert status["served"]["step"] == 12
    assert_serves_checkpoint(run, 12, not_step=24)
    card = json.loads((run.model_dir / "run_card.json").read_text())
    assert card["served"]["summary"].startswith("best validation accuracy 0.900 at step 12 of 24")
    n_val = len(json.loads((data_dir / "val.json").read_text()))
    assert card["served"]["n"] == n_val  # all validation notes scored by default
    evals = [m for m in run.read_metrics() if "eval_lenient_accuracy" in m]
    assert [m["step"] for m in evals] == [6, 12, 18, 24] and evals[0]["eval_n"] == n_val
    assert "## Served model" in run.report_path.read_text()
    assert "best validation accuracy 0.900 at step 12" in run.report_path.read_text()
    assert "best validation accuracy 0.900 at step 12" in render_run_report(run)  # vetllm report
    eval_points = analyse_losses(load_log_history(run.metrics_path)).eval_points
    assert eval_points[0]["n"] == n_val


@pytest.mark.slow
def test_early_stopping_restores_the_best_step(data_dir, tmp_path, monkeypatch):
    fake_validation(monkeypatch, FALLING)
    run = RunDirectory(tmp_path / "run")
    status = train(quick_config(data_dir, early_stopping_patience=1), run.path)
    assert status["state"] == "completed" and status["step"] == 18  # one eval without a gain
    assert status["served"]["step"] == 12 and status["served"]["trained_steps"] == 18
    assert_serves_checkpoint(run, 12, not_step=18)


@pytest.mark.slow
def test_validation_too_small_to_choose_serves_the_final_step(tmp_path, monkeypatch):
    small = tmp_path / "data"
    write_synthetic_dataset(small, n=240, seed=1)  # 33 distinct validation notes
    fake_validation(monkeypatch, FALLING)
    run = RunDirectory(tmp_path / "run")
    status = train(quick_config(small), run.path)
    assert status["state"] == "completed" and status["served"]["step"] == 24
    assert status["served"]["summary"] == (
        "final step 24 (validation accuracy 0.400 there, lenient): validation holds only 33 "
        "distinct notes (under 100): too few to choose a step reliably; prefer cross-validation "
        "grouped by note text"
    )
    served, final = (
        load_file(p / "model.safetensors")
        for p in (run.model_dir, run.checkpoints_dir / "checkpoint-24")
    )
    assert all((served[k] == final[k]).all() for k in served)
    assert "the final step is served: validation holds only 33" in run.log_path.read_text()
    evals = [m["step"] for m in run.read_metrics() if "eval_lenient_accuracy" in m]
    assert evals == [6, 12, 18, 24]  # still validated, for the charts


@pytest.mark.slow
def test_no_periodic_validation_serves_the_final_step(data_dir, tmp_path):
    status = train(quick_config(data_dir, eval_steps=None, max_steps=6), tmp_path / "run")
    assert status["served"]["summary"] == "final step 6: no validation during training"


@pytest.mark.slow
def test_a_lora_run_serves_the_best_steps_adapter(data_dir, tmp_path, monkeypatch):
    from vetllm.catalogue import load_catalogue
    from vetllm.data.prompts import ALPACA
    from vetllm.data.synth import generate_records
    from vetllm.engine.tiny import build_tiny_model, train_tokenizer

    records = generate_records(n=100, seed=4)
    texts = [ALPACA.format_prompt(r.note) + ALPACA.format_response(r.labels) for r in records]
    tokenizer = train_tokenizer(texts, 500, labels=load_catalogue().labels)
    base_cfg = TrainConfig(tiny_hidden_size=32, tiny_heads=2, max_length=256)
    build_tiny_model(base_cfg, tokenizer).save_pretrained(tmp_path / "base")
    tokenizer.save_pretrained(tmp_path / "base")
    fake_validation(monkeypatch, FALLING)
    cfg = quick_config(
        data_dir,
        base_model=str(tmp_path / "base"),
        method="lora",
        prompt_template="alpaca",
        note_prefix="Clinical Note: ",
        max_length=256,
        learning_rate=1e-3,
    )
    run = RunDirectory(tmp_path / "run")
    assert train(cfg, run.path)["served"]["step"] == 12
    assert_serves_checkpoint(run, 12, not_step=24, weights="adapter_model.safetensors")


KILL_SCRIPT = """
import os, sys
from transformers import TrainerCallback
from vetllm.config import load_config
from vetllm.engine import selection, training

ACCURACY = {6: 0.5, 12: 0.9, 18: 0.6}
step = [0]

class KillAt20(TrainerCallback):
    def on_step_end(self, args, state, control, **kwargs):
        step[0] = state.global_step
        if state.global_step == 20:  # checkpoint-18 is saved; nothing gets to clean up
            os.kill(os.getpid(), 9)

build = training._build_trainer
def with_kill(*args, **kwargs):
    trainer = build(*args, **kwargs)
    trainer.add_callback(KillAt20())
    return trainer

training._build_trainer = with_kill
selection.GenerationEval.__call__ = lambda self, model: {
    "strict_accuracy": ACCURACY[step[0]], "lenient_accuracy": ACCURACY[step[0]]}
training.train(load_config(sys.argv[1]), sys.argv[2])
"""


@pytest.mark.slow
def test_kill_9_then_resume_keeps_the_best_step_seen_before_the_kill(
    data_dir, tmp_path, monkeypatch
):
    cfg = quick_config(data_dir)
    cfg.to_yaml(tmp_path / "config.yaml")
    run = RunDirectory(tmp_path / "run")
    command = [sys.executable, "-c", KILL_SCRIPT, str(tmp_path / "config.yaml"), str(run.path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert done.returncode == -9, done.stderr[-2000:]
    assert run.last_complete_checkpoint().name == "checkpoint-18"
    fake_validation(monkeypatch, FALLING)  # only step 24 is evaluated after the resume
    status = train(cfg, run.path, resume=True)
    assert "resuming from checkpoint-18" in run.log_path.read_text()
    assert status["state"] == "completed" and status["served"]["step"] == 12
    assert_serves_checkpoint(run, 12, not_step=24)
