"""The fast GPU path's pure parts: micro-batch plan on fake hardware, fast presets, switches."""

from pathlib import Path

import pytest

from vetllm.config import TrainConfig, load_config
from vetllm.coverage import plan_coverage
from vetllm.engine.environment import (
    FAST_GPU_PRESET,
    apply_batch_plan,
    default_preset,
    estimate_gpu_memory_gb,
    model_shape,
    plan_micro_batch,
    shape_from_config,
)
from vetllm.engine.random_llama import SHAPES
from vetllm.engine.speed import liger_status, speed_arguments
from vetllm.errors import VetLLMError

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
FAST_PRESETS = sorted(CONFIGS.glob("*-qlora-fast.yaml"))
GPU = {"cuda": True, "bf16": True, "bitsandbytes": True, "gpu_name": "fake", "gpu_memory_gb": 80.0}
LLAMA_7B_CONFIG = SHAPES["llama-7b"]  # the published LLaMA-7B config the bench builds
# Result-relevant fields: a fast preset must equal its source-recipe preset in every one.
RESULT_FIELDS = (
    "base_model", "method", "data", "val_data", "prompt_template", "lora_r", "lora_alpha",
    "lora_dropout", "lora_target_modules", "learning_rate", "lr_scheduler", "warmup_ratio",
    "epochs", "max_length", "seed", "bf16", "max_new_tokens", "effective_batch",
)  # fmt: skip


def fast() -> TrainConfig:
    return load_config(CONFIGS / f"{FAST_GPU_PRESET}.yaml")


@pytest.mark.parametrize("path", FAST_PRESETS, ids=lambda p: p.name)
def test_fast_preset_keeps_every_result_setting_of_the_source_recipe(path):
    quick = load_config(path)
    source = load_config(CONFIGS / path.name.replace("-fast", ""))
    for name in RESULT_FIELDS:
        assert getattr(quick, name) == getattr(source, name), name
    assert (quick.per_device_batch, quick.grad_accum) == (8, 1)
    assert not quick.gradient_checkpointing and quick.attn_implementation == "sdpa"


@pytest.mark.parametrize("path", FAST_PRESETS, ids=lambda p: p.name)
def test_fast_preset_makes_the_sources_603_steps_on_1602_notes(path):
    quick, source = load_config(path), load_config(CONFIGS / path.name.replace("-fast", ""))
    assert source.coverage_plan(_records(1602)).total_steps == 603
    assert quick.coverage_plan(_records(1602)).total_steps == 603


def _records(n: int) -> list:
    from vetllm.data.records import Record

    return [Record(note=f"note {i}", labels=("A",)) for i in range(n)]


@pytest.mark.parametrize("samples", [1602, 1383, 7, 801])
def test_without_drop_last_every_planned_micro_batch_keeps_the_step_count(samples):
    counts = {
        plan_coverage(samples, micro, 8 // micro, 3, drop_last=False).total_steps
        for micro in (8, 4, 2, 1)
    }
    assert len(counts) == 1


def test_auto_micro_batch_with_drop_last_is_refused_with_the_fix():
    with pytest.raises(VetLLMError, match="set drop_last: false"):
        fast().replace(drop_last=True)
    with pytest.raises(VetLLMError, match="attn_implementation: got 'flash'"):
        fast().replace(attn_implementation="flash")


def test_a_big_gpu_gets_the_whole_batch_in_one_pass_without_checkpointing():
    plan = plan_micro_batch(fast(), free_memory_gb=139.0)
    assert (plan.per_device_batch, plan.grad_accum, plan.gradient_checkpointing) == (8, 1, False)
    assert plan.estimate_gb <= 139.0 * 0.9 and "8 x 1 without" in plan.reason


def test_a_24_gb_gpu_keeps_the_effective_batch_and_turns_checkpointing_on():
    plan = plan_micro_batch(fast(), free_memory_gb=23.0)
    assert plan.per_device_batch * plan.grad_accum == 8
    assert plan.gradient_checkpointing and plan.estimate_gb <= 23.0 * 0.9


def test_plans_get_smaller_as_memory_shrinks_and_always_fit_when_they_can():
    previous = None
    for free in (200.0, 80.0, 40.0, 24.0, 12.0, 8.0):
        plan = plan_micro_batch(fast(), free)
        assert plan.per_device_batch * plan.grad_accum == 8
        assert plan.estimate_gb <= free * 0.9
        key = (not plan.gradient_checkpointing, plan.per_device_batch)
        assert previous is None or key <= previous
        previous = key


def test_a_gpu_too_small_for_anything_says_what_to_do():
    plan = plan_micro_batch(fast(), free_memory_gb=3.0)
    assert (plan.per_device_batch, plan.gradient_checkpointing) == (1, True)
    assert "shorten max_length" in plan.reason


def test_without_a_gpu_or_a_known_shape_the_configured_batch_stays():
    assert plan_micro_batch(fast(), None).per_device_batch == 8
    unknown = fast().replace(base_model="someone/unknown-model")
    assert "unknown model shape" in plan_micro_batch(unknown, 80.0).reason


def test_applied_plan_is_recorded_and_not_replanned():
    planned, plan = apply_batch_plan(fast(), free_memory_gb=23.0)
    assert planned.auto_micro_batch is False
    assert (planned.per_device_batch, planned.grad_accum) == (
        plan.per_device_batch,
        plan.grad_accum,
    )
    assert planned.effective_batch == 8
    source = load_config(CONFIGS / "alpaca-7b-qlora.yaml")
    assert apply_batch_plan(source, 23.0)[0] is source  # the source recipe is never changed


def test_shape_from_a_llama_7b_config_counts_its_parameters():
    shape = shape_from_config(LLAMA_7B_CONFIG)
    assert shape.params == 6_738_415_616  # LLaMA-7B's published count
    assert shape_from_config({"hidden_size": 8}) is None


def test_a_local_model_folder_gets_its_shape_from_config_json(tmp_path):
    import json

    (tmp_path / "config.json").write_text(json.dumps(LLAMA_7B_CONFIG))
    assert model_shape(str(tmp_path)).layers == 32
    cfg = fast().replace(base_model=str(tmp_path))
    assert estimate_gpu_memory_gb(cfg) == pytest.approx(estimate_gpu_memory_gb(fast()), rel=0.01)


def test_the_train_tab_proposes_the_fast_preset_on_a_gpu_only():
    assert default_preset(GPU) == FAST_GPU_PRESET
    assert default_preset({"cuda": False}) == "tiny-cpu"
    assert default_preset(dict(GPU, bitsandbytes=False)) == "tiny-cpu"
    assert default_preset(dict(GPU, gpu_memory_gb=2.0)) == "tiny-cpu"


def test_speed_switches_become_training_arguments_only_where_they_apply():
    cfg = fast().replace(group_by_length=True, use_liger_kernel=True)
    on_cpu = speed_arguments(cfg, on_cuda=False)
    assert on_cpu in ({"train_sampling_strategy": "group_by_length"}, {"group_by_length": True})
    assert speed_arguments(load_config(CONFIGS / "alpaca-7b-qlora.yaml"), on_cuda=True) == {}
    assert liger_status(on_cuda=False) == "Liger kernels need a CUDA GPU"


def test_training_arguments_carry_length_grouping(tmp_path):
    from vetllm.engine.training import training_arguments
    from vetllm.runs.directory import RunDirectory

    cfg = TrainConfig(group_by_length=True, drop_last=False)
    args = training_arguments(cfg, RunDirectory(tmp_path), has_eval=False)
    strategy = getattr(args, "train_sampling_strategy", None)
    assert strategy == "group_by_length" or getattr(args, "group_by_length", False) is True


def test_the_environment_check_judges_the_planned_micro_batch():
    from vetllm.engine.environment import check_environment

    small = dict(GPU, gpu_memory_gb=24.0)
    report = check_environment(fast(), small)
    assert report["runnable"] is True and "with gradient checkpointing" in report["batch_plan"]
    assert report["memory_estimate_gb"] <= 24.0
    fixed = check_environment(fast().replace(auto_micro_batch=False), small)
    assert fixed["runnable"] is False  # 8 x 1 without checkpointing, padded to 512, is too big
