"""Predict & evaluate handlers with fakes: predictor cache, note rules, evaluation outputs and
the `evaluate` endpoint, which endpoints the app exposes, and micro-batching."""

import json
import threading
import time
from pathlib import Path

import gradio as gr
import pytest

from vetllm.errors import VetLLMError
from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache, worst_cases
from vetllm.ui.settings import AppSettings


def _settings(tmp_path, **kw):
    return AppSettings(runs_dir=tmp_path / "runs", **kw)


def _fake_run(root, name, state="running", with_model=False):
    """A run folder with only a status (and an empty model folder): enough to be listed."""
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(root / name)
    run.reset_status(state, step=20, total_steps=100, progress=0.2, eta_s=30, created_at=name)
    if with_model:
        run.model_dir.mkdir(parents=True)
    return run


# -- prediction ----------------------------------------------------------------------------------
class FakePrediction:
    def __init__(self, note, decoding):
        self.note, self.decoding = note, decoding

    def to_api_dict(self):
        return {"codes": [{"code": "72934000", "name": "Mastitis", "valid_sctid": True,
                           "confidence": 0.9}], "raw_output": "Diagnosed conditions: 72934000",
                "repairs": [], "unknown_codes": [], "warnings": [], "decoding": self.decoding}  # fmt: skip


class FakePredictor:
    def predict(self, notes, decoding="free", batch_size=16):
        return [FakePrediction(n, decoding) for n in notes]


def test_predictor_cache_loads_each_run_once_under_concurrency(tmp_path):
    loads = []

    def load(path):
        loads.append(path)
        time.sleep(0.05)
        return FakePredictor()

    cache = PredictorCache(load, capacity=1)
    threads = [threading.Thread(target=cache.get, args=(tmp_path / "a",)) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(loads) == 1
    cache.get(tmp_path / "b")
    cache.get(tmp_path / "a")  # evicted by b (capacity 1), so loaded again
    assert len(loads) == 3


def test_predict_uses_newest_completed_run_and_enforces_note_rules(tmp_path):
    settings = _settings(tmp_path, max_note_chars=50)
    handlers = PredictHandlers(settings, PredictorCache(lambda path: FakePredictor()))
    with pytest.raises(gr.Error, match="no trained model yet"):
        handlers.predict_api("cow with fever")
    _fake_run(settings.runs_dir, "training", "running")
    with pytest.raises(gr.Error, match="training is training|is training"):
        handlers.predict_api("cow with fever")
    _fake_run(settings.runs_dir, "done", "completed", with_model=True)
    answer = handlers.predict_api("cow with fever", "constrained")
    assert answer["run"] == "done" and answer["decoding"] == "constrained"
    assert answer["codes"][0]["code"] == "72934000"
    for bad in ("", "x" * 51, None):
        with pytest.raises(gr.Error):
            handlers.predict_api(bad)
    with pytest.raises(gr.Error, match="decoding"):
        handlers.predict_api("cow", "beam")
    rows, raw, repairs, full = handlers.predict_ui("done", "cow", "free")
    assert rows[0][:3] == ["72934000", "Mastitis", "valid"] and raw.startswith("Diagnosed")


def test_evaluate_outputs_and_csv_download(tmp_path, monkeypatch):
    from vetllm.engine import evaluate as evaluate_module

    settings = _settings(tmp_path)
    run = _fake_run(settings.runs_dir, "done", "completed", with_model=True)
    rows = [
        {"index": 1, "note": "=cmd()", "gold": ["1"], "codes": ["2"], "raw_output": "2",
         "strict_correct": False, "lenient_correct": False, "confidence": {"2": 0.6}},
        {"index": 2, "note": "ok", "gold": ["1"], "codes": ["1"], "raw_output": "1",
         "strict_correct": True, "lenient_correct": True, "confidence": {"1": 0.9}},
    ]  # fmt: skip

    def fake_evaluate(run_dir, data, decoding, out_dir, predictor=None):
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "predictions.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
        return {"n": 2, "strict_accuracy": 0.5, "lenient_accuracy": 0.5, "format_valid_rate": 1.0,
                "strict_ci": [0.1, 0.9], "lenient_ci": [0.1, 0.9], "micro_f1": 0.5, "macro_f1": 0.5,
                "per_code": [{"code": "1", "name": "X", "valid_sctid": None, "support": 2,
                              "predicted": 1, "precision": 1.0, "recall": 0.5, "f1": 0.667}],
                "confusion": {"labels": ["1", "2"], "names": ["X", "2"], "matrix": [[1, 1], [0, 0]]},
                "baselines": {"majority": {"accuracy": 0.5, "ci": [0.1, 0.9]}}}  # fmt: skip

    monkeypatch.setattr(evaluate_module, "evaluate_run", fake_evaluate)
    handlers = PredictHandlers(settings, PredictorCache(lambda path: FakePredictor()))
    headline, per_code, confusion, worst, baselines, comparison, download, *calibration = (
        handlers.evaluate("done", "Bundled validation set", None, "free", "")
    )
    assert "strict accuracy" in headline and per_code[0][0] == "1"
    assert len(calibration) == 2  # reliability diagram, accuracy vs coverage
    assert "| code |" not in headline  # the per-code table is its own dataframe
    assert [row[0] for row in baselines] == ["done (lenient)", "done (strict)", "majority"]
    assert worst[0][0] == "=cmd()" and len(worst) == 1
    path = download.value["path"] if isinstance(download.value, dict) else download.value
    assert "'=cmd()" in open(path, encoding="utf-8").read()
    assert run.eval_dir.is_dir()
    public = PredictHandlers(_settings(tmp_path, hosted=True), handlers.cache)
    with pytest.raises(gr.Error, match="disabled"):
        public.evaluate("done", "Bundled validation set", None, "free", "")


def test_evaluate_api_scores_the_bundled_set_with_the_newest_run(tmp_path, monkeypatch):
    from vetllm.engine import evaluate as evaluate_module

    settings = _settings(tmp_path)
    _fake_run(settings.runs_dir, "done", "completed", with_model=True)
    calls = []

    def fake_evaluate(run_dir, data, decoding, out_dir, predictor=None):
        calls.append((Path(run_dir).name, data, decoding, Path(out_dir).name, predictor))
        return {"n": 3, "lenient_accuracy": 2 / 3, "baselines": {}}

    monkeypatch.setattr(evaluate_module, "evaluate_run", fake_evaluate)
    handlers = PredictHandlers(settings, PredictorCache(lambda path: FakePredictor()))
    assert handlers.evaluate_api("constrained") == {
        "n": 3, "lenient_accuracy": 2 / 3, "baselines": {}
    }  # fmt: skip
    assert calls[0][:4] == ("done", "bundled", "constrained", "eval")
    assert isinstance(calls[0][4], FakePredictor)  # the cached model, not a second load
    with pytest.raises(gr.Error, match="decoding"):
        handlers.evaluate_api("beam")
    for mode in ({"shared": True}, {"hosted": True, "admin_password": "pw"}):
        with pytest.raises(gr.Error, match="disabled|password"):
            PredictHandlers(_settings(tmp_path, **mode), handlers.cache).evaluate_api()
    assert len(calls) == 1


def test_worst_cases_puts_wrong_answers_first():
    rows = [{"note": "a", "lenient_correct": True, "strict_correct": False, "gold": [], "codes": []},
            {"note": "b", "lenient_correct": False, "strict_correct": False, "gold": [], "codes": []},
            {"note": "c", "lenient_correct": True, "strict_correct": True}]  # fmt: skip
    assert [r[0] for r in worst_cases(rows, 5)] == ["b", "a"]


# -- the app as a whole --------------------------------------------------------------------------
def _public_endpoints(demo) -> list[str]:
    return sorted(fn.api_name for fn in demo.fns.values() if fn.api_visibility == "public")


def test_local_apps_offer_predict_and_evaluate_shared_ones_only_predict(tmp_path):
    from vetllm.ui.app import build_app

    local = build_app(_settings(tmp_path, bootstrap=False))
    assert _public_endpoints(local) == ["check_codes", "code_notes", "evaluate", "predict"]
    for mode in ({"shared": True}, {"hosted": True, "admin_password": "pw"}):
        public = build_app(_settings(tmp_path, bootstrap=False, **mode))
        assert _public_endpoints(public) == ["predict"]


# -- micro-batching ------------------------------------------------------------------------------
def test_micro_batcher_groups_concurrent_requests_and_isolates_failures():
    from vetllm.ui.batching import MicroBatcher

    class Recording:
        def predict(self, notes, decoding="free", batch_size=16):
            time.sleep(0.05)
            if "bad" in notes:
                raise VetLLMError("note bad")
            return [f"{decoding}:{n}" for n in notes]

    batcher, predictor = MicroBatcher(max_batch=8, max_wait_s=0.02), Recording()
    results = {}

    def ask(note):
        try:
            results[note] = batcher.predict(predictor, note, "free")
        except VetLLMError as error:
            results[note] = error

    notes = [f"n{i}" for i in range(12)] + ["bad"]
    threads = [threading.Thread(target=ask, args=(n,)) for n in notes]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert all(results[n] == f"free:{n}" for n in notes[:-1])
    assert isinstance(results["bad"], VetLLMError)
    assert max(batcher.batch_sizes) > 1  # concurrent requests really shared a model call
