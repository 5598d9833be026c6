"""`vetllm predict --run RUN_DIR --file notes.csv --out coded.csv`: code a whole file of notes.

The file is read by `vetllm.batchcode.read_notes_file` (CSV with `--column`, JSONL, JSON or
plain text), every note goes through the run's model in batches, and the original rows come
back with codes, disease names, SCTID validity, confidence, abstained and reason (CSV or JSONL
by the --out suffix). A one-line JSON summary with the throughput goes to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

from vetllm.data.validation import MAX_PREDICT_NOTE_CHARS
from vetllm.errors import VetLLMError


def add_file_arguments(parser: argparse.ArgumentParser) -> None:
    """--file, --out and --column on the predict sub-command."""
    parser.add_argument("--file", metavar="FILE", default=None,
                        help="code every note of a CSV / JSONL / JSON / .txt file")  # fmt: skip
    parser.add_argument("--out", metavar="OUT", default=None, help="coded file: .csv or .jsonl")
    parser.add_argument("--column", default=None, help="CSV/JSON: the note column (guessed)")


def code_file_command(args: argparse.Namespace) -> int:
    from vetllm.batchcode import code_notes, predict_with, read_notes_file, write_coded
    from vetllm.engine.predict import Predictor

    if not (args.file and args.out):
        raise VetLLMError("predict: --file and --out go together (e.g. --file notes.csv --out "
                          "coded.csv)")  # fmt: skip
    table = read_notes_file(Path(args.file), args.column)
    predictor = Predictor.from_run(args.run_dir)
    started = time.perf_counter()
    rows = code_notes(table, predict_with(predictor, args.decoding, args.batch_size),
                      Path(args.run_dir).name, max_chars=MAX_PREDICT_NOTE_CHARS,
                      chunk=max(args.batch_size, 1) * 8)  # fmt: skip
    seconds = time.perf_counter() - started
    out = write_coded(rows, table.columns, Path(args.out))
    summary = {
        "notes": len(rows),
        "coded": sum(bool(r["codes"]) for r in rows),
        "abstained": sum(bool(r["abstained"]) for r in rows),
        "seconds": round(seconds, 2),
        "notes_per_s": round(len(rows) / seconds, 1) if seconds > 0 else None,
        "out": out.name,
        "note_column": table.note_column,
    }
    print(json.dumps(summary), file=sys.stderr)
    return 0
