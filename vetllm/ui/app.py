"""build_app(): the tabs wired to `vetllm` handlers, the served-model banner, the API endpoints.

The UI holds no logic: layouts live in the *_tab modules, behaviour in the *_handlers modules.
`predict` (one note; optional run name, the served run by default) is always a public API
endpoint. `evaluate` (the bundled validation set) and `code_notes` (batch coding) are ones only
when the app is local; shared or hosted, evaluation is an admin action in the page alone. Every
other event is private, and the admin-only ones check the password in the handler too (private
events are hidden, not unreachable).
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import threading
from dataclasses import dataclass

import gradio as gr

from vetllm.ui import chart_handlers, predict_handlers
from vetllm.ui.admin import make_unlock
from vetllm.ui.batch_handlers import BatchHandlers
from vetllm.ui.batch_tab import build_batch_tab
from vetllm.ui.chart_handlers import ChartHandlers
from vetllm.ui.charts_tab import build_charts_tab
from vetllm.ui.guards import start_upload_sweeper
from vetllm.ui.predict_handlers import PredictHandlers
from vetllm.ui.predict_tab import build_predict_tab
from vetllm.ui.runs_handlers import RunsHandlers
from vetllm.ui.runs_tab import build_runs_tab
from vetllm.ui.settings import PRIVATE, AppSettings
from vetllm.ui.tools import PublicTools
from vetllm.ui.train_handlers import BUNDLED_CHOICE, TrainHandlers
from vetllm.ui.train_tab import build_train_tab

TITLE = "VetLLM Studio"
CSS = (
    ".vetllm-progress { font-size: 0.95rem; padding: 6px 0; }\n"
    ".vetllm-banner { font-size: 0.95rem; padding: 8px 12px; border-radius: 8px;"
    " background: #eef2ff; border: 1px solid #c7d2fe; }"
)
BANNER_POLL_S = 3.0  # seconds between banner refreshes while a run trains (a light file read)


def _header(settings: AppSettings) -> str:
    text = (
        f"# {TITLE}\nFine-tune a language model to code livestock clinical notes as SNOMED-CT, "
        "watch the training, and check the predictions honestly."
    )
    if settings.public:
        access = (
            "training and evaluation need the admin password"
            if settings.admin_password
            else "training and evaluation are disabled (no admin password set)"
        )
        text += f"\n\n**Shared app:** prediction is open to everyone; {access}."
    return text


# Imported once up front, in the main thread: handlers import these lazily, and the first use
# of transformers' lazy module from several request threads at once can fail ("cannot import name
# 'TrainerCallback' from 'transformers'" in both of two runs of tests/test_import_cycles.py with the
# training modules included). vetllm itself has no import cycle (the same test file), so
# only the modules that reach torch / transformers / scikit-learn are warmed.
WARM_MODULES = (
    "vetllm.engine.modeling",
    "vetllm.engine.predict",
    "vetllm.engine.evaluate",
    "sklearn.feature_extraction.text",
    "sklearn.linear_model",
    "threadpoolctl",
)


def mcp_available() -> bool:
    """Whether Gradio can serve MCP here (the `mcp` package is optional)."""
    return importlib.util.find_spec("mcp") is not None


def warm_imports() -> None:
    """Import every module the handlers use lazily, before any request thread does."""
    for name in WARM_MODULES:
        importlib.import_module(name)


def _wire_page_load(demo, train, train_tab, charts, charts_tab, charts_page, predict,
                    predict_tab, predict_page, password) -> None:  # fmt: skip
    """Fill run lists, preset values and the bundled-data check when a page (re)loads.

    The preset values and the coverage plan run in one chain: filled in parallel, the plan
    could read the epochs and batch fields while they were still empty (0), which the number
    fields refused with "Value 0 is less than minimum value 1." on page load.
    """

    def refresh_charts():
        return chart_handlers.refresh_choices(charts)

    def refresh_models(current):
        return predict_handlers.refresh_choices(predict, current)

    chart_lists = [charts_tab.runs, charts_tab.run]
    run_outputs = [train_tab.run_select, train_tab.timer]
    demo.load(train.refresh_runs, [train_tab.run_select], run_outputs, **PRIVATE)
    demo.load(
        train.preset_values, [train_tab.preset, password], train_tab.preset_outputs, **PRIVATE
    ).then(
        lambda: train.check_data(BUNDLED_CHOICE, None, False), None, train_tab.data_outputs,
        **PRIVATE,
    ).then(train.plan, train_tab.plan_inputs, train_tab.plan_outputs, **PRIVATE)  # fmt: skip
    demo.load(refresh_charts, None, chart_lists, **PRIVATE)
    demo.load(refresh_models, [predict_tab.run], [predict_tab.run], **PRIVATE)
    charts_page.select(refresh_charts, None, chart_lists, **PRIVATE)
    predict_page.select(refresh_models, [predict_tab.run], [predict_tab.run], **PRIVATE)


def _warm_bundled_check(train: TrainHandlers) -> None:
    with contextlib.suppress(Exception):  # a failure here shows on the page load instead
        train.describe_bundled()  # not check_data: its one-per-client gate is for visitors


def _settle_served(settings: AppSettings) -> None:
    """Write down the served run before any visitor arrives (adopting one if none is)."""
    from vetllm.runs.serving import served_run_name

    served_run_name(settings.runs_dir)


@dataclass
class AdminRow:
    password: gr.Textbox
    unlock: gr.Button
    message: gr.Markdown


def _admin_row(settings: AppSettings) -> AdminRow:
    """The one admin password field of the page (public apps only) with its Unlock button."""
    with gr.Row(visible=settings.needs_password):
        password = gr.Textbox(label="Admin password", type="password", scale=3)
        unlock = gr.Button("Unlock admin actions", scale=1)
        message = gr.Markdown()
    return AdminRow(password, unlock, message)


def _wire_unlock(settings, admin: AdminRow, train, train_tab, predict_tab, runs_tab) -> None:
    buttons = [*train_tab.admin_buttons, *predict_tab.admin_buttons, *runs_tab.admin_buttons]
    unlock, password = make_unlock(settings, len(buttons)), admin.password
    for trigger in (admin.unlock.click, password.submit):
        trigger(unlock, [password], [admin.message, *buttons], **PRIVATE).then(
            train.preset_values, [train_tab.preset, password], train_tab.preset_outputs,
            **PRIVATE,
        )  # fmt: skip


def _wire_served(demo, runs, runs_tab, runs_page, banner, banner_timer, charts_tab, tabs) -> None:
    """The banner on every tab (polled while a run trains) and the runs table."""
    refresh = ([runs_tab.run], [runs_tab.table, runs_tab.run])
    demo.load(runs.banner, None, [banner, banner_timer], **PRIVATE)
    # Light file reads kept off the queue, so open pages never crowd out predictions.
    banner_timer.tick(runs.banner, None, [banner, banner_timer], queue=False, **PRIVATE)
    demo.load(runs.refresh, *refresh, **PRIVATE)
    runs_page.select(runs.refresh, *refresh, **PRIVATE).then(
        runs.banner, None, [banner, banner_timer], **PRIVATE
    )
    for event in (runs_tab.table.change,):
        event(runs.banner, None, [banner, banner_timer], **PRIVATE)
    runs_tab.compare.click(
        runs.compare, [runs_tab.run, charts_tab.runs], [charts_tab.runs, tabs], **PRIVATE
    )


def build_app(
    settings: AppSettings,
    train: TrainHandlers | None = None,
    charts: ChartHandlers | None = None,
    predict: PredictHandlers | None = None,
) -> gr.Blocks:
    """The Gradio Blocks app; handlers may be passed in (tests use fakes)."""
    warm_imports()
    train = train or TrainHandlers(settings)
    charts = charts or ChartHandlers(settings)
    predict = predict or PredictHandlers(settings)
    runs, batch = RunsHandlers(settings), BatchHandlers(predict)
    _settle_served(settings)
    # The bundled-data check (statistics, baselines: seconds of CPU) is every page load's
    # slowest part; done once now, in the background, the first visitor does not wait for it.
    threading.Thread(target=_warm_bundled_check, args=(train,), daemon=True).start()
    # analytics off: no telemetry leaves the machine (and none is possible offline anyway)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        gr.Markdown(_header(settings))
        banner, banner_timer = gr.HTML(), gr.Timer(BANNER_POLL_S, active=False)
        admin = _admin_row(settings)
        password = admin.password
        # Visitors of a public app come to predict: they land on Predict, not on Train.
        with gr.Tabs(selected="predict" if settings.public else "train") as tabs:
            with gr.Tab("Train", id="train"):
                train_tab = build_train_tab(settings, train, password)
            with gr.Tab("Charts", id="charts") as charts_page:
                charts_tab = build_charts_tab(charts)
            with gr.Tab("Predict & evaluate", id="predict") as predict_page:
                predict_tab = build_predict_tab(settings, predict, password)
            with gr.Tab("Code a file", id="batch"):
                build_batch_tab(settings, batch, predict_tab.run)
            with gr.Tab("Runs", id="runs") as runs_page:
                runs_tab = build_runs_tab(settings, runs, password)
        tools = PublicTools(predict)  # named and described for MCP clients (vetllm.ui.tools)
        gr.api(
            tools.predict, api_name="predict", concurrency_id="predict",
            concurrency_limit=settings.predict_concurrency,
        )  # fmt: skip
        if not settings.public:  # shared or hosted: evaluation stays behind the admin password
            # and the public surface stays `predict` alone (tests/test_ui_security.py)
            gr.api(tools.check_codes, api_name="check_codes")
            gr.api(predict.evaluate_api, api_name="evaluate", concurrency_id="evaluate",
                   concurrency_limit=1)  # fmt: skip
            # A public app keeps its API to `predict` (micro-batched); its page codes files.
            gr.api(batch.code_notes_api, api_name="code_notes", concurrency_id="predict",
                   concurrency_limit=settings.predict_concurrency)  # fmt: skip

        _wire_page_load(demo, train, train_tab, charts, charts_tab, charts_page, predict,
                        predict_tab, predict_page, password)  # fmt: skip
        _wire_served(demo, runs, runs_tab, runs_page, banner, banner_timer, charts_tab, tabs)
        _wire_unlock(settings, admin, train, train_tab, predict_tab, runs_tab)
    demo.queue(max_size=settings.queue_max_size, default_concurrency_limit=2)
    start_upload_sweeper(demo, settings.upload_ttl_s)  # uploads nobody checked (issue 11)
    return demo


def launch_app(
    demo: gr.Blocks,
    settings: AppSettings,
    *,
    port: int | None = None,
    host: str | None = None,
    block: bool = True,
    quiet: bool = False,
    mcp: bool | None = None,
):
    """Launch with the reliability settings (no tracebacks, upload limit, no run history).

    `mcp`: serve the public API endpoints as MCP tools at /gradio_api/mcp; None = on when the
    `mcp` package (gradio's `mcp` extra) is installed, off otherwise (the app runs either way).
    """
    return demo.launch(
        mcp_server=mcp_available() if mcp is None else mcp,
        server_name=host or ("0.0.0.0" if settings.hosted else "127.0.0.1"),
        server_port=port,
        share=settings.shared,
        show_error=False,  # only gr.Error messages reach users, never exception text
        max_file_size=settings.max_upload_bytes,
        run_history=False,  # clinical notes must not be stored in the browser
        allowed_paths=[],
        footer_links=["api"],
        prevent_thread_lock=not block,
        quiet=quiet,
        theme=gr.themes.Soft(),
        css=CSS,
    )
