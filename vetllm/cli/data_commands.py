"""CLI group `vetllm data validate|stats|split|leakage|synth`: thin calls into vetllm.data.

Human-readable output by default, `--json` for scripts. `validate` exits 0 when the file is
valid and 2 when it has problems (they are listed either way); other commands exit 2 on a
problem the user can fix, like every command (see vetllm.cli.main).
"""

from __future__ import annotations

import argparse
import json

from vetllm.catalogue import load_catalogue
from vetllm.data.loading import LoadResult, load_dataset_file
from vetllm.data.split import leakage_report, split_by_note, write_split
from vetllm.data.stats import dataset_stats
from vetllm.errors import DataError, VetLLMError


def add_commands(commands) -> None:
    """Register `data` and its actions on the argparse sub-parsers object."""
    data = commands.add_parser("data", help="validate, describe, split and synthesise data sets")
    actions = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")

    validate = actions.add_parser("validate", help="check a data file; list every problem")
    validate.add_argument(
        "file",
        metavar="FILE",
        help=".json, .jsonl, .csv or .parquet file, or hub:USER/NAME[:SPLIT]",
    )
    _add_load_options(validate)
    validate.set_defaults(run=run_validate)

    stats = actions.add_parser("stats", help="duplicates, conflicts, ceiling, distributions")
    stats.add_argument("file", metavar="FILE")
    _add_load_options(stats)
    stats.set_defaults(run=run_stats)

    split = actions.add_parser("split", help="leak-free train/val/test split by note text")
    split.add_argument("file", metavar="FILE")
    split.add_argument("--out", required=True, metavar="DIR", help="folder for train/val/test.json")
    split.add_argument("--val", default="0.15", help="share of unique notes for validation")
    split.add_argument("--test", default="0", help="share of unique notes for test")
    split.add_argument("--seed", default="0", help="random seed (same seed, same split)")
    _add_load_options(split)
    split.set_defaults(run=run_split)

    leakage = actions.add_parser("leakage", help="how many notes of OTHER occur in TRAIN")
    leakage.add_argument("train", metavar="TRAIN")
    leakage.add_argument("other", metavar="OTHER", help="validation or test file")
    _add_load_options(leakage)
    leakage.set_defaults(run=run_leakage)

    synth = actions.add_parser("synth", help="write a synthetic data set (train/val/notes.json)")
    synth.add_argument("--out", required=True, metavar="DIR")
    synth.add_argument("--n", default="1600", help="number of notes")
    synth.add_argument("--seed", default="0")
    synth.add_argument("--val", default="0.15", help="share for validation")
    synth.add_argument("--test", default="0", help="share for test (writes test.json when > 0)")
    synth.add_argument(
        "--style",
        default="mixed",
        choices=("mixed", "source-like", "free"),
        help="mixed: the bundled examples (template + free text); source-like: the real "
        "source's shape (few template notes, many copies, ~10%% conflicting labels); "
        "free: free text only",
    )
    synth.add_argument("--json", action="store_true", help="print JSON")
    synth.set_defaults(run=run_synth)


def _add_load_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON")
    parser.add_argument(
        "--skip-bad-rows", action="store_true", help="drop rows with problems instead of failing"
    )
    parser.add_argument(
        "--catalogue", metavar="FILE", default=None, help="extra catalogue JSON (more codes/names)"
    )


def _load(args: argparse.Namespace, path: str) -> LoadResult:
    catalogue = load_catalogue(args.catalogue) if args.catalogue else None
    on_error = "skip" if args.skip_bad_rows else "reject"
    return load_dataset_file(path, on_error=on_error, catalogue=catalogue)


def _number(value: str, flag: str, kind: type) -> int | float:
    try:
        return kind(value)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise VetLLMError(f"{flag}: got {value!r}; give {noun}") from None


def _print_json(payload: object) -> None:
    print(json.dumps(payload, indent=2, ensure_ascii=False))


def run_validate(args: argparse.Namespace) -> int:
    try:
        result = _load(args, args.file)
    except DataError as error:
        summary = str(error).split("\n", 1)[0]
        problems = [
            {"line": p.line, "field": p.field, "message": p.message} for p in error.problems
        ]
        if args.json:
            _print_json({"valid": False, "error": summary, "problems": problems})
        else:
            print(f"INVALID {error}")
        return 2
    if args.json:
        _print_json({"valid": not result.problems, **result.to_dict()})
    else:
        state = "VALID" if not result.problems else "PROBLEMS"
        print(f"{state} {result.source}: {len(result.records):,} usable records ({result.format})")
        for notice in result.notices:
            print(f"  note: {notice}")
        if result.problems:
            print(f"  {result.skipped_rows:,} row(s) skipped:")
            for problem in result.problems:
                print(f"  - {problem}")
    return 0 if not result.problems else 2


def run_stats(args: argparse.Namespace) -> int:
    result = _load(args, args.file)
    catalogue = load_catalogue(args.catalogue) if args.catalogue else None
    stats = dataset_stats(result.records, catalogue)
    if args.json:
        _print_json({**stats.to_dict(), "load": result.to_dict()})
    else:
        print(stats.to_markdown(), end="")
        if result.problems:
            print(f"\n({result.skipped_rows:,} bad row(s) skipped; see `vetllm data validate`)")
    return 0


def run_split(args: argparse.Namespace) -> int:
    val = _number(args.val, "--val", float)
    test = _number(args.test, "--test", float)
    seed = _number(args.seed, "--seed", int)
    result = _load(args, args.file)
    split = split_by_note(result.records, val_fraction=val, test_fraction=test, seed=seed)
    written = write_split(split, args.out)
    summary = split.to_dict()
    summary["files"] = {part: path.name for part, path in written.items()}
    if args.json:
        _print_json(summary)
        return 0
    for part in written:
        info = summary[part]
        leak = f", leakage {100 * info['leakage']:.1f}%" if "leakage" in info else ""
        print(
            f"{part + '.json':<11} {info['records']:>6,} records  {info['unique_notes']:>6,} "
            f"unique notes{leak}"
        )
        if part != "train" and info["labels_not_in_train"]:
            print(f"  labels never seen in train: {', '.join(info['labels_not_in_train'])}")
    print(f"written to {args.out} (seed {seed})")
    return 0


def run_leakage(args: argparse.Namespace) -> int:
    train = _load(args, args.train).records
    other = _load(args, args.other).records
    report = leakage_report(train, other)
    if args.json:
        _print_json(report.to_dict())
    else:
        print(report.to_text())
    return 0


def run_synth(args: argparse.Namespace) -> int:
    from vetllm.data.synth import write_synthetic_dataset

    n = _number(args.n, "--n", int)
    seed = _number(args.seed, "--seed", int)
    val = _number(args.val, "--val", float)
    test = _number(args.test, "--test", float)
    summary = write_synthetic_dataset(
        args.out, n=n, seed=seed, val_fraction=val, style=args.style, test_fraction=test
    )
    if args.json:
        _print_json(summary)
    else:
        for key, value in summary.items():
            if key != "files":
                print(f"{key}: {value}")
        print(f"written to {args.out}")
    return 0
