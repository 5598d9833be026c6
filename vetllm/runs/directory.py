"""Durable run directories: the files a training process writes and the app reads.

A run directory (docs/ARCHITECTURE.md, `runs/`) holds the resolved config, an atomically
replaced `status.json` (read back as a typed `RunStatus`, vetllm.runs.state), an append-only
`metrics.jsonl`, the HF Trainer checkpoints (each with a `COMPLETE` marker once fully saved), the
final model, evaluation output and a `STOP` flag. Everything here is plain files so that a UI restarted mid-run, or another
process entirely, can reattach by just reading them. This module never imports torch.

The launcher (separate process, lock, stop, resume) lives in `vetllm.runs.launcher`, which
imports this module (never the reverse).
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import re
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from vetllm.runs.faults import RunFolderGone, checkpoint_problem
from vetllm.runs.state import RUN_STATES, RunState, RunStatus

COMPLETE_MARKER = "COMPLETE"
CHECKPOINT_PATTERN = re.compile(r"^checkpoint-(\d+)$")
RUNS_DIR_ENV = "VETLLM_RUNS_DIR"  # where runs go when no --runs-dir / --output is given
DEFAULT_RUNS_FOLDER = "runs"  # relative to the working directory, when the variable is unset
# Set by the launcher for the process it spawns: the run directory whose status "pid" it owns.
# Without it (plain `vetllm train`), the training process records its own pid.
LAUNCHED_RUN_ENV = "VETLLM_LAUNCHED_RUN"
MEMBERS_DIR = "members"  # an ensemble run's other models (vetllm.engine.ensemble)

# Serialises read-merge-write of status files between threads of one process; fcntl.flock on
# a sidecar file does the same between processes (trainer vs. launcher vs. UI).
_THREAD_LOCK = threading.Lock()
# The last status this process wrote or read whole, per status file: a status.json damaged
# from outside mid-run is rewritten from it instead of staying "unknown" (issue 11, item 15).
_LAST_GOOD: dict[Path, dict[str, Any]] = {}


def now_iso() -> str:
    """Now as an ISO-8601 UTC stamp to the second (status, lock and served-model records)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _checked(state: RunState | str) -> str:
    """`state` as the string status.json holds; ValueError for a state no run may be in."""
    if state not in RUN_STATES:
        names = ", ".join(RUN_STATES)
        raise ValueError(f"unknown run state {state!r}; expected one of {names}")
    return RunState(state).value


def default_runs_dir() -> Path:
    """The runs folder: $VETLLM_RUNS_DIR, else ./runs (read at call time, not at import)."""
    return Path(os.environ.get(RUNS_DIR_ENV) or DEFAULT_RUNS_FOLDER)


def new_run_folder_name(name: str) -> str:
    """A new run's folder name: NAME-YYYYmmdd-HHMMSS in UTC (the app, CLI and first launch)."""
    return f"{name}-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON object line of a file we wrote, in order; [] when it is missing or unreadable.

    Tolerant by design: a line torn by a crash mid-write, a corrupt line or a non-object line is
    skipped (the run files are appended to while others read them). For users' own files, which
    deserve a message per bad line, the data loaders are strict instead.
    """
    try:
        raw = Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:  # missing, a folder in its place, no permission: nothing to read
        return []
    records = []
    for line in raw.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records


def atomic_write_text(path: Path, text: str) -> None:
    """Write `text` to `path` so a reader sees either the old or the new file, never half."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise


def process_start_time(pid: int) -> str | None:
    """The kernel's start time of `pid` (clock ticks since boot), or None if unknown.

    Stored next to a pid so that a pid reused by an unrelated process is not mistaken for ours.
    """
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # Fields after the command name (which may hold spaces or parentheses): state is the 3rd
    # field of the line, starttime the 22nd.
    fields = stat.rsplit(")", 1)[-1].split()
    return fields[19] if len(fields) > 19 else None


def process_alive(pid: int | None, start_time: str | None = None) -> bool:
    """True if `pid` runs (not a zombie) and, when `start_time` is given, is the same process."""
    if not pid:
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # exists, owned by another user
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (not Linux): os.kill is all we can know
    fields = stat.rsplit(")", 1)[-1].split()
    if fields and fields[0] in ("Z", "X"):
        return False  # exited, waiting to be reaped
    return start_time is None or process_start_time(int(pid)) == str(start_time)


class RunDirectory:
    """One training run on disk. Cheap to construct; every method reads or writes files."""

    def __init__(self, path: str | os.PathLike[str]):
        self.path = Path(path)
        self._pinned: tuple[int, int] | None = None

    def pin(self) -> None:
        """Remember this folder's identity: later writes raise RunFolderGone if it was deleted
        (or deleted and recreated) meanwhile, instead of recreating a partial run."""
        info = self.path.stat()
        self._pinned = (info.st_dev, info.st_ino)

    def _check_pinned(self) -> None:
        if self._pinned is None:
            return
        try:
            info = self.path.stat()
            same = (info.st_dev, info.st_ino) == self._pinned and self.status_path.exists()
        except OSError:
            same = False
        if not same:
            raise RunFolderGone(
                f"run: the folder of '{self.name}' was deleted while training; the run stopped "
                "(launch it again)"
            )

    def __repr__(self) -> str:
        return f"RunDirectory({str(self.path)!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RunDirectory) and self.path == other.path

    def __hash__(self) -> int:
        return hash(self.path)

    # -- paths -------------------------------------------------------------------------------
    @property
    def name(self) -> str:
        return self.path.name

    @property
    def config_path(self) -> Path:
        return self.path / "config.yaml"

    @property
    def status_path(self) -> Path:
        return self.path / "status.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def log_path(self) -> Path:
        return self.path / "train.log"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def model_dir(self) -> Path:
        return self.path / "model"

    @property
    def eval_dir(self) -> Path:
        return self.path / "eval"

    @property
    def report_path(self) -> Path:
        return self.path / "report.md"

    @property
    def stop_path(self) -> Path:
        return self.path / "STOP"

    def exists(self) -> bool:
        """True once the directory holds a config or a status file."""
        return self.config_path.exists() or self.status_path.exists()

    # -- status ------------------------------------------------------------------------------
    def read_status(self) -> RunStatus:
        """The current status, typed; never raises for a missing or corrupt file.

        A missing file gives state UNKNOWN; an unreadable one gives UNKNOWN with an error
        naming the file (launcher.refresh_status decides whether that run was interrupted).
        """
        return RunStatus.from_dict(self._read_record())

    def _read_record(self) -> dict[str, Any]:
        """status.json as a dict, or the UNKNOWN placeholder read_status explains."""
        unknown = RunState.UNKNOWN.value
        try:
            text = self.status_path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return {"state": unknown, "message": "no status file yet"}
        except OSError as error:
            return {"state": unknown, "error": f"status.json unreadable: {error.strerror}"}
        try:
            status = json.loads(text)
        except ValueError:
            return {"state": unknown, "error": "status.json is not valid JSON"}
        if not isinstance(status, dict):
            return {"state": unknown, "error": "status.json does not hold an object"}
        status.setdefault("state", unknown)
        return status

    def write_status(self, state: RunState | str | None = None, **fields: Any) -> dict[str, Any]:
        """Merge `fields` (and `state`, if given) into status.json atomically; returns the
        record written.

        A field given as None is stored as null (e.g. `error=None` clears a previous error).
        """
        state = _checked(state) if state is not None else None
        self._check_pinned()
        with self._status_lock():
            status = self._read_record()
            if status.get("state") == RunState.UNKNOWN:
                if status.get("error") and self.status_path in _LAST_GOOD:
                    status = dict(_LAST_GOOD[self.status_path])  # damaged: heal from memory
                else:
                    # Drop the reader's placeholder explanation; not part of the run's status.
                    status.pop("message", None)
                    status.pop("error", None)
            status.update(fields)
            if state is not None:
                status["state"] = state
            status["updated_at"] = now_iso()
            atomic_write_text(self.status_path, json.dumps(status, indent=2, sort_keys=True))
            _LAST_GOOD[self.status_path] = dict(status)
        return status

    def reset_status(self, state: RunState | str, **fields: Any) -> dict[str, Any]:
        """Replace status.json entirely (a fresh run), keeping nothing from before."""
        status = {"state": _checked(state), **fields, "updated_at": now_iso()}
        with self._status_lock():
            atomic_write_text(self.status_path, json.dumps(status, indent=2, sort_keys=True))
            _LAST_GOOD[self.status_path] = dict(status)
        return status

    def write_status_in_place(self, state: RunState | str, **fields: Any) -> dict[str, Any]:
        """Last resort when the disk is full: overwrite status.json in place (no temporary
        file, so no new block is needed for a file of about the same size)."""
        base = self._read_record()
        if base.get("state") == RunState.UNKNOWN:
            base = dict(_LAST_GOOD.get(self.status_path, {}))
        status = {**base, **fields, "state": _checked(state), "updated_at": now_iso()}
        text = json.dumps(status, indent=2, sort_keys=True)
        with self._status_lock(), open(self.status_path, "r+" if self.status_path.exists() else "w",
                                       encoding="utf-8") as handle:  # fmt: skip
            handle.seek(0)
            handle.truncate()
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        return status

    @contextlib.contextmanager
    def _status_lock(self) -> Iterator[None]:
        if self._pinned is None:  # a pinned run's folder must not be recreated (see pin)
            self.path.mkdir(parents=True, exist_ok=True)
        with _THREAD_LOCK, open(self.path / ".status.lock", "a") as handle:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    # -- metrics -----------------------------------------------------------------------------
    def append_metrics(self, record: dict[str, Any]) -> None:
        """Append one JSON line; a single O_APPEND write, so readers never see a torn line."""
        self._check_pinned()
        self.path.mkdir(parents=True, exist_ok=True)
        line = (json.dumps(record, sort_keys=True, allow_nan=True) + "\n").encode("utf-8")
        fd = os.open(self.metrics_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)

    def read_metrics(self) -> list[dict[str, Any]]:
        """Every complete metrics line, in order; a torn or corrupt line is skipped."""
        return read_jsonl(self.metrics_path)

    def truncate_metrics_after(self, step: int) -> int:
        """Drop metrics lines logged after `step` (work lost when a run resumes from there).

        Returns how many lines were dropped; the file is replaced atomically.
        """
        records = self.read_metrics()
        kept = [r for r in records if not isinstance(r.get("step"), int) or r["step"] <= step]
        if len(kept) != len(records):
            text = "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept)
            atomic_write_text(self.metrics_path, text)
        return len(records) - len(kept)

    # -- stop flag ---------------------------------------------------------------------------
    def stop_requested(self) -> bool:
        """A STOP flag here or, for an ensemble member, in the ensemble's run folder."""
        parent = self.path.parent
        in_ensemble = parent.name == MEMBERS_DIR and (parent.parent / self.stop_path.name).exists()
        return self.stop_path.exists() or in_ensemble

    def request_stop(self) -> None:
        """Ask the training process to save a checkpoint and exit (RunCallback polls this)."""
        self.path.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.stop_path, now_iso() + "\n")

    def clear_stop(self) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.stop_path.unlink()

    # -- checkpoints -------------------------------------------------------------------------
    def mark_checkpoint_complete(self, path: str | os.PathLike[str]) -> None:
        """Write the COMPLETE marker into a checkpoint folder once every file is saved."""
        folder = Path(path)
        self._check_pinned()
        if not folder.is_dir():
            raise FileNotFoundError(f"checkpoint folder {folder} does not exist")
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.name != COMPLETE_MARKER)
        marker = {
            "completed_at": now_iso(),
            "files": sorted(p.name for p in folder.iterdir()),
            "sizes": {p.name: p.stat().st_size for p in files},  # checked before a resume
        }
        atomic_write_text(folder / COMPLETE_MARKER, json.dumps(marker) + "\n")

    def checkpoints(self) -> list[tuple[int, Path, bool]]:
        """(step, folder, complete) for every checkpoint-N folder, by step ascending."""
        if not self.checkpoints_dir.is_dir():
            return []
        found = []
        for child in self.checkpoints_dir.iterdir():
            match = CHECKPOINT_PATTERN.match(child.name)
            if match and child.is_dir():
                found.append((int(match.group(1)), child, (child / COMPLETE_MARKER).is_file()))
        return sorted(found)

    def last_complete_checkpoint(self, check_files: bool = True) -> Path | None:
        """The highest-numbered checkpoint WITH a COMPLETE marker (HF's own pick ignores it)
        whose files are still whole (see damaged_checkpoints; `check_files=False` trusts the
        marker, for listings)."""
        for _, folder, done in reversed(self.checkpoints()):
            if done and (not check_files or checkpoint_problem(folder) is None):
                return folder
        return None

    def damaged_checkpoints(self) -> list[tuple[str, str]]:
        """(folder name, what is wrong) for checkpoints marked COMPLETE but damaged since."""
        found = []
        for _, folder, done in self.checkpoints():
            problem = checkpoint_problem(folder) if done else None
            if problem:
                found.append((folder.name, problem))
        return found
