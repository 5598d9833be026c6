"""Command-line interface: `vetllm <command> ...` (also `python -m vetllm`).

Each command group lives in its own module and registers its sub-parsers; every command is a thin
call into the core. Errors the user can fix (VetLLMError) print as one clear message and exit 2.
"""

from __future__ import annotations

import argparse
import sys

from vetllm.cli import (
    analyze_commands,
    calibrate_commands,
    config_commands,
    core_commands,
    coverage_commands,
    data_commands,
    engine_commands,
    export_commands,
    predict_commands,
    runs_commands,
)
from vetllm.errors import VetLLMError

GROUPS = (
    core_commands,
    coverage_commands,
    data_commands,
    engine_commands,
    runs_commands,
    predict_commands,
    analyze_commands,
    calibrate_commands,
    config_commands,
    export_commands,
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="vetllm", description="VetLLM Studio: clinical notes to SNOMED-CT codes."
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for group in GROUPS:
        group.add_commands(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except VetLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # Output piped into `head` and closed early: not an error worth a traceback.
        sys.stderr.close()
        return 0
    except OSError as error:  # a full or failing disk: one line, no traceback (issue 11)
        print(f"error: {error.strerror or error}", file=sys.stderr)
        return 1
