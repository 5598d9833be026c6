"""vetllm.engine.environment: the verdict for each preset on given hardware, and the estimate."""

import sys
from pathlib import Path

import pytest

from vetllm.config import load_config
from vetllm.engine.environment import (
    check_environment,
    detect_hardware,
    estimate_gpu_memory_gb,
    shape_of,
)

CONFIGS = Path(__file__).resolve().parents[1] / "configs"
NO_GPU = {
    "cuda": False,
    "bf16": False,
    "gpu_name": None,
    "gpu_memory_gb": None,
    "bitsandbytes": False,
}
SMALL_GPU = dict(NO_GPU, cuda=True, bitsandbytes=True, gpu_memory_gb=4.0)
BIG_GPU = dict(SMALL_GPU, gpu_memory_gb=80.0)


def preset(name: str):
    return load_config(CONFIGS / f"{name}.yaml")


def test_qlora_without_cuda_is_refused_with_the_reason():
    report = check_environment(preset("alpaca-7b-qlora"), NO_GPU)
    assert report["runnable"] is False and "needs a CUDA GPU" in report["verdict"]
    no_bnb = dict(BIG_GPU, bitsandbytes=False)
    assert "bitsandbytes" in check_environment(preset("alpaca-7b-qlora"), no_bnb)["verdict"]


def test_the_cpu_default_runs_anywhere_and_needs_no_gpu_estimate():
    report = check_environment(preset("tiny-cpu"), NO_GPU)
    assert report["runnable"] is True and report["memory_estimate_gb"] is None


def test_estimate_matches_the_measured_anchor_and_decides_fit():
    qlora = preset("alpaca-7b-qlora")
    # measured anchor (DOMAIN.md section 5): 5.5 GB peak for this exact recipe
    assert 4.5 < estimate_gpu_memory_gb(qlora) < 7.5
    assert check_environment(qlora, SMALL_GPU)["runnable"] is False
    assert check_environment(qlora, BIG_GPU)["runnable"] is True


@pytest.mark.parametrize("name", ["qwen2.5-7b-qlora", "llama3.1-8b-qlora"])
def test_every_gpu_preset_has_a_known_shape_and_a_plausible_estimate(name):
    cfg = preset(name)
    assert shape_of(cfg.base_model) is not None
    assert 4.0 < estimate_gpu_memory_gb(cfg) < 40.0  # a 7-8B QLoRA run fits a 40 GB card


def test_gradient_checkpointing_lowers_the_estimate():
    cfg = preset("alpaca-7b-qlora")
    with_ckpt = estimate_gpu_memory_gb(cfg.replace(gradient_checkpointing=True))
    without = estimate_gpu_memory_gb(cfg.replace(gradient_checkpointing=False))
    assert with_ckpt < without


def test_hardware_detection_on_this_machine_reports_every_fact():
    facts = detect_hardware()
    assert set(facts) >= {"cuda", "bf16", "gpu_name", "gpu_memory_gb", "bitsandbytes"}
    assert isinstance(facts["cuda"], bool)


def test_importing_the_module_does_not_import_torch():
    import subprocess

    code = "import sys, vetllm.engine.environment; print('torch' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "False"
