"""CLI for training configs: `vetllm config show|validate|presets`.

`config show [--config PRESET_OR_FILE] [--set KEY=VALUE ...]` prints the resolved config (every
field, defaults filled in, overrides applied) as sectioned YAML (`model:`, `data:`, `lora:`,
`optimisation:`, ...) that `vetllm train --config` reads back. `config validate FILE [FILE ...]`
checks files (sectioned, or flat as older run folders hold them) without training and reports every
problem of every file at once: wrong types, bad values, unknown keys and keys in the wrong section
(exit 2 when any file has one). `config presets` lists the packaged presets.
"""

from __future__ import annotations

import argparse

from vetllm.errors import VetLLMError


def add_commands(commands) -> None:
    """Register this group's sub-commands on the argparse sub-parsers object."""
    group = commands.add_parser("config", help="show, validate and list training configs")
    actions = group.add_subparsers(dest="config_command", required=True, metavar="ACTION")
    show = actions.add_parser("show", help="print the resolved config as sectioned YAML")
    show.add_argument(
        "--config",
        default="tiny-cpu",
        metavar="PRESET_OR_FILE",
        help="a packaged preset name or a YAML file (default: tiny-cpu)",
    )
    show.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a field, e.g. --set epochs=2 or --set optimisation.epochs=2 (repeatable)",
    )
    show.set_defaults(run=run_show)
    validate = actions.add_parser("validate", help="check config files; every problem at once")
    validate.add_argument("files", metavar="FILE", nargs="+", help="YAML configs (or presets)")
    validate.set_defaults(run=run_validate)
    presets = actions.add_parser("presets", help="the packaged presets, the CPU default first")
    presets.set_defaults(run=run_presets)


def run_show(args: argparse.Namespace) -> int:
    from vetllm.config import load_config

    print(load_config(args.config, args.set).yaml_text(), end="")
    return 0


def run_validate(args: argparse.Namespace) -> int:
    from vetllm.config import load_config

    failures = []
    for item in args.files:
        try:
            cfg = load_config(item)
        except VetLLMError as error:
            failures.append(f"{item}: {error}")
            continue
        print(f"{item}: ok ({cfg.name}: {cfg.base_model}, {cfg.method})")
    if failures:
        raise VetLLMError(
            f"{len(failures)} of {len(args.files)} config(s) invalid:\n" + "\n".join(failures)
        )
    return 0


def run_presets(args: argparse.Namespace) -> int:
    from vetllm.resources import PRESETS_DIR, preset_names

    for name in preset_names():
        print(f"{name}\t{PRESETS_DIR / (name + '.yaml')}")
    return 0
