"""Layout and wiring of the Train tab (data check, preset, coverage plan, launch and progress).

Only components and events live here; every event calls a `TrainHandlers` method. None of the
events is a public API endpoint: launching and stopping are admin actions when the app is public.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from vetllm.config_checks import SCHEDULERS
from vetllm.ui.catalogue_handlers import add_extension
from vetllm.ui.guards import UPLOAD_CHOICE
from vetllm.ui.settings import DATA_FILE_TYPES, PRIVATE, AppSettings
from vetllm.ui.train_handlers import (
    BUNDLED_CHOICE,
    DEFAULT_PRESET,
    HYPERPARAMETERS,
    TrainHandlers,
    list_presets,
    preset_config,
)


@dataclass
class TrainTab:
    """The components other parts of the app need to reach (page-load events)."""

    run_select: gr.Dropdown
    timer: gr.Timer
    preset: gr.Dropdown
    admin_buttons: list
    preset_outputs: list
    data_inputs: list
    data_outputs: list
    plan_inputs: list
    plan_outputs: list


def _base_models() -> list[str]:
    return list(dict.fromkeys(preset_config(name).base_model for name in list_presets()))


def _hyperparameter_widgets(settings: AppSettings) -> dict:
    """One typed widget per TrainConfig field the user may change (never numbers in text boxes).

    Each starts at the default preset's value, so no event can ever read an empty field, and
    none has a `minimum`: gradio would refuse a typed 0 with a toast before our handler runs,
    while `check_settings` names every problem in place as the user types.
    """
    v = {key: getattr(preset_config(DEFAULT_PRESET), key) for key in HYPERPARAMETERS}
    w = {}
    with gr.Row():
        # Its own wide row: hub ids like "meta-llama/Llama-3.2-1B-Instruct" were cut off.
        w["base_model"] = gr.Dropdown(
            _base_models(), value=v["base_model"], label="Base model ('tiny' = CPU default)",
            allow_custom_value=not settings.public,  # a typed local folder is a server path
            scale=3, min_width=420,
        )  # fmt: skip
        w["learning_rate"] = gr.Number(v["learning_rate"], label="Learning rate", step=1e-4)
        w["lr_scheduler"] = gr.Dropdown(list(SCHEDULERS), value=v["lr_scheduler"],
                                        label="LR schedule")  # fmt: skip
    with gr.Row():
        w["warmup_ratio"] = gr.Slider(0, 0.5, value=v["warmup_ratio"], step=0.01,
                                      label="Warm-up (share of steps)")  # fmt: skip
        w["epochs"] = gr.Number(v["epochs"], label="Epochs", step=0.5)
        w["per_device_batch"] = gr.Number(v["per_device_batch"], label="Micro-batch per device",
                                          precision=0)  # fmt: skip
        w["grad_accum"] = gr.Number(v["grad_accum"], label="Gradient accumulation", precision=0)
        w["max_length"] = gr.Number(v["max_length"], label="Max length (tokens)", precision=0)
    with gr.Row():
        w["drop_last"] = gr.Checkbox(v["drop_last"], label="drop_last")
        w["gradient_checkpointing"] = gr.Checkbox(v["gradient_checkpointing"],
                                                  label="Gradient checkpointing")  # fmt: skip
        w["lora_r"] = gr.Number(v["lora_r"], label="LoRA r (not used by full fine-tuning)",
                                precision=0)  # fmt: skip
        w["lora_alpha"] = gr.Number(v["lora_alpha"], label="LoRA alpha", precision=0)
        w["lora_dropout"] = gr.Slider(0, 0.5, value=v["lora_dropout"], step=0.01,
                                      label="LoRA dropout")  # fmt: skip
        w["seed"] = gr.Number(v["seed"], label="Seed", precision=0)
        w["ensemble"] = gr.Number(v["ensemble"], precision=0,
                                  label="Models voting (seed ensemble; tiny model only)")  # fmt: skip
        w["bag_of_words_vote"] = gr.Checkbox(v["bag_of_words_vote"],
                                             label="Bag of words votes too (2+ models)")  # fmt: skip
    assert tuple(w) == HYPERPARAMETERS  # our own invariant: launch receives them in this order
    return w


def _data_section(settings: AppSettings):
    gr.Markdown("### 1. Data")
    with gr.Row():
        with gr.Column(scale=2):
            source = gr.Radio([BUNDLED_CHOICE, UPLOAD_CHOICE], value=BUNDLED_CHOICE,
                              label="Training data")  # fmt: skip
            upload = gr.File(label="Data file (JSON list, JSONL, CSV or Parquet; source format)",
                             file_types=DATA_FILE_TYPES, type="filepath")  # fmt: skip
            skip = gr.Checkbox(label="Skip bad rows (otherwise one bad row rejects the file)")
            check = gr.Button("Check data", variant="secondary")
            validation = gr.Markdown(label="Validation")
            split_md = gr.Markdown()
        with gr.Column(scale=3):
            stats_md = gr.Markdown(max_height=460, label="Data set statistics")
            baselines = gr.Dataframe(headers=["baseline", "validation accuracy", "95% CI"],
                                     label="Baselines on the validation split", interactive=False)  # fmt: skip
    with gr.Accordion("Data charts: labels, species, duplicates, leakage", open=False):
        with gr.Row():
            labels_plot, species_plot = gr.Plot(), gr.Plot()
        with gr.Row():
            exposure_plot, leakage_plot = gr.Plot(), gr.Plot()
    with gr.Accordion("Catalogue extension (admin): diseases or codes the catalogue lacks",
                      open=False):  # fmt: skip
        gr.Markdown(
            "A JSON file shaped like `vetllm/catalogue.json` (`diseases`: key, name, code, "
            "variants, species). Once added, data checks and new training runs use it."
        )
        catalogue_file = gr.File(label="Catalogue extension (JSON)", file_types=[".json"],
                                 type="filepath")  # fmt: skip
        catalogue_add = gr.Button("Add to the catalogue", interactive=not settings.public)
        catalogue_md = gr.Markdown()
    inputs = [source, upload, skip]
    catalogue = (catalogue_file, catalogue_add, catalogue_md)
    outputs = [validation, stats_md, split_md, baselines, labels_plot, species_plot,
               exposure_plot, leakage_plot]  # fmt: skip
    return check, inputs, outputs, catalogue


def _choose_upload():
    return gr.Radio(value=UPLOAD_CHOICE)


def _clear_file():
    # The file was read and deleted by check_data; the name stays in the split summary.
    return None


@dataclass
class RunPanel:
    """Section 3 of the tab: password, launch/stop/resume, run picker, progress, live loss."""

    password: gr.Textbox
    launch: gr.Button
    stop: gr.Button
    resume: gr.Button
    message: gr.Markdown
    run_select: gr.Dropdown
    refresh: gr.Button
    progress: gr.HTML
    failure: gr.Markdown
    loss_plot: gr.Plot
    timer: gr.Timer


def _run_section(settings: AppSettings, password: gr.Textbox) -> RunPanel:
    gr.Markdown("### 3. Run")
    if settings.public and not settings.admin_password:
        gr.Markdown("**Training is disabled on this shared app** (no admin password is set).")
    elif settings.public:
        gr.Markdown(
            "Launch, stop and resume unlock with the admin password at the top of the page."
        )
    # Public apps start locked: the buttons come alive once the admin password is unlocked.
    open_now = not settings.public
    with gr.Row():
        launch = gr.Button("Launch training", variant="primary", interactive=open_now)
        stop = gr.Button("Stop", variant="stop", interactive=open_now)
        resume = gr.Button("Resume", interactive=open_now)
    message = gr.Markdown()
    with gr.Row():
        run_select = gr.Dropdown(label="Run (reattaches after a reload)", choices=[], scale=3)
        refresh = gr.Button("Refresh runs", scale=1)
    return RunPanel(
        password, launch, stop, resume, message, run_select, refresh,
        progress=gr.HTML(), failure=gr.Markdown(), loss_plot=gr.Plot(label="Training loss (live)"),
        timer=gr.Timer(settings.poll_seconds, active=False),
    )  # fmt: skip


def _wire_run(panel: RunPanel, handlers: TrainHandlers, launch_inputs: list) -> None:
    attach_outputs = [panel.run_select, panel.timer, panel.message]
    poll_outputs = [panel.progress, panel.failure, panel.loss_plot, panel.timer]
    panel.launch.click(handlers.launch, launch_inputs, attach_outputs, **PRIVATE)
    panel.stop.click(handlers.stop, [panel.run_select, panel.password], [panel.message],
                     **PRIVATE).then(handlers.poll, [panel.run_select], poll_outputs, **PRIVATE)  # fmt: skip
    panel.resume.click(handlers.resume, [panel.run_select, panel.password], attach_outputs,
                       **PRIVATE)  # fmt: skip
    panel.refresh.click(handlers.refresh_runs, [panel.run_select], [panel.run_select, panel.timer],
                        **PRIVATE)  # fmt: skip
    # Polls are light file reads: kept off the queue so open tabs never crowd out predictions.
    panel.run_select.change(handlers.poll, [panel.run_select], poll_outputs, queue=False, **PRIVATE)
    panel.timer.tick(handlers.poll, [panel.run_select], poll_outputs, queue=False, **PRIVATE)


def _wire_data(
    handlers: TrainHandlers, data_inputs, data_outputs, check, plan_inputs, plan_outputs
):
    source, upload = data_inputs[0], data_inputs[1]
    check.click(handlers.check_data, data_inputs, data_outputs, **PRIVATE).then(
        handlers.plan, plan_inputs, plan_outputs, **PRIVATE
    ).then(_clear_file, None, [upload], **PRIVATE)

    # Back to the bundled examples: check them again, so `prepared` (what Launch trains on)
    # never stays an earlier upload while the radio says "Bundled examples".
    def on_source(source_value, upload_value, skip_value):
        if source_value == UPLOAD_CHOICE:  # the upload event checks the file when it arrives
            return tuple(gr.skip() for _ in data_outputs)
        return handlers.check_data(source_value, upload_value, skip_value)

    source.input(on_source, data_inputs, data_outputs, **PRIVATE).then(
        handlers.plan, plan_inputs, plan_outputs, **PRIVATE
    )
    # An upload is checked (and deleted from gradio's cache) as soon as it arrives.
    upload.upload(_choose_upload, None, [source], **PRIVATE).then(
        handlers.check_data, data_inputs, data_outputs, **PRIVATE
    ).then(handlers.plan, plan_inputs, plan_outputs, **PRIVATE).then(
        _clear_file, None, [upload], **PRIVATE
    )


def build_train_tab(settings: AppSettings, handlers: TrainHandlers, password) -> TrainTab:
    prepared = gr.State(None)
    check, data_inputs, data_outputs, catalogue = _data_section(settings)
    catalogue_file, catalogue_add, catalogue_md = catalogue

    def add_catalogue(upload_value, password_value):
        return add_extension(settings, upload_value, password_value)

    catalogue_add.click(add_catalogue, [catalogue_file, password], [catalogue_md],
                        **PRIVATE).then(_clear_file, None, [catalogue_file], **PRIVATE)  # fmt: skip
    data_outputs = [prepared, *data_outputs]

    gr.Markdown("### 2. Preset and hyperparameters")
    with gr.Row():
        preset = gr.Dropdown(list_presets(), value=DEFAULT_PRESET, label="Preset (configs/*.yaml)")
        run_name = gr.Textbox(label="Run name", max_lines=1)
    widgets = _hyperparameter_widgets(settings)
    settings_md = gr.Markdown()
    with gr.Row():
        plan_md = gr.Markdown("Check the data first to see the coverage plan.")
        coverage_plot = gr.Plot(label="Coverage per epoch")
    env_md = gr.Markdown(label="Environment")
    panel = _run_section(settings, password)

    plan_fields = ("per_device_batch", "grad_accum", "epochs", "drop_last")
    plan_inputs, plan_outputs = (
        [prepared] + [widgets[k] for k in plan_fields],
        [plan_md, coverage_plot],
    )
    _wire_data(handlers, data_inputs, data_outputs, check, plan_inputs, plan_outputs)
    for name in plan_fields:
        widgets[name].change(handlers.plan, plan_inputs, plan_outputs, **PRIVATE)
    for widget in widgets.values():  # validate as the user types: every problem, in place
        widget.change(handlers.check_settings, [preset, *widgets.values()], [settings_md],
                      queue=False, **PRIVATE)  # fmt: skip
    preset_outputs = [*widgets.values(), run_name, env_md, panel.launch]
    preset.change(handlers.preset_values, [preset, password], preset_outputs, **PRIVATE)
    launch_inputs = [preset, prepared, run_name, panel.password, *widgets.values()]
    _wire_run(panel, handlers, launch_inputs)
    admin_buttons = [panel.stop, panel.resume, catalogue_add]
    return TrainTab(panel.run_select, panel.timer, preset, admin_buttons,
                    preset_outputs, data_inputs,
                    data_outputs, plan_inputs, plan_outputs)  # fmt: skip
