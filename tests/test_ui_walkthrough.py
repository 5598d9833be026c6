"""Defects a new user hit in the walkthrough (issue 8, section 4), each pinned by a handler test.

Browser-only behaviour is in tests/test_browser.py; these check the handlers and the built page.
"""

import json

import gradio as gr
import pytest

from vetllm.data.synth import generate_records
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError
from vetllm.ui import guards, views
from vetllm.ui.guards import UPLOAD_CHOICE
from vetllm.ui.predict_handlers import PredictHandlers, PredictorCache, worst_cases
from vetllm.ui.settings import AppSettings
from vetllm.ui.train_handlers import (
    BUNDLED_CHOICE,
    DEFAULT_PRESET,
    HYPERPARAMETERS,
    TrainHandlers,
    preset_config,
)

NO_GPU = {"cuda": False, "bf16": False, "gpu_name": None, "gpu_memory_gb": None,
          "bitsandbytes": False}  # fmt: skip


def _settings(tmp_path, **kw):
    return AppSettings(runs_dir=tmp_path / "runs", bootstrap=False, **kw)


def _components(demo) -> list[dict]:
    return demo.config["components"]


def _by_label(demo, label: str) -> dict:
    return next(c for c in _components(demo) if c.get("props", {}).get("label") == label)


def _deps_from(demo, component_id: int, event: str) -> list[dict]:
    return [d for d in demo.config["dependencies"] if [component_id, event] in
            [list(t) for t in d["targets"]]]  # fmt: skip


@pytest.fixture(scope="module")
def local_app(tmp_path_factory):
    from vetllm.ui.app import build_app

    return build_app(AppSettings(runs_dir=tmp_path_factory.mktemp("runs"), bootstrap=False))


# 1. "Value 0 is less than minimum value 1." on page load --------------------------------------
def test_hyperparameter_fields_start_filled_and_never_refuse_a_value_before_our_handler(local_app):
    cfg = preset_config(DEFAULT_PRESET)
    for label, key in (("Micro-batch per device", "per_device_batch"), ("Epochs", "epochs"),
                       ("Gradient accumulation", "grad_accum")):  # fmt: skip
        props = _by_label(local_app, label)["props"]
        assert props["value"] == getattr(cfg, key)  # no empty field for the plan to read as 0
        assert props.get("minimum") is None  # gradio's own check toasted before our handler


# 2. uploading an evaluation file selects it ----------------------------------------------------
def test_uploading_an_evaluation_file_selects_the_upload(local_app):
    upload = _by_label(local_app, "Validation file (JSON, JSONL, CSV or Parquet)")
    radio = _by_label(local_app, "Validation data")
    deps = _deps_from(local_app, upload["id"], "upload")
    assert any(radio["id"] in d["outputs"] for d in deps)


# 3. the radio back on "Bundled examples" re-checks the bundled data -----------------------------
def test_choosing_bundled_examples_again_replaces_an_earlier_upload(local_app, tmp_path):
    radio = _by_label(local_app, "Training data")
    assert _deps_from(local_app, radio["id"], "input")  # the choice is acted on, not just shown
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    upload = tmp_path / "mine.json"
    write_records(generate_records(300, seed=3), upload)
    assert handlers.check_data(UPLOAD_CHOICE, str(upload), False)[0].source == "mine.json"
    assert handlers.check_data(BUNDLED_CHOICE, None, False)[0].bundled


# 4. one unclosed quote no longer hides every other problem -------------------------------------
def _csv_with_unclosed_quote(tmp_path):
    path = tmp_path / "notes.csv"
    rows = ["input,snomed_codes"] + [
        f"Cow {i} with fever and swollen udder,72934000" for i in range(4)
    ]
    rows[2] = '"Goat with cough,1679004'  # the quote is never closed
    rows.append("Sheep with bloat,not-a-code")
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_an_unclosed_quote_is_one_row_problem_and_skip_bad_rows_gets_past_it(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    out = handlers.check_data(UPLOAD_CHOICE, str(_csv_with_unclosed_quote(tmp_path)), False)
    assert out[0] is None and "never closed" in out[1] and "not-a-code" in out[1]
    assert "No problems found" not in out[1]
    prepared, problems_md = handlers.check_data(
        UPLOAD_CHOICE, str(_csv_with_unclosed_quote(tmp_path)), True
    )[:2]
    assert len(prepared.train) + len(prepared.val) == 3 and "Skipped 2 bad row(s)" in problems_md


def test_a_file_level_error_shows_no_all_clear_under_it(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    empty = tmp_path / "empty.csv"
    empty.write_text("input,snomed_codes\n", encoding="utf-8")
    message = handlers.check_data(UPLOAD_CHOICE, str(empty), False)[1]
    assert "cannot be used" in message and "No problems found" not in message


# 5. evaluating an upload says how many rows were skipped and why -------------------------------
def test_evaluating_an_upload_reports_the_skipped_rows(tmp_path, monkeypatch):
    from vetllm.engine import evaluate as evaluate_module
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(tmp_path / "runs" / "done")
    run.reset_status("completed", created_at="1")
    run.model_dir.mkdir(parents=True)
    seen = {}

    def fake_evaluate(run_dir, data, decoding, out_dir, predictor=None):
        seen.update(n=len(data), out=out_dir.name)
        out_dir.mkdir(parents=True, exist_ok=True)
        (out_dir / "predictions.jsonl").write_text("")
        return {"n": len(data), "strict_accuracy": 1.0, "lenient_accuracy": 1.0,
                "strict_ci": [0.3, 1.0], "lenient_ci": [0.3, 1.0], "format_valid_rate": 1.0,
                "micro_f1": 1.0, "macro_f1": 1.0, "decoding": decoding, "baselines": {},
                "per_code": [], "confusion": {}}  # fmt: skip

    monkeypatch.setattr(evaluate_module, "evaluate_run", fake_evaluate)
    handlers = PredictHandlers(_settings(tmp_path), PredictorCache(lambda path: object()))
    headline, *rest = handlers.evaluate("done", "Upload a file",
                                        str(_csv_with_unclosed_quote(tmp_path)), "free", "")  # fmt: skip
    assert seen == {"n": 3, "out": "eval-upload"}  # beside, not over, the run's own evaluation
    assert "Skipped 2 row(s) of notes.csv" in headline and "never closed" in headline
    download = rest[5].value  # after per code, confusion, worst, baselines, comparison
    assert (download["path"] if isinstance(download, dict) else download).endswith(
        "predictions-done-free.csv"
    )  # 17: free and constrained downloads no longer share a name


# 11. hosted: land on Predict, admin buttons locked until unlocked, empty password asked for ----
def test_a_hosted_app_lands_on_predict_with_admin_buttons_locked(tmp_path):
    from vetllm.ui.app import build_app

    demo = build_app(_settings(tmp_path, hosted=True, admin_password="pw"))
    tabs = next(c for c in _components(demo) if c["type"] == "tabs")
    assert tabs["props"]["selected"] == "predict"
    buttons = {
        c["props"].get("value"): c["props"] for c in _components(demo) if c["type"] == "button"
    }
    for name in ("Launch training", "Stop", "Resume", "Evaluate", "Promote to served model"):
        assert buttons[name]["interactive"] is False, name
    passwords = [c for c in _components(demo) if c["props"].get("label") == "Admin password"]
    assert len(passwords) == 1  # one field for the whole page
    from vetllm.ui.admin import make_unlock

    unlock = make_unlock(_settings(tmp_path, hosted=True, admin_password="pw"), 2)
    with pytest.raises(gr.Error, match="type it in 'Admin password'"):
        unlock("")
    message, *enabled = unlock("pw")
    assert "unlocked" in message and all(b.interactive for b in enabled)


# 12. tiny data sets get a warning -----------------------------------------------------------------
def test_a_tiny_data_set_is_accepted_with_a_warning(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    upload = tmp_path / "two.json"
    write_records(generate_records(2, seed=1), upload)
    problems_md = handlers.check_data(UPLOAD_CHOICE, str(upload), False)[1]
    assert "Warning: only 2 usable record(s)" in problems_md


# 13. one note rule, stated, and no stale answer ---------------------------------------------------
def test_the_note_field_states_the_limit_and_does_not_cut_notes(local_app):
    note = _by_label(local_app, "Clinical note")["props"]
    assert not note.get("max_length") and "5,000 characters" in note["info"]
    predict = next(c for c in _components(local_app) if c["props"].get("value") == "Predict codes")
    first = _deps_from(local_app, predict["id"], "click")[0]
    raw = _by_label(local_app, "Raw model output")
    assert raw["id"] in first["outputs"] and not first["inputs"]  # cleared before predicting


# 14. hyperparameters validated as you type --------------------------------------------------------
def test_settings_are_checked_as_typed_and_the_plan_says_why_it_is_missing(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    cfg = preset_config(DEFAULT_PRESET)
    values = {key: getattr(cfg, key) for key in HYPERPARAMETERS}
    assert handlers.check_settings(DEFAULT_PRESET, *values.values()) == ""
    values.update(learning_rate=-0.001, epochs=0)
    message = handlers.check_settings(DEFAULT_PRESET, *values.values())
    assert "learning_rate: got -0.001" in message and "epochs: got 0" in message
    upload = tmp_path / "mine.json"
    write_records(generate_records(300, seed=3), upload)
    prepared = handlers.check_data(UPLOAD_CHOICE, str(upload), False)[0]
    markdown, figure = handlers.plan(prepared, 16, 1, 0, False)
    assert "No coverage plan" in markdown and "epochs" in markdown and figure is None


# 15. a clean stop message and a readable log ------------------------------------------------------
def test_the_stop_message_and_log_tail_read_cleanly():
    status = {"state": "stopped", "message": "stopped (STOP flag)", "step": 40,
              "total_steps": 300, "last_checkpoint": "checkpoint-40"}  # fmt: skip
    text = views.stop_message("run-1", status)
    assert text == "run-1: stopped at step 40 of 300; Resume continues from checkpoint-40."
    log = ("loading data\n 30%|███       | 3/10 [00:01<00:02,  3.1it/s]\r 40%|████      | 4/10"
           " [00:01<00:02,  3.2it/s]\n/x/bitsandbytes/cextension.py:34: UserWarning: The installed"
           " version of bitsandbytes was compiled without GPU support.\n  warnings.warn(\n"
           "step 40: loss 0.52\nstop requested: saving checkpoint-40\n")  # fmt: skip
    assert views.readable_log(log, 10).splitlines() == [
        "loading data", "step 40: loss 0.52", "stop requested: saving checkpoint-40"
    ]  # fmt: skip


# 16. errors say what to click, not which CLI flag or Python call to use -------------------------------
def test_problem_messages_point_to_the_app_not_to_the_cli(tmp_path):
    handlers = TrainHandlers(_settings(tmp_path), NO_GPU)
    out = handlers.check_data(UPLOAD_CHOICE, str(_csv_with_unclosed_quote(tmp_path)), False)
    assert "Skip bad rows" in out[1] and "on_error" not in out[1] and "CLI" not in out[1]
    assert "load_catalogue" not in out[1] and "Catalogue extension" in out[1]


# 17. the non-chart details ------------------------------------------------------------------------
def test_baselines_table_uses_one_format_and_worst_cases_name_the_diseases():
    rows = views.baseline_rows("run", {"lenient_accuracy": 0.341, "lenient_ci": [0.28, 0.4],
                                       "strict_accuracy": 0.3, "strict_ci": [0.2, 0.4]}, {})  # fmt: skip
    assert views.baseline_table(rows)[0][1:] == ["34.1%", "28.0% - 40.0%"]
    wrong = [{"note": "cow", "gold": ["72934000"], "codes": ["3974005"], "raw_output": "",
              "lenient_correct": False, "confidence": {}}]  # fmt: skip
    names = {"72934000": "Mastitis", "3974005": "Foot-and-mouth disease"}
    assert worst_cases(wrong, 5, names)[0][1:3] == [
        "72934000 (Mastitis)", "3974005 (Foot-and-mouth disease)"
    ]  # fmt: skip


def test_api_error_messages_keep_quotes_readable_and_markup_escaped():
    @guards.user_facing
    def fails():
        raise VetLLMError("run: 'x' is not a completed run <b>")

    with pytest.raises(gr.Error) as error:
        fails()
    assert "'x'" in error.value.message and "&#x27;" not in error.value.message
    assert "&lt;b&gt;" in error.value.message


def test_the_base_model_field_is_wide_enough_for_hub_ids(local_app):
    props = _by_label(local_app, "Base model ('tiny' = CPU default)")["props"]
    assert props["min_width"] >= 400


def test_worst_case_json_rows_round_trip():
    assert json.loads(json.dumps(worst_cases([], 3))) == []


def test_an_admin_adds_a_catalogue_extension_that_data_checks_then_use(tmp_path):
    from vetllm.ui.catalogue_handlers import active_extension, add_extension

    extension = tmp_path / "more.json"
    extension.write_text(json.dumps({"version": "x", "diseases": [
        {"key": "lsd", "name": "Lumpy skin disease", "code": None,
         "variants": ["LSD", "lumpy skin"], "species": ["cow"]}]}))  # fmt: skip
    hosted = _settings(tmp_path, hosted=True, admin_password="pw")
    with pytest.raises(gr.Error, match="needs the admin password"):
        add_extension(hosted, str(extension), "")
    assert not extension.exists() and active_extension(hosted) is None  # refused: deleted
    extension.write_text(json.dumps({"version": "x", "diseases": [
        {"key": "lsd", "name": "Lumpy skin disease", "code": None,
         "variants": ["LSD", "lumpy skin"], "species": ["cow"]}]}))  # fmt: skip
    assert "Lumpy skin disease" in add_extension(hosted, str(extension), "pw")
    assert active_extension(hosted) is not None
    data = tmp_path / "lsd.jsonl"
    data.write_text("".join(json.dumps({"input": f"cow {i} with lumpy skin nodules",
                                        "disease": "lumpy skin"}) + "\n" for i in range(3)))  # fmt: skip
    out = TrainHandlers(hosted, NO_GPU).check_data(UPLOAD_CHOICE, str(data), False)
    assert out[0] is not None and {r.labels for r in out[0].train} == {("local:lsd",)}
