"""Fast prediction: a merged adapter gives the same codes as the unmerged one; batch sizing."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from vetllm.engine.fast_predict import (
    dense_copy_gb,
    kv_bytes_per_token,
    merge_for_inference,
    predict_batch_size,
)

NOTES = [
    "Cow, 4 years: high fever, drooling, blisters on the tongue and between the claws.",
    "Goat with nasal discharge, cough and fever for three days.",
    "Buffalo: swelling of the neck, difficult breathing, sudden death in the herd.",
    "Sheep, lame, lesions on the feet and mouth.",
    "Calf with diarrhoea and dehydration.",
    "Cow: reduced milk yield, swollen hot udder, clots in the milk.",
    "Goat, abortion in late pregnancy, retained placenta.",
    "Sheep: fever, lip scabs, crusts around the mouth.",
]


@pytest.fixture(scope="module")
def lora_run(tmp_path_factory) -> Path:
    """A tiny random LLaMA (saved with weights) fine-tuned with LoRA for a few steps."""
    import torch

    from vetllm.config import TrainConfig
    from vetllm.data.synth import bundled_examples
    from vetllm.engine.random_llama import build_random_model, write_base
    from vetllm.engine.training import train

    work = tmp_path_factory.mktemp("lora")
    train_file, _ = bundled_examples()
    base = write_base(work / "base", "tiny", train_file)
    build_random_model(base, quantize=False).save_pretrained(base)
    cfg = TrainConfig(
        name="lora-merge",
        base_model=str(base),
        method="lora",
        data=str(train_file),
        val_data=None,
        max_steps=6,
        per_device_batch=8,
        grad_accum=1,
        drop_last=False,
        learning_rate=5e-3,  # large enough that the adapter moves the answers
        max_length=256,
        logging_steps=3,
        save_steps=6,
        final_eval=False,
        torch_threads=1,
    )
    threads = torch.get_num_threads()
    try:
        status = train(cfg, work / "run")
    finally:
        torch.set_num_threads(threads)
    assert status["state"] == "completed"
    return work / "run"


@pytest.mark.slow
def test_merged_and_unmerged_lora_give_identical_codes(lora_run):
    from vetllm.engine.fast_predict import make_fast
    from vetllm.engine.predict import Predictor

    unmerged = Predictor.from_run(lora_run)
    assert any(hasattr(m, "lora_A") for m in unmerged.model.modules())
    before = {d: unmerged.predict(NOTES, d, batch_size=4) for d in ("free", "constrained")}
    fast = make_fast(unmerged)
    assert fast.merged and fast.batch_size == 128  # CPU: no memory limit known, the cap
    assert not any(hasattr(m, "lora_A") for m in fast.predictor.model.modules())
    for decoding, expected in before.items():
        after = fast.predictor.predict(NOTES, decoding, batch_size=4)
        assert [p.result.codes for p in after] == [p.result.codes for p in expected]
        assert [p.raw_output for p in after] == [p.raw_output for p in expected]
        for a, b in zip(after, expected, strict=True):
            for code, confidence in b.confidences.items():
                assert a.confidences[code] == pytest.approx(confidence, abs=1e-4)


@pytest.mark.slow
def test_a_4bit_base_is_dequantised_and_merged(tmp_path):
    """bitsandbytes quantises on the CPU too: the merge leaves a plain dense model."""
    if importlib.util.find_spec("bitsandbytes") is None:
        pytest.skip("bitsandbytes is not installed")
    import torch
    from peft import LoraConfig, get_peft_model

    from vetllm.data.synth import bundled_examples
    from vetllm.engine.random_llama import build_random_model, write_base

    base = write_base(tmp_path / "base", "tiny", bundled_examples()[0])
    model = build_random_model(base, quantize=True)
    lora = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM")
    model = get_peft_model(model, lora).eval()
    assert dense_copy_gb(model) > 0
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    kept, merged, reason = merge_for_inference(model, free_memory_gb=0.001)
    assert (kept, merged) == (model, False) and "4-bit path kept" in reason
    dense, merged, reason = merge_for_inference(model, free_memory_gb=None)
    assert merged and "dequantised" in reason
    assert not any(type(m).__name__ == "Linear4bit" for m in dense.modules())
    with torch.no_grad():
        got = dense(input_ids=ids).logits
    # bitsandbytes' CPU kernel and its dequantise agree to ~1e-2 here (fp32 on the GPU path
    # is checked by `vetllm bench --gpu`, which counts notes whose codes differ).
    assert torch.allclose(got, expected, atol=2e-2)


def test_a_full_fine_tune_has_nothing_to_merge():
    import torch

    model = torch.nn.Sequential(torch.nn.Linear(4, 4))
    assert merge_for_inference(model, 80.0) == (model, False, "full fine-tune: no adapter to merge")


def test_batch_size_follows_free_memory_and_is_capped():
    from types import SimpleNamespace

    llama_7b = SimpleNamespace(
        num_attention_heads=32, hidden_size=4096, num_hidden_layers=32, num_key_value_heads=32
    )
    per_token = kv_bytes_per_token(llama_7b)
    assert per_token == 524_288  # 2 (k, v) x 32 layers x 4096 x 2 bytes
    assert predict_batch_size(None, per_token, 512) == 128
    assert predict_batch_size(139.0, per_token, 512) == 128
    small = predict_batch_size(12.0, per_token, 512)
    assert 1 <= small < 128
    assert small == int((12.0 * 0.9 - 2.0) * 1e9 // (2 * per_token * 512))
    assert predict_batch_size(1.0, per_token, 512) == 1
