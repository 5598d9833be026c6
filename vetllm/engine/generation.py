"""Free decoding for Predictor: batched greedy generation with each token's probability.

`generate_greedy` runs the model's own `generate` on left-padded prompts and returns the text,
where each token ends in it and each token's probability; `spelled_probability` turns those
into a code's confidence (the product of the probabilities of the tokens that spell it).
Note text is clinical data: nothing here logs or prints it.
"""

from __future__ import annotations

import math


def spelled_probability(
    text: str, code: str, token_ends: list[int], token_probs: list[float]
) -> float | None:
    """Product of the probabilities of the generated tokens that spell `code`, if it is there."""
    start = text.find(code)
    if start < 0 or not token_ends:
        return None
    end = start + len(code)
    log_p, previous_end = 0.0, 0
    for token_end, prob in zip(token_ends, token_probs, strict=True):
        if token_end > start and previous_end < end:
            log_p += math.log(max(prob, 1e-12))
        previous_end = token_end
    return math.exp(log_p)


def generate_greedy(predictor, prompts: list[list[int]]) -> list[tuple]:
    """(text, end offset of each token in the text, each token's probability) per prompt."""
    import torch

    from vetllm.engine.scoring import device_of, left_pad

    model, enc = predictor.model, predictor.encoder
    ids, mask = left_pad(prompts, enc.pad_id, device_of(model))
    with torch.inference_mode():
        out = model.generate(
            input_ids=ids,
            attention_mask=mask,
            max_new_tokens=predictor.max_new_tokens,
            do_sample=False,
            num_beams=1,
            pad_token_id=enc.pad_id,
            eos_token_id=enc.eos_id,
            output_scores=True,
            return_dict_in_generate=True,
        )
        probs = model.compute_transition_scores(out.sequences, out.scores, normalize_logits=True)
    new_tokens = out.sequences[:, ids.shape[1] :].tolist()
    probs = probs.float().exp().tolist()
    results = []
    for tokens, token_probs in zip(new_tokens, probs, strict=True):
        if enc.eos_id in tokens:
            tokens = tokens[: tokens.index(enc.eos_id)]
        decode = predictor.tokenizer.decode
        ends = [len(decode(tokens[: i + 1], skip_special_tokens=True)) for i in range(len(tokens))]
        text = decode(tokens, skip_special_tokens=True)
        results.append((text, ends, token_probs[: len(tokens)]))
    return results
