"""`python -m vetllm.engine.member_process CONFIG FOLDER [--resume]`: one ensemble member.

Started by vetllm.engine.members for each of an ensemble's other models; trains it with `train`
like any run, and stops it (with a checkpoint) once the training process that started it is gone.
"""

from __future__ import annotations

import os
import sys
import threading
import time

from vetllm.config import load_config
from vetllm.engine.training import train
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory

ORPHAN_POLL_S = 0.5


def stop_when_orphaned(folder: str) -> None:
    """Keep a STOP flag in the member's folder once the process that started it is gone (even
    by kill -9): the member then stops at its next step with a checkpoint, as a resume expects.
    A flag, not a signal: a second signal during a checkpoint save would kill it half-written."""
    parent, run = os.getppid(), RunDirectory(folder)

    def watch() -> None:
        while True:
            time.sleep(ORPHAN_POLL_S)
            if os.getppid() != parent:
                run.request_stop()  # again each time: training clears the flag as it starts

    threading.Thread(target=watch, name="vetllm-orphan-watch", daemon=True).start()


def main(argv: list[str]) -> int:
    """Train one member: argv is CONFIG FOLDER [--resume]."""
    stop_when_orphaned(argv[1])
    config, folder = argv[0], argv[1]
    try:
        train(load_config(config), folder, resume="--resume" in argv[2:])
    except VetLLMError as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
