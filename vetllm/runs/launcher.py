"""Run training as a separate process: launch, one-at-a-time lock, stop, resume, reattach.

The app never trains inside an event handler: `launch_run` spawns
`python -m vetllm train --config RUN_DIR/config.yaml --output RUN_DIR [--resume]` in its own
process session, with stdout and stderr going to RUN_DIR/train.log, and returns at once. The lock
that allows one training at a time (for every entry point) lives in `vetllm.runs.lock`.
Everything the UI needs afterwards is read back from the run directory, so a restarted app simply
reattaches. Imports no torch.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import vetllm
from vetllm import resources
from vetllm.errors import VetLLMError
from vetllm.runs.directory import LAUNCHED_RUN_ENV, RunDirectory, now_iso, process_start_time
from vetllm.runs.faults import disk_full_cause, is_disk_full
from vetllm.runs.lock import (
    child_exit_code,
    current_lock_holder,
    is_running,
    lock_guard,
    remember_child,
    take_lock,
)
from vetllm.runs.state import RunState, RunStatus

_POLL_S = 0.2  # seconds between checks while waiting for a process to exit
_KILL_WAIT_S = 10.0  # seconds to wait for the kernel to reap a SIGKILLed process group


# -- launch ---------------------------------------------------------------------------------
def launch_run(
    config_path: str | os.PathLike[str],
    run_dir: str | os.PathLike[str],
    *,
    resume: bool = False,
    runs_root: str | os.PathLike[str] | None = None,
    overrides: Sequence[str] = (),
) -> RunDirectory:
    """Start training in a separate process and return its run directory at once.

    Args:
        config_path: YAML training config (copied, resolved, into RUN_DIR/config.yaml).
        run_dir: the run directory; must not already hold a run unless `resume`.
        resume: continue the run in `run_dir` from its last complete checkpoint.
        runs_root: folder whose lock allows one training at a time (default: run_dir's parent).
        overrides: `key=value` config overrides (as `vetllm train --set`).

    Raises:
        VetLLMError: another run is in progress, the config is missing or invalid, or run_dir
            already holds a run and `resume` is False.
    """
    run = RunDirectory(Path(run_dir).resolve())
    config = resources.config_path(config_path).resolve()  # a preset name or a file
    if not config.is_file():
        raise VetLLMError(
            f"config: file '{Path(config_path).name}' was not found; give the path of a YAML "
            "training config (see configs/)"
        )
    root = Path(runs_root).resolve() if runs_root is not None else run.path.parent
    try:
        return _launch_locked(run, config, root, resume=resume, overrides=overrides)
    except OSError as error:
        if is_disk_full(error):
            raise VetLLMError(f"{disk_full_cause(root)}; free space, then try again") from None
        raise VetLLMError(f"could not launch '{run.name}': {error.strerror}") from None


def _launch_locked(
    run: RunDirectory, config: Path, root: Path, *, resume: bool, overrides: Sequence[str]
) -> RunDirectory:
    with lock_guard(root):
        holder = current_lock_holder(root)
        if holder is not None:
            raise VetLLMError(
                f"a run is already in progress: {holder.get('run_name')}; stop it or wait for it "
                "to finish before launching another"
            )
        _prepare_run_dir(run, config, resume=resume, overrides=overrides)
        process = _spawn_training(run, resume=resume)
        take_lock(root, run, process.pid)
    run.write_status(pid=process.pid, pid_start=process_start_time(process.pid), trainer_pid=None)
    return run


def _prepare_run_dir(
    run: RunDirectory, config: Path, *, resume: bool, overrides: Sequence[str]
) -> None:
    status = run.read_status()
    if resume:
        if not run.config_path.is_file():
            raise VetLLMError(
                f"run: '{run.name}' has no config.yaml, so it cannot be resumed; launch a new run"
            )
        if config != run.config_path.resolve() or overrides:
            raise VetLLMError(
                f"config: a resumed run keeps its own config.yaml; got '{config.name}'. Launch a "
                "new run to train with another config"
            )
        last = run.last_complete_checkpoint()
        start = f"from {last.name}" if last else "from the start (no complete checkpoint)"
        damaged = run.damaged_checkpoints()  # marked complete, damaged since: skipped
        if damaged:
            start += "; skipped " + "; ".join(f"{name} ({why})" for name, why in damaged)
        run.clear_stop()
        run.write_status(
            RunState.QUEUED, error=None, remedy=None, eta_s=None, message=f"resuming {start}"
        )
        return
    if run.exists() and status.state != RunState.UNKNOWN:
        raise VetLLMError(
            f"output: '{run.name}' already holds a run (state {status.state}); choose "
            f"another output folder, or resume it with `vetllm runs resume {run.name}`"
        )
    _write_resolved_config(config, run.config_path, overrides)
    run.clear_stop()
    run.reset_status(
        RunState.QUEUED,
        name=run.name,
        created_at=now_iso(),
        step=0,
        total_steps=None,
        progress=0.0,
        message="waiting for the training process to start",
    )


def _write_resolved_config(source: Path, target: Path, overrides: Sequence[str]) -> None:
    """Validate the config (all problems at once) and write it, resolved, into the run."""
    from vetllm.config import load_config

    target.parent.mkdir(parents=True, exist_ok=True)
    load_config(source, list(overrides)).to_yaml(target)


def _training_command(run: RunDirectory, *, resume: bool) -> list[str]:
    command = [sys.executable, "-m", "vetllm", "train"]
    command += ["--config", str(run.config_path), "--output", str(run.path)]
    return command + (["--resume"] if resume else [])


def child_environment(**extra: str) -> dict[str, str]:
    """The environment of a training child process: this one's, unbuffered output, and a
    PYTHONPATH that makes it import this same vetllm even when it is not installed (a source
    checkout); `extra` variables on top."""
    env = dict(os.environ, PYTHONUNBUFFERED="1", **extra)
    package_root = str(Path(vetllm.__file__).resolve().parent.parent)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [package_root, env.get("PYTHONPATH")]))
    return env


def _spawn_training(run: RunDirectory, *, resume: bool) -> subprocess.Popen:
    command = _training_command(run, resume=resume)
    env = child_environment(**{LAUNCHED_RUN_ENV: str(run.path)})
    stamp = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    with open(run.log_path, "ab") as log:
        log.write(f"\n=== {stamp}: {'resume' if resume else 'launch'} ===\n".encode())
        log.flush()
        try:
            process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,  # own process group: stop/kill reaches the whole tree
                cwd=os.getcwd(),
                env=env,
            )
        except OSError as error:
            run.write_status(RunState.FAILED, error=f"could not start training: {error.strerror}")
            raise VetLLMError(f"could not start the training process: {error.strerror}") from None
    remember_child(process)
    return process


# -- status, stop, resume --------------------------------------------------------------------
def refresh_status(run_dir: str | os.PathLike[str] | RunDirectory) -> RunStatus:
    """The run's status, after marking an active run whose process vanished.

    A run that was training becomes INTERRUPTED (resumable); one that never got past QUEUED
    becomes FAILED with the end of train.log as its error, unless it was killed by a signal or
    left no error (then it is INTERRUPTED too). An unreadable status.json of a run whose
    process still holds the lock reads as RUNNING (the trainer rewrites it). Never raises for
    a disk that cannot take the update: the answer then says so.
    """
    run = _as_run(run_dir)
    status = run.read_status()
    if status.state == RunState.UNKNOWN and status.error and run.config_path.exists():
        holder = current_lock_holder(run.path.parent)
        if holder is not None and holder.get("run_dir") == str(run.path):
            message = f"{status.error}; the training process is alive and rewrites it"
            return status.merged(state=RunState.RUNNING, error=None, message=message)
        # Unreadable status: report it as interrupted without overwriting the evidence.
        return status.merged(state=RunState.INTERRUPTED, remedy=_resume_remedy(run))
    if not status.active or not status.pid:
        return status
    if is_running(status.pid, status.pid_start):
        return status
    if status.state == RunState.QUEUED:
        error = _launch_error(run, status.pid)
        if error is not None:
            fields = {"error": error, "remedy": "read train.log, fix the cause, then launch again"}
            return _record(run, RunState.FAILED, eta_s=None, **fields)
        message = "the training process ended before training began (no error in train.log)"
        remedy = _resume_remedy(run)
        return _record(run, RunState.INTERRUPTED, eta_s=None, message=message, remedy=remedy)
    if status.state == RunState.STOPPING or run.stop_requested():
        # The process honoured a stop and exited before anyone recorded the final state.
        return _record(run, RunState.STOPPED, eta_s=None, remedy=_resume_remedy(run))
    return _record(
        run,
        RunState.INTERRUPTED,
        eta_s=None,
        message=f"the training process (pid {status.pid}) is gone",
        remedy=_resume_remedy(run),
    )


def _record(run: RunDirectory, state: RunState, **fields: Any) -> RunStatus:
    """write_status, or on a disk that refuses the write, the same answer marked unrecorded."""
    try:
        return RunStatus.from_dict(run.write_status(state, **fields))
    except OSError as error:
        why = disk_full_cause(run.path) if is_disk_full(error) else error.strerror
        note = f"(not recorded in status.json: {why})"
        return run.read_status().merged(**fields, state=state, note=note)


def _launch_error(run: RunDirectory, pid: object) -> str | None:
    """The error a process that died while queued left, or None if it was killed or left none."""
    code = child_exit_code(pid)
    if code is not None and code < 0:
        return None  # killed by a signal (SIGTERM, SIGKILL): nothing wrong with the run
    tail = _log_tail(run)
    if not tail:
        return None if code is None else "the training process exited before training started"
    return tail


def _resume_remedy(run: RunDirectory) -> str:
    last = run.last_complete_checkpoint()
    if last is None:
        return "no complete checkpoint was saved; resuming starts again from step 0"
    return f"resume it (`vetllm runs resume {run.name}`) to continue from {last.name}"


def _log_tail(run: RunDirectory, lines: int = 5) -> str:
    """The last lines written since the last launch banner ('=== <date>: launch ===')."""
    try:
        text = run.log_path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    since = text.rsplit("\n=== ", 1)[-1].split("\n", 1)[-1] if "\n=== " in text else text
    tail = [line for line in since.splitlines() if line.strip() and not line.startswith("=== ")]
    return "\n".join(tail[-lines:])


def stop_run(run_dir: str | os.PathLike[str] | RunDirectory, timeout_s: float = 30) -> RunStatus:
    """Ask a run to checkpoint and stop; kill its whole process group after `timeout_s` seconds.

    Returns the final status. A run that is not active is left as it is.
    """
    run = _as_run(run_dir)
    status = refresh_status(run)
    if not status.active:
        return status
    run.request_stop()
    pid, start = status.pid, status.pid_start
    if not status.total_steps and is_running(pid, start):
        # Still loading data or the model: the STOP flag is only read between optimizer steps
        # and there is nothing to checkpoint yet, so end the process now.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(int(pid), signal.SIGTERM)
    deadline = time.monotonic() + max(float(timeout_s), 0.0)
    while is_running(pid, start) and time.monotonic() < deadline:
        time.sleep(_POLL_S)
    if is_running(pid, start):
        _kill_group(int(pid))
        message = f"did not stop within {timeout_s:g} s, so its processes were killed"
        return _stopped(run, message)
    status = run.read_status()
    if status.active:  # exited without writing its final state
        began = bool(status.total_steps)
        status = _stopped(run, "stopped on request" if began else "stopped before training began")
    return status


def _stopped(run: RunDirectory, message: str) -> RunStatus:
    fields = {"eta_s": None, "message": message, "remedy": _resume_remedy(run)}
    return RunStatus.from_dict(run.write_status(RunState.STOPPED, **fields))


def _kill_group(pid: int) -> None:
    """SIGKILL the process group of `pid` (a launched run leads its own), else `pid` alone."""
    try:
        group = os.getpgid(pid)
        if group == os.getpgrp():  # started some other way, in our own group: spare ourselves
            raise PermissionError
        os.killpg(group, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + _KILL_WAIT_S
    while is_running(pid, None) and time.monotonic() < deadline:
        time.sleep(_POLL_S)


def resume_run(
    run_dir: str | os.PathLike[str] | RunDirectory,
    *,
    runs_root: str | os.PathLike[str] | None = None,
) -> RunDirectory:
    """Relaunch a stopped, interrupted or failed run from its last complete checkpoint."""
    run = _as_run(run_dir)
    state = refresh_status(run).state
    if state.active:
        raise VetLLMError(f"run: '{run.name}' is still {state}; stop it before resuming")
    if state == RunState.COMPLETED:
        raise VetLLMError(f"run: '{run.name}' has already completed; launch a new run instead")
    return launch_run(run.config_path, run.path, resume=True, runs_root=runs_root)


def wait_for_run(
    run_dir: str | os.PathLike[str] | RunDirectory,
    *,
    timeout_s: float | None = None,
    poll_s: float = 1.0,
    on_update: Callable[[RunStatus], None] | None = None,
) -> RunStatus:
    """Poll until the run leaves the active states (or `timeout_s` passes); returns its status."""
    run = _as_run(run_dir)
    deadline = None if timeout_s is None else time.monotonic() + timeout_s
    while True:
        status = refresh_status(run)
        if on_update is not None:
            on_update(status)
        if not status.active:
            return status
        if deadline is not None and time.monotonic() >= deadline:
            return status
        time.sleep(poll_s)


def list_runs(runs_root: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every run under `runs_root` with its refreshed status, newest first."""
    root = Path(runs_root)
    if not root.is_dir():
        return []
    runs = []
    for child in root.iterdir():
        run = RunDirectory(child)
        if child.name.startswith(".") or not child.is_dir() or not run.exists():
            continue
        status = refresh_status(run)
        last = run.last_complete_checkpoint(check_files=False)  # cheap: called per request
        runs.append(
            {
                **status.to_dict(),
                "name": run.name,
                "path": str(run.path),
                "last_checkpoint": last.name if last else None,
                "has_model": run.model_dir.is_dir(),
            }
        )
    runs.sort(key=_sort_key)
    return runs[::-1]


def _as_run(run_dir: str | os.PathLike[str] | RunDirectory) -> RunDirectory:
    return run_dir if isinstance(run_dir, RunDirectory) else RunDirectory(run_dir)


def _sort_key(entry: dict[str, Any]) -> str:
    # ISO-8601 UTC stamps sort as text; a run that never started falls back to its last update.
    return str(entry.get("created_at") or entry.get("started_at") or entry.get("updated_at") or "")
