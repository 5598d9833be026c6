"""CLI for taking a model away: `vetllm export` (a loadable folder) and `vetllm push` (the Hub).

`export --run RUN_DIR --out DIR [--merge]` writes what `vetllm.engine.export.export_run`
describes; `push --run RUN_DIR --repo NAME` exports to a temporary folder and uploads it with
`huggingface_hub`, the model card included. Offline (HF_HUB_OFFLINE=1) `push` stops before any
network call and says how to go online.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile

from vetllm.errors import VetLLMError

OFFLINE_MESSAGE = (
    "push: the Hugging Face Hub is switched off here (HF_HUB_OFFLINE=1), so nothing was uploaded. "
    "Run `vetllm export --run RUN --out DIR` to get the folder, or unset HF_HUB_OFFLINE and log in "
    "with `huggingface-cli login` (or set HF_TOKEN) on a machine with internet access."
)


def add_commands(commands) -> None:
    """Register `export` and `push` on the argparse sub-parsers object."""
    export = commands.add_parser("export", help="a run's model as a transformers/peft folder")
    export.add_argument("--run", dest="run_dir", required=True, metavar="RUN_DIR")
    export.add_argument("--out", required=True, metavar="DIR", help="a new or empty folder")
    export.add_argument(
        "--merge", action="store_true", help="LoRA/QLoRA: merge the adapter into the base weights"
    )
    export.add_argument("--json", action="store_true", help="print JSON (for other tools)")
    export.set_defaults(run=export_command)

    push = commands.add_parser("push", help="upload a run's model and model card to the Hub")
    push.add_argument("--run", dest="run_dir", required=True, metavar="RUN_DIR")
    push.add_argument("--repo", required=True, metavar="NAME", help="e.g. you/vetllm-tiny")
    push.add_argument("--private", action="store_true", help="create the repository private")
    push.add_argument("--merge", action="store_true", help="upload merged weights (LoRA/QLoRA)")
    push.set_defaults(run=push_command)


def hub_is_offline() -> bool:
    """True when HF_HUB_OFFLINE is set to a true value (as huggingface_hub reads it)."""
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def export_command(args: argparse.Namespace) -> int:
    from vetllm.engine.export import export_run

    result = export_run(args.run_dir, args.out, merge=args.merge)
    if args.json:
        print(json.dumps(result, indent=2))
        return 0
    print(f"exported the {result['kind']} ({result['method']}) to {args.out}:")
    print("  " + ", ".join(result["files"]))
    if result["note"]:
        print(f"  note: {result['note']}")
    return 0


def push_command(args: argparse.Namespace) -> int:
    if hub_is_offline():
        raise VetLLMError(OFFLINE_MESSAGE)
    if "/" not in args.repo or args.repo.count("/") > 1:
        raise VetLLMError(f"--repo: {args.repo!r} should read OWNER/NAME, e.g. you/vetllm-tiny")
    from huggingface_hub import HfApi
    from huggingface_hub.errors import HfHubHTTPError

    from vetllm.engine.export import export_run

    with tempfile.TemporaryDirectory(prefix="vetllm-push-") as folder:
        export_run(args.run_dir, folder, merge=args.merge)
        api = HfApi()
        try:
            api.create_repo(args.repo, private=args.private, exist_ok=True)
            info = api.upload_folder(repo_id=args.repo, folder_path=folder,
                                     commit_message="Upload from VetLLM Studio")  # fmt: skip
        except HfHubHTTPError as error:
            raise VetLLMError(
                f"push: the Hub refused the upload to {args.repo} ({error.response.status_code}); "
                "check that you are logged in (`huggingface-cli login`) with write access"
            ) from None
    print(f"pushed to https://huggingface.co/{args.repo} ({info})")
    return 0
