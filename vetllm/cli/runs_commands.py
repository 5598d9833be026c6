"""CLI for training runs: `vetllm runs list|status|stop|resume|launch` and `vetllm report`.

Each command is a thin call into vetllm.runs (launcher, directory; no torch import):
training itself always happens in the separate process those functions start.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from vetllm.errors import VetLLMError
from vetllm.runs.state import RunState, RunStatus


def add_commands(commands) -> None:
    """Register `runs` (with its sub-commands) and `report` on the argparse sub-parsers object."""
    from vetllm.runs.directory import default_runs_dir

    runs = commands.add_parser("runs", help="list, inspect, stop, resume and launch training runs")
    sub = runs.add_subparsers(dest="runs_command", required=True, metavar="ACTION")

    listing = sub.add_parser("list", help="every run in a runs folder, newest first")
    listing.add_argument("--runs-dir", type=Path, default=default_runs_dir())
    listing.add_argument("--json", action="store_true", help="print JSON instead of a table")
    listing.set_defaults(run=_list)

    status = sub.add_parser("status", help="state, progress and ETA of one run")
    status.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    status.add_argument("--json", action="store_true")
    status.set_defaults(run=_status)

    stop = sub.add_parser("stop", help="checkpoint and stop a run (kill after --timeout)")
    stop.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    stop.add_argument("--timeout", type=float, default=30.0, metavar="S", help="seconds")
    stop.set_defaults(run=_stop)

    resume = sub.add_parser("resume", help="continue a run from its last complete checkpoint")
    resume.add_argument("run_dir", type=Path, metavar="RUN_DIR")
    resume.add_argument("--wait", action="store_true", help="follow progress until it ends")
    resume.set_defaults(run=_resume)

    launch = sub.add_parser("launch", help="start training in a separate process")
    launch.add_argument("--config", type=Path, required=True, metavar="PRESET_OR_FILE")
    launch.add_argument("--output", type=Path, metavar="RUN_DIR", help="default: runs/NAME-TIME")
    launch.add_argument("--runs-dir", type=Path, default=default_runs_dir())
    launch.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    launch.add_argument("--wait", action="store_true", help="follow progress until it ends")
    launch.set_defaults(run=_launch)

    report = commands.add_parser("report", help="(re)write RUN_DIR/report.md and print it")
    report.add_argument("--run", type=Path, required=True, metavar="RUN_DIR", dest="run_dir")
    report.set_defaults(run=_report)


def _require_run(path: Path):
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(path)
    if not run.exists():
        raise VetLLMError(
            f"RUN_DIR: '{path}' holds no run (no config.yaml or status.json); "
            "list runs with `vetllm runs list`"
        )
    return run


def _describe(status: dict[str, Any]) -> str:
    """One human line per run (a status record or a list_runs entry): state, steps, progress,
    ETA, then cause and remedy if any."""
    parts = [str(status.get("state", RunState.UNKNOWN.value))]
    if status.get("total_steps"):
        parts.append(f"step {status.get('step', 0)}/{status['total_steps']}")
    if status.get("progress") is not None:
        parts.append(f"{100 * float(status['progress']):.0f}%")
    if status.get("eta_s") is not None and status.get("state") == RunState.RUNNING:
        parts.append(f"ETA {_duration(status['eta_s'])}")
    if status.get("last_checkpoint"):
        parts.append(f"last checkpoint {status['last_checkpoint']}")
    line = ", ".join(parts)
    for key in ("message", "error", "remedy", "note"):
        if status.get(key):
            line += f"\n  {key}: {status[key]}"
    return line


def _duration(seconds: float) -> str:
    seconds = int(round(float(seconds)))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _list(args: argparse.Namespace) -> int:
    from vetllm.runs.launcher import list_runs

    runs = list_runs(args.runs_dir)
    if args.json:
        print(json.dumps(runs, indent=2))
    elif not runs:
        print(f"no runs in {args.runs_dir}")
    for entry in [] if args.json else runs:
        print(f"{entry['name']}: {_describe(entry)}")
    return 0


def _status(args: argparse.Namespace) -> int:
    from vetllm.runs.launcher import refresh_status

    run = _require_run(args.run_dir)
    status = refresh_status(run).to_dict()
    last = run.last_complete_checkpoint()
    status.setdefault("last_checkpoint", last.name if last else None)
    print(json.dumps(status, indent=2) if args.json else f"{run.name}: {_describe(status)}")
    return 0


def _stop(args: argparse.Namespace) -> int:
    from vetllm.runs.launcher import stop_run

    run = _require_run(args.run_dir)
    status = stop_run(run, timeout_s=args.timeout)
    print(f"{run.name}: {_describe(status.to_dict())}")
    return 0


def _resume(args: argparse.Namespace) -> int:
    from vetllm.runs.launcher import resume_run

    run = resume_run(_require_run(args.run_dir))
    print(f"resumed {run.name}; log: {run.log_path}")
    return _follow(run) if args.wait else 0


def _launch(args: argparse.Namespace) -> int:
    from vetllm.runs.launcher import launch_run

    output = args.output or args.runs_dir / _default_run_name(args.config, args.set)
    runs_root = args.runs_dir if args.output is None else None
    run = launch_run(args.config, output, runs_root=runs_root, overrides=args.set)
    print(f"launched {run.name} in {run.path}; log: {run.log_path}")
    return _follow(run) if args.wait else 0


def _default_run_name(config: Path, overrides: list[str]) -> str:
    from vetllm.config import load_config
    from vetllm.runs.directory import new_run_folder_name

    return new_run_folder_name(load_config(config, overrides).name or config.stem)


def _follow(run) -> int:
    """Print progress until the run ends; exit 0 only if it completed."""
    from vetllm.runs.launcher import wait_for_run

    shown: list[str] = []

    def show(status: RunStatus) -> None:
        if not status.active:
            return  # the final status is printed in full below
        line = _describe(status.to_dict()).splitlines()[0]
        if not shown or shown[-1] != line:
            shown.append(line)
            print(f"{run.name}: {line}", flush=True)

    final = wait_for_run(run, poll_s=2.0, on_update=show)
    print(f"{run.name}: {_describe(final.to_dict())}")
    return 0 if final.state == RunState.COMPLETED else 1


def _report(args: argparse.Namespace) -> int:
    run = _require_run(args.run_dir)
    text = render_run_report(run)
    print(text)
    return 0


def render_run_report(run) -> str:
    """Write RUN_DIR/report.md from metrics.jsonl and eval/metrics.json; return its text.

    The coverage plan and data statistics are added when the run's config and training data
    can still be read (the same report training writes at its end); otherwise they are left out
    with a note on stderr.
    """
    from vetllm.report import loss_history, run_report
    from vetllm.runs.directory import atomic_write_text

    if not loss_history(run.read_metrics()):
        raise VetLLMError(
            f"RUN_DIR: '{run.name}' has no loss in metrics.jsonl yet; wait for the first "
            "logging step"
        )
    text, left_out = run_report(run)
    if left_out:
        print(f"note: coverage and data statistics left out ({left_out})", file=sys.stderr)
    atomic_write_text(run.report_path, text)
    return text
