"""Faults of issue 11 on training runs: kills, a full disk, damaged files, deleted folders, locks.

Processes that stand in for training are tiny Python scripts (they write a status and sleep);
the tests that need the real trainer use a few-step run on a small synthetic set. Each test
failed on the code before its fix.
"""

from __future__ import annotations

import errno
import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from vetllm.cli import main as cli_main
from vetllm.errors import VetLLMError
from vetllm.runs import directory, launcher
from vetllm.runs.directory import RunDirectory
from vetllm.runs.faults import checkpoint_problem, record_failure
from vetllm.runs.launcher import (
    launch_run,
    refresh_status,
)
from vetllm.runs.lock import LOCK_NAME, current_lock_holder

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny-cpu.yaml"

SLEEPER = textwrap.dedent(
    """
    import sys, time
    from vetllm.runs.directory import RunDirectory
    run = RunDirectory(sys.argv[1])
    if sys.argv[2] == "train":
        run.write_status("running", step=1, total_steps=100)
    time.sleep(60)
    """
)


@pytest.fixture
def sleeper(tmp_path, monkeypatch):
    """Launched runs become a process that says "running" (or stays queued) and sleeps."""
    script = tmp_path / "sleeper.py"
    script.write_text(SLEEPER)
    mode = {"value": "train"}

    def command(run, *, resume):
        return [sys.executable, str(script), str(run.path), mode["value"]]

    monkeypatch.setattr(launcher, "_training_command", command)
    return mode


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TINY_CONFIG.read_text())
    return path


def _wait(run, states, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = refresh_status(run)
        if status.state in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"never reached {states}: {run.read_status()}")


def _kill(run):
    launcher._kill_group(int(run.read_status().pid))


# -- items 3, 14, 20: one lock for every entry point --------------------------------------------
def test_cli_train_and_cli_resume_refuse_to_run_beside_a_launched_run(tmp_path, sleeper, config,
                                                                     capsys):  # fmt: skip
    runs_root = tmp_path / "runs"
    run = launch_run(config, runs_root / "app-run")
    try:
        _wait(run, ["running"])
        argv = ["train", "--config", str(config), "--output", str(runs_root / "cli-run")]
        assert cli_main(argv) == 2
        assert "a run is already in progress: app-run" in capsys.readouterr().err
        argv = ["train", "--config", str(run.config_path), "--output", str(run.path), "--resume"]
        assert cli_main(argv) == 2
        assert "a run is already in progress: app-run" in capsys.readouterr().err
        assert run.read_status().pid == launcher.current_lock_holder(runs_root)["pid"]
    finally:
        _kill(run)


def test_a_corrupt_lock_file_does_not_let_a_second_run_start(tmp_path, sleeper, config):
    runs_root = tmp_path / "runs"
    run = launch_run(config, runs_root / "first")
    try:
        _wait(run, ["running"])
        (runs_root / LOCK_NAME).write_text("{garbage")
        with pytest.raises(VetLLMError, match="a run is already in progress: first"):
            launch_run(config, runs_root / "second")
    finally:
        _kill(run)
    _wait(run, ["interrupted"])
    again = launch_run(config, runs_root / "second")  # not locked out for good
    _kill(again)


def test_the_lock_is_free_as_soon_as_the_run_shows_completed(tmp_path, sleeper, config):
    runs_root = tmp_path / "runs"
    run = launch_run(config, runs_root / "first")
    try:
        _wait(run, ["running"])
        run.write_status("completed")  # the process is still tearing down (2-3 s seen)
        assert current_lock_holder(runs_root) is None
        second = launch_run(config, runs_root / "second")
        _kill(second)
    finally:
        _kill(run)


# -- item 17: SIGTERM right after launch --------------------------------------------------------
def test_sigterm_before_training_began_reads_as_interrupted_not_failed(tmp_path, sleeper, config):
    sleeper["value"] = "queued"  # never gets to write "running"
    run = launch_run(config, tmp_path / "runs" / "early")
    os.kill(run.read_status().pid, signal.SIGTERM)
    status = _wait(run, ["interrupted", "failed"])
    assert status.state == "interrupted", status
    assert "===" not in str(status.error) and "launch again" not in str(status.remedy)


def test_a_launch_banner_alone_is_never_the_error(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.config_path.parent.mkdir(parents=True)
    run.config_path.write_text("name: x\n")
    run.write_status("queued", pid=launcher_dead_pid())
    run.log_path.write_text("\n=== 2026-01-01 00:00:00 UTC: launch ===\n")
    status = refresh_status(run)
    assert status.state == "interrupted" and "===" not in str(status.error)


def launcher_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- item 15: a status.json damaged mid-run ----------------------------------------------------
def test_a_damaged_status_is_healed_by_the_next_write_and_read_as_running_meanwhile(
    tmp_path, sleeper, config
):
    run = launch_run(config, tmp_path / "runs" / "first")
    pid = _wait(run, ["running"]).pid
    try:
        run.status_path.write_text("{not json")
        assert refresh_status(run).state == "running"  # the UI keeps polling
    finally:
        launcher._kill_group(pid)
    assert refresh_status(run).state == "interrupted"  # and after a kill


def test_a_trainer_write_after_damage_restores_the_whole_status(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running", name="r", step=5, total_steps=10)
    run.status_path.write_text("{not json")
    status = run.write_status(step=6)  # a progress write names no state
    assert status["state"] == "running" and status["name"] == "r" and status["step"] == 6
    assert run.read_status().state == "running"


# -- item 7: checkpoints damaged after they were marked complete -------------------------------
def _fake_checkpoint(run: RunDirectory, step: int) -> Path:
    folder = run.checkpoints_dir / f"checkpoint-{step}"
    folder.mkdir(parents=True)
    header = json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}).encode()
    blob = len(header).to_bytes(8, "little") + header + bytes(16)
    (folder / "model.safetensors").write_bytes(blob)
    (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    run.mark_checkpoint_complete(folder)
    return folder


@pytest.mark.parametrize("damage", ["truncate", "empty_state", "old_marker_truncate"])
def test_resume_falls_back_past_a_damaged_checkpoint_and_names_it(tmp_path, damage):
    run = RunDirectory(tmp_path / "run")
    good, bad = _fake_checkpoint(run, 5), _fake_checkpoint(run, 10)
    if damage == "empty_state":
        (bad / "trainer_state.json").write_text("")
    else:
        blob = (bad / "model.safetensors").read_bytes()
        (bad / "model.safetensors").write_bytes(blob[:-5])
        if damage == "old_marker_truncate":  # a marker written before sizes were recorded
            (bad / "COMPLETE").write_text(json.dumps({"completed_at": "x", "files": []}))
    assert checkpoint_problem(good) is None
    assert run.last_complete_checkpoint() == good
    [(name, problem)] = run.damaged_checkpoints()
    assert name == "checkpoint-10" and problem


def test_a_launched_resume_names_the_damaged_checkpoint(tmp_path, sleeper, config):
    runs_root = tmp_path / "runs"
    run = RunDirectory(runs_root / "r")
    run.config_path.parent.mkdir(parents=True)
    run.config_path.write_text(config.read_text())
    run.write_status("interrupted")
    _fake_checkpoint(run, 5)
    (_fake_checkpoint(run, 10) / "trainer_state.json").write_text("")
    launcher.resume_run(run, runs_root=runs_root)
    try:
        message = run.read_status().message
        assert "from checkpoint-5" in message and "skipped checkpoint-10" in message
    finally:
        _kill(run)


# -- item 6: a full disk -------------------------------------------------------------------------
def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, "No space left on device")


def test_a_full_disk_is_recorded_as_the_cause_even_when_status_writes_fail(tmp_path, monkeypatch):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running", step=3)
    half = run.checkpoints_dir / "checkpoint-4"
    half.mkdir(parents=True)  # a save torn by the full disk: no COMPLETE marker
    monkeypatch.setattr(directory, "atomic_write_text", _no_space)
    cause = record_failure(run, "OSError: No space", None, OSError(errno.ENOSPC, "full"))
    status = json.loads(run.status_path.read_text())
    assert status["state"] == "failed" and status["error"] == cause
    assert cause.startswith("disk full: free ") and " MB" in cause
    assert "resume" in status["remedy"] and not half.exists()


def test_train_on_a_full_disk_fails_with_the_free_space(tmp_path, monkeypatch):
    from vetllm.config import TrainConfig
    from vetllm.engine import training

    monkeypatch.setattr(training, "_train", _no_space)
    with pytest.raises(VetLLMError, match="disk full: free"):
        training.train(TrainConfig(name="full"), tmp_path / "run")
    status = RunDirectory(tmp_path / "run").read_status()
    assert status.state == "failed" and status.error.startswith("disk full: free")


@pytest.mark.parametrize("command", ["status", "list", "resume"])
def test_runs_commands_on_a_full_disk_print_no_traceback(tmp_path, monkeypatch, capsys, command):
    run = RunDirectory(tmp_path / "runs" / "r")
    run.config_path.parent.mkdir(parents=True)
    run.config_path.write_text(TINY_CONFIG.read_text())
    run.write_status("running", pid=launcher_dead_pid(), step=3, total_steps=10)
    monkeypatch.setattr(directory, "atomic_write_text", _no_space)
    argv = {
        "status": ["runs", "status", str(run.path)],
        "list": ["runs", "list", "--runs-dir", str(run.path.parent)],
        "resume": ["runs", "resume", str(run.path)],
    }[command]
    code = cli_main(argv)
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    if command == "resume":
        assert code == 2 and "disk full: free" in err
    else:
        assert code == 0 and "interrupted" in out and "disk full" in out


# -- item 2: killed before the first checkpoint, then resumed ----------------------------------
def test_a_resume_without_a_checkpoint_drops_the_lost_attempts_metrics(tmp_path):
    from test_runs import _tiny_trainer

    from vetllm.engine.callbacks import RunCallback

    run = RunDirectory(tmp_path / "run")
    for step in (2, 4, 6):  # logged by the attempt that was killed before any checkpoint
        run.append_metrics({"step": step, "loss": 9.0})
    trainer = _tiny_trainer(run, RunCallback(run, handle_signals=False), max_steps=6, save_steps=6)
    trainer.train()
    steps = [m["step"] for m in run.read_metrics()]
    assert steps == [2, 4, 6] and all(m["loss"] != 9.0 for m in run.read_metrics())


# -- item 16: the run folder deleted mid-training -----------------------------------------------
def test_a_run_folder_deleted_mid_training_fails_and_is_never_completed(tmp_path, monkeypatch):
    import shutil

    from vetllm.config import load_config
    from vetllm.data.synth import write_synthetic_dataset
    from vetllm.engine import training
    from vetllm.engine.callbacks import RunCallback

    class Deleting(RunCallback):
        def on_step_end(self, args, state, control, **kwargs):
            if state.global_step == 3:
                shutil.rmtree(self.run.path)
            return super().on_step_end(args, state, control, **kwargs)

    monkeypatch.setattr(training, "RunCallback", Deleting)
    write_synthetic_dataset(tmp_path / "data", n=120, seed=1)
    cfg = load_config(TINY_CONFIG).replace(
        name="gone", data=str(tmp_path / "data" / "train.json"), val_data=None, max_steps=8,
        per_device_batch=8, logging_steps=2, eval_steps=None, save_steps=4, final_eval=False,
        tiny_vocab_size=300, tiny_hidden_size=32, tiny_heads=2, tiny_layers=1,
        tiny_intermediate_size=64,
    )  # fmt: skip
    run_dir = tmp_path / "runs" / "gone"
    with pytest.raises(VetLLMError, match="deleted"):
        training.train(cfg, run_dir)
    assert not (run_dir / "status.json").exists()  # not recreated, so never served
    assert launcher.list_runs(tmp_path / "runs") == []


# -- item 18: one junk line in metrics.jsonl -------------------------------------------------
def test_one_junk_metrics_line_does_not_skip_report_md(tmp_path):
    from vetllm.config import TrainConfig
    from vetllm.data.synth import generate_records
    from vetllm.engine.training import write_report

    run = RunDirectory(tmp_path / "run")
    for step in range(10, 110, 10):
        run.append_metrics({"step": step, "epoch": step / 50, "loss": 3.0 - step / 100})
    with open(run.metrics_path, "a") as handle:
        handle.write("{junk\n")
    messages = []
    write_report(run, TrainConfig(name="r"), generate_records(n=40, seed=1), None, messages.append)
    assert run.report_path.is_file(), messages


# -- item 4: the first-launch bootstrap and an interrupted default run -----------------------
def test_bootstrap_resumes_an_interrupted_default_run_instead_of_starting_anew(tmp_path,
                                                                              monkeypatch):  # fmt: skip
    from vetllm.ui.bootstrap import ensure_default_run
    from vetllm.ui.settings import AppSettings

    runs_root = tmp_path / "runs"
    run = RunDirectory(runs_root / "cpu-default-20260101-000000")
    run.config_path.parent.mkdir(parents=True)
    run.config_path.write_text(TINY_CONFIG.read_text())
    run.write_status("running", pid=launcher_dead_pid(), step=200, total_steps=900)
    calls = []
    monkeypatch.setattr(launcher, "launch_run", lambda *a, **k: calls.append(("launch", a, k)))
    monkeypatch.setattr(
        launcher, "resume_run",
        lambda path, **k: calls.append(("resume", path, k)) or RunDirectory(path),
    )  # fmt: skip
    name = ensure_default_run(AppSettings(runs_dir=runs_root))
    assert name == run.name and [c[0] for c in calls] == ["resume"]


def test_bootstrap_leaves_a_stopped_run_alone_and_starts_nothing(tmp_path, monkeypatch):
    from vetllm.ui.bootstrap import ensure_default_run
    from vetllm.ui.settings import AppSettings

    run = RunDirectory(tmp_path / "runs" / "my-run")
    run.config_path.parent.mkdir(parents=True)
    run.config_path.write_text(TINY_CONFIG.read_text())
    run.write_status("stopped")
    calls = []
    monkeypatch.setattr(launcher, "launch_run", lambda *a, **k: calls.append(a))
    assert ensure_default_run(AppSettings(runs_dir=tmp_path / "runs")) is None and calls == []


def test_vetllm_report_tolerates_a_junk_metrics_line(tmp_path, capsys):
    run = RunDirectory(tmp_path / "run")
    run.write_status("completed")
    for step in range(10, 60, 10):
        run.append_metrics({"step": step, "epoch": step / 50, "loss": 3.0 - step / 100})
    with open(run.metrics_path, "a") as handle:
        handle.write("{junk\n")
    assert cli_main(["report", "--run", str(run.path)]) == 0
    assert run.report_path.is_file()
