"""First launch: train the CPU default in the background when there is nothing to predict with.

With no completed run and nothing training, the app launches configs/tiny-cpu.yaml on the
bundled examples as a separate process (`launch_run`) and the UI shows its progress; later
launches find the completed run and use it at once. A default run that was interrupted (app
and trainer killed) is resumed from its last complete checkpoint instead of starting a new one;
a stopped run, or an unfinished run of someone else's, is left for its owner to resume (no new
run takes the lock from it). The launched run is recorded as the pending
default (`vetllm.runs.serving`): it becomes the served model when it completes, only if no
other run is served by then. `first_launch_banner` is the line every tab shows meanwhile.
"""

from __future__ import annotations

import logging
from pathlib import Path

from vetllm.errors import VetLLMError
from vetllm.ui.settings import AppSettings
from vetllm.ui.train_handlers import CONFIGS_DIR, DEFAULT_PRESET

LOGGER = logging.getLogger("vetllm.ui")


def ensure_default_run(settings: AppSettings, configs_dir: Path = CONFIGS_DIR) -> str | None:
    """Launch the CPU default if no run is completed or active; returns the launched run's name."""
    from vetllm.runs.directory import new_run_folder_name
    from vetllm.runs.launcher import launch_run, list_runs, resume_run
    from vetllm.runs.state import ACTIVE_STATES, UNFINISHED_STATES, RunState

    runs = list_runs(settings.runs_dir)
    if any(r.get("state") == RunState.COMPLETED and r.get("has_model") for r in runs):
        return None
    if any(r.get("state") in ACTIVE_STATES for r in runs):
        return None
    unfinished = [r for r in runs if r.get("state") in UNFINISHED_STATES]
    if unfinished:  # newest first: resume the default's, never start a second one beside it
        default = next((r for r in unfinished if r["name"].startswith("cpu-default-")), None)
        if default is None or default.get("state") != RunState.INTERRUPTED:
            return None  # a stop was someone's decision; a run of theirs is theirs to resume
        try:
            run = resume_run(default["path"], runs_root=settings.runs_dir)
        except VetLLMError as error:
            LOGGER.warning("could not resume the CPU default run: %s", error)
            return None
        LOGGER.info("resuming the interrupted CPU default run: %s", run.name)
        return run.name
    folder = new_run_folder_name("cpu-default")
    try:
        run = launch_run(
            configs_dir / f"{DEFAULT_PRESET}.yaml",
            settings.runs_dir / folder,
            runs_root=settings.runs_dir,
        )
    except VetLLMError as error:  # e.g. another process took the lock first
        LOGGER.warning("could not start the CPU default run: %s", error)
        return None
    from vetllm.runs.serving import note_pending_default

    note_pending_default(settings.runs_dir, run.name)
    LOGGER.info("training the CPU default in the background: %s", run.name)
    return run.name
