"""Pure text builders for the UI: progress bar, status lines, tables (no gradio, no files).

Each function turns a plain dict or list from the core (a run status, a coverage plan, an
environment check, a prediction) into Markdown, a small HTML fragment or table rows, so what
the user reads is testable without a browser. Anything quoted from user data is escaped.
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence

from vetllm.runs.state import UNFINISHED_STATES, RunState

STATE_COLORS = {
    RunState.QUEUED: "#6b7280",
    RunState.RUNNING: "#2563eb",
    RunState.STOPPING: "#d97706",
    RunState.COMPLETED: "#059669",
    RunState.FAILED: "#dc2626",
    RunState.STOPPED: "#d97706",
    RunState.INTERRUPTED: "#d97706",
}


def format_duration(seconds: object) -> str:
    """'1 h 02 min', '3 min 05 s', '42 s'; '-' for a missing or negative value."""
    if not isinstance(seconds, (int, float)) or not math.isfinite(seconds) or seconds < 0:
        return "-"
    whole = int(round(seconds))
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


def cell(value: object) -> str:
    """A value made safe for a Markdown table cell (escaped, no pipes or line breaks)."""
    text = html.escape(str(value if value is not None else "-"))
    return text.replace("|", "&#124;").replace("\n", " ")


_ABSOLUTE_PATH = re.compile(r"(?<![\w.:/])(?:/[\w.@+-]+)+/([\w.@+-]+)")


def redact_paths(text: str) -> str:
    """Replace absolute server paths with their last component ('/srv/x/train.py' -> 'train.py')."""
    return _ABSOLUTE_PATH.sub(r"\1", text)


def progress_html(run_name: str | None, status: Mapping | None) -> str:
    """A progress bar with state, step count, elapsed time and ETA for one run."""
    if not run_name or not status:
        return "<div class='vetllm-progress'><em>No run selected.</em></div>"
    state = str(status.get("state", RunState.UNKNOWN.value))
    progress = status.get("progress")
    share = (
        float(progress) if isinstance(progress, (int, float)) and math.isfinite(progress) else 0.0
    )
    if state == RunState.COMPLETED:
        share = 1.0
    share = min(max(share, 0.0), 1.0)
    color = STATE_COLORS.get(state, "#6b7280")
    step, total = status.get("step"), status.get("total_steps")
    steps = (
        f"step {step} of {total}" if step is not None and total else "waiting for the first step"
    )
    eta = format_duration(status.get("eta_s")) if state == RunState.RUNNING else "-"
    elapsed = format_duration(status.get("elapsed_s"))
    return (
        f"<div class='vetllm-progress' data-state='{html.escape(state)}'>"
        f"<div><strong>{html.escape(run_name)}</strong>: "
        f"<span style='color:{color};font-weight:600'>{html.escape(state)}</span>"
        f" &middot; {html.escape(steps)} &middot; {share:.0%}"
        f" &middot; elapsed {elapsed} &middot; ETA {eta}</div>"
        f"<div style='background:#e5e7eb;border-radius:6px;height:14px;margin-top:6px'>"
        f"<div role='progressbar' aria-valuenow='{share * 100:.0f}' aria-valuemin='0' "
        f"aria-valuemax='100' style='width:{share * 100:.1f}%;background:{color};height:14px;"
        f"border-radius:6px'></div></div></div>"
    )


def failure_markdown(status: Mapping | None, log_tail: str) -> str:
    """For a failed, stopped or interrupted run: the cause, the remedy and the end of train.log."""
    if not status or status.get("state") not in (RunState.FAILED, *UNFINISHED_STATES):
        return ""
    state = status["state"]
    lines = [f"### Run {state}"]
    if status.get("error"):
        lines.append(f"**Cause:** {cell(redact_paths(str(status['error'])))}")
    if status.get("remedy"):
        lines.append(f"**What to do:** {cell(status['remedy'])}")
    if state in UNFINISHED_STATES:
        lines.append("Press **Resume** to continue from the last complete checkpoint.")
    if log_tail.strip():
        lines.append(
            "Last lines of train.log:\n\n```text\n"
            + redact_paths(log_tail).replace("```", "'''")
            + "\n```"
        )
    return "\n\n".join(lines)


def problems_markdown(problems: Sequence, limit: int = 200) -> str:
    """A table of data problems: file, line, field, message (the first `limit` of them)."""
    if not problems:
        return "No problems found: every row is usable."
    rows = [
        "| file | line | field | problem |",
        "|---|---|---|---|",
    ]
    for problem in list(problems)[:limit]:
        rows.append(
            f"| {cell(getattr(problem, 'source', ''))} | {cell(getattr(problem, 'line', None))} | "
            f"{cell(getattr(problem, 'field', None))} | "
            f"{cell(app_hints(str(getattr(problem, 'message', problem))))} |"
        )
    if len(problems) > limit:
        rows.append(f"\n... and {len(problems) - limit} more problems.")
    return "\n".join(rows)


def environment_markdown(report: Mapping) -> str:
    """The environment check: one line per fact, and a clear verdict for the chosen preset."""
    yes_no = {True: "yes", False: "no", None: "-"}
    lines = [
        f"- CUDA GPU: **{yes_no[report.get('cuda')]}**"
        + (
            f" ({cell(report['gpu_name'])}, {report['gpu_memory_gb']:.0f} GB)"
            if report.get("gpu_name")
            else ""
        ),
        f"- bf16 supported: **{yes_no[report.get('bf16')]}**",
        f"- bitsandbytes importable: **{yes_no[report.get('bitsandbytes')]}**",
    ]
    if report.get("memory_estimate_gb") is not None:
        lines.append(
            f"- estimated peak GPU memory for this preset: **~{report['memory_estimate_gb']:.1f} GB**"
            " (rough: weights + LoRA optimizer state + activations)"
        )
    verdict = report.get("verdict", "")
    if verdict:
        lines.append(
            ("\n**Can run here:** " if report.get("runnable") else "\n**Cannot run here:** ")
            + cell(verdict)
        )
    return "\n".join(lines)


def prediction_rows(answer: Mapping) -> list[list]:
    """Table rows for the predicted codes: code, disease, SCTID validity, confidence."""
    rows = []
    for entry in answer.get("codes", []):
        valid = entry.get("valid_sctid")
        validity = {True: "valid", False: "INVALID check digit", None: "no SCTID"}.get(valid, "-")
        if valid is False and entry.get("suggested_code"):
            validity += f" (suggested: {entry['suggested_code']})"
        confidence = entry.get("confidence")
        rows.append(
            [
                entry.get("code"),
                entry.get("name") or "not in catalogue",
                validity,
                None if confidence is None else round(float(confidence), 3),
            ]
        )
    return rows


def repairs_markdown(answer: Mapping) -> str:
    """What post-processing had to fix, plus unknown codes and warnings; or 'nothing'."""
    lines = [f"- {cell(r)}" for r in answer.get("repairs", [])]
    lines += [
        f"- unknown code (not in the catalogue): {cell(c)}" for c in answer.get("unknown_codes", [])
    ]
    lines += [f"- warning: {cell(w)}" for w in answer.get("warnings", [])]
    if not lines:
        return "No repairs needed: the raw output was already a clean list of catalogue codes."
    return "**Repairs and notes**\n\n" + "\n".join(lines)


def baseline_rows(
    model_name: str | None, model_scores: Mapping | None, baselines: Mapping
) -> list[dict]:
    """Rows {name, accuracy, ci} for the model (lenient accuracy) and every baseline."""
    rows = []
    if model_name and model_scores:
        rows.append(
            {
                "name": f"{model_name} (lenient)",
                "accuracy": float(model_scores["lenient_accuracy"]),
                "ci": tuple(model_scores["lenient_ci"]),
            }
        )
        rows.append(
            {
                "name": f"{model_name} (strict)",
                "accuracy": float(model_scores["strict_accuracy"]),
                "ci": tuple(model_scores["strict_ci"]),
            }
        )
    for name, result in baselines.items():
        rows.append(
            {"name": name, "accuracy": float(result["accuracy"]), "ci": tuple(result["ci"])}
        )
    return rows


def baseline_table(rows: Sequence[Mapping]) -> list[list]:
    """Rows for a dataframe: name, accuracy, 95% CI, every share as a percentage (one format)."""
    return [
        [row["name"], f"{row['accuracy']:.1%}", f"{row['ci'][0]:.1%} - {row['ci'][1]:.1%}"]
        for row in rows
    ]


# What core messages tell CLI / Python users, and what to click in the app instead.
APP_HINTS = (
    ("fix them, or skip bad rows (CLI --skip-bad-rows, on_error='skip')",
     "fix them, or tick 'Skip bad rows' and press 'Check data' again"),
    ("(load_catalogue(extra_path), CLI --catalogue FILE)",
     "(an admin can add one under 'Catalogue extension' in the Train tab)"),
)  # fmt: skip


def app_hints(message: str) -> str:
    """A core message with its CLI / Python advice replaced by what to do in the app."""
    for cli, app in APP_HINTS:
        message = message.replace(cli, app)
    return message


def stop_message(run_name: str, status: Mapping) -> str:
    """'run: stopped at step 40 of 300; Resume continues from checkpoint-40.' (no echoes)."""
    state = str(status.get("state") or RunState.UNKNOWN.value)
    text = f"{run_name}: {state}"
    if status.get("step"):
        total = status.get("total_steps")
        text += f" at step {status['step']:,}" + (f" of {total:,}" if total else "")
    if state == RunState.STOPPED:
        last = status.get("last_checkpoint")
        text += f"; Resume continues from {last}." if last else "; no checkpoint was saved yet."
    elif status.get("message") and str(status["message"]).lower() not in text.lower():
        text += f" ({status['message']})"
    return text


_PROGRESS_BAR = re.compile(r"\d+%\||it/s\]|s/it\]|^\s*\d+/\d+ \[")
_NOISE = ("bitsandbytes", "UserWarning", "FutureWarning", "DeprecationWarning", "warnings.warn")


def readable_log(text: str, lines: int) -> str:
    """The last `lines` lines of train.log a person wants: no progress bars (each carriage-return
    redraw of a tqdm bar is its own line in the file) and no library warnings."""
    kept = []
    for raw in text.splitlines():
        line = raw.rsplit("\r", 1)[-1].rstrip()  # a bar redrawn with \r: only its last state
        if not line.strip() or _PROGRESS_BAR.search(line) or any(n in line for n in _NOISE):
            continue
        kept.append(line)
    return "\n".join(kept[-lines:])


def _percent(value: object) -> str:
    return f"{float(value):.1%}" if isinstance(value, (int, float)) else "not measured"


def served_banner(served: Mapping | None, training: Mapping | None) -> str:
    """The line every tab shows: which run answers (validation accuracy beside the bag-of-words
    baseline) and, while a run trains, its step, ETA and when a first model will be ready.

    Args:
        served: {run, accuracy, n, baseline} of the served run, or None when none is.
        training: the status of a run in progress (with its name), or None.
    """
    parts = []
    if served and served.get("accuracy") is None:
        parts.append(
            f"<strong>Answering: {html.escape(str(served['run']))}</strong> &middot; not "
            "evaluated yet: press Evaluate in the Predict tab to compare it with the bag-of-words "
            "baseline"
        )
    elif served:
        n = f" on {served['n']:,} validation notes" if served.get("n") else ""
        parts.append(
            f"<strong>Answering: {html.escape(str(served['run']))}</strong> &middot; validation "
            f"accuracy {_percent(served.get('accuracy'))}{n} &middot; bag-of-words baseline "
            f"{_percent(served.get('baseline'))} on the same notes"
        )
    else:
        parts.append("<strong>No model is served yet.</strong>")
    if training:
        parts.append(_training_line(training, first_model=not served))
    state = "served" if served else "none"
    body = "<br>".join(parts)
    return f"<div class='vetllm-banner' data-served='{state}'>{body}</div>"


def _training_line(status: Mapping, first_model: bool) -> str:
    name = html.escape(str(status.get("name", "?")))
    step, total = status.get("step"), status.get("total_steps")
    if status.get("state") == RunState.QUEUED or not step:
        where = "starting (loading libraries and data: 10-30 s before the first step on 2 cores)"
    else:
        where = f"step {step:,} of {total or '?':,}" if total else f"step {step:,}"
        where += f" &middot; ETA {format_duration(status.get('eta_s'))}"
    if first_model:
        eta = status.get("eta_s")
        ready = (
            f"ready in ~{int(eta)} s" if isinstance(eta, (int, float)) and step else "ready soon"
        )
        return f"Training the first model <strong>{name}</strong>: {where} &middot; {ready}."
    return f"Training <strong>{name}</strong>: {where}; it answers only once promoted."


def percent_or_dash(value: object) -> str:
    """A share as '62.3%', or '-' when missing (one format for every accuracy in a table).

    NaN counts as missing: a pandas column of shares holds NaN for a run without one.
    """
    if isinstance(value, (int, float)) and math.isfinite(value):
        return f"{float(value):.1%}"
    return "-"


SMALL_DATA_RECORDS = 200  # below this a model learns little, and validation says even less


def small_data_warning(records: int, val_records: int) -> str:
    """A warning for data sets too small to train or judge a model on ('' when big enough)."""
    if records >= SMALL_DATA_RECORDS:
        return ""
    return (
        f"**Warning: only {records:,} usable record(s).** That is too few to train a useful "
        f"model (aim for {SMALL_DATA_RECORDS:,}+; the bundled examples have 1,600), and "
        f"{val_records:,} validation note(s) cannot measure accuracy reliably.\n\n"
    )
