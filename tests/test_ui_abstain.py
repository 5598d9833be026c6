"""The Predict tab shows an abstention's reason and the run's "does not beat bag-of-words"."""

import json

from vetllm.runs.directory import RunDirectory
from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache
from vetllm.ui.settings import AppSettings

REASON = "no code: refer to a veterinarian (out of scope: only 0 of 3 words are clinical ...)"


class AbstainedPrediction:
    def __init__(self, decoding):
        self.decoding = decoding

    def to_api_dict(self):
        return {"codes": [], "raw_output": "Diagnosed conditions: 40214000", "repairs": [],
                "unknown_codes": [], "warnings": [], "decoding": self.decoding,
                "abstained": True, "reason": REASON, "confidence": 0.59}  # fmt: skip


class AbstainingPredictor:
    def predict(self, notes, decoding="free", batch_size=16):
        return [AbstainedPrediction(decoding) for _ in notes]


def _handlers(tmp_path, verdict=None):
    settings = AppSettings(runs_dir=tmp_path / "runs")
    run = RunDirectory(settings.runs_dir / "done")
    run.reset_status("completed", step=1, total_steps=1, progress=1.0, eta_s=0, created_at="x")
    run.model_dir.mkdir(parents=True)
    if verdict:
        run.eval_dir.mkdir(parents=True)
        metrics = {"lenient_accuracy": 0.93, "baseline_verdict": verdict}
        (run.eval_dir / "metrics.json").write_text(json.dumps(metrics))
    return PredictHandlers(settings, PredictorCache(lambda path: AbstainingPredictor()))


def test_predict_panel_shows_abstention_and_the_baseline_sentence(tmp_path):
    sentence = "The model does not beat bag-of-words: 93.5% vs 94.0%."
    handlers = _handlers(tmp_path, {"beats_bag_of_words": False, "sentence": sentence})
    rows, raw, notes, answer = handlers.predict_ui("done", "asdkjh qwpeoi", "free")
    assert rows == [] and answer["abstained"] is True
    assert notes.startswith("**Abstained: no code: refer to a veterinarian")
    assert sentence in notes
    api = handlers.predict_api("asdkjh qwpeoi")
    assert api["abstained"] is True and api["reason"] == REASON


def test_no_baseline_sentence_when_the_model_beats_it_or_was_not_evaluated(tmp_path):
    handlers = _handlers(tmp_path, {"beats_bag_of_words": True, "sentence": "beats it"})
    assert "beats it" not in handlers.predict_ui("done", "cow fever", "free")[2]
    assert "bag-of-words" not in _handlers(tmp_path / "b").predict_ui("done", "cow", "free")[2]
