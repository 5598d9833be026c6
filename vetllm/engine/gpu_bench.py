"""`vetllm bench --gpu`: the source recipe against the fast path, and fast prediction, in one run.

On a random-weight model of a named shape (engine/random_llama.py; `llama-7b` is the source's
model, `tiny` runs on a CPU in tests), every training variant goes through the normal `train()`
for the same number of optimizer steps on the same data and seed, and reports seconds per step
(after the first, warm-up step), samples/s, real (non-pad) tokens/s counted in the batches the
collator built, the padding share, peak GPU memory, the projected time of the source's 603-step
run, and the loss at every step (both variants see the same samples at the same step: the seeded
sampler's order does not depend on the micro-batch). Prediction then loads the fast run's adapter
through `Predictor.from_run` (4-bit base on CUDA) and times notes/s at batch 1 and batched, free
and constrained, before and after merging the adapter (engine/fast_predict.py), and counts notes
whose codes differ between the two. QLoRA needs CUDA; on a CPU the variants train plain LoRA.
"""

from __future__ import annotations

import contextlib
import gc
import json
import sys
import tempfile
import time
from pathlib import Path

from vetllm.calibration import DECODINGS
from vetllm.engine.random_llama import SHAPES, random_base_models, write_base
from vetllm.runs.directory import RunDirectory

SOURCE_SAMPLES = 1602  # the source's training set (DOMAIN.md): 603 steps at effective batch 8
# (name, overrides of the fast preset's settings); the source recipe pads every batch to 512.
VARIANTS = (
    (
        "source recipe",
        {
            "per_device_batch": 2,
            "grad_accum": 4,
            "gradient_checkpointing": True,
            "drop_last": True,
            "attn_implementation": None,
        },
    ),
    ("fast", {}),
    ("fast + group_by_length", {"group_by_length": True}),
    ("fast + liger", {"use_liger_kernel": True}),
)
FAST = {
    "per_device_batch": 8,
    "grad_accum": 1,
    "gradient_checkpointing": False,
    "drop_last": False,
    "attn_implementation": "sdpa",
}


def run_gpu_bench(
    shape: str = "llama-7b",
    steps: int = 12,
    n_single: int = 8,
    n_batch: int = 64,
    work_dir: str | Path | None = None,
    variants: tuple[str, ...] | None = None,
    save_to: str | Path | None = None,
) -> dict:
    """Train every variant for `steps` steps, then time prediction; one JSON-ready dict.

    Args:
        save_to: also write the dict as JSON here after every part, so that a run stopped by a
            time limit keeps what it measured.
    """
    from vetllm.engine.bench import _bench_data, _check_counts, _environment

    if shape not in SHAPES:
        from vetllm.errors import VetLLMError

        raise VetLLMError(f"--shape: got {shape!r}; use one of {', '.join(SHAPES)}")
    _check_counts(steps=steps, n_single=n_single, n_batch=n_batch)
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="vetllm-gpu-bench-"))
        work = Path(work_dir)
        train_file, val_file = _bench_data(work)
        with contextlib.redirect_stdout(sys.stderr):  # stdout stays for the JSON
            base = write_base(work / f"random-{shape}", shape, train_file)
        result = {"environment": _environment(), "shape": shape, "steps": steps}
        result["model"] = _describe_model(base)
        result["training"] = []
        for name, changes in VARIANTS:
            if variants is None or name in variants:
                row = _train_variant(name, changes, base, train_file, work, steps)
                result["training"].append(row)
                result["summary"] = _summary(result["training"])
                _save(result, save_to)
        fast_run = work / "runs" / "fast"
        if (fast_run / "model").is_dir():
            result["prediction"] = bench_prediction_paths(fast_run, val_file, n_single, n_batch)
            _save(result, save_to)
    return result


def _save(result: dict, path: str | Path | None) -> None:
    if path is not None:
        Path(path).write_text(json.dumps(result, indent=2, default=str) + "\n", encoding="utf-8")


def _describe_model(base: Path) -> dict:
    config = json.loads((base / "config.json").read_text(encoding="utf-8"))
    from vetllm.engine.environment import shape_from_config

    keys = ("hidden_size", "intermediate_size", "num_hidden_layers", "vocab_size")
    return {k: config[k] for k in keys} | {"parameters": shape_from_config(config).params}


def _config(name: str, changes: dict, base: Path, train_file: Path, steps: int):
    import torch

    from vetllm.config import TrainConfig

    cuda = torch.cuda.is_available()
    return TrainConfig(
        name="bench-" + name.replace(" + ", "-").replace(" ", "-"),
        base_model=str(base),
        method="qlora" if cuda else "lora",
        data=str(train_file),
        val_data=None,
        max_steps=steps,
        max_length=512,
        bf16=cuda,
        save_steps=steps,
        logging_steps=1,
        final_eval=False,
        **(FAST | changes),
    )


class _Meter:
    """Step-end times (after a device sync) and the tokens of every batch the collator built."""

    def __init__(self):
        self.step_times: list[float] = []
        self.real_tokens = self.padded_tokens = self.samples = 0

    def collator(self, pad_to: int | None):
        from vetllm.engine.collate import ResponseOnlyCollator

        meter = self

        def build(pad_token_id):
            inner = ResponseOnlyCollator(pad_token_id, pad_to_multiple_of=pad_to)

            def collate(features):
                batch = inner(features)
                meter.real_tokens += int(batch["attention_mask"].sum())
                meter.padded_tokens += batch["input_ids"].numel()
                meter.samples += len(features)
                return batch

            return collate

        return build

    def callback(self):
        import torch

        from vetllm.engine.callbacks import RunCallback

        meter = self

        class TimedCallback(RunCallback):
            def on_step_end(self, args, state, control, **kwargs):
                if torch.cuda.is_available():
                    torch.cuda.synchronize()  # kernels are asynchronous: time finished work
                meter.step_times.append(time.perf_counter())
                return super().on_step_end(args, state, control, **kwargs)

        return TimedCallback


@contextlib.contextmanager
def _metered(meter: _Meter, pad_to: int | None):
    from vetllm.engine import training

    originals = training.ResponseOnlyCollator, training.RunCallback
    training.ResponseOnlyCollator, training.RunCallback = meter.collator(pad_to), meter.callback()
    try:
        yield
    finally:
        training.ResponseOnlyCollator, training.RunCallback = originals


def _train_variant(name, changes, base, train_file, work, steps) -> dict:
    """Train one variant through train(); its timings, or why it was skipped or failed."""
    import torch

    from vetllm.engine.speed import liger_status
    from vetllm.engine.training import train

    cfg = _config(name, changes, base, train_file, steps)
    row = {"name": name, "micro_batch": cfg.per_device_batch, "grad_accum": cfg.grad_accum}
    row |= {"gradient_checkpointing": cfg.gradient_checkpointing, "method": cfg.method}
    row |= {"padded_to_512": name == "source recipe", "group_by_length": cfg.group_by_length}
    if cfg.use_liger_kernel and liger_status(torch.cuda.is_available()):
        return row | {"skipped": liger_status(torch.cuda.is_available())}
    _release()
    meter = _Meter()
    run_dir = work / "runs" / ("fast" if name == "fast" else cfg.name)
    try:
        with _metered(meter, 512 if name == "source recipe" else None), random_base_models():
            with contextlib.redirect_stdout(sys.stderr):
                train(cfg, run_dir)
    except Exception as error:  # noqa: BLE001 - one variant failing must not lose the others
        return row | {"error": f"{type(error).__name__}: {str(error).splitlines()[0][:300]}"}
    return row | _timings(cfg, meter, run_dir)


def _timings(cfg, meter: _Meter, run_dir: Path) -> dict:
    import torch

    from vetllm.coverage import plan_coverage

    times = meter.step_times
    steady = (times[-1] - times[0]) / (len(times) - 1) if len(times) > 1 else float("nan")
    samples_per_s = cfg.effective_batch / steady
    real_per_sample = meter.real_tokens / max(meter.samples, 1)
    source_steps = plan_coverage(
        SOURCE_SAMPLES, cfg.per_device_batch, cfg.grad_accum, cfg.epochs, drop_last=cfg.drop_last
    ).total_steps
    losses = [m["loss"] for m in RunDirectory(run_dir).read_metrics() if "loss" in m]
    out = {
        "steps": len(times),
        "s_per_step": round(steady, 4),
        "samples_per_s": round(samples_per_s, 2),
        "real_tokens_per_sample": round(real_per_sample, 1),
        "real_tokens_per_s": round(real_per_sample * samples_per_s, 1),
        "padding_share": round(1 - meter.real_tokens / max(meter.padded_tokens, 1), 3),
        "setup_and_first_step_s": round(times[0] - _STARTED[0], 2) if times else None,
        "source_data_steps": source_steps,
        "projected_source_run_min": round(steady * source_steps / 60, 2),
        "losses": [round(loss, 4) for loss in losses],
    }
    if torch.cuda.is_available():
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
        # Held before this variant began (a leak of the previous one would show here).
        out["gpu_memory_at_start_gb"] = round(_AT_START[0] / 1e9, 2)
    return out


_STARTED = [0.0]  # perf_counter() when the current variant began (set by _release)
_AT_START = [0]  # bytes of GPU memory allocated then


def _release() -> None:
    """Free the previous variant's model before the next is built; restart the peak counter."""
    import torch

    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()
        _AT_START[0] = torch.cuda.memory_allocated()
    _STARTED[0] = time.perf_counter()


def _summary(rows: list[dict]) -> dict:
    timed = {r["name"]: r for r in rows if "s_per_step" in r}
    source = timed.get("source recipe")
    summary = {}
    for name, row in timed.items():
        if source and name != "source recipe":
            summary[f"{name} vs source: samples/s"] = round(
                row["samples_per_s"] / source["samples_per_s"], 2
            )
            pairs = list(zip(source["losses"], row["losses"], strict=False))
            if pairs:
                summary[f"{name} vs source: max loss difference"] = round(
                    max(abs(a - b) for a, b in pairs), 4
                )
    return summary


def _time_decoding(predictor, notes, decoding, batch_size) -> tuple[dict, list]:
    started = time.perf_counter()
    predictions = predictor.predict(notes, decoding, batch_size=batch_size)
    seconds = time.perf_counter() - started
    row = {"decoding": decoding, "batch_size": batch_size, "notes": len(notes)}
    row |= {"seconds": round(seconds, 3), "notes_per_s": round(len(notes) / seconds, 2)}
    if decoding == "free":
        tokenizer = predictor.tokenizer
        counts = [
            len(tokenizer(p.raw_output, add_special_tokens=False)["input_ids"]) for p in predictions
        ]
        row["mean_new_tokens"] = round(sum(counts) / len(counts), 1)
    return row, [list(p.result.codes) for p in predictions]


def _time_paths(predictor, notes, n_single, batch_size) -> tuple[list, dict]:
    predictor.predict(notes[:2], "free", batch_size=2)  # warm-up: first-call allocations
    rows, codes = [], {}
    for decoding in DECODINGS:
        for size, subset in ((1, notes[:n_single]), (batch_size, notes)):
            row, found = _time_decoding(predictor, subset, decoding, size)
            rows.append(row)
            codes[(decoding, size)] = found
    return rows, codes


def bench_prediction_paths(run_dir: Path, val_file: Path, n_single: int, n_batch: int) -> dict:
    """notes/s of the run's model as loaded (4-bit on CUDA), then merged; and code agreement."""
    import torch

    from vetllm.engine.evaluate import load_records
    from vetllm.engine.fast_predict import make_fast
    from vetllm.engine.predict import Predictor

    _release()
    with random_base_models():
        predictor = Predictor.from_run(run_dir)
    records, _, _ = load_records(val_file, predictor.catalogue, "validation")
    notes = [r.note for r in (records * (1 + n_batch // max(len(records), 1)))[:n_batch]]
    four_bit = any(type(m).__name__ == "Linear4bit" for m in predictor.model.modules())
    fast = make_fast(predictor, merge=False)
    batch = min(fast.batch_size, len(notes))
    unmerged_rows, unmerged_codes = _time_paths(predictor, notes, n_single, batch)
    fast = make_fast(predictor, merge=True)
    merged_rows, merged_codes = _time_paths(fast.predictor, notes, n_single, batch)
    differing = {}
    for (decoding, size), found in unmerged_codes.items():
        pairs = zip(found, merged_codes[(decoding, size)], strict=True)
        differing[f"{decoding} batch {size}"] = sum(a != b for a, b in pairs)
    out = {
        "unmerged": {"four_bit_base": four_bit, "timings": unmerged_rows},
        "merged": {"merged": fast.merged, "reason": fast.reason, "timings": merged_rows},
        "batch_size_from_free_memory": fast.batch_size,
        "notes_with_different_codes": differing,
        "candidates": len(predictor.candidates),
        "max_new_tokens": predictor.max_new_tokens,
    }
    if torch.cuda.is_available():
        out["peak_gpu_memory_gb"] = round(torch.cuda.max_memory_allocated() / 1e9, 2)
    return out


def format_gpu_bench(result: dict) -> str:
    """A readable side-by-side summary of `run_gpu_bench()`'s dict."""
    lines = [
        f"shape {result['shape']} ({result['model']['parameters']:.3g} parameters), "
        f"{result['steps']} steps per variant on {result['environment']['device']}"
    ]
    for row in result["training"]:
        if "s_per_step" not in row:
            lines.append(f"  {row['name']:<24} {row.get('skipped') or row.get('error')}")
            continue
        lines.append(
            f"  {row['name']:<24} {row['s_per_step']:>7} s/step {row['samples_per_s']:>8} "
            f"samples/s {row['real_tokens_per_s']:>9} tokens/s, peak "
            f"{row.get('peak_gpu_memory_gb', '-')} GB, {row['source_data_steps']} steps: "
            f"{row['projected_source_run_min']} min"
        )
    for path in ("unmerged", "merged"):
        for row in result.get("prediction", {}).get(path, {}).get("timings", []):
            lines.append(
                f"  predict {path:<8} {row['decoding']:<11} batch {row['batch_size']:>3}: "
                f"{row['notes_per_s']} notes/s"
            )
    return "\n".join(lines)
