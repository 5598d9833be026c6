"""Handlers of the Charts tab: compare runs, explain coverage, show the training report.

Everything is read from run directories on disk (metrics.jsonl, config.yaml, report.md,
eval/metrics.json) and analysed by `vetllm.analysis`, `vetllm.coverage` and `vetllm.data`;
the figures come from `vetllm.ui.charts`.
"""

from __future__ import annotations

import re
from pathlib import Path

import gradio as gr

from vetllm.errors import VetLLMError
from vetllm.ui import charts
from vetllm.ui.guards import discard_upload, upload_path, user_facing
from vetllm.ui.predict_handlers import write_temp_file
from vetllm.ui.settings import AppSettings
from vetllm.ui.train_handlers import known_run_dir, per_epoch_bars

MAX_COMPARED_RUNS = 6


class ChartHandlers:
    """Charts-tab handlers bound to one app's settings."""

    def __init__(self, settings: AppSettings):
        self.settings = settings

    def run_names(self) -> list[str]:
        from vetllm.runs.launcher import list_runs

        return [entry["name"] for entry in list_runs(self.settings.runs_dir)]

    def _run_path(self, name: str) -> Path:
        return known_run_dir(self.settings.runs_dir, name)

    @user_facing
    def compare(
        self, names: list[str] | None, smoothing: float, show_reference: bool, x_axis: str = "step"
    ):
        """Loss (raw + smoothed, epochs, plateau), eval and learning-rate charts, and the loss table."""
        from vetllm.analysis import SOURCE_LOSS_HISTORY
        from vetllm.runs.directory import RunDirectory

        names = list(names or [])[:MAX_COMPARED_RUNS]
        histories, plateaus, table = {}, {}, []
        for name in names:
            run = RunDirectory(self._run_path(name))
            histories[name] = run.read_metrics()
            analysis = _analysis_or_none(histories[name], run.config_path)
            if analysis is None:
                continue
            plateau = analysis.plateau or {}
            plateaus[name] = plateau.get("start_step" if x_axis == "step" else "start_epoch")
            table += loss_table(name, analysis.points)
        reference = SOURCE_LOSS_HISTORY if show_reference else None
        return (
            charts.loss_figure(
                histories,
                smoothing=float(smoothing),
                plateau_steps=plateaus,
                reference=reference,
                x_axis=x_axis if x_axis in ("step", "epoch") else "step",
            ),
            charts.eval_figure(histories),
            charts.learning_rate_figure(histories),
            table,
        )

    @user_facing
    def coverage(self, name: str | None):
        """Coverage plan and data charts of one run (from its config and its training data)."""
        from vetllm.data.records import note_key
        from vetllm.data.split import leakage_report
        from vetllm.data.stats import dataset_stats

        if not name:
            return "Pick a run to see its coverage.", None, None, None, None, None
        cfg, train, val = _run_data(self._run_path(name))
        plan = cfg.coverage_plan(train)
        stats = dataset_stats(train).to_dict()
        copies: dict[str, int] = {}
        for record in train:
            key = note_key(record.note)
            copies[key] = copies.get(key, 0) + 1
        leak = leakage_report(train, val).to_dict() if val else {}
        return (
            plan.to_markdown(),
            charts.coverage_figure(*per_epoch_bars(plan), plan.epochs_started),
            charts.exposure_figure(list(copies.values()), plan.epochs_run),
            charts.distribution_figure(stats["label_counts"], "Training records per label"),
            charts.distribution_figure(stats["species_counts"], "Training records per species"),
            charts.leakage_figure(leak.get("n_other_notes", 0), leak.get("n_leaked_notes", 0)),
        )

    @user_facing
    def report(self, name: str | None):
        """The run's training-analysis report (report.md, or built now) and a download of it."""
        if not name:
            return "Pick a run to see its report.", gr.DownloadButton(visible=False)
        path = self._run_path(name)
        report_file = path / "report.md"
        if report_file.is_file():
            text = report_file.read_text(encoding="utf-8", errors="replace")
        else:
            text = _build_report(path)
        return text, gr.DownloadButton(
            value=write_temp_file(text, f"report-{name}.md"), visible=True
        )

    @user_facing
    def analyse_upload(self, state, args, data, val, samples, smoothing, show_reference, x_axis):
        """Charts and report of a Trainer run made elsewhere, from uploaded files.

        Each upload is checked against the size limit and deleted from gradio's cache once read
        (it would be served to anyone who knows its URL), whatever the outcome.
        """
        from vetllm.trainer_report import (
            QUESTIONS,
            analyse_run_files,
            render_trainer_run_report,
        )

        uploads = {"run": state, "args": args, "data": data, "val": val}
        try:
            paths = self._checked_uploads(uploads)
            if paths["run"] is None:
                raise VetLLMError("trainer_state.json: upload the run's trainer_state.json first")
            result = analyse_run_files(
                paths["run"], args_file=paths["args"], data=paths["data"], val_data=paths["val"],
                samples=_whole_or_none(samples, "training samples"), discover_args=False,
                max_bytes=self.settings.max_upload_bytes,
                display_names={k: p.name for k, p in paths.items() if p is not None},
            )  # fmt: skip
        finally:
            for upload in uploads.values():
                discard_upload(upload)
        name = _safe_name(paths["run"].name)
        result.name = f"{name} (uploaded)"
        report = render_trainer_run_report(result)
        figures = _upload_figures(result, float(smoothing), bool(show_reference), x_axis)
        download = write_temp_file(report, f"report-{Path(name).stem}.md")
        answers = [result.answers["loss"], result.answers["whole"]]
        summary = "\n".join(f"- **{q}** {a}" for q, a in zip(QUESTIONS, answers, strict=True))
        return (
            f"**Analysed {name}.**\n\n{summary}", *figures, report,
            gr.DownloadButton(value=download, visible=True), None, None, None, None,
        )  # fmt: skip

    def _checked_uploads(self, uploads: dict) -> dict:
        paths, limit = {}, self.settings.max_upload_bytes
        for key, upload in uploads.items():
            path = upload_path(upload)
            if path is not None and path.is_file() and path.stat().st_size > limit:
                raise VetLLMError(
                    f"{path.name}: {path.stat().st_size:,} bytes is over the upload limit of "
                    f"{limit:,} bytes"
                )
            paths[key] = path
        return paths


def _upload_figures(result, smoothing: float, show_reference: bool, x_axis: str) -> tuple:
    """The same charts as for the app's own runs: loss, eval, learning rate, table, coverage."""
    from vetllm.analysis import SOURCE_LOSS_HISTORY
    from vetllm.ui.train_handlers import per_epoch_bars

    x_axis = x_axis if x_axis in ("step", "epoch") else "step"
    runs, plateau = {result.name: result.history}, result.analysis.plateau or {}
    key = "start_step" if x_axis == "step" else "start_epoch"
    table = loss_table(result.name, result.analysis.points)
    plan, stats = result.plan, result.stats.to_dict() if result.stats else None
    leak = result.leakage.to_dict() if result.leakage else {}
    return (
        charts.loss_figure(runs, smoothing=smoothing, plateau_steps={result.name: plateau.get(key)},
                           reference=SOURCE_LOSS_HISTORY if show_reference else None,
                           x_axis=x_axis),  # fmt: skip
        charts.eval_figure(runs),
        charts.learning_rate_figure(runs),
        table,
        plan.to_markdown() if plan else "No coverage plan: give the training arguments and the "
        "training data (or the number of training samples).",
        charts.coverage_figure(*per_epoch_bars(plan), plan.epochs_started) if plan else None,
        charts.exposure_figure(result.copies_per_note, plan.epochs_run if plan else 1.0)
        if result.copies_per_note else None,
        charts.distribution_figure(stats["label_counts"], "Training records per label")
        if stats else None,
        charts.distribution_figure(stats["species_counts"], "Training records per species")
        if stats else None,
        charts.leakage_figure(leak.get("n_other_notes", 0), leak.get("n_leaked_notes", 0))
        if leak else None,
    )  # fmt: skip


def loss_table(name: str, points: list[dict]) -> list[list]:
    """Rows of the loss table: run, step, epoch, loss, reduction from the first loss."""
    return [
        [name, p["step"], round(p.get("epoch") or 0.0, 4), round(p["loss"], 4),
         f"{p.get('reduction', 0.0):.1%}"]
        for p in points
    ]  # fmt: skip


def _whole_or_none(value, label: str) -> int | None:
    if value in (None, "", 0):  # an empty gr.Number sends 0: not given
        return None
    if not (isinstance(value, (int, float)) and float(value).is_integer() and value >= 1):
        raise VetLLMError(f"{label}: expected a whole number of at least 1, got {value!r}")
    return int(value)


def _safe_name(name: str) -> str:
    """An uploaded file's name reduced to plain characters (it lands in legends and a filename)."""
    cleaned = re.sub(r"[^A-Za-z0-9._ -]", "_", name)[:80].strip() or "trainer_state.json"
    return cleaned


def _analysis_or_none(history: list[dict], config_path: Path):
    from vetllm.analysis import analyse_losses

    config = None
    try:
        from vetllm.config import load_config

        config = load_config(config_path).to_dict()
    except VetLLMError:
        pass
    try:
        return analyse_losses(history, config=config)
    except VetLLMError:  # no loss logged yet
        return None


def _run_data(run_path: Path):
    """The run's config and its training / validation records, as the training process saw them.

    Data on the Hugging Face Hub is not downloaded inside a page request: VetLLMError says so."""
    from vetllm.config import load_config
    from vetllm.data.hf_datasets import is_hub_source
    from vetllm.data.loading import load_dataset_file
    from vetllm.report import hub_data_left_out

    cfg = load_config(run_path / "config.yaml")
    hub = [value for value in (cfg.data, cfg.val_data) if value and is_hub_source(value)]
    if hub:
        raise VetLLMError(f"coverage unavailable: {hub_data_left_out(hub[0])}")
    train_path, val_path = cfg.data_paths()
    train = load_dataset_file(train_path, on_error="skip").records
    val = load_dataset_file(val_path, on_error="skip").records if val_path else []
    return cfg, train, val


def _build_report(run_path: Path) -> str:
    """The run's report as `vetllm report` builds it, without downloading Hub data."""
    from vetllm.report import loss_history, run_report
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(run_path)
    if not loss_history(run.read_metrics()):
        return "No report yet: the run has not logged a training loss."
    text, left_out = run_report(run, load_hub_data=False)
    if left_out:
        text += f"\n_Coverage and data statistics left out: {left_out}._\n"
    return text


def refresh_choices(handlers: ChartHandlers):
    """Run lists of the Charts tab: compare the newest run by default, show its coverage."""
    names = handlers.run_names()
    newest = names[:1]
    return (
        gr.Dropdown(choices=names, value=newest),
        gr.Dropdown(choices=names, value=newest[0] if newest else None),
    )
