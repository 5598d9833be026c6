"""Random-weight LLaMA models of a named shape, built in memory for benchmarks (no download).

`write_base(folder, shape, train_file)` saves only a config.json and a tokenizer trained on the
notes, so the folder is a valid `base_model` for TrainConfig. `random_base_models(folder)` is a
context manager under which `modeling.load_base_model` builds that model in memory instead of
reading weights: initialised directly in the compute dtype on the GPU (bf16; fp32 on the CPU) with
a fixed seed, and, for QLoRA, every linear layer of the decoder quantised to NF4 with double
quantisation by bitsandbytes, as `from_pretrained` with the presets' BitsAndBytesConfig does
(lm_head stays 16-bit there too). A 7B shape is thus ready in seconds, without writing 13.5 GB
to disk, and training and prediction still run through the normal `train()` and `Predictor`.
"""

from __future__ import annotations

import contextlib
from pathlib import Path

# Published LLaMA-7B config (DOMAIN.md section 5), a small shape whose layers bitsandbytes
# really quantises (the gpu_check model), and a tiny one for CPU tests. vocab None: the tokenizer's.
SHAPES = {
    "llama-7b": {
        "hidden_size": 4096,
        "intermediate_size": 11008,
        "num_hidden_layers": 32,
        "num_attention_heads": 32,
        "num_key_value_heads": 32,
        "vocab_size": 32000,
    },
    "small": {
        "hidden_size": 768,
        "intermediate_size": 2048,
        "num_hidden_layers": 4,
        "num_attention_heads": 12,
        "num_key_value_heads": 12,
        "vocab_size": None,
    },
    "tiny": {
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 4,
        "vocab_size": None,
    },
}
TOKENIZER_VOCAB = 2048  # BPE trained on the notes: the Alpaca preamble becomes a few tokens


def write_base(folder: Path, shape: str, train_file: Path) -> Path:
    """config.json (the shape) and a tokenizer trained on the notes; no weights."""
    from transformers import LlamaConfig

    from vetllm.catalogue import load_catalogue
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.prompts import ALPACA
    from vetllm.engine.tiny import train_tokenizer

    records = load_dataset_file(train_file, on_error="skip").records
    texts = [ALPACA.format_prompt(r.note) + ALPACA.format_response(r.labels) for r in records]
    tokenizer = train_tokenizer(texts, TOKENIZER_VOCAB, load_catalogue().labels)
    sizes = dict(SHAPES[shape])
    sizes["vocab_size"] = max(sizes["vocab_size"] or 0, len(tokenizer))
    config = LlamaConfig(
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **sizes,
    )
    folder.mkdir(parents=True, exist_ok=True)
    config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def quantize_to_nf4(model, compute_dtype) -> int:
    """Replace every decoder nn.Linear by a bitsandbytes NF4 Linear4bit; returns how many."""
    import bitsandbytes as bnb
    import torch

    count = 0
    for name, module in list(model.named_modules()):
        if not isinstance(module, torch.nn.Linear) or name.endswith("lm_head"):
            continue
        device = module.weight.device
        layer = bnb.nn.Linear4bit(
            module.in_features,
            module.out_features,
            bias=module.bias is not None,
            compute_dtype=compute_dtype,
            compress_statistics=True,  # double quantisation, as bnb_4bit_use_double_quant
            quant_type="nf4",
            device="meta",  # no throw-away initialisation of the 4-bit layer's own weight
        )
        layer.weight = bnb.nn.Params4bit(
            module.weight.data,
            requires_grad=False,
            compress_statistics=True,
            quant_type="nf4",
            module=layer,
        ).to(device)  # .to() quantises
        if module.bias is not None:
            layer.bias = torch.nn.Parameter(module.bias.data, requires_grad=False)
        parent_name, _, child = name.rpartition(".")
        setattr(model.get_submodule(parent_name) if parent_name else model, child, layer)
        count += 1
    # What from_pretrained(quantization_config=...) sets: PEFT then builds 4-bit LoRA layers,
    # prepare_model_for_kbit_training treats the model as quantised, the Trainer leaves it in place.
    model.is_loaded_in_4bit = True
    model.quantization_method = "bitsandbytes"
    return count


def build_random_model(folder: str | Path, *, quantize: bool, attn_implementation=None):
    """The folder's config as a model with random weights (seed 0), on the GPU when there is one."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    from vetllm.engine.modeling import compute_dtype

    config = AutoConfig.from_pretrained(folder)
    dtype = compute_dtype()
    device = "cuda" if torch.cuda.is_available() else "cpu"
    extra = {"attn_implementation": attn_implementation} if attn_implementation else {}
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype, **extra)
    if quantize:
        quantize_to_nf4(model, dtype)
        if device == "cuda":
            torch.cuda.empty_cache()  # the bf16 copies of the quantised weights are garbage now
    return model


@contextlib.contextmanager
def random_base_models(quantize: bool | None = None):
    """While inside, `modeling.load_base_model` builds the random model of the folder it is given.

    Args:
        quantize: None = as the caller asks (QLoRA on CUDA: 4-bit); True/False forces it (a CPU
            test of the 4-bit prediction path, where `load_trained` would ask for 16-bit).
    """
    from vetllm.engine import modeling

    original = modeling.load_base_model

    def load_random(source, cfg, *, quantize: bool):
        wanted = quantize if forced is None else forced
        return build_random_model(
            source, quantize=wanted, attn_implementation=getattr(cfg, "attn_implementation", None)
        )

    forced = quantize
    modeling.load_base_model = load_random
    try:
        yield
    finally:
        modeling.load_base_model = original
