"""CLI commands `vetllm coverage` (what the Trainer will do with the data) and `vetllm analyze`.

Numbers are read as text and converted here so that a bad value is reported as a VetLLMError
naming the flag, like every other user error, instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vetllm.analysis import analyse_losses, load_log_history
from vetllm.coverage import plan_coverage
from vetllm.errors import VetLLMError
from vetllm.report import render_training_report

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
    # Text that is not a number goes to the core as it is, so that every bad flag is reported
    # in one message, each under its flag name.
    plan = plan_coverage(
        samples=_number_or_text(args.samples, int),
        per_device_batch=_number_or_text(args.batch_size, int),
        grad_accum=_number_or_text(args.grad_accum, int),
        epochs=_number_or_text(args.epochs, float),
        max_steps=_number_or_text(args.max_steps, int),
        world_size=_number_or_text(args.world_size, int),
        unique_notes=_number_or_text(args.unique_notes, int),
        drop_last=args.drop_last,
        field_labels=COVERAGE_FLAGS,
    )
    print(json.dumps(plan.to_dict(), indent=2) if args.json else plan.to_markdown())
    return 0


def run_analyze(args: argparse.Namespace) -> int:
    steps_per_epoch = _number_or_text(args.steps_per_epoch, int)
    if steps_per_epoch is not None and not (
        isinstance(steps_per_epoch, int) and steps_per_epoch >= 1
    ):
        raise VetLLMError(
            f"--steps-per-epoch: expected a whole number of at least 1, got {args.steps_per_epoch!r}"
        )
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


def _number_or_text(text: str | None, kind: type) -> int | float | str | None:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return text
