"""RunCallback: the bridge between a transformers Trainer and a run directory on disk.

It keeps `status.json` (state, step, progress, ETA) and `metrics.jsonl` current, marks every
checkpoint `COMPLETE` only after the Trainer has finished writing it, and turns a STOP flag file or
a SIGTERM/SIGINT into "save a checkpoint, then stop" at the next optimizer step. Only the main
process (world rank 0) writes files; in multi-GPU runs the stop decision is shared by all ranks so
they leave the loop at the same step. The final state (completed / stopped / failed) is left to
`train()`, which knows why training ended; it reads `RunCallback.stop_reason`.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import time
from pathlib import Path
from typing import Any

from transformers import TrainerCallback

from vetllm.runs.directory import (
    COMPLETE_MARKER,
    LAUNCHED_RUN_ENV,
    RunDirectory,
    now_iso,
    process_start_time,
)
from vetllm.runs.state import RunState

# Log keys that describe the whole training call, not one logging step; they go to status.json.
_SUMMARY_KEYS = (
    "train_runtime",
    "train_samples_per_second",
    "train_steps_per_second",
    "train_loss",
)
_HANDLED_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RunCallback(TrainerCallback):
    """Writes status and metrics for `run`, marks checkpoints complete and honours stop requests.

    Args:
        run: the run directory to write into.
        handle_signals: install SIGTERM/SIGINT handlers that stop like the STOP flag (a second
            signal falls through to the previous handler, so a stuck run can still be killed).
        status_interval_s: at most one status write per this many seconds between log steps
            (keeps a slow disk out of the training loop while the UI still sees progress).
    """

    def __init__(
        self, run: RunDirectory, *, handle_signals: bool = True, status_interval_s: float = 2.0
    ):
        self.run = run
        self.handle_signals = handle_signals
        self.status_interval_s = status_interval_s
        self.stop_reason: str | None = None
        self._signal_received: int | None = None
        self._previous_handlers: dict[int, Any] = {}
        self._session_start_time = time.monotonic()
        self._session_start_step = 0
        self._base_elapsed_s = 0.0
        self._last_log_time = self._session_start_time
        self._last_log_step = 0
        self._last_status_time = 0.0

    @property
    def stopped(self) -> bool:
        """True when training ended because a stop was requested (STOP flag or signal)."""
        return self.stop_reason is not None

    # -- Trainer events ----------------------------------------------------------------------
    def on_train_begin(self, args, state, control, **kwargs):
        now = time.monotonic()
        self._session_start_time = self._last_log_time = now
        self._session_start_step = self._last_log_step = state.global_step
        if self.handle_signals:
            self._install_signal_handlers()
        if not state.is_world_process_zero:
            return
        previous = self.run.read_status()
        resuming = state.global_step > 0
        # Steps logged after the checkpoint (all of them when there was none: step 0) were
        # lost with the process and are redone, so their old lines go.
        self.run.truncate_metrics_after(state.global_step)
        # Elapsed time accumulates across resumes (seconds of actual training, not wall clock).
        self._base_elapsed_s = float(previous.elapsed_s or 0.0) if resuming else 0.0
        started_at = previous.started_at if resuming else None
        self.run.write_status(
            RunState.RUNNING,
            **self._pid_fields(),
            started_at=started_at or now_iso(),
            resumed_from_step=state.global_step if resuming else None,
            error=None,
            remedy=None,
            message=f"training (resumed at step {state.global_step})" if resuming else "training",
            **self._progress_fields(state),
        )

    def on_step_end(self, args, state, control, **kwargs):
        if self._should_stop(args):
            control.should_save = True
            control.should_training_stop = True
            if state.is_world_process_zero:
                self.run.write_status(
                    RunState.STOPPING,
                    message=f"stop requested ({self.stop_reason}): saving a checkpoint",
                    **self._progress_fields(state),
                )
        if control.should_save and state.is_world_process_zero:
            # A re-save into an existing folder must not keep an old marker while half-written.
            marker = self._checkpoint_folder(args, state) / COMPLETE_MARKER
            with contextlib.suppress(FileNotFoundError):
                marker.unlink()
        if state.is_world_process_zero and not control.should_log:
            now = time.monotonic()
            if now - self._last_status_time >= self.status_interval_s:
                self._last_status_time = now
                self.run.write_status(**self._progress_fields(state))
        return control

    def on_log(self, args, state, control, logs=None, **kwargs):
        if not state.is_world_process_zero or not logs:
            return
        summary = {key: logs[key] for key in _SUMMARY_KEYS if key in logs}
        if summary:
            self.run.write_status(**summary, **self._progress_fields(state))
            return
        record = self._metrics_record(args, state, logs)
        self.run.append_metrics(record)
        self._last_status_time = time.monotonic()
        self.run.write_status(**self._progress_fields(state))

    def on_save(self, args, state, control, **kwargs):
        _barrier_if_distributed()  # every rank has written its files (e.g. rng_state_<rank>.pth)
        if not state.is_world_process_zero:
            return
        folder = self._checkpoint_folder(args, state)
        if folder.is_dir():
            self.run.mark_checkpoint_complete(folder)
            self.run.write_status(last_checkpoint=folder.name, **self._progress_fields(state))

    def on_train_end(self, args, state, control, **kwargs):
        self._restore_signal_handlers()
        if state.is_world_process_zero:
            # The final state is train()'s call (completed vs stopped); record where we ended.
            self.run.write_status(**self._progress_fields(state))

    # -- helpers -----------------------------------------------------------------------------
    def _pid_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {"trainer_pid": os.getpid()}
        # A launched run's "pid" is the process group the launcher started (it may be a
        # multi-GPU launcher whose workers have other pids); only a direct run records itself.
        if os.environ.get(LAUNCHED_RUN_ENV) != str(self.run.path.resolve()):
            fields.update(pid=os.getpid(), pid_start=process_start_time(os.getpid()))
        return fields

    def _checkpoint_folder(self, args, state) -> Path:
        return Path(args.output_dir) / f"checkpoint-{state.global_step}"

    def _should_stop(self, args) -> bool:
        if self.stop_reason is None:
            if self._signal_received is not None:
                self.stop_reason = signal.Signals(self._signal_received).name
            elif self.run.stop_requested():
                self.stop_reason = "STOP flag"
        local = self.stop_reason is not None
        shared = _any_rank(local, args)
        if shared and self.stop_reason is None:
            self.stop_reason = "stop on another process"
        return shared

    def _elapsed_s(self) -> float:
        return self._base_elapsed_s + (time.monotonic() - self._session_start_time)

    def _progress_fields(self, state) -> dict[str, Any]:
        total = int(state.max_steps or 0)
        step = int(state.global_step)
        session_steps = step - self._session_start_step
        session_time = time.monotonic() - self._session_start_time
        eta = None
        if total and session_steps > 0:
            eta = round(session_time / session_steps * max(total - step, 0), 1)
        return {
            "step": step,
            "total_steps": total,
            "epoch": _finite_or_none(state.epoch),
            "progress": round(step / total, 4) if total else None,
            "eta_s": eta,
            "elapsed_s": round(self._elapsed_s(), 2),
        }

    def _metrics_record(self, args, state, logs: dict[str, Any]) -> dict[str, Any]:
        record: dict[str, Any] = {
            key: _plain(value) for key, value in logs.items() if _plain(value) is not None
        }
        record["step"] = int(state.global_step)
        record["epoch"] = _finite_or_none(state.epoch)
        record["elapsed_s"] = round(self._elapsed_s(), 3)
        if "loss" in logs:
            now = time.monotonic()
            steps = state.global_step - self._last_log_step
            seconds = now - self._last_log_time
            # Samples per optimizer step = micro-batch x accumulation x data-parallel processes.
            per_step = args.per_device_train_batch_size * args.gradient_accumulation_steps
            per_step *= max(int(getattr(args, "world_size", 1) or 1), 1)
            if steps > 0 and seconds > 0:
                record["samples_per_s"] = round(steps * per_step / seconds, 3)
            self._last_log_time, self._last_log_step = now, state.global_step
        return record

    def _install_signal_handlers(self) -> None:
        for signum in _HANDLED_SIGNALS:
            try:
                self._previous_handlers[signum] = signal.signal(signum, self._on_signal)
            except ValueError:  # not the main thread: signals cannot be handled here
                return

    def _restore_signal_handlers(self) -> None:
        for signum, handler in self._previous_handlers.items():
            with contextlib.suppress(ValueError, TypeError):
                signal.signal(signum, handler)
        self._previous_handlers.clear()

    def _on_signal(self, signum, frame) -> None:
        if self._signal_received is None:
            self._signal_received = signum  # honoured at the next optimizer step
            return
        # Second signal: give up on the graceful path and let the previous handler act.
        previous = self._previous_handlers.get(signum, signal.SIG_DFL)
        self._restore_signal_handlers()
        if callable(previous):
            previous(signum, frame)
        else:
            signal.signal(signum, signal.SIG_DFL)
            signal.raise_signal(signum)


def _plain(value: Any) -> Any:
    """A JSON-friendly number/str for a log value (tensors and numpy scalars included)."""
    if hasattr(value, "item"):
        with contextlib.suppress(Exception):
            value = value.item()
    # Non-finite floats stay floats (written as NaN/Infinity): a diverging loss must be visible.
    if isinstance(value, bool | int | float | str):
        return value
    return None


def _finite_or_none(value: Any) -> float | None:
    if value is None:
        return None
    value = float(value)
    return round(value, 4) if math.isfinite(value) else None


def _distributed():
    """torch.distributed when a multi-process group is active, else None."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1:
        return dist
    return None


def _any_rank(flag: bool, args) -> bool:
    """True if `flag` is set on any process (all ranks must stop at the same step)."""
    dist = _distributed()
    if dist is None:
        return flag
    import torch

    tensor = torch.tensor([1.0 if flag else 0.0], device=args.device)
    dist.all_reduce(tensor, op=dist.ReduceOp.MAX)
    return bool(tensor.item() > 0)


def _barrier_if_distributed() -> None:
    dist = _distributed()
    if dist is not None:
        dist.barrier()
