"""Fast prediction for LoRA / QLoRA runs: the adapter merged into a dense copy of the base.

An unmerged QLoRA model pays twice on every forward: each 4-bit weight is dequantised again, and
each adapted projection runs two extra small matrix products (issue 10 measured 0.94 notes/s at
batch 1 and 7.5 batched on a 7B shape). `merge_for_inference` dequantises every 4-bit layer once
into the compute dtype (bf16 on a GPU) and adds the adapter's delta (scaling x B @ A, summed in
fp32) into the weights it adapts, so the model is a plain dense LLaMA again. The dequantised NF4
weights are exactly the values the 4-bit kernels multiply with, so the merged model computes the
same function as the unmerged one up to bf16 rounding of the sums (the codes are compared in
tests/test_fast_predict.py and by `vetllm bench --gpu`). It merges only when the dense copy fits
in free memory, else the 4-bit path stays. `predict_batch_size` picks notes per batch from free
memory and the key/value cache each note needs. Note text is never logged.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path

GB = 1e9
MEMORY_HEADROOM = 0.9  # use at most 90% of free memory
RESERVE_GB = 2.0  # kept free for the prediction batches after merging (activations, logits)
MAX_BATCH = 128  # notes per batch; beyond this a 7B model on one GPU gains little


@dataclass
class FastPredictor:
    """A Predictor after `fast_predictor`: whether it was merged, the batch size and why."""

    predictor: object  # vetllm.engine.predict.Predictor
    merged: bool
    batch_size: int
    reason: str


def _is_lora(module) -> bool:
    return hasattr(module, "lora_A") and hasattr(module, "base_layer")


def _is_4bit(module) -> bool:
    """A bitsandbytes 4-bit layer (PEFT's LoRA wrapper of one has the same class name)."""
    if type(module).__name__ != "Linear4bit" or _is_lora(module):
        return False
    return getattr(module.weight, "quant_state", None) is not None


def _compute_dtype(layer):
    return getattr(layer, "compute_dtype", None) or layer.weight.quant_state.dtype


def _dense_weight(layer):
    """The weight a (possibly 4-bit) linear layer multiplies with, as a dense fp32 tensor."""
    if _is_4bit(layer):
        import bitsandbytes.functional as bnb_functional

        data, state = layer.weight.data, layer.weight.quant_state
        if getattr(state, "packing_format_for_cpu", False):
            # bitsandbytes repacks 4-bit weights for its CPU kernel on the first CPU forward;
            # dequantising needs the standard layout back.
            data, state = bnb_functional._convert_weight_packed_for_cpu_inverse(data, state)
        weight = bnb_functional.dequantize_4bit(data, state)
        return weight.float(), _compute_dtype(layer)
    return layer.weight.data.float(), layer.weight.dtype


def _linear_from(weight, bias, dtype):
    import torch

    out_features, in_features = weight.shape
    linear = torch.nn.Linear(
        in_features, out_features, bias=bias is not None, device=weight.device, dtype=dtype
    )
    with torch.no_grad():
        linear.weight.copy_(weight.to(dtype))
        if bias is not None:
            linear.bias.copy_(bias.to(dtype))
    return linear


def dense_copy_gb(model) -> float:
    """Extra memory (GB) to hold every 4-bit layer dense in its compute dtype; 0 without any."""
    total = 0.0
    for module in model.modules():
        if _is_4bit(module):
            itemsize = _compute_dtype(module).itemsize
            total += module.in_features * module.out_features * itemsize
    return total / GB


def _replace(model, name: str, new_module) -> None:
    parent_name, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent_name) if parent_name else model, child, new_module)


def merge_adapters(model):
    """Every LoRA layer folded into a dense Linear, every other 4-bit layer dequantised.

    Returns the bare transformers model (the PEFT wrapper is gone), in eval mode.
    """
    import torch

    with torch.no_grad():
        for name, module in list(model.named_modules()):
            if not _is_lora(module):
                continue
            weight, dtype = _dense_weight(module.base_layer)
            adapters = [] if module.disable_adapters or module.merged else module.active_adapters
            for adapter in adapters:
                if adapter in module.lora_A:
                    weight += module.get_delta_weight(adapter).float()
            _replace(model, name, _linear_from(weight, module.base_layer.bias, dtype))
        for name, module in list(model.named_modules()):
            if _is_4bit(module):
                weight, dtype = _dense_weight(module)
                _replace(model, name, _linear_from(weight, module.bias, dtype))
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    # A plain dense model now; these flags may be read-only properties of a from_pretrained model.
    for flag, value in (("is_loaded_in_4bit", False), ("quantization_method", None)):
        if getattr(base, flag, None):
            with contextlib.suppress(AttributeError):
                setattr(base, flag, value)
    return base.eval()


def merge_for_inference(model, free_memory_gb: float | None) -> tuple[object, bool, str]:
    """(model, merged?, why): merged when it is a PEFT model and the dense copy fits.

    Args:
        free_memory_gb: free memory on the model's device; None = no limit known (CPU).
    """
    if not any(_is_lora(m) for m in model.modules()):
        return model, False, "full fine-tune: no adapter to merge"
    needed = dense_copy_gb(model)
    if free_memory_gb is not None and needed > free_memory_gb * MEMORY_HEADROOM - RESERVE_GB:
        return (
            model,
            False,
            (f"4-bit path kept: a dense copy needs {needed:.1f} GB, {free_memory_gb:.1f} GB free"),
        )
    how = f"4-bit base dequantised ({needed:.1f} GB) and " if needed else ""
    return merge_adapters(model), True, how + "adapter merged into the weights"


def kv_bytes_per_token(config) -> int:
    """Key/value cache bytes per token for a transformers model config (16-bit cache)."""
    heads = config.num_attention_heads
    head_dim = getattr(config, "head_dim", None) or config.hidden_size // heads
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    return 2 * config.num_hidden_layers * kv_heads * head_dim * 2


def predict_batch_size(
    free_memory_gb: float | None, kv_per_token: int, tokens_per_note: int, cap: int = MAX_BATCH
) -> int:
    """Notes per batch: free memory over what one note's cache and activations need.

    Pure. Each note holds its key/value cache for prompt + answer tokens; activations and the
    per-step logits take about as much again in a forward (hence x2). None (CPU) gives `cap`.
    """
    if free_memory_gb is None:
        return cap
    per_note = 2 * kv_per_token * tokens_per_note
    usable = max(free_memory_gb * MEMORY_HEADROOM - RESERVE_GB, 0.0) * GB
    return max(1, min(cap, int(usable // per_note)))


def free_memory_gb(model) -> float | None:
    """Free memory on the model's CUDA device (GB); None on the CPU."""
    import torch

    device = next(model.parameters()).device
    if device.type != "cuda":
        return None
    free, _ = torch.cuda.mem_get_info(device)
    return free / GB


def make_fast(predictor, merge: bool = True) -> FastPredictor:
    """Merge a loaded Predictor's adapter when memory allows and choose its batch size."""
    import gc

    import torch

    merged, reason = False, "merging not asked for"
    if merge:
        model, merged, reason = merge_for_inference(
            predictor.model, free_memory_gb(predictor.model)
        )
        predictor.model = model
        gc.collect()
        if torch.cuda.is_available():
            torch.cuda.empty_cache()  # the 4-bit weights are free now
    config = predictor.model.config
    batch = predict_batch_size(
        free_memory_gb(predictor.model), kv_bytes_per_token(config), predictor.max_length
    )
    return FastPredictor(predictor, merged, batch, reason)


def fast_predictor(run_dir: str | Path, device: str | None = None) -> FastPredictor:
    """A run's Predictor, merged when memory allows, with a batch size from free memory."""
    from vetllm.engine.predict import Predictor

    return make_fast(Predictor.from_run(run_dir, device=device))
