"""Loading loss histories and analysing them: plateau, early stop and flags, from logged data only.

Input is a Trainer `log_history` (trainer_state.json) or the run's metrics.jsonl. Definitions:

* reduction = (first logged loss - loss) / first logged loss.
* epoch from steps = step / steps_per_epoch (optimizer steps). The Trainer itself logs
  micro-batches consumed / micro-batches per epoch (`CoveragePlan.logged_epoch`), which can
  differ in the fourth decimal: step 10 of the seed run is 10/201 = 0.0498 here, 40/801 = 0.0499
  in its log.
* plateau: smooth the loss with a centred median over `window` logged points (robust to single
  spikes, no lag). The plateau starts at the first logged point, with at least `window` points
  from it to the end, after which the smoothed loss never falls more than `threshold` (relative)
  below its value there. Defaults: 10 % over 3 points.
* early stop: the step where the eval accuracy peaks, else where eval loss is lowest, else where
  the plateau starts; only suggested when it is before the last logged step.
* rising loss: the final loss is over the lowest by more than `threshold`, judged only on points
  logged while the learning rate was above LR_DECAYED of its peak (after that it is noise).
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path

from vetllm.errors import DataError, Problem, VetLLMError

# The seed pipeline's published loss history (DOMAIN.md section 1), for reference overlays.
SOURCE_LOSS_HISTORY: list[dict] = [
    {"step": s, "epoch": e, "loss": v}
    for s, e, v in [
        (10, 0.05, 3.3359), (20, 0.10, 1.9347), (30, 0.15, 0.4986), (50, 0.25, 0.1482),
        (100, 0.50, 0.0802), (200, 1.00, 0.0587), (300, 1.49, 0.0549), (400, 1.99, 0.0562),
        (600, 2.99, 0.0533), (603, 3.00, 0.0533),
    ]
]  # fmt: skip
SOURCE_STEPS_PER_EPOCH = 201  # measured: 1,602 samples, micro 2 x accum 4 (DOMAIN.md)

PLATEAU_THRESHOLD = 0.10  # relative loss improvement still counted as progress
SMOOTHING_WINDOW = 3  # logged points in the centred median
OVERFIT_RISE = 0.05  # relative rise of eval loss above its minimum
LR_DECAYED = 0.05  # share of the peak learning rate below which the schedule counts as ended
MAX_LOG_BYTES = 200 * 1024 * 1024
ACCURACY_KEYS = ("eval_strict_accuracy", "eval_lenient_accuracy")


@dataclass
class LossAnalysis:
    """Everything derived from one loss history (plain data; `to_dict()` is JSON-ready)."""

    points: list[dict]  # step, epoch, epoch_from_steps, loss, reduction
    eval_points: list[dict]
    steps_per_epoch: int | None
    steps_per_epoch_source: str | None  # "given", "inferred" or None
    first_loss: float
    final_loss: float
    min_loss: float
    min_loss_step: int
    reduction: float
    final_step: int
    epoch_boundaries: list[dict]
    plateau: dict | None
    early_stop: dict | None
    flags: list[dict] = field(default_factory=list)  # code, severity, message
    settings: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


def load_log_history(path: str | Path) -> list[dict]:
    """Read trainer_state.json (its `log_history`), a JSON list, or metrics.jsonl."""
    path = Path(path)
    if not path.is_file():
        raise VetLLMError(
            f"log file: {path.name} does not exist; pass trainer_state.json or "
            "metrics.jsonl from a run directory"
        )
    if path.stat().st_size > MAX_LOG_BYTES:
        raise VetLLMError(f"log file: {path.name} is over {MAX_LOG_BYTES // 2**20} MB")
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as error:
        raise VetLLMError(f"log file: {path.name} is not UTF-8 text ({error.reason})") from error
    entries = _parse_entries(text, path.name)
    history = [e for e in entries if "loss" in e or "eval_loss" in e]
    if not history:
        raise VetLLMError(
            f"log file: {path.name} has no entry with 'loss' or 'eval_loss'; "
            "log with logging_steps > 0"
        )
    return history


def _parse_entries(text: str, name: str) -> list[dict]:
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        data = None  # not one JSON document: read it as JSON lines below
    if isinstance(data, dict) and isinstance(data.get("log_history"), list):
        data = data["log_history"]
    if isinstance(data, list):
        return _check_entries(list(enumerate(data, start=1)), name)
    if isinstance(data, dict):
        return _check_entries([(1, data)], name)
    rows, problems = [], []
    for number, line in enumerate(text.splitlines(), start=1):
        if line.strip():
            try:
                rows.append((number, json.loads(line)))
            except json.JSONDecodeError as error:
                problems.append(Problem(name, number, None, f"not valid JSON ({error.msg})"))
    if problems:
        raise DataError(f"{name}: cannot read the log", problems)
    return _check_entries(rows, name)


def _check_entries(rows: list[tuple[int, object]], name: str) -> list[dict]:
    problems, out = [], []
    for number, entry in rows:
        if not isinstance(entry, dict):
            problems.append(Problem(name, number, None, "expected a JSON object"))
            continue
        step = entry.get("step")
        if ("loss" in entry or "eval_loss" in entry) and not _is_whole(step):
            problems.append(Problem(name, number, "step", f"expected a whole number, got {step!r}"))
        for key in ("loss", "eval_loss", "epoch", *ACCURACY_KEYS):
            if entry.get(key) is not None and not is_number(entry[key]):  # None: not logged
                problems.append(
                    Problem(name, number, key, f"expected a number, got {entry[key]!r}")
                )
        out.append(entry)
    if problems:
        raise DataError(f"{name}: some log entries are unusable", problems)
    return out


def analyse_losses(
    history: list[dict],
    steps_per_epoch: int | None = None,
    *,
    threshold: float = PLATEAU_THRESHOLD,
    window: int = SMOOTHING_WINDOW,
    config: dict | None = None,
) -> LossAnalysis:
    """Analyse training (and eval) losses; `config` is a TrainConfig dict, for prompt masking."""
    if steps_per_epoch is not None and not (_is_whole(steps_per_epoch) and steps_per_epoch >= 1):
        raise VetLLMError(
            f"steps_per_epoch: expected a whole number of at least 1, got {steps_per_epoch!r}"
        )
    if not (0 < threshold < 1) or not (_is_whole(window) and window >= 1):
        raise VetLLMError(
            "plateau settings: threshold must be between 0 and 1 and window at least 1, "
            f"got threshold={threshold!r}, window={window!r}"
        )
    train = _last_per_step(e for e in history if is_number(e.get("loss")))
    finite = [e for e in train if math.isfinite(e["loss"])]
    if not finite:
        raise VetLLMError(
            "loss history: no finite training loss logged; check logging_steps and the log file"
        )
    source = "given" if steps_per_epoch else None
    if steps_per_epoch is None:
        steps_per_epoch = _infer_steps_per_epoch(finite)
        source = "inferred" if steps_per_epoch else None
    first = finite[0]["loss"]
    points = [_point(e, first, steps_per_epoch) for e in finite]
    best = min(points, key=lambda p: p["loss"])
    analysis = LossAnalysis(
        points=points,
        eval_points=[_eval_point(e) for e in _last_per_step(e for e in history if _is_eval(e))],
        steps_per_epoch=steps_per_epoch,
        steps_per_epoch_source=source,
        first_loss=first,
        final_loss=points[-1]["loss"],
        min_loss=best["loss"],
        min_loss_step=best["step"],
        reduction=(first - points[-1]["loss"]) / first if first else 0.0,
        final_step=points[-1]["step"],
        epoch_boundaries=_epoch_boundaries(points, steps_per_epoch),
        plateau=_find_plateau(points, threshold, window),
        early_stop=None,
        settings={"threshold": threshold, "window": window},
    )
    analysis.early_stop = _suggest_early_stop(analysis)
    analysis.flags = _history_flags(analysis, n_nonfinite=len(train) - len(finite), config=config)
    return analysis


def _point(entry: dict, first: float, steps_per_epoch: int | None) -> dict:
    step, loss = int(entry["step"]), float(entry["loss"])
    point = {
        "step": step,
        "epoch": entry.get("epoch"),
        "epoch_from_steps": step / steps_per_epoch if steps_per_epoch else None,
        "loss": loss,
        "reduction": (first - loss) / first if first else 0.0,
    }
    if is_number(entry.get("learning_rate")):  # for train_loss_rising: was the rate ~0 yet?
        point["learning_rate"] = float(entry["learning_rate"])
    return point


def _last_per_step(entries) -> list[dict]:
    """Entries with a step, sorted; a step logged twice (a resumed run) keeps its last entry."""
    by_step = {int(e["step"]): e for e in entries if _is_whole(e.get("step"))}
    return [by_step[step] for step in sorted(by_step)]


def _eval_point(entry: dict) -> dict:
    point = {"step": int(entry["step"])}
    if "epoch" in entry:
        point["epoch"] = entry["epoch"]
    for key in ("eval_loss", *ACCURACY_KEYS):
        if is_number(entry.get(key)) and math.isfinite(entry[key]):
            point[key] = entry[key]
    if _is_whole(entry.get("eval_n")):  # validation notes the accuracies are over
        point["n"] = int(entry["eval_n"])
    return point


def _infer_steps_per_epoch(points: list[dict]) -> int | None:
    """Steps per epoch from the logged point with the largest epoch (the most precise ratio)."""
    with_epoch = [p for p in points if is_number(p.get("epoch")) and p["epoch"] > 0]
    if not with_epoch:
        return None
    last = max(with_epoch, key=lambda p: p["epoch"])
    return max(round(last["step"] / last["epoch"]), 1)


def _epoch_boundaries(points: list[dict], steps_per_epoch: int | None) -> list[dict]:
    """Per epoch with logged losses: its step range, last loss logged in it and mean loss.

    Every epoch the log reaches is listed, the last one too: a run of 3 x 85 steps logged every
    10 steps ends its log at step 250, inside epoch 3 (steps 171-255), which is still epoch 3.
    """
    if not steps_per_epoch:
        return []
    out = []
    for epoch in range(1, math.ceil(points[-1]["step"] / steps_per_epoch) + 1):
        lo, hi = (epoch - 1) * steps_per_epoch, epoch * steps_per_epoch
        inside = [p for p in points if lo < p["step"] <= hi]
        if inside:
            losses = [p["loss"] for p in inside]
            out.append(
                {
                    "epoch": epoch,
                    "first_step": lo + 1,
                    "step": hi,
                    "last_logged_step": inside[-1]["step"],
                    "last_loss": losses[-1],
                    "mean_loss": statistics.fmean(losses),
                    "n_logged": len(losses),
                }
            )
    return out


def smooth_losses(losses: list[float], window: int = SMOOTHING_WINDOW) -> list[float]:
    """Centred running median over `window` points, truncated at both ends."""
    half = window // 2
    return [statistics.median(losses[max(0, i - half) : i + half + 1]) for i in range(len(losses))]


def _find_plateau(points: list[dict], threshold: float, window: int) -> dict | None:
    smoothed = smooth_losses([p["loss"] for p in points], window)
    for i in range(len(points) - window + 1):
        if smoothed[i] <= 0:
            continue
        later_best = min(smoothed[i:])
        if later_best >= smoothed[i] * (1 - threshold):
            start, last = points[i]["step"], points[-1]["step"]
            return {
                "start_step": start,
                "start_epoch": points[i]["epoch_from_steps"] or points[i]["epoch"],
                "smoothed_loss": smoothed[i],
                "later_improvement": (smoothed[i] - later_best) / smoothed[i],
                "steps_after": last - start,
                "share_of_run_after": (last - start) / last if last else 0.0,
            }
    return None


def _suggest_early_stop(analysis: LossAnalysis) -> dict | None:
    evals = analysis.eval_points
    for key in ACCURACY_KEYS:
        scored = [e for e in evals if is_number(e.get(key))]
        if scored:
            best = max(scored, key=lambda e: e[key])  # first maximum wins ties
            return _stop_at(analysis, best["step"], f"{key} peaks at {best[key]:.3f}")
    with_loss = [e for e in evals if is_number(e.get("eval_loss"))]
    if with_loss:
        best = min(with_loss, key=lambda e: e["eval_loss"])
        return _stop_at(analysis, best["step"], f"eval_loss is lowest ({best['eval_loss']:.4f})")
    if analysis.plateau:
        p = analysis.plateau
        reason = (
            f"the training loss improves less than {analysis.settings['threshold']:.0%} after "
            "it; no validation metric was logged, so confirm on a validation set"
        )
        return _stop_at(analysis, p["start_step"], reason)
    return None


def _stop_at(analysis: LossAnalysis, step: int, reason: str) -> dict | None:
    last = analysis.final_step
    if step >= last:
        return None
    spe = analysis.steps_per_epoch
    return {
        "step": step,
        "epoch": step / spe if spe else None,
        "reason": reason,
        "steps_saved": last - step,
        "share_saved": (last - step) / last,
    }


# code -> (severity, message template); `_flag(code, **values)` fills the template.
FLAG_TEXT = {
    "non_finite_loss": ("warning", "{n} logged loss value(s) are NaN or infinite: training "
                        "diverged or overflowed; lower the learning rate or use bf16"),
    "too_few_points": ("info", "only {n} training loss value(s) logged, too few to judge "
                       "trends; lower logging_steps"),
    "train_loss_rising": ("warning", "loss {final:.4g} at step {last_step} is above the minimum "
                          "{low:.4g} (step {step}) while the learning rate was still above "
                          "~0: the learning rate may be too high"),
    "still_improving": ("info", "the loss was still falling at the last logged step: more "
                        "steps may help"),
    "overfitting": ("warning", "eval loss rose from {low:.4g} (step {low_step}) to {last:.4g} "
                    "(step {last_step}) while the training loss kept falling: overfitting; "
                    "stop earlier or add data"),
    "loss_over_prompt": ("warning", "the loss is computed over the whole prompt, so most of it "
                         "measures memorised instruction boilerplate, not the codes; mask the "
                         "prompt"),
}  # fmt: skip


def _history_flags(a: LossAnalysis, n_nonfinite: int, config: dict | None) -> list[dict]:
    flags = [_flag("non_finite_loss", n=n_nonfinite)] if n_nonfinite else []
    if len(a.points) < 3:
        flags.append(_flag("too_few_points", n=len(a.points)))
    flags += _rising_loss_flags(a)
    if a.plateau is None and len(a.points) >= 3 and a.reduction > 0:
        flags.append(_flag("still_improving"))
    flags += _overfitting_flags(a)
    if config and _loss_covers_prompt(config):
        flags.append(_flag("loss_over_prompt"))
    return flags


def _rising_loss_flags(a: LossAnalysis) -> list[dict]:
    """The final loss is above the lowest, and it rose while the learning rate still mattered.

    Once a schedule has decayed the learning rate to ~0 (under LR_DECAYED of its logged peak)
    the weights barely move, so a higher loss there is batch-to-batch noise, not a rate that is
    too high: only points logged before that are compared. Without a logged rate, all are.
    """
    rise = 1 + a.settings["threshold"]
    if a.final_loss <= a.min_loss * rise:
        return []
    rates = [p["learning_rate"] for p in a.points if is_number(p.get("learning_rate"))]
    peak = max(rates, default=0.0)
    active = a.points
    if len(rates) == len(a.points) and peak > 0:
        active = [p for p in a.points if p["learning_rate"] > LR_DECAYED * peak]
    if not active:
        return []
    low, last = min(active, key=lambda p: p["loss"]), active[-1]
    if last["loss"] <= low["loss"] * rise:
        return []
    return [
        _flag("train_loss_rising", final=last["loss"], last_step=last["step"], low=low["loss"],
              step=low["step"])
    ]  # fmt: skip


def _overfitting_flags(analysis: LossAnalysis) -> list[dict]:
    evals = [e for e in analysis.eval_points if is_number(e.get("eval_loss"))]
    if len(evals) < 2:
        return []
    best, last = min(evals, key=lambda e: e["eval_loss"]), evals[-1]
    before = [p["loss"] for p in analysis.points if p["step"] <= best["step"]]
    train_fell = bool(before) and analysis.final_loss < before[-1]
    if last["eval_loss"] > best["eval_loss"] * (1 + OVERFIT_RISE) and train_fell:
        return [_flag("overfitting", low=best["eval_loss"], low_step=best["step"],
                      last=last["eval_loss"], last_step=last["step"])]  # fmt: skip
    return []


def _loss_covers_prompt(config: dict) -> bool:
    """True when a config says the loss includes the prompt (names used by common trainers)."""
    if config.get("train_on_prompt") is True or config.get("loss_on_prompt") is True:
        return True
    return config.get("mask_prompt") is False or config.get("train_on_inputs") is True


def _flag(code: str, **values) -> dict:
    severity, template = FLAG_TEXT[code]
    return {"code": code, "severity": severity, "message": template.format(**values)}


def _is_eval(entry: dict) -> bool:
    return any(is_number(entry.get(k)) for k in ("eval_loss", *ACCURACY_KEYS))


def _is_whole(value) -> bool:
    if isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, int) and not isinstance(value, bool)


def is_number(value) -> bool:
    """True for ints and floats (NaN included), not for bools."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)
