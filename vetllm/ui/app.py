"""build_app(): the three tabs wired to `vetllm` handlers, plus the named API endpoints.

The UI holds no logic: layouts live in the *_tab modules, behaviour in the *_handlers modules.
`predict` is always a public API endpoint. `evaluate` (the bundled validation set) is one only
when the app is local; shared or hosted, evaluation is an admin action in the page alone. Every
other event is private, and the admin-only ones check the password in the handler too (private
events are hidden, not unreachable).
"""

from __future__ import annotations

import importlib
import importlib.util

import gradio as gr

from vetllm.ui import chart_handlers, predict_handlers
from vetllm.ui.chart_handlers import ChartHandlers
from vetllm.ui.charts_tab import build_charts_tab
from vetllm.ui.guards import start_upload_sweeper
from vetllm.ui.predict_handlers import PredictHandlers
from vetllm.ui.predict_tab import build_predict_tab
from vetllm.ui.settings import AppSettings
from vetllm.ui.tools import PublicTools
from vetllm.ui.train_handlers import BUNDLED_CHOICE, TrainHandlers
from vetllm.ui.train_tab import build_train_tab

PRIVATE = {"api_visibility": "private"}
TITLE = "VetLLM Studio"
CSS = ".vetllm-progress { font-size: 0.95rem; padding: 6px 0; }"


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
                    predict_tab, predict_page) -> None:  # fmt: skip
    """Fill run lists, preset values and the bundled-data check when a page (re)loads."""

    def refresh_charts():
        return chart_handlers.refresh_choices(charts)

    def refresh_models(current):
        return predict_handlers.refresh_choices(predict, current)

    chart_lists = [charts_tab.runs, charts_tab.run]
    run_outputs = [train_tab.run_select, train_tab.timer]
    demo.load(train.refresh_runs, [train_tab.run_select], run_outputs, **PRIVATE)
    demo.load(train.preset_values, [train_tab.preset], train_tab.preset_outputs, **PRIVATE)
    demo.load(
        lambda: train.check_data(BUNDLED_CHOICE, None, False), None, train_tab.data_outputs,
        **PRIVATE,
    ).then(train.plan, train_tab.plan_inputs, train_tab.plan_outputs, **PRIVATE)  # fmt: skip
    demo.load(refresh_charts, None, chart_lists, **PRIVATE)
    demo.load(refresh_models, [predict_tab.run], [predict_tab.run], **PRIVATE)
    charts_page.select(refresh_charts, None, chart_lists, **PRIVATE)
    predict_page.select(refresh_models, [predict_tab.run], [predict_tab.run], **PRIVATE)


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
    # analytics off: no telemetry leaves the machine (and none is possible offline anyway)
    with gr.Blocks(title=TITLE, delete_cache=(3600, 3600), analytics_enabled=False) as demo:
        gr.Markdown(_header(settings))
        with gr.Tabs():
            with gr.Tab("Train", id="train"):
                train_tab = build_train_tab(settings, train)
            with gr.Tab("Charts", id="charts") as charts_page:
                charts_tab = build_charts_tab(charts)
            with gr.Tab("Predict & evaluate", id="predict") as predict_page:
                predict_tab = build_predict_tab(settings, predict)
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

        _wire_page_load(demo, train, train_tab, charts, charts_tab, charts_page, predict,
                        predict_tab, predict_page)  # fmt: skip
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
