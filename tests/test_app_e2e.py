"""End to end: a launched app answered through gradio_client, on a real tiny trained run.

The session's tiny run (`quick_run` in conftest.py) serves a launched app on a free local port.
`predict` and, because the app is local, `evaluate` are called exactly as an API user would;
shared or hosted, `evaluate` must not be an endpoint at all. A second app with a slow fake model
checks that a full queue answers at once instead of hanging.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

NOTE = "Goat, 2 years. High fever, nasal discharge, sores on the lips and diarrhoea."
VAL = Path(__file__).resolve().parents[1] / "examples" / "val.json"


@pytest.fixture(scope="module")
def live_app(quick_run, app_launcher):
    from vetllm.ui.predict_handlers import PredictHandlers
    from vetllm.ui.settings import AppSettings

    settings = AppSettings(runs_dir=quick_run.parent, bootstrap=False)
    predict = PredictHandlers(settings)
    _, url = app_launcher(settings, predict=predict)
    return url, predict


def named_endpoints(client) -> list[str]:
    return sorted(client.view_api(print_info=False, return_format="dict")["named_endpoints"])


def test_predict_endpoint_answers_with_codes_names_validity_confidence(live_app):
    from gradio_client import Client

    url, _ = live_app
    client = Client(url, verbose=False)
    assert named_endpoints(client) == [
        "/check_codes",
        "/code_notes",
        "/evaluate",
        "/predict",
    ]  # local app
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


def test_evaluate_endpoint_scores_the_bundled_validation_set(live_app, quick_run):
    from gradio_client import Client

    client = Client(live_app[0], verbose=False)
    metrics = client.predict("constrained", api_name="/evaluate")
    assert metrics["n"] == len(json.loads(VAL.read_text(encoding="utf-8")))
    assert metrics["run"] == "quick" and metrics["decoding"] == "constrained"
    for name in ("strict", "lenient"):
        low, high = metrics[f"{name}_ci"]
        assert 0.0 <= low <= metrics[f"{name}_accuracy"] <= high <= 1.0
    assert metrics["strict_accuracy"] <= metrics["lenient_accuracy"]
    assert metrics["format_valid_rate"] == 1.0  # constrained decoding answers catalogue labels
    assert 0.0 < metrics["micro_f1"] <= 1.0 and 0.0 <= metrics["macro_f1"] <= 1.0
    baselines = metrics["baselines"]
    assert {"majority", "majority_per_species", "bag_of_words"} <= set(baselines)
    # the documented figures for examples/val.json (examples/README.md)
    assert baselines["majority"]["accuracy"] == pytest.approx(0.387, abs=0.001)  # 99 of 256
    assert baselines["bag_of_words"]["accuracy"] > 0.9
    assert metrics["lenient_accuracy"] > baselines["majority"]["accuracy"]
    assert (quick_run / "eval" / "predictions.jsonl").is_file()
    with pytest.raises(Exception, match="decoding"):
        client.predict("greedy", api_name="/evaluate")


def test_evaluate_in_the_page_gives_tables_charts_and_a_csv(live_app, quick_run):
    _, predict = live_app
    headline, per_code, confusion, worst, baselines, comparison, download, *calibration = (
        predict.evaluate("quick", "Bundled validation set", None, "constrained", "")
    )
    assert "strict accuracy" in headline and "95% CI" in headline
    reliability, coverage = calibration  # drawn from the evaluation's own tables
    assert "ECE" in reliability.layout.title.text and len(reliability.data[1].x) >= 1
    assert len(coverage.data[0].x) >= 2 and max(coverage.data[0].x) == 1.0
    assert per_code and confusion.data
    assert [row[0] for row in baselines][:2] == ["quick (lenient)", "quick (strict)"]
    assert {"majority", "bag_of_words"} <= {row[0] for row in baselines}
    path = download.value["path"] if isinstance(download.value, dict) else download.value
    assert Path(path).read_text(encoding="utf-8").startswith("index,note,gold")


@pytest.mark.parametrize("mode", [{"shared": True}, {"hosted": True, "admin_password": "pw"}])
def test_shared_or_hosted_apps_keep_evaluate_off_the_api(quick_run, mode):
    from vetllm.ui.app import build_app
    from vetllm.ui.settings import AppSettings

    demo = build_app(AppSettings(runs_dir=quick_run.parent, bootstrap=False, **mode))
    assert sorted(demo.get_api_info()["named_endpoints"]) == ["/predict"]


def test_a_hosted_app_serves_only_predict_to_api_clients(quick_run, app_launcher):
    from gradio_client import Client

    from vetllm.ui.settings import AppSettings

    settings = AppSettings(runs_dir=quick_run.parent, bootstrap=False, hosted=True)
    _, url = app_launcher(settings)  # bound to 127.0.0.1 here, not 0.0.0.0
    client = Client(url, verbose=False)
    assert named_endpoints(client) == ["/predict"]
    with pytest.raises(Exception, match="evaluate|endpoint|api_name"):
        client.predict("free", api_name="/evaluate")


class SlowPredictor:
    def predict(self, notes, decoding="free", batch_size=16):
        time.sleep(1.5)
        return [_Answer() for _ in notes]


class _Answer:
    def to_api_dict(self):
        return {"codes": [], "raw_output": "", "repairs": []}


def test_a_full_queue_answers_busy_instead_of_hanging(tmp_path, app_launcher):
    from gradio_client import Client

    from vetllm.runs.directory import RunDirectory
    from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache
    from vetllm.ui.settings import AppSettings

    settings = AppSettings(
        runs_dir=tmp_path, queue_max_size=2, predict_concurrency=1, bootstrap=False
    )
    run = RunDirectory(tmp_path / "fake")
    run.reset_status("completed", created_at="x")
    run.model_dir.mkdir(parents=True)
    predict = PredictHandlers(settings, PredictorCache(lambda path: SlowPredictor()))
    demo, url = app_launcher(settings, predict=predict)
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


def test_api_callers_choose_a_run_and_code_a_batch(quick_run, app_launcher, tmp_path):
    import shutil

    from gradio_client import Client

    from vetllm.runs.serving import promote_run
    from vetllm.ui.settings import AppSettings

    runs = tmp_path / "runs"
    shutil.copytree(quick_run, runs / "first")
    shutil.copytree(quick_run, runs / "second")
    promote_run(runs, "first")
    _, url = app_launcher(AppSettings(runs_dir=runs, bootstrap=False))
    client = Client(url, verbose=False)
    assert client.predict(NOTE, api_name="/predict")["run"] == "first"  # the served run
    assert client.predict(NOTE, "free", "second", api_name="/predict")["run"] == "second"
    with pytest.raises(Exception, match="not a completed run"):
        client.predict(NOTE, "free", "third", api_name="/predict")
    batch = client.predict([NOTE, ""], "free", "second", api_name="/code_notes")
    assert batch["run"] == "second" and batch["rows"][0]["codes"]
    assert batch["rows"][1]["reason"] == "not predicted: empty note"
