"""CLI command `vetllm coverage`: what the Trainer will do with the data (`analyze`: analyze_commands).

Numbers are read as text and converted here so that a bad value is reported as a VetLLMError
naming the flag, like every other user error, instead of argparse's usage dump.
"""

from __future__ import annotations

import argparse
import json

from vetllm.coverage import plan_coverage

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
    """Register `coverage` on the argparse sub-parsers object."""
    _add_coverage(commands)


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


def _number_or_text(text: str | None, kind: type) -> int | float | str | None:
    if text is None:
        return None
    try:
        return kind(text)
    except ValueError:
        return text
