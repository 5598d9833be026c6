"""Constrained scoring: log P(answer | prompt) for every candidate answer, each prompt run once.

Every candidate answer is "Diagnosed conditions: LABEL<eos>", so scoring them as whole
prompt+answer sequences would recompute each note's prompt once per candidate. Instead:

1. the tokens every candidate answer starts with (the shared answer prefix) join the prompt;
2. one forward over the left-padded prompts (use_cache=True) gives the log-probabilities of
   those shared tokens and of every candidate's first own token, plus the prompts' key/value
   cache;
3. the cache is repeated once per candidate and a second forward feeds only the candidates'
   remaining tokens (right-padded, a few tokens each), with an attention mask that covers the
   prompt padding and position ids that continue each prompt's own count.

The sum is the same log P(answer | prompt) as a full-sequence forward (tests/test_scoring.py
compares the two); only the order of floating-point operations differs.

`search_label_sets` builds answers with several labels on top of it: greedy, one label at a
time, each step scoring complete answers (see its docstring).
"""

from __future__ import annotations

import inspect
import math
from collections import defaultdict
from collections.abc import Callable, Iterator

import torch


def candidate_log_probs(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    pad_id: int,
    max_sequences: int = 256,
) -> list[list[float]]:
    """Summed log-probability of each answer after each prompt: one row per prompt.

    Args:
        model: a causal LM (plain or PEFT-wrapped) whose forward takes `past_key_values`.
        prompts: token ids of each prompt (any lengths).
        answers: token ids of each candidate answer (EOS included), at least one token each.
        pad_id: token id used for padding; padded positions are masked and never scored.
        max_sequences: most (prompt, candidate) rows in one forward: the repeated cache holds
            this many copies of a prompt, so this bounds memory, as the old per-pair batch did.
    """
    return scores_with_last_alternatives(model, prompts, answers, None, pad_id, max_sequences)[0]


def scores_with_last_alternatives(
    model,
    prompts: list[list[int]],
    answers: list[list[int]],
    alternatives: list[int | None] | None,
    pad_id: int,
    max_sequences: int = 256,
) -> tuple[list[list[float]], list[list[float]]]:
    """(answer scores, scores with each answer's last token replaced by its alternative).

    The alternative's log-probability comes from the same position as the last token's, so it
    costs nothing extra; an answer without one (None) gets -inf. See candidate_log_probs.
    """
    if not answers or any(not answer for answer in answers):
        raise ValueError("candidate_log_probs: every candidate answer needs at least one token")
    shared = _shared_prefix(answers)
    suffixes = [answer[len(shared) :] for answer in answers]
    alternatives = alternatives or [None] * len(answers)
    scores = [[0.0] * len(answers) for _ in prompts]
    alternative_scores = [[-math.inf] * len(answers) for _ in prompts]
    for note_rows, candidate_rows in _blocks(len(prompts), len(answers), max_sequences):
        block, alternative_block = _score_block(
            model,
            [prompts[i] + shared for i in note_rows],
            len(shared),
            [suffixes[c] for c in candidate_rows],
            [alternatives[c] for c in candidate_rows],
            pad_id,
        )
        block, alternative_block = block.tolist(), alternative_block.tolist()
        for row, i in enumerate(note_rows):
            for column, c in enumerate(candidate_rows):
                scores[i][c] = block[row][column]
                if alternatives[c] is not None:
                    alternative_scores[i][c] = alternative_block[row][column]
    return scores, alternative_scores


def search_label_sets(
    model,
    prompts: list[list[int]],
    labels: list[str],
    encode: Callable[[tuple[str, ...]], list[int]],
    pad_id: int,
    max_labels: int = 4,
    max_sequences: int = 256,
    answer_ids: AnswerIds | None = None,
) -> list[tuple[tuple[str, ...], dict[tuple[str, ...], float]]]:
    """Label sets by greedy search, one label at a time: after each label, another or the end.

    Greedy decoding at the level of labels. For the current labels S and each candidate M,
    the complete answer "PREFIX S, M<eos>" is scored, and beside it the answer going on after
    M: its tokens up to the first separator token all longer answers share ("PREFIX S, M,").
    That separator is predicted at the same position as the EOS, so its log-probability comes
    from the same forward at no cost (scores_with_last_alternatives). The two add up to
    P(the next label is exactly M), which picks M; the answer ends at S, M when the EOS is more
    probable than the separator, else the search goes on from S, M. A note whose answer ends
    after one label costs one step, the cost of single-label scoring. (When a tokenizer merges
    the separator into the label, the shared tokens are scored as a candidate of their own.)

    Args:
        encode: label tuple -> token ids of the complete answer, EOS last.
        max_labels: the most labels in one answer.
        answer_ids: an AnswerIds for these labels kept between calls (it caches encodings).
    Returns:
        Per prompt: (the chosen label tuple, {label tuple: log P(answer<eos> | prompt)} of
        every complete answer scored).
    """
    ids_of = answer_ids or AnswerIds(encode, labels)
    chosen: list[tuple[str, ...]] = [() for _ in prompts]
    scored: list[dict] = [{} for _ in prompts]
    active = list(range(len(prompts)))
    while active:
        groups = defaultdict(list)
        for i in active:
            groups[chosen[i]].append(i)
        active = []
        for current, members in groups.items():
            options = [current + (m,) for m in labels if m not in current]
            going_on = [ids_of.going_on(o) if len(o) < max_labels else None for o in options]
            separators = [g[1] if g and g[0] == "separator" else None for g in going_on]
            extra = [g[1] for g in going_on if g and g[0] != "separator"]
            rows, separator_rows = scores_with_last_alternatives(
                model,
                [prompts[i] for i in members],
                [ids_of.full(o) for o in options] + extra,
                separators + [None] * len(extra),
                pad_id,
                max_sequences=max_sequences,
            )
            for i, row, separator_row in zip(members, rows, separator_rows, strict=True):
                ends = row[: len(options)]
                goes_on = _going_on_scores(going_on, ends, row, separator_row)
                scored[i].update(zip(options, ends, strict=True))
                top = max(range(len(options)), key=lambda k: _log_add(ends[k], goes_on[k]))
                chosen[i] = options[top]
                if goes_on[top] > ends[top]:
                    active.append(i)
    return list(zip(chosen, scored, strict=True))


def _going_on_scores(going_on: list, ends: list, row: list, separator_row: list) -> list:
    """Per option: log P(more labels follow it), from its separator or its shared tokens."""
    scores, column = [], len(ends)
    for index, how in enumerate(going_on):
        if how is None:
            scores.append(-math.inf)
        elif how[0] == "separator":
            scores.append(separator_row[index])
        elif how[0] == "shared":
            scores.append(row[column])
            column += 1
        else:
            value, column = row[column], column + 1
            # The shared tokens stop inside the label: their event holds the complete answer
            # too, so take it out (what is left may include other labels spelled alike: a
            # rare over-estimate of going on).
            end = ends[index]
            scores.append(value + math.log1p(-math.exp(end - value)) if value > end else -math.inf)
    return scores


def _log_add(a: float, b: float) -> float:
    """log(exp(a) + exp(b)) without overflow."""
    if a == -math.inf:
        return b
    high, low = max(a, b), min(a, b)
    return high + math.log1p(math.exp(low - high))


class AnswerIds:
    """Token ids of complete answers and how to score going on after one, cached."""

    def __init__(self, encode: Callable[[tuple[str, ...]], list[int]], labels: list[str]):
        self.encode = encode
        self._labels = labels
        self._ids: dict[tuple[str, ...], list[int]] = {}
        self._going_on: dict[tuple[str, ...], tuple | None] = {}

    def full(self, labels: tuple[str, ...]) -> list[int]:
        if labels not in self._ids:
            self._ids[labels] = list(self.encode(labels))
        return self._ids[labels]

    def going_on(self, labels: tuple[str, ...]) -> tuple[str, object] | None:
        if labels not in self._going_on:
            self._going_on[labels] = self._find_going_on(labels)
        return self._going_on[labels]

    def _find_going_on(self, labels: tuple[str, ...]) -> tuple[str, object] | None:
        """How to score "more labels follow `labels`": ("separator", token id) when every
        longer answer continues its tokens with the same token; else ("shared" or "overlaps",
        the tokens they all share); None when they share none or no label is left."""
        extensions = [self.full(labels + (m,))[:-1] for m in self._labels if m not in labels]
        if not extensions:
            return None
        length = min(len(e) for e in extensions)
        shared = 0
        while shared < length and all(e[shared] == extensions[0][shared] for e in extensions):
            shared += 1
        own, tokens = self.full(labels)[:-1], extensions[0][:shared]
        if shared > len(own) and tokens[: len(own)] == own:
            return ("separator", tokens[len(own)])
        if not shared:
            return None
        # "overlaps": the shared tokens are a prefix of the answer's own, so their event holds
        # the complete answer too; otherwise the two events are disjoint
        return ("overlaps" if own[:shared] == tokens else "shared", tokens)


def _shared_prefix(answers: list[list[int]]) -> list[int]:
    """The leading tokens all answers have in common, leaving each at least one token of its own."""
    limit = min(len(answer) for answer in answers) - 1
    length = 0
    while length < limit and all(a[length] == answers[0][length] for a in answers):
        length += 1
    return answers[0][:length]


def _blocks(n_notes: int, n_candidates: int, max_sequences: int) -> Iterator[tuple]:
    """(note indices, candidate indices) per forward, at most `max_sequences` pairs each.

    Whole candidate lists go with as many notes as fit; a list longer than the limit is split,
    and that note's prompt is then run once per part (rare: a catalogue of hundreds of labels).
    """
    candidate_step = max(1, min(n_candidates, max_sequences))
    note_step = max(1, max_sequences // candidate_step)
    for note_start in range(0, n_notes, note_step):
        notes = range(note_start, min(note_start + note_step, n_notes))
        for candidate_start in range(0, n_candidates, candidate_step):
            yield notes, range(candidate_start, min(candidate_start + candidate_step, n_candidates))


def left_pad(rows: list[list[int]], pad_id: int, device) -> tuple[torch.Tensor, torch.Tensor]:
    """Token ids padded on the left to a common width, and the mask of real tokens."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
        mask[i, width - len(row) :] = 1
    return ids.to(device), mask.to(device)


def device_of(model) -> torch.device:
    return next(model.parameters()).device


def _cache_name(model) -> str:
    """The forward argument (and output field) that carries the key/value cache.

    transformers 5.2x renamed `past_key_values` to `cache` (the old name warns and goes in
    5.40); requirements allow 5.17, which knows only the old name. PEFT passes either through.
    """
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return "cache" if "cache" in inspect.signature(base.forward).parameters else "past_key_values"


def _score_block(
    model,
    prefixes: list[list[int]],
    n_shared: int,
    suffixes: list[list[int]],
    alternatives: list[int | None],
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(notes, candidates) scores: shared answer tokens + each candidate's own tokens; and the
    same with each candidate's last token replaced by its alternative."""
    ids, mask = left_pad(prefixes, pad_id, device_of(model))
    positions = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.inference_mode():
        # Logits only where answer tokens are predicted: vocabulary-sized logits for whole
        # prompts would cost gigabytes on a 7B model.
        out = model(
            input_ids=ids,
            attention_mask=mask,
            position_ids=positions,
            use_cache=True,
            logits_to_keep=n_shared + 1,
        )
        log_probs = out.logits.float().log_softmax(-1)
        shared_score = torch.zeros(len(prefixes), device=log_probs.device)
        if n_shared:
            targets = ids[:, -n_shared:].unsqueeze(-1)
            shared_score = log_probs[:, :-1].gather(-1, targets).squeeze(-1).sum(-1)
        device = log_probs.device
        first_tokens = torch.tensor([s[0] for s in suffixes], device=device)
        other = torch.tensor([a if a is not None else 0 for a in alternatives], device=device)
        first_score = log_probs[:, -1, first_tokens]
        cache = getattr(out, _cache_name(model))
        rest_score, rest_other = _continuation_scores(model, cache, mask, suffixes, other, pad_id)
        one_token = torch.tensor([len(s) == 1 for s in suffixes], device=device)
        # a one-token suffix's alternative replaces its first token; longer ones, their last
        other_score = torch.where(one_token, log_probs[:, -1, other], first_score + rest_other)
    shared_score = shared_score.unsqueeze(-1)
    return shared_score + first_score + rest_score, shared_score + other_score


def _continuation_scores(
    model,
    cache,
    prefix_mask: torch.Tensor,
    suffixes: list[list[int]],
    alternatives: torch.Tensor,
    pad_id: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """(notes, candidates) log-probability of each suffix's tokens after its first one, and the
    same with the last token replaced by its alternative (suffixes of 2+ tokens).

    Row r of the repeated batch is note r // n_candidates with candidate r % n_candidates.
    Suffixes are right-padded: causal attention keeps padding from touching earlier tokens,
    and padded positions are left out of the sum.
    """
    n_notes, n_candidates = prefix_mask.shape[0], len(suffixes)
    width = max(len(s) for s in suffixes)
    device = prefix_mask.device
    if width == 1:  # every candidate is one token past the shared prefix: already scored
        zeros = torch.zeros((n_notes, n_candidates), device=device)
        return zeros, zeros
    tokens = torch.full((n_candidates, width), pad_id, dtype=torch.long)
    for row, suffix in enumerate(suffixes):
        tokens[row, : len(suffix)] = torch.tensor(suffix, dtype=torch.long)
    tokens = tokens.to(device).repeat(n_notes, 1)
    lengths = torch.tensor([len(s) for s in suffixes], device=device).repeat(n_notes)
    cache.batch_repeat_interleave(n_candidates)
    prefix_mask = prefix_mask.repeat_interleave(n_candidates, dim=0)
    inputs = tokens[:, :-1]  # the last token is only ever a target
    mask = torch.cat([prefix_mask, torch.ones_like(inputs)], dim=-1)
    # Each prompt's real tokens sit at positions 0..len-1, so its continuation starts at len.
    start = prefix_mask.sum(-1, keepdim=True)
    positions = start + torch.arange(width - 1, device=device)
    logits = model(
        input_ids=inputs,
        attention_mask=mask,
        position_ids=positions,
        use_cache=True,
        **{_cache_name(model): cache},
    ).logits
    log_probs = logits.float().log_softmax(-1)
    token_scores = log_probs.gather(-1, tokens[:, 1:].unsqueeze(-1)).squeeze(-1)
    in_suffix = torch.arange(1, width, device=device).unsqueeze(0) < lengths.unsqueeze(-1)
    token_scores = torch.where(in_suffix, token_scores, torch.zeros_like(token_scores))
    total = token_scores.sum(-1)
    # The last token is predicted at column length - 2; swap its score for the alternative's.
    last = (lengths - 2).clamp(min=0)
    rows = torch.arange(len(lengths), device=device)
    swapped = total - token_scores[rows, last] + log_probs[rows, last, alternatives.repeat(n_notes)]
    return total.view(n_notes, n_candidates), swapped.view(n_notes, n_candidates)
