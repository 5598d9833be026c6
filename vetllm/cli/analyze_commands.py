"""CLI command `vetllm analyze RUN`: a Trainer run made anywhere, against its arguments and data.

RUN is a Trainer output folder, a checkpoint folder, a trainer_state.json or a metrics.jsonl.
The training arguments come from `--args` (JSON), a training_args.json found next to the state,
or flags (flags win). `training_args.bin` is a pickle and is read only with
`--unpickle-training-args-bin`: unpickling runs whatever code the file contains.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vetllm.errors import VetLLMError

UNPICKLE_HELP = (
    "also read training_args.bin (a Python pickle written by the Trainer). Unpickling runs any "
    "code the file contains: use this only for a run you made yourself or fully trust; prefer "
    "--args with json.dump(training_args.to_dict(), f)"
)
# normalised argument name -> (flag, type)
ARG_FLAGS = {
    "per_device_train_batch_size": ("--batch-size", int),
    "gradient_accumulation_steps": ("--grad-accum", int),
    "num_train_epochs": ("--epochs", float),
    "max_steps": ("--max-steps", int),
    "world_size": ("--world-size", int),
}


def add_commands(commands) -> None:
    """Register `analyze` on the argparse sub-parsers object."""
    parser = commands.add_parser(
        "analyze",
        help="analyse a Trainer run (output folder, checkpoint, trainer_state.json, metrics.jsonl)",
        description=(
            "Answers 'How did the loss get so low so quickly?' and 'Was the model trained on "
            "the whole dataset?' for a run made with any Trainer script: steps and epochs "
            "checked against the arguments and data size, duplicates, exposures, leakage, "
            "then the loss table, epochs, plateau and concerns."
        ),
    )
    parser.add_argument(
        "run_path", metavar="RUN", help="output folder, checkpoint-N folder or log file"
    )
    parser.add_argument("--data", default=None, metavar="TRAIN_FILE", help="the training data")
    parser.add_argument("--val-data", default=None, metavar="FILE", help="the validation data")
    parser.add_argument("--args", default=None, metavar="ARGS.json", dest="args_file",
                        help="training arguments as JSON (TrainingArguments.to_dict())")  # fmt: skip
    for name, (flag, _) in ARG_FLAGS.items():
        parser.add_argument(flag, default=None, help=f"{name} (overrides --args)")
    parser.add_argument("--drop-last", action=argparse.BooleanOptionalAction, default=None,
                        help="dataloader_drop_last (overrides --args)")  # fmt: skip
    parser.add_argument("--samples", default=None, help="training samples, when no --data")
    parser.add_argument("--steps-per-epoch", default=None, help="override the inferred value")
    parser.add_argument("--unpickle-training-args-bin", action="store_true", help=UNPICKLE_HELP)
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    parser.add_argument(
        "--report", default=None, metavar="OUT.md", help="write the Markdown report"
    )
    parser.set_defaults(run=run_analyze)


def run_analyze(args: argparse.Namespace) -> int:
    from vetllm.trainer_report import analyse_run_files, render_trainer_run_report

    overrides, problems = {"dataloader_drop_last": args.drop_last}, []
    for name, (flag, kind) in ARG_FLAGS.items():
        overrides[name] = _number(getattr(args, flag[2:].replace("-", "_")), kind, flag, problems)
    samples = _number(args.samples, int, "--samples", problems)
    steps = _number(args.steps_per_epoch, int, "--steps-per-epoch", problems)
    if problems:
        raise VetLLMError("invalid options:\n" + "\n".join(f"  - {p}" for p in problems))
    args_raw = _unpickled_args(Path(args.run_path)) if args.unpickle_training_args_bin else None
    result = analyse_run_files(
        args.run_path, args_file=args.args_file, args_raw=args_raw, overrides=overrides,
        data=args.data, val_data=args.val_data, samples=samples, steps_per_epoch=steps,
    )  # fmt: skip
    report = render_trainer_run_report(result)
    if args.report:
        _write_text(Path(args.report), report)
    if args.json:
        print(json.dumps(result.to_dict(), indent=2))
    elif not args.report:
        print(report)
    else:
        print(f"report written to {args.report}")
    return 0


def _number(text: str | None, kind: type, flag: str, problems: list[str]):
    if text is None:
        return None
    try:
        value = kind(text)
    except ValueError:
        problems.append(f"{flag}: expected a number, got {text!r}")
        return None
    if value <= 0:
        problems.append(f"{flag}: expected a number above 0, got {text!r}")
    return value


def _unpickled_args(run: Path) -> dict:
    """training_args.bin next to the state, unpickled (the user opted in; see UNPICKLE_HELP)."""
    import torch

    from vetllm.trainer_run import ARGS_BIN_NAME, find_trainer_state

    path = find_trainer_state(run).args_bin_path
    if path is None:
        raise VetLLMError(
            f"--unpickle-training-args-bin: no {ARGS_BIN_NAME} in {run.name} or its output folder"
        )
    try:
        loaded = torch.load(path, weights_only=False)  # noqa: S614 - explicit opt-in, see help
    except Exception as error:  # noqa: BLE001 - any unpickling failure is the file's problem
        raise VetLLMError(f"{ARGS_BIN_NAME}: cannot be read ({type(error).__name__})") from error
    as_dict = getattr(loaded, "to_dict", None)
    if not callable(as_dict):
        raise VetLLMError(f"{ARGS_BIN_NAME}: does not hold TrainingArguments")
    # The pickle does not record the world size (a property of the launch): pass --world-size.
    return {**as_dict(), "n_gpu": getattr(loaded, "_n_gpu", 1) or 1}


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise VetLLMError(
            f"--report: cannot write {path.name} ({error.strerror}); choose a writable path"
        ) from error
