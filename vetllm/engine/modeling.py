"""Loading base models (hub id or local directory), applying full / LoRA / QLoRA, loading runs.

A base model that is not on this machine while the hub is offline fails at once with a message
saying how to bring the weights over; QLoRA without CUDA or bitsandbytes fails with a message,
not a crash deep in a kernel. `load_trained(run_dir)` rebuilds a finished run for inference
(base + adapter for LoRA/QLoRA, 4-bit on CUDA for QLoRA).
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

from vetllm.config import TrainConfig, load_config
from vetllm.errors import VetLLMError

RUN_CARD = "run_card.json"


def hub_offline() -> bool:
    """True when the environment forbids reaching the model hub (HF_HUB_OFFLINE and friends)."""
    flags = (os.environ.get(name, "") for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))
    return any(flag.strip().lower() in ("1", "true", "yes", "on") for flag in flags)


def _looks_like_path(name: str) -> bool:
    return name.startswith(("/", ".", "~")) or name.count("/") > 1 or os.sep + os.sep in name


def _download_hint(name: str) -> str:
    return (
        f"on a connected machine run `huggingface-cli download {name} --local-dir DIR`, copy DIR "
        "here, then set base_model: DIR (or --set base_model=DIR)"
    )


def resolve_base_model(cfg: TrainConfig) -> str:
    """The local directory or hub id to load; fails fast when the weights cannot be had."""
    name = cfg.base_model
    local = Path(name).expanduser()
    if local.is_dir():
        if not (local / "config.json").is_file():
            raise VetLLMError(
                f"base_model {name!r}: the directory has no config.json; point it at a folder "
                "saved with save_pretrained or downloaded with huggingface-cli download"
            )
        return str(local.resolve())
    if _looks_like_path(name):
        raise VetLLMError(f"base_model {name!r}: no such directory; fix the path or use a hub id")
    offline = hub_offline()
    try:
        AutoConfig.from_pretrained(name, revision=cfg.base_revision, local_files_only=offline)
    except (OSError, ValueError) as error:
        why = (
            "the hub is offline (HF_HUB_OFFLINE=1)"
            if offline
            else f"it could not be fetched ({type(error).__name__})"
        )
        raise VetLLMError(
            f"base_model {name!r}: not found on this machine and {why}; {_download_hint(name)}"
        ) from None
    return name


def require_qlora_support() -> None:
    """QLoRA needs a CUDA GPU and bitsandbytes; say so plainly when either is missing."""
    if not torch.cuda.is_available():
        raise VetLLMError(
            "method 'qlora' needs a CUDA GPU (4-bit NF4 weights via bitsandbytes) and this machine "
            "has none; use method: lora or full with a small base model, or base_model: tiny "
            "(configs/tiny-cpu.yaml) for the CPU default"
        )
    try:
        import bitsandbytes  # noqa: F401
    except ImportError:
        raise VetLLMError(
            "method 'qlora' needs the bitsandbytes package: pip install bitsandbytes"
        ) from None


def compute_dtype() -> torch.dtype:
    """bf16 where the GPU supports it (Ampere and newer), else fp16; fp32 on CPU."""
    if not torch.cuda.is_available():
        return torch.float32
    return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16


def _local_rank_device_map() -> dict[str, int] | None:
    # Under torchrun / accelerate each process puts the whole (4-bit) model on its own GPU.
    return {"": int(os.environ.get("LOCAL_RANK", "0"))} if torch.cuda.is_available() else None


def load_base_tokenizer(source: str, revision: str | None = None):
    """The base model's tokenizer with a pad token (LLaMA-family tokenizers ship none)."""
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            source, revision=revision, local_files_only=hub_offline()
        )
    except (OSError, ValueError) as error:
        raise VetLLMError(f"base_model {source!r}: cannot load its tokenizer ({error})") from None
    if tokenizer.pad_token_id is None:
        # Padding positions carry label -100 and attention 0, so which token pads is immaterial.
        tokenizer.pad_token = tokenizer.unk_token or tokenizer.eos_token
    return tokenizer


def load_base_model(source: str, cfg: TrainConfig, *, quantize: bool):
    """The base causal LM, 4-bit NF4 with double quantisation when `quantize` (QLoRA)."""
    kwargs: dict = {"revision": cfg.base_revision, "local_files_only": hub_offline()}
    if getattr(cfg, "attn_implementation", None):  # issue 10: sdpa / flash attention
        kwargs["attn_implementation"] = cfg.attn_implementation
    if quantize:
        from transformers import BitsAndBytesConfig

        kwargs["quantization_config"] = BitsAndBytesConfig(
            load_in_4bit=True,
            bnb_4bit_quant_type="nf4",
            bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=compute_dtype(),
        )
        kwargs["device_map"] = _local_rank_device_map()
        kwargs["dtype"] = compute_dtype()
    elif torch.cuda.is_available() and cfg.bf16:
        kwargs["dtype"] = compute_dtype()
    try:
        return AutoModelForCausalLM.from_pretrained(source, **kwargs)
    except OSError as error:
        raise VetLLMError(f"base_model {source!r}: cannot load the weights ({error})") from None


def apply_method(model, cfg: TrainConfig):
    """Wrap the base model for the configured method; full fine-tuning returns it unchanged."""
    if cfg.method == "full":
        return model
    from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training

    if cfg.method == "qlora":
        model = prepare_model_for_kbit_training(
            model, use_gradient_checkpointing=cfg.gradient_checkpointing
        )
    lora = LoraConfig(
        r=cfg.lora_r,
        lora_alpha=cfg.lora_alpha,
        lora_dropout=cfg.lora_dropout,
        target_modules=list(cfg.lora_target_modules),
        bias="none",
        task_type="CAUSAL_LM",
    )
    try:
        return get_peft_model(model, lora)
    except ValueError as error:
        raise VetLLMError(
            f"lora_target_modules {cfg.lora_target_modules}: {error}; list module names of this "
            "model (LLaMA/Qwen: q_proj, k_proj, v_proj, o_proj)"
        ) from None


def count_parameters(model) -> dict:
    """Trainable and total parameters (4-bit weights counted as the values they hold)."""
    if hasattr(model, "get_nb_trainable_parameters"):
        trainable, total = model.get_nb_trainable_parameters()
    else:
        trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
        total = sum(p.numel() for p in model.parameters())
    share = trainable / total if total else 0.0
    return {"trainable": int(trainable), "total": int(total), "trainable_share": share}


def _run_paths(run_dir: str | Path) -> tuple[Path, Path]:
    run_dir = Path(run_dir)
    model_dir = run_dir / "model"
    if not (run_dir / "config.yaml").is_file():
        raise VetLLMError(f"run {run_dir.name}: no config.yaml; is this a run directory?")
    if not (model_dir / RUN_CARD).is_file():
        raise VetLLMError(
            f"run {run_dir.name}: no final model yet; wait for training to finish, or resume it "
            f"with `vetllm train --config {run_dir.name}/config.yaml --output {run_dir.name} --resume`"
        )
    return run_dir, model_dir


def load_trained(run_dir: str | Path, device: str | None = None):
    """(model, tokenizer, cfg) of a finished run, in eval mode, ready for generation.

    Full fine-tunes (the tiny default) load from RUN_DIR/model; LoRA/QLoRA runs load the base
    model (4-bit on CUDA for QLoRA, full precision elsewhere) and attach the adapter.
    """
    run_dir, model_dir = _run_paths(run_dir)
    cfg = load_config(run_dir / "config.yaml")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if cfg.method == "full":
        model = AutoModelForCausalLM.from_pretrained(model_dir).to(device)
    else:
        from peft import PeftModel

        card = json.loads((model_dir / RUN_CARD).read_text(encoding="utf-8"))
        source = card.get("base_model_source") or resolve_base_model(cfg)
        quantize = cfg.method == "qlora" and device.startswith("cuda")
        base = load_base_model(source, cfg, quantize=quantize)
        if not quantize:
            base = base.to(device)
        model = PeftModel.from_pretrained(base, model_dir)
    model.eval()
    return model, tokenizer, cfg


# -- building the model to train -------------------------------------------------------------
def tokenizer_for_training(
    cfg: TrainConfig, source: str | None, records, labels, saved: Path, *, fresh: bool
):
    """The base model's tokenizer, or (tiny) one trained on the records' prompts and answers.

    Args:
        source: resolved base model, None for the tiny model.
        records: training records (tiny only: the tokenizer learns their words).
        labels: catalogue labels kept as single tokens (tiny only).
        saved: folder for the tiny tokenizer; reused unless `fresh` (a resumed run must see the
            token ids its checkpoint was trained with).
    """
    if source is not None:
        return load_base_tokenizer(source, cfg.base_revision)
    main_process = int(os.environ.get("RANK", "0")) == 0
    if fresh and saved.exists() and main_process:
        shutil.rmtree(saved)
    if not fresh and (saved / "tokenizer.json").is_file():
        return AutoTokenizer.from_pretrained(saved)
    from vetllm.engine.tiny import train_tokenizer

    template = cfg.prompt()
    texts = [template.format_prompt(r.note) + template.format_response(r.labels) for r in records]
    tokenizer = train_tokenizer(texts, cfg.tiny_vocab_size, labels=labels)
    if main_process:
        tokenizer.save_pretrained(saved)
    return tokenizer


def model_for_training(cfg: TrainConfig, source: str | None, tokenizer):
    """The tiny model built from scratch, or the base model wrapped for full / LoRA / QLoRA."""
    if source is None:
        from vetllm.engine.tiny import build_tiny_model

        return build_tiny_model(cfg, tokenizer)
    model = load_base_model(source, cfg, quantize=cfg.method == "qlora")
    if cfg.gradient_checkpointing:
        model.config.use_cache = False  # the KV cache is useless in training and conflicts
    return apply_method(model, cfg)


# -- the run card ----------------------------------------------------------------------------
def write_json(path: Path, payload: dict) -> None:
    """Atomic JSON write (a reader never sees half a file)."""
    from vetllm.runs.directory import atomic_write_text

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps(payload, indent=2, default=str) + "\n")


def build_run_card(cfg: TrainConfig, source, params: dict, data_files: dict, labels, state) -> dict:
    """What a result needs to be trusted and repeated (saved as RUN_DIR/model/run_card.json).

    Args:
        state: the Trainer's TrainerState at the end of training.
    """
    import peft
    import transformers

    from vetllm.catalogue import load_catalogue

    catalogue = load_catalogue(cfg.catalogue)
    losses = [entry["loss"] for entry in state.log_history if "loss" in entry]
    return {
        "name": cfg.name,
        "base_model": cfg.base_model,
        "base_model_source": source,
        "base_revision": cfg.base_revision or _hub_commit(source),
        "method": cfg.method,
        "catalogue_version": catalogue.version,
        "prompt_template": cfg.prompt().to_dict(),
        "seed": cfg.seed,
        "data": data_files,
        "train_labels": sorted(labels),
        "trainable_parameters": params["trainable"],
        "total_parameters": params["total"],
        "trainable_share": params["trainable_share"],
        "global_step": state.global_step,
        "epochs_completed": state.epoch,
        "final_train_loss": losses[-1] if losses else None,
        "versions": {
            "torch": torch.__version__,
            "transformers": transformers.__version__,
            "peft": peft.__version__,
        },
        "final_metrics": None,
    }


def _hub_commit(source: str | None) -> str | None:
    """The commit of a hub model in the local cache (None for local dirs and the tiny model)."""
    if source is None or Path(source).is_dir():
        return None
    try:
        return AutoConfig.from_pretrained(source, local_files_only=True)._commit_hash
    except (OSError, ValueError, AttributeError):
        return None
