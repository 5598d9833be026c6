"""Shared test set-up: offline, CPU-only, no model hub; a tiny trained run and app launcher.

`quick_run` trains the CPU default for a few steps once per test session (in a subprocess,
seconds) and is shared by the end-to-end and browser tests. `app_launcher` launches apps on
free local ports and closes them when the test module ends.
"""

import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

REPO = Path(__file__).resolve().parents[1]
QUICK_RUN_NAME = "quick"
QUICK_OVERRIDES = [
    "max_steps=90",  # enough to beat the majority baseline on val.json (66% vs 34%)
    "logging_steps=10",
    "save_steps=45",
    "eval_steps=null",
    "final_eval=false",
    "torch_threads=1",
]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_quick_run(runs_dir: Path, name: str = QUICK_RUN_NAME) -> Path:
    """Train the CPU default for a few steps into runs_dir/name (reused if already completed)."""
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(runs_dir / name)
    if run.read_status().state == "completed" and run.model_dir.is_dir():
        return run.path
    code = (
        "import sys; from vetllm.config import load_config; from vetllm.engine.training import train; "
        "cfg = load_config(sys.argv[1], sys.argv[3:]); train(cfg.replace(name=sys.argv[2].split('/')[-1]), sys.argv[2])"
    )
    command = [sys.executable, "-c", code, str(REPO / "configs" / "tiny-cpu.yaml"), str(run.path)]
    done = subprocess.run(
        command + QUICK_OVERRIDES, cwd=REPO, capture_output=True, text=True, timeout=600
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert run.read_status().state == "completed"
    return run.path


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory) -> Path:
    """One tiny trained run per test session (runs folder: its parent)."""
    root = tmp_path_factory.getbasetemp() / "ui-quick-runs"
    root.mkdir(exist_ok=True)
    return train_quick_run(root)


@pytest.fixture(scope="module")
def app_launcher():
    """launch(settings, host=None, **handlers) -> (demo, url): the app on a free local port."""
    from vetllm.ui.app import build_app, launch_app

    launched = []

    def launch(settings, host: str | None = None, **handlers):
        demo = build_app(settings, **handlers)
        port = free_port()
        launch_app(demo, settings, port=port, host=host or "127.0.0.1", block=False, quiet=True)
        launched.append(demo)
        return demo, f"http://127.0.0.1:{port}/"

    yield launch
    for demo in launched:
        demo.close()


# -- exit --------------------------------------------------------------------------------------
# After every test has run, the interpreter's teardown of native libraries (torch's and others'
# C++ static objects and threads) can abort: CI once printed "900 passed" and then
# "terminate called without an active exception", exit 134. The results are already decided
# and reported by then, so the session ends with pytest's own exit status, skipping that teardown.
_SESSION = {}


def pytest_sessionfinish(session, exitstatus):
    _SESSION["exit_status"] = int(exitstatus)


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if "exit_status" in _SESSION:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(_SESSION["exit_status"])
