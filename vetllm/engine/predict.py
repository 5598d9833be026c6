"""Predictor: turn clinical notes into catalogue codes with a trained run, two ways.

`free` decoding is plain batched greedy generation (left-padded, stops at end-of-sequence)
followed by post-processing, so it shows exactly why strict and lenient accuracy differ.
`constrained` decoding scores every candidate answer "Diagnosed conditions: LABEL<eos>" by its
summed token log-probability (engine/scoring.py: each prompt runs once and its key/value cache
serves every candidate) and picks the best, so only catalogue labels can come out and strict
equals lenient by construction. Confidences: constrained uses a softmax over the candidate
scores; free uses the product of the probabilities of the tokens that spell the code (or, for a
code post-processing had to repair, that label's constrained probability).

Constrained decoding returns a set: after each label the candidates are another label or the
end (engine/scoring.search_label_sets), so multi-label notes can be right in that mode too; a
code's confidence there is its share of the probability of the answers scored, the answer's
confidence the chosen answer's share. Each answer then passes the run's calibration (a
temperature per decoding, vetllm.calibration) and the abstention policy (vetllm.abstention):
out-of-scope notes and, when the run sets a threshold, low-confidence answers get no code,
`abstained` true and the reason.

Note text is clinical data: nothing here logs or prints it.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from vetllm.abstention import AbstentionPolicy
from vetllm.calibration import DECODINGS, scale_confidence
from vetllm.catalogue import Catalogue, load_catalogue
from vetllm.data.prompts import ALPACA, PromptTemplate
from vetllm.data.validation import MAX_DATA_NOTE_CHARS
from vetllm.engine.bag_of_words_vote import BagOfWordsVoter
from vetllm.engine.ensemble import member_dirs, raw_confidence, vote
from vetllm.engine.generation import generate_greedy, spelled_probability
from vetllm.errors import VetLLMError
from vetllm.postprocess import PostprocessResult, postprocess

MAX_NOTES_PER_CALL = 10_000
# (note, candidate) rows per forward in constrained mode: each row holds a copy of its note's
# key/value cache, so this bounds memory, not speed.
MAX_SEQUENCES_PER_FORWARD = 256
MAX_LABELS = 4  # most labels in one constrained answer
LOW_CONFIDENCE_FACTOR = 2.0  # below this many times a uniform guess, the answer is flagged


@dataclass
class Prediction:
    """One note's answer: the raw model text, its post-processing and a confidence per code."""

    raw_output: str
    result: PostprocessResult
    confidences: dict[str, float]
    decoding: str
    alternatives: list[tuple[str, float]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    confidence: float | None = None  # the whole answer's (calibrated) confidence
    abstained: bool = False
    reason: str | None = None  # why no code was given (abstained answers only)

    @property
    def codes(self) -> list[str]:
        """The codes given: none when the model abstained."""
        return [] if self.abstained else list(self.result.codes)

    def to_api_dict(self, catalogue: Catalogue | None = None) -> dict:
        """The JSON-ready answer the app and the CLI show."""
        catalogue = catalogue or load_catalogue()
        return {
            "codes": [_code_entry(c, self.confidences.get(c), catalogue) for c in self.codes],
            "abstained": self.abstained,
            "reason": self.reason,
            "confidence": None if self.confidence is None else round(self.confidence, 4),
            "raw_output": self.raw_output,
            "repairs": list(self.result.repairs),
            "unknown_codes": list(self.result.unknown_codes),
            "decoding": self.decoding,
            "alternatives": [
                {"code": label, "name": _name(label, catalogue), "confidence": round(p, 4)}
                for label, p in self.alternatives
            ],
            "warnings": list(self.warnings),
        }


def _name(label: str, catalogue: Catalogue) -> str | None:
    names = [catalogue.by_label(part.strip()) for part in label.split(",")]
    return " + ".join(d.name for d in names) if all(names) else None


def _code_entry(label: str, confidence: float | None, catalogue: Catalogue) -> dict:
    disease = catalogue.by_label(label)
    info = disease.to_dict() if disease else {}
    return {
        "code": label,
        "name": info.get("name"),
        "valid_sctid": info.get("valid_sctid"),
        "sctid_problem": info.get("sctid_problem", "not in the catalogue"),
        "suggested_code": info.get("suggested_code"),
        "confidence": None if confidence is None else round(float(confidence), 4),
    }


def validate_notes(notes: object, max_chars: int = MAX_DATA_NOTE_CHARS) -> list[str]:
    """The notes as a list of non-empty strings; every problem is reported at once.

    `max_chars` defaults to the data-file limit (evaluation predicts data files); the edges
    that take notes from people pass MAX_PREDICT_NOTE_CHARS (vetllm.data.validation).
    """
    if isinstance(notes, str) or not isinstance(notes, (list, tuple)):
        raise VetLLMError(
            f"notes: expected a list of note texts, got {type(notes).__name__}; "
            "pass e.g. ['Cow, high fever, ...']"
        )
    if not notes:
        raise VetLLMError("notes: the list is empty; give at least one clinical note")
    if len(notes) > MAX_NOTES_PER_CALL:
        raise VetLLMError(
            f"notes: {len(notes)} notes in one call; the limit is {MAX_NOTES_PER_CALL}, "
            "split the file"
        )
    problems = []
    for index, note in enumerate(notes, start=1):
        if not isinstance(note, str):
            problems.append(f"note {index}: expected text, got {type(note).__name__}")
        elif not note.strip():
            problems.append(f"note {index}: is empty; type the clinical note")
        elif len(note) > max_chars:
            problems.append(
                f"note {index}: {len(note):,} characters; the limit is {max_chars:,}, "
                "shorten it to the clinical findings"
            )
    if problems:
        raise VetLLMError("cannot predict:\n  - " + "\n  - ".join(problems))
    return [note.strip() for note in notes]


class Predictor:
    """A loaded model plus everything needed to ask it for codes the way it was trained."""

    def __init__(
        self,
        model,
        tokenizer,
        template: PromptTemplate = ALPACA,
        candidates: list[str] | None = None,
        catalogue: Catalogue | None = None,
        max_length: int | None = None,
        max_new_tokens: int | None = None,
        temperatures: dict[str, float] | None = None,
        policy: AbstentionPolicy | None = None,
        max_labels: int = MAX_LABELS,
        members: list[Predictor] | None = None,
    ):
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.template = template
        self.catalogue = catalogue or load_catalogue()
        known = [c for c in (candidates or []) if self.catalogue.by_label(c)]
        self.candidates = known or list(self.catalogue.labels)
        self.encoder = _Encoder(tokenizer)
        self._candidate_ids: list[list[int]] | None = None
        self._answer_ids = None  # scoring.AnswerIds, built on the first constrained call
        limit = max_length or getattr(model.config, "max_position_embeddings", 2048)
        self.max_length = int(limit)
        self.max_new_tokens = max_new_tokens or self._default_new_tokens()
        self.temperatures = dict(temperatures or {})  # decoding -> T; missing: 1 (as trained)
        self.policy = policy  # None: nothing abstains (used to fit the calibration itself)
        self.max_labels = max_labels
        # An ensemble's other models (vetllm.engine.ensemble): all answer, the vote decides.
        self.members = list(members or [])
        self.bag_of_words = None  # a BagOfWordsVoter when the run has one: it votes too

    @classmethod
    def from_run(cls, run_dir: str | Path, device: str | None = None) -> Predictor:
        """Load a run's final model (base + adapter, 4-bit on CUDA for QLoRA), its template,
        calibration and abstention policy, and the other models of an ensemble run."""
        from vetllm.abstention import run_policy
        from vetllm.calibration import load_calibration

        run_path = Path(run_dir)
        members = [cls._one_model(folder, device)[0] for folder in member_dirs(run_path)]
        predictor, cfg = cls._one_model(run_path, device)
        calibration = load_calibration(run_path)
        predictor.members = members
        predictor.bag_of_words = _voter_of(run_path)
        predictor.temperatures = dict(calibration.get("temperatures") or {})
        predictor.policy = run_policy(cfg, predictor.catalogue, calibration)
        return predictor

    @classmethod
    def _one_model(cls, run_path: Path, device: str | None) -> tuple[Predictor, object]:
        """(Predictor of the run folder's own model, uncalibrated, nothing abstains; its cfg)."""
        from vetllm.engine.modeling import load_trained

        model, tokenizer, cfg = load_trained(run_path, device=device)
        predictor = cls(
            model,
            tokenizer,
            template=_template_of(cfg),
            candidates=_training_labels(run_path),
            catalogue=_catalogue_of(cfg),
            max_length=getattr(cfg, "max_length", None),
            max_new_tokens=getattr(cfg, "max_new_tokens", None),
        )
        return predictor, cfg

    def _default_new_tokens(self) -> int:
        # Room for three of the longest labels: answers are short, and a model that never
        # learned to stop should not run on for hundreds of tokens.
        longest = sorted(self.candidates, key=len, reverse=True)[:3]
        return len(self.encoder.response_ids(self.template, longest)) + 4

    def predict(
        self, notes: list[str], decoding: str = "free", batch_size: int = 16
    ) -> list[Prediction]:
        """Codes for each note, in order. Batching never changes the answer."""
        if decoding not in DECODINGS:
            raise VetLLMError(f"decoding: got {decoding!r}; choose one of {', '.join(DECODINGS)}")
        if not isinstance(batch_size, int) or batch_size < 1:
            raise VetLLMError(f"batch_size: got {batch_size!r}; use a whole number of 1 or more")
        texts = validate_notes(notes)
        predictions = []
        for start in range(0, len(texts), batch_size):
            batch = texts[start : start + batch_size]
            if self.members or self.bag_of_words:
                per_model = [m._answers(batch, decoding) for m in (self, *self.members)]
                if self.bag_of_words:
                    per_model.append(self._voter_answers(batch, decoding))
                predictions.extend(vote(per_model))
            else:
                predictions.extend(self._answers(batch, decoding))
        for note, prediction in zip(texts, predictions, strict=True):
            self._finish(note, prediction)
        return predictions

    def _answers(self, notes: list[str], decoding: str) -> list[Prediction]:
        """This model's answers, uncalibrated (one batch)."""
        if decoding == "free":
            return self._predict_free(notes)
        return self._predict_constrained(notes)

    def _voter_answers(self, notes: list[str], decoding: str) -> list[Prediction]:
        """The bag-of-words voter's answers: its most probable label set (`_set_answer`)."""
        return [
            self._set_answer(ranked[0][0], dict(ranked), decoding, [])
            for ranked in self.bag_of_words.ranked(notes)
        ]

    def _finish(self, note: str, prediction: Prediction) -> None:
        """Calibrate the confidences, then abstain or flag a near-guess answer."""
        temperature = self.temperatures.get(prediction.decoding, 1.0)
        raw = raw_confidence(prediction)  # free decoding: the product of its codes'
        prediction.confidence = scale_confidence(raw, temperature)
        prediction.confidences = {
            code: scale_confidence(p, temperature) for code, p in prediction.confidences.items()
        }
        if self.policy is not None:
            prediction.reason = self.policy.reason(
                note, prediction.result.codes, prediction.confidence, prediction.decoding
            )
            prediction.abstained = prediction.reason is not None
        guess = LOW_CONFIDENCE_FACTOR / max(len(self.candidates), 1)
        if not prediction.abstained and prediction.confidence < guess:
            prediction.warnings.append(
                f"low confidence {prediction.confidence:.2f}: barely more than a guess among "
                f"{len(self.candidates)} labels; have a veterinarian check it"
            )

    def _prompts(self, notes: list[str]) -> tuple[list[list[int]], list[list[str]]]:
        budget = self.max_length - self.max_new_tokens
        prompts, warnings = [], []
        for note in notes:
            ids, truncated = self.encoder.prompt_ids(note, self.template, budget)
            prompts.append(ids)
            warnings.append(
                [f"note truncated to fit the model's {budget} prompt tokens"] if truncated else []
            )
        return prompts, warnings

    def _predict_constrained(self, notes: list[str]) -> list[Prediction]:
        from vetllm.engine.scoring import AnswerIds, search_label_sets

        prompts, warnings = self._prompts(notes)
        if self._answer_ids is None:  # encodings of answers with 1-2 labels, kept: ~N^2 calls
            self._answer_ids = AnswerIds(
                lambda labels: self.encoder.response_ids(self.template, list(labels)),
                self.candidates,
            )
        searched = search_label_sets(
            self.model,
            prompts,
            self.candidates,
            self._answer_ids.encode,
            self.encoder.pad_id,
            max_labels=self.max_labels,
            max_sequences=MAX_SEQUENCES_PER_FORWARD,
            answer_ids=self._answer_ids,
        )
        return [
            self._set_answer(chosen, _softmax(scored), "constrained", note_warnings)
            for (chosen, scored), note_warnings in zip(searched, warnings, strict=True)
        ]

    def _set_answer(self, chosen, shares: dict, decoding: str, warnings: list) -> Prediction:
        """The answer `chosen` among `shares` (label set -> probability): its confidence is its
        share, each code's the summed share of the sets holding it; in constrained decoding the
        three largest shares are its alternatives (free answers have none)."""
        ranked = sorted(shares.items(), key=lambda pair: -pair[1])
        raw = self.template.format_response(list(chosen))
        return Prediction(
            raw_output=raw,
            result=postprocess(raw, self.catalogue),
            confidences={
                code: sum(p for answer, p in shares.items() if code in answer) for code in chosen
            },
            decoding=decoding,
            alternatives=(
                [(", ".join(answer), p) for answer, p in ranked[:3]]
                if decoding == "constrained"
                else []
            ),
            warnings=warnings,
            confidence=shares[chosen],
        )

    def _predict_free(self, notes: list[str]) -> list[Prediction]:
        prompts, warnings = self._prompts(notes)
        generated = generate_greedy(self, prompts)
        predictions, needs_fallback = [], []
        for index, (text, token_ends, token_probs) in enumerate(generated):
            result = postprocess(text, self.catalogue)
            confidences = {}
            for code in result.codes:
                spelled = spelled_probability(text, code, token_ends, token_probs)
                if spelled is None:
                    needs_fallback.append(index)
                else:
                    confidences[code] = spelled
            predictions.append(Prediction(text, result, confidences, "free", [], warnings[index]))
        if needs_fallback:
            # Codes the model did not spell out (repaired from a disease name or a run-on
            # answer) get the probability the constrained scorer gives their label.
            rows = sorted(set(needs_fallback))
            probabilities = _candidate_probabilities(self, [prompts[i] for i in rows])
            for index, row in zip(rows, probabilities, strict=True):
                by_label = dict(zip(self.candidates, row, strict=True))
                for code in predictions[index].result.codes:
                    predictions[index].confidences.setdefault(code, by_label.get(code, 0.0))
        return predictions


def _softmax(scores: dict) -> dict:
    top = max(scores.values())
    weights = {key: math.exp(value - top) for key, value in scores.items()}
    total = sum(weights.values())
    return {key: weight / total for key, weight in weights.items()}


def _template_of(cfg) -> PromptTemplate:
    """The prompt template the run was trained with (saved in its config)."""
    prompt = getattr(cfg, "prompt", None)
    return prompt() if callable(prompt) else ALPACA


def _catalogue_of(cfg) -> Catalogue:
    extra = getattr(cfg, "catalogue", None)
    return load_catalogue(str(extra) if extra else None)


def _voter_of(run_path: Path) -> BagOfWordsVoter | None:
    """The run's bag-of-words voter (vetllm.engine.bag_of_words_vote) when its run card lists
    one, else None."""
    if not _run_card(run_path).get("bag_of_words_vote"):
        return None
    return BagOfWordsVoter.load(run_path / "model")


def _run_card(run_path: Path) -> dict:
    try:
        card = json.loads((run_path / "model" / "run_card.json").read_text("utf-8"))
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}


def _training_labels(run_path: Path) -> list[str] | None:
    """The labels seen in training (run card `train_labels`, modeling.build_run_card); None (every
    catalogue label is a candidate) when the card has none."""
    labels = _run_card(run_path).get("train_labels")
    return [str(label) for label in labels] if isinstance(labels, list) and labels else None


class _Encoder:
    """Token ids for prompts and answers, from the same functions the trainer encodes with."""

    def __init__(self, tokenizer):
        self.tokenizer = tokenizer
        self.eos_id = tokenizer.eos_token_id
        if self.eos_id is None:
            raise VetLLMError("tokenizer: it has no end-of-sequence token; retrain with one")
        pad = tokenizer.pad_token_id
        self.pad_id = self.eos_id if pad is None else pad

    def response_ids(self, template: PromptTemplate, labels: list[str]) -> list[int]:
        from vetllm.engine.collate import encode_answer

        return list(encode_answer(self.tokenizer, template, labels))

    def prompt_ids(self, note: str, template: PromptTemplate, budget: int) -> tuple[list, bool]:
        """The prompt's ids and whether the note had to be cut to fit `budget` tokens."""
        from vetllm.engine.collate import encode_prompt

        full = encode_prompt(self.tokenizer, template, note, 1 << 30)
        if len(full) <= budget:
            return list(full), False
        return list(encode_prompt(self.tokenizer, template, note, budget)), True


def _candidate_probabilities(predictor: Predictor, prompts: list[list[int]]) -> list[list[float]]:
    """Softmax over candidates of log P(answer + EOS | prompt), one row per prompt."""
    from vetllm.engine.scoring import candidate_log_probs

    if predictor._candidate_ids is None:
        predictor._candidate_ids = [
            predictor.encoder.response_ids(predictor.template, [c]) for c in predictor.candidates
        ]
    scores = candidate_log_probs(
        predictor.model,
        prompts,
        predictor._candidate_ids,
        predictor.encoder.pad_id,
        max_sequences=MAX_SEQUENCES_PER_FORWARD,
    )
    rows = []
    for row in scores:
        top = max(row)
        weights = [math.exp(s - top) for s in row]
        rows.append([w / sum(weights) for w in weights])
    return rows
