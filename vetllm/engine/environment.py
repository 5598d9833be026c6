"""Environment check before training: CUDA, bf16, bitsandbytes, and a GPU-memory estimate.

The estimate is deliberately rough (weights + LoRA optimizer state + activations at the full
max_length, + CUDA context) and calibrated on the measured anchors of docs/DOMAIN.md section 5:
a 7B LLaMA in NF4 with LoRA r=16, micro-batch 2 x 512 tokens with gradient checkpointing peaked
at 5.5 GB. It is an upper bound for padded batches, good enough to say "fits" or "does not".
torch and bitsandbytes are imported lazily, on the first check, so that importing this module
(and building the UI, whose Train tab shows the check) stays fast.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import json
import os
from dataclasses import dataclass
from functools import cache
from pathlib import Path

from vetllm.config import TrainConfig
from vetllm.config_checks import TINY_BASE, tracker_names
from vetllm.errors import VetLLMError

GB = 1e9
CUDA_CONTEXT_GB = 0.6  # CUDA context + allocator slack, measured order of magnitude


@dataclass(frozen=True)
class ModelShape:
    """What the estimate needs to know about a base model (from its published config)."""

    params: float  # all parameters
    hidden: int
    layers: int
    vocab: int
    heads: int


# Published configs of the preset base models (config.json of each hub repository).
KNOWN_SHAPES = {
    "alpaca": ModelShape(6.74e9, 4096, 32, 32_000, 32),
    "llama-2-7b": ModelShape(6.74e9, 4096, 32, 32_000, 32),
    "qwen2.5-7b": ModelShape(7.62e9, 3584, 28, 152_064, 28),
    "llama-3.1-8b": ModelShape(8.03e9, 4096, 32, 128_256, 32),
    "meta-llama-3.1-8b": ModelShape(8.03e9, 4096, 32, 128_256, 32),
}


def shape_of(base_model: str) -> ModelShape | None:
    """The known shape whose key occurs in the base model id (case-insensitive), else None."""
    lowered = base_model.lower().replace("_", "-")
    for key, shape in KNOWN_SHAPES.items():
        if key in lowered:
            return shape
    return None


def estimate_gpu_memory_gb(cfg: TrainConfig) -> float | None:
    """Rough peak GPU memory (GB) to train `cfg`; None for the CPU default or an unknown model."""
    shape = None if cfg.base_model == TINY_BASE else model_shape(cfg.base_model)
    if shape is None:
        return None
    embedding_params = 2 * shape.vocab * shape.hidden  # input embeddings + lm_head, kept in 16 bit
    body_params = max(shape.params - embedding_params, 0.0)
    if cfg.method == "qlora":
        weights = body_params * 0.5 * 1.05 + embedding_params * 2  # NF4 + quantisation constants
    else:
        weights = shape.params * 2  # bf16 weights
    if cfg.method == "full":
        trainable = shape.params
    else:
        modules = max(len(cfg.lora_target_modules), 1)
        trainable = 2 * cfg.lora_r * shape.hidden * modules * shape.layers
    # weight, gradient, two Adam moments, fp32 master: ~16 bytes per trainable parameter
    optimizer = trainable * 16 if cfg.method != "full" else trainable * 14
    tokens = cfg.per_device_batch * cfg.max_length
    attention = 5 * shape.heads * cfg.max_length  # scores, softmax, dropout per token (16 bit)
    per_layer = tokens * (34 * shape.hidden + attention) * 2  # bytes (Korthikanti et al. 2022)
    if cfg.gradient_checkpointing:
        activations = tokens * shape.hidden * 2 * shape.layers + per_layer
    else:
        activations = per_layer * shape.layers
    logits = tokens * shape.vocab * 4 * 3  # fp32 logits, softmax and its gradient
    return (weights + optimizer + activations + logits) / GB + CUDA_CONTEXT_GB


@cache
def _bitsandbytes_importable() -> bool:
    try:
        importlib.import_module("bitsandbytes")
    except Exception:  # noqa: BLE001 - any import failure means "not usable"
        return False
    return True


@cache
def detect_hardware() -> dict:
    """CUDA availability, bf16 support, GPU name and memory (GB), bitsandbytes importability."""
    import torch

    cuda = torch.cuda.is_available()
    facts = {"cuda": cuda, "bf16": False, "gpu_name": None, "gpu_memory_gb": None}
    if cuda:
        props = torch.cuda.get_device_properties(0)
        facts.update(
            bf16=bool(torch.cuda.is_bf16_supported()),
            gpu_name=props.name,
            gpu_memory_gb=props.total_memory / GB,
        )
    facts["bitsandbytes"] = _bitsandbytes_importable() if cuda else _bitsandbytes_installed()
    return facts


def _bitsandbytes_installed() -> bool:
    # Without CUDA, importing bitsandbytes only prints warnings; installed is what matters.
    return importlib.util.find_spec("bitsandbytes") is not None


# report_to name -> (module the Trainer's callback imports, pip package that provides it)
TRACKER_MODULES = {
    "tensorboard": ("tensorboard", "tensorboard"),
    "trackio": ("trackio", "trackio"),
    "wandb": ("wandb", "wandb"),
}


def check_trackers(cfg: TrainConfig) -> list[str]:
    """The trackers of `cfg.report_to`; VetLLMError naming any that is not installed here.

    Checked when training starts rather than when the config loads: a run's config.yaml must
    still load (to predict, to report) on a machine without its tracker.
    """
    names = tracker_names(cfg.report_to)
    missing = [n for n in names if importlib.util.find_spec(TRACKER_MODULES[n][0]) is None]
    if missing:
        packages = " ".join(TRACKER_MODULES[n][1] for n in missing)
        raise VetLLMError(
            f"report_to: {', '.join(missing)} is not installed on this machine; "
            f"`pip install {packages}`, or train with --set report_to=none"
        )
    return names


def check_environment(cfg: TrainConfig, hardware: dict | None = None) -> dict:
    """Hardware facts plus the memory estimate and a verdict for training `cfg` here."""
    facts = dict(hardware if hardware is not None else detect_hardware())
    if cfg.auto_micro_batch and facts.get("cuda"):  # judge the micro-batch that will run
        cfg, plan = apply_batch_plan(cfg, facts.get("gpu_memory_gb"))
        facts["batch_plan"] = plan.reason
    estimate = estimate_gpu_memory_gb(cfg)
    facts["memory_estimate_gb"] = estimate
    facts["runnable"], facts["verdict"] = _verdict(cfg, facts, estimate)
    return facts


def _verdict(cfg: TrainConfig, facts: dict, estimate: float | None) -> tuple[bool, str]:
    if cfg.base_model == TINY_BASE:
        return True, "the CPU default trains from scratch on the CPU; no GPU or download needed."
    if cfg.method == "qlora" and not facts.get("cuda"):
        return False, (
            f"the '{cfg.name}' preset uses QLoRA (4-bit), which needs a CUDA GPU and bitsandbytes; "
            "this machine has no CUDA GPU. Train the CPU default here, or run this preset on a "
            "GPU machine."
        )
    if cfg.method == "qlora" and not facts.get("bitsandbytes"):
        return False, "QLoRA needs bitsandbytes; install it with `pip install bitsandbytes`."
    if not facts.get("cuda"):
        return True, (
            f"no CUDA GPU: '{cfg.base_model}' will train on the CPU, which is only practical for "
            "small models."
        )
    memory = facts.get("gpu_memory_gb")
    if estimate is not None and memory and estimate > memory:
        return False, (
            f"estimated {estimate:.1f} GB is more than the GPU's {memory:.0f} GB; lower the "
            "micro-batch or max length, or turn on gradient checkpointing."
        )
    return True, "the GPU should hold this run."


# -- micro-batch planning and the preset to propose (issue 10) ------------------------------------
FAST_GPU_PRESET = "alpaca-7b-qlora-fast"  # the source's model and recipe, fast settings
CPU_PRESET = "tiny-cpu"
MEMORY_HEADROOM = 0.9  # use at most 90% of free memory: allocator fragmentation, other processes


def shape_from_config(config: dict) -> ModelShape | None:
    """A ModelShape from a LLaMA-style config.json mapping; None when a field is missing."""
    try:
        hidden, layers = int(config["hidden_size"]), int(config["num_hidden_layers"])
        vocab, heads = int(config["vocab_size"]), int(config["num_attention_heads"])
        intermediate = int(config["intermediate_size"])
    except (KeyError, TypeError, ValueError):
        return None
    kv_dim = hidden * int(config.get("num_key_value_heads") or heads) // heads
    attention = hidden * (2 * hidden + 2 * kv_dim)  # q and o square, k and v narrower with GQA
    per_layer = attention + 3 * hidden * intermediate + 2 * hidden  # + gate/up/down, two norms
    embeddings = vocab * hidden * (1 if config.get("tie_word_embeddings") else 2)
    return ModelShape(float(layers * per_layer + embeddings + hidden), hidden, layers, vocab, heads)


def model_shape(base_model: str) -> ModelShape | None:
    """The shape of a preset base (by name) or of a local folder (from its config.json)."""
    shape = shape_of(base_model)
    if shape is not None:
        return shape
    config_file = Path(base_model).expanduser() / "config.json"
    try:
        return shape_from_config(json.loads(config_file.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None


@dataclass(frozen=True)
class BatchPlan:
    """Micro-batch, accumulation and checkpointing for one effective batch, and why."""

    per_device_batch: int
    grad_accum: int
    gradient_checkpointing: bool
    estimate_gb: float | None
    reason: str


def _candidates(effective: int) -> list[tuple[int, bool]]:
    """(micro-batch, gradient checkpointing), fastest first.

    One pass over the whole effective batch is cheapest (issue 10: 8 x 1 ran 0.38 s/step against
    2.24 s at 2 x 4 with checkpointing); then half of it without checkpointing; then every divisor
    with checkpointing, which costs about one extra forward but keeps the batch large.
    """
    divisors = [m for m in range(effective, 0, -1) if effective % m == 0]
    without = [(m, False) for m in divisors if 2 * m >= effective]
    return without + [(m, True) for m in divisors]


def plan_micro_batch(cfg: TrainConfig, free_memory_gb: float | None) -> BatchPlan:
    """The fastest micro-batch whose memory estimate fits `free_memory_gb` (same effective batch).

    Pure: the caller measures free memory (gpu_free_memory_gb). Without a GPU or a known model
    shape the configured values stay. The estimate pads every batch to max_length, so the plan
    never counts on short notes (dynamic padding only ever uses less).
    """
    effective = cfg.effective_batch
    kept = BatchPlan(cfg.per_device_batch, cfg.grad_accum, cfg.gradient_checkpointing, None, "")
    if free_memory_gb is None:
        return dataclasses.replace(kept, reason="no CUDA GPU: the configured micro-batch stays")
    if estimate_gpu_memory_gb(cfg) is None:
        return dataclasses.replace(kept, reason="unknown model shape: the configured batch stays")
    budget = free_memory_gb * MEMORY_HEADROOM
    for micro, checkpointing in _candidates(effective):
        trial = cfg.replace(
            per_device_batch=micro,
            grad_accum=effective // micro,
            gradient_checkpointing=checkpointing,
        )
        estimate = estimate_gpu_memory_gb(trial)
        if estimate <= budget:
            how = "with" if checkpointing else "without"
            return BatchPlan(
                micro,
                effective // micro,
                checkpointing,
                round(estimate, 1),
                f"micro-batch {micro} x {effective // micro} {how} gradient checkpointing: "
                f"estimated {estimate:.1f} GB of {free_memory_gb:.1f} GB free",
            )
    return BatchPlan(
        1,
        effective,
        True,
        round(estimate, 1),
        f"even micro-batch 1 with checkpointing is estimated at {estimate:.1f} GB, more than "
        f"{budget:.1f} GB usable; shorten max_length or use a smaller base model",
    )


def apply_batch_plan(
    cfg: TrainConfig, free_memory_gb: float | None
) -> tuple[TrainConfig, BatchPlan]:
    """`cfg` with the planned micro-batch when auto_micro_batch is on, else unchanged.

    The returned config has auto_micro_batch off, so the run's config.yaml records what ran and a
    resumed run keeps the same micro-batch (the Trainer skips batches by count on resume).
    """
    if not cfg.auto_micro_batch:
        kept = BatchPlan(
            cfg.per_device_batch, cfg.grad_accum, cfg.gradient_checkpointing, None, "as configured"
        )
        return cfg, kept
    plan = plan_micro_batch(cfg, free_memory_gb)
    planned = cfg.replace(
        per_device_batch=plan.per_device_batch,
        grad_accum=plan.grad_accum,
        gradient_checkpointing=plan.gradient_checkpointing,
        auto_micro_batch=False,
    )
    return planned, plan


def gpu_free_memory_gb() -> float | None:
    """Free memory on this process's GPU now (GB); None without CUDA.

    Under torchrun / accelerate every rank must choose the same micro-batch, and free memory can
    differ by a few MB between ranks, so several processes plan from total memory instead.
    """
    import torch

    if not torch.cuda.is_available():
        return None
    free, total = torch.cuda.mem_get_info()
    return (total if int(os.environ.get("WORLD_SIZE", "1")) > 1 else free) / GB


def default_preset(hardware: dict) -> str:
    """The preset the Train tab proposes: the fast QLoRA preset on a CUDA GPU that can run it."""
    if not (hardware.get("cuda") and hardware.get("bitsandbytes") and hardware.get("bf16")):
        return CPU_PRESET
    from vetllm import resources
    from vetllm.config import load_config

    preset = resources.PRESETS_DIR / f"{FAST_GPU_PRESET}.yaml"
    if not preset.is_file():
        return CPU_PRESET
    plan = plan_micro_batch(load_config(preset), hardware.get("gpu_memory_gb"))
    fits = plan.estimate_gb is not None and plan.estimate_gb <= (hardware["gpu_memory_gb"] or 0)
    return FAST_GPU_PRESET if fits else CPU_PRESET
