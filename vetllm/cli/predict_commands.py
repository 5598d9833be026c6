"""CLI for using a trained run: `vetllm predict`, `vetllm evaluate`, `vetllm bench`.

`--json` output is a contract for other tools: predict -> a list of the app's API dicts
(`codes`, `raw_output`, `repairs`, `unknown_codes`, `decoding`); evaluate -> metrics.json
(`n`, `strict_accuracy`, `lenient_accuracy`, `format_valid_rate`, `micro_f1`, `macro_f1`,
`baselines`, ...); bench -> the benchmark dict. Note text is never echoed: predictions are
reported by note number.
"""

from __future__ import annotations

import argparse
import json
import sys


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
    predict = commands.add_parser("predict", help="SNOMED-CT codes for clinical notes")
    predict.add_argument(
        "--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a completed run"
    )
    predict.add_argument(
        "notes", metavar="TEXT", nargs="+", help="one or more notes; '-' reads one note per line"
    )
    _add_decoding(predict)
    predict.set_defaults(run=predict_command)

    evaluate = commands.add_parser("evaluate", help="score a run on a data set (writes eval/)")
    evaluate.add_argument(
        "--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a completed run"
    )
    evaluate.add_argument(
        "--data", required=True, metavar="PATH", help="JSON/JSONL/CSV file, or 'bundled'"
    )
    evaluate.add_argument("--out", metavar="DIR", default=None, help="default: RUN_DIR/eval")
    evaluate.add_argument(
        "--no-baselines", action="store_true", help="skip the baselines beside the model"
    )
    _add_decoding(evaluate)
    evaluate.set_defaults(run=evaluate_command)

    bench = commands.add_parser("bench", help="time training and prediction throughput")
    bench.add_argument(
        "--run", dest="run_dir", metavar="RUN_DIR", default=None, help="predict with this run"
    )
    bench.add_argument("--steps", type=int, default=30, help="training steps to time")
    bench.add_argument("--notes", type=int, default=64, help="notes per prediction timing")
    bench.add_argument(
        "--base-model", default=None, help="CUDA only: base for the source-vs-default comparison"
    )
    bench.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    bench.set_defaults(run=bench_command)
    from vetllm.cli.engine_commands import add_bench_accuracy

    add_bench_accuracy(bench)  # `vetllm bench accuracy`


def _add_decoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoding", choices=("free", "constrained"), default="free")
    parser.add_argument("--batch-size", type=int, default=16, help="notes per forward pass")
    parser.add_argument("--json", action="store_true", help="print JSON (for other tools)")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def predict_command(args: argparse.Namespace) -> int:
    from vetllm.engine.predict import Predictor

    notes = list(args.notes)
    if notes == ["-"]:
        notes = [line for line in sys.stdin.read().splitlines() if line.strip()]
    predictor = Predictor.from_run(args.run_dir)
    predictions = predictor.predict(notes, decoding=args.decoding, batch_size=args.batch_size)
    answers = [p.to_api_dict(predictor.catalogue) for p in predictions]
    if args.json:
        _print_json(answers)
        return 0
    for number, answer in enumerate(answers, start=1):
        print(f"note {number} ({answer['decoding']}):")
        for code in answer["codes"]:
            flag = "" if code["valid_sctid"] else f"  [{code['sctid_problem']}]"
            print(f"  {code['code']}  {code['name']}  confidence {code['confidence']}{flag}")
        if not answer["codes"]:
            print("  no catalogue code found")
        print(f"  raw output: {answer['raw_output']!r}")
        for line in answer["repairs"] + answer["warnings"]:
            print(f"  note: {line}")
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from vetllm.engine.evaluate import evaluate_run

    metrics = evaluate_run(
        args.run_dir,
        args.data,
        decoding=args.decoding,
        out_dir=args.out,
        batch_size=args.batch_size,
        with_baselines=not args.no_baselines,
    )
    if args.json:
        _print_json(metrics)
        return 0
    print(f"{metrics['n']} notes, {metrics['decoding']} decoding, {metrics['notes_per_s']} notes/s")
    for key in ("strict_accuracy", "lenient_accuracy", "format_valid_rate"):
        print(f"  {key:<20} {metrics[key]:.1%}")
    print(
        f"  {'micro_f1':<20} {metrics['micro_f1']:.3f}\n  {'macro_f1':<20} {metrics['macro_f1']:.3f}"
    )
    for name, result in metrics.get("baselines", {}).items():
        print(f"  baseline {name:<20} {result['accuracy']:.1%}")
    print(
        "files written to "
        + (args.out or "RUN_DIR/eval")
        + ": metrics.json, predictions.jsonl, summary.md"
    )
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from vetllm.engine.bench import format_bench, run_bench

    result = run_bench(
        run_dir=args.run_dir, steps=args.steps, n_notes=args.notes, base_model=args.base_model
    )
    if args.json:
        _print_json(result)
    else:
        print(format_bench(result))
    return 0
