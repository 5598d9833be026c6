"""Run state and status, typed: the one definition of what a run's status.json says.

`RunState` names every state a run can be in. Its values are the strings status.json has always
held, so the file written stays the same and run folders of older versions keep loading.
`RunStatus` is one status.json read back: typed fields for what code reads (state, step,
total_steps, error, ...) and `raw`, every key as read, so `to_dict()` gives the record back
unchanged. `RunStatus.from_dict` is tolerant: a missing key reads as None, a value of the wrong
type as None (still kept in `raw`), an unknown or missing state as `RunState.UNKNOWN` (a state
this version does not know, such as "paused", is still given back as written by `to_dict()`).
Writing stays in `RunDirectory.write_status`, which merges fields into the file. Imports no
torch.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from types import MappingProxyType
from typing import Any

try:
    from enum import StrEnum
except ImportError:  # Python 3.10: the same behaviour, spelled out

    class StrEnum(str, Enum):  # type: ignore[no-redef]
        def __str__(self) -> str:
            return str(self.value)


class RunState(StrEnum):
    """Where a run is; a StrEnum, so `RunState.RUNNING == "running"` and JSON holds the string."""

    QUEUED = "queued"  # launched; the training process has not started training yet
    RUNNING = "running"
    STOPPING = "stopping"  # STOP seen: a checkpoint is being saved (transient)
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"  # on request; resumable from its last complete checkpoint
    INTERRUPTED = "interrupted"  # its process vanished; resumable
    UNKNOWN = "unknown"  # only ever read, never written: no status file, or an unreadable one

    @classmethod
    def parse(cls, value: object) -> RunState:
        """The state named by `value`; UNKNOWN for anything else (None, a typo, a number)."""
        try:
            return cls(value)
        except ValueError:
            return cls.UNKNOWN

    @property
    def active(self) -> bool:
        """True while a training process owns the run (queued, running, stopping)."""
        return self in ACTIVE_STATES

    @property
    def final(self) -> bool:
        """True once the run ended (completed, failed, stopped, interrupted)."""
        return self in FINAL_STATES


# Every state a status file may hold (write_status refuses any other).
RUN_STATES = tuple(state for state in RunState if state is not RunState.UNKNOWN)
ACTIVE_STATES = frozenset({RunState.QUEUED, RunState.RUNNING, RunState.STOPPING})
FINAL_STATES = frozenset(
    {RunState.COMPLETED, RunState.FAILED, RunState.STOPPED, RunState.INTERRUPTED}
)
# Ended early without an error of their own: Resume continues them.
UNFINISHED_STATES = frozenset({RunState.STOPPED, RunState.INTERRUPTED})


@dataclass(frozen=True)
class RunStatus:
    """One status.json, typed. Build it with `from_dict`; change it with `merged`.

    Fields are None when status.json lacks them (runs of older versions, a run not yet
    started). `raw` holds every key as read, typed here or not (e.g. trainer_pid,
    resumed_from_step); `dataclasses.replace` would leave it stale, so use `merged`.
    """

    state: RunState = RunState.UNKNOWN
    step: int | None = None  # optimizer steps done
    total_steps: int | None = None  # the Trainer's max_steps; None before training starts
    progress: float | None = None  # step / total_steps, 0..1
    epoch: float | None = None
    eta_s: float | None = None  # seconds left, while running
    elapsed_s: float | None = None  # seconds of training, summed over resumes
    wall_s: float | None = None  # seconds the training process took, once completed
    message: str | None = None
    error: str | None = None  # the one-line cause of a failure
    remedy: str | None = None  # what to do about it
    note: str | None = None  # e.g. a state reported but not recorded (full disk)
    pid: int | None = None  # the process (group) that trains the run
    pid_start: str | None = None  # that process's start time, to tell a reused pid apart
    created_at: str | None = None  # ISO-8601 UTC stamps
    started_at: str | None = None
    updated_at: str | None = None
    last_checkpoint: str | None = None  # folder name, e.g. "checkpoint-40"
    final_metrics: Mapping[str, Any] | None = None  # headline of the final evaluation
    served: Mapping[str, Any] | None = None  # which step model/ holds, and why
    raw: Mapping[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def from_dict(cls, record: Mapping[str, Any]) -> RunStatus:
        """A status from a status.json object; never raises for old, partial or odd records."""
        typed: dict[str, Any] = {"state": RunState.parse(record.get("state"))}
        for name, kinds in _TYPED.items():
            value = record.get(name)
            if isinstance(value, kinds) and not isinstance(value, bool):
                typed[name] = value
        return cls(**typed, raw=MappingProxyType(dict(record)))

    def to_dict(self) -> dict[str, Any]:
        """The record as status.json holds it: every key of `raw`, typed fields on top."""
        record = dict(self.raw)
        for name in _TYPED:
            value = getattr(self, name)
            if value is not None:
                record[name] = value
        if self.state is not RunState.UNKNOWN or "state" not in record:
            record["state"] = self.state.value
        # else: a state this version does not know (e.g. "paused") is shown as written
        return record

    def merged(self, **fields: Any) -> RunStatus:
        """This status with `fields` set (as a write_status merge would; None stores null)."""
        return RunStatus.from_dict({**self.to_dict(), **fields})

    @property
    def active(self) -> bool:
        return self.state.active

    @property
    def final(self) -> bool:
        return self.state.final


# The JSON types each typed field takes from a record (a float field takes a whole number too).
_JSON_TYPES = {"int": (int,), "float": (int, float), "str": (str,), "Mapping[str, Any]": (Mapping,)}
_TYPED = {
    f.name: _JSON_TYPES[str(f.type).removesuffix(" | None")]
    for f in dataclasses.fields(RunStatus)
    if f.name not in ("state", "raw")
}
