"""CLI for codes and scores: `vetllm postprocess`, `codes check|list`, `score`, `baselines`.

Other tools parse the `--json` output of these commands, so its field names are a contract:
postprocess -> `codes`, `unknown_codes`, `repairs`; codes check -> a list of objects with `code`
and `valid`; score -> `n`, `strict_accuracy`, `lenient_accuracy`, `format_valid_rate`,
`micro_f1`, `macro_f1`, `per_code`. Without `--json` the same facts print as readable text.
"""

from __future__ import annotations

import argparse
import json
import sys

from vetllm.catalogue import check_code, load_catalogue


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
    parser = commands.add_parser(
        "postprocess", help="read catalogue codes from a raw model output (repairs listed)"
    )
    parser.add_argument("text", metavar="TEXT", help="the raw generated text; '-' reads stdin")
    _add_common_options(parser)
    parser.set_defaults(run=run_postprocess)

    codes = commands.add_parser("codes", help="check SNOMED CT codes; list the catalogue")
    actions = codes.add_subparsers(dest="codes_command", required=True, metavar="ACTION")
    check = actions.add_parser("check", help="check codes: digits, partition, Verhoeff digit")
    check.add_argument("codes", metavar="CODE", nargs="+", help="codes (or disease names)")
    _add_common_options(check)
    check.set_defaults(run=run_codes_check)
    listing = actions.add_parser("list", help="the disease catalogue with code validity")
    _add_common_options(listing)
    listing.set_defaults(run=run_codes_list)

    score = commands.add_parser(
        "score", help="strict/lenient accuracy, F1 and per-code table of a predictions JSONL"
    )
    score.add_argument(
        "predictions",
        metavar="PREDICTIONS.jsonl",
        help="one JSON object a line with 'output' (raw text) and 'snomed_codes' (gold)",
    )
    score.add_argument("--items", action="store_true", help="with --json, add per-line results")
    _add_common_options(score)
    score.set_defaults(run=run_score)
    _add_baselines_command(commands)


def _add_baselines_command(commands) -> None:
    parser = commands.add_parser(
        "baselines", help="majority, majority-per-species and bag-of-words accuracy on a split"
    )
    parser.add_argument(
        "train",
        metavar="TRAIN",
        help="training data (JSON, JSONL, CSV, Parquet or hub:USER/NAME[:SPLIT])",
    )
    parser.add_argument(
        "--test", metavar="FILE", help="test data; without it TRAIN is split by note text"
    )
    parser.add_argument(
        "--test-fraction", type=float, default=0.2, help="share of notes held out (default 0.2)"
    )
    parser.add_argument("--seed", type=int, default=0, help="split and classifier seed")
    parser.add_argument(
        "--predictions", action="store_true", help="with --json, add each baseline's answers"
    )
    _add_common_options(parser)
    parser.set_defaults(run=run_baselines_command)


def _add_common_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    parser.add_argument(
        "--catalogue", metavar="FILE", default=None, help="JSON file extending the catalogue"
    )


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def run_postprocess(args: argparse.Namespace) -> int:
    from vetllm.postprocess import postprocess

    text = sys.stdin.read() if args.text == "-" else args.text
    result = postprocess(text, load_catalogue(args.catalogue))
    if args.json:
        _print_json(result.to_dict())
        return 0
    print("codes:         " + (", ".join(result.codes) or "(none)"))
    print(f"answer span:   {result.answer_span!r}")
    print("strict format: " + ("yes" if result.format_valid else "no"))
    if result.unknown_codes:
        print("unknown:       " + ", ".join(result.unknown_codes))
    for line in result.repairs:
        print(f"repaired:      {line}")
    for line in result.notes:
        print(f"note:          {line}")
    return 0


def run_codes_check(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(args.catalogue)
    verdicts = [check_code(code, catalogue) for code in args.codes]
    if args.json:
        _print_json(verdicts)
        return 0
    for verdict in verdicts:
        status = "valid" if verdict["valid"] else "INVALID"
        line = f"{verdict['code']}: {status}"
        if verdict.get("reason"):
            line += f" ({verdict['reason']})"
        if verdict.get("suggested_for"):
            line += f"; the suggested code for {verdict['disease']} ({verdict['suggested_for']})"
        elif verdict.get("disease"):
            line += f"; catalogue: {verdict['disease']} ({verdict['catalogue_label']})"
        if verdict.get("suggested_code"):
            line += f"; suggested code {verdict['suggested_code']} (verify in a SNOMED release)"
        print(line)
    return 0


def run_codes_list(args: argparse.Namespace) -> int:
    catalogue = load_catalogue(args.catalogue)
    rows = [disease.to_dict() for disease in catalogue.diseases]
    if args.json:
        _print_json(rows)
        return 0
    print(f"catalogue {catalogue.version}: {len(rows)} diseases")
    for row in rows:
        valid = {True: "valid", False: "INVALID", None: "no code"}[row["valid_sctid"]]
        line = f"{row['label']:<22} {valid:<8} {row['name']}"
        if row["valid_sctid"] is False:
            line += f"  [{row['sctid_problem']}]"
        if row["suggested_code"]:
            line += f"  suggested: {row['suggested_code']}"
        print(line)
    return 0


def run_score(args: argparse.Namespace) -> int:
    from vetllm.metrics import load_prediction_items, score_predictions

    catalogue = load_catalogue(args.catalogue)
    items = load_prediction_items(args.predictions, catalogue)
    scores = score_predictions(items, catalogue)
    if args.json:
        _print_json(scores.to_dict(include_items=args.items))
        return 0
    print(scores.to_markdown(), end="")
    return 0


def run_baselines_command(args: argparse.Namespace) -> int:
    from vetllm.baselines import format_baselines_markdown, run_baselines
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.split import split_by_note

    catalogue = load_catalogue(args.catalogue)
    train = load_dataset_file(args.train, catalogue=catalogue).records
    if args.test:
        test = load_dataset_file(args.test, catalogue=catalogue).records
        how = "the given test file"
    else:
        split = split_by_note(
            train, val_fraction=0.0, test_fraction=args.test_fraction, seed=args.seed
        )
        train, test = split.train, split.test
        how = f"{args.test_fraction:.0%} of the note texts held out (seed {args.seed})"
    results = run_baselines(train, test, seed=args.seed)
    if args.json:
        if not args.predictions:
            results = {
                k: {f: v for f, v in r.items() if f != "predictions"} for k, r in results.items()
            }
        _print_json(
            {"n_train": len(train), "n_test": len(test), "split": how, "baselines": results}
        )
        return 0
    print(f"{len(train)} training notes, {len(test)} test notes ({how}).\n")
    print(format_baselines_markdown(results), end="")
    return 0
