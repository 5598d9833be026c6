"""Faults a run directory must survive: a full disk, and checkpoints damaged after they were saved.

`is_disk_full()` finds ENOSPC (or a full quota) anywhere in an exception's chain and
`disk_full_cause()` words it with the free space left ("disk full: free 3 MB"). A checkpoint
folder with a COMPLETE marker can still be damaged afterwards (a truncated copy, a disk error):
`checkpoint_problem()` checks what resuming would read (the safetensors headers against the file
sizes, the JSON files, the sizes the marker recorded) without loading any tensor. Imports no
torch.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import struct
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.runs.state import RunState


class RunFolderGone(VetLLMError):
    """The run folder a training process writes into was deleted or replaced under it."""


_FULL = (errno.ENOSPC, errno.EDQUOT)
_MAX_HEADER_BYTES = 100 * 2**20  # a safetensors header is kilobytes; more means garbage


def is_disk_full(error: BaseException | None) -> bool:
    """True if `error`, or an exception it was raised from or during, is ENOSPC / EDQUOT."""
    seen = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        if isinstance(error, OSError) and error.errno in _FULL:
            return True
        error = error.__cause__ or error.__context__
    return False


def free_megabytes(path: str | os.PathLike[str]) -> int | None:
    """Free space (MB) on the disk holding `path` or its nearest existing parent."""
    folder = Path(path)
    while not folder.exists() and folder != folder.parent:
        folder = folder.parent
    try:
        return shutil.disk_usage(folder).free // 2**20
    except OSError:
        return None


def disk_full_cause(path: str | os.PathLike[str]) -> str:
    """'disk full: free N MB' for the disk of `path` (the run's cause of failure)."""
    free = free_megabytes(path)
    shown = f"{free:,} MB" if free is not None else "unknown"
    return f"disk full: free {shown} on the disk of the runs folder"


DISK_FULL_REMEDY = (
    "free disk space (delete old runs or their checkpoints), then resume: the last complete "
    "checkpoint is kept"
)


def checkpoint_problem(folder: Path) -> str | None:
    """Why a checkpoint marked COMPLETE cannot be resumed from, or None if it looks whole."""
    try:
        marker = json.loads((folder / "COMPLETE").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        marker = {}
    sizes = marker.get("sizes") if isinstance(marker, dict) else None
    for name, size in (sizes or {}).items():
        try:
            actual = (folder / name).stat().st_size
        except OSError:
            return f"{name} is missing"
        if actual != size:
            return f"{name} has {actual:,} bytes, {size:,} when saved"
    for path in sorted(folder.glob("*.safetensors")):
        problem = _safetensors_problem(path)
        if problem:
            return f"{path.name} {problem}"
    state = folder / "trainer_state.json"
    if state.exists() or sizes is None:
        try:
            json.loads(state.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return "trainer_state.json is missing, empty or not valid JSON"
    return None


def _safetensors_problem(path: Path) -> str | None:
    """A safetensors file is an 8-byte header length, a JSON header, then the tensor bytes."""
    try:
        size = path.stat().st_size
        with path.open("rb") as handle:
            head = handle.read(8)
            if len(head) < 8:
                return "is truncated (no header)"
            (length,) = struct.unpack("<Q", head)
            if length > min(size - 8, _MAX_HEADER_BYTES):
                return "is truncated (header cut short)"
            header = json.loads(handle.read(length))
    except (OSError, ValueError):
        return "is unreadable (damaged header)"
    ends = [
        item["data_offsets"][1]
        for key, item in header.items()
        if key != "__metadata__" and isinstance(item, dict) and "data_offsets" in item
    ]
    expected = 8 + length + max(ends, default=0)
    if size != expected:
        return f"is truncated ({size:,} of {expected:,} bytes)"
    return None


def record_failure(run, cause: str, remedy: str | None, error: BaseException | None) -> str:
    """Mark `run` (a RunDirectory) failed with `cause`; on a full disk the cause becomes
    'disk full: free N MB', incomplete checkpoints are deleted to make room, and status.json
    is overwritten in place if nothing else fits. Returns the cause recorded. Never raises for
    a deleted run folder or a disk that stays full: the process is ending either way."""

    if is_disk_full(error) or "No space left on device" in str(error or ""):
        cause, remedy = disk_full_cause(run.path), DISK_FULL_REMEDY
    fields = {"error": cause, "remedy": remedy, "message": "failed", "eta_s": None}
    try:
        run.write_status(RunState.FAILED, **fields)
        return cause
    except RunFolderGone:
        return cause  # nothing left to record into; the run must not be recreated
    except OSError as write_error:
        if is_disk_full(write_error):
            fields["error"] = cause = disk_full_cause(run.path)
            fields["remedy"] = DISK_FULL_REMEDY
    for _, folder, complete in run.checkpoints():
        if not complete:  # a half-written save cannot be resumed from: free its space
            shutil.rmtree(folder, ignore_errors=True)
    try:
        run.write_status(RunState.FAILED, **fields)
    except OSError:
        try:
            run.write_status_in_place(RunState.FAILED, **fields)
        except OSError:
            pass  # refresh_status reports the vanished process as interrupted instead
    return cause
