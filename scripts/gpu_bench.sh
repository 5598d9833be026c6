#!/usr/bin/env bash
# Issue 10's GPU measurement in one device run (~6-8 min on one H200): `vetllm bench --gpu
# --shape llama-7b` (source recipe vs fast path, 4-bit vs merged prediction, one JSON), then
# scripts/gpu_check.py (QLoRA train/reload/predict, merged-vs-4-bit codes, the bench's short
# version), then the `gpu`-marked tests. Each part has its own time limit, so a hang in one still
# leaves the others' output under $OUT.
#
# The device machine has torch, transformers, peft and accelerate but no bitsandbytes (and no
# liger-kernel; datasets is not needed). Carry them as wheels in the gitignored .whl/ folder.
# 1. Here, once, from the repository root (the checkout the session started in: the device tool
#    sends that one), fetch the wheels for the machine's Python 3.12:
#      python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 \
#        --implementation cp --platform manylinux_2_24_x86_64 --platform manylinux_2_17_x86_64 \
#        --platform manylinux2014_x86_64 -d .whl bitsandbytes==0.50.2 liger-kernel==0.8.5
#    (44 MB together; bitsandbytes 0.50.2 ships libbitsandbytes_cuda130.so for the image's CUDA 13.)
# 2. Then call the device tool's `run` with
#      command:   bash scripts/gpu_bench.sh
#      carry:     [".whl"]
#      timeout_s: 560
#    and read $OUT's files: bench-7b.json, gpu_check.json, pytest-gpu.log, the two .log files
#    (training progress, stderr) and versions.txt.
# Without a device tool: OUT=some/folder bash scripts/gpu_bench.sh on any CUDA machine with
# bitsandbytes installed (the pip install step is skipped when .whl/ is absent).
set -uo pipefail
cd "$(dirname "$0")/.."
OUT="${OUT:-$PWD/gpu-out}"
mkdir -p "$OUT"
started=$SECONDS
if ls .whl/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target /tmp/site .whl/*.whl || exit 1
  export PYTHONPATH="/tmp/site:$PWD"
else
  export PYTHONPATH="$PWD"
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 TOKENIZERS_PARALLELISM=false PYTHONUNBUFFERED=1

python3 - >"$OUT/versions.txt" 2>&1 <<'EOF'
import importlib, torch
print("gpu", torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
for name in ("torch", "transformers", "peft", "accelerate", "bitsandbytes", "liger_kernel"):
    try:
        print(name, getattr(importlib.import_module(name), "__version__", "?"))
    except Exception as error:  # noqa: BLE001
        print(name, "NOT IMPORTABLE:", type(error).__name__, error)
EOF

echo "7B bench (limit 330 s)"
timeout 330 python3 -m vetllm bench --gpu --shape llama-7b --steps 12 --notes 64 --json \
  --save "$OUT/bench-7b-partial.json" \
  >"$OUT/bench-7b.json" 2>"$OUT/bench-7b.log"
echo "bench rc=$? after $((SECONDS - started)) s"

echo "gpu_check (limit 170 s)"
timeout 170 python3 scripts/gpu_check.py --steps 40 --bench-steps 4 \
  >"$OUT/gpu_check.json" 2>"$OUT/gpu_check.log"
echo "gpu_check rc=$? after $((SECONDS - started)) s"

left=$((520 - (SECONDS - started)))
if [ "$left" -gt 30 ]; then
  echo "gpu tests (limit $left s)"
  timeout "$left" python3 -m pytest -q -m gpu -p no:cacheprovider tests/test_gpu.py \
    tests/test_gpu_bench.py tests/test_fast_predict.py >"$OUT/pytest-gpu.log" 2>&1
  echo "pytest rc=$? after $((SECONDS - started)) s"
fi
head -c 3000 "$OUT/bench-7b.json"
