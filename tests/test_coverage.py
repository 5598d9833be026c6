"""Coverage arithmetic checked against the real transformers Trainer and accelerate sharding.

A one-parameter torch module over a data set of indices trains in milliseconds on CPU; it records
every micro-batch it is fed, and a callback counts optimizer steps, so each plan is compared with
what the Trainer actually did, not with a re-derivation of the same formula.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from vetllm.cli import main
from vetllm.coverage import plan_coverage
from vetllm.errors import VetLLMError

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")


class _IndexModel(torch.nn.Module):
    """One parameter; records the sample indices of every training micro-batch, per epoch."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.epochs: list[list[list[int]]] = []

    def forward(self, idx, labels=None):
        if self.training:
            self.epochs[-1].append(idx.tolist())
        return {"loss": ((self.weight - 1.0) ** 2).sum() + 0.0 * idx.float().sum()}


class _IndexDataset(torch.utils.data.Dataset):
    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict:
        return {"idx": i}


class _StepCounter(transformers.TrainerCallback):
    def __init__(self, model: _IndexModel):
        self.model = model
        self.optimizer_steps = 0

    def on_epoch_begin(self, args, state, control, **kwargs):
        self.model.epochs.append([])

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.optimizer_steps += 1


def _train(tmp_path, n, batch, accum, epochs, max_steps, drop_last):
    transformers.logging.set_verbosity_error()
    model = _IndexModel()
    counter = _StepCounter(model)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path),
        per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum,
        num_train_epochs=epochs,
        max_steps=-1 if max_steps is None else max_steps,
        dataloader_drop_last=drop_last,
        logging_steps=1,
        save_strategy="no",
        report_to="none",
        disable_tqdm=True,
        use_cpu=True,
        learning_rate=1e-3,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=_IndexDataset(n), callbacks=[counter]
    )
    trainer.train()
    return trainer, model, counter


# (samples, per-device batch, grad accumulation, epochs, max_steps, drop_last)
TRAINER_GRID = [
    (10, 3, 2, 1.0, None, False),  # short last micro-batch, short last window
    (10, 3, 2, 1.0, None, True),  # drop_last drops one sample; window of 1 still steps
    (23, 2, 4, 2.5, None, True),  # fractional epochs, accumulation not dividing 11 batches
    (23, 2, 4, 2.5, None, False),
    (50, 1, 1, 1.1, None, False),  # 1.1 * 50 = 55.00000000000001 -> 56 steps, as the Trainer
    (17, 4, 3, 1.0, 7, False),  # max_steps across epochs, last epoch partial
    (17, 4, 3, 1.0, 7, True),
    (9, 2, 5, 0.5, None, False),  # accumulation equal to the 5 micro-batches of an epoch
    (7, 2, 6, 2.0, None, False),  # accumulation (6) larger than the epoch (4 micro-batches)
    (30, 4, 2, 3.0, None, True),
    (12, 4, 3, 2.0, None, True),  # everything divides: drop_last drops nothing
    (5, 8, 1, 1.0, None, False),  # batch larger than the data set
    (1602, 8, 1, 3.0, None, True),  # DOMAIN.md: 200 steps/epoch, 2 dropped
]


@pytest.mark.parametrize("n,batch,accum,epochs,max_steps,drop_last", TRAINER_GRID)
def test_plan_matches_real_trainer(tmp_path, n, batch, accum, epochs, max_steps, drop_last):
    plan = plan_coverage(n, batch, accum, epochs, max_steps=max_steps, drop_last=drop_last)
    trainer, model, counter = _train(tmp_path, n, batch, accum, epochs, max_steps, drop_last)

    assert counter.optimizer_steps == plan.total_steps
    assert trainer.state.global_step == plan.total_steps
    assert trainer.state.max_steps == plan.total_steps
    assert len(model.epochs) == plan.epochs_started
    full_epochs = model.epochs[: plan.full_epochs]
    for batches in full_epochs:
        fed = [i for micro in batches for i in micro]
        assert len(batches) == plan.micro_batches_per_epoch
        assert len(batches[-1]) == plan.last_micro_batch_size
        assert len(set(fed)) == plan.samples_seen_per_epoch
        assert n - len(set(fed)) == plan.samples_dropped_per_epoch
        assert len(fed) == plan.samples_fed_per_epoch
    exposures = sum(len(micro) for batches in model.epochs for micro in batches)
    assert exposures == plan.exposures
    logged = [(h["step"], h["epoch"]) for h in trainer.state.log_history if "loss" in h]
    assert [step for step, _ in logged] == list(range(1, plan.total_steps + 1))
    for step, epoch in logged:
        assert epoch == pytest.approx(plan.logged_epoch(step), abs=1e-12)


@pytest.mark.slow
def test_seed_recipe_on_real_trainer(tmp_path):
    """The seed's 1,602 samples, micro 2 x accum 4, drop_last, 3 epochs (about 1 s on CPU)."""
    plan = plan_coverage(1602, 2, 4, 3.0, drop_last=True)
    trainer, model, counter = _train(tmp_path, 1602, 2, 4, 3.0, None, True)
    assert counter.optimizer_steps == plan.total_steps == 603
    assert all(len({i for m in batches for i in m}) == 1602 for batches in model.epochs)
    step10 = next(h for h in trainer.state.log_history if h.get("step") == 10)
    assert step10["epoch"] == pytest.approx(plan.logged_epoch(10)) == pytest.approx(40 / 801)


def test_seed_recipe_numbers():
    plan = plan_coverage(1602, 2, grad_accum=4, epochs=3, drop_last=True)
    assert (plan.total_steps, plan.steps_per_epoch) == (603, 201)
    assert plan.micro_batches_per_epoch == 801
    assert plan.last_window_micro_batches == 1
    assert plan.samples_dropped_per_epoch == 0
    assert plan.coverage == 1.0
    assert plan.exposures == 3 * 1602
    assert plan.effective_batch == 8
    assert round(plan.logged_epoch(10), 4) == 0.0499  # 40 of 801 micro-batches
    assert plan.logged_epoch(201) == 1.0 and plan.epochs_run == 3.0


def test_seed_claim_batch8_drops_two():
    plan = plan_coverage(1602, 8, grad_accum=1, epochs=3, drop_last=True)
    assert (plan.steps_per_epoch, plan.total_steps) == (200, 600)
    assert plan.samples_dropped_per_epoch == 2
    assert plan.coverage == pytest.approx(1600 / 1602)
    assert any("2 sample(s)" in note for note in plan.notes)


def test_fractional_epochs_round_up_in_floating_point_like_the_trainer():
    assert plan_coverage(50, 1, epochs=1.1).total_steps == 56  # 1.1 * 50 > 55 in binary
    assert plan_coverage(40, 1, epochs=1.1).total_steps == 44


def test_exposures_per_unique_note():
    plan = plan_coverage(1602, 2, 4, 3, drop_last=True, unique_notes=444)
    assert plan.exposures_per_unique_note == pytest.approx(4806 / 444)
    assert any("444 of 1602" in note for note in plan.notes)


def test_partial_epoch_exposures_by_hand():
    # 100 samples, micro 4: 25 micro-batches, accum 3 -> 9 steps/epoch; 1.5 epochs -> 14 steps:
    # one full epoch (100 samples) + 5 windows of 3 micro-batches of 4 samples (60).
    plan = plan_coverage(100, 4, 3, 1.5)
    assert (plan.steps_per_epoch, plan.total_steps, plan.steps_in_last_epoch) == (9, 14, 5)
    assert plan.exposures == 160
    assert plan.logged_epoch(14) == pytest.approx(1 + 15 / 25)


# (samples, per-device batch, world size, drop_last)
SHARD_GRID = [
    (1602, 2, 2, False),
    (1602, 2, 2, True),
    (10, 2, 3, False),
    (10, 2, 3, True),
    (17, 4, 4, False),
    (3, 2, 4, False),  # fewer samples than one round of batches: padding wraps around twice
    (64, 8, 4, True),
    (9, 2, 2, False),
    (7, 2, 2, True),
]


@pytest.mark.parametrize("n,batch,world,drop_last", SHARD_GRID)
def test_world_size_matches_accelerate_sharding(n, batch, world, drop_last):
    """Each rank's loader built by accelerate's prepare_data_loader, as the Trainer does."""
    from accelerate.data_loader import prepare_data_loader

    plan = plan_coverage(n, batch, epochs=1, world_size=world, drop_last=drop_last)
    fed: list[int] = []
    for rank in range(world):
        loader = torch.utils.data.DataLoader(
            _IndexDataset(n),
            batch_size=batch,
            sampler=torch.utils.data.SequentialSampler(range(n)),
            drop_last=drop_last,
        )
        shard = prepare_data_loader(
            loader, num_processes=world, process_index=rank, put_on_device=False
        )
        batches = [b["idx"].tolist() for b in shard]
        assert len(shard) == len(batches) == plan.micro_batches_per_epoch
        fed += [i for b in batches for i in b]
    assert len(fed) == plan.samples_fed_per_epoch
    assert len(set(fed)) == plan.samples_seen_per_epoch
    assert len(fed) - len(set(fed)) == plan.samples_repeated_per_epoch


def test_world_size_arithmetic():
    plan = plan_coverage(1602, 2, 4, 3, world_size=2)
    assert plan.micro_batches_per_epoch == 401  # ceil(801 batches / 2 ranks)
    assert plan.steps_per_epoch == 101 and plan.total_steps == 303
    assert (plan.samples_fed_per_epoch, plan.samples_repeated_per_epoch) == (1604, 2)
    assert plan.effective_batch == 16
    dropped = plan_coverage(1602, 2, 4, 3, world_size=2, drop_last=True)
    assert dropped.micro_batches_per_epoch == 400
    assert dropped.samples_dropped_per_epoch == 2 and dropped.samples_repeated_per_epoch == 0


def test_world_size_is_not_distributed_sampler_arithmetic():
    # torch's DistributedSampler would give each rank ceil(7 / 2) = 4 samples = 2 micro-batches;
    # the Trainer's accelerate sharder deals out floor(7 / 2) = 3 batches round-robin: 1 each.
    plan = plan_coverage(7, 2, world_size=2, drop_last=True)
    assert plan.micro_batches_per_epoch == 1 and plan.samples_dropped_per_epoch == 3
    padded = plan_coverage(9, 2, world_size=2)
    assert (padded.samples_fed_per_epoch, padded.samples_repeated_per_epoch) == (12, 3)


def test_invalid_inputs_are_all_reported():
    with pytest.raises(VetLLMError) as error:
        plan_coverage(0, -2, grad_accum=1.5, epochs=float("nan"), world_size=True)
    message = str(error.value)
    for name in ("samples", "per_device_batch", "grad_accum", "epochs", "world_size"):
        assert name in message
    assert "nan" in message


def test_field_labels_name_the_flags():
    with pytest.raises(VetLLMError, match="--batch-size: expected a whole number"):
        plan_coverage(10, 0, field_labels={"per_device_batch": "--batch-size"})


def test_max_steps_must_be_positive_and_overrides_epochs():
    with pytest.raises(VetLLMError, match="max_steps.*leave it unset"):
        plan_coverage(10, 2, max_steps=0)
    plan = plan_coverage(10, 2, epochs=99, max_steps=3)
    assert plan.total_steps == 3 and any("overrides epochs" in n for n in plan.notes)


def test_drop_last_with_too_few_samples_is_explained():
    with pytest.raises(VetLLMError, match="cannot fill one micro-batch"):
        plan_coverage(3, 4, drop_last=True)


def test_unique_notes_cannot_exceed_samples():
    with pytest.raises(VetLLMError, match="unique_notes: 20 distinct notes cannot exceed 10"):
        plan_coverage(10, 2, unique_notes=20)


def test_core_module_imports_neither_torch_nor_gradio():
    code = (
        "import sys, vetllm.coverage, vetllm.analysis;"
        "print(sorted(m for m in ('torch','gradio','transformers') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_cli_coverage_json(capsys):
    argv = ["coverage", "--samples", "1602", "--batch-size", "2", "--grad-accum", "4"]
    argv += ["--epochs", "3", "--drop-last", "--unique-notes", "444", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["steps_per_epoch"] == 201 and out["total_steps"] == 603
    assert out["micro_batches_per_epoch"] == 801
    assert out["samples_seen_per_epoch"] == 1602 and out["samples_dropped_per_epoch"] == 0
    assert out["coverage"] == 1.0 and out["exposures"] == 4806


def test_cli_coverage_text_and_max_steps(capsys):
    argv = ["coverage", "--samples", "100", "--batch-size", "4", "--grad-accum", "3"]
    assert main(argv + ["--max-steps", "14", "--world-size", "1", "--no-drop-last"]) == 0
    text = capsys.readouterr().out
    assert "| total optimizer steps | 14 |" in text
    assert "max_steps=14 overrides epochs" in text


@pytest.mark.parametrize(
    "flag,value",
    [("--samples", "abc"), ("--batch-size", "0"), ("--epochs", "-1"), ("--world-size", "1.5")],
)
def test_cli_coverage_invalid_number_names_flag(capsys, flag, value):
    argv = {"--samples": "10", "--batch-size": "2", "--epochs": "1", "--world-size": "1"}
    argv[flag] = value
    args = ["coverage"] + [item for pair in argv.items() for item in pair]
    assert main(args) == 2
    err = capsys.readouterr().err
    assert flag in err and value in err


_DDP_WORKER = """
import json, os, sys, torch, transformers
transformers.logging.set_verbosity_error()
configs, out_dir = json.loads(sys.argv[1]), sys.argv[2]
rank = int(os.environ["RANK"])


class Model(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))
        self.fed = []

    def forward(self, idx, labels=None):
        if self.training:
            self.fed.append(idx.tolist())
        return {"loss": ((self.weight - 1.0) ** 2).sum() + 0.0 * idx.float().sum()}


class Data(torch.utils.data.Dataset):
    def __init__(self, n):
        self.n = n

    def __len__(self):
        return self.n

    def __getitem__(self, i):
        return {"idx": i}


class Steps(transformers.TrainerCallback):
    count = 0

    def on_optimizer_step(self, args, state, control, **kwargs):
        self.count += 1


results = []
for i, (n, batch, accum, epochs, drop_last) in enumerate(configs):
    model, steps = Model(), Steps()
    args = transformers.TrainingArguments(
        output_dir=os.path.join(out_dir, str(i)), per_device_train_batch_size=batch,
        gradient_accumulation_steps=accum, num_train_epochs=epochs, dataloader_drop_last=drop_last,
        report_to="none", save_strategy="no", disable_tqdm=True, use_cpu=True, ddp_backend="gloo",
        logging_steps=1, ddp_find_unused_parameters=False,
    )
    trainer = transformers.Trainer(model=model, args=args, train_dataset=Data(n), callbacks=[steps])
    trainer.train()
    results.append({"world_size": trainer.args.world_size, "steps": steps.count,
                    "micro_batches": len(model.fed), "fed": [j for m in model.fed for j in m]})
with open(os.path.join(out_dir, f"rank{rank}.json"), "w") as handle:
    json.dump(results, handle)
# Leave together: a rank exiting while gloo still talks to the other aborts it (SIGABRT).
torch.distributed.barrier()
torch.distributed.destroy_process_group()
"""

# (samples, per-device batch, grad accumulation, epochs, drop_last), all on 2 ranks
DDP_GRID = [
    (11, 2, 2, 1.0, False),
    (9, 2, 1, 1.0, False),  # a DistributedSampler would feed 10 samples; accelerate feeds 12
    (7, 2, 1, 1.0, True),  # a DistributedSampler would give 2 micro-batches per rank, not 1
    (23, 3, 2, 2.5, False),
    (17, 2, 3, 1.0, True),
]


@pytest.mark.slow
def test_world_size_two_matches_real_ddp_trainer(tmp_path):
    """Two CPU processes (gloo) under torchrun: the real Trainer + accelerate DDP path."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    worker = tmp_path / "ddp_worker.py"
    worker.write_text(_DDP_WORKER)
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2"]
    command += ["--master_addr", "127.0.0.1", "--master_port", str(port), str(worker)]
    command += [json.dumps(DDP_GRID), str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    for i, (n, batch, accum, epochs, drop_last) in enumerate(DDP_GRID):
        plan = plan_coverage(n, batch, accum, epochs, world_size=2, drop_last=drop_last)
        runs = [ranks[0][i], ranks[1][i]]
        assert all(run["world_size"] == 2 for run in runs)
        assert all(run["steps"] == plan.total_steps for run in runs)
        if plan.full_epochs == plan.epochs_started:  # whole epochs: compare the samples too
            fed = runs[0]["fed"] + runs[1]["fed"]
            epochs_run = plan.full_epochs
            assert all(
                r["micro_batches"] == plan.micro_batches_per_epoch * epochs_run for r in runs
            )
            assert len(fed) == plan.exposures == plan.samples_fed_per_epoch * epochs_run
            assert len(set(fed)) == plan.samples_seen_per_epoch
        else:
            assert sum(len(run["fed"]) for run in runs) == plan.exposures
