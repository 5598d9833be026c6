"""Cached constrained scoring equals scoring every (prompt, answer) sequence on its own.

The model is a small random LLaMA with large weights (so its distributions are sharp and a
wrong position, mask or cache row changes the scores by far more than the tolerance), plain and
wrapped in a PEFT LoRA adapter as the GPU runs are. Prompts have varied lengths, so left padding
differs row by row; answers share a prefix and then differ in length, as catalogue answers do.
"""

from __future__ import annotations

import math
import random

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from vetllm.data.prompts import PromptTemplate
from vetllm.engine.predict import Predictor
from vetllm.engine.scoring import (
    _blocks,
    _shared_prefix,
    candidate_log_probs,
    search_label_sets,
)
from vetllm.engine.tiny import train_tokenizer

VOCAB, PAD, EOS = 64, 0, 2
TOLERANCE = 1e-4  # log-probabilities and probabilities: only float summation order differs


def sharp_llama(seed: int = 0) -> LlamaForCausalLM:
    """A 2-layer LLaMA with grouped-query attention and weights large enough to be decisive."""
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=VOCAB,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=256,
        pad_token_id=PAD,
        eos_token_id=EOS,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.normal_(0.0, 0.3)
    return model.eval()


def reference_log_probs(model, prompts: list[list[int]], answers: list[list[int]]) -> list:
    """log P(answer | prompt) from one unpadded forward per (prompt, answer): no tricks."""
    rows = []
    for prompt in prompts:
        row = []
        for answer in answers:
            with torch.inference_mode():
                logits = model(input_ids=torch.tensor([prompt + answer])).logits[0]
            log_probs = logits[len(prompt) - 1 : -1].float().log_softmax(-1)
            row.append(float(log_probs.gather(-1, torch.tensor(answer).unsqueeze(-1)).sum()))
        rows.append(row)
    return rows


def random_prompts(n: int, seed: int) -> list[list[int]]:
    rng = random.Random(seed)
    return [[rng.randrange(3, VOCAB) for _ in range(rng.randint(3, 60))] for _ in range(n)]


# Seven answers sharing two leading tokens, then one to four tokens of their own, EOS last.
ANSWERS = [
    [10, 11, 20, EOS],
    [10, 11, 21, 22, EOS],
    [10, 11, 21, 23, EOS],
    [10, 11, 24, 25, 26, 27, EOS],
    [10, 11, 28, EOS],
    [10, 11, 29, 30, 31, EOS],
    [10, 11, 32, 33, EOS],
]


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    # torch's thread pool spins when other processes share the cores (10x slower, measured)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def model():
    return sharp_llama()


@pytest.mark.parametrize("n_prompts", [1, 3, 16])
def test_cached_scores_equal_full_sequence_scores(model, n_prompts):
    prompts = random_prompts(n_prompts, seed=n_prompts)
    cached = candidate_log_probs(model, prompts, ANSWERS, PAD)
    expected = reference_log_probs(model, prompts, ANSWERS)
    for got_row, want_row in zip(cached, expected, strict=True):
        assert got_row == pytest.approx(want_row, abs=TOLERANCE)
    # The model is decisive enough for the comparison to mean something: candidates differ
    # by whole nats, and so do prompts.
    assert max(expected[0]) - min(expected[0]) > 1.0
    if n_prompts > 1:
        assert max(abs(a - b) for a, b in zip(expected[0], expected[1], strict=True)) > 0.1


@pytest.mark.parametrize("max_sequences", [1, 5, 7, 20])
def test_splitting_into_smaller_forwards_changes_nothing(model, max_sequences):
    prompts = random_prompts(4, seed=7)
    whole = candidate_log_probs(model, prompts, ANSWERS, PAD)
    split = candidate_log_probs(model, prompts, ANSWERS, PAD, max_sequences=max_sequences)
    for a, b in zip(whole, split, strict=True):
        assert a == pytest.approx(b, abs=TOLERANCE)


def test_answers_without_a_shared_prefix_or_of_one_token(model):
    prompts = random_prompts(3, seed=3)
    for answers in ([[5, EOS], [6, 7, EOS], [8, EOS]], [[EOS], [9]], [[12, 13, EOS]]):
        cached = candidate_log_probs(model, prompts, answers, PAD)
        expected = reference_log_probs(model, prompts, answers)
        for a, b in zip(cached, expected, strict=True):
            assert a == pytest.approx(b, abs=TOLERANCE)


def test_peft_lora_wrapped_model_scores_the_same_way():
    from peft import LoraConfig, get_peft_model

    lora = LoraConfig(
        r=4,
        lora_alpha=8,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        init_lora_weights=False,  # random adapters: the wrapped model differs from its base
    )
    base_scores = reference_log_probs(sharp_llama(seed=1), random_prompts(3, seed=1), ANSWERS)
    wrapped = get_peft_model(sharp_llama(seed=1), lora).eval()
    prompts = random_prompts(3, seed=1)
    cached = candidate_log_probs(wrapped, prompts, ANSWERS, PAD)
    expected = reference_log_probs(wrapped, prompts, ANSWERS)
    for a, b in zip(cached, expected, strict=True):
        assert a == pytest.approx(b, abs=TOLERANCE)
    assert abs(expected[0][0] - base_scores[0][0]) > 1e-3  # the adapter is really in the path


def test_shared_prefix_leaves_every_answer_a_token():
    assert _shared_prefix(ANSWERS) == [10, 11]
    assert _shared_prefix([[1, 2, 3], [1, 2, 3]]) == [1, 2]
    assert _shared_prefix([[4], [4, 5]]) == []


def test_blocks_cover_every_pair_once_within_the_limit():
    for n_notes, n_candidates, limit in [(16, 23, 256), (5, 300, 256), (3, 7, 1), (40, 23, 50)]:
        pairs = []
        for notes, candidates in _blocks(n_notes, n_candidates, limit):
            assert len(notes) * len(candidates) <= max(limit, 1)
            pairs += [(i, c) for i in notes for c in candidates]
        assert sorted(pairs) == [(i, c) for i in range(n_notes) for c in range(n_candidates)]


def test_empty_answer_is_refused(model):
    with pytest.raises(ValueError, match="at least one token"):
        candidate_log_probs(model, [[3, 4]], [[5, EOS], []], PAD)


@pytest.fixture(scope="module")
def predictor():
    """A Predictor over a random LLaMA and a tokenizer trained here (labels in several tokens)."""
    labels = ["72934000", "1679004", "local:foot-rot", "198462004", "40214000", "local:flu"]
    template = PromptTemplate(template="Note: {input}\n", note_prefix="")
    texts = [f"Note: cow with fever, lame\nDiagnosed conditions: {label}" for label in labels]
    tokenizer = train_tokenizer(texts, vocab_size=300, labels=[])
    torch.manual_seed(2)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if "norm" not in name:
                parameter.normal_(0.0, 0.1)
    return Predictor(model, tokenizer, template=template, candidates=labels)


def common_prefix(rows: list[list[int]]) -> list[int]:
    shared = []
    for column in zip(*rows, strict=False):
        if any(token != column[0] for token in column):
            break
        shared.append(column[0])
    return shared


def reference_search(model, prompt, labels, encode, max_labels=4):
    """Greedy label-set search written plainly: one unpadded forward per sequence, no cache.

    At each step, P(next label is M) = P("..., M<eos>") + P("..., M" + separator), the
    separator being the token every longer answer puts after M; pick the best M, stop when
    the EOS is more probable than the separator.
    """
    current, scored = (), {}
    while True:
        options = [current + (m,) for m in labels if m not in current]
        ends = reference_log_probs(model, [prompt], [encode(o) for o in options])[0]
        scored.update(zip(options, ends, strict=True))
        goes_on = []
        for option, end in zip(options, ends, strict=True):
            rest = [encode(option + (m,))[:-1] for m in labels if m not in option]
            shared = common_prefix(rest) if rest and len(option) < max_labels else []
            own = encode(option)[:-1]
            if len(shared) > len(own) and shared[: len(own)] == own:
                bound = own + [shared[len(own)]]
                goes_on.append(reference_log_probs(model, [prompt], [bound])[0][0])
            elif shared and own[: len(shared)] == shared:  # holds the answer itself: take it out
                value = reference_log_probs(model, [prompt], [shared])[0][0]
                goes_on.append(math.log(math.exp(value) - math.exp(end)) if value > end else None)
            elif shared:  # spelled apart from the answer (a merged separator): disjoint
                goes_on.append(reference_log_probs(model, [prompt], [shared])[0][0])
            else:
                goes_on.append(None)
        total = [
            e if g is None else math.log(math.exp(e) + math.exp(g))
            for e, g in zip(ends, goes_on, strict=True)
        ]
        top = max(range(len(options)), key=total.__getitem__)
        current = options[top]
        if goes_on[top] is None or goes_on[top] <= ends[top]:
            return current, scored


LABEL_TOKENS = {"a": [20], "b": [21, 22], "c": [21, 23], "d": [24, 25, 26], "e": [27]}
COMMA = 12


def encode_labels(labels: tuple[str, ...]) -> list[int]:
    """[10, 11] + label tokens joined by COMMA + EOS, as "Diagnosed conditions: A, B<eos>"."""
    ids = [10, 11]
    for index, label in enumerate(labels):
        ids += ([COMMA] if index else []) + LABEL_TOKENS[label]
    return ids + [EOS]


def encode_merged(labels: tuple[str, ...]) -> list[int]:
    """As encode_labels, but a label followed by more is spelled with other tokens (as a BPE
    tokenizer may merge "label," into one token): no separator token follows the label."""
    ids = [10, 11]
    for index, label in enumerate(labels):
        last = index == len(labels) - 1
        ids += LABEL_TOKENS[label] if last else [t + 20 for t in LABEL_TOKENS[label]]
    return ids + [EOS]


@pytest.mark.parametrize(
    ("max_labels", "encode"), [(1, encode_labels), (4, encode_labels), (4, encode_merged)]
)
def test_label_set_search_equals_the_plain_greedy_reference(model, max_labels, encode):
    labels = sorted(LABEL_TOKENS)
    prompts = random_prompts(6, seed=max_labels)
    found = search_label_sets(model, prompts, labels, encode, PAD, max_labels=max_labels)
    for prompt, (chosen, scored) in zip(prompts, found, strict=True):
        want, want_scored = reference_search(model, prompt, labels, encode, max_labels)
        assert chosen == want
        assert set(scored) == set(want_scored)
        for answer, value in want_scored.items():
            assert scored[answer] == pytest.approx(value, abs=TOLERANCE)


def trained_llama(examples: list[list[int]], steps: int = 150) -> LlamaForCausalLM:
    """A small LLaMA fitted to a handful of whole sequences (a few seconds on one core)."""
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=VOCAB, hidden_size=32, intermediate_size=64,
                         num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4,
                         max_position_embeddings=64, pad_token_id=PAD, eos_token_id=EOS)  # fmt: skip
    model = LlamaForCausalLM(config)
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-2)
    width = max(len(e) for e in examples)
    ids = torch.tensor([e + [PAD] * (width - len(e)) for e in examples])
    labels = torch.tensor([e + [-100] * (width - len(e)) for e in examples])
    for _ in range(steps):
        model(input_ids=ids, labels=labels).loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    return model.eval()


def test_multi_label_notes_are_right_in_constrained_mode():
    truth = {(3, 4, 5): ("a", "c"), (6, 7): ("b",), (8, 9, 9, 5): ("d", "a", "e"), (13,): ("e",)}
    model = trained_llama([list(p) + encode_labels(a) for p, a in truth.items()])
    prompts, labels = [list(p) for p in truth], sorted(LABEL_TOKENS)
    found = search_label_sets(model, prompts, labels, encode_labels, PAD, max_sequences=7)
    assert [chosen for chosen, _ in found] == list(truth.values())
    for prompt, (_, scored) in zip(prompts, found, strict=True):
        _, want_scored = reference_search(model, prompt, labels, encode_labels)
        assert set(scored) == set(want_scored)
        for answer, value in want_scored.items():
            assert scored[answer] == pytest.approx(value, abs=TOLERANCE)
    # one label at most: single-label answers, right where one label is the truth
    single = [c for c, _ in search_label_sets(model, prompts, labels, encode_labels, PAD, 1)]
    assert all(len(c) == 1 for c in single) and (single[1], single[3]) == (("b",), ("e",))


def reference_predictions(predictor: Predictor, notes: list[str]) -> list[tuple]:
    """(chosen labels, answers ranked by a softmax over reference scores) per note."""
    prompts, _ = predictor._prompts(notes)

    def encode(labels):
        return predictor.encoder.response_ids(predictor.template, list(labels))

    results = []
    for prompt in prompts:
        chosen, scored = reference_search(predictor.model, prompt, predictor.candidates, encode)
        top = max(scored.values())
        weights = {answer: math.exp(s - top) for answer, s in scored.items()}
        total = sum(weights.values())
        ranked = sorted(((a, w / total) for a, w in weights.items()), key=lambda p: -p[1])
        results.append((chosen, ranked))
    return results


@pytest.mark.parametrize("batch_size", [1, 3, 16])
def test_predictor_answers_equal_reference_scoring(predictor, batch_size):
    rng = random.Random(batch_size)
    words = "cow goat buffalo fever frothing lame cough swelling diarrhoea weak off feed".split()
    notes = [" ".join(rng.choices(words, k=rng.randint(1, 40))) for _ in range(17)]
    predictions = predictor.predict(notes, decoding="constrained", batch_size=batch_size)
    # Labels are spelled in several tokens each, so the cached continuation does real work.
    assert len(predictor.encoder.response_ids(predictor.template, ["local:foot-rot"])) > 6
    runner_up_log_p = []
    for prediction, (chosen, ranked) in zip(
        predictions, reference_predictions(predictor, notes), strict=True
    ):
        runner_up_log_p.append(math.log(ranked[1][1]))
        assert prediction.result.codes == list(chosen)
        shares = dict(ranked)
        assert prediction.confidence == pytest.approx(shares[chosen], abs=TOLERANCE)
        for code in chosen:
            marginal = sum(p for answer, p in ranked if code in answer)
            assert prediction.confidences[code] == pytest.approx(marginal, abs=TOLERANCE)
        assert len(prediction.alternatives) == 3
        for (label, p), (want, want_p) in zip(prediction.alternatives, ranked[:3], strict=True):
            assert label == ", ".join(want) and p == pytest.approx(want_p, abs=TOLERANCE)
    # The notes really steer the scores: the runner-up's probability moves from note to note.
    assert max(runner_up_log_p) - min(runner_up_log_p) > 0.5
