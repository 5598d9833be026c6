"""Layout and wiring of the Runs tab: every run in a table, and the served-model actions.

Promote, delete and download are admin actions in a public app (the password field at the top
of the page); "Compare in Charts" opens the Charts tab with the chosen run next to the served one.
All events are private.
"""

from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from vetllm.runs.serving import RUN_COLUMNS
from vetllm.ui.runs_handlers import RunsHandlers
from vetllm.ui.settings import PRIVATE, AppSettings


@dataclass
class RunsTab:
    table: gr.Dataframe
    run: gr.Dropdown
    admin_buttons: list
    compare: gr.Button


def build_runs_tab(settings: AppSettings, handlers: RunsHandlers, password) -> RunsTab:
    gr.Markdown(
        "Every training run of this app. The **served** run answers the Predict tab, batch coding "
        "and the `predict` API; a newly completed run is not served until you promote it."
    )
    table = gr.Dataframe(headers=list(RUN_COLUMNS), label="Runs", interactive=False, wrap=True)
    with gr.Row():
        run = gr.Dropdown(label="Run", choices=[], scale=2)
        refresh = gr.Button("Refresh", scale=1)
    locked = settings.public  # unlocked once per browser session with the admin password
    with gr.Row():
        promote = gr.Button("Promote to served model", variant="primary", interactive=not locked)
        delete = gr.Button("Delete run", variant="stop", interactive=not locked)
        download = gr.Button("Download run (.zip)", interactive=not locked)
        compare = gr.Button("Compare in Charts")
    archive = gr.DownloadButton("Save the archive", visible=False)
    message = gr.Markdown()
    refresh.click(handlers.refresh, [run], [table, run], **PRIVATE)
    promote.click(handlers.promote, [run, password], [table, run, message], **PRIVATE)
    delete.click(handlers.delete, [run, password], [table, run, message], **PRIVATE)
    download.click(handlers.download, [run, password], [archive], **PRIVATE)
    return RunsTab(table, run, [promote, delete, download], compare)
