"""A real headless browser (Debian chromium + playwright) drives the launched app.

Opens every tab, starts and stops a tiny training run from the Train tab, predicts a typed note
in the Predict tab, and saves screenshots to test-artifacts/ for a human to look at.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
NOTE = "2 yr Beetal goat, T 105.8F, sores on lips, runny nose, diarrhoea"


@pytest.fixture(scope="module")
def browser_app(tmp_path_factory, quick_run, app_launcher):
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    from vetllm.ui.settings import AppSettings

    runs = tmp_path_factory.mktemp("browser-runs")
    shutil.copytree(quick_run, runs / quick_run.name)
    settings = AppSettings(runs_dir=runs, bootstrap=False, poll_seconds=1.0)
    demo, url = app_launcher(settings)
    yield url, runs
    from vetllm.runs.launcher import list_runs, stop_run

    for run in list_runs(runs):  # never leave a training process behind
        stop_run(runs / run["name"], timeout_s=5)
    demo.close()


@pytest.fixture(scope="module")
def page(browser_app):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1300, "height": 1000})
        page.set_default_timeout(60_000)
        page.goto(browser_app[0])
        yield page
        browser.close()


def test_train_tab_checks_data_and_shows_the_plan(page):
    page.get_by_text("Data set statistics").first.wait_for()
    page.get_by_text("optimizer steps per epoch").first.wait_for()
    page.get_by_text("Can run here").wait_for()
    page.screenshot(path=str(ARTIFACTS / "01-train-tab.png"), full_page=True)
    assert page.get_by_text("Split by note text").count() >= 1


def test_start_and_stop_a_tiny_training_run(page, browser_app):
    page.get_by_label("Epochs").fill("3")  # long enough (~255 steps) to be caught running
    page.get_by_label("Run name").fill("browser")
    page.get_by_role("button", name="Launch training").click()
    page.get_by_text("Launched browser-").wait_for()
    page.locator(".vetllm-progress[data-state='running']").wait_for(timeout=120_000)
    page.get_by_text(re.compile(r"step [1-9]\d* of \d+")).first.wait_for(timeout=120_000)
    page.wait_for_timeout(2500)  # two more polls: the live loss chart has points
    page.screenshot(path=str(ARTIFACTS / "02-training-running.png"), full_page=True)
    page.get_by_role("button", name="Stop").click()
    page.locator(".vetllm-progress[data-state='stopped']").wait_for(timeout=90_000)
    page.screenshot(path=str(ARTIFACTS / "03-training-stopped.png"), full_page=True)
    runs = [p.name for p in browser_app[1].iterdir() if p.name.startswith("browser-")]
    assert len(runs) == 1


def test_charts_tab_shows_loss_and_report(page):
    page.get_by_role("tab", name="Charts").click()
    page.get_by_text("Training analysis").first.wait_for()
    plots = page.locator(".js-plotly-plot:visible")
    plots.first.wait_for()
    page.wait_for_timeout(1500)  # let plotly finish drawing before the screenshot
    page.screenshot(path=str(ARTIFACTS / "04-charts-tab.png"), full_page=True)
    assert plots.count() >= 3


def test_predict_tab_predicts_a_typed_note(page):
    page.get_by_role("tab", name="Predict & evaluate").click()
    page.get_by_label("Clinical note").fill(NOTE)
    page.get_by_role("button", name="Predict codes").click()
    raw = page.get_by_label("Raw model output")
    page.wait_for_function("el => el.value.length > 0", arg=raw.element_handle(), timeout=60_000)
    page.get_by_text("No repairs needed").or_(
        page.get_by_text("Repairs and notes")
    ).first.wait_for()
    page.screenshot(path=str(ARTIFACTS / "05-predict-tab.png"), full_page=True)
    assert raw.input_value().strip()
    assert page.locator(".toast-body.error").count() == 0


def test_evaluate_shows_scores_baselines_and_a_csv_download(page):
    page.get_by_role("tab", name="Predict & evaluate").click()
    page.get_by_role("button", name="Evaluate", exact=True).click()
    page.get_by_text("strict accuracy").first.wait_for(timeout=180_000)
    page.get_by_text("bag_of_words").first.wait_for()
    page.get_by_role("button", name="Download predictions as CSV (formula-safe)").wait_for()
    page.wait_for_timeout(1500)  # plotly draws the confusion matrix
    page.screenshot(path=str(ARTIFACTS / "06-evaluate.png"), full_page=True)
    page.locator(".js-plotly-plot", has_text="Reliability diagram (ECE").first.wait_for()
    page.locator(".js-plotly-plot", has_text="Accuracy vs coverage").first.wait_for()


def test_an_uploaded_file_with_bad_rows_lists_every_problem(page, tmp_path):
    bad = tmp_path / "clinic-notes.jsonl"
    bad.write_text(
        '{"input": "Cow, high fever, drop in milk", "snomed_codes": ["72934000"]}\n'
        '{"input": "", "snomed_codes": ["72934000"]}\n'
        '{"input": "Goat with cough", "snomed_codes": [12]}\n'
        "not json\n",
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Train").click()
    page.locator("input[type=file]").first.set_input_files(str(bad))
    page.get_by_text("The data cannot be used").wait_for()
    table = page.locator("table", has_text="clinic-notes.jsonl").first
    assert table.get_by_text("clinic-notes.jsonl").count() >= 3  # one row per problem
    page.screenshot(path=str(ARTIFACTS / "07-upload-problems.png"), full_page=True)


def test_charts_tab_analyses_an_uploaded_trainer_run(page, tmp_path):
    """A run made elsewhere: upload its trainer_state.json, arguments and data in the browser."""
    import json

    from vetllm.data.synth import generate_records
    from vetllm.data.writing import write_records

    assets = Path(__file__).parent / "assets"
    args = tmp_path / "training_args.json"
    args.write_text(json.dumps({"per_device_train_batch_size": 4, "gradient_accumulation_steps": 8,
                                "num_train_epochs": 3, "dataloader_drop_last": True}))  # fmt: skip
    records = generate_records(n=600, seed=3)
    train = tmp_path / "train.json"
    write_records([records[i % 600] for i in range(1602)], train)  # 1,602 rows, repeated notes
    page.get_by_role("tab", name="Charts").click()
    page.get_by_text("Analyse a Trainer run made elsewhere").click()
    page.locator("#upload-state input[type=file]").set_input_files(
        str(assets / "seed_trainer_state.json")
    )
    page.locator("#upload-args input[type=file]").set_input_files(str(args))
    page.locator("#upload-data input[type=file]").set_input_files(str(train))
    page.wait_for_timeout(1000)  # the uploads finish before the click sends them
    page.get_by_role("button", name="Analyse the uploaded run").click()
    summary = page.locator("#upload-summary")
    summary.get_by_text("Was the model trained on the whole dataset?").wait_for(timeout=60_000)
    page.get_by_text("mismatch").first.wait_for()
    page.wait_for_timeout(1500)  # plotly draws the charts
    page.screenshot(path=str(ARTIFACTS / "11-charts-uploaded-run.png"), full_page=True)
    text = summary.inner_text()
    assert (
        "Yes: all 1,602 samples" in text and "1,602 training rows (training file) hold only" in text
    )
    loss_chart = page.locator(".js-plotly-plot:visible", has_text="trainer_state.json (uploaded)")
    assert loss_chart.count() >= 1  # the loss chart shows the uploaded run
    assert page.locator(".toast-body.error").count() == 0


# -- issue 8: the served model, batch coding, first launch and the walkthrough defects ----------
def test_page_load_shows_no_error_toast(page):
    page.reload()
    page.get_by_text("optimizer steps per epoch").first.wait_for()
    page.wait_for_timeout(3000)  # every page-load event has answered
    assert page.locator(".toast-body.error").count() == 0


def test_the_served_model_banner_and_the_runs_table(page, browser_app):
    banner = page.locator(".vetllm-banner[data-served='served']")
    banner.wait_for()
    assert "Answering: quick" in banner.inner_text()
    assert "bag-of-words baseline" in banner.inner_text()
    page.get_by_role("tab", name="Runs").click()
    page.locator(":text-is('★ served'):visible").first.wait_for()
    page.wait_for_timeout(1500)  # the table's loading shade fades
    page.screenshot(path=str(ARTIFACTS / "08-served-banner-runs-table.png"), full_page=True)
    assert page.locator(":text-is('quick'):visible").count() >= 1


def test_batch_coding_a_file_gives_a_table_and_downloads(page, tmp_path):
    notes = tmp_path / "clinic-visits.csv"
    notes.write_text(
        "visit,farm,note\n1,Green,Cow high fever drop in milk swollen udder\n"
        f'2,Hill,"{NOTE}"\n3,Hill,\n',
        encoding="utf-8",
    )
    page.get_by_role("tab", name="Code a file").click()
    page.locator("#batch-upload input[type=file]").set_input_files(str(notes))
    page.get_by_text("3 notes").first.wait_for()
    page.get_by_role("button", name="Code the file").click()
    page.get_by_text("Coded 2 of 3 notes").wait_for(timeout=120_000)
    page.get_by_role("button", name="Download coded CSV (formula-safe)").wait_for()
    page.wait_for_timeout(1500)  # the table's loading shade fades
    page.screenshot(path=str(ARTIFACTS / "09-batch-coding.png"), full_page=True)
    page.locator(":text('not predicted: empty note'):visible").first.wait_for()
    assert page.get_by_role("button", name="Download coded JSONL").count() == 1


def test_an_empty_note_clears_the_previous_answer(page):
    page.get_by_role("tab", name="Predict & evaluate").click()
    note, raw = page.get_by_label("Clinical note"), page.get_by_label("Raw model output")
    note.fill(NOTE)
    page.get_by_role("button", name="Predict codes").click()
    page.wait_for_function("el => el.value.length > 0", arg=raw.element_handle(), timeout=60_000)
    note.fill("   ")
    page.get_by_role("button", name="Predict codes").click()
    page.locator(".toast-body.error").first.wait_for()
    assert raw.input_value() == ""


def test_uploading_an_evaluation_file_selects_it(page, tmp_path):
    data = tmp_path / "my-val.jsonl"
    data.write_text('{"input": "Cow, high fever, drop in milk", "snomed_codes": ["72934000"]}\n')
    page.get_by_role("tab", name="Predict & evaluate").click()
    page.locator("#eval-upload input[type=file]").set_input_files(str(data))
    radio = page.get_by_label("Upload a file").last
    page.wait_for_function("el => el.checked", arg=radio.element_handle(), timeout=15_000)


def test_choosing_bundled_examples_again_drops_the_upload(page, tmp_path):
    from vetllm.data.synth import generate_records
    from vetllm.data.writing import write_records

    data = tmp_path / "my-train.json"
    write_records(generate_records(300, seed=4), data)
    page.get_by_role("tab", name="Train").click()
    page.locator("input[type=file]").first.set_input_files(str(data))
    page.get_by_text("Data: my-train.json").wait_for()
    page.get_by_label("Bundled examples").check()
    page.get_by_text("Data: bundled examples").wait_for()


@pytest.fixture(scope="module")
def first_launch_page(tmp_path_factory, app_launcher, page):
    """An app whose first model is still training (a run held 'running' by this process)."""
    if not CHROMIUM.exists():
        pytest.skip("/usr/bin/chromium is not installed (apt-get install chromium)")
    import os

    from vetllm.runs.directory import RunDirectory, process_start_time
    from vetllm.runs.serving import note_pending_default
    from vetllm.ui.settings import AppSettings

    runs = tmp_path_factory.mktemp("first-launch-runs")
    run = RunDirectory(runs / "cpu-default-20260101-000000")
    run.reset_status("running", step=240, total_steps=900, progress=0.27, eta_s=95,
                     elapsed_s=35, created_at="2026-01-01T00:00:00Z", pid=os.getpid(),
                     pid_start=process_start_time(os.getpid()))  # fmt: skip
    note_pending_default(runs, run.name)
    (run.path / "config.yaml").write_text(
        (Path(__file__).resolve().parents[1] / "configs" / "tiny-cpu.yaml").read_text()
    )
    _, url = app_launcher(AppSettings(runs_dir=runs, bootstrap=False, poll_seconds=1.0))
    # A second page of the module's browser: one sync playwright per thread.
    second = page.context.browser.new_page(viewport={"width": 1300, "height": 900})
    second.set_default_timeout(60_000)
    second.goto(url)
    yield second
    second.close()


def test_the_first_launch_banner_shows_on_every_tab(first_launch_page):
    page = first_launch_page
    banner = page.locator(".vetllm-banner[data-served='none']")
    banner.get_by_text("Training the first model").wait_for()
    assert "step 240 of 900" in banner.inner_text() and "ready in ~95 s" in banner.inner_text()
    page.get_by_role("tab", name="Predict & evaluate").click()
    assert banner.is_visible()
    page.screenshot(path=str(ARTIFACTS / "10-first-launch-banner.png"), full_page=False)
