"""The served model: which completed run answers the app's predictions, chosen on purpose.

One small file in the runs folder, `served.json` ({"run", "since", "how"}), names the run that
the Predict tab, the `predict` API and batch coding use by default. It survives restarts and is
replaced atomically. A newly completed run is never served by itself: only `promote_run` (an
admin action in a public app) changes the record. When nothing is served, the first-launch
default (recorded by the app's bootstrap as `pending_default`) or, in a runs folder from before
this record existed, the completed run with the best validation accuracy is adopted once and
written down, so a later smoke test can never take its place silently.

`run_rows` builds the runs table (name, state, preset, data: a file name, the bundled examples
or hub:user/name; steps, validation accuracy, the bag-of-words baseline on the same validation
notes, served mark, created). It runs inside page requests, so a run whose data is on the
Hugging Face Hub gets no baseline here (nothing is downloaded). Imports no torch.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

from vetllm.data.hf_datasets import is_hub_source
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory, atomic_write_text, now_iso
from vetllm.runs.state import ACTIVE_STATES, RunState

SERVED_FILE = "served.json"
SERVED_MARK = "★ served"  # the runs table's mark (not the bare column name, to tell them apart)
BASELINE_FILE = "baseline.json"  # per run: the bag-of-words baseline on its validation notes
LOGGER = logging.getLogger("vetllm.runs.serving")


def read_served_record(runs_dir: Path) -> dict[str, Any]:
    """The served.json content ({} when missing or unreadable)."""
    try:
        record = json.loads((Path(runs_dir) / SERVED_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return record if isinstance(record, dict) else {}


def _write_record(runs_dir: Path, record: dict[str, Any]) -> None:
    atomic_write_text(Path(runs_dir) / SERVED_FILE, json.dumps(record, indent=2) + "\n")


def completed_run_names(runs: list[dict]) -> list[str]:
    """Names of runs with a final model, in the given order (list_runs: newest first)."""
    return [r["name"] for r in runs if r.get("state") == RunState.COMPLETED and r.get("has_model")]


def note_pending_default(runs_dir: Path, name: str) -> None:
    """Record the first-launch default run: it becomes served when it completes, if nothing is."""
    record = read_served_record(runs_dir)
    record["pending_default"] = name
    _write_record(runs_dir, record)


def served_run_name(runs_dir: Path, runs: list[dict] | None = None) -> str | None:
    """The run that answers by default, adopting one (and writing it down) when none is served."""
    from vetllm.runs.launcher import list_runs

    runs = list_runs(runs_dir) if runs is None else runs
    completed = completed_run_names(runs)
    record = read_served_record(runs_dir)
    if record.get("run") in completed:
        return record["run"]
    if not completed:
        return None
    pending = record.get("pending_default")
    if pending in completed:
        chosen, how = pending, "first-launch default (nothing else was served)"
    else:
        by_score = {name: run_scores(Path(runs_dir) / name).get("accuracy") for name in completed}
        chosen = max(completed[::-1], key=lambda name: by_score[name] or -1.0)  # ties: oldest
        how = "adopted: nothing was served; best validation accuracy of the completed runs"
    _write_record(runs_dir, {"run": chosen, "since": now_iso(), "how": how})
    LOGGER.info("served model: %s (%s)", chosen, how)
    return chosen


def promote_run(runs_dir: Path, name: str, runs: list[dict] | None = None) -> dict[str, Any]:
    """Serve the completed run `name` from now on; VetLLMError for any other name."""
    from vetllm.runs.launcher import list_runs

    completed = completed_run_names(list_runs(runs_dir) if runs is None else runs)
    if name not in completed:
        raise VetLLMError(
            f"run: {name!r} is not a completed run with a model, so it cannot be served; "
            "pick a completed run in the runs table"
        )
    record = {"run": name, "since": now_iso(), "how": "promoted"}
    _write_record(runs_dir, record)
    return record


def delete_run(runs_dir: Path, name: str, runs: list[dict] | None = None) -> None:
    """Delete a finished run's folder; the served run and active runs are refused."""
    from vetllm.runs.launcher import list_runs

    entries = {r["name"]: r for r in (list_runs(runs_dir) if runs is None else runs)}
    if name not in entries:
        raise VetLLMError(f"run: {name!r} is not a run of this app; pick one from the runs table")
    if entries[name].get("state") in ACTIVE_STATES:
        raise VetLLMError(f"run {name}: it is {entries[name]['state']}; stop it before deleting")
    if read_served_record(runs_dir).get("run") == name:
        raise VetLLMError(
            f"run {name}: it is the served model; promote another run first, then delete this one"
        )
    shutil.rmtree(Path(runs_dir) / name)


# -- scores ------------------------------------------------------------------------------------
def run_scores(run_dir: Path) -> dict[str, Any]:
    """{accuracy, n, source[, baseline]}: the run's validation (lenient) accuracy from the final
    evaluation, else the served step's validation score, else the best validation step logged
    during training (a run still training), else its latest evaluation on the validation set
    (eval/metrics.json, with the bag-of-words baseline on the same notes); {} when it was never
    evaluated."""
    run = RunDirectory(run_dir)
    status = run.read_status()
    final = status.final_metrics or {}
    if final.get("lenient_accuracy") is not None:
        return {
            "accuracy": float(final["lenient_accuracy"]),
            "n": final.get("n"),
            "source": "final",
        }
    served = status.served or {}
    if isinstance(served.get("lenient_accuracy"), (int, float)):
        return {
            "accuracy": float(served["lenient_accuracy"]),
            "n": served.get("n"),
            "source": "served step",
        }
    best = None
    for entry in run.read_metrics():
        value = entry.get("eval_lenient_accuracy")
        if isinstance(value, (int, float)) and (best is None or value > best):
            best = float(value)
    if best is not None:
        return {"accuracy": best, "n": None, "source": "best step"}
    return _evaluation_scores(Path(run_dir) / "eval" / "metrics.json")


def _evaluation_scores(path: Path) -> dict[str, Any]:
    try:
        metrics = json.loads(path.read_text(encoding="utf-8"))
        scores = {"accuracy": float(metrics["lenient_accuracy"]), "n": metrics.get("n"),
                  "source": "evaluation"}  # fmt: skip
    except (OSError, ValueError, KeyError, TypeError):
        return {}
    bag = (metrics.get("baselines") or {}).get("bag_of_words") or {}
    if isinstance(bag.get("accuracy"), (int, float)):
        scores["baseline"] = float(bag["accuracy"])
    return scores


def run_baseline(run_dir: Path, compute: bool = True) -> float | None:
    """Bag-of-words accuracy on the run's own validation notes (cached in the run folder).

    None when it cannot be had here, which includes data on the Hugging Face Hub: this runs in
    page requests, which never download (`vetllm evaluate` computes it there)."""
    path = Path(run_dir) / BASELINE_FILE
    try:
        return float(json.loads(path.read_text(encoding="utf-8"))["bag_of_words"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    if not compute:
        return None
    try:
        value = _fit_baseline(Path(run_dir))
    except (VetLLMError, OSError, ImportError) as error:
        LOGGER.warning("baseline of %s not computed: %s", Path(run_dir).name, type(error).__name__)
        return None
    if value is not None:
        atomic_write_text(path, json.dumps({"bag_of_words": value}) + "\n")
    return value


def _fit_baseline(run_dir: Path) -> float | None:
    from vetllm.baselines import run_baselines
    from vetllm.config import load_config
    from vetllm.data.loading import load_dataset_file

    cfg = load_config(run_dir / "config.yaml")
    hub = [value for value in (cfg.data, cfg.val_data) if value and is_hub_source(value)]
    if hub:
        LOGGER.info(
            "baseline of %s not computed: %s", run_dir.name, hub_baseline_unavailable(hub[0])
        )
        return None
    train_path, val_path = cfg.data_paths()
    if val_path is None:
        return None
    train = load_dataset_file(train_path, on_error="skip").records
    val = load_dataset_file(val_path, on_error="skip").records
    if not train or not val:
        return None
    return float(run_baselines(train, val, seed=cfg.seed)["bag_of_words"]["accuracy"])


def hub_baseline_unavailable(source: str) -> str:
    """Why a run trained or validated on Hub data has no baseline in the app."""
    return (
        f"its data is a Hub dataset ({source}), which the app does not download; run "
        f"`vetllm evaluate --run RUN_DIR --data {source}` where it can be loaded"
    )


# -- the runs table ------------------------------------------------------------------------------
RUN_COLUMNS = (
    "run", "state", "preset", "data", "steps", "val. accuracy", "bag-of-words", "served", "created",
)  # fmt: skip


def run_rows(runs_dir: Path, runs: list[dict] | None = None) -> list[dict[str, Any]]:
    """One dict per run (RUN_COLUMNS keys), newest first; the served run marked."""
    from vetllm.runs.launcher import list_runs

    runs = list_runs(runs_dir) if runs is None else runs
    served = served_run_name(runs_dir, runs)
    rows = []
    for entry in runs:
        run_dir = Path(runs_dir) / entry["name"]
        facts = _config_facts(run_dir)
        scores = run_scores(run_dir) if entry.get("state") == RunState.COMPLETED else {}
        baseline = scores.get("baseline")
        if baseline is None and scores:
            baseline = run_baseline(run_dir)
        step, total = entry.get("step"), entry.get("total_steps")
        rows.append(
            {
                "run": entry["name"],
                "state": entry.get("state", RunState.UNKNOWN.value),
                "preset": facts.get("preset", "-"),
                "data": facts.get("data", "-"),
                "steps": f"{step or 0} / {total}" if total else str(step or 0),
                "val. accuracy": scores.get("accuracy"),
                "bag-of-words": baseline,
                "served": SERVED_MARK if entry["name"] == served else "",
                "created": str(entry.get("created_at") or entry.get("started_at") or "-"),
            }
        )
    return rows


def _config_facts(run_dir: Path) -> dict[str, str]:
    """The base model / method and the training data name of a run, from its config.yaml."""
    from vetllm.config import BUNDLED_DATA, load_config  # pydantic: only when a table is built

    try:
        cfg = load_config(run_dir / "config.yaml")
    except (VetLLMError, OSError):
        return {}
    if cfg.data == BUNDLED_DATA:
        data = "bundled examples"
    elif is_hub_source(cfg.data):
        data = str(cfg.data)  # hub:user/name[:split], not the "name:split" a path would show
    else:
        data = Path(str(cfg.data)).name
    if data == "train.json" and (run_dir / "data").is_dir():
        data = "uploaded file"
    return {"preset": f"{cfg.base_model} ({cfg.method})", "data": data}
