"""CLI for using a trained run: `vetllm predict`, `vetllm evaluate`, `vetllm bench`.

`--json` output is a contract for other tools: predict -> a list of the app's API dicts
(`codes`, `raw_output`, `repairs`, `unknown_codes`, `decoding`, `abstained`, `reason`,
`confidence`); evaluate -> metrics.json
(`n`, `strict_accuracy`, `lenient_accuracy`, `format_valid_rate`, `micro_f1`, `macro_f1`,
`baselines`, ...); bench -> the benchmark dict. Note text is never echoed: predictions are
reported by note number.
"""

from __future__ import annotations

import argparse
import json
import sys

from vetllm.calibration import DECODINGS
from vetllm.cli.batch_commands import add_file_arguments, code_file_command
from vetllm.errors import VetLLMError


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
    predict = commands.add_parser("predict", help="SNOMED-CT codes for clinical notes")
    predict.add_argument(
        "--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a completed run"
    )
    predict.add_argument(
        "notes", metavar="TEXT", nargs="*", help="one or more notes; '-' reads one note per line"
    )
    _add_decoding(predict)
    add_file_arguments(predict)
    predict.set_defaults(run=predict_command)

    evaluate = commands.add_parser("evaluate", help="score a run on a data set (writes eval/)")
    evaluate.add_argument(
        "--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a completed run"
    )
    evaluate.add_argument(
        "--data",
        required=True,
        metavar="PATH",
        help="JSON/JSONL/CSV/Parquet file, hub:USER/NAME[:SPLIT] or 'bundled'",
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
    bench.add_argument(
        "--steps", type=int, default=None, help="training steps to time (30; 12 with --gpu)"
    )
    bench.add_argument("--notes", type=int, default=64, help="notes per prediction timing")
    bench.add_argument(
        "--base-model", default=None, help="CUDA only: base for the source-vs-default comparison"
    )
    bench.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    bench.add_argument(
        "--gpu",
        action="store_true",
        help="source recipe vs fast path and 4-bit vs merged prediction on a random-weight model",
    )
    bench.add_argument(
        "--shape", default="llama-7b", help="with --gpu: llama-7b (default), small or tiny (CPU)"
    )
    bench.add_argument(
        "--save", metavar="PATH", default=None, help="with --gpu: also write JSON after each part"
    )
    bench.set_defaults(run=bench_command)
    from vetllm.cli.engine_commands import add_bench_accuracy

    add_bench_accuracy(bench)  # `vetllm bench accuracy`


def _add_decoding(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--decoding", choices=DECODINGS, default="free")
    parser.add_argument("--batch-size", type=int, default=16, help="notes per forward pass")
    parser.add_argument("--json", action="store_true", help="print JSON (for other tools)")


def _print_json(value) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False))


def predict_command(args: argparse.Namespace) -> int:
    from vetllm.data.validation import MAX_PREDICT_NOTE_CHARS
    from vetllm.engine.predict import Predictor, validate_notes

    if args.file or args.out:
        return code_file_command(args)
    if not args.notes:
        raise VetLLMError(
            "predict: give one or more notes, '-' for stdin, or --file FILE --out OUT"
        )
    notes = list(args.notes)
    if notes == ["-"]:
        notes = [line for line in sys.stdin.read().splitlines() if line.strip()]
    notes = validate_notes(notes, MAX_PREDICT_NOTE_CHARS)  # the app's rule; before the model loads
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
        if answer.get("abstained"):
            print(f"  abstained: {answer['reason']}")
        elif not answer["codes"]:
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
    if metrics.get("accuracy_on_answered") is not None:
        print(
            f"  {'coverage':<20} {metrics['coverage']:.1%} (abstained: {metrics['abstained']})\n"
            f"  {'accuracy_on_answered':<20} {metrics['accuracy_on_answered']:.1%}"
        )
    for name, result in metrics.get("baselines", {}).items():
        print(f"  baseline {name:<20} {result['accuracy']:.1%}")
    if metrics.get("baseline_verdict"):
        print(metrics["baseline_verdict"]["sentence"])
    for warning in metrics.get("warnings", []):
        print(f"warning: {warning}")
    print(
        "files written to "
        + (args.out or "RUN_DIR/eval")
        + ": metrics.json, predictions.jsonl, summary.md"
    )
    return 0


def bench_command(args: argparse.Namespace) -> int:
    from vetllm.engine.bench import format_bench, run_bench

    if args.gpu:
        return _gpu_bench_command(args)
    result = run_bench(
        run_dir=args.run_dir,
        steps=args.steps or 30,
        n_notes=args.notes,
        base_model=args.base_model,
    )
    if args.json:
        _print_json(result)
    else:
        print(format_bench(result))
    return 0


def _gpu_bench_command(args: argparse.Namespace) -> int:
    from vetllm.engine.gpu_bench import format_gpu_bench, run_gpu_bench

    # 12 steps per variant: the first is warm-up, 11 time a 7B step well enough.
    result = run_gpu_bench(
        shape=args.shape, steps=args.steps or 12, n_batch=args.notes, save_to=args.save
    )
    if args.json:
        _print_json(result)
    else:
        print(format_gpu_bench(result))
    return 0
