"""CLI: `vetllm calibrate --run R`: fit a run's confidence calibration and abstain threshold.

Writes RUN_DIR/calibration.json (vetllm.engine.calibrate), which `vetllm predict`, `vetllm
evaluate` and the app apply from then on. Prints expected calibration error before and after
and the accuracy-vs-coverage table; `--json` prints the file's content.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from vetllm.calibration import DECODINGS


def add_commands(commands) -> None:
    """Register `calibrate` on the argparse sub-parsers object."""
    calibrate = commands.add_parser(
        "calibrate", help="fit confidence calibration (and an abstain threshold) on validation"
    )
    calibrate.add_argument(
        "--run", dest="run_dir", required=True, metavar="RUN_DIR", help="a completed run"
    )
    calibrate.add_argument(
        "--data", default=None, metavar="PATH", help="validation file (default: the run's)"
    )
    calibrate.add_argument(
        "--target-accuracy",
        type=float,
        default=None,
        metavar="X",
        help="abstain below the confidence that reaches accuracy X on validation (e.g. 0.95)",
    )
    calibrate.add_argument("--decoding", choices=("both", *DECODINGS), default="both")
    calibrate.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    calibrate.set_defaults(run=calibrate_command)


def calibrate_command(args: argparse.Namespace) -> int:
    from vetllm.engine.calibrate import calibrate_run
    from vetllm.engine.evaluate import _run_config, load_records

    records = None
    if args.data:
        from vetllm.catalogue import load_catalogue

        cfg = _run_config(Path(args.run_dir))
        catalogue = load_catalogue(cfg.catalogue if cfg else None)
        records = load_records(args.data, catalogue, "validation")[0]
    decodings = DECODINGS if args.decoding == "both" else (args.decoding,)
    result = calibrate_run(
        args.run_dir, records, target_accuracy=args.target_accuracy, decodings=decodings
    )
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"{result['n_notes']} validation notes ({result['n_distinct']} distinct)")
    for decoding, report in result["decodings"].items():
        print(
            f"{decoding}: accuracy {report['accuracy']:.1%}, temperature "
            f"{report['temperature']:.3f}, ECE {report['ece_before']:.3f} -> "
            f"{report['ece_after_cross_fitted']:.3f} (cross-fitted by note halves)"
        )
        for row in report["selective"]:
            print(
                f"  coverage {row['coverage']:6.1%}  accuracy {row['accuracy']:6.1%}  "
                f"confidence >= {row['threshold']:.3f}"
            )
        chosen = report.get("threshold")
        if chosen and chosen["threshold"] is not None:
            print(
                f"  threshold {chosen['threshold']:.3f}: coverage {chosen['coverage']:.1%}, "
                f"accuracy {chosen['accuracy']:.1%} on validation"
            )
        elif chosen:
            print("  no threshold reaches the target accuracy: confidence abstention stays off")
    for warning in result["warnings"]:
        print(f"warning: {warning}")
    print(f"written to {args.run_dir}/calibration.json")
    return 0
