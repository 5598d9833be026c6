"""Handlers of the Runs tab and the served-model banner shown above every tab.

The runs table is `vetllm.runs.serving.run_rows` as a pandas DataFrame; promote and delete
are admin actions in a public app (password checked here, the events are private); "compare in
Charts" hands the chosen runs to the Charts tab. `download` packs a run into one zip archive.
"""

from __future__ import annotations

import gradio as gr
import pandas as pd

from vetllm.errors import VetLLMError
from vetllm.ui import views
from vetllm.ui.admin import check_admin
from vetllm.ui.guards import user_facing
from vetllm.ui.settings import AppSettings


class RunsHandlers:
    """Runs table, promote / delete / download, and the banner, bound to one app's settings."""

    def __init__(self, settings: AppSettings):
        self.settings = settings

    # -- banner ---------------------------------------------------------------------------------
    def banner_facts(self) -> tuple[dict | None, dict | None]:
        """({run, accuracy, n, baseline} of the served run or None, an active run's status)."""
        from vetllm.runs.launcher import list_runs
        from vetllm.runs.serving import run_baseline, run_scores, served_run_name
        from vetllm.runs.state import ACTIVE_STATES

        runs = list_runs(self.settings.runs_dir)
        name = served_run_name(self.settings.runs_dir, runs)
        served = None
        if name:
            run_dir = self.settings.runs_dir / name
            scores = run_scores(run_dir)
            served = {"run": name, "accuracy": scores.get("accuracy"), "n": scores.get("n"),
                      "baseline": scores.get("baseline") or (run_baseline(run_dir) if scores else None)}  # fmt: skip
        training = next((r for r in runs if r.get("state") in ACTIVE_STATES), None)
        return served, training

    @user_facing
    def banner(self):
        """HTML of the banner; the timer keeps polling only while a run trains."""
        served, training = self.banner_facts()
        return views.served_banner(served, training), gr.Timer(active=training is not None)

    # -- the table ----------------------------------------------------------------------------------
    def table(self) -> pd.DataFrame:
        from vetllm.runs.serving import RUN_COLUMNS, run_rows

        rows = run_rows(self.settings.runs_dir)
        frame = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
        for column in ("val. accuracy", "bag-of-words"):
            frame[column] = frame[column].map(views.percent_or_dash)
        return frame

    @user_facing
    def refresh(self, current: str | None):
        """The runs table and the run picker (keeping the selection, else the served run)."""
        frame = self.table()
        names = list(frame["run"])
        served = frame.loc[frame["served"] != "", "run"]
        value = current if current in names else (served.iloc[0] if len(served) else None)
        return frame, gr.Dropdown(choices=names, value=value)

    @user_facing
    def promote(self, name: str | None, password: str | None):
        """Serve `name` from now on (admin in a public app)."""
        from vetllm.runs.serving import promote_run

        check_admin(self.settings, password, "promoting a run to the served model")
        if not name:
            raise VetLLMError("run: pick a completed run in 'Run' first, then press Promote")
        promote_run(self.settings.runs_dir, name)
        frame, picker = self.refresh(name)
        return frame, picker, f"{name} is now the served model: it answers every prediction."

    @user_facing
    def delete(self, name: str | None, password: str | None):
        """Delete a finished run that is not served (admin in a public app)."""
        from vetllm.runs.serving import delete_run

        check_admin(self.settings, password, "deleting a run")
        if not name:
            raise VetLLMError("run: pick a run in 'Run' first, then press Delete")
        delete_run(self.settings.runs_dir, name)
        frame, picker = self.refresh(None)
        return frame, picker, f"Deleted {name}."

    @user_facing
    def download(self, name: str | None, password: str | None):
        """The run as one zip archive (model, tokenizer, run card, config, evaluation, report)."""
        from vetllm.sharing import archive_run
        from vetllm.ui.train_handlers import known_run_dir

        check_admin(self.settings, password, "downloading a run")
        run_dir = known_run_dir(self.settings.runs_dir, name)
        path = archive_run(run_dir, temp_archive_path(run_dir.name))
        return gr.DownloadButton(value=str(path), visible=True)

    def compare(self, name: str | None, current: list | None):
        """Hand the chosen run (plus the served one) to the Charts tab and switch to it."""
        frame = self.table()
        served = frame.loc[frame["served"] != "", "run"].tolist()
        chosen = list(dict.fromkeys([n for n in [name, *served] if n]))
        return gr.Dropdown(value=chosen or (current or [])), gr.Tabs(selected="charts")


def temp_archive_path(run_name: str):
    """A fresh path for a download (see guards.write_temp_file: old copies are removed)."""
    from pathlib import Path

    from vetllm.ui.guards import write_temp_file

    placeholder = Path(write_temp_file("", f"{run_name}.zip"))
    return placeholder
