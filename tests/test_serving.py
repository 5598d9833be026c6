"""The served model: chosen on purpose, persisted, shown on every tab, and named in answers."""

import json

import gradio as gr
import pytest

from vetllm.errors import VetLLMError
from vetllm.runs import serving
from vetllm.runs.directory import RunDirectory
from vetllm.ui import views
from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache
from vetllm.ui.runs_handlers import RunsHandlers
from vetllm.ui.settings import AppSettings


def _run(root, name, state="completed", accuracy=None, created=None):
    run = RunDirectory(root / name)
    final = {"n": 217, "lenient_accuracy": accuracy} if accuracy is not None else None
    run.reset_status(state, step=90, total_steps=90, created_at=created or name,
                     final_metrics=final)  # fmt: skip
    if state == "completed":
        run.model_dir.mkdir(parents=True, exist_ok=True)
    (run.path / serving.BASELINE_FILE).write_text(json.dumps({"bag_of_words": 0.5}))
    return run


class FakePrediction:
    def to_api_dict(self):
        return {"codes": [], "raw_output": "", "repairs": [], "decoding": "free"}


class FakePredictor:
    def predict(self, notes, decoding="free", batch_size=16):
        return [FakePrediction() for _ in notes]


def test_a_newly_completed_run_is_not_served_until_promoted(tmp_path):
    _run(tmp_path, "a-default", accuracy=0.66, created="2026-01-01")
    assert serving.served_run_name(tmp_path) == "a-default"  # nothing was served: adopted
    _run(tmp_path, "b-smoke", accuracy=0.35, created="2026-01-02")  # newer, completed
    assert serving.served_run_name(tmp_path) == "a-default"
    serving.promote_run(tmp_path, "b-smoke")
    assert serving.served_run_name(tmp_path) == "b-smoke"
    assert serving.read_served_record(tmp_path)["how"] == "promoted"  # on disk: survives restarts
    with pytest.raises(VetLLMError, match="not a completed run"):
        serving.promote_run(tmp_path, "missing")


def test_the_first_launch_default_is_served_only_when_nothing_is(tmp_path):
    serving.note_pending_default(tmp_path, "cpu-default-1")
    _run(tmp_path, "cpu-default-1", state="running")
    assert serving.served_run_name(tmp_path) is None
    _run(tmp_path, "better", accuracy=0.9)  # completed first, but not the default
    _run(tmp_path, "cpu-default-1", accuracy=0.6)
    assert serving.served_run_name(tmp_path) == "cpu-default-1"
    # Something already served: a new pending default does not replace it.
    serving.note_pending_default(tmp_path, "cpu-default-2")
    _run(tmp_path, "cpu-default-2", accuracy=0.7)
    assert serving.served_run_name(tmp_path) == "cpu-default-1"


def test_delete_refuses_the_served_run_and_active_runs(tmp_path):
    _run(tmp_path, "served", accuracy=0.6)
    _run(tmp_path, "old", accuracy=0.5, created="0")
    _run(tmp_path, "busy", state="running")
    serving.promote_run(tmp_path, "served")
    with pytest.raises(VetLLMError, match="served model"):
        serving.delete_run(tmp_path, "served")
    with pytest.raises(VetLLMError, match="stop it"):
        serving.delete_run(tmp_path, "busy")
    serving.delete_run(tmp_path, "old")
    assert not (tmp_path / "old").exists()


def test_the_runs_table_marks_the_served_run_with_accuracy_and_baseline(tmp_path):
    _run(tmp_path, "one", accuracy=0.625)
    _run(tmp_path, "two", state="failed")
    frame = RunsHandlers(AppSettings(runs_dir=tmp_path)).table()
    assert list(frame.columns) == list(serving.RUN_COLUMNS)
    one = frame[frame["run"] == "one"].iloc[0]
    assert one["served"] == serving.SERVED_MARK and one["val. accuracy"] == "62.5%"
    assert one["bag-of-words"] == "50.0%"  # one format for every share in the table
    assert frame[frame["run"] == "two"].iloc[0]["served"] == ""
    assert frame[frame["run"] == "two"].iloc[0]["val. accuracy"] == "-"  # not 'nan%'


def test_predict_api_takes_a_run_name_and_says_which_run_answered(tmp_path):
    _run(tmp_path, "served", accuracy=0.6, created="1")
    _run(tmp_path, "newer", accuracy=0.3, created="2")
    serving.promote_run(tmp_path, "served")
    handlers = PredictHandlers(
        AppSettings(runs_dir=tmp_path), PredictorCache(lambda p: FakePredictor())
    )
    assert handlers.predict_api("cow with fever")["run"] == "served"  # not the newest
    assert handlers.predict_api("cow with fever", "free", "newer")["run"] == "newer"
    for bad in ("missing", "../served", "two"):
        with pytest.raises(gr.Error, match="not a completed run"):
            handlers.predict_api("cow with fever", "free", bad)


def test_promote_in_a_hosted_app_needs_the_password_and_asks_for_an_empty_one(tmp_path):
    _run(tmp_path, "a", accuracy=0.6, created="1")
    _run(tmp_path, "b", accuracy=0.6, created="2")
    handlers = RunsHandlers(AppSettings(runs_dir=tmp_path, hosted=True, admin_password="pw"))
    with pytest.raises(gr.Error, match="type it in 'Admin password'"):
        handlers.promote("b", "")
    with pytest.raises(gr.Error, match="wrong"):
        handlers.promote("b", "guess")
    assert serving.served_run_name(tmp_path) == "a"
    handlers.promote("b", "pw")
    assert serving.served_run_name(tmp_path) == "b"


def test_the_banner_names_the_served_run_beside_the_baseline_and_the_first_model_eta():
    served = {"run": "cpu-default", "accuracy": 0.664, "n": 217, "baseline": 0.581}
    text = views.served_banner(served, None)
    assert "Answering: cpu-default" in text and "66.4%" in text and "58.1%" in text
    training = {"name": "cpu-default", "state": "running", "step": 120, "total_steps": 900,
                "eta_s": 95}  # fmt: skip
    first = views.served_banner(None, training)
    assert "Training the first model" in first and "step 120 of 900" in first
    assert "ready in ~95 s" in first
    later = views.served_banner(served, training)
    assert "answers only once promoted" in later


def test_a_run_without_a_final_evaluation_shows_its_latest_validation_evaluation(tmp_path):
    run = _run(tmp_path, "quick")
    (run.path / serving.BASELINE_FILE).unlink()
    assert serving.run_scores(run.path) == {}
    run.eval_dir.mkdir()
    metrics = {
        "n": 217,
        "lenient_accuracy": 0.82,
        "baselines": {"bag_of_words": {"accuracy": 0.94}},
    }
    (run.eval_dir / "metrics.json").write_text(json.dumps(metrics))
    served, _ = RunsHandlers(AppSettings(runs_dir=tmp_path)).banner_facts()
    assert served == {"run": "quick", "accuracy": 0.82, "n": 217, "baseline": 0.94}


def test_a_run_without_a_final_evaluation_shows_its_served_steps_score_not_its_best(tmp_path):
    run = _run(tmp_path, "small-val")
    run.metrics_path.write_text(json.dumps({"step": 200, "eval_lenient_accuracy": 0.95}) + "\n")
    assert serving.run_scores(run.path)["accuracy"] == 0.95  # no served record: best logged
    run.write_status(served={"step": 700, "lenient_accuracy": 0.9, "n": 176})
    scores = serving.run_scores(run.path)  # the final step was served (validation too small)
    assert scores == {"accuracy": 0.9, "n": 176, "source": "served step"}


def _hub_run(root, name="hub-run", data="hub:x/y", val_data="bundled"):
    """A completed run whose config trains on a Hub dataset (never downloaded by these tests)."""
    from vetllm.config import load_config

    run = _run(root, name, accuracy=0.7)
    (run.path / serving.BASELINE_FILE).unlink()
    load_config("tiny-cpu").replace(data=data, val_data=val_data).to_yaml(run.config_path)
    return run


@pytest.fixture
def no_hub_download(monkeypatch):
    """HF_HUB_OFFLINE=1, and any attempt to read a Hub dataset fails the test."""
    import vetllm.data.loading

    def refuse(value):
        raise AssertionError(f"a page request tried to load {value}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(vetllm.data.loading, "read_hub_rows", refuse)


@pytest.mark.parametrize("data, val_data", [("hub:x/y", "bundled"), ("bundled", "hub:x/y:test")])
def test_a_run_on_hub_data_has_no_baseline_in_the_app_and_nothing_is_downloaded(
    tmp_path, no_hub_download, caplog, data, val_data
):
    run = _hub_run(tmp_path, data=data, val_data=val_data)
    with caplog.at_level("INFO", logger="vetllm.runs.serving"):
        assert serving.run_baseline(run.path) is None
    assert "Hub dataset" in caplog.text and "vetllm evaluate" in caplog.text
    assert not (run.path / serving.BASELINE_FILE).exists()
    [row] = serving.run_rows(tmp_path)
    assert row["bag-of-words"] is None
    assert row["data"] == ("hub:x/y" if data == "hub:x/y" else "bundled examples")


def test_the_served_record_is_stamped_in_utc_and_logged_under_the_runs_package(tmp_path, caplog):
    import re

    _run(tmp_path, "only", accuracy=0.5)
    with caplog.at_level("INFO", logger="vetllm.runs.serving"):
        serving.served_run_name(tmp_path)
    assert [r.name for r in caplog.records] == ["vetllm.runs.serving"]
    since = serving.read_served_record(tmp_path)["since"]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", since)
