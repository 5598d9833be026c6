"""End to end: a launched app answered through gradio_client, on a real tiny trained run.

A session-scoped fixture trains the CPU default for a few steps (seconds, in a subprocess) and
the app runs in this process on a free port. The `predict` endpoint is called exactly as an API
user would; evaluation is an admin action (not a public endpoint), so it is exercised through the
app's own handler on the same launched app. A second app with a slow fake model checks that a
full queue answers at once instead of hanging.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
QUICK_OVERRIDES = [
    "max_steps=12",
    "logging_steps=2",
    "save_steps=6",
    "eval_steps=null",
    "final_eval=false",
    "torch_threads=1",
]
NOTE = "Goat, 2 years. High fever, nasal discharge, sores on the lips and diarrhoea."


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def train_quick_run(runs_dir: Path, name: str = "quick") -> Path:
    """Train the CPU default for a few steps into runs_dir/name (reused if already completed)."""
    from vetllm.engine.runs import RunDirectory

    run = RunDirectory(runs_dir / name)
    if run.read_status().get("state") == "completed" and run.model_dir.is_dir():
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
    assert run.read_status().get("state") == "completed"
    return run.path


def shared_quick_run(tmp_path_factory) -> Path:
    """One quick run per test session, shared by the e2e, browser and load tests."""
    root = tmp_path_factory.getbasetemp() / "ui-quick-runs"
    root.mkdir(exist_ok=True)
    return train_quick_run(root)


def start_app(settings, **handlers):
    """Build and launch the app on a free port in this process; returns (demo, url)."""
    from vetllm.ui.app import build_app, launch_app

    demo = build_app(settings, **handlers)
    port = free_port()
    launch_app(demo, settings, port=port, block=False, quiet=True)
    return demo, f"http://127.0.0.1:{port}/"


@pytest.fixture(scope="session")
def quick_run(tmp_path_factory):
    return shared_quick_run(tmp_path_factory)


@pytest.fixture(scope="module")
def live_app(quick_run):
    from vetllm.ui.predict_handlers import PredictHandlers
    from vetllm.ui.settings import AppSettings

    settings = AppSettings(runs_dir=quick_run.parent, bootstrap=False)
    predict = PredictHandlers(settings)
    demo, url = start_app(settings, predict=predict)
    yield url, predict
    demo.close()


def test_predict_endpoint_answers_with_codes_names_validity_confidence(live_app):
    from gradio_client import Client

    url, _ = live_app
    client = Client(url, verbose=False)
    assert list(client.view_api(print_info=False, return_format="dict")["named_endpoints"]) == [
        "/predict"
    ]
    answer = client.predict(NOTE, api_name="/predict")
    assert set(answer) >= {"codes", "raw_output", "repairs", "run"}
    assert answer["run"] == "quick" and isinstance(answer["raw_output"], str)
    constrained = client.predict(NOTE, "constrained", api_name="/predict")
    assert len(constrained["codes"]) == 1  # constrained decoding always answers one label
    entry = constrained["codes"][0]
    assert set(entry) >= {"code", "name", "valid_sctid", "confidence"}
    assert 0.0 < entry["confidence"] <= 1.0


@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("x" * 5_001, "longer than the limit"),
        ("x" * 1_000_000, "longer than the limit"),
        (None, "no text"),
        (42, "expected text|42"),
    ],
)
def test_predict_endpoint_rejects_bad_notes_with_a_clear_message(live_app, bad, message):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    client = Client(live_app[0], verbose=False)
    with pytest.raises(AppError, match=message):
        client.predict(bad, api_name="/predict")


def test_script_tags_are_just_text(live_app):
    from gradio_client import Client

    answer = Client(live_app[0], verbose=False).predict(
        "<script>alert(1)</script> cow fever", api_name="/predict"
    )
    assert "codes" in answer


def test_evaluate_on_the_bundled_validation_set(live_app, quick_run):
    _, predict = live_app
    headline, per_code, confusion, worst, baselines, comparison, download = predict.evaluate(
        "quick", "Bundled validation set", None, "constrained", ""
    )
    assert "strict accuracy" in headline and "95% CI" in headline
    assert per_code and confusion.data
    assert [row[0] for row in baselines][:2] == ["quick (lenient)", "quick (strict)"]
    assert {"majority", "bag_of_words"} <= {row[0] for row in baselines}
    assert (quick_run / "eval" / "predictions.jsonl").is_file()
    path = download.value["path"] if isinstance(download.value, dict) else download.value
    assert Path(path).read_text(encoding="utf-8").startswith("index,note,gold")


class SlowPredictor:
    def predict(self, notes, decoding="free", batch_size=16):
        time.sleep(1.5)
        return [_Answer() for _ in notes]


class _Answer:
    def to_api_dict(self):
        return {"codes": [], "raw_output": "", "repairs": []}


def test_a_full_queue_answers_busy_instead_of_hanging(tmp_path):
    from gradio_client import Client

    from vetllm.engine.runs import RunDirectory
    from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache
    from vetllm.ui.settings import AppSettings

    settings = AppSettings(
        runs_dir=tmp_path, queue_max_size=2, predict_concurrency=1, bootstrap=False
    )
    run = RunDirectory(tmp_path / "fake")
    run.reset_status("completed", created_at="x")
    run.model_dir.mkdir(parents=True)
    predict = PredictHandlers(settings, PredictorCache(lambda path: SlowPredictor()))
    demo, url = start_app(settings, predict=predict)
    try:
        client = Client(url, verbose=False)
        results, started = [], time.monotonic()

        def call():
            try:
                results.append(client.predict("cow", api_name="/predict"))
            except Exception as error:  # noqa: BLE001 - the busy answer is what we want
                results.append(error)

        threads = [threading.Thread(target=call) for _ in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        errors = [r for r in results if isinstance(r, Exception)]
        assert len(results) == 8 and errors, "a full queue must refuse some calls"
        assert any("queue" in str(e).lower() or "full" in str(e).lower() for e in errors)
        assert time.monotonic() - started < 30  # refused at once, not after waiting in line
    finally:
        demo.close()
