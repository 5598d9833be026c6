"""Loss-history analysis and the Markdown training report, computed from logged data only.

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
LOW_LOSS = 0.1  # nats/token: this low while accuracy is poor means the loss is not about codes
LOW_ACCURACY = 0.6
OVERFIT_RISE = 0.05  # relative rise of eval loss above its minimum
MAX_LOG_BYTES = 200 * 1024 * 1024
MAX_TABLE_ROWS = 60  # rows of the report's loss table; longer histories are thinned evenly
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
            if entry.get(key) is not None and not _is_number(entry[key]):  # None: not logged
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
    train = _last_per_step(e for e in history if _is_number(e.get("loss")))
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
    return {
        "step": step,
        "epoch": entry.get("epoch"),
        "epoch_from_steps": step / steps_per_epoch if steps_per_epoch else None,
        "loss": loss,
        "reduction": (first - loss) / first if first else 0.0,
    }


def _last_per_step(entries) -> list[dict]:
    """Entries with a step, sorted; a step logged twice (a resumed run) keeps its last entry."""
    by_step = {int(e["step"]): e for e in entries if _is_whole(e.get("step"))}
    return [by_step[step] for step in sorted(by_step)]


def _eval_point(entry: dict) -> dict:
    values = {k: entry.get(k) for k in ("eval_loss", *ACCURACY_KEYS)}
    finite = {k: v for k, v in values.items() if _is_number(v) and math.isfinite(v)}
    return {"step": int(entry["step"]), **{k: entry[k] for k in ("epoch",) if k in entry}, **finite}


def _infer_steps_per_epoch(points: list[dict]) -> int | None:
    """Steps per epoch from the logged point with the largest epoch (the most precise ratio)."""
    with_epoch = [p for p in points if _is_number(p.get("epoch")) and p["epoch"] > 0]
    if not with_epoch:
        return None
    last = max(with_epoch, key=lambda p: p["epoch"])
    return max(round(last["step"] / last["epoch"]), 1)


def _epoch_boundaries(points: list[dict], steps_per_epoch: int | None) -> list[dict]:
    """Per completed epoch: its last step, the last loss logged in it and its mean loss."""
    if not steps_per_epoch:
        return []
    out = []
    for epoch in range(1, points[-1]["step"] // steps_per_epoch + 1):
        lo, hi = (epoch - 1) * steps_per_epoch, epoch * steps_per_epoch
        inside = [p["loss"] for p in points if lo < p["step"] <= hi]
        if inside:
            out.append(
                {
                    "epoch": epoch,
                    "step": hi,
                    "last_loss": inside[-1],
                    "mean_loss": statistics.fmean(inside),
                    "n_logged": len(inside),
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
        scored = [e for e in evals if _is_number(e.get(key))]
        if scored:
            best = max(scored, key=lambda e: e[key])  # first maximum wins ties
            return _stop_at(analysis, best["step"], f"{key} peaks at {best[key]:.3f}")
    with_loss = [e for e in evals if _is_number(e.get("eval_loss"))]
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
    "train_loss_rising": ("warning", "final loss {final:.4g} is above the minimum {low:.4g} "
                          "(step {step}): the learning rate may be too high"),
    "still_improving": ("info", "the loss was still falling at the last logged step: more "
                        "steps may help"),
    "overfitting": ("warning", "eval loss rose from {low:.4g} (step {low_step}) to {last:.4g} "
                    "(step {last_step}) while the training loss kept falling: overfitting; "
                    "stop earlier or add data"),
    "loss_over_prompt": ("warning", "the loss is computed over the whole prompt, so most of it "
                         "measures memorised instruction boilerplate, not the codes; mask the "
                         "prompt"),
    "low_loss_low_accuracy": ("warning", "training loss {loss:.4g} is very low but accuracy is "
                              "only {accuracy:.1%}: the loss is dominated by memorised "
                              "boilerplate or the answers are badly formatted (check prompt "
                              "masking, that EOS is trained, and post-processing)"),
    "low_loss_unverified": ("info", "training loss {loss:.4g} is low, but no accuracy was "
                            "measured: a low loss alone does not show the codes are right; "
                            "evaluate on held-out notes"),
    "steps_mismatch": ("warning", "the log ends at step {step} but the plan has {planned} "
                       "steps: the run stopped early, or the plan's settings differ"),
    "below_majority_baseline": ("warning", "strict accuracy {accuracy:.1%} is no better than "
                                "always predicting the most common code ({majority:.1%})"),
}  # fmt: skip


def _history_flags(a: LossAnalysis, n_nonfinite: int, config: dict | None) -> list[dict]:
    flags = [_flag("non_finite_loss", n=n_nonfinite)] if n_nonfinite else []
    if len(a.points) < 3:
        flags.append(_flag("too_few_points", n=len(a.points)))
    if a.final_loss > a.min_loss * (1 + a.settings["threshold"]):
        flags.append(
            _flag("train_loss_rising", final=a.final_loss, low=a.min_loss, step=a.min_loss_step)
        )
    if a.plateau is None and len(a.points) >= 3 and a.reduction > 0:
        flags.append(_flag("still_improving"))
    flags += _overfitting_flags(a)
    if config and _loss_covers_prompt(config):
        flags.append(_flag("loss_over_prompt"))
    return flags


def _overfitting_flags(analysis: LossAnalysis) -> list[dict]:
    evals = [e for e in analysis.eval_points if _is_number(e.get("eval_loss"))]
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
    return any(_is_number(entry.get(k)) for k in ("eval_loss", *ACCURACY_KEYS))


def _is_whole(value) -> bool:
    if isinstance(value, float) and value.is_integer():
        return True
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def report_concerns(analysis: LossAnalysis, plan=None, stats=None, evaluation=None) -> list[dict]:
    """The analysis flags plus those that need the plan, data set stats or evaluation."""
    flags = list(analysis.flags)
    plan, stats, evaluation = _as_dict(plan), _as_dict(stats), _flat_evaluation(evaluation)
    accuracy, loss = _best_accuracy(analysis, evaluation), analysis.final_loss
    if loss <= LOW_LOSS and accuracy is not None and accuracy < LOW_ACCURACY:
        flags.append(_flag("low_loss_low_accuracy", loss=loss, accuracy=accuracy))
    elif loss <= LOW_LOSS and accuracy is None:
        flags.append(_flag("low_loss_unverified", loss=loss))
    planned, last = plan.get("total_steps"), analysis.final_step
    # The Trainer logs every logging_steps only, so a log may end up to one interval early.
    if planned and (last > planned or planned - last >= _logging_interval(analysis)):
        flags.append(_flag("steps_mismatch", step=last, planned=planned))
    majority = _majority_accuracy(stats, evaluation)
    strict = evaluation.get("strict_accuracy")
    if _is_number(strict) and majority is not None and strict <= majority:
        flags.append(_flag("below_majority_baseline", accuracy=strict, majority=majority))
    return flags


def render_training_report(analysis: LossAnalysis, plan=None, stats=None, evaluation=None) -> str:
    """The whole training-analysis report as Markdown; extra inputs are optional plain dicts."""
    out = ["# Training analysis", "", *_summary_lines(analysis), ""]
    if plan is not None:
        out += ["## Coverage", "", _plan_markdown(plan), ""]
    out += ["## Loss history", "", *_loss_table(analysis), ""]
    if analysis.epoch_boundaries:
        out += ["## Epochs", "", "| epoch | last step | last loss | mean loss | logged points |"]
        out += ["|---|---|---|---|---|", *_epoch_rows(analysis), ""]
    out += ["## Plateau and early stopping", "", *_plateau_lines(analysis), ""]
    if evaluation is not None:
        out += ["## Evaluation", "", *_evaluation_lines(_flat_evaluation(evaluation)), ""]
    if stats is not None:
        out += ["## Data set", "", *_stats_lines(_as_dict(stats)), ""]
    concerns = report_concerns(analysis, plan, stats, evaluation)
    out += ["## Concerns", ""]
    out += [f"- **{c['severity']}** `{c['code']}`: {c['message']}" for c in concerns] or ["- none"]
    return "\n".join(out) + "\n"


def _epoch_rows(a: LossAnalysis) -> list[str]:
    return [
        f"| {b['epoch']} | {b['step']} | {b['last_loss']:.4f} | {b['mean_loss']:.4f} "
        f"| {b['n_logged']} |"
        for b in a.epoch_boundaries
    ]


def _summary_lines(a: LossAnalysis) -> list[str]:
    spe = f"{a.steps_per_epoch} ({a.steps_per_epoch_source})" if a.steps_per_epoch else "unknown"
    return [
        f"- logged training losses: {len(a.points)}, last step {a.final_step}",
        f"- steps per epoch: {spe}",
        f"- loss: {a.first_loss:.4f} at step {a.points[0]['step']} -> {a.final_loss:.4f} "
        f"at step {a.final_step} (reduction {a.reduction:.1%})",
        f"- lowest loss: {a.min_loss:.4f} at step {a.min_loss_step}",
    ]


def _loss_table(a: LossAnalysis) -> list[str]:
    lines = ["| step | epoch (logged) | epoch (steps) | loss | reduction vs first |"]
    lines.append("|---|---|---|---|---|")
    shown = _table_points(a)
    for p in shown:
        logged = f"{p['epoch']:.4g}" if _is_number(p["epoch"]) else "-"  # as precise as logged
        derived = f"{p['epoch_from_steps']:.4f}" if p["epoch_from_steps"] is not None else "-"
        lines.append(
            f"| {p['step']} | {logged} | {derived} | {p['loss']:.4f} | {p['reduction']:.1%} |"
        )
    if len(shown) < len(a.points):
        lines += ["", f"{len(shown)} of {len(a.points)} logged points shown; --json has all."]
    return lines


def _table_points(a: LossAnalysis) -> list[dict]:
    """At most about MAX_TABLE_ROWS evenly spaced points, keeping the first, last and lowest."""
    stride = math.ceil(len(a.points) / MAX_TABLE_ROWS)
    keep = {a.points[-1]["step"], a.min_loss_step, (a.plateau or {}).get("start_step")}
    return [p for i, p in enumerate(a.points) if i % stride == 0 or p["step"] in keep]


def _plateau_lines(a: LossAnalysis) -> list[str]:
    s = a.settings
    lines = [
        f"Plateau: the first logged step after which the {s['window']}-point median loss "
        f"never falls more than {s['threshold']:.0%} further.",
        "",
    ]
    if a.plateau:
        p = a.plateau
        epoch = f" (epoch {p['start_epoch']:.2f})" if p["start_epoch"] is not None else ""
        lines.append(
            f"- plateau from step {p['start_step']}{epoch} at loss {p['smoothed_loss']:.4f}; "
            f"it improves {p['later_improvement']:.1%} more over the remaining "
            f"{p['steps_after']} steps ({p['share_of_run_after']:.0%} of the run)"
        )
    else:
        lines.append("- no plateau: the loss was still improving at the end")
    if a.early_stop:
        e = a.early_stop
        epoch = f" (epoch {e['epoch']:.2f})" if e["epoch"] is not None else ""
        lines.append(
            f"- early-stop suggestion: step {e['step']}{epoch}: {e['reason']}; stopping there "
            f"saves {e['steps_saved']} steps ({e['share_saved']:.0%} of the run)"
        )
    return lines


def _evaluation_lines(ev: dict) -> list[str]:
    lines = []
    for key in (
        "n",
        "strict_accuracy",
        "lenient_accuracy",
        "format_valid_rate",
        "micro_f1",
        "macro_f1",
    ):
        if _is_number(ev.get(key)):
            ci = ev.get(key.replace("accuracy", "ci")) if key.endswith("accuracy") else None
            value = f"{ev[key]:,}" if key == "n" else f"{ev[key]:.1%}"
            value += _ci(ci)
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    for name, result in (ev.get("baselines") or {}).items():
        if isinstance(result, dict) and _is_number(result.get("accuracy")):
            lines.append(f"- baseline {name}: {result['accuracy']:.1%}{_ci(result.get('ci'))}")
    if _is_number(ev.get("share_in_training_data")):
        lines.append(
            f"- evaluated notes also in the training data: {ev['share_in_training_data']:.1%}"
        )
    return lines or ["- no metrics given"]


def _stats_lines(stats: dict) -> list[str]:
    keys = ("n_records", "n_unique_notes", "n_conflicting_notes")
    lines = [f"- {k.replace('_', ' ')}: {_fmt(stats[k])}" for k in keys if k in stats]
    if _is_number(stats.get("accuracy_ceiling")):
        lines.append(f"- accuracy ceiling (label noise): {stats['accuracy_ceiling']:.1%}")
    majority = _majority_accuracy(stats, {})
    if majority is not None:
        lines.append(f"- majority-code baseline: {majority:.1%}")
    return lines or ["- no statistics given"]


def _plan_markdown(plan) -> str:
    if hasattr(plan, "to_markdown"):
        return plan.to_markdown()
    plan = _as_dict(plan)
    rows = [f"| {k.replace('_', ' ')} | {_fmt(v)} |" for k, v in plan.items() if k != "notes"]
    notes = [f"- {n}" for n in plan.get("notes", [])]
    return "\n".join(["| quantity | value |", "|---|---|", *rows, "", *notes])


def _ci(interval) -> str:
    if isinstance(interval, (list, tuple)) and len(interval) == 2:
        return f" (95% CI {interval[0]:.1%}-{interval[1]:.1%})"
    return ""


def _logging_interval(analysis: LossAnalysis) -> int:
    steps = [p["step"] for p in analysis.points]
    gaps = [b - a for a, b in zip(steps, steps[1:], strict=False)]
    return max(int(statistics.median(gaps)), 1) if gaps else 1


def _best_accuracy(analysis: LossAnalysis, evaluation: dict) -> float | None:
    found = [
        evaluation[k]
        for k in ("strict_accuracy", "lenient_accuracy")
        if _is_number(evaluation.get(k))
    ]
    found += [e[k] for e in analysis.eval_points for k in ACCURACY_KEYS if _is_number(e.get(k))]
    return max(found) if found else None


def _majority_accuracy(stats: dict, evaluation: dict) -> float | None:
    for value in (
        stats.get("majority_baseline"),
        (evaluation.get("baselines") or {}).get("majority"),
    ):
        if isinstance(value, dict):  # baselines give "accuracy", dataset stats "share"
            value = value.get("accuracy", value.get("share"))
        if _is_number(value):
            return float(value)
    return None


def _flat_evaluation(evaluation) -> dict:
    evaluation = _as_dict(evaluation)
    nested = evaluation.get("metrics")
    return {**evaluation, **nested} if isinstance(nested, dict) else evaluation


def _as_dict(value) -> dict:
    if value is None:
        return {}
    return value.to_dict() if hasattr(value, "to_dict") else dict(value)


def _fmt(value) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    return f"{value:,}" if isinstance(value, int) and not isinstance(value, bool) else str(value)
