"""The separate-process launcher: lock, races, stale locks, stop, kill, resume and reattach.

Fast tests swap the training command for a small Python script that behaves like a training
process (writes its status, polls STOP, can ignore it or crash), so they check the launcher's
process handling in well under a second each. The key fault test at the end runs the real
`vetllm train` on the tiny CPU config, kills it with SIGKILL after a complete checkpoint, resumes
it, and checks it finishes at the same step count as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from vetllm.errors import VetLLMError
from vetllm.runs import launcher
from vetllm.runs.directory import RunDirectory, process_alive
from vetllm.runs.launcher import (
    launch_run,
    refresh_status,
    resume_run,
    stop_run,
    wait_for_run,
)
from vetllm.runs.lock import LOCK_NAME, current_lock_holder
from vetllm.runs.state import RunStatus

REPO = Path(__file__).resolve().parent.parent
TINY_CONFIG = REPO / "configs" / "tiny-cpu.yaml"

# Stands in for `vetllm train`: status "running", polls STOP every 20 ms, then "stopped";
# "ignore-stop" never stops (for the hard kill), "crash" exits 3 before training starts.
FAKE_TRAINER = textwrap.dedent(
    """
    import json, os, subprocess, sys, time
    from vetllm.runs.directory import RunDirectory, process_alive
    run_dir, mode = sys.argv[1], sys.argv[2]
    run = RunDirectory(run_dir)
    with open(os.path.join(run_dir, "argv.json"), "a") as handle:
        handle.write(json.dumps(sys.argv[3:]) + "\\n")
    if mode == "slow-start":  # still "loading the model" when the stop comes
        time.sleep(60)
    if mode == "crash":
        print("ValueError: the config could not be used")
        sys.exit(3)
    if mode == "ignore-stop":  # a grandchild in the same process group must die too
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
        open(os.path.join(run_dir, "grandchild.pid"), "w").write(str(child.pid))
    run.write_status("running", step=0, total_steps=100)
    for step in range(100):
        if run.stop_requested() and mode != "ignore-stop":
            run.write_status("stopped", step=step)
            sys.exit(0)
        time.sleep(0.02)
    run.write_status("completed", step=100)
    """
)


@pytest.fixture
def fake_trainer(tmp_path, monkeypatch):
    """Replace the training command; returns a setter for the stand-in's mode."""
    script = tmp_path / "fake_trainer.py"
    script.write_text(FAKE_TRAINER)
    mode = {"value": "normal"}

    def command(run, *, resume):
        argv = [sys.executable, str(script), str(run.path), mode["value"]]
        return argv + (["--resume"] if resume else [])

    monkeypatch.setattr(launcher, "_training_command", command)
    return mode


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "config.yaml"
    path.write_text(TINY_CONFIG.read_text())
    return path


def _wait_for_state(run, states, timeout_s=20.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = refresh_status(run)
        if status.state in states:
            return status
        time.sleep(0.05)
    raise AssertionError(f"run never reached {states}: {run.read_status()}")


def _dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_launch_writes_the_resolved_config_and_refuses_a_second_run(tmp_path, fake_trainer, config):
    runs_root = tmp_path / "runs"
    run = launch_run(config, runs_root / "first", overrides=["epochs=2"])
    try:
        assert "epochs: 2" in run.config_path.read_text()  # resolved, with the override
        assert _wait_for_state(run, ["running"]).pid > 0
        assert current_lock_holder(runs_root)["run_name"] == "first"
        with pytest.raises(VetLLMError, match="a run is already in progress: first"):
            launch_run(config, runs_root / "second")
        assert not (runs_root / "second").exists()
    finally:
        stop_run(run, timeout_s=10)
    assert run.read_status().state == "stopped"
    assert current_lock_holder(runs_root) is None  # its process is gone, so the lock is free
    again = launch_run(config, runs_root / "second")
    assert stop_run(again, timeout_s=10).state == "stopped"


def test_launch_refuses_an_output_folder_that_holds_a_run(tmp_path, fake_trainer, config):
    run = RunDirectory(tmp_path / "runs" / "done")
    run.write_status("completed")
    run.config_path.write_text("name: done\n")
    with pytest.raises(VetLLMError, match="already holds a run .state completed."):
        launch_run(config, run.path)
    with pytest.raises(VetLLMError, match="config: file 'missing.yaml' was not found"):
        launch_run(tmp_path / "missing.yaml", tmp_path / "runs" / "new")


def test_two_simultaneous_launches_start_exactly_one_run(tmp_path, fake_trainer, config):
    runs_root = tmp_path / "runs"
    barrier = threading.Barrier(4)
    started, refused = [], []

    def attempt(index):
        barrier.wait()
        try:
            started.append(launch_run(config, runs_root / f"run-{index}"))
        except VetLLMError as error:
            refused.append(str(error))

    threads = [threading.Thread(target=attempt, args=(i,)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    try:
        assert len(started) == 1 and len(refused) == 3
        assert all("already in progress" in message for message in refused)
        assert current_lock_holder(runs_root)["run_name"] == started[0].name
    finally:
        for run in started:
            stop_run(run, timeout_s=10)


def test_two_processes_racing_start_exactly_one_run(tmp_path, config):
    runs_root = tmp_path / "runs"
    code = textwrap.dedent(
        f"""
        import sys, time
        from vetllm.runs import launcher
        launcher._training_command = lambda run, resume: [
            sys.executable, "-c", "import time; time.sleep(30)"]
        while time.time() < {time.time() + 1.5}:  # start both at the same instant
            pass
        try:
            launcher.launch_run({str(config)!r}, {str(runs_root)!r} + "/" + sys.argv[1])
            print("started")
        except Exception as error:
            print("refused:", error)
        """
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, f"p{i}"], stdout=subprocess.PIPE, text=True)
        for i in range(2)
    ]
    outputs = sorted(proc.communicate(timeout=60)[0].strip() for proc in procs)
    holder = current_lock_holder(runs_root)
    try:
        assert outputs[0].startswith("refused: a run is already in progress")
        assert outputs[1] == "started"
        assert holder is not None
    finally:
        if holder:
            os.killpg(holder["pid"], signal.SIGKILL)


def test_a_stale_lock_is_recovered(tmp_path, fake_trainer, config):
    runs_root = tmp_path / "runs"
    runs_root.mkdir()
    lock = runs_root / LOCK_NAME
    lock.write_text(json.dumps({"pid": _dead_pid(), "run_name": "crashed"}))
    assert current_lock_holder(runs_root) is None
    run = launch_run(config, runs_root / "after-crash")
    assert json.loads(lock.read_text())["run_name"] == "after-crash"
    stop_run(run, timeout_s=10)
    # A live pid with another start time is a reused pid, not the training process.
    lock.write_text(json.dumps({"pid": os.getpid(), "pid_start": "1", "run_name": "old"}))
    assert current_lock_holder(runs_root) is None
    lock.write_text("{not json")
    assert current_lock_holder(runs_root) is None


def test_refresh_status_marks_a_vanished_process(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running", pid=_dead_pid(), step=7, total_steps=20)
    (run.checkpoints_dir / "checkpoint-5").mkdir(parents=True)
    run.mark_checkpoint_complete(run.checkpoints_dir / "checkpoint-5")
    status = refresh_status(run)
    assert status.state == "interrupted"
    assert "checkpoint-5" in status.remedy and status.step == 7
    assert run.read_status().state == "interrupted"  # written, not only reported

    queued = RunDirectory(tmp_path / "queued")
    queued.write_status("queued", pid=_dead_pid())
    queued.log_path.write_text("Traceback ...\nValueError: base_model 'x' not found\n")
    status = refresh_status(queued)
    assert status.state == "failed" and "base_model 'x' not found" in status.error


def test_a_vanished_process_that_was_asked_to_stop_reads_as_stopped(tmp_path):
    run = RunDirectory(tmp_path / "run")
    run.write_status("running", pid=_dead_pid(), step=7, total_steps=20)
    run.request_stop()
    assert refresh_status(run).state == "stopped"

    stopping = RunDirectory(tmp_path / "stopping")
    stopping.write_status("stopping", pid=_dead_pid(), step=3, total_steps=20)
    assert refresh_status(stopping).state == "stopped"


def test_a_crash_before_training_is_reported_as_failed(tmp_path, fake_trainer, config):
    fake_trainer["value"] = "crash"
    run = launch_run(config, tmp_path / "runs" / "crash")
    status = wait_for_run(run, timeout_s=20, poll_s=0.05)
    assert status.state == "failed"
    assert "the config could not be used" in status.error


def test_stop_kills_the_whole_process_group_after_the_timeout(tmp_path, fake_trainer, config):
    fake_trainer["value"] = "ignore-stop"
    run = launch_run(config, tmp_path / "runs" / "stubborn")
    _wait_for_state(run, ["running"])
    grandchild = int((run.path / "grandchild.pid").read_text())
    status = stop_run(run, timeout_s=0.5)
    assert status.state == "stopped" and "killed" in status.message
    deadline = time.monotonic() + 5
    while process_alive(grandchild) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not process_alive(grandchild)  # dead (a zombie awaiting its reaper counts as dead)


def test_stop_before_training_began_ends_the_process_at_once(tmp_path, fake_trainer, config):
    fake_trainer["value"] = "slow-start"
    run = launch_run(config, tmp_path / "runs" / "loading")
    started = time.monotonic()
    status = stop_run(run, timeout_s=30)
    assert time.monotonic() - started < 10  # SIGTERM, not the 30 s timeout and a kill
    assert status.state == "stopped" and status.message == "stopped before training began"


def test_resume_relaunches_with_resume_and_refuses_active_or_completed(
    tmp_path, fake_trainer, config
):
    run = launch_run(config, tmp_path / "runs" / "r")
    _wait_for_state(run, ["running"])
    with pytest.raises(VetLLMError, match="is still running"):
        resume_run(run)
    stop_run(run, timeout_s=10)
    assert run.stop_requested()
    resumed = resume_run(run)
    assert not run.stop_requested()  # an old STOP must not end the resumed run at once
    assert wait_for_run(resumed, timeout_s=30, poll_s=0.1).state == "completed"
    argv = [json.loads(line) for line in (run.path / "argv.json").read_text().splitlines()]
    assert argv == [[], ["--resume"]]
    with pytest.raises(VetLLMError, match="already completed"):
        resume_run(run)


def test_a_restarted_app_reattaches_to_a_running_run(tmp_path, config):
    """The launching process exits (the app restarts); a fresh reader still follows the run."""
    run_dir = tmp_path / "runs" / "detached"
    code = textwrap.dedent(
        f"""
        import sys
        from vetllm.runs import launcher
        launcher._training_command = lambda run, resume: [
            sys.executable, "-c", "import time; time.sleep(30)"]
        launcher.launch_run({str(config)!r}, {str(run_dir)!r})
        """
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    run = RunDirectory(run_dir)  # a new reader, as after an app restart
    status = refresh_status(run)
    assert status.state == "queued" and launcher.is_running(status.pid, status.pid_start)
    with pytest.raises(VetLLMError, match="already in progress: detached"):
        launch_run(config, tmp_path / "runs" / "other")
    stop_run(run, timeout_s=0.5)  # not our child: it is killed through its process group
    assert refresh_status(run).state == "stopped"
    assert not launcher.is_running(status.pid, status.pid_start)


# -- the key fault test: kill -9 a real training, resume, same final step ------------------
# Short tiny-model training: 134 notes / batch 8 = 17 steps per epoch x 6 epochs = 102 steps,
# a complete checkpoint every 5 steps; no validation, so the run is training only.
SHORT_RUN = [
    "val_data=null",
    "final_eval=false",
    "epochs=6",
    "save_steps=5",
    "logging_steps=2",
    "eval_steps=null",
    "per_device_batch=8",
    "max_length=64",
    "torch_threads=1",
    "tiny_layers=1",
    "tiny_hidden_size=32",
    "tiny_intermediate_size=64",
]


@pytest.mark.slow
def test_stop_then_kill_9_then_resume_ends_where_an_uninterrupted_run_ends(tmp_path):
    """Launch a real tiny training; stop it gracefully, resume; kill -9 it, resume; compare."""
    from vetllm.config import load_config
    from vetllm.data.synth import write_synthetic_dataset
    from vetllm.engine.training import train

    data = write_synthetic_dataset(tmp_path / "data", n=160, seed=1)["files"]["train"]
    config = tmp_path / "short.yaml"
    load_config(TINY_CONFIG, [f"data={data}", *SHORT_RUN]).to_yaml(config)

    # The reference: the same config trained without interruption (in this process).
    reference = RunDirectory(tmp_path / "reference")
    train(load_config(config), reference.path)
    expected = reference.read_status()
    assert expected.state == "completed" and expected.step == expected.total_steps

    # 1. Stop button: STOP flag, a checkpoint at the step reached, state "stopped".
    run = launch_run(config, tmp_path / "runs" / "faults")
    _wait_for_checkpoint_after(run, 0)
    stopped = stop_run(run, timeout_s=120)
    assert stopped.state == "stopped", (stopped, run.log_path.read_text()[-2000:])
    assert run.last_complete_checkpoint().name == f"checkpoint-{stopped.step}"

    # 2. kill -9 of the whole process group after a checkpoint newer than the stop's.
    resume_run(run)
    killed = _kill_9(run, _wait_for_checkpoint_after(run, stopped.step))
    assert killed.state == "interrupted", killed
    assert killed.step < expected.total_steps
    resumed_step = _step_of(run.last_complete_checkpoint())
    # A save torn by the kill: a higher folder without COMPLETE must not be resumed from.
    torn = run.checkpoints_dir / f"checkpoint-{resumed_step + 1}"
    torn.mkdir()
    (torn / "config.json").write_text("{")

    # 3. Resume to the end: the same step count, log and losses as the uninterrupted run.
    resume_run(run)
    final = wait_for_run(run, timeout_s=300, poll_s=0.5)
    assert final.state == "completed", (final, run.log_path.read_text()[-2000:])
    assert final.raw["resumed_from_step"] == resumed_step
    assert (final.step, final.total_steps) == (expected.step, expected.total_steps)
    losses = {m["step"]: m["loss"] for m in run.read_metrics() if "loss" in m}
    reference_losses = {m["step"]: m["loss"] for m in reference.read_metrics() if "loss" in m}
    assert list(losses) == list(reference_losses)  # every step logged once, none lost
    # Same data order, optimizer and RNG state after each resume: the same losses (the first
    # log after a resume averages fewer steps, so those are left out).
    later = [step for step in losses if step > resumed_step + 2]
    assert [losses[s] for s in later] == pytest.approx([reference_losses[s] for s in later], 1e-3)
    state = json.loads((run.last_complete_checkpoint() / "trainer_state.json").read_text())
    assert state["global_step"] == expected.step


def _kill_9(run, status: RunStatus) -> RunStatus:
    """SIGKILL the run's process group (no chance to save or write); its refreshed status."""
    os.killpg(status.pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while launcher.is_running(status.pid, status.pid_start) and time.monotonic() < deadline:
        time.sleep(0.05)
    return refresh_status(run)


def _step_of(checkpoint: Path) -> int:
    return int(checkpoint.name.split("-")[1])


def _wait_for_checkpoint_after(run, step: int, timeout_s=240.0) -> RunStatus:
    """Poll (every 10 ms) until a complete checkpoint beyond `step` exists and training has
    gone past it; returns the status then."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        status = run.read_status()
        last = run.last_complete_checkpoint()
        if status.state == "completed":
            raise AssertionError("training finished before it could be interrupted")
        if last is not None and _step_of(last) > step and status.state == "running":
            if (status.step or 0) > _step_of(last):
                return status
        time.sleep(0.01)
    raise AssertionError(f"no checkpoint within {timeout_s} s: {run.read_status()}")
