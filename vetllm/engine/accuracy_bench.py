"""`vetllm bench accuracy`: does the CPU default beat bag-of-words, on every data set and seed?

Trains the default recipe (configs/tiny-cpu.yaml unless told otherwise) on several data sets and
seeds, and scores it beside the tuned bag-of-words baseline and the majority answer on each data
set's test notes: lenient and strict accuracy, macro F1, mean and MINIMUM over seeds (a recipe
that wins on average but loses on an unlucky seed is not one to trust), and training seconds.
Data sets, all written by `vetllm data synth` (never by hand) except the bundled examples:
- bundled: examples/train.json (a 15% validation part split off by note text), tested on
  examples/val.json;
- source-like: the real source's shape (few template notes, many copies, ~10% conflicting
  labels; `--style source-like`), split by note text into train / val / test;
- free-text: free-text notes only (`--style free`), split the same way;
- template-to-free: trained on the source-like template notes, tested on the free-text test notes
  (does a model trained on a user's template notes read what vets type?).
Each seed's gap to bag-of-words comes with a paired 95% interval from a bootstrap over distinct
test notes (`evaluation_checks.paired_gap`): a split's test notes are ~90 distinct notes, some
repeated 20 times, so a gap of a few records can be chance either way.
The benchmark prints JSON or a table; it asserts nothing (targets are read by people).
"""

from __future__ import annotations

import contextlib
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from vetllm import resources
from vetllm.errors import VetLLMError
from vetllm.evaluation_checks import paired_gap

DATASETS = ("bundled", "source-like", "free-text", "template-to-free")
DEFAULT_CONFIG = resources.PRESETS_DIR / f"{resources.DEFAULT_PRESET}.yaml"
SPLIT = {"val_fraction": 0.1, "test_fraction": 0.2}  # shares of distinct notes
SCORES = ("lenient_accuracy", "strict_accuracy", "macro_f1")


def write_bench_datasets(
    work_dir: Path, names=DATASETS, n_source: int = 1600, n_free: int = 1200, data_seed: int = 1
) -> dict[str, dict[str, Path]]:
    """{dataset: {"train", "val", "test": path}} for the named data sets, written under work_dir."""
    from vetllm.data.synth import bundled_examples, write_synthetic_dataset

    written: dict[str, dict[str, Path]] = {}
    styles = {"source-like": ("source-like", n_source), "free-text": ("free", n_free)}
    needed = set(names) | ({"source-like", "free-text"} if "template-to-free" in names else set())
    for name in sorted(needed & set(styles)):
        style, n = styles[name]
        out = work_dir / name
        write_synthetic_dataset(out, n=n, seed=data_seed, style=style, **SPLIT)
        written[name] = {part: out / f"{part}.json" for part in ("train", "val", "test")}
    if "template-to-free" in names:
        written["template-to-free"] = {
            **written["source-like"],
            "test": written["free-text"]["test"],
        }
    if "bundled" in names:
        written["bundled"] = _bundled_parts(work_dir / "bundled", *bundled_examples())
    return {name: written[name] for name in names}


def _bundled_parts(out: Path, train_path: Path, val_path: Path) -> dict[str, Path]:
    """The bundled train file split 85/15 by note text (validation), tested on val.json."""
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.split import split_by_note
    from vetllm.data.synth import records_to_source

    records = load_dataset_file(train_path, on_error="reject").records
    split = split_by_note(records, val_fraction=0.15, seed=0)
    out.mkdir(parents=True, exist_ok=True)
    paths = {"train": out / "train.json", "val": out / "val.json", "test": val_path}
    for part in ("train", "val"):
        rows = records_to_source(list(getattr(split, part)))
        paths[part].write_text(json.dumps(rows, ensure_ascii=False), encoding="utf-8")
    return paths


def run_accuracy_bench(
    config: str | Path = DEFAULT_CONFIG,
    datasets=DATASETS,
    seeds=(0, 1, 2),
    work_dir: str | Path | None = None,
    overrides=(),
    n_source: int = 1600,
    n_free: int = 1200,
    data_seeds=(1,),
    jobs: int = 1,
) -> dict:
    """Train the config on every data set and seed; scores beside the baselines (see module).

    Several `data_seeds` generate each synthetic data set that many times (other notes, another
    split): one split's test notes are few and repeated, so one ambiguous note moves accuracy
    by points; results are then keyed "NAME@DATA_SEED" (bundled once: it is fixed).
    `jobs` > 1 trains that many runs at once in separate processes (each run keeps the
    config's own thread count): the runs are independent, so only wall time changes.
    """
    _check_arguments(datasets, seeds, data_seeds)
    with contextlib.ExitStack() as stack:
        if work_dir is None:
            work_dir = stack.enter_context(tempfile.TemporaryDirectory(prefix="vetllm-acc-"))
        root = Path(work_dir)
        paths = _all_splits(root / "data", datasets, n_source, n_free, data_seeds)
        trained = _train_all(paths, config, seeds, root / "runs", overrides, jobs)
        results = {
            name: _bench_dataset(parts, config, seeds, root / "runs", overrides, trained)
            for name, parts in paths.items()
        }
    return {
        "config": Path(config).name,
        "overrides": list(overrides),
        "seeds": list(seeds),
        "data_seeds": list(data_seeds),
        "datasets": results,
        "model_min_beats_bag_of_words": {
            name: result["model"]["lenient_accuracy"]["min"]
            >= result["bag_of_words"]["lenient_accuracy"]
            for name, result in results.items()
        },
        "gap_to_bag_of_words": {name: _gap(result) for name, result in results.items()},
    }


def _all_splits(data_dir: Path, datasets, n_source, n_free, data_seeds) -> dict:
    """{key: parts} over the data seeds; with one data seed the keys are the data set names."""
    if len(data_seeds) == 1:
        return write_bench_datasets(data_dir, datasets, n_source, n_free, data_seeds[0])
    paths = {}
    for data_seed in data_seeds:
        names = [n for n in datasets if n != "bundled" or data_seed == data_seeds[0]]
        written = write_bench_datasets(
            data_dir / f"seed{data_seed}", names, n_source, n_free, data_seed
        )
        paths |= {
            name if name == "bundled" else f"{name}@{data_seed}": parts
            for name, parts in written.items()
        }
    return paths


def _gap(result: dict) -> dict:
    """Model minus bag-of-words (lenient): its minimum and mean over seeds, and the worst
    seed's paired 95% interval (bootstrap over distinct test notes): an interval reaching
    both sides of 0 means that seed's gap, either way, may be chance."""
    model, bow = result["model"]["lenient_accuracy"], result["bag_of_words"]["lenient_accuracy"]
    worst = min(result["gap_to_bag_of_words_per_seed"], key=lambda gap: gap["gap"])
    return {
        "min": round(model["min"] - bow, 4),
        "mean": round(model["mean"] - bow, 4),
        "min_ci95": worst["ci95"],
    }


def _check_arguments(datasets, seeds, data_seeds) -> None:
    problems = []
    if not data_seeds or not all(isinstance(s, int) for s in data_seeds):
        problems.append(f"data seeds: got {list(data_seeds)!r}; give whole numbers, e.g. 1,2,3")
    unknown = [name for name in datasets if name not in DATASETS]
    if unknown or not datasets:
        problems.append(f"datasets: got {list(datasets)!r}; choose from {', '.join(DATASETS)}")
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        problems.append(f"seeds: got {list(seeds)!r}; give whole numbers, e.g. 0,1,2")
    if problems:
        raise VetLLMError("bench accuracy: " + "; ".join(problems))


def _run_key(parts: dict, seed: int) -> tuple:
    return (str(parts["train"]), str(parts["val"]), seed)


def _train_all(paths: dict, config, seeds, runs_dir: Path, overrides, jobs: int) -> dict:
    """{(train, val, seed): (run dir, train seconds)}; data sets sharing a training set (as
    template-to-free shares source-like's) share its runs."""
    from concurrent.futures import ProcessPoolExecutor
    from multiprocessing import get_context

    tasks = {}
    for parts in paths.values():
        for seed in seeds:
            split = parts["train"].parent  # DATA/[seedN/]NAME
            prefix = f"{split.parent.name}-" if split.parent.name.startswith("seed") else ""
            run_dir = runs_dir / f"{prefix}{split.name}-seed{seed}"
            tasks.setdefault(_run_key(parts, seed), (parts, config, seed, run_dir, overrides))
    if jobs <= 1:
        return {key: (task[3], _train_one(*task)) for key, task in tasks.items()}
    # spawn: a forked child would inherit torch's thread pools and locks from this process.
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = {key: pool.submit(_train_one, *task) for key, task in tasks.items()}
        return {key: (tasks[key][3], future.result()) for key, future in futures.items()}


def _bench_dataset(parts, config, seeds, runs_dir, overrides, trained: dict) -> dict:
    from vetllm.catalogue import load_catalogue
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.records import note_key

    catalogue = load_catalogue()
    records = {
        part: load_dataset_file(path, on_error="reject", catalogue=catalogue).records
        for part, path in parts.items()
    }
    baselines, bow_verdicts = _baseline_scores(records["train"], records["test"], catalogue)
    keys = [note_key(r.note) for r in records["test"]]
    per_seed = []
    for seed in seeds:
        run_dir, seconds = trained[_run_key(parts, seed)]
        scores, verdicts = _score_run(run_dir, records["test"])
        gap = paired_gap(keys, verdicts, bow_verdicts)
        per_seed.append({**scores, "train_seconds": seconds, "gap": _rounded_gap(gap)})
    model = {key: _spread([run[key] for run in per_seed]) for key in (*SCORES, "train_seconds")}
    return {
        "data": {
            part: {"records": len(rows), "distinct_notes": len({note_key(r.note) for r in rows})}
            for part, rows in records.items()
        },
        "model": model,
        "gap_to_bag_of_words_per_seed": [run["gap"] for run in per_seed],
        **baselines,
    }


def _rounded_gap(gap: dict) -> dict:
    return {"gap": round(gap["gap"], 4), "ci95": [round(bound, 4) for bound in gap["ci"]]}


def _train_one(parts, config, seed, run_dir, overrides) -> float:
    """Train one seed (its log goes to stderr: stdout stays clean for --json); seconds taken."""
    from vetllm.config import load_config
    from vetllm.engine.training import train

    settings = [
        *overrides,
        f"data={parts['train']}",
        f"val_data={parts['val']}",
        f"seed={seed}",
        "final_eval=false",
    ]
    cfg = load_config(config, settings)
    started = time.monotonic()
    with contextlib.redirect_stdout(sys.stderr):
        train(cfg, run_dir)
    return round(time.monotonic() - started, 1)


def _score_run(run_dir: Path, test_records) -> tuple[dict, list[bool]]:
    from vetllm.engine.predict import Predictor

    predictor = Predictor.from_run(run_dir)
    predictions = predictor.predict([r.note for r in test_records], "free", batch_size=32)
    return _score([p.raw_output for p in predictions], test_records, predictor.catalogue)


def _score(raw_outputs: list[str], records, catalogue) -> tuple[dict, list[bool]]:
    """SCORES, rounded, and the lenient verdict per record (for paired gaps)."""
    from vetllm.metrics import score_predictions

    items = [(raw, list(r.labels)) for raw, r in zip(raw_outputs, records, strict=True)]
    scores = score_predictions(items, catalogue)
    values = scores.to_dict()
    rounded = {key: round(values[key], 4) for key in SCORES}
    return rounded, [outcome.lenient_correct for outcome in scores.outcomes]


def _baseline_scores(train_records, test_records, catalogue) -> tuple[dict, list[bool]]:
    """Tuned bag of words and the majority answer, scored like the model (one fit: no seed),
    and bag-of-words' verdict per record."""
    from vetllm.baselines import run_baselines
    from vetllm.data.prompts import ALPACA

    results = run_baselines(train_records, test_records)
    out, verdicts = {}, {}
    for name in ("bag_of_words", "majority"):
        raw = [ALPACA.format_response(labels) for labels in results[name]["predictions"]]
        out[name], verdicts[name] = _score(raw, test_records, catalogue)
    out["bag_of_words"]["settings"] = results["bag_of_words"].get("settings")
    return out, verdicts["bag_of_words"]


def _spread(values: list[float]) -> dict:
    return {
        "per_seed": values,
        "mean": round(statistics.fmean(values), 4),
        "min": min(values),
        "max": max(values),
    }


def format_accuracy_bench(result: dict) -> str:
    """A Markdown table: model mean / min over seeds beside bag-of-words and majority."""
    lines = [
        f"config {result['config']}, seeds {result['seeds']}, overrides {result['overrides']}",
        "",
        "| data set | model lenient mean | model lenient min | model min - bag-of-words "
        "(95% CI) | model macro F1 min | bag-of-words lenient | bag-of-words macro F1 | "
        "majority | train s (mean) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, item in result["datasets"].items():
        model, bow = item["model"], item["bag_of_words"]
        low, high = result["gap_to_bag_of_words"][name]["min_ci95"]
        lines.append(
            f"| {name} | {model['lenient_accuracy']['mean']:.3f} | "
            f"{model['lenient_accuracy']['min']:.3f} | "
            f"{model['lenient_accuracy']['min'] - bow['lenient_accuracy']:+.3f} "
            f"({low:+.3f} to {high:+.3f}) | "
            f"{model['macro_f1']['min']:.3f} | "
            f"{bow['lenient_accuracy']:.3f} | {bow['macro_f1']:.3f} | "
            f"{item['majority']['lenient_accuracy']:.3f} | {model['train_seconds']['mean']:.0f} |"
        )
    return "\n".join(lines) + "\n"
