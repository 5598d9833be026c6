"""The one-run lock of a runs folder, and the processes this process started.

A lock file in the runs root (pid, process start time, run name and folder) allows one training
at a time for every entry point: the app and `vetllm runs launch` take it for the process they
spawn, a direct `vetllm train` takes it for itself (`acquire_training_lock`). It survives an app
restart. It is free when its process is gone (or the pid now belongs to another process) or its
run already shows a final state; a missing or corrupt lock file is no hole, because any active run
under the root with a live process holds it too. Imports no torch.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vetllm.errors import VetLLMError
from vetllm.runs.directory import (
    LAUNCHED_RUN_ENV,
    RunDirectory,
    atomic_write_text,
    now_iso,
    process_alive,
    process_start_time,
)

LOCK_NAME = ".vetllm-run.lock"

# Popen objects of the processes this process spawned, so they can be reaped (no zombies).
_CHILDREN: dict[int, subprocess.Popen] = {}
_EXIT_CODES: dict[int, int] = {}  # exit codes of reaped children (negative: killed by a signal)


def remember_child(process: subprocess.Popen) -> None:
    """Keep a process this process spawned, so `is_running` can reap it once it exits."""
    _CHILDREN[process.pid] = process


def child_exit_code(pid: object) -> int | None:
    """The exit code of a reaped child (negative: killed by a signal), or None if not known."""
    return _EXIT_CODES.get(int(pid)) if isinstance(pid, int) else None


def _reap(pid: int | None) -> None:
    child = _CHILDREN.get(int(pid)) if pid else None
    if child is not None and child.poll() is not None:
        _EXIT_CODES[int(pid)] = child.returncode
        _CHILDREN.pop(int(pid), None)


def is_running(pid: int | None, start_time: str | None) -> bool:
    """`process_alive`, after reaping it if it is a child of ours (a zombie would look alive)."""
    _reap(pid)
    return process_alive(pid, start_time)


# -- the lock --------------------------------------------------------------------------------
@contextlib.contextmanager
def lock_guard(runs_root: Path) -> Iterator[None]:
    """Serialise check-and-take of the lock file between threads and processes."""
    runs_root.mkdir(parents=True, exist_ok=True)
    with open(runs_root / f"{LOCK_NAME}.guard", "a") as handle:
        fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def current_lock_holder(runs_root: str | os.PathLike[str]) -> dict[str, Any] | None:
    """Who holds the one-run lock of `runs_root`, or None when training may start.

    The lock file names a process and its run. It is free when that process is gone or its run
    already shows a final state (the process may need seconds to exit after COMPLETED). A
    missing or corrupt lock file does not make it free: any run under `runs_root` that is
    active with a live process holds it (issue 11, items 14 and 20).
    """
    root = Path(runs_root)
    try:
        holder = json.loads((root / LOCK_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        holder = None
    if isinstance(holder, dict) and is_running(holder.get("pid"), holder.get("pid_start")):
        if not _run_has_ended(holder.get("run_dir")):
            return holder
    return _active_run(root)


def _run_has_ended(run_dir: object) -> bool:
    if not isinstance(run_dir, str):
        return False
    return RunDirectory(run_dir).read_status().final


def _active_run(root: Path) -> dict[str, Any] | None:
    """A run under `root` whose status is active and whose process is alive, as a lock holder."""
    try:
        children = [child for child in root.iterdir() if child.is_dir()]
    except OSError:
        return None
    for child in children:
        status = RunDirectory(child).read_status()
        pid, start = status.pid, status.pid_start
        if status.active and pid is not None and is_running(pid, start):
            return {"pid": pid, "pid_start": start, "run_name": child.name, "run_dir": str(child)}
    return None


def acquire_training_lock(run_dir: str | os.PathLike[str]) -> None:
    """Take the one-run lock for a training process started directly (`vetllm train`).

    A process the launcher started already holds it. Raises VetLLMError when another live
    process trains under the same runs folder, whatever started it.
    """
    run = RunDirectory(Path(run_dir).resolve())
    if os.environ.get(LAUNCHED_RUN_ENV) == str(run.path):
        return
    root = run.path.parent
    with lock_guard(root):
        holder = current_lock_holder(root)
        if holder is not None and holder.get("pid") != os.getpid():
            raise VetLLMError(
                f"a run is already in progress: {holder.get('run_name')} (pid {holder.get('pid')})"
                "; stop it or wait for it to finish before training another"
            )
        take_lock(root, run, os.getpid())


def take_lock(runs_root: Path, run: RunDirectory, pid: int) -> None:
    """Write the lock file naming process `pid` and its run; call it inside `lock_guard`."""
    holder = {
        "pid": pid,
        "pid_start": process_start_time(pid),
        "run_name": run.name,
        "run_dir": str(run.path),
        "acquired_at": now_iso(),
    }
    atomic_write_text(runs_root / LOCK_NAME, json.dumps(holder, indent=2) + "\n")
