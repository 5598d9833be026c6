"""Handlers of the Train tab: check data, pick a preset, plan coverage, launch / stop / resume,
and poll the run on disk. Each handler calls into `vetllm` and formats the answer; nothing here
trains: training is a separate process started by `vetllm.runs.launcher.launch_run`.
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import gradio as gr

from vetllm import resources
from vetllm.config import BUNDLED_DATA, TrainConfig, field_types, load_config
from vetllm.data.records import Record, note_key
from vetllm.engine.environment import check_environment
from vetllm.errors import DataError, VetLLMError
from vetllm.ui import charts, views
from vetllm.ui.admin import check_admin
from vetllm.ui.guards import (
    UPLOAD_CHOICE,
    discard_upload,
    one_per_client,
    redact_traceback,
    upload_path,
    user_facing,
)
from vetllm.ui.settings import AppSettings

CONFIGS_DIR = resources.PRESETS_DIR  # the packaged presets (configs/ in the checkout)
DEFAULT_PRESET = resources.DEFAULT_PRESET
BUNDLED_CHOICE = "Bundled examples"
# Widgets of the Train tab, in the order their values reach `launch` (TrainConfig field names).
HYPERPARAMETERS = (
    "base_model",
    "learning_rate",
    "lr_scheduler",
    "warmup_ratio",
    "epochs",
    "per_device_batch",
    "grad_accum",
    "max_length",
    "drop_last",
    "gradient_checkpointing",
    "lora_r",
    "lora_alpha",
    "lora_dropout",
    "seed",
    "ensemble",
    "bag_of_words_vote",
)
LOG_TAIL_LINES = 30
# Bars in the per-epoch coverage chart: anyone can ask for a plan (it is part of the page), and
# 1,000,000 epochs drawn one bar each took 8 s and a 37 MB answer.
MAX_EPOCH_BARS = 100


@dataclass
class PreparedData:
    """A checked data set, held in server-side session state until a launch writes it out."""

    source: str  # "bundled" or the uploaded file's name
    train: list[Record]
    val: list[Record]

    @property
    def bundled(self) -> bool:
        return self.source == BUNDLED_DATA

    @property
    def unique_train_notes(self) -> int:
        return len({note_key(r.note) for r in self.train})


def list_presets(configs_dir: Path = CONFIGS_DIR) -> list[str]:
    """Preset names (configs/*.yaml stems), the CPU default first."""
    return resources.preset_names(configs_dir)


def preset_config(name: str, configs_dir: Path = CONFIGS_DIR) -> TrainConfig:
    """The TrainConfig of a preset; VetLLMError for a name that is not a preset."""
    return load_config(resources.preset_path(name, configs_dir))


def safe_run_name(text: str | None, fallback: str) -> str:
    """A folder-safe run name: letters, digits, '.', '_' and '-' only, at most 48 characters."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]+", "-", (text or "").strip()).strip(".-")[:48]
    return cleaned or fallback


def config_from_widgets(base: TrainConfig, name: str, values: dict) -> TrainConfig:
    """Apply typed widget values to a preset; every missing value is reported at once."""
    missing = [key for key, value in values.items() if value is None or value == ""]
    if missing:
        raise VetLLMError(
            "settings: no value for " + ", ".join(missing) + "; fill them in before launching"
        )
    types = field_types()
    typed = {}
    for key, value in values.items():
        # gr.Number gives floats for whole numbers too; int fields need ints (1.0 -> 1).
        if types.get(key) is int and isinstance(value, float) and value.is_integer():
            value = int(value)
        elif types.get(key) is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        typed[key] = value
    return base.replace(name=name, **typed)


class TrainHandlers:
    """Train-tab handlers bound to one app's settings."""

    def __init__(self, settings: AppSettings, hardware: dict | None = None):
        self.settings = settings
        self.hardware = hardware  # None: detect on first use (tests pass a fake)
        # Runs whose stop this app is handling: polling must not call refresh_status on them,
        # or a process that exits on STOP before stop_run records "stopped" reads as interrupted.
        self._stopping: set[str] = set()
        # The bundled examples are checked on every page load; the answer never changes.
        self._bundled_outputs: tuple | None = None

    # -- data ---------------------------------------------------------------------------------
    def describe_bundled(self):
        """The data panel for the bundled examples, computed once (the app warms it at start)."""
        if self._bundled_outputs is None:
            self._bundled_outputs = self._describe(*self._prepare(BUNDLED_CHOICE, None, False))
        return self._bundled_outputs

    @user_facing
    @one_per_client("checking data")  # one check per client: the CPU is shared (issue 11)
    def check_data(self, source: str, upload: object, skip_bad_rows: bool):
        """Validate, describe and split the chosen data; returns the outputs of the data panel."""
        if source != UPLOAD_CHOICE:
            discard_upload(upload)
            return self.describe_bundled()
        try:
            prepared, problems_md = self._prepare(source, upload, skip_bad_rows)
        except DataError as error:
            message = "**The data cannot be used as it is.** " + views.cell(
                views.app_hints(str(error).split("\n")[0])
            )
            # No "No problems found" table under a file-level error: it would read as all clear.
            table = views.problems_markdown(error.problems) if error.problems else ""
            return (None, message + "\n\n" + table) + self._empty_data_outputs()
        return self._describe(prepared, problems_md)

    def _describe(self, prepared: PreparedData, problems_md: str) -> tuple:
        """Statistics, leak-free split summary, baselines and charts of checked data."""
        from vetllm.baselines import run_baselines
        from vetllm.data.split import leakage_report
        from vetllm.data.stats import dataset_stats

        stats = dataset_stats(prepared.train + prepared.val)
        leak = leakage_report(prepared.train, prepared.val).to_dict()
        baselines = run_baselines(prepared.train, prepared.val)
        rows = views.baseline_rows(None, None, baselines)
        shown = "bundled examples" if prepared.bundled else views.cell(prepared.source)
        split_md = (
            f"**Data:** {shown}. **Split by note text:** {len(prepared.train):,} training records, "
            f"{len(prepared.val):,} validation records; "
            f"{leak.get('share_leaked', 0.0):.1%} of validation notes also occur in training."
        )
        summary = stats.to_dict()
        copies = Counter(note_key(r.note) for r in prepared.train).values()
        return (
            prepared,
            problems_md,
            stats.to_markdown(),  # the core escapes the uploaded text it quotes
            split_md,
            views.baseline_table(rows),
            charts.distribution_figure(summary["label_counts"], "Records per label"),
            charts.distribution_figure(summary["species_counts"], "Records per species"),
            charts.exposure_figure(list(copies)),
            charts.leakage_figure(
                int(leak.get("n_other_notes", 0)), int(leak.get("n_leaked_notes", 0))
            ),
        )

    @staticmethod
    def _empty_data_outputs() -> tuple:
        return ("", "", [], None, None, None, None)

    def _prepare(self, source: str, upload: object, skip_bad_rows: bool):
        from vetllm.data.loading import load_dataset_file
        from vetllm.data.split import split_by_note
        from vetllm.data.synth import bundled_examples

        on_error = "skip" if skip_bad_rows else "reject"
        if source != UPLOAD_CHOICE:
            discard_upload(upload)
            train_path, val_path = bundled_examples()
            train = load_dataset_file(train_path).records
            val = load_dataset_file(val_path).records
            return PreparedData(BUNDLED_DATA, train, val), views.problems_markdown([])
        path = upload_path(upload)
        if path is None:
            raise VetLLMError(
                "data: choose a file to upload (JSON, JSONL, CSV or Parquet), then check it"
            )
        from vetllm.ui.catalogue_handlers import active_catalogue

        try:
            result = load_dataset_file(
                path,
                on_error=on_error,
                max_bytes=self.settings.max_upload_bytes,
                display_name=path.name,
                time_budget_s=self.settings.check_budget_s,
                catalogue=active_catalogue(self.settings),
            )
        finally:
            discard_upload(upload)  # gradio would serve it to anyone who knows its URL
        if len(result.records) < 2:
            raise VetLLMError(f"{path.name}: only {len(result.records)} usable record(s); need 2+")
        split = split_by_note(result.records, val_fraction=0.15, seed=0)
        problems = views.problems_markdown(result.problems)
        if result.problems:
            problems = f"Skipped {result.skipped_rows} bad row(s):\n\n" + problems
        notices = "\n".join(f"- {views.cell(n)}" for n in result.notices)
        warning = views.small_data_warning(len(result.records), len(split.val))
        prepared = PreparedData(path.name, split.train, split.val)
        return prepared, warning + problems + "\n\n" + notices

    # -- preset, plan, environment ----------------------------------------------------------------
    @user_facing
    def preset_values(self, preset: str, password: str | None = None):
        """Widget values of a preset, its run name and the environment check; Launch is live
        when the preset can run here and (in a public app) admin actions are unlocked."""
        from vetllm.ui.admin import is_unlocked

        cfg = preset_config(preset)
        values = [getattr(cfg, key) for key in HYPERPARAMETERS]
        report = check_environment(cfg, self.hardware)
        launch = gr.Button(interactive=report["runnable"] and is_unlocked(self.settings, password))
        return (*values, cfg.name, views.environment_markdown(report), launch)

    @user_facing
    def plan(self, prepared: PreparedData | None, per_device_batch, grad_accum, epochs, drop_last):
        """The coverage plan for these settings on the checked data (bundled data if none)."""
        from vetllm.coverage import plan_coverage

        if prepared is None:
            return "Check the data first to see the coverage plan.", None
        try:  # a value being typed is answered in place, never with a toast and a stale plan
            plan = plan_coverage(
                samples=len(prepared.train),
                per_device_batch=int(per_device_batch or 0),
                grad_accum=int(grad_accum or 0),
                epochs=float(epochs or 0),
                drop_last=bool(drop_last),
                unique_notes=prepared.unique_train_notes,
            )
        except (VetLLMError, ValueError, OverflowError) as error:
            return f"**No coverage plan for these settings:** {views.cell(error)}", None
        seen, dropped = per_epoch_bars(plan)
        return plan.to_markdown(), charts.coverage_figure(seen, dropped, plan.epochs_started)

    @user_facing
    def check_settings(self, preset: str, *values) -> str:
        """Every problem of the typed hyperparameters at once, as the user types ('' if none)."""
        try:
            cfg = preset_config(preset)
            config_from_widgets(cfg, cfg.name, dict(zip(HYPERPARAMETERS, values, strict=True)))
        except VetLLMError as error:
            lines = str(error).split("\n")
            items = [line.strip().removeprefix("- ") for line in lines[1:]] or lines
            return "**Fix before launching:**\n\n" + "\n".join(
                f"- {views.cell(item)}" for item in items
            )
        return ""

    # -- launch / stop / resume ---------------------------------------------------------------------
    @user_facing
    def launch(
        self, preset: str, prepared: PreparedData | None, run_name: str, password: str, *values
    ):
        """Write the run's config (and uploaded data) and start training in a separate process."""
        from vetllm.runs.directory import new_run_folder_name
        from vetllm.runs.launcher import launch_run

        check_admin(self.settings, password, "launching training")
        base = preset_config(preset)
        cfg = config_from_widgets(
            base, safe_run_name(run_name, preset), dict(zip(HYPERPARAMETERS, values, strict=True))
        )
        report = check_environment(cfg, self.hardware)
        if not report["runnable"]:
            raise VetLLMError(f"cannot launch here: {report['verdict']}")
        folder = new_run_folder_name(cfg.name)
        run_dir = self.settings.runs_dir / folder
        from vetllm.ui.catalogue_handlers import active_extension

        extension = active_extension(self.settings)
        if extension is not None and not cfg.catalogue:  # the admin's extension, if any
            cfg = cfg.replace(catalogue=str(extension))
        cfg = self._with_data(cfg, prepared, run_dir)
        staged = cfg.to_yaml(self.settings.runs_dir / ".staging" / f"{folder}.yaml")
        run = launch_run(staged, run_dir, runs_root=self.settings.runs_dir)
        staged.unlink(missing_ok=True)
        return self._attached(run.name, f"Launched {run.name}.")

    @staticmethod
    def _with_data(cfg: TrainConfig, prepared: PreparedData | None, run_dir: Path) -> TrainConfig:
        if prepared is None or prepared.bundled:
            return cfg.replace(data=BUNDLED_DATA, val_data=BUNDLED_DATA)
        from vetllm.data.writing import write_records

        train = write_records(prepared.train, run_dir / "data" / "train.json")
        val = write_records(prepared.val, run_dir / "data" / "val.json")
        return cfg.replace(data=str(train), val_data=str(val))

    @user_facing
    def stop(self, run_name: str, password: str):
        from vetllm.runs.launcher import stop_run

        check_admin(self.settings, password, "stopping training")
        run_dir = self.run_dir(run_name)
        self._stopping.add(run_name)
        try:
            status = stop_run(run_dir, timeout_s=30)
        finally:
            self._stopping.discard(run_name)
        return views.stop_message(run_name, status.to_dict())

    @user_facing
    def resume(self, run_name: str, password: str):
        from vetllm.runs.launcher import resume_run

        check_admin(self.settings, password, "resuming training")
        run = resume_run(self.run_dir(run_name), runs_root=self.settings.runs_dir)
        return self._attached(run.name, f"Resumed {run.name}.")

    def _attached(self, name: str, message: str):
        return gr.Dropdown(choices=self.run_names(), value=name), gr.Timer(active=True), message

    # -- runs on disk -----------------------------------------------------------------------------
    def run_names(self) -> list[str]:
        from vetllm.runs.launcher import list_runs

        return [entry["name"] for entry in list_runs(self.settings.runs_dir)]

    def run_dir(self, name: str | None) -> Path:
        """The folder of a run picked in the UI; never a path the user typed."""
        return known_run_dir(self.settings.runs_dir, name)

    @user_facing
    def refresh_runs(self, current: str | None):
        """Run list for the dropdown, keeping the selection, else the newest run."""
        names = self.run_names()
        value = current if current in names else (names[0] if names else None)
        return gr.Dropdown(choices=names, value=value), gr.Timer(active=value is not None)

    @user_facing
    def poll(self, run_name: str | None):
        """Progress bar, failure details and live loss chart; the timer stops when the run ends."""
        from vetllm.runs.directory import RunDirectory
        from vetllm.runs.launcher import refresh_status

        try:
            run = RunDirectory(known_run_dir(self.settings.runs_dir, run_name))
        except VetLLMError:
            return views.progress_html(None, None), "", None, gr.Timer(active=False)
        status = run.read_status() if run_name in self._stopping else refresh_status(run)
        tail = log_tail(run.log_path, LOG_TAIL_LINES)
        if self.settings.public:  # anyone may poll: no traceback frames or source lines
            tail = redact_traceback(tail)
        record = status.to_dict()
        failure = views.failure_markdown(record, tail)
        figure = charts.loss_figure({run_name: run.read_metrics()})
        timer = gr.Timer(active=status.active)
        return views.progress_html(run_name, record), failure, figure, timer


_RUN_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def known_run_dir(runs_dir: Path, name: object) -> Path:
    """runs_dir/name if `name` is a plain folder name holding a run; VetLLMError otherwise.

    Reads no status (so it never races a stop in progress) and accepts no path separators.
    """
    from vetllm.runs.directory import RunDirectory

    if isinstance(name, str) and _RUN_NAME.match(name) and RunDirectory(runs_dir / name).exists():
        return runs_dir / name
    raise VetLLMError(f"run: {name!r} is not a run of this app; pick one from the list")


def per_epoch_bars(plan, limit: int = MAX_EPOCH_BARS) -> tuple[list[int], list[int]]:
    """(samples seen, samples not seen) for the first `limit` epochs the plan starts, the last
    maybe partial."""
    seen, dropped = [], []
    for epoch in range(min(plan.epochs_started, limit)):
        full = epoch < plan.full_epochs
        fed = (
            plan.samples_seen_per_epoch
            if full
            else min(plan.steps_in_last_epoch * plan.effective_batch, plan.samples_seen_per_epoch)
        )
        seen.append(fed)
        dropped.append(plan.samples - fed)
    return seen, dropped


def log_tail(path: Path, lines: int) -> str:
    """The last `lines` readable lines of a log file (views.readable_log; '' if missing)."""
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""
    return views.readable_log(text, lines)
