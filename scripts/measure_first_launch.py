"""Measure the first launch as a new user meets it; prints JSON (no assertions: a benchmark).

From an empty runs folder: the seconds the CPU default sits "queued" before its first step, the
seconds until a browser page shows the banner and the coverage plan while it trains, and the
seconds until the first prediction answers through the public API. Run from the repository
root: `PYTHONPATH=. HF_HUB_OFFLINE=1 nice -n 10 python scripts/measure_first_launch.py`.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path


def _first_step(run_dir: Path, started: float, limit_s: float) -> float | None:
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(run_dir)
    while time.monotonic() - started < limit_s:
        if (run.read_status().step or 0) > 0:
            return time.monotonic() - started
        time.sleep(0.2)
    return None


def _page_load(url: str) -> float:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])  # fmt: skip
        page = browser.new_page()
        page.set_default_timeout(300_000)
        started = time.monotonic()
        page.goto(url)
        page.locator(".vetllm-banner").wait_for()
        page.get_by_text("optimizer steps per epoch").first.wait_for()
        seconds = time.monotonic() - started
        browser.close()
    return seconds


def main(limit_s: float = 1800) -> dict:
    from gradio_client import Client

    from vetllm.runs.serving import served_run_name
    from vetllm.ui.app import build_app, launch_app
    from vetllm.ui.bootstrap import ensure_default_run
    from vetllm.ui.settings import AppSettings

    runs = Path(tempfile.mkdtemp(prefix="vetllm-first-launch-"))
    settings = AppSettings(runs_dir=runs)
    started = time.monotonic()
    name = ensure_default_run(settings)
    demo = build_app(settings)
    _, url, _ = launch_app(demo, settings, port=None, block=False, quiet=True)
    queued_s = _first_step(runs / name, started, limit_s)
    page_s = _page_load(url)
    while served_run_name(runs) is None and time.monotonic() - started < limit_s:
        time.sleep(1)
    answer = Client(url, verbose=False).predict("Cow, high fever, swollen udder", "free", "",
                                                api_name="/predict")  # fmt: skip
    demo.close()
    return {
        "queued_s": round(queued_s, 1) if queued_s else None,
        "page_load_during_training_s": round(page_s, 1),
        "first_prediction_s": round(time.monotonic() - started, 1),
        "run": answer["run"],
        "load_average_1min": os.getloadavg()[0],
        "cpu_count": os.cpu_count(),
    }


if __name__ == "__main__":
    print(json.dumps(main(), indent=2))
