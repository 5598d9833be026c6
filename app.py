"""VetLLM Studio app: `python app.py [--share] [--port P] [--runs-dir DIR]`.

Builds the UI from `vetllm.ui` and launches it. On first launch (no completed run) it trains the
CPU default in the background; the Train tab shows its progress. Hugging Face Spaces runs this
file as it is (app_file: app.py).
"""

from __future__ import annotations

import argparse
import logging

from vetllm.ui.app import build_app, launch_app
from vetllm.ui.bootstrap import ensure_default_run
from vetllm.ui.settings import AppSettings


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--share", action="store_true", help="create a public gradio.live link")
    parser.add_argument("--port", type=int, default=None, help="port (default 7860 or next free)")
    parser.add_argument(
        "--host", default=None, help="interface (default 127.0.0.1; 0.0.0.0 on Spaces)"
    )
    parser.add_argument(
        "--runs-dir", default=None, help="runs folder (default $VETLLM_RUNS_DIR or ./runs)"
    )
    parser.add_argument(
        "--no-bootstrap", action="store_true", help="do not train the CPU default on first launch"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    settings = AppSettings.from_env(
        args.runs_dir, share=args.share, host=args.host, bootstrap=not args.no_bootstrap
    )
    settings.runs_dir.mkdir(parents=True, exist_ok=True)
    if settings.bootstrap:
        ensure_default_run(settings)
    launch_app(build_app(settings), settings, port=args.port, host=args.host)


if __name__ == "__main__":
    main()
