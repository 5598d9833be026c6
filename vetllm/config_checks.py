"""The values a TrainConfig accepts: the allowed choices and the rules across fields.

`value_problems(cfg)` runs once the field types are right and returns one line per broken rule
("learning_rate: got -1.0; use a positive number below 1, ..."), every rule checked, so a bad
config is reported whole (a hub: data value is checked for its form only, without the network).
The choices (methods, schedulers, attention kernels, trackers) live here beside the rules that
use them; `vetllm.config` re-exports them. Pure Python.
"""

from __future__ import annotations

import math

from vetllm.data.hf_datasets import HUB_FORM, is_hub_source, parse_hub_source
from vetllm.data.prompts import ALPACA_TEMPLATE
from vetllm.errors import DataError

TINY_BASE = "tiny"  # base_model value that builds the CPU default from scratch (no download)
METHODS = ("full", "lora", "qlora")
SCHEDULERS = ("linear", "cosine", "constant", "constant_with_warmup")
ATTENTION_IMPLEMENTATIONS = ("sdpa", "flash_attention_2", "eager")
TRACKERS = ("tensorboard", "trackio", "wandb")  # report_to values this package supports
# A compact prompt for the tiny model: it has no use for the long Alpaca preamble, and every prompt
# token costs CPU time; the answer format ("Diagnosed conditions: ...") stays the same.
COMPACT_TEMPLATE = "Note: {input}\n"
PROMPT_STYLES = {"alpaca": ALPACA_TEMPLATE, "compact": COMPACT_TEMPLATE}


def tracker_names(report_to: str) -> list[str]:
    """The trackers named by a report_to value ("none" or empty -> none)."""
    names = [part.strip().lower() for part in report_to.split(",") if part.strip()]
    return [] if names == ["none"] else names


MAX_ENSEMBLE = 9  # each model is a full training run: nine already take nine times as long

# (field, is the value acceptable?, what to write instead); checked in this order, all reported.
_RULES: tuple = (
    ("name", lambda c: bool(c.name.strip()), "give the run a short name"),
    ("method", lambda c: c.method in METHODS, f"use one of {', '.join(METHODS)}"),
    (
        "method",
        lambda c: c.base_model != TINY_BASE or c.method == "full",
        "the tiny CPU model is trained from scratch: use method: full with base_model: tiny",
    ),
    ("base_model", lambda c: bool(c.base_model.strip()), "use 'tiny', a hub id or a local dir"),
    ("data", lambda c: bool(c.data.strip()), "give a training file or 'bundled'"),
    (
        "prompt_template",
        lambda c: c.prompt_template in PROMPT_STYLES or "{input}" in c.prompt_template,
        "use 'alpaca', 'compact' or a template text containing {input}",
    ),
    ("lr_scheduler", lambda c: c.lr_scheduler in SCHEDULERS, f"use one of {', '.join(SCHEDULERS)}"),
    (
        "learning_rate",
        lambda c: math.isfinite(c.learning_rate) and 0 < c.learning_rate < 1,
        "use a positive number below 1, e.g. 2e-4 (LoRA) or 3e-3 (tiny)",
    ),
    ("warmup_ratio", lambda c: 0 <= c.warmup_ratio < 1, "use a share from 0 to below 1, e.g. 0.03"),
    ("weight_decay", lambda c: c.weight_decay >= 0, "use 0 or a small positive number"),
    ("max_grad_norm", lambda c: c.max_grad_norm > 0, "use a positive number, e.g. 1.0"),
    (
        "epochs",
        lambda c: math.isfinite(c.epochs) and 0 < c.epochs <= 1000,
        "use a positive number of epochs, e.g. 3",
    ),
    ("lora_dropout", lambda c: 0 <= c.lora_dropout < 1, "use a probability below 1, e.g. 0.1"),
    (
        "note_token_dropout",
        lambda c: 0 <= c.note_token_dropout < 0.5,
        "use a share from 0 (off) to below 0.5, e.g. 0.1",
    ),
    (
        "ensemble",
        lambda c: 1 <= c.ensemble <= MAX_ENSEMBLE,
        f"use 1 (one model) to {MAX_ENSEMBLE} models, e.g. 3",
    ),
    (
        "ensemble",
        lambda c: c.ensemble == 1 or c.base_model == TINY_BASE,
        "use 1: seed ensembles are for the tiny CPU model (each LLM would take its own hours "
        "of GPU time)",
    ),
    (
        "bag_of_words_vote",
        lambda c: not c.bag_of_words_vote or c.ensemble >= 2,
        "set it to false, or ensemble: 3: the bag of words was measured as one voter among "
        "several models; beside one model it would overrule that model whenever it is surer",
    ),
    (
        "note_segment_shuffle",
        lambda c: 0 <= c.note_segment_shuffle <= 1,
        "use a chance from 0 (off) to 1, e.g. 0.5",
    ),
    (
        "lora_target_modules",
        lambda c: bool(c.lora_target_modules) or c.method == "full",
        "list the modules to adapt, e.g. [q_proj, k_proj, v_proj, o_proj]",
    ),
    ("max_length", lambda c: c.max_length >= 32, "use at least 32 tokens (prompt + answer)"),
    ("tiny_vocab_size", lambda c: c.tiny_vocab_size >= 300, "use at least 300 (bytes + merges)"),
    (
        "tiny_heads",
        lambda c: c.tiny_heads > 0 and c.tiny_hidden_size % c.tiny_heads == 0,
        "use a positive divisor of tiny_hidden_size",
    ),
    (
        "early_stopping_patience",
        lambda c: c.early_stopping_patience is None or c.val_data is not None,
        "early stopping needs val_data",
    ),
    (
        "early_stopping_patience",
        lambda c: c.early_stopping_patience is None or c.eval_steps is not None,
        "early stopping needs eval_steps (how often to validate)",
    ),
)
_POSITIVE = (
    "per_device_batch",
    "grad_accum",
    "logging_steps",
    "save_steps",
    "max_new_tokens",
    "lora_r",
    "lora_alpha",
    "tiny_hidden_size",
    "tiny_layers",
    "tiny_intermediate_size",
)
_POSITIVE_OR_OFF = (
    "max_steps",
    "eval_steps",
    "early_stopping_patience",
    "torch_threads",
    "eval_samples",
)


def value_problems(cfg) -> list[str]:
    """Every broken value rule of a config whose field types are right, one line each."""
    problems = [
        f"{name}: got {getattr(cfg, name)!r}; {fix}" for name, ok, fix in _RULES if not ok(cfg)
    ]
    problems += [
        f"{name}: got {getattr(cfg, name)!r}; use a positive integer"
        for name in _POSITIVE
        if getattr(cfg, name) <= 0
    ]
    problems += [
        f"{name}: got {getattr(cfg, name)!r}; use a positive integer or null (off)"
        for name in _POSITIVE_OR_OFF
        if getattr(cfg, name) is not None and getattr(cfg, name) <= 0
    ]
    return (
        problems
        + _check_abstain(cfg)
        + _check_sources(cfg)
        + _check_recipe(cfg)
        + _check_speed(cfg)
        + _check_tracking(cfg)
    )


def _check_sources(cfg) -> list[str]:
    """data / val_data written hub:...: the form hub:USER/NAME[:SPLIT], checked without the
    network, so a typo stops `config validate` and `train` before a run folder exists."""
    problems = []
    for name in ("data", "val_data"):
        value = getattr(cfg, name)
        if value is None or not is_hub_source(value):
            continue
        try:
            parse_hub_source(str(value))
        except DataError:
            problems.append(f"{name}: got {value!r}; not a Hub dataset name: {HUB_FORM}")
    return problems


def _check_recipe(cfg) -> list[str]:
    """The training-mix fields: a count of synthetic notes the machine can hold."""
    if not 0 <= cfg.synthetic_notes <= 20_000:
        return [
            f"synthetic_notes: got {cfg.synthetic_notes!r}; use 0 (off) to 20000 notes, e.g. 800"
        ]
    return []


def _check_speed(cfg) -> list[str]:
    """The GPU speed fields (issue 10)."""
    problems = []
    if cfg.attn_implementation not in (None, *ATTENTION_IMPLEMENTATIONS):
        problems.append(
            f"attn_implementation: got {cfg.attn_implementation!r}; use one of "
            f"{', '.join(ATTENTION_IMPLEMENTATIONS)}, or null for transformers' default"
        )
    if cfg.auto_micro_batch and cfg.drop_last:
        # With drop_last the step count depends on the micro-batch (1,602 notes: 603 steps at
        # 2 x 4 but 600 at 8 x 1); without it, it depends only on the effective batch.
        problems.append(
            "auto_micro_batch: got true with drop_last: true; set drop_last: false so that "
            "changing the micro-batch keeps the optimizer step count"
        )
    return problems


def _check_tracking(cfg) -> list[str]:
    unknown = [name for name in tracker_names(cfg.report_to) if name not in TRACKERS]
    if not unknown:
        return []
    return [f"report_to: got {cfg.report_to!r}; use none or any of {', '.join(TRACKERS)}"]


def _check_abstain(cfg) -> list[str]:
    target = cfg.abstain_target_accuracy
    if target is None or (math.isfinite(target) and 0 < target < 1):
        return []
    return [
        f"abstain_target_accuracy: got {target!r}; use a share above 0 and below 1 "
        "(e.g. 0.95) or null (off)"
    ]
