"""Training: response-only labels with EOS, dynamic padding, the tokenizer, and real tiny runs."""

import json
import math

import pytest
import torch

from vetllm.catalogue import load_catalogue
from vetllm.cli import main as cli_main
from vetllm.config import TrainConfig, load_config
from vetllm.data.prompts import ALPACA
from vetllm.data.records import Record
from vetllm.data.synth import generate_records, write_synthetic_dataset
from vetllm.engine.collate import (
    IGNORE_INDEX,
    EncodedDataset,
    ResponseOnlyCollator,
    encode_prompt,
    encode_record,
    separator_ids,
)
from vetllm.engine.modeling import load_trained
from vetllm.engine.predict import Predictor
from vetllm.engine.tiny import train_tokenizer
from vetllm.engine.training import train, training_arguments
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory

COMPACT = TrainConfig(prompt_template="compact", note_prefix="").prompt()


@pytest.fixture(scope="module")
def tokenizer():
    records = generate_records(n=200, seed=3)
    texts = [COMPACT.format_prompt(r.note) + COMPACT.format_response(r.labels) for r in records]
    return train_tokenizer(texts, 600, labels=load_catalogue().labels)


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("data")
    write_synthetic_dataset(folder, n=240, seed=1)
    return folder


def quick_config(data_dir, **changes) -> TrainConfig:
    """A run of a few dozen steps on the small synthetic set (seconds on CPU)."""
    base = load_config("configs/tiny-cpu.yaml")
    settings = dict(
        name="quick",
        ensemble=1,  # one model: the training path itself (tests/test_ensemble.py: several)
        bag_of_words_vote=False,  # tests/test_ensemble.py: the vote with the bag of words
        data=str(data_dir / "train.json"),
        val_data=str(data_dir / "val.json"),
        max_steps=24,
        per_device_batch=16,
        logging_steps=4,
        eval_steps=12,
        eval_samples=16,
        save_steps=12,
        tiny_vocab_size=500,
        tiny_hidden_size=64,
        tiny_heads=4,
        tiny_layers=2,
        tiny_intermediate_size=128,
    )
    settings.update(changes)
    return base.replace(**settings)


def test_labels_cover_only_the_answer_and_the_eos(tokenizer):
    record = Record(note="Goat. fever, nasal discharge and cough.", labels=("1679004", "2260006"))
    example = encode_record(tokenizer, COMPACT, record, max_length=128)
    ids, labels = example["input_ids"], example["labels"]
    prompt = encode_prompt(tokenizer, COMPACT, record.note, 128)
    assert ids[: len(prompt)] == prompt and ids[0] == tokenizer.bos_token_id
    assert labels[: len(prompt)] == [IGNORE_INDEX] * len(prompt)
    answer = labels[len(prompt) :]
    assert IGNORE_INDEX not in answer and answer == ids[len(prompt) :]
    assert answer[-1] == tokenizer.eos_token_id  # the model learns to stop
    assert tokenizer.decode(answer[:-1]) == "Diagnosed conditions: 1679004, 2260006"


def test_each_catalogue_label_is_one_token(tokenizer):
    for label in ("198462004", "1679004", "local:foot-rot"):
        ids = tokenizer(" " + label, add_special_tokens=False)["input_ids"]
        assert tokenizer.convert_ids_to_tokens(ids)[-1] == label


@pytest.mark.parametrize(
    "text",
    ["2 yr Beetal goat, T 105.8F, diarrhoea 🐐", "بکری کو بخار ہے", "naïve ß ∑ \u200b tab\tend"],
)
def test_free_text_never_becomes_unknown_tokens(tokenizer, text):
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.decode(ids) == text


def test_long_notes_are_cut_but_the_answer_and_template_survive(tokenizer):
    long_note = "fever and cough " * 400
    record = Record(note=long_note, labels=("1679004",))
    example = encode_record(tokenizer, ALPACA, record, max_length=96)
    assert len(example["input_ids"]) <= 96
    text = tokenizer.decode(example["input_ids"])
    assert "### Response:\nDiagnosed conditions: 1679004" in text
    assert example["input_ids"][-1] == tokenizer.eos_token_id


def test_note_token_dropout_only_removes_note_tokens(tokenizer):
    record = Record(note="Goat. fever, nasal discharge, cough, diarrhoea.", labels=("1679004",))
    example = encode_record(tokenizer, COMPACT, record, max_length=128)
    start, end = example["note_span"]
    note_ids = example["input_ids"][start:end]
    assert tokenizer.decode(note_ids).strip() == record.note
    dataset = EncodedDataset([example], note_token_dropout=0.4, seed=0)
    lengths = set()
    for epoch in range(20):  # a new draw every epoch
        dataset.epoch = epoch
        drawn = dataset[0]
        assert dataset[0] == drawn  # the same (seed, epoch, example): a resumed run repeats it
        lengths.add(len(drawn["input_ids"]))
        assert drawn["input_ids"][:start] == example["input_ids"][:start]
        answer = len(example["input_ids"]) - end
        assert drawn["input_ids"][-answer:] == example["input_ids"][end:]
        assert drawn["labels"][-answer:] == example["labels"][end:]
        assert set(drawn["labels"][:-answer]) == {IGNORE_INDEX}
    assert len(lengths) > 1 and max(lengths) <= len(example["input_ids"])
    assert EncodedDataset([example])[0] is example  # off by default: examples unchanged


def test_segment_shuffle_reorders_the_listed_signs_and_nothing_else(tokenizer):
    record = Record(note="Goat. fever, nasal discharge, cough, and diarrhoea.", labels=("1679004",))
    example = encode_record(tokenizer, COMPACT, record, max_length=128)
    start, end = example["note_span"]
    dataset = EncodedDataset(
        [example], seed=0, segment_shuffle=1.0, separator_ids=separator_ids(tokenizer)
    )
    notes = set()
    for epoch in range(20):
        dataset.epoch = epoch
        drawn = dataset[0]
        assert dataset[0] == drawn  # the same (seed, epoch, example): a resumed run repeats it
        assert drawn["input_ids"][:start] == example["input_ids"][:start]
        assert drawn["input_ids"][end:] == example["input_ids"][end:]  # the answer untouched
        assert drawn["labels"] == example["labels"]  # note tokens are never trained on
        note = tokenizer.decode(drawn["input_ids"][start:end]).strip()
        assert note.startswith("Goat. fever,")  # the first part stays first
        assert sorted(drawn["input_ids"]) == sorted(example["input_ids"])  # same tokens
        notes.add(note)
    assert len(notes) > 2  # several orders drawn
    off = EncodedDataset([example], segment_shuffle=0.0, separator_ids=separator_ids(tokenizer))
    assert off[0] is example


def test_collator_pads_to_the_longest_in_the_batch():
    collate = ResponseOnlyCollator(pad_token_id=0)
    batch = collate(
        [
            {"input_ids": [5, 6, 7], "labels": [-100, 6, 7]},
            {"input_ids": [5, 6, 7, 8, 9], "labels": [-100, -100, 7, 8, 9]},
        ]
    )
    assert batch["input_ids"].shape == (2, 5)  # longest in this batch, not max_length
    assert batch["input_ids"][0].tolist() == [5, 6, 7, 0, 0]
    assert batch["labels"][0].tolist() == [-100, 6, 7, -100, -100]
    assert batch["attention_mask"][0].tolist() == [1, 1, 1, 0, 0]


def test_training_arguments_follow_the_config(tmp_path):
    cfg = load_config("configs/alpaca-7b-qlora.yaml")
    args = training_arguments(cfg, RunDirectory(tmp_path), has_eval=True)
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 4)
    assert args.dataloader_drop_last and args.save_total_limit == 2
    assert args.lr_scheduler_type == "cosine" and args.learning_rate == 2e-4
    assert args.get_warmup_steps(603) == 19  # 3% of 603 optimizer steps, rounded up
    assert args.output_dir == str(tmp_path / "checkpoints")
    assert args.eval_strategy == "steps" and args.eval_steps == 100


@pytest.mark.slow
def test_tiny_run_writes_the_run_directory_and_a_loadable_model(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    status = train(quick_config(data_dir), run_dir)
    assert status["state"] == "completed" and status["step"] == 24
    run = RunDirectory(run_dir)
    assert load_config(run.config_path).max_steps == 24
    metrics = run.read_metrics()
    losses = [m["loss"] for m in metrics if "loss" in m]
    assert len(losses) >= 5 and losses[-1] < losses[0]
    evals = [m for m in metrics if "eval_lenient_accuracy" in m]
    assert evals and {"eval_loss", "eval_strict_accuracy"} <= set(evals[0])
    assert all((c / "COMPLETE").is_file() for c in run.checkpoints_dir.glob("checkpoint-*"))
    card = json.loads((run.model_dir / "run_card.json").read_text())
    assert card["trainable_parameters"] > 0 and card["data"]["data"]["sha256"]
    assert card["final_metrics"]["n"] > 0 and card["train_labels"]
    assert (run.eval_dir / "metrics.json").is_file()

    model, tokenizer, cfg = load_trained(run_dir, device="cpu")
    predictor = Predictor(model, tokenizer, template=cfg.prompt(), max_length=cfg.max_length)
    [prediction] = predictor.predict(["Sheep. fever and nasal discharge."])
    assert isinstance(prediction.raw_output, str) and prediction.decoding == "free"


@pytest.mark.slow
def test_resume_starts_from_the_last_complete_checkpoint(data_dir, tmp_path):
    run_dir = tmp_path / "run"
    cfg = quick_config(data_dir, max_steps=12, save_steps=6, eval_steps=None, final_eval=False)
    train(cfg, run_dir)
    run = RunDirectory(run_dir)
    (run.checkpoints_dir / "checkpoint-12" / "COMPLETE").unlink()  # as if killed mid-save
    status = train(cfg.replace(max_steps=18), run_dir, resume=True)
    assert status["state"] == "completed" and status["step"] == 18
    log = run.log_path.read_text(encoding="utf-8")
    assert "resuming from checkpoint-6" in log


def test_bad_training_rows_fail_the_run_with_the_field_named(data_dir, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([{"input": "Goat. fever.", "output": ""}]), encoding="utf-8")
    run_dir = tmp_path / "run"
    with pytest.raises(VetLLMError) as caught:
        train(quick_config(data_dir, data=str(bad)), run_dir)
    status = RunDirectory(run_dir).read_status()
    assert status.state == "failed" and "bad.json" in status.error
    assert "bad.json" in str(caught.value)


def test_cli_train_reports_a_missing_data_file(tmp_path, capsys):
    code = cli_main(["train", "--config", "configs/tiny-cpu.yaml", "--data", "nothere.json"])
    assert code == 2
    assert "data file 'nothere.json' not found" in capsys.readouterr().err


def test_cli_train_refuses_to_overwrite_a_finished_run(tmp_path, capsys):
    RunDirectory(tmp_path).write_status("completed")
    code = cli_main(["train", "--config", "configs/tiny-cpu.yaml", "--output", str(tmp_path)])
    assert code == 2
    assert "already holds a run (state completed)" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_train_runs_a_config_with_overrides(data_dir, tmp_path, capsys):
    args = ["train", "--config", "configs/tiny-cpu.yaml", "--output", str(tmp_path / "cli")]
    args += ["--data", str(data_dir / "train.json"), "--val-data", "none"]
    args += ["--set", "max_steps=6", "--set", "tiny_hidden_size=32", "--set", "tiny_heads=2"]
    assert cli_main(args) == 0
    out = capsys.readouterr().out
    assert "completed:" in out and str(tmp_path / "cli") in out
    assert load_config(tmp_path / "cli" / "config.yaml").tiny_hidden_size == 32


@pytest.mark.gpu
@pytest.mark.slow
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_tiny_run_on_cuda(data_dir, tmp_path):
    status = train(quick_config(data_dir), tmp_path / "run")
    assert status["state"] == "completed"
    model, _, _ = load_trained(tmp_path / "run")
    assert next(model.parameters()).device.type == "cuda"


def _raise(error):
    def fail(*args, **kwargs):
        raise error

    return fail


def test_cuda_out_of_memory_ends_as_failed_with_remedies(monkeypatch, tmp_path):
    from vetllm.engine import training

    monkeypatch.setattr(training, "_train", _raise(torch.cuda.OutOfMemoryError("CUDA oom")))
    with pytest.raises(VetLLMError, match="CUDA out of memory"):
        train(TrainConfig(name="oom"), tmp_path)
    status = RunDirectory(tmp_path).read_status()
    assert status.state == "failed" and status.error == "CUDA out of memory"
    for remedy in ("per_device_batch", "max_length", "gradient_checkpointing"):
        assert remedy in status.remedy


def test_a_crash_ends_as_failed_with_one_line_and_the_traceback_in_train_log(monkeypatch, tmp_path):
    from vetllm.engine import training

    monkeypatch.setattr(training, "_train", _raise(RuntimeError("boom\nsecond line")))
    with pytest.raises(VetLLMError, match="RuntimeError: boom"):
        train(TrainConfig(name="crash"), tmp_path)
    status = RunDirectory(tmp_path).read_status()
    assert status.state == "failed" and status.error == "RuntimeError: boom"
    assert "Traceback" in (tmp_path / "train.log").read_text(encoding="utf-8")


def test_multi_process_launch_needs_an_explicit_output(monkeypatch, capsys):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli_main(["train", "--config", "configs/tiny-cpu.yaml"]) == 2
    assert "--output RUN_DIR is required" in capsys.readouterr().err


def test_early_stopping_counts_evaluations_without_lenient_gain():
    from transformers import TrainerControl

    from vetllm.engine.training import LenientEarlyStopping

    stopper, control = LenientEarlyStopping(patience=2), TrainerControl()
    for value, should_stop in ((0.5, False), (0.7, False), (0.7, False), (0.6, True)):
        stopper.on_evaluate(None, None, control, metrics={"eval_lenient_accuracy": value})
        assert control.should_training_stop is should_stop


@pytest.mark.slow
def test_lora_on_a_local_base_model_trains_and_reloads_with_its_adapter(data_dir, tmp_path):
    from transformers import LlamaForCausalLM

    from vetllm.engine.tiny import build_tiny_model

    records = generate_records(n=100, seed=4)
    texts = [ALPACA.format_prompt(r.note) + ALPACA.format_response(r.labels) for r in records]
    base_tokenizer = train_tokenizer(texts, 500, labels=load_catalogue().labels)
    base_cfg = TrainConfig(tiny_hidden_size=64, tiny_intermediate_size=128, max_length=256)
    build_tiny_model(base_cfg, base_tokenizer).save_pretrained(tmp_path / "base")
    base_tokenizer.save_pretrained(tmp_path / "base")

    cfg = quick_config(
        data_dir,
        base_model=str(tmp_path / "base"),
        method="lora",
        prompt_template="alpaca",
        note_prefix="Clinical Note: ",
        max_length=256,
        max_steps=8,
        eval_steps=None,
        learning_rate=1e-3,
    )
    status = train(cfg, tmp_path / "run")
    assert status["state"] == "completed"
    card = json.loads((tmp_path / "run" / "model" / "run_card.json").read_text())
    assert card["method"] == "lora" and card["trainable_parameters"] == 2 * 4 * 16 * (64 + 64)
    assert (tmp_path / "run" / "model" / "adapter_config.json").is_file()
    model, tokenizer, loaded_cfg = load_trained(tmp_path / "run", device="cpu")
    assert type(model).__name__ == "PeftModelForCausalLM" and loaded_cfg.method == "lora"
    assert isinstance(model.get_base_model(), LlamaForCausalLM)


@pytest.mark.slow
def test_torchrun_with_two_processes_trains_one_run_written_by_rank_zero(data_dir, tmp_path):
    import subprocess
    import sys

    run_dir = tmp_path / "ddp"
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["-m", "vetllm", "train", "--config", "configs/tiny-cpu.yaml"]
    command += ["--output", str(run_dir), "--data", str(data_dir / "train.json")]
    command += ["--val-data", "none", "--set", "max_steps=6", "--set", "logging_steps=2"]
    command += ["--set", "save_steps=3", "--set", "tiny_hidden_size=32", "--set", "tiny_heads=2"]
    # The arithmetic below counts the file's records: train on them as given (no training mix).
    command += ["--set", "dedupe_notes=false", "--set", "synthetic_notes=0"]
    command += ["--set", "ensemble=1", "--set", "bag_of_words_vote=false"]  # no torchrun ensembles
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("completed:") == 1  # rank 1 prints and writes nothing
    run = RunDirectory(run_dir)
    assert run.read_status().state == "completed"
    assert [m["step"] for m in run.read_metrics()] == [2, 4, 6]
    checkpoint = run.checkpoints_dir / "checkpoint-6"
    assert (checkpoint / "COMPLETE").is_file() and (checkpoint / "rng_state_1.pth").is_file()
    state = json.loads((checkpoint / "trainer_state.json").read_text())
    n_train = len(json.loads((data_dir / "train.json").read_text()))
    # Each rank sees ceil(n / 2) samples in micro-batches of 16 (accumulation 1, no drop_last).
    steps_per_epoch = math.ceil(math.ceil(n_train / 2) / 16)
    assert state["epoch"] == pytest.approx(6 / steps_per_epoch)
