"""The GPU check script's pieces: real bitsandbytes 4-bit QLoRA train, reload, predict, bench.

GPU tests are marked `gpu` and skipped without CUDA and bitsandbytes. The 7B LoRA parameter
count needs no GPU (meta device: shapes only), so it runs everywhere.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"


def _load_script():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _cuda_and_bitsandbytes() -> bool:
    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


needs_gpu = pytest.mark.skipif(
    not _cuda_and_bitsandbytes(), reason="needs a CUDA GPU and bitsandbytes"
)


@pytest.mark.slow
def test_seven_b_source_lora_recipe_has_16_777_216_trainable_parameters():
    counts = _load_script().seven_b_trainable_parameters()
    assert counts["trainable"] == 16_777_216
    assert counts["total"] == 6_755_192_832  # DOMAIN.md section 5
    assert counts["ok"] is True


@pytest.mark.slow
def test_script_and_the_engine_it_uses_do_not_import_gradio():
    """The GPU machine has no gradio: loading everything the script runs must not need it."""
    probe = (
        "import importlib.util, sys\n"
        f"spec = importlib.util.spec_from_file_location('gpu_check', {str(SCRIPT)!r})\n"
        "module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)\n"
        "import vetllm.engine.training, vetllm.engine.predict, vetllm.engine.evaluate\n"
        "import vetllm.engine.bench\n"
        "print('gradio' in sys.modules)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout.strip().splitlines()[-1] == "False"


@pytest.mark.gpu
@needs_gpu
def test_qlora_train_reload_predict_and_bench(tmp_path):
    gpu_check = _load_script()
    from vetllm.data.synth import bundled_examples

    train_file, val_source = bundled_examples()
    val_file = gpu_check.small_file(val_source, tmp_path / "val.json", 32)
    base = gpu_check.build_random_llama(tmp_path / "base", train_file)
    training = gpu_check._training_summary(base, train_file, val_file, tmp_path, 20)
    assert training["state"] == "completed" and training["steps"] == 20
    assert training["last_loss"] < training["first_loss"]
    checked = gpu_check.check_reload_and_predict(tmp_path / "run", val_file)
    assert checked["linear4bit_modules"] > 0 and checked["device"].startswith("cuda")
    assert checked["constrained"]["strict_accuracy"] == checked["constrained"]["lenient_accuracy"]
    fast = gpu_check.check_fast_predict(tmp_path / "run", val_file)
    assert fast["merged"] is True
    assert fast["notes_with_different_codes"] == {"free": 0, "constrained": 0}
    bench = gpu_check._bench(base, train_file, val_file, tmp_path, 3)
    names = [v["name"] for v in bench["gpu_comparison"]["variants"]]
    assert names == ["source recipe", "default"]
    assert all(v["peak_gpu_memory_gb"] > 0 for v in bench["gpu_comparison"]["variants"])
    json.dumps(bench)
