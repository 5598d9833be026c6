"""Predictor: free and constrained decoding on a tiny model trained here, batching, input checks.

The model is the project's CPU default (byte-level BPE tokenizer trained on the notes, tiny
LLaMA), trained for a few seconds with the trainer's own encoding, saved as a run directory and
loaded back through `load_trained`, so the test covers the real loading path.
"""

from __future__ import annotations

import json
import random

import pytest
import torch

from vetllm.config import TrainConfig
from vetllm.data.synth import generate_records
from vetllm.data.validation import MAX_DATA_NOTE_CHARS
from vetllm.data.writing import write_records
from vetllm.engine import predict as predict_module
from vetllm.engine.collate import IGNORE_INDEX, encode_record
from vetllm.engine.predict import Predictor
from vetllm.engine.scoring import candidate_log_probs
from vetllm.engine.tiny import build_tiny_model, train_tokenizer
from vetllm.errors import VetLLMError
from vetllm.metrics import score_predictions

pytestmark = pytest.mark.slow  # the module trains a tiny model once (seconds to half a minute)

TRAIN_STEPS = 300  # the tiny model reaches ~80% on held-out notes (5-30 s on 2 shared cores)
LEARNING_RATE = 3e-3


def build_tiny_run(run_dir, n_records: int = 320, steps: int = TRAIN_STEPS, seed: int = 0):
    """Train a tiny model for `steps` and save it as a run; returns (run_dir, held-out records)."""
    torch.manual_seed(seed)
    records = generate_records(n=n_records, seed=seed, free_text_share=0.2)
    train, held_out = records[: n_records - 40], records[n_records - 40 :]
    data_file = write_records(train, run_dir / "train.json")
    cfg = TrainConfig(
        name="tiny-test",
        data=str(data_file),
        val_data=None,
        prompt_template="compact",
        note_prefix="",
        max_length=128,
        max_new_tokens=16,
        tiny_vocab_size=600,
        tiny_hidden_size=64,
        tiny_intermediate_size=128,
        tiny_layers=2,
        tiny_heads=4,
    )
    template = cfg.prompt()
    labels = sorted({label for r in train for label in r.labels})
    texts = [template.format_prompt(r.note) + template.format_response(r.labels) for r in train]
    tokenizer = train_tokenizer(texts, cfg.tiny_vocab_size, labels)
    model = build_tiny_model(cfg, tokenizer)
    examples = [encode_record(tokenizer, template, r, cfg.max_length) for r in train]
    _fit(model, examples, tokenizer.pad_token_id, steps, seed)
    cfg.to_yaml(run_dir / "config.yaml")
    model.save_pretrained(run_dir / "model")
    tokenizer.save_pretrained(run_dir / "model")
    card = {"train_labels": labels, "base_model_source": "tiny"}
    (run_dir / "model" / "run_card.json").write_text(json.dumps(card), encoding="utf-8")
    return run_dir, held_out


def _fit(model, examples, pad_id, steps, seed, batch=16):
    optimiser = torch.optim.AdamW(model.parameters(), lr=LEARNING_RATE)
    rng = random.Random(seed)
    model.train()
    for _ in range(steps):
        chosen = rng.sample(examples, batch)
        width = max(len(e["input_ids"]) for e in chosen)
        ids = torch.full((batch, width), pad_id)
        labels = torch.full((batch, width), IGNORE_INDEX)
        mask = torch.zeros((batch, width), dtype=torch.long)
        for row, example in enumerate(chosen):
            n = len(example["input_ids"])
            ids[row, :n] = torch.tensor(example["input_ids"])
            labels[row, :n] = torch.tensor(example["labels"])
            mask[row, :n] = 1
        model(input_ids=ids, attention_mask=mask, labels=labels).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    model.eval()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    # One thread: with other processes on the 2 cores, torch's thread pool spins and a step
    # takes ~10x longer; one thread is also deterministic.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield build_tiny_run(tmp_path_factory.mktemp("tiny_run"))
    finally:
        torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def predictor(tiny_run):
    return Predictor.from_run(tiny_run[0])


def test_from_run_uses_saved_template_and_training_labels(predictor, tiny_run):
    card = json.loads((tiny_run[0] / "model" / "run_card.json").read_text())
    assert predictor.candidates == card["train_labels"]
    assert predictor.template.template.startswith("Note: {input}")
    assert predictor.max_new_tokens == 16


def test_constrained_strict_equals_lenient_and_beats_chance(predictor, tiny_run):
    held_out = tiny_run[1]
    predictions = predictor.predict([r.note for r in held_out], decoding="constrained")
    scores = score_predictions(
        [(p.raw_output, list(r.labels)) for p, r in zip(predictions, held_out, strict=True)]
    )
    assert scores.strict_accuracy == scores.lenient_accuracy
    assert scores.format_valid_rate == 1.0
    for prediction in predictions:
        (code,) = prediction.result.codes  # trained on one label per note: one label back
        assert code in predictor.candidates
        assert 0.0 < prediction.confidence <= prediction.confidences[code] <= 1.0
        ranked = [p for _, p in prediction.alternatives]
        assert ranked == sorted(ranked, reverse=True) and prediction.confidence <= ranked[0]
        assert not prediction.abstained and prediction.codes == [code]
    # 12 candidate labels: chance is ~8%; the trained model must do far better.
    assert scores.lenient_accuracy > 0.5


def test_free_decoding_reads_codes_with_confidences(predictor, tiny_run):
    held_out = tiny_run[1]
    predictions = predictor.predict([r.note for r in held_out], decoding="free")
    assert all(p.decoding == "free" for p in predictions)
    assert sum(bool(p.result.codes) for p in predictions) >= len(held_out) // 2
    for prediction in predictions:
        assert set(prediction.confidences) == set(prediction.result.codes)
        assert all(0.0 <= value <= 1.0 for value in prediction.confidences.values())


@pytest.mark.parametrize("decoding", ["free", "constrained"])
def test_batching_does_not_change_answers(predictor, tiny_run, decoding):
    notes = [r.note for r in tiny_run[1][:12]]
    batched = predictor.predict(notes, decoding=decoding, batch_size=8)
    single = predictor.predict(notes, decoding=decoding, batch_size=1)
    assert [p.raw_output for p in batched] == [p.raw_output for p in single]
    for a, b in zip(batched, single, strict=True):
        for code, value in a.confidences.items():
            assert b.confidences[code] == pytest.approx(value, abs=1e-4)


@pytest.mark.parametrize("n_notes", [1, 3])
def test_candidate_scores_match_an_unpadded_forward(predictor, tiny_run, n_notes):
    """The cached, left-padded scoring equals summing log-probs sequence by sequence."""
    notes = [r.note for r in tiny_run[1][5 : 5 + n_notes]]
    prompts, _ = predictor._prompts(notes)
    answers = [
        predictor.encoder.response_ids(predictor.template, [c]) for c in predictor.candidates
    ]
    scores = candidate_log_probs(predictor.model, prompts, answers, predictor.encoder.pad_id)
    for prompt, row in zip(prompts, scores, strict=True):
        for answer, score in zip(answers, row, strict=True):
            sequence = prompt + answer
            with torch.inference_mode():
                logits = predictor.model(input_ids=torch.tensor([sequence])).logits[0]
            log_probs = logits[:-1].log_softmax(-1)
            tokens = torch.tensor(sequence[1:])
            expected = log_probs.gather(-1, tokens.unsqueeze(-1)).squeeze(-1)[-len(answer) :].sum()
            assert score == pytest.approx(float(expected), abs=1e-4)


def test_candidate_probabilities_sum_to_one(predictor, tiny_run):
    prompts, _ = predictor._prompts([tiny_run[1][0].note])
    (row,) = predict_module._candidate_probabilities(predictor, prompts)
    assert len(row) == len(predictor.candidates)
    assert sum(row) == pytest.approx(1.0)


def test_api_dict_has_the_app_fields_and_is_json(predictor, tiny_run):
    (prediction,) = predictor.predict([tiny_run[1][0].note], decoding="constrained")
    api = prediction.to_api_dict(predictor.catalogue)
    json.dumps(api)
    assert set(api) >= {"codes", "raw_output", "repairs", "unknown_codes", "decoding"}
    assert api["decoding"] == "constrained"
    (entry,) = api["codes"]
    assert set(entry) == {
        "code",
        "name",
        "valid_sctid",
        "sctid_problem",
        "suggested_code",
        "confidence",
    }
    assert entry["name"] and isinstance(entry["valid_sctid"], bool)


def test_long_note_is_cut_with_a_warning(predictor):
    note = "Cow. High fever and oral frothing with foot vesicles. " * 60  # ~3,300 chars
    (prediction,) = predictor.predict([note], decoding="constrained")
    assert prediction.warnings and "truncated" in prediction.warnings[0]
    assert prediction.result.codes


@pytest.mark.parametrize(
    ("notes", "expected"),
    [
        ([""], "note 1: is empty"),
        (["   \n"], "note 1: is empty"),
        (["ok", None], "note 2: expected text, got NoneType"),
        ([42], "note 1: expected text, got int"),
        (["x" * (MAX_DATA_NOTE_CHARS + 1)], "the limit is"),
        ([], "the list is empty"),
        ("a bare string", "expected a list of note texts"),
        (None, "expected a list of note texts"),
    ],
)
def test_bad_notes_give_clear_errors(predictor, notes, expected):
    with pytest.raises(VetLLMError, match=expected):
        predictor.predict(notes)


def test_every_bad_note_is_reported_at_once(predictor):
    with pytest.raises(VetLLMError) as error:
        predictor.predict(["", "fine note", None, "x" * (MAX_DATA_NOTE_CHARS + 5)])
    message = str(error.value)
    assert "note 1" in message and "note 3" in message and "note 4" in message
    assert "note 2" not in message


def test_bad_options_are_rejected(predictor):
    with pytest.raises(VetLLMError, match="decoding"):
        predictor.predict(["Cow, fever"], decoding="beam")
    with pytest.raises(VetLLMError, match="batch_size"):
        predictor.predict(["Cow, fever"], batch_size=0)


def test_prediction_prints_no_note_text(predictor, capsys):
    predictor.predict(["Buffalo SECRET-OWNER-NAME with neck swelling"], decoding="free")
    captured = capsys.readouterr()
    assert "SECRET-OWNER-NAME" not in captured.out + captured.err


# Nonsense written apart from the notes the out-of-scope check was designed on
# (tests/test_abstention.py): the check must hold on text it has not seen.
NONSENSE = [
    "zzzz",
    "Invoice 4471: 3 bags of cement, 2 shovels, total 250 USD",
    "Roses are red, violets are blue, sugar is sweet",
    "Call me back when you get a chance, thanks",
    "qwerty uiop asdf ghjk",
    "El perro come carne y duerme mucho",
    "https://example.com/login?user=admin&pass=1234",
    "The stock market fell sharply today amid inflation fears",
    "Bake at 180 degrees for 25 minutes until golden",
    "-- ... ,,, 42 %%",
]


@pytest.mark.parametrize("decoding", ["free", "constrained"])
def test_nonsense_abstains_and_real_notes_do_not(predictor, tiny_run, decoding):
    nonsense = predictor.predict(NONSENSE, decoding=decoding)
    abstained = [p for p in nonsense if p.abstained]
    assert len(abstained) >= 9
    for prediction in abstained:
        api = prediction.to_api_dict(predictor.catalogue)
        assert api["abstained"] is True and api["codes"] == []
        assert api["reason"].startswith("no code: refer to a veterinarian")
    real = predictor.predict([r.note for r in tiny_run[1]], decoding=decoding)
    assert [p.reason for p in real if p.abstained] == []


def test_temperature_and_threshold_are_applied(predictor, tiny_run):
    from vetllm.calibration import scale_confidence

    notes = [r.note for r in tiny_run[1][:6]]
    plain = predictor.predict(notes, decoding="constrained")
    saved = predictor.temperatures, dict(predictor.policy.thresholds)
    try:
        predictor.temperatures = {"constrained": 2.0}
        softened = predictor.predict(notes, decoding="constrained")
        for a, b in zip(plain, softened, strict=True):
            assert b.confidence == pytest.approx(scale_confidence(a.confidence, 2.0))
            assert b.result.codes == a.result.codes  # calibration never changes the answer
        predictor.policy.thresholds = {"constrained": 0.999999}
        (strict,) = predictor.predict(notes[:1], decoding="constrained")
        assert strict.abstained and "below this run's threshold" in strict.reason
        assert strict.codes == [] and strict.result.codes == plain[0].result.codes
    finally:
        predictor.temperatures, predictor.policy.thresholds = saved


def test_calibrate_run_writes_the_file_that_from_run_applies(tiny_run):
    from vetllm.calibration import CALIBRATION_FILE
    from vetllm.engine.calibrate import calibrate_run

    run_dir, held_out = tiny_run
    result = calibrate_run(run_dir, held_out, target_accuracy=0.9, decodings=("constrained",))
    report = result["decodings"]["constrained"]
    assert report["nll_after"] <= report["nll_before"] + 1e-12  # the fit never makes NLL worse
    assert {"ece_before", "ece_after_cross_fitted", "reliability_after", "selective"} <= set(report)
    assert result["warnings"] and "distinct notes" in result["warnings"][0]  # 40 notes: too few
    saved = json.loads((run_dir / CALIBRATION_FILE).read_text())
    assert saved["temperatures"]["constrained"] == pytest.approx(report["temperature"])
    loaded = Predictor.from_run(run_dir)
    assert loaded.temperatures == saved["temperatures"]
    assert loaded.policy.thresholds == {
        k: v for k, v in saved["thresholds"].items() if v is not None
    }
    (run_dir / CALIBRATION_FILE).unlink()  # the other tests use the uncalibrated run
