"""The Markdown training report: a loss analysis rendered with its concerns.

`render_training_report` turns a `vetllm.analysis.LossAnalysis` into RUN_DIR/report.md, adding the
coverage plan, data set statistics and evaluation scores when they are given (each a plain dict
or an object with `to_dict()`). `report_concerns` lists the analysis flags plus those that need
these extra inputs: a low loss with low (or unmeasured) accuracy, a log that ends before the
planned step count, and accuracy no better than the majority-code baseline. Long loss tables are
thinned evenly to about MAX_TABLE_ROWS rows, keeping the first, last, lowest and plateau points.
`report_from_metrics` is the one way a report is built from a run's metrics lines (training's
end); `run_report` gathers a run folder's plan, data statistics and evaluation for it, for
`vetllm report` and the app's Charts tab (which never downloads Hub data in a page request).
"""

from __future__ import annotations

import json
import math
import statistics

from vetllm.analysis import ACCURACY_KEYS, LossAnalysis, analyse_losses, is_number
from vetllm.errors import VetLLMError

LOW_LOSS = 0.1  # nats/token: this low while accuracy is poor means the loss is not about codes
LOW_ACCURACY = 0.6
MAX_TABLE_ROWS = 60  # rows of the report's loss table; longer histories are thinned evenly
EVALUATION_KEYS = (
    "n", "strict_accuracy", "lenient_accuracy", "format_valid_rate", "micro_f1", "macro_f1",
)  # fmt: skip


# code -> (severity, message template) for concerns that need more than the loss history;
# the history's own flags are vetllm.analysis.FLAG_TEXT.
CONCERN_TEXT = {
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


def _concern(code: str, **values) -> dict:
    severity, template = CONCERN_TEXT[code]
    return {"code": code, "severity": severity, "message": template.format(**values)}


def report_concerns(analysis: LossAnalysis, plan=None, stats=None, evaluation=None) -> list[dict]:
    """The analysis flags plus those that need the plan, data set stats or evaluation."""
    flags = list(analysis.flags)
    plan, stats, evaluation = _as_dict(plan), _as_dict(stats), _flat_evaluation(evaluation)
    accuracy, loss = _best_accuracy(analysis, evaluation), analysis.final_loss
    if loss <= LOW_LOSS and accuracy is not None and accuracy < LOW_ACCURACY:
        flags.append(_concern("low_loss_low_accuracy", loss=loss, accuracy=accuracy))
    elif loss <= LOW_LOSS and accuracy is None:
        flags.append(_concern("low_loss_unverified", loss=loss))
    planned, last = plan.get("total_steps"), analysis.final_step
    # The Trainer logs every logging_steps only, so a log may end up to one interval early.
    if planned and (last > planned or planned - last >= _logging_interval(analysis)):
        flags.append(_concern("steps_mismatch", step=last, planned=planned))
    majority = _majority_accuracy(stats, evaluation)
    strict = evaluation.get("strict_accuracy")
    if is_number(strict) and majority is not None and strict <= majority:
        flags.append(_concern("below_majority_baseline", accuracy=strict, majority=majority))
    flags += [concern for concern in [baseline_concern(evaluation)] if concern]
    return flags


def baseline_concern(evaluation: dict) -> dict | None:
    """A warning when the evaluation found the model does not clearly beat bag-of-words."""
    verdict = evaluation.get("baseline_verdict")
    if not isinstance(verdict, dict) or verdict.get("beats_bag_of_words", True):
        return None
    return {
        "code": "not_better_than_bag_of_words",
        "severity": "warning",
        "message": str(verdict.get("sentence", "the model does not beat bag-of-words")),
    }


def report_from_metrics(
    metrics: list[dict], *, plan=None, stats=None, config=None, evaluation=None, served=None
) -> str:
    """RUN_DIR/report.md's text from the run's metrics.jsonl lines (training's end, `vetllm report`).

    Args:
        metrics: the run's metrics lines; those with `loss` or `eval_loss` are analysed.
        plan: the CoveragePlan (its steps per epoch mark the epochs; else the log's own).
        config: the run's TrainConfig as a dict, for the prompt-masking check.
    """
    history = loss_history(metrics)
    if not history:
        raise VetLLMError("metrics.jsonl has no loss yet; wait for the first logging step")
    # Without a plan the analysis infers steps per epoch from the log (and says so).
    steps_per_epoch = plan.to_dict().get("steps_per_epoch") if plan is not None else None
    analysis = analyse_losses(history, steps_per_epoch=steps_per_epoch or None, config=config)
    return render_training_report(
        analysis, plan=plan, stats=stats, evaluation=evaluation, served=served
    )


def loss_history(metrics: list[dict]) -> list[dict]:
    """The metrics lines a report analyses: those with a training or validation loss."""
    return [m for m in metrics if "loss" in m or "eval_loss" in m]


def render_training_report(
    analysis: LossAnalysis, plan=None, stats=None, evaluation=None, served=None
) -> str:
    """The whole training-analysis report as Markdown; extra inputs are optional plain dicts."""
    out = ["# Training analysis", "", *_summary_lines(analysis), ""]
    out += _served_lines(served)
    if plan is not None:
        out += ["## Coverage", "", _plan_markdown(plan), ""]
    out += ["## Loss history", "", *_loss_table(analysis), ""]
    if analysis.epoch_boundaries:
        out += ["## Epochs", "", *_epoch_table(analysis), ""]
    out += ["## Plateau and early stopping", "", *_plateau_lines(analysis), ""]
    if evaluation is not None:
        out += ["## Evaluation", "", *_evaluation_lines(_flat_evaluation(evaluation)), ""]
    if stats is not None:
        out += ["## Data set", "", *_stats_lines(_as_dict(stats)), ""]
    concerns = report_concerns(analysis, plan, stats, evaluation)
    out += ["## Concerns", ""]
    out += [f"- **{c['severity']}** `{c['code']}`: {c['message']}" for c in concerns] or ["- none"]
    return "\n".join(out) + "\n"


def _served_lines(served: dict | None) -> list[str]:
    """Which step the run's model/ holds and why (the run card's `served`, see engine/selection)."""
    if not served or not served.get("summary"):
        return []
    lines = ["## Served model", "", f"- {served['summary']}"]
    if is_number(served.get("strict_accuracy")):
        lines.append(f"- strict accuracy at that step: {served['strict_accuracy']:.3f}")
    return [*lines, ""]


def _epoch_table(a: LossAnalysis) -> list[str]:
    rows = [
        f"| {b['epoch']} | {b.get('first_step', '?')}-{b['step']} "
        f"| {b.get('last_logged_step', b['step'])} | {b['last_loss']:.4f} "
        f"| {b['mean_loss']:.4f} | {b['n_logged']} |"
        for b in a.epoch_boundaries
    ]
    return [
        "| epoch | steps | last logged step | last loss | mean loss | logged points |",
        "|---|---|---|---|---|---|",
        *rows,
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
        logged = f"{p['epoch']:.4g}" if is_number(p["epoch"]) else "-"  # as precise as logged
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
    for key in EVALUATION_KEYS:
        if is_number(ev.get(key)):
            ci = ev.get(key.replace("accuracy", "ci")) if key.endswith("accuracy") else None
            value = f"{ev[key]:,}" if key == "n" else f"{ev[key]:.1%}"
            value += _ci(ci)
            lines.append(f"- {key.replace('_', ' ')}: {value}")
    for name, result in (ev.get("baselines") or {}).items():
        if isinstance(result, dict) and is_number(result.get("accuracy")):
            lines.append(f"- baseline {name}: {result['accuracy']:.1%}{_ci(result.get('ci'))}")
    if is_number(ev.get("share_in_training_data")):
        lines.append(
            f"- evaluated notes also in the training data: {ev['share_in_training_data']:.1%}"
        )
    return lines or ["- no metrics given"]


def _stats_lines(stats: dict) -> list[str]:
    keys = ("n_records", "n_unique_notes", "n_conflicting_notes")
    lines = [f"- {k.replace('_', ' ')}: {_fmt(stats[k])}" for k in keys if k in stats]
    if is_number(stats.get("accuracy_ceiling")):
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
        if is_number(evaluation.get(k))
    ]
    found += [e[k] for e in analysis.eval_points for k in ACCURACY_KEYS if is_number(e.get(k))]
    return max(found) if found else None


def _majority_accuracy(stats: dict, evaluation: dict) -> float | None:
    for value in (
        stats.get("majority_baseline"),
        (evaluation.get("baselines") or {}).get("majority"),
    ):
        if isinstance(value, dict):  # baselines give "accuracy", dataset stats "share"
            value = value.get("accuracy", value.get("share"))
        if is_number(value):
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


# -- a run folder's report ---------------------------------------------------------------------
def run_report(run, *, load_hub_data: bool = True) -> tuple[str, str | None]:
    """(report.md's text, why coverage and data statistics are left out, or None) for a run
    folder (a `vetllm.runs.directory.RunDirectory`): `vetllm report` and the app's Charts tab.

    Args:
        load_hub_data: False in a page request: training data on the Hugging Face Hub is then
            not downloaded, and the report says so instead of showing coverage and statistics.
    """
    plan, stats, config, left_out = plan_and_stats(run, load_hub_data=load_hub_data)
    text = report_from_metrics(
        run.read_metrics(),  # skips a damaged line (issue 11, item 18)
        plan=plan,
        stats=stats,
        config=config,
        evaluation=_read_json(run.eval_dir / "metrics.json"),
        served=run.read_status().served,  # which step model/ holds, and why
    )
    return text, left_out


def plan_and_stats(run, *, load_hub_data: bool = True) -> tuple:
    """(CoveragePlan, DatasetStats, config dict, None) for a run folder; (None, None, config
    dict or None, the reason) when its config or training data cannot be read (or is on the
    Hub and `load_hub_data` is False)."""
    from vetllm.config import load_config
    from vetllm.data.hf_datasets import is_hub_source
    from vetllm.data.loading import load_dataset_file
    from vetllm.data.stats import dataset_stats

    try:
        cfg = load_config(run.config_path)
    except (VetLLMError, OSError) as error:
        return None, None, None, str(error)
    if is_hub_source(cfg.data) and not load_hub_data:
        return None, None, cfg.to_dict(), hub_data_left_out(cfg.data)
    try:
        records = load_dataset_file(cfg.data_paths()[0], on_error="skip").records
    except (VetLLMError, OSError) as error:
        return None, None, cfg.to_dict(), str(error)
    card = _read_json(run.model_dir / "run_card.json") or {}
    plan = cfg.coverage_plan(records, world_size=int(card.get("world_size") or 1))
    return plan, dataset_stats(records), cfg.to_dict(), None


def hub_data_left_out(source: str) -> str:
    """Why the app shows no coverage or statistics of a run trained on Hub data."""
    return (
        f"train data is a Hub dataset ({source}), which the app does not download; run "
        "`vetllm report --run RUN_DIR` where the dataset can be loaded"
    )


def _read_json(path) -> dict | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # absent or half-written: left out rather than failing the report
    return data if isinstance(data, dict) else None
