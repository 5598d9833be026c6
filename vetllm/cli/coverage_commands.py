"""CLI commands `vetllm coverage` (what the Trainer will do with the data) and `vetllm analyze`.

Numbers are read as text and converted here so that a bad value is reported as a VetLLMError
naming the flag, like every other user error, instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vetllm.analysis import analyse_losses, load_log_history, render_training_report
from vetllm.coverage import plan_coverage
from vetllm.errors import VetLLMError

# Core parameter name -> the flag the user typed, so core messages name the flag.
COVERAGE_FLAGS = {
    "samples": "--samples",
    "per_device_batch": "--batch-size",
    "grad_accum": "--grad-accum",
    "epochs": "--epochs",
    "max_steps": "--max-steps",
    "world_size": "--world-size",
    "unique_notes": "--unique-notes",
}


def add_commands(commands) -> None:
    """Register `coverage` and `analyze` on the argparse sub-parsers object."""
    _add_coverage(commands)
    _add_analyze(commands)


def _add_coverage(commands) -> None:
    parser = commands.add_parser(
        "coverage",
        help="steps, epochs, dropped and repeated samples exactly as the HF Trainer computes them",
        description="Coverage arithmetic of the HF Trainer (transformers >= 4.52).",
    )
    parser.add_argument("--samples", required=True, help="training records (rows)")
    parser.add_argument("--batch-size", required=True, help="per-device micro-batch size")
    parser.add_argument("--grad-accum", default="1", help="gradient accumulation steps")
    parser.add_argument("--epochs", default="1", help="epochs, fractions allowed")
    parser.add_argument("--max-steps", default=None, help="optimizer steps (overrides epochs)")
    parser.add_argument("--world-size", default="1", help="data-parallel processes (GPUs)")
    parser.add_argument("--unique-notes", default=None, help="distinct note texts in the data")
    parser.add_argument(
        "--drop-last",
        action=argparse.BooleanOptionalAction,
        default=False,
        help="dataloader_drop_last (default: off)",
    )
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(run=run_coverage)


def _add_analyze(commands) -> None:
    parser = commands.add_parser(
        "analyze",
        help="analyse a loss history (trainer_state.json or metrics.jsonl)",
        description="Loss table, epoch boundaries, plateau, concerns and an early-stop hint.",
    )
    parser.add_argument("log_file", metavar="LOG_FILE", help="trainer_state.json or metrics.jsonl")
    parser.add_argument("--steps-per-epoch", default=None, help="optimizer steps per epoch")
    parser.add_argument("--json", action="store_true", help="print the analysis as JSON")
    parser.add_argument("--report", default=None, metavar="OUT.md", help="write a Markdown report")
    parser.set_defaults(run=run_analyze)


def run_coverage(args: argparse.Namespace) -> int:
    problems: list[str] = []
    values = {
        "samples": _whole(args.samples, "--samples", problems),
        "per_device_batch": _whole(args.batch_size, "--batch-size", problems),
        "grad_accum": _whole(args.grad_accum, "--grad-accum", problems),
        "epochs": _number(args.epochs, "--epochs", problems),
        "max_steps": _whole(args.max_steps, "--max-steps", problems),
        "world_size": _whole(args.world_size, "--world-size", problems),
        "unique_notes": _whole(args.unique_notes, "--unique-notes", problems),
    }
    if problems:
        raise VetLLMError("invalid numbers:\n" + "\n".join(f"  - {p}" for p in problems))
    plan = plan_coverage(**values, drop_last=args.drop_last, field_labels=COVERAGE_FLAGS)
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.to_markdown())
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    problems: list[str] = []
    steps_per_epoch = _whole(args.steps_per_epoch, "--steps-per-epoch", problems)
    if problems or (steps_per_epoch is not None and steps_per_epoch < 1):
        shown = problems[0] if problems else f"got {steps_per_epoch}"
        raise VetLLMError(f"--steps-per-epoch: expected a whole number of at least 1 ({shown})")
    history = load_log_history(args.log_file)
    analysis = analyse_losses(history, steps_per_epoch=steps_per_epoch)
    report = render_training_report(analysis)
    if args.report:
        _write_text(Path(args.report), report)
    if args.json:
        print(json.dumps(analysis.to_dict(), indent=2))
    elif not args.report:
        print(report)
    else:
        print(f"report written to {args.report}")
    return 0


def _write_text(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise VetLLMError(
            f"--report: cannot write {path.name} ({error.strerror}); choose a writable path"
        ) from error


def _whole(text: str | None, flag: str, problems: list[str]) -> int | None:
    if text is None:
        return None
    try:
        return int(text)
    except ValueError:
        problems.append(f"{flag}: expected a whole number, got {text!r}")
        return None


def _number(text: str, flag: str, problems: list[str]) -> float | None:
    try:
        return float(text)
    except ValueError:
        problems.append(f"{flag}: expected a number (fractions allowed), got {text!r}")
        return None
