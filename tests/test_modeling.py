"""Model loading: trainable parameters, QLoRA without CUDA, absent base models, run loading."""

import json
import os
import time

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from vetllm.config import TrainConfig, load_config
from vetllm.engine import modeling
from vetllm.errors import VetLLMError

LLAMA_7B = dict(
    hidden_size=4096,
    intermediate_size=11008,
    num_hidden_layers=32,
    num_attention_heads=32,
    num_key_value_heads=32,
    vocab_size=32000,
)


def lora_params_by_arithmetic(hidden: int, layers: int, r: int, n_modules: int = 4) -> int:
    """Each adapted square projection d x d gains A (r x d) and B (d x r)."""
    return layers * n_modules * r * (hidden + hidden)


@pytest.mark.slow
def test_source_recipe_on_a_7b_llama_shape_trains_16_777_216_parameters():
    cfg = load_config("configs/alpaca-7b-qlora.yaml", ["method=lora"])  # same adapter as qlora
    with torch.device("meta"):  # shapes only: no memory, no download
        model = modeling.apply_method(LlamaForCausalLM(LlamaConfig(**LLAMA_7B)), cfg)
    counts = modeling.count_parameters(model)
    assert counts["trainable"] == 16_777_216 == lora_params_by_arithmetic(4096, 32, 16)
    assert counts["total"] == 6_755_192_832
    assert round(100 * counts["trainable_share"], 3) == 0.248


def test_lora_count_matches_arithmetic_on_a_small_real_model():
    cfg = TrainConfig(base_model="x", method="lora", lora_r=4)
    small = LlamaConfig(
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=4,
        vocab_size=300,
    )
    model = modeling.apply_method(LlamaForCausalLM(small), cfg)
    trainable = modeling.count_parameters(model)["trainable"]
    assert trainable == lora_params_by_arithmetic(64, 2, 4)
    real = sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert real == trainable


def test_unknown_lora_target_module_is_a_clear_error():
    cfg = TrainConfig(base_model="x", method="lora", lora_target_modules=["query_key_value"])
    small = LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2
    )
    with pytest.raises(VetLLMError, match="lora_target_modules"):
        modeling.apply_method(LlamaForCausalLM(small), cfg)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the no-CUDA message")
def test_qlora_without_cuda_says_so_before_loading_anything():
    with pytest.raises(VetLLMError) as caught:
        modeling.require_qlora_support()
    message = str(caught.value)
    assert "qlora" in message and "CUDA" in message and "base_model: tiny" in message


@pytest.mark.timeout(60)
def test_absent_hub_model_offline_fails_at_once_with_download_instructions(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    cfg = TrainConfig(base_model="some-org/not-downloaded-model-7b", method="lora")
    started = time.monotonic()
    with pytest.raises(VetLLMError) as caught:
        modeling.resolve_base_model(cfg)
    message = str(caught.value)
    assert "base_model 'some-org/not-downloaded-model-7b'" in message
    assert "HF_HUB_OFFLINE" in message
    assert "huggingface-cli download some-org/not-downloaded-model-7b --local-dir DIR" in message
    assert "base_model: DIR" in message
    assert time.monotonic() - started < 30  # offline lookups fail locally, never retry a network


def test_missing_local_directory_is_named(tmp_path):
    cfg = TrainConfig(base_model=str(tmp_path / "weights" / "llama"), method="lora")
    with pytest.raises(VetLLMError, match="no such directory"):
        modeling.resolve_base_model(cfg)


def test_local_directory_without_config_json_is_rejected(tmp_path):
    cfg = TrainConfig(base_model=str(tmp_path), method="lora")
    with pytest.raises(VetLLMError, match="has no config.json"):
        modeling.resolve_base_model(cfg)


def test_local_directory_saved_with_save_pretrained_is_accepted(tmp_path):
    small = LlamaConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=1)
    small.save_pretrained(tmp_path)
    cfg = TrainConfig(base_model=str(tmp_path), method="lora")
    assert modeling.resolve_base_model(cfg) == str(tmp_path.resolve())


def test_hub_offline_reads_the_environment(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "0")
    monkeypatch.setenv("TRANSFORMERS_OFFLINE", "")
    assert not modeling.hub_offline()
    monkeypatch.setenv("HF_HUB_OFFLINE", "true")
    assert modeling.hub_offline()


def test_load_trained_refuses_a_run_without_a_final_model(tmp_path):
    with pytest.raises(VetLLMError, match="no config.yaml"):
        modeling.load_trained(tmp_path)
    TrainConfig(name="unfinished").to_yaml(tmp_path / "config.yaml")
    with pytest.raises(VetLLMError, match="no final model yet"):
        modeling.load_trained(tmp_path)


def test_run_card_records_what_a_result_needs(tmp_path):
    class State:
        global_step, epoch = 12, 3.0
        log_history = [{"loss": 2.0}, {"loss": 0.5}, {"eval_loss": 0.7}]

    cfg = TrainConfig(name="card", seed=5)
    params = {"trainable": 10, "total": 100, "trainable_share": 0.1}
    card = modeling.build_run_card(cfg, None, params, {"data": {"sha256": "ab"}}, {"b", "a"}, State)
    modeling.write_json(tmp_path / "model" / "run_card.json", card)
    saved = json.loads((tmp_path / "model" / "run_card.json").read_text())
    assert saved["train_labels"] == ["a", "b"]
    assert saved["final_train_loss"] == 0.5 and saved["global_step"] == 12
    assert saved["seed"] == 5 and saved["method"] == "full"
    assert saved["prompt_template"]["template"].startswith("Below is an instruction")
    assert set(saved["versions"]) == {"torch", "transformers", "peft"}
    assert saved["catalogue_version"]


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA and bitsandbytes")
def test_qlora_wraps_a_local_llama_in_4bit_nf4(tmp_path):
    pytest.importorskip("bitsandbytes")
    small = LlamaConfig(
        hidden_size=512,
        intermediate_size=1024,
        num_hidden_layers=2,
        num_attention_heads=8,
        num_key_value_heads=8,
        vocab_size=1000,
    )
    LlamaForCausalLM(small).save_pretrained(tmp_path / "base")
    cfg = TrainConfig(base_model=str(tmp_path / "base"), method="qlora", bf16=True)
    source = modeling.resolve_base_model(cfg)
    model = modeling.model_for_training(cfg, source, tokenizer=None)
    counts = modeling.count_parameters(model)
    assert counts["trainable"] == lora_params_by_arithmetic(512, 2, 16)
    quant = model.base_model.model.config.quantization_config
    assert quant.bnb_4bit_quant_type == "nf4" and quant.bnb_4bit_use_double_quant
    assert os.environ.get("CUDA_VISIBLE_DEVICES") != ""
