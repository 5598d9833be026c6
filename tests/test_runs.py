"""Run directories and RunCallback: atomic status, metrics, checkpoint markers, stop and signals.

The callback tests drive a real transformers.Trainer over a one-parameter torch module, so the
event order (log, save, step end) is the library's own, not an imitation.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

import vetllm.runs
from vetllm.runs.directory import (
    COMPLETE_MARKER,
    RunDirectory,
    default_runs_dir,
    new_run_folder_name,
    process_alive,
    process_start_time,
    read_jsonl,
)


# -- RunDirectory ----------------------------------------------------------------------------
def test_missing_and_corrupt_status_read_as_unknown(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.read_status().state == "unknown"
    run.path.mkdir()
    run.status_path.write_text('{"state": "runn')  # a torn write from some other tool
    status = run.read_status()
    assert status.state == "unknown"
    assert "not valid JSON" in status.error
    run.status_path.write_text("[1, 2]")
    assert run.read_status().state == "unknown"


def test_write_status_merges_fields_and_replaces_atomically(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("queued", step=0, total_steps=10)
    run.write_status(step=4, eta_s=12.5)
    status = run.write_status("running", error=None)
    assert status["state"] == "running"
    assert (status["step"], status["total_steps"], status["eta_s"]) == (4, 10, 12.5)
    assert status["error"] is None and "updated_at" in status
    assert json.loads(run.status_path.read_text()) == status
    leftovers = [p.name for p in run.path.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []


def test_write_status_rejects_an_unknown_state(tmp_path):
    with pytest.raises(ValueError, match="unknown run state"):
        RunDirectory(tmp_path / "run").write_status("exploded")


def test_reset_status_drops_previous_fields(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("failed", error="boom")
    assert run.reset_status("queued", step=0) == {
        "state": "queued",
        "step": 0,
        "updated_at": run.read_status().updated_at,
    }


def test_concurrent_readers_never_see_half_a_status(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running", step=0, padding="x" * 20_000)
    errors: list = []
    done = threading.Event()

    def reader():
        while not done.is_set():
            status = run.read_status()
            if status.state != "running":
                errors.append(status)

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for thread in threads:
        thread.start()
    for step in range(100):
        run.write_status(step=step)
    done.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert run.read_status().step == 99


def test_concurrent_writers_lose_no_field(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running")

    def writer(index: int):
        for step in range(25):
            run.write_status(**{f"writer_{index}": step})

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    status = run.read_status()
    assert [status.raw[f"writer_{i}"] for i in range(4)] == [24, 24, 24, 24]


def test_metrics_round_trip_skips_a_torn_last_line(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.read_metrics() == []
    lines = [
        {"step": 10, "epoch": 0.5, "loss": 2.5, "learning_rate": 1e-3},
        {"step": 20, "epoch": 1.0, "loss": float("nan")},
        {"step": 20, "eval_loss": 1.5, "eval_strict_accuracy": 0.25},
    ]
    for line in lines:
        run.append_metrics(line)
    with open(run.metrics_path, "a") as handle:
        handle.write('{"step": 30, "lo')  # the writer was killed mid-line
    read = run.read_metrics()
    assert [entry["step"] for entry in read] == [10, 20, 20]
    assert read[0] == lines[0] and read[2] == lines[2]
    assert read[1]["loss"] != read[1]["loss"]  # NaN survives as NaN, not as a string


def test_read_jsonl_keeps_objects_and_skips_torn_corrupt_and_non_object_lines(tmp_path):
    path = tmp_path / "predictions.jsonl"
    assert read_jsonl(path) == []  # not written yet
    path.write_text('{"a": 1}\n[1, 2]\nnot json\n\n{"b": 2}\n{"c": ')
    assert read_jsonl(path) == [{"a": 1}, {"b": 2}]


def test_read_jsonl_of_a_folder_or_an_unreadable_file_is_empty(tmp_path):
    folder = tmp_path / "metrics.jsonl"
    folder.mkdir()  # a folder where the file should be
    assert read_jsonl(folder) == []
    locked = tmp_path / "locked.jsonl"
    locked.write_text('{"a": 1}\n')
    locked.chmod(0)
    try:
        if not os.access(locked, os.R_OK):  # root reads it anyway
            assert read_jsonl(locked) == []
    finally:
        locked.chmod(0o600)


def test_runs_dir_default_reads_the_environment_at_call_time(monkeypatch):
    monkeypatch.delenv("VETLLM_RUNS_DIR", raising=False)
    assert str(default_runs_dir()) == "runs"
    monkeypatch.setenv("VETLLM_RUNS_DIR", "/srv/vetllm-runs")
    assert str(default_runs_dir()) == "/srv/vetllm-runs"


def test_new_run_folder_name_is_name_and_utc_time():
    name = new_run_folder_name("tiny-cpu")
    assert re.fullmatch(r"tiny-cpu-\d{8}-\d{6}", name), name


def test_truncate_metrics_after_a_resume_step(tmp_path):
    run = RunDirectory(tmp_path / "run")
    for step in (2, 4, 6, 8):
        run.append_metrics({"step": step, "loss": 1.0 / step})
    assert run.truncate_metrics_after(4) == 2
    assert [m["step"] for m in run.read_metrics()] == [2, 4]
    assert run.truncate_metrics_after(4) == 0


def test_stop_flag_round_trip(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert not run.stop_requested()
    run.request_stop()
    assert run.stop_requested()
    run.clear_stop()
    run.clear_stop()  # clearing twice is fine
    assert not run.stop_requested()


def test_last_complete_checkpoint_ignores_an_incomplete_highest_folder(tmp_path):
    run = RunDirectory(tmp_path / "run")
    assert run.last_complete_checkpoint() is None
    for step in (5, 10, 40, 100):
        (run.checkpoints_dir / f"checkpoint-{step}").mkdir(parents=True)
    (run.checkpoints_dir / "checkpoint-x").mkdir()  # not a Trainer folder name
    for step in (5, 40):
        run.mark_checkpoint_complete(run.checkpoints_dir / f"checkpoint-{step}")
    # checkpoint-100 is the highest (HF would pick it) but was never marked complete.
    assert run.last_complete_checkpoint() == run.checkpoints_dir / "checkpoint-40"
    assert [step for step, _, done in run.checkpoints() if done] == [5, 40]
    marker = json.loads((run.checkpoints_dir / "checkpoint-40" / COMPLETE_MARKER).read_text())
    assert "completed_at" in marker


def test_mark_checkpoint_complete_needs_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError):
        RunDirectory(tmp_path).mark_checkpoint_complete(tmp_path / "checkpoint-1")


def test_process_alive_tells_reused_pids_apart():
    pid = os.getpid()
    start = process_start_time(pid)
    assert process_alive(pid, start)
    assert not process_alive(None)
    if start is not None:  # Linux: a different start time means another process
        assert not process_alive(pid, str(int(start) + 1))


RUNS_PACKAGE = Path(vetllm.runs.__file__).parent
RUNS_MODULES = ["vetllm.runs"] + [
    f"vetllm.runs.{path.stem}"
    for path in sorted(RUNS_PACKAGE.glob("*.py"))
    if path.stem != "__init__"
]


def test_every_runs_module_is_checked():
    expected = {"directory", "faults", "launcher", "lock", "serving", "state"}
    assert {f"vetllm.runs.{name}" for name in expected} <= set(RUNS_MODULES)


@pytest.mark.parametrize("module", RUNS_MODULES)
def test_runs_modules_do_not_import_torch_or_gradio(module):
    """Run management stays cheap: the CLI and the app list and launch runs without torch."""
    heavy = ("torch", "transformers", "peft", "gradio")
    code = f"import sys, {module}; print(*[m for m in {heavy!r} if m in sys.modules])"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "", f"importing {module} imported {out.stdout.strip()}"


# -- CLI -------------------------------------------------------------------------------------
def _cli(argv, capsys):
    from vetllm.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_cli_status_list_and_stop(tmp_path, capsys):
    root = tmp_path / "runs"
    run = RunDirectory(root / "a")
    finished = subprocess.run(
        [sys.executable, "-c", "import os; print(os.getpid())"],
        capture_output=True,
        text=True,
        check=True,
    )
    dead_pid = int(finished.stdout)
    run.write_status("running", pid=dead_pid, step=3, total_steps=10, progress=0.3)
    code, out, _ = _cli(["runs", "status", str(run.path), "--json"], capsys)
    assert code == 0 and json.loads(out)["state"] == "interrupted"
    code, out, _ = _cli(["runs", "list", "--runs-dir", str(root)], capsys)
    assert code == 0 and out.startswith("a: interrupted, step 3/10, 30%")
    code, out, _ = _cli(["runs", "list", "--runs-dir", str(root), "--json"], capsys)
    assert [entry["name"] for entry in json.loads(out)] == ["a"]
    code, out, _ = _cli(["runs", "stop", str(run.path), "--timeout", "1"], capsys)
    assert code == 0 and "interrupted" in out  # nothing to stop; the state is kept
    code, _, err = _cli(["runs", "status", str(tmp_path / "nothing")], capsys)
    assert code == 2 and "holds no run" in err


def test_cli_launch_refusal_is_a_clear_error(tmp_path, capsys):
    from vetllm.runs.lock import LOCK_NAME

    root = tmp_path / "runs"
    root.mkdir()
    # The lock held by a live process (this one) named "busy": nothing else may start.
    holder = {"pid": os.getpid(), "pid_start": process_start_time(os.getpid()), "run_name": "busy"}
    (root / LOCK_NAME).write_text(json.dumps(holder))
    config = tmp_path / "c.yaml"
    config.write_text("name: c\n")
    argv = ["runs", "launch", "--config", str(config), "--runs-dir", str(root)]
    code, _, err = _cli(argv, capsys)
    assert code == 2 and "a run is already in progress: busy" in err
    assert sorted(p.name for p in root.iterdir() if not p.name.startswith(".")) == []


def test_cli_report_writes_report_md(tmp_path, capsys):
    pytest.importorskip("vetllm.analysis")
    run = RunDirectory(tmp_path / "run")
    run.write_status("completed")
    for step in range(10, 110, 10):
        run.append_metrics({"step": step, "epoch": step / 50, "loss": 3.0 / step})
    run.eval_dir.mkdir()
    (run.eval_dir / "metrics.json").write_text(json.dumps({"n": 20, "strict_accuracy": 0.75}))
    code, out, _ = _cli(["report", "--run", str(run.path)], capsys)
    assert code == 0
    assert out == run.report_path.read_text() + "\n"
    assert "75" in out  # the evaluation made it into the report


def test_refresh_status_leaves_live_and_final_runs_alone(tmp_path):
    from vetllm.runs.launcher import refresh_status

    run = RunDirectory(tmp_path / "run")
    run.write_status("running", pid=os.getpid())
    assert refresh_status(run).state == "running"
    run.write_status("completed", pid=2**22 + 1)  # above pid_max: no such process
    assert refresh_status(run).state == "completed"
    corrupt = RunDirectory(tmp_path / "corrupt")
    corrupt.config_path.parent.mkdir()
    corrupt.config_path.write_text("name: x\n")
    corrupt.status_path.write_text("{")
    assert refresh_status(corrupt).state == "interrupted"


def test_list_runs_newest_first(tmp_path):
    from vetllm.runs.launcher import list_runs

    root = tmp_path / "runs"
    for name, created in (("old", "2026-01-01T00:00:00Z"), ("new", "2026-02-01T00:00:00Z")):
        RunDirectory(root / name).write_status("completed", created_at=created)
    (root / "not-a-run").mkdir()
    runs = list_runs(root)
    assert [entry["name"] for entry in runs] == ["new", "old"]
    assert runs[0]["last_checkpoint"] is None and runs[0]["has_model"] is False
    assert list_runs(tmp_path / "missing") == []


# -- RunCallback with a real Trainer ---------------------------------------------------------
torch = pytest.importorskip("torch")


class _OneWeight(torch.nn.Module):
    """y = w * x with a squared-error loss: trains in microseconds per step."""

    def __init__(self):
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(1))

    def forward(self, x, y):
        return {"loss": ((self.weight * x - y) ** 2).mean()}


def _collate(rows):
    return {
        "x": torch.tensor([row["x"] for row in rows]),
        "y": torch.tensor([row["y"] for row in rows]),
    }


def _tiny_trainer(run: RunDirectory, callback, *, max_steps=20, save_steps=5, **extra):
    from transformers import Trainer, TrainingArguments

    args = TrainingArguments(
        output_dir=str(run.checkpoints_dir),
        max_steps=max_steps,
        per_device_train_batch_size=2,
        learning_rate=0.3,
        logging_steps=2,
        save_steps=save_steps,
        report_to=[],
        use_cpu=True,
        disable_tqdm=True,
        **extra,
    )
    data = [{"x": float(i % 5), "y": 3.0 * (i % 5)} for i in range(16)]
    return Trainer(
        model=_OneWeight(),
        args=args,
        train_dataset=data,
        data_collator=_collate,
        callbacks=[callback],
    )


def test_callback_writes_status_metrics_and_complete_markers(tmp_path):
    from vetllm.engine.callbacks import RunCallback

    run = RunDirectory(tmp_path / "run")
    callback = RunCallback(run, handle_signals=False)
    trainer = _tiny_trainer(run, callback)
    trainer.train()
    status = run.read_status()
    # The final state is train()'s decision; the callback leaves "running" with step counts.
    assert status.state == "running"
    assert (status.step, status.total_steps, status.progress) == (20, 20, 1.0)
    assert status.pid == os.getpid() and status.last_checkpoint == "checkpoint-20"
    assert "train_runtime" in status.raw and status.eta_s == 0.0
    metrics = run.read_metrics()
    assert [m["step"] for m in metrics] == list(range(2, 21, 2))
    for key in ("loss", "learning_rate", "grad_norm", "samples_per_s", "elapsed_s", "epoch"):
        assert key in metrics[0], key
    assert abs(trainer.model.weight.item() - 3.0) < 1.0  # it really trained (w starts at 0)
    assert [step for step, _, done in run.checkpoints() if done] == [5, 10, 15, 20]
    assert not callback.stopped


def test_callback_honours_the_stop_flag_with_a_checkpoint(tmp_path):
    from transformers import TrainerCallback

    from vetllm.engine.callbacks import RunCallback

    run = RunDirectory(tmp_path / "run")

    class StopAtSeven(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 7:
                run.request_stop()  # what `vetllm runs stop` does from another process

    callback = RunCallback(run, handle_signals=False)
    trainer = _tiny_trainer(run, callback, save_steps=100)
    trainer.add_callback(StopAtSeven())
    trainer.train()
    assert trainer.state.global_step == 8  # stopped after the step in progress, not at 20
    assert callback.stopped and callback.stop_reason == "STOP flag"
    assert run.last_complete_checkpoint() == run.checkpoints_dir / "checkpoint-8"
    assert run.read_status().state == "stopping"


def test_callback_resume_continues_elapsed_time_and_reaches_the_same_step(tmp_path):
    from vetllm.engine.callbacks import RunCallback

    run = RunDirectory(tmp_path / "run")
    run.request_stop()
    first = _tiny_trainer(run, RunCallback(run, handle_signals=False))
    first.train()
    assert first.state.global_step == 1
    elapsed_before = run.read_status().elapsed_s
    run.clear_stop()
    second = _tiny_trainer(run, RunCallback(run, handle_signals=False))
    second.train(resume_from_checkpoint=str(run.last_complete_checkpoint()))
    status = run.read_status()
    assert (second.state.global_step, status.step, status.raw["resumed_from_step"]) == (20, 20, 1)
    assert [m["step"] for m in run.read_metrics()] == list(range(2, 21, 2))
    assert status.elapsed_s >= elapsed_before


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX signals")
def test_sigterm_stops_like_the_stop_flag(tmp_path):
    from transformers import TrainerCallback

    from vetllm.engine.callbacks import RunCallback

    run = RunDirectory(tmp_path / "run")

    class TermAtThree(TrainerCallback):
        def on_step_begin(self, args, state, control, **kwargs):
            if state.global_step == 3:
                os.kill(os.getpid(), signal.SIGTERM)

    previous = signal.getsignal(signal.SIGTERM)
    callback = RunCallback(run)  # installs the handler for the duration of training
    trainer = _tiny_trainer(run, callback, save_steps=100)
    trainer.add_callback(TermAtThree())
    trainer.train()
    assert trainer.state.global_step == 4
    assert callback.stop_reason == "SIGTERM"
    assert run.last_complete_checkpoint().name == "checkpoint-4"
    assert signal.getsignal(signal.SIGTERM) == previous  # restored after training
