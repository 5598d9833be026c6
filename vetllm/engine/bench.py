"""Throughput benchmarks, side by side in one process: training, prediction, GPU recipes.

`run_bench()` times (1) the CPU default (the tiny-cpu preset) training for a fixed number of
optimizer steps through the normal `train()` path: samples/s and real (non-pad) tokens/s;
(2) prediction: notes/s at batch 1 and batched (16, 32), free and constrained decoding; and
(3) on CUDA only, the source recipe (micro-batch 2 x accumulation 4, every batch padded to 512
tokens, gradient checkpointing) against our default GPU settings (micro-batch 8 x accumulation 1,
dynamic padding, no checkpointing) with QLoRA on the same base for the same number of steps
(DOMAIN.md section 5 gives measured anchors). Timings are wall-clock seconds; no note text is
printed.
"""

from __future__ import annotations

import contextlib
import functools
import platform
import sys
import tempfile
import time
from pathlib import Path

from vetllm import resources
from vetllm.calibration import DECODINGS
from vetllm.errors import VetLLMError

PRESET = resources.PRESETS_DIR / f"{resources.DEFAULT_PRESET}.yaml"
PREDICT_BATCH_SIZES = (1, 16, 32)
# (name, per-device batch, accumulation, pad every batch to max_length, gradient checkpointing)
GPU_VARIANTS = (
    ("source recipe", 2, 4, True, True),
    ("default", 8, 1, False, False),
)


def run_bench(
    run_dir: str | Path | None = None,
    steps: int = 30,
    n_notes: int = 64,
    base_model: str | None = None,
    batch_sizes: tuple[int, ...] = PREDICT_BATCH_SIZES,
    gpu_steps: int | None = None,
    work_dir: str | Path | None = None,
    tiny_overrides: dict | None = None,
) -> dict:
    """Run every benchmark that applies to this machine and return one JSON-ready dict.

    Args:
        run_dir: a completed run to time prediction with; without one, the model the training
            benchmark just trained (few steps: free decoding may run to max_new_tokens).
        steps: optimizer steps of the CPU-default training benchmark.
        n_notes: notes per prediction timing (from the bundled validation examples).
        base_model: CUDA only: base (hub id or local dir) for the GPU recipe comparison;
            defaults to the run's base when it is not the tiny model.
        gpu_steps: optimizer steps per GPU variant (default: `steps`).
        tiny_overrides: TrainConfig fields to change in the CPU preset (tests use tiny sizes).
    """
    import torch

    _check_counts(steps=steps, n_notes=n_notes, gpu_steps=gpu_steps or steps)
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="vetllm-bench-"))
        work = Path(work_dir)
        train_file, val_file = _bench_data(work)
        result = {"environment": _environment()}
        result["training_cpu_default"] = bench_training(
            train_file, work / "tiny-run", steps, tiny_overrides or {}
        )
        timed_run = Path(run_dir) if run_dir else work / "tiny-run"
        result["prediction"] = bench_prediction(timed_run, val_file, n_notes, batch_sizes)
        result["prediction"]["model"] = str(run_dir) if run_dir else f"bench run ({steps} steps)"
        base = base_model or _run_base(run_dir)
        if not torch.cuda.is_available():
            result["gpu_comparison"] = {"skipped": "no CUDA device"}
        elif not base:
            result["gpu_comparison"] = {"skipped": "no base model: pass --base-model"}
        else:
            result["gpu_comparison"] = bench_gpu_recipes(
                base, train_file, work / "gpu", gpu_steps or steps
            )
    return result


def _check_counts(**counts: int) -> None:
    problems = [
        f"{name}: got {value!r}; use a whole number of 1 or more"
        for name, value in counts.items()
        if not isinstance(value, int) or isinstance(value, bool) or value < 1
    ]
    if problems:
        raise VetLLMError("bench: " + "; ".join(problems))


def _environment() -> dict:
    import torch
    import transformers

    device = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
    return {
        "device": device,
        "cpu": platform.processor() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }


def _bench_data(work: Path) -> tuple[Path, Path]:
    """The bundled examples, or a freshly generated synthetic set when they are missing."""
    from vetllm.data.synth import bundled_examples, write_synthetic_dataset

    try:
        return bundled_examples()
    except VetLLMError:
        files = write_synthetic_dataset(work / "data", n=1600, seed=0)["files"]
        return Path(files["train"]), Path(files["val"])


def _train_timed(cfg, run_dir: Path) -> dict:
    """Train, and return the trainer's runtime figures plus wall time and peak GPU memory."""
    import torch

    from vetllm.engine.training import train

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
    threads = torch.get_num_threads()
    started = time.perf_counter()
    try:
        # The trainer logs to stdout; keep stdout for the benchmark's own (JSON) output.
        with contextlib.redirect_stdout(sys.stderr):
            status = train(cfg, run_dir)
    finally:
        torch.set_num_threads(threads)  # train() applies the config's torch_threads
    wall_s = time.perf_counter() - started
    runtime_s = float(status.get("train_runtime") or wall_s)
    samples = int(status.get("step", cfg.max_steps)) * cfg.effective_batch
    out = {
        "steps": int(status.get("step", cfg.max_steps)),
        "effective_batch": cfg.effective_batch,
        "train_runtime_s": round(runtime_s, 3),
        "wall_s_including_setup": round(wall_s, 3),
        "s_per_step": round(runtime_s / max(1, int(status.get("step", 1))), 4),
        "samples_per_s": round(samples / runtime_s, 2),
    }
    if torch.cuda.is_available():
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return out


def _mean_real_tokens(run_dir: Path, cfg, train_file: Path) -> float:
    """Mean non-pad tokens per training example, encoded exactly as the trainer encodes them."""
    from transformers import AutoTokenizer

    from vetllm.engine.collate import encode_record
    from vetllm.engine.evaluate import load_records
    from vetllm.engine.predict import _catalogue_of

    tokenizer = AutoTokenizer.from_pretrained(run_dir / "model")
    records, _, _ = load_records(train_file, _catalogue_of(cfg), "training")
    template = cfg.prompt()
    lengths = [
        len(encode_record(tokenizer, template, r, cfg.max_length)["input_ids"]) for r in records
    ]
    return sum(lengths) / len(lengths)


def bench_training(train_file: Path, run_dir: Path, steps: int, overrides: dict) -> dict:
    """Training throughput of the CPU default preset for `steps` optimizer steps."""
    from vetllm.config import TrainConfig, load_config

    cfg = load_config(PRESET) if PRESET.is_file() else TrainConfig(prompt_template="compact")
    cfg = cfg.replace(
        **{
            "name": "bench-tiny",
            "data": str(train_file),
            "val_data": None,
            "max_steps": steps,
            "save_steps": steps,
            # At least one logged step, so the run's loss report has data for short benches.
            "logging_steps": max(1, min(cfg.logging_steps, steps)),
            "eval_steps": None,
            "final_eval": False,
            "early_stopping_patience": None,
            **overrides,
        }
    )
    out = {
        "config": "tiny-cpu" if PRESET.is_file() else "TrainConfig defaults",
        **_train_timed(cfg, run_dir),
    }
    # Samples are drawn in random order, so mean tokens per example x samples/s is the expected
    # real-token rate; padding is excluded because the collator pads dynamically to the batch.
    mean_tokens = _mean_real_tokens(run_dir, cfg, train_file)
    out["mean_real_tokens_per_sample"] = round(mean_tokens, 1)
    out["real_tokens_per_s"] = round(mean_tokens * out["samples_per_s"], 1)
    return out


def bench_prediction(run_dir: Path, val_file: Path, n_notes: int, batch_sizes) -> dict:
    """notes/s for each decoding and batch size, on the same notes and the same loaded model."""
    from vetllm.engine.evaluate import load_records
    from vetllm.engine.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    records, _, _ = load_records(val_file, predictor.catalogue, "validation")
    notes = [r.note for r in records[:n_notes]]
    predictor.predict(notes[:2], "free", batch_size=2)  # warm-up: first-call allocations
    timings = []
    for decoding in DECODINGS:
        for batch_size in batch_sizes:
            started = time.perf_counter()
            predictions = predictor.predict(notes, decoding, batch_size=batch_size)
            seconds = time.perf_counter() - started
            row = {"decoding": decoding, "batch_size": batch_size, "seconds": round(seconds, 3)}
            row["notes_per_s"] = round(len(notes) / seconds, 2)
            if decoding == "free":
                tokenizer = predictor.tokenizer
                tokens = [
                    len(tokenizer(p.raw_output, add_special_tokens=False)["input_ids"])
                    for p in predictions
                ]
                row["mean_new_tokens"] = round(sum(tokens) / len(tokens), 1)
            timings.append(row)
    return {
        "n_notes": len(notes),
        "candidates": len(predictor.candidates),
        "max_new_tokens": predictor.max_new_tokens,
        "device": str(next(predictor.model.parameters()).device),
        "timings": timings,
    }


@contextlib.contextmanager
def _every_batch_padded_to(max_length: int):
    """Make train()'s collator pad every batch to `max_length`, as the source recipe did.

    TrainConfig has no padding field (our trainer always pads dynamically), so the source
    recipe's fixed padding is reproduced by padding to a multiple of max_length: every example
    is at most max_length tokens, so every batch becomes exactly max_length long.
    """
    from vetllm.engine import training

    original = training.ResponseOnlyCollator
    training.ResponseOnlyCollator = functools.partial(original, pad_to_multiple_of=max_length)
    try:
        yield
    finally:
        training.ResponseOnlyCollator = original


def bench_gpu_recipes(base_model: str, train_file: Path, work: Path, steps: int) -> dict:
    """QLoRA on `base_model`: the source recipe against our default, same steps, same data."""
    from vetllm.config import TrainConfig

    variants = []
    for name, micro, accum, padded, checkpointing in GPU_VARIANTS:
        cfg = TrainConfig(
            name="bench-" + name.replace(" ", "-"),
            base_model=base_model,
            method="qlora",
            data=str(train_file),
            val_data=None,
            max_steps=steps,
            per_device_batch=micro,
            grad_accum=accum,
            max_length=512,
            gradient_checkpointing=checkpointing,
            bf16=True,
            save_steps=steps,
            final_eval=False,
            logging_steps=max(1, steps // 5),
        )
        padding = _every_batch_padded_to(512) if padded else contextlib.nullcontext()
        with padding:
            timing = _train_timed(cfg, work / cfg.name)
        variants.append(
            {"name": name, "micro_batch": micro, "grad_accum": accum, "padded_to_512": padded}
            | {"gradient_checkpointing": checkpointing}
            | timing
        )
    source, default = variants
    return {
        "base_model": Path(base_model).name if Path(base_model).exists() else base_model,
        "steps": steps,
        "variants": variants,
        "samples_per_s_speedup": round(default["samples_per_s"] / source["samples_per_s"], 2),
    }


def _run_base(run_dir: str | Path | None) -> str | None:
    """The run's base model when it is a real checkpoint (not the tiny CPU model)."""
    if not run_dir:
        return None
    from vetllm.config import load_config
    from vetllm.config_checks import TINY_BASE

    cfg = load_config(Path(run_dir) / "config.yaml")
    return None if cfg.base_model == TINY_BASE else cfg.base_model


def format_bench(result: dict) -> str:
    """A readable summary of `run_bench()`'s dict."""
    env = result["environment"]
    train = result["training_cpu_default"]
    lines = [
        f"device: {env['device']} (torch {env['torch']}, {env['torch_threads']} threads)",
        f"training ({train['config']}, {train['steps']} steps x {train['effective_batch']}): "
        f"{train['samples_per_s']} samples/s, {train['real_tokens_per_s']} real tokens/s, "
        f"{train['s_per_step']} s/step",
        f"prediction ({result['prediction']['model']}, {result['prediction']['n_notes']} notes):",
    ]
    for row in result["prediction"]["timings"]:
        lines.append(
            f"  {row['decoding']:<12} batch {row['batch_size']:>3}: {row['notes_per_s']} notes/s"
        )
    gpu = result["gpu_comparison"]
    if "skipped" in gpu:
        lines.append(f"GPU recipe comparison skipped: {gpu['skipped']}")
    else:
        for variant in gpu["variants"]:
            lines.append(
                f"  {variant['name']:<14} {variant['s_per_step']} s/step, "
                f"{variant['samples_per_s']} samples/s, peak {variant.get('peak_gpu_memory_gb')} GB"
            )
        lines.append(f"  default vs source recipe: {gpu['samples_per_s_speedup']}x samples/s")
    return "\n".join(lines)
