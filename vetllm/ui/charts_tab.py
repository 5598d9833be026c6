"""Layout and wiring of the Charts tab: compare runs, coverage of one run, training report."""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from vetllm.ui.chart_handlers import ChartHandlers
from vetllm.ui.settings import DATA_FILE_TYPES, PRIVATE


@dataclass
class ChartsTab:
    runs: gr.Dropdown
    run: gr.Dropdown


def _plot() -> gr.Plot:
    """A chart without gradio's label chip ("Plot"): every figure carries its own title."""
    return gr.Plot(show_label=False)


def build_charts_tab(handlers: ChartHandlers) -> ChartsTab:
    upload = _build_upload_section()
    gr.Markdown("### Compare runs")
    with gr.Row():
        runs = gr.Dropdown(label="Runs to compare", multiselect=True, choices=[], scale=3)
        smoothing = gr.Slider(0, 0.95, value=0.6, step=0.05, label="Smoothing (EMA weight)")
        # Off by default: its loss covered the whole prompt, ours the answer only.
        reference = gr.Checkbox(
            value=False,
            label="Overlay the source analysis's loss (not comparable: it covered the whole prompt)",
        )
        x_axis = gr.Radio(["step", "epoch"], value="epoch", label="Loss x axis")
        refresh = gr.Button("Refresh", scale=0)
    loss_plot = _plot()
    with gr.Row():
        eval_plot, lr_plot = _plot(), _plot()
    with gr.Accordion("Loss table with reductions", open=False):
        table = gr.Dataframe(headers=["run", "step", "epoch", "loss", "reduction from first"],
                             interactive=False)  # fmt: skip

    gr.Markdown("### One run: coverage, data and report")
    run = gr.Dropdown(label="Run", choices=[])
    with gr.Row():
        plan_md = gr.Markdown()
        coverage_plot = _plot()
    with gr.Row():
        exposure_plot, leakage_plot = _plot(), _plot()
    with gr.Row():
        labels_plot, species_plot = _plot(), _plot()
    with gr.Accordion("Training-analysis report", open=True):
        report_file = gr.DownloadButton("Download report.md", visible=False)
        report_md = gr.Markdown()

    compare_inputs, compare_outputs = (
        [runs, smoothing, reference, x_axis],
        [loss_plot, eval_plot, lr_plot, table],
    )
    triggers = (runs.change, reference.change, smoothing.release, x_axis.change, refresh.click)
    for trigger in triggers:
        trigger(handlers.compare, compare_inputs, compare_outputs, **PRIVATE)
    coverage_outputs = [
        plan_md,
        coverage_plot,
        exposure_plot,
        labels_plot,
        species_plot,
        leakage_plot,
    ]
    run.change(handlers.coverage, [run], coverage_outputs, **PRIVATE)
    run.change(handlers.report, [run], [report_md, report_file], **PRIVATE)
    upload.button.click(
        handlers.analyse_upload,
        [*upload.files, upload.samples, smoothing, reference, x_axis],
        [upload.summary, *compare_outputs, *coverage_outputs, report_md, report_file,
         *upload.files],
        **PRIVATE,
    )  # fmt: skip
    return ChartsTab(runs, run)


@dataclass
class UploadSection:
    files: list  # trainer_state.json, arguments JSON, training data, validation data
    samples: gr.Number
    button: gr.Button
    summary: gr.Markdown


def _build_upload_section() -> UploadSection:
    """Upload a run made with any Trainer script: its charts and report fill the views above."""
    with gr.Accordion("Analyse a Trainer run made elsewhere (upload its files)", open=False):
        gr.Markdown(
            "Upload `trainer_state.json` from the run's output or checkpoint folder; add the "
            "training arguments as JSON (`training_args.to_dict()`; `training_args.bin` is a "
            "pickle and is never read) and the training and validation data to check steps, "
            "coverage, duplicates and leakage. Files are deleted once read."
        )
        with gr.Row():
            files = [
                gr.File(
                    label="trainer_state.json",
                    file_types=[".json", ".jsonl"],
                    elem_id="upload-state",
                ),
                gr.File(
                    label="Training arguments (JSON, optional)",
                    file_types=[".json"],
                    elem_id="upload-args",
                ),
                gr.File(
                    label="Training data (optional)",
                    file_types=DATA_FILE_TYPES,
                    elem_id="upload-data",
                ),
                gr.File(
                    label="Validation data (optional)",
                    file_types=DATA_FILE_TYPES,
                    elem_id="upload-val",
                ),
            ]
        with gr.Row():
            samples = gr.Number(
                label="Training samples (when no data file; 0 = unknown)", precision=0
            )
            button = gr.Button("Analyse the uploaded run", variant="primary", scale=0)
        summary = gr.Markdown(elem_id="upload-summary")
    return UploadSection(files, samples, button, summary)
