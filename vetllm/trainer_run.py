"""Reading a Trainer run made elsewhere: its trainer_state.json and its training arguments.

`find_trainer_state` accepts what a Trainer user has at hand: an output folder (its own
trainer_state.json, written by `trainer.save_state()`, or else its newest `checkpoint-N`), one
checkpoint folder, a vetllm run folder (its metrics.jsonl), or the trainer_state.json /
metrics.jsonl file itself. `read_trainer_state`
returns the loss history plus the state's own fields (global_step, max_steps, num_train_epochs,
train_batch_size, logging_steps).

Training arguments come as JSON (`TrainingArguments.to_dict()` or a hand-written
`training_args.json`); `normalise_training_args` keeps the fields the coverage arithmetic needs
and checks them all at once. `training_args.bin` is a pickle: loading it can run any code, so
this module never reads it (only the CLI does, behind an explicit opt-in flag).
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.analysis import MAX_LOG_BYTES, load_log_history
from vetllm.errors import VetLLMError

STATE_NAME = "trainer_state.json"
ARGS_JSON_NAME = "training_args.json"
ARGS_BIN_NAME = "training_args.bin"
METRICS_NAME = "metrics.jsonl"  # a vetllm run folder's log
STATE_FIELDS = ("global_step", "max_steps", "num_train_epochs", "train_batch_size",
                "logging_steps", "epoch", "save_steps", "eval_steps")  # fmt: skip
MAX_ARGS_BYTES = 2 * 1024 * 1024
_CHECKPOINT = re.compile(r"checkpoint-(\d+)$")

# normalised name -> names it goes by (TrainingArguments first, then common shorthands)
ARG_ALIASES = {
    "per_device_train_batch_size": ("per_device_train_batch_size", "per_device_batch",
                                    "batch_size", "micro_batch_size"),
    "gradient_accumulation_steps": ("gradient_accumulation_steps", "grad_accum"),
    "num_train_epochs": ("num_train_epochs", "epochs"),
    "max_steps": ("max_steps",),
    "dataloader_drop_last": ("dataloader_drop_last", "drop_last"),
    "world_size": ("world_size", "num_processes"),
    "n_gpu": ("n_gpu", "_n_gpu"),
}  # fmt: skip
ARG_DEFAULTS = {  # the TrainingArguments defaults
    "gradient_accumulation_steps": 1,
    "num_train_epochs": 3.0,
    "max_steps": None,
    "dataloader_drop_last": False,
    "world_size": 1,
    "n_gpu": 1,
}


@dataclass
class TrainerRunFiles:
    """Where the state and arguments of a run were found, and what was noticed on the way."""

    state_path: Path
    args_path: Path | None = None  # a training_args.json next to the state (or one folder up)
    args_bin_path: Path | None = None  # found, never read here
    description: str = ""
    notes: list[str] = field(default_factory=list)


def find_trainer_state(path: str | Path) -> TrainerRunFiles:
    """Resolve an output folder, a checkpoint folder or a state file to the files to read."""
    path = Path(path)
    if path.is_file():
        return _with_args(TrainerRunFiles(path, description=path.name), path.parent)
    if not path.is_dir():
        raise VetLLMError(
            f"RUN: {path.name} does not exist; pass a Trainer output folder, a checkpoint "
            "folder or a trainer_state.json"
        )
    if (path / STATE_NAME).is_file():
        return _with_args(TrainerRunFiles(path / STATE_NAME, description=f"{path.name}/{STATE_NAME}"),
                          path)  # fmt: skip
    checkpoints = sorted(
        (int(m.group(1)), p)
        for p in path.iterdir()
        if (m := _CHECKPOINT.match(p.name)) and (p / STATE_NAME).is_file()
    )
    if not checkpoints and (path / METRICS_NAME).is_file():  # a vetllm run folder
        return TrainerRunFiles(path / METRICS_NAME, description=f"{path.name}/{METRICS_NAME}")
    if not checkpoints:
        raise VetLLMError(
            f"RUN: folder {path.name} has no {STATE_NAME} and no checkpoint-N folder with one; "
            "call trainer.save_state() at the end of training, or pass a checkpoint folder"
        )
    newest = checkpoints[-1][1]
    files = TrainerRunFiles(newest / STATE_NAME, description=f"{newest.name}/{STATE_NAME}")
    files.notes.append(
        f"read {newest.name}/{STATE_NAME}, the newest of {len(checkpoints)} checkpoint(s) "
        f"(the output folder has no {STATE_NAME} of its own)"
    )
    return _with_args(files, newest, path)


def _with_args(files: TrainerRunFiles, *folders: Path) -> TrainerRunFiles:
    search = list(folders)
    if _CHECKPOINT.match(folders[0].name):
        search.append(folders[0].parent)  # the output folder above a checkpoint
    for folder in search:
        if files.args_path is None and (folder / ARGS_JSON_NAME).is_file():
            files.args_path = folder / ARGS_JSON_NAME
        if files.args_bin_path is None and (folder / ARGS_BIN_NAME).is_file():
            files.args_bin_path = folder / ARGS_BIN_NAME
    return files


def read_trainer_state(path: str | Path, max_bytes: int = MAX_LOG_BYTES) -> tuple[list, dict]:
    """(loss history, state fields) of a trainer_state.json; a metrics.jsonl gives no fields."""
    path = Path(path)
    if path.is_file() and path.stat().st_size > max_bytes:
        raise VetLLMError(
            f"{path.name}: {path.stat().st_size:,} bytes is over the limit of {max_bytes:,} bytes"
        )
    history = load_log_history(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except ValueError:
        data = None  # JSON lines: a metrics.jsonl has no state fields
    fields = {}
    if isinstance(data, dict):
        fields = {k: data[k] for k in STATE_FIELDS if k in data}
    return history, fields


def read_args_json(path: str | Path) -> dict:
    """The raw mapping of a training-arguments JSON file (checked by normalise_training_args)."""
    path = Path(path)
    if path.stat().st_size > MAX_ARGS_BYTES:
        raise VetLLMError(f"{path.name}: over {MAX_ARGS_BYTES // 2**20} MB; is it the right file?")
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError as error:
        raise VetLLMError(f"{path.name}: not UTF-8 text ({error.reason})") from error
    except ValueError as error:
        raise VetLLMError(
            f"{path.name}: not valid JSON ({error}); save the arguments with "
            "json.dump(training_args.to_dict(), f)"
        ) from error
    if not isinstance(data, dict):
        raise VetLLMError(f"{path.name}: expected a JSON object of argument names and values")
    return data


def normalise_training_args(
    raw: Mapping, source: str = "training arguments", overrides: Mapping | None = None
) -> dict:
    """The arguments the coverage arithmetic needs, with Trainer defaults; every bad one listed.

    `overrides` (e.g. CLI flags) win over `raw`; a value of None in them means "not given".
    """
    values = {}
    for name, aliases in ARG_ALIASES.items():
        found = next((raw[a] for a in aliases if a in raw and raw[a] is not None), None)
        given = (overrides or {}).get(name)
        values[name] = given if given is not None else found
    if values["per_device_train_batch_size"] is None:
        values["per_device_train_batch_size"] = raw.get("train_batch_size")  # per process
    if values["max_steps"] is not None and _is_int(values["max_steps"]) and values["max_steps"] < 1:
        values["max_steps"] = None  # the Trainer's -1: derive from epochs
    problems = []
    for name in ("per_device_train_batch_size", "gradient_accumulation_steps", "world_size",
                 "n_gpu", "max_steps"):  # fmt: skip
        value = values[name] if values[name] is not None else ARG_DEFAULTS.get(name)
        if name == "per_device_train_batch_size" and value is None:
            problems.append(f"{name}: missing; give the per-device micro-batch size")
        elif value is not None and not (_is_int(value) and value >= 1):
            problems.append(f"{name}: expected a whole number of at least 1, got {value!r}")
        values[name] = int(value) if _is_int(value) else value
    epochs = values["num_train_epochs"]
    values["num_train_epochs"] = ARG_DEFAULTS["num_train_epochs"] if epochs is None else epochs
    if not _is_positive(values["num_train_epochs"]):
        problems.append(f"num_train_epochs: expected a number above 0, got {epochs!r}")
    drop = values["dataloader_drop_last"]
    values["dataloader_drop_last"] = False if drop is None else drop
    if not isinstance(values["dataloader_drop_last"], bool):
        problems.append(f"dataloader_drop_last: expected true or false, got {drop!r}")
    if problems:
        raise VetLLMError(f"{source}:\n" + "\n".join(f"  - {p}" for p in problems))
    values["num_train_epochs"] = float(values["num_train_epochs"])
    return values


def _is_int(value) -> bool:
    if isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, int) and not isinstance(value, bool)


def _is_positive(value) -> bool:
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    return ok and math.isfinite(value) and value > 0
