"""GPU check: the whole QLoRA path on a real CUDA device with no internet; prints one JSON.

Run from the repository root: `python scripts/gpu_check.py [--steps 40] [--out DIR]`. It
1. writes a small random LLaMA checkpoint locally (hidden 768, so bitsandbytes' 4-bit layers are
   real Linear4bit modules) with a byte-level tokenizer trained on the bundled notes;
2. trains QLoRA on it through the normal `train()` path (TrainConfig method=qlora, base_model=that
   folder), which also evaluates the final adapter;
3. reloads the run with `load_trained` (4-bit base + adapter), predicts with free and constrained
   decoding, and evaluates both;
4. counts the trainable parameters of a 7B LLaMA shape built on the meta device with the source
   LoRA recipe (r=16 on q, k, v, o: expected 16,777,216);
5. runs the bench's source-recipe-vs-default comparison for a few steps, and times prediction;
6. merges the trained adapter into a dense bf16 copy of the base (engine/fast_predict.py) and
   checks that every validation note gets the same codes as with the 4-bit base, both decodings;
7. runs the short version of `vetllm bench --gpu` (the small shape, a few steps per variant).
Needs torch with CUDA, transformers, peft, accelerate, bitsandbytes; never imports gradio. Exit
status 0 when every check passes, 1 otherwise (the JSON says which failed).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout, uninstalled

SOURCE_LORA_TRAINABLE = 16_777_216  # DOMAIN.md section 5: r=16 on q,k,v,o of LLaMA-7B
LLAMA_7B = {
    "vocab_size": 32000,
    "hidden_size": 4096,
    "intermediate_size": 11008,
    "num_hidden_layers": 32,
    "num_attention_heads": 32,
    "num_key_value_heads": 32,
}
SMALL_LLAMA = {"hidden_size": 768, "intermediate_size": 2048, "num_hidden_layers": 4}


def build_random_llama(out_dir: Path, train_file: Path, vocab_size: int = 2048) -> Path:
    """Save a randomly initialised LLaMA and a tokenizer trained on the notes to `out_dir`."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from vetllm.catalogue import load_catalogue
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.prompts import ALPACA
    from vetllm.engine.tiny import train_tokenizer

    records = load_dataset_file(train_file, on_error="skip").records
    texts = [ALPACA.format_prompt(r.note) + ALPACA.format_response(r.labels) for r in records]
    tokenizer = train_tokenizer(texts, vocab_size, load_catalogue().labels)
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        num_attention_heads=12,
        num_key_value_heads=12,
        max_position_embeddings=1024,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        **SMALL_LLAMA,
    )
    model = LlamaForCausalLM(config).to(torch.bfloat16)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def seven_b_trainable_parameters() -> dict:
    """Trainable/total parameters of LLaMA-7B + the source LoRA recipe, built on the meta device."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaConfig, LlamaForCausalLM

    lora = LoraConfig(
        r=16,
        lora_alpha=32,
        lora_dropout=0.1,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        task_type="CAUSAL_LM",
    )
    with torch.device("meta"):  # shapes only: no memory, no weights
        model = get_peft_model(LlamaForCausalLM(LlamaConfig(**LLAMA_7B)), lora)
    trainable, total = model.get_nb_trainable_parameters()
    return {
        "trainable": int(trainable),
        "total": int(total),
        "trainable_share": round(trainable / total, 5),
        "ok": trainable == SOURCE_LORA_TRAINABLE,
    }


def small_file(source: Path, out: Path, n: int) -> Path:
    """The first `n` records of a data file (keeps evaluation short)."""
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.writing import write_records

    return write_records(load_dataset_file(source, on_error="skip").records[:n], out)


def train_qlora(base_dir: Path, train_file: Path, val_file: Path, run_dir: Path, steps: int):
    """QLoRA through train(): returns (status, seconds)."""
    from vetllm.config import TrainConfig
    from vetllm.engine.training import train

    cfg = TrainConfig(
        name="gpu-check-qlora",
        base_model=str(base_dir),
        method="qlora",
        data=str(train_file),
        val_data=str(val_file),
        max_steps=steps,
        per_device_batch=8,
        grad_accum=1,
        learning_rate=2e-3,  # a random base learns little at 2e-4 in a few dozen steps
        max_length=256,
        logging_steps=5,
        eval_steps=None,
        save_steps=steps,
        bf16=True,
    )
    started = time.perf_counter()
    status = train(cfg, run_dir)
    return status, time.perf_counter() - started


def check_reload_and_predict(run_dir: Path, val_file: Path) -> dict:
    """load_trained (4-bit base + adapter), both decodings, and evaluate_run for each."""
    from vetllm.engine.evaluate import evaluate_run
    from vetllm.engine.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    model = predictor.model
    four_bit = sum(type(m).__name__ == "Linear4bit" for m in model.modules())
    notes = ["Buffalo with neck swelling and open-mouth breathing", "Goat: fever, lip sores"]
    out = {"linear4bit_modules": four_bit, "device": str(next(model.parameters()).device)}
    for decoding in ("free", "constrained"):
        answers = [p.to_api_dict() for p in predictor.predict(notes, decoding=decoding)]
        metrics = evaluate_run(
            run_dir,
            val_file,
            decoding=decoding,
            out_dir=run_dir / f"eval-{decoding}",
            predictor=predictor,
        )
        keys = ("n", "strict_accuracy", "lenient_accuracy", "format_valid_rate", "notes_per_s")
        out[decoding] = {k: metrics[k] for k in keys}
        out[decoding]["example_codes"] = [[c["code"] for c in a["codes"]] for a in answers]
    constrained = out["constrained"]
    out["ok"] = (
        four_bit > 0
        and constrained["strict_accuracy"] == constrained["lenient_accuracy"]
        and constrained["format_valid_rate"] == 1.0
    )
    return out


def _step(report: dict, name: str, function, *args):
    """Run one check, recording its result or its error (the other checks still run)."""
    started = time.perf_counter()
    try:
        # Training logs go to stdout; keep stdout for the one JSON report.
        with contextlib.redirect_stdout(sys.stderr):
            report[name] = function(*args)
    except Exception as error:  # noqa: BLE001 - the report must say what failed, then go on
        report[name] = {"ok": False, "error": f"{type(error).__name__}: {error}"}
        report.setdefault("tracebacks", {})[name] = traceback.format_exc()[-2000:]
    if isinstance(report[name], dict):
        report[name]["seconds"] = round(time.perf_counter() - started, 2)
    return report[name]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="QLoRA optimizer steps")
    parser.add_argument("--bench-steps", type=int, default=8, help="steps per GPU recipe")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    args = parser.parse_args(argv)
    import torch

    report: dict = {"cuda": torch.cuda.is_available()}
    if not report["cuda"]:
        print(json.dumps({**report, "ok": False, "error": "no CUDA device"}))
        return 1
    report["device"] = torch.cuda.get_device_name(0)
    work = Path(args.out or tempfile.mkdtemp(prefix="vetllm-gpu-check-"))
    work.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    from vetllm.data.synth import bundled_examples

    train_file, val_source = bundled_examples()
    val_file = small_file(val_source, work / "val64.json", 64)
    _step(report, "seven_b_lora_parameters", seven_b_trainable_parameters)
    base = work / "random-llama"
    with contextlib.redirect_stdout(sys.stderr):
        build_random_llama(base, train_file)
    status = _step(
        report, "qlora_training", _training_summary, base, train_file, val_file, work, args.steps
    )
    if status.get("ok"):
        _step(report, "reload_predict_evaluate", check_reload_and_predict, work / "run", val_file)
        _step(report, "bench", _bench, base, train_file, val_file, work, args.bench_steps)
        _step(report, "fast_predict", check_fast_predict, work / "run", val_file)
    _step(report, "gpu_bench_short", gpu_bench_short, work / "gpu-bench", args.bench_steps)
    report["gradio_imported"] = "gradio" in sys.modules
    report["total_seconds"] = round(time.perf_counter() - started, 1)
    checks = [v for k, v in report.items() if isinstance(v, dict) and "ok" in v]
    report["ok"] = all(c["ok"] for c in checks) and not report["gradio_imported"]
    print(json.dumps(report, indent=2, default=str))
    return 0 if report["ok"] else 1


def _training_summary(base: Path, train_file: Path, val_file: Path, work: Path, steps: int):
    from vetllm.runs.state import RunState

    status, seconds = train_qlora(base, train_file, val_file, work / "run", steps)
    card = json.loads((work / "run" / "model" / "run_card.json").read_text())
    losses = [m["loss"] for m in _metrics(work / "run") if "loss" in m]
    return {
        "ok": status.get("state") == RunState.COMPLETED and bool(losses) and losses[-1] < losses[0],
        "state": status.get("state"),
        "steps": status.get("step"),
        "train_seconds": round(seconds, 1),
        "trainable_parameters": card.get("trainable_parameters"),
        "first_loss": losses[0] if losses else None,
        "last_loss": losses[-1] if losses else None,
        "final_metrics": status.get("final_metrics"),
    }


def _metrics(run_dir: Path) -> list[dict]:
    lines = (run_dir / "metrics.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def _bench(base: Path, train_file: Path, val_file: Path, work: Path, steps: int) -> dict:
    from vetllm.engine.bench import bench_gpu_recipes, bench_prediction

    comparison = bench_gpu_recipes(str(base), train_file, work / "bench", steps)
    prediction = bench_prediction(work / "run", val_file, 32, (1, 16, 32))
    return {"ok": True, "gpu_comparison": comparison, "prediction": prediction}


def check_fast_predict(run_dir: Path, val_file: Path) -> dict:
    """Codes of the 4-bit base + adapter against the merged dense model, on the same notes."""
    from vetllm.engine.evaluate import load_records
    from vetllm.engine.fast_predict import make_fast
    from vetllm.engine.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    records, _, _ = load_records(val_file, predictor.catalogue, "validation")
    notes = [r.note for r in records]
    decodings = ("free", "constrained")
    before = {d: [p.result.codes for p in predictor.predict(notes, d, 32)] for d in decodings}
    fast = make_fast(predictor)
    after = {d: [p.result.codes for p in fast.predictor.predict(notes, d, 32)] for d in decodings}
    differing = {
        d: sum(a != b for a, b in zip(before[d], after[d], strict=True)) for d in decodings
    }
    return {
        "ok": fast.merged and not any(differing.values()),
        "merged": fast.merged,
        "reason": fast.reason,
        "batch_size_from_free_memory": fast.batch_size,
        "notes": len(notes),
        "notes_with_different_codes": differing,
    }


def gpu_bench_short(work: Path, steps: int) -> dict:
    """`vetllm bench --gpu` on the small shape: every variant trains, prediction is timed."""
    from vetllm.engine.gpu_bench import run_gpu_bench

    result = run_gpu_bench(shape="small", steps=steps, n_single=4, n_batch=32, work_dir=work)
    failed = [row["name"] for row in result["training"] if "error" in row]
    merged = result.get("prediction", {}).get("merged", {}).get("merged")
    result["ok"] = bool(not failed and merged)
    result["failed_variants"] = failed
    return result


if __name__ == "__main__":
    raise SystemExit(main())
