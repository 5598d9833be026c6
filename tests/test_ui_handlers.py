"""UI handlers with fakes: settings, the error edge, views, the Train and Charts tabs, first launch."""

import csv
import io
from pathlib import Path

import gradio as gr
import pytest

from vetllm.data.synth import generate_records
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError
from vetllm.ui import exports, guards, views
from vetllm.ui.guards import UPLOAD_CHOICE
from vetllm.ui.settings import AppSettings
from vetllm.ui.train_handlers import (
    HYPERPARAMETERS,
    TrainHandlers,
    config_from_widgets,
    list_presets,
    per_epoch_bars,
    preset_config,
    safe_run_name,
)

NO_GPU = {
    "cuda": False,
    "bf16": False,
    "gpu_name": None,
    "gpu_memory_gb": None,
    "bitsandbytes": False,
}


def _settings(tmp_path, **kw):
    return AppSettings(runs_dir=tmp_path / "runs", **kw)


# -- settings and the error edge -----------------------------------------------------------------
def test_admin_actions_local_open_public_needs_password(tmp_path, monkeypatch):
    _settings(tmp_path).require_admin(None, "launching")  # local: no password needed
    with pytest.raises(VetLLMError, match="disabled"):
        _settings(tmp_path, shared=True).require_admin("x", "launching")
    hosted = _settings(tmp_path, hosted=True, admin_password="s3cret")
    with pytest.raises(VetLLMError, match="wrong"):
        hosted.require_admin("nope", "launching")
    hosted.require_admin("s3cret", "launching")
    monkeypatch.setenv("SPACE_ID", "me/space")
    monkeypatch.setenv("VETLLM_ADMIN_PASSWORD", "pw")
    from_env = AppSettings.from_env(tmp_path / "r")
    assert from_env.hosted and from_env.public and from_env.admin_password == "pw"


def test_user_facing_shows_vetllm_errors_escaped_and_hides_everything_else(caplog):
    @guards.user_facing
    def fails_for_user():
        raise VetLLMError("field 'note': <script>x</script>\nsecond line")

    @guards.user_facing
    def fails_inside():
        raise RuntimeError("Cow with fever at /srv/secret/path")

    with pytest.raises(gr.Error) as shown:
        fails_for_user()
    assert "&lt;script&gt;" in shown.value.message and "<br>" in shown.value.message
    with pytest.raises(gr.Error) as hidden:
        fails_inside()
    assert hidden.value.message == guards.GENERIC_MESSAGE
    assert "Cow with fever" not in caplog.text and "/srv/secret" not in caplog.text
    assert "RuntimeError" in caplog.text


def test_clean_note_rules():
    assert guards.clean_note("  Cow, fever \x00 ", 100) == "Cow, fever"
    for bad, match in (
        (None, "no text"),
        (42, "expected text"),
        ("   ", "empty"),
        ("x" * 101, "101"),
    ):
        with pytest.raises(VetLLMError, match=match):
            guards.clean_note(bad, 100)


def test_discard_upload_removes_the_file(tmp_path):
    upload = tmp_path / "data.json"
    upload.write_text("[]")
    guards.discard_upload(str(upload))
    assert not upload.exists()
    guards.discard_upload(None)  # nothing to do, no error


# -- views and exports ---------------------------------------------------------------------------
def test_progress_and_failure_views():
    html = views.progress_html("run-1", {"state": "running", "step": 50, "total_steps": 200,
                                         "progress": 0.25, "eta_s": 125, "elapsed_s": 40})  # fmt: skip
    assert "step 50 of 200" in html and "25%" in html and "2 min 05 s" in html
    assert "aria-valuenow='25'" in html
    done = views.progress_html("run-1", {"state": "completed", "progress": 0.97})
    assert "100%" in done
    failed = views.failure_markdown(
        {"state": "failed", "error": "CUDA out of memory", "remedy": "lower the micro-batch"},
        'File "/home/user/vetllm/engine/training.py", line 3\nOOM',
    )
    assert "CUDA out of memory" in failed and "lower the micro-batch" in failed
    assert "/home/user" not in failed and "training.py" in failed
    assert views.failure_markdown({"state": "running"}, "x") == ""


def test_prediction_views_and_problem_table():
    answer = {
        "codes": [{"code": "1679004", "name": "PPR", "valid_sctid": False, "suggested_code": None,
                   "confidence": 0.91234}],
        "repairs": ["split '16790041679004' into codes"], "unknown_codes": ["999"], "warnings": [],
    }  # fmt: skip
    assert views.prediction_rows(answer) == [["1679004", "PPR", "INVALID check digit", 0.912]]
    assert "split" in views.repairs_markdown(answer) and "999" in views.repairs_markdown(answer)
    assert "No repairs" in views.repairs_markdown({"codes": []})

    class P:
        source, line, field, message = "a.csv", 3, "input", "empty | note"

    table = views.problems_markdown([P()])
    assert "a.csv" in table and "&#124;" in table


def test_csv_export_escapes_formulas_and_keeps_text():
    rows = [{"index": 1, "note": "=HYPERLINK(\"http://x\")", "gold": ["1"], "codes": [],
             "raw_output": "-1", "confidence": {"1": 0.5}}]  # fmt: skip
    text = exports.predictions_to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert parsed[0]["note"] == '\'=HYPERLINK("http://x")'
    assert parsed[0]["raw_output"] == "'-1" and parsed[0]["confidence"] == "1=0.5"
    assert exports.safe_cell("@cmd") == "'@cmd" and exports.safe_cell("cow") == "cow"


# -- train handlers ------------------------------------------------------------------------------
def test_presets_and_widget_values():
    assert list_presets()[0] == "tiny-cpu" and "alpaca-7b-qlora" in list_presets()
    assert safe_run_name("my run/../x", "p") == "my-run-..-x" and safe_run_name("", "p") == "p"
    base = preset_config("tiny-cpu")
    values = {k: getattr(base, k) for k in HYPERPARAMETERS}
    values.update(per_device_batch=8.0, epochs=2)
    cfg = config_from_widgets(base, "n", values)
    assert cfg.per_device_batch == 8 and isinstance(cfg.per_device_batch, int)
    assert cfg.epochs == 2.0 and cfg.name == "n"
    values.update(learning_rate=None, seed=None)
    with pytest.raises(VetLLMError, match="learning_rate, seed"):
        config_from_widgets(base, "n", values)


def _upload(tmp_path, n=60):
    path = tmp_path / "upload" / "mine.json"
    write_records(generate_records(n=n, seed=1), path)
    return path


def test_check_data_on_upload_splits_by_note_and_deletes_the_upload(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    upload = _upload(tmp_path)
    out = handlers.check_data(UPLOAD_CHOICE, str(upload), False)
    prepared = out[0]
    assert prepared.source == "mine.json"
    assert len(prepared.train) + len(prepared.val) == 60 and prepared.val
    assert not upload.exists()
    train_notes = {r.note for r in prepared.train}
    assert not any(r.note in train_notes for r in prepared.val)  # leak-free
    assert "0.0% of validation notes" in out[3]
    assert [row[0] for row in out[4]] == ["majority", "majority_per_species", "bag_of_words"]


def test_data_uploads_offer_every_format_the_loader_reads():
    from vetllm.data.loading import READ_FORMATS
    from vetllm.ui.settings import DATA_FILE_TYPES

    assert ".parquet" in DATA_FILE_TYPES
    assert set(DATA_FILE_TYPES) <= set(READ_FORMATS)


def test_check_data_lists_every_problem_of_a_bad_file(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    bad = tmp_path / "bad.jsonl"
    bad.write_text(
        '{"input": "cow, fever", "snomed_codes": ["72934000"]}\n{"input": ""}\nnot json\n'
    )
    out = handlers.check_data(UPLOAD_CHOICE, str(bad), False)
    assert out[0] is None
    assert "line 2" in out[1] or "| 2 |" in out[1]
    assert "| 3 |" in out[1] and not bad.exists()
    with pytest.raises(gr.Error, match="choose a file"):
        handlers.check_data(UPLOAD_CHOICE, None, False)


def test_coverage_plan_matches_the_trainer_arithmetic(tmp_path):
    from vetllm.coverage import plan_coverage

    plan = plan_coverage(1602, 2, 4, 3, drop_last=True)
    assert plan.total_steps == 603 and per_epoch_bars(plan) == ([1602] * 3, [0] * 3)
    dropped = plan_coverage(1602, 8, 1, 1, drop_last=True)
    assert per_epoch_bars(dropped) == ([1600], [2])
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    upload = _upload(tmp_path)
    prepared = handlers.check_data(UPLOAD_CHOICE, str(upload), False)[0]
    markdown, figure = handlers.plan(prepared, 4, 2, 2.0, False)
    assert "optimizer steps per epoch" in markdown and figure.data


def test_launch_writes_the_edited_config_and_refuses_what_cannot_run(tmp_path, monkeypatch):
    from vetllm.config import load_config
    from vetllm.runs import launcher
    from vetllm.runs.directory import RunDirectory

    launched = {}

    def fake_launch(config_path, run_dir, **kwargs):
        launched["cfg"] = load_config(config_path)
        run = RunDirectory(run_dir)
        run.reset_status("queued", created_at="2026")
        return run

    monkeypatch.setattr(launcher, "launch_run", fake_launch)
    monkeypatch.setattr(
        launcher,
        "list_runs",
        lambda root: [
            {"name": p.name} for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")
        ],
    )
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    base = preset_config("tiny-cpu")
    values = [getattr(base, k) for k in HYPERPARAMETERS]
    values[HYPERPARAMETERS.index("learning_rate")] = 0.01
    upload = _upload(tmp_path)
    prepared = handlers.check_data(UPLOAD_CHOICE, str(upload), False)[0]
    dropdown, timer, message = handlers.launch("tiny-cpu", prepared, "my run", "", *values)
    assert launched["cfg"].learning_rate == 0.01 and launched["cfg"].name == "my-run"
    assert launched["cfg"].data.endswith("data/train.json") and dropdown.value.startswith("my-run-")
    assert timer.active is True and "Launched" in message
    qlora = preset_config("alpaca-7b-qlora")
    with pytest.raises(gr.Error, match="needs a CUDA GPU"):
        handlers.launch(
            "alpaca-7b-qlora", None, "", "", *[getattr(qlora, k) for k in HYPERPARAMETERS]
        )
    shared = TrainHandlers(_settings(tmp_path, shared=True), NO_GPU)
    with pytest.raises(gr.Error, match="disabled"):
        shared.launch("tiny-cpu", None, "", "", *values)


def _fake_run(root, name, state="running", with_model=False, metrics=()):
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(root / name)
    run.reset_status(state, step=20, total_steps=100, progress=0.2, eta_s=30, created_at=name)
    for record in metrics:
        run.append_metrics(record)
    if with_model:
        run.model_dir.mkdir(parents=True)
    return run


def test_poll_reads_the_run_on_disk_and_stops_the_timer_when_done(tmp_path):
    settings = _settings(tmp_path)
    metrics = [{"step": s, "epoch": s / 10, "loss": 1.0 / s} for s in range(1, 21)]
    _fake_run(settings.runs_dir, "r1", "running", metrics=metrics)
    handlers = TrainHandlers(settings, NO_GPU)
    progress, failure, figure, timer = handlers.poll("r1")
    assert "step 20 of 100" in progress and failure == "" and timer.active is True
    assert len(figure.data[0].y) == 20
    failed = _fake_run(settings.runs_dir, "r2", "failed")
    failed.write_status(error="boom", remedy="fix it")
    failed.log_path.write_text("line one\nTraceback at /secret/x.py\n")
    progress, failure, figure, timer = handlers.poll("r2")
    assert "boom" in failure and "fix it" in failure and "/secret" not in failure
    assert timer.active is False
    assert handlers.poll("../etc")[3].active is False  # not a run of this app


# -- charts tab ----------------------------------------------------------------------------------
def test_chart_handlers_compare_coverage_and_report(tmp_path):
    from vetllm.ui.chart_handlers import ChartHandlers

    settings = _settings(tmp_path)
    metrics = [
        {"step": s, "epoch": s / 10, "loss": 2.0 / s, "learning_rate": 1e-3} for s in range(1, 31)
    ]
    run = _fake_run(settings.runs_dir, "r1", "completed", metrics=metrics)
    preset_config("tiny-cpu").replace(epochs=2.0).to_yaml(run.config_path)
    handlers = ChartHandlers(settings)
    loss, evaluation, lr, table = handlers.compare(["r1"], 0.5, True, "epoch")
    assert loss.data[-1].name.startswith("source analysis (not comparable: its loss covered")
    assert max(loss.data[-1].x) == 3.0  # the reference on the epoch axis
    assert len(table) == 30 and table[0][0] == "r1"
    plan_md, coverage, exposure, labels, species, leakage = handlers.coverage("r1")
    assert "optimizer steps per epoch" in plan_md and len(coverage.data[0].y) == 2
    text, download = handlers.report("r1")
    assert text.startswith("# Training analysis") and download.visible is True
    with pytest.raises(gr.Error, match="not a run"):
        handlers.report("../../etc")


def test_charts_of_a_run_on_hub_data_say_so_and_download_nothing(tmp_path, monkeypatch):
    import vetllm.data.loading
    from vetllm.ui.chart_handlers import ChartHandlers

    def refuse(value):
        raise AssertionError(f"a page request tried to load {value}")

    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(vetllm.data.loading, "read_hub_rows", refuse)
    settings = _settings(tmp_path)
    metrics = [{"step": s, "epoch": s / 10, "loss": 2.0 / s} for s in range(1, 31)]
    run = _fake_run(settings.runs_dir, "r1", "completed", metrics=metrics)
    preset_config("tiny-cpu").replace(data="hub:x/y").to_yaml(run.config_path)
    handlers = ChartHandlers(settings)
    with pytest.raises(gr.Error, match="train data is a Hub dataset \\(hub:x/y\\)"):
        handlers.coverage("r1")
    text, download = handlers.report("r1")
    assert text.startswith("# Training analysis") and download.visible is True
    assert "left out: train data is a Hub dataset (hub:x/y)" in text
    assert "vetllm report --run RUN_DIR" in text


# -- first launch --------------------------------------------------------------------------------
def test_first_launch_trains_the_cpu_default_only_when_nothing_can_predict(tmp_path, monkeypatch):
    from vetllm.runs import launcher
    from vetllm.runs.directory import RunDirectory
    from vetllm.ui.bootstrap import ensure_default_run

    started = []

    def fake_launch(config_path, run_dir, **kwargs):
        started.append((Path(config_path).name, Path(run_dir).name, kwargs["runs_root"]))
        run = RunDirectory(run_dir)
        run.reset_status("running", created_at="z", pid=None)
        return run

    monkeypatch.setattr(launcher, "launch_run", fake_launch)
    settings = _settings(tmp_path)
    name = ensure_default_run(settings)
    assert started == [("tiny-cpu.yaml", name, settings.runs_dir)]
    assert name.startswith("cpu-default-")
    assert ensure_default_run(settings) is None  # one is already training
    (settings.runs_dir / name / "status.json").unlink()
    _fake_run(settings.runs_dir, "old", "completed", with_model=True)
    assert ensure_default_run(settings) is None and len(started) == 1


def test_known_run_dir_accepts_only_plain_names_of_existing_runs(tmp_path):
    from vetllm.ui.train_handlers import known_run_dir

    _fake_run(tmp_path, "r1", "running")
    assert known_run_dir(tmp_path, "r1") == tmp_path / "r1"
    for bad in ("../r1", "r1/..", ".staging", "", None, 3, "missing", "/etc"):
        with pytest.raises(VetLLMError, match="not a run"):
            known_run_dir(tmp_path, bad)
