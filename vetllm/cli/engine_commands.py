"""CLI: `vetllm train` -- train in this process (blocking), printing progress, into a run folder.

`vetllm train --config PATH [--data PATH] [--val-data PATH] [--output RUN_DIR] [--resume]
[--set KEY=VALUE ...] [--seeds 0,1,2]`. Without --data the config's own data is used (the
bundled examples for configs/tiny-cpu.yaml). --seeds trains one run per seed
(vetllm.engine.seeds). The default output is runs/<config name>-<UTC timestamp>. The app and
`vetllm runs launch` start this same command in a separate process. Under `accelerate launch` or
`torchrun` every process runs it and the Trainer's DDP splits the batches.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from vetllm.errors import DataError, VetLLMError
from vetllm.runs.state import RunState, RunStatus


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
    train = commands.add_parser(
        "train",
        help="fine-tune a model as a YAML config says (blocks until done)",
        description="Train a model into a run directory; `vetllm config presets` lists presets.",
    )
    train.add_argument(
        "--config",
        type=Path,
        required=True,
        metavar="PRESET_OR_FILE",
        help="a packaged preset (e.g. tiny-cpu) or a YAML config file",
    )
    train.add_argument(
        "--data",
        metavar="PATH",
        help="training file (JSON/JSONL/CSV/Parquet) or hub:USER/NAME[:SPLIT]",
    )
    train.add_argument("--val-data", metavar="PATH", help="validation file; 'none' for none")
    train.add_argument("--output", type=Path, metavar="RUN_DIR", help="default: runs/NAME-TIME")
    train.add_argument(
        "--resume", action="store_true", help="continue from the last complete checkpoint"
    )
    train.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        dest="overrides",
        help="override a config field, e.g. --set epochs=2 (repeatable)",
    )
    train.add_argument(
        "--seeds",
        metavar="0,1,2",
        help="one run per seed (RUN_DIR-seedN) and RUN_DIR-seeds.json: accuracy mean and minimum",
    )
    train.set_defaults(run=_train)


def add_bench_accuracy(bench: argparse.ArgumentParser) -> None:
    """Register `vetllm bench accuracy` under the `bench` command (see engine/accuracy_bench)."""
    actions = bench.add_subparsers(dest="bench_command", metavar="ACTION")
    accuracy = actions.add_parser(
        "accuracy",
        help="train the CPU default on several data sets and seeds; model vs bag-of-words",
    )
    accuracy.add_argument("--config", type=Path, default=None, help="default: tiny-cpu.yaml")
    accuracy.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    accuracy.add_argument(
        "--datasets",
        default="bundled,source-like,free-text,template-to-free",
        help="comma-separated: bundled, source-like, free-text, template-to-free",
    )
    accuracy.add_argument(
        "--data-seeds",
        "--data-seed",
        default="1",
        help="seeds of the generated data sets, comma-separated (several: other splits too)",
    )
    accuracy.add_argument("--work-dir", type=Path, default=None, help="keep data and runs here")
    accuracy.add_argument("--jobs", default="1", help="runs trained at once (processes)")
    accuracy.add_argument(
        "--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides"
    )
    accuracy.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    accuracy.set_defaults(run=_bench_accuracy)


def _bench_accuracy(args: argparse.Namespace) -> int:
    import json

    from vetllm.engine.accuracy_bench import (
        DEFAULT_CONFIG,
        format_accuracy_bench,
        run_accuracy_bench,
    )

    try:
        seeds = tuple(int(part) for part in args.seeds.split(",") if part.strip())
        data_seeds = tuple(int(part) for part in args.data_seeds.split(",") if part.strip())
        jobs = int(args.jobs)
    except ValueError:
        raise VetLLMError(
            f"--seeds / --data-seeds / --jobs: got {args.seeds!r} / {args.data_seeds!r} / "
            f"{args.jobs!r}; "
            "give whole numbers, e.g. --seeds 0,1,2"
        ) from None
    result = run_accuracy_bench(
        config=args.config or DEFAULT_CONFIG,
        datasets=tuple(part.strip() for part in args.datasets.split(",") if part.strip()),
        seeds=seeds,
        work_dir=args.work_dir,
        overrides=tuple(args.overrides),
        data_seeds=data_seeds,
        jobs=jobs,
    )
    print(json.dumps(result, indent=2) if args.json else format_accuracy_bench(result))
    return 0


def _overrides(args: argparse.Namespace) -> list[str]:
    extra = list(args.overrides)
    if args.data:
        extra.append(f"data={_absolute(args.data, '--data')}")
    if args.val_data:
        off = args.val_data.lower() in ("none", "null")
        value = args.val_data if off else _absolute(args.val_data, "--val-data")
        extra.append(f"val_data={value}")
    return extra


def _absolute(path: str, flag: str) -> str:
    """A --data / --val-data value as the config stores it: an absolute file path, or a hub:
    value of the right form (checked here, without the network, before a run folder exists;
    the dataset itself is loaded, or refused, when training starts)."""
    from vetllm.data.hf_datasets import is_hub_source, parse_hub_source

    if is_hub_source(path):
        try:
            parse_hub_source(path)
        except DataError as error:
            raise VetLLMError(f"{flag}: {error}") from None
        return path
    if not Path(path).is_file():
        raise VetLLMError(f"data file {Path(path).name!r} not found; check the path")
    return str(Path(path).resolve())


def default_output(name: str) -> Path:
    """runs/<name>-<UTC timestamp> inside VETLLM_RUNS_DIR (default ./runs)."""
    from vetllm.runs.directory import default_runs_dir, new_run_folder_name

    return default_runs_dir() / new_run_folder_name(name)


def _check_output(run_dir: Path, resume: bool) -> None:
    from vetllm.runs.directory import RunDirectory

    state = RunDirectory(run_dir).read_status().state
    if resume and not (run_dir / "config.yaml").is_file():
        raise VetLLMError(f"--resume: {run_dir.name} holds no run to resume; drop --resume")
    if not resume and state not in (RunState.UNKNOWN, RunState.QUEUED):
        raise VetLLMError(
            f"--output: {run_dir.name} already holds a run (state {state}); choose another "
            "folder, or add --resume to continue it"
        )


def _train(args: argparse.Namespace) -> int:
    from vetllm.config import load_config
    from vetllm.engine.training import is_main_process, train

    cfg = load_config(args.config, _overrides(args))
    if args.output is None and int(os.environ.get("WORLD_SIZE", "1")) > 1:
        # Each process would pick its own timestamped folder; they must share one.
        raise VetLLMError("--output RUN_DIR is required when several processes train together")
    run_dir = args.output or default_output(cfg.name)
    if is_main_process() and not args.seeds:  # other ranks would see rank 0's "running" status
        from vetllm.runs.lock import acquire_training_lock

        acquire_training_lock(run_dir)  # the app's lock: one training per runs folder
        _check_output(run_dir, args.resume)

    if args.seeds:
        return _train_seeds(cfg, run_dir, args)
    if is_main_process():
        print(f"training {cfg.name} ({cfg.base_model}, {cfg.method}) into {run_dir}", flush=True)
    status = RunStatus.from_dict(train(cfg, run_dir, resume=args.resume))
    if is_main_process():
        _print_outcome(status, run_dir)
    return 0 if status.state in (RunState.COMPLETED, RunState.STOPPED) else 1


def _print_outcome(status: RunStatus, run_dir: Path) -> None:
    state = status.state
    metrics = status.final_metrics or {}
    line = f"{state}: {run_dir}"
    if "lenient_accuracy" in metrics:
        line += (
            f" | validation strict {metrics['strict_accuracy']:.3f}, "
            f"lenient {metrics['lenient_accuracy']:.3f} (n={metrics.get('n')})"
        )
    if status.wall_s is not None:
        line += f" | {status.wall_s:.1f} s"
    if state == RunState.STOPPED:
        config = run_dir / "config.yaml"
        line += f" | resume: vetllm train --config {config} --output {run_dir} --resume"
    print(line, flush=True)


def _train_seeds(cfg, run_dir: Path, args: argparse.Namespace) -> int:
    """`--seeds`: one run per seed, then the mean and minimum of their validation accuracy."""
    from vetllm.engine.seeds import describe_summary, parse_seeds, seed_run_dir, train_seeds
    from vetllm.engine.training import is_main_process

    seeds = parse_seeds(args.seeds)
    if is_main_process() and not args.resume:
        for seed in seeds:
            _check_output(seed_run_dir(run_dir, seed), resume=False)
    if is_main_process():
        print(f"training {cfg.name} with seeds {seeds} into {run_dir}-seedN", flush=True)
    summary = train_seeds(cfg, run_dir, seeds, resume=args.resume)
    if is_main_process():
        for result in summary["seeds"]:
            print(f"seed {result['seed']}: {result['state']} {result['run']}", flush=True)
        print(f"{describe_summary(summary)} | {summary.get('path')}", flush=True)
    ended_well = (RunState.COMPLETED, RunState.STOPPED)
    return 0 if all(r["state"] in ended_well for r in summary["seeds"]) else 1
