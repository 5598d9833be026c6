"""Several seeds of one setting: one run per seed, and their validation accuracy (mean, minimum).

`vetllm train --seeds 0,1,2 --output runs/x` trains runs/x-seed0, runs/x-seed1, runs/x-seed2 (each
an ordinary run the app lists and compares) and writes runs/x-seeds.json. The accuracy of a seed
is the final evaluation of its served model on the validation data, else the periodic validation
score of the served step. The minimum is reported beside the mean because one unlucky seed is
what a user who trains once may get (seeds alone moved lenient accuracy by 5 points, issue 7).
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

from vetllm.config import TrainConfig
from vetllm.errors import VetLLMError
from vetllm.runs.state import RunState, RunStatus

ACCURACY_KEYS = ("lenient_accuracy", "strict_accuracy")


def parse_seeds(text: str) -> list[int]:
    """'0,1,2' -> [0, 1, 2]; VetLLMError naming the value otherwise."""
    parts = [part.strip() for part in text.split(",") if part.strip()]
    try:
        seeds = [int(part) for part in parts]
    except ValueError:
        seeds = []
    if not seeds or len(set(seeds)) != len(seeds) or min(seeds) < 0:
        raise VetLLMError(
            f"--seeds: got {text!r}; give distinct whole numbers separated by commas, e.g. 0,1,2"
        )
    return seeds


def seed_run_dir(base: Path, seed: int) -> Path:
    """The run folder of one seed: BASE-seedN beside BASE."""
    return base.with_name(f"{base.name}-seed{seed}")


def summary_path(base: Path) -> Path:
    return base.with_name(f"{base.name}-seeds.json")


def train_seeds(cfg: TrainConfig, base: Path, seeds: list[int], resume: bool = False) -> dict:
    """Train one run per seed (completed ones are kept when resuming); returns the summary."""
    from vetllm.engine.training import is_main_process, train
    from vetllm.runs.directory import RunDirectory, atomic_write_text
    from vetllm.runs.lock import acquire_training_lock

    results = []
    for seed in seeds:
        run_dir = seed_run_dir(base, seed)
        status = RunDirectory(run_dir).read_status()
        if not (resume and status.state == RunState.COMPLETED):
            seeded = cfg.replace(seed=seed, name=f"{cfg.name}-seed{seed}")
            if is_main_process():
                acquire_training_lock(run_dir)  # one training per runs folder, as for one seed
            resumable = resume and (run_dir / "config.yaml").is_file()
            status = RunStatus.from_dict(train(seeded, run_dir, resume=resumable))
        results.append({"seed": seed, "run": str(run_dir), **_seed_accuracy(status)})
        if status.state != RunState.COMPLETED:
            break  # stopped on request: the remaining seeds wait for a resume
    summary = summarise_seeds(results, planned=len(seeds))
    if is_main_process():
        path = summary_path(base)  # atomic: a crash mid-write leaves the old summary, not half
        atomic_write_text(path, json.dumps(summary, indent=2) + "\n")
        summary["path"] = str(path)
    return summary


def _seed_accuracy(status: RunStatus) -> dict:
    """State and validation accuracy of one seed's run, with where the accuracy came from."""
    out = {"state": status.state.value}
    final, served = status.final_metrics or {}, status.served or {}
    source = final if "lenient_accuracy" in final else served
    if "lenient_accuracy" in source:
        out.update({key: source.get(key) for key in (*ACCURACY_KEYS, "n")})
        out["source"] = "final_evaluation" if source is final else "periodic_validation"
    if served.get("step") is not None:
        out["served_step"] = served["step"]
    return out


def summarise_seeds(results: list[dict], planned: int | None = None) -> dict:
    """Mean and minimum (with its seed) of each accuracy over the seeds that have one."""
    summary: dict = {"seeds": results, "planned": planned or len(results)}
    summary["complete"] = len(results) == summary["planned"] and all(
        r.get("state") == RunState.COMPLETED for r in results
    )
    for key in ACCURACY_KEYS:
        scored = [r for r in results if isinstance(r.get(key), int | float)]
        if scored:
            worst = min(scored, key=lambda r: r[key])
            summary[key] = {
                "mean": statistics.fmean(r[key] for r in scored),
                "min": worst[key],
                "min_seed": worst["seed"],
                "n_seeds": len(scored),
            }
    return summary


def describe_summary(summary: dict) -> str:
    """One line: 'lenient accuracy over 3 seeds: mean 0.870, min 0.840 (seed 1); strict ...'."""
    parts = []
    for key in ACCURACY_KEYS:
        stats = summary.get(key)
        if stats:
            parts.append(
                f"{key.replace('_', ' ')} over {stats['n_seeds']} seeds: mean {stats['mean']:.3f}, "
                f"min {stats['min']:.3f} (seed {stats['min_seed']})"
            )
    line = "; ".join(parts) or "no validation accuracy (give validation data)"
    if not summary.get("complete"):
        line += f" [{len(summary['seeds'])} of {summary['planned']} seeds finished]"
    return line
