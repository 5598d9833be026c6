"""First launch: train the CPU default in the background when there is nothing to predict with.

With no completed run and nothing training, the app launches configs/tiny-cpu.yaml on the
bundled examples as a separate process (`launch_run`) and the UI shows its progress; later
launches find the completed run and use it at once. The launched run is recorded as the pending
default (`vetllm.engine.serving`): it becomes the served model when it completes, only if no
other run is served by then. `first_launch_banner` is the line every tab shows meanwhile.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.ui.settings import AppSettings
from vetllm.ui.train_handlers import CONFIGS_DIR, DEFAULT_PRESET

LOGGER = logging.getLogger("vetllm.ui")


def ensure_default_run(settings: AppSettings, configs_dir: Path = CONFIGS_DIR) -> str | None:
    """Launch the CPU default if no run is completed or active; returns the launched run's name."""
    from vetllm.engine.runs import ACTIVE_STATES, launch_run, list_runs

    runs = list_runs(settings.runs_dir)
    if any(r.get("state") == "completed" and r.get("has_model") for r in runs):
        return None
    if any(r.get("state") in ACTIVE_STATES for r in runs):
        return None
    folder = f"cpu-default-{time.strftime('%Y%m%d-%H%M%S', time.gmtime())}"
    try:
        run = launch_run(
            configs_dir / f"{DEFAULT_PRESET}.yaml",
            settings.runs_dir / folder,
            runs_root=settings.runs_dir,
        )
    except VetLLMError as error:  # e.g. another process took the lock first
        LOGGER.warning("could not start the CPU default run: %s", error)
        return None
    from vetllm.engine.serving import note_pending_default

    note_pending_default(settings.runs_dir, run.name)
    LOGGER.info("training the CPU default in the background: %s", run.name)
    return run.name
