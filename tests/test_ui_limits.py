"""What one anonymous client can make the app do (issue 11): password guessing (item 8), CPU of
data checks (item 1), unchecked uploads (item 9) and traceback frames in a poll (item 13).

Handlers are called directly with fakes and a fake clock; no app is launched.
"""

from __future__ import annotations

import os
import threading
import time

import gradio as gr
import pytest

from vetllm.data.synth import generate_records
from vetllm.data.writing import write_records
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory
from vetllm.ui import guards, throttle
from vetllm.ui.guards import UPLOAD_CHOICE
from vetllm.ui.settings import AppSettings
from vetllm.ui.throttle import PasswordThrottle
from vetllm.ui.train_handlers import TrainHandlers

PASSWORD = "correct horse battery staple"
NO_GPU = {"cuda": False, "bf16": False, "gpu_name": None, "gpu_memory_gb": None,
          "bitsandbytes": False}  # fmt: skip


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _hosted(tmp_path, clock, **kw) -> AppSettings:
    return AppSettings(
        runs_dir=tmp_path / "runs", hosted=True, admin_password=PASSWORD,
        password_throttle=PasswordThrottle(clock), **kw,
    )  # fmt: skip


# -- item 8: brute force on the admin password -------------------------------------------------
def test_wrong_passwords_lock_the_client_out_for_a_while_not_forever(tmp_path):
    clock = Clock()
    settings = _hosted(tmp_path, clock)
    for guess in range(throttle.FREE_TRIES):
        with pytest.raises(VetLLMError, match="is wrong"):
            settings.require_admin(f"guess{guess}", "launching training", client="1.2.3.4")
    with pytest.raises(VetLLMError, match="too many wrong passwords"):
        settings.require_admin(PASSWORD, "launching training", client="1.2.3.4")  # not compared
    settings.require_admin(PASSWORD, "launching training", client="5.6.7.8")  # others unaffected
    clock.now += throttle.FIRST_LOCKOUT_S + 1
    settings.require_admin(PASSWORD, "launching training", client="1.2.3.4")  # expired


def test_lockouts_grow_but_stay_capped(tmp_path):
    clock = Clock()
    guard = PasswordThrottle(clock)
    for _ in range(40):
        clock.now += throttle.MAX_LOCKOUT_S + 1  # wait out every lockout, then guess again
        guard.check_allowed("attacker")
        guard.record("attacker", False)
    with pytest.raises(VetLLMError):
        guard.check_allowed("attacker")
    clock.now += throttle.MAX_LOCKOUT_S + 1
    guard.check_allowed("attacker")  # never longer than the cap


def test_a_burst_of_wrong_passwords_from_many_addresses_locks_everyone_briefly(tmp_path):
    clock = Clock()
    settings = _hosted(tmp_path, clock)
    for address in range(throttle.GLOBAL_LIMIT + 1):
        with pytest.raises(VetLLMError, match="is wrong"):
            settings.require_admin("guess", "stopping training", client=f"10.0.0.{address}")
    with pytest.raises(VetLLMError, match="too many wrong passwords"):
        settings.require_admin(PASSWORD, "stopping training", client="owner")
    clock.now += throttle.GLOBAL_LOCKOUT_S + 1
    settings.require_admin(PASSWORD, "stopping training", client="owner")


def test_an_empty_password_is_not_counted_as_a_guess(tmp_path):
    settings = _hosted(tmp_path, Clock())
    for _ in range(throttle.FREE_TRIES * 2):
        with pytest.raises(VetLLMError, match="is wrong"):
            settings.require_admin("", "launching training", client="me")
    settings.require_admin(PASSWORD, "launching training", client="me")


# -- item 1: one check per client, with a time budget ------------------------------------------
def test_a_second_call_from_the_same_client_is_refused_while_the_first_runs():
    started, release = threading.Event(), threading.Event()

    @guards.one_per_client("checking data")
    def slow_check():
        started.set()
        release.wait(10)
        return "done"

    results = []
    worker = threading.Thread(target=lambda: results.append(slow_check()))
    worker.start()
    assert started.wait(10)
    with pytest.raises(VetLLMError, match="previous one is still running"):
        slow_check()
    release.set()
    worker.join(10)
    assert results == ["done"]
    started.clear()
    release.set()
    assert slow_check() == "done"  # free again once the first has answered


def test_an_uploaded_check_stops_at_the_time_budget(tmp_path):
    upload = tmp_path / "upload" / "mine.json"
    write_records(generate_records(n=400, seed=1), upload)
    handlers = TrainHandlers(AppSettings(runs_dir=tmp_path / "runs", check_budget_s=0.0), NO_GPU)
    out = handlers.check_data(UPLOAD_CHOICE, str(upload), False)
    assert out[0] is None and "time limit" in out[1]
    assert not upload.exists()  # deleted even when the check was cut short


# -- item 9: uploads nobody checked -------------------------------------------------------------
def test_uploads_nobody_checked_are_swept_and_fresh_ones_kept(tmp_path):
    old, fresh = tmp_path / "old.json", tmp_path / "fresh.json"
    for path in (old, fresh):
        path.write_text("[]")
    an_hour_ago = time.time() - 3600
    os.utime(old, (an_hour_ago, an_hour_ago))
    with gr.Blocks() as demo:
        gr.Markdown("x")
    demo.upload_file_set.update({str(old), str(fresh), str(tmp_path / "gone.json")})
    assert guards.sweep_uploads(demo, max_age_s=120) == 1
    assert not old.exists() and fresh.exists()
    assert demo.upload_file_set == {str(fresh)}


def test_build_app_starts_the_upload_sweeper(tmp_path, monkeypatch):
    from vetllm.ui import app

    started = []
    monkeypatch.setattr(app, "start_upload_sweeper", lambda blocks, age: started.append(age))
    app.build_app(AppSettings(runs_dir=tmp_path / "runs", upload_ttl_s=77.0))
    assert started == [77.0]


# -- item 13: an anonymous poll of a failed run -------------------------------------------------
LOG = """[10:00:00] training failed: RuntimeError: boom
Traceback (most recent call last):
  File "/work/secret/vetllm/engine/training.py", line 120, in _train_and_record
    return _train(cfg, run, resume, log)
           ^^^^^^^^^^^^^^^^^^^^^^^^^^^^^
  File "/work/secret/vetllm/engine/training.py", line 150, in _train
    secret_source_line = compute(token)
RuntimeError: boom
"""


@pytest.mark.parametrize("public", [True, False])
def test_a_poll_of_a_failed_run_hides_traceback_frames_when_public(tmp_path, public):
    runs = tmp_path / "runs"
    run = RunDirectory(runs / "failed-run")
    run.write_status("failed", error="RuntimeError: boom", remedy="see train.log")
    run.config_path.write_text("name: x\n")
    run.log_path.write_text(LOG)
    settings = AppSettings(runs_dir=runs, hosted=public)
    failure = TrainHandlers(settings, NO_GPU).poll("failed-run")[1]
    assert "RuntimeError: boom" in failure
    hidden = ("secret_source_line" not in failure) and ('File "' not in failure)
    assert hidden is public  # the local owner still sees the whole tail


# -- item 5: 64 concurrent predict clients ------------------------------------------------------
class _SlowPredictor:
    """Stands in for Predictor: records batches, each taking `seconds`, until released."""

    def __init__(self, seconds: float = 0.0):
        self.seconds, self.batches = seconds, []
        self.gate = threading.Event()
        self.gate.set()

    def predict(self, notes, decoding, batch_size=1):
        self.gate.wait(20)
        time.sleep(self.seconds)
        self.batches.append(list(notes))
        return [f"codes for {note}" for note in notes]


def test_a_full_backlog_answers_busy_at_once_instead_of_queueing():
    from vetllm.ui.batching import MicroBatcher, ServerBusy

    predictor = _SlowPredictor()
    predictor.gate.clear()  # the model is busy with a long batch
    batcher = MicroBatcher(max_batch=4, max_wait_s=0.001, max_backlog=6)

    def start(note: str) -> threading.Thread:
        worker = threading.Thread(target=batcher.predict, args=(predictor, note, "free"))
        worker.daemon = True
        worker.start()
        return worker

    def wait_for_backlog(n: int) -> None:
        deadline = time.monotonic() + 10
        while batcher.backlog() != n and time.monotonic() < deadline:
            time.sleep(0.01)
        assert batcher.backlog() == n

    # One note is taken into the running batch first (it then waits on the gate), so that which
    # notes are running and which are waiting does not depend on thread scheduling.
    workers = [start("running")]
    wait_for_backlog(0)
    time.sleep(0.05)  # the worker holds it in predict, not between queue and batch
    workers += [start(f"n{i}") for i in range(6)]
    wait_for_backlog(6)  # the backlog is full
    started = time.monotonic()
    with pytest.raises(ServerBusy, match="busy"):
        batcher.predict(predictor, "one more", "free")
    assert time.monotonic() - started < 5  # answered, not queued (bounded, not a speed goal)
    predictor.gate.set()
    for worker in workers:
        worker.join(20)
    assert sum(len(b) for b in predictor.batches) == 7  # everyone admitted was answered


def test_requests_whose_client_gave_up_are_dropped_not_computed():
    from vetllm.ui.batching import MicroBatcher, ServerBusy

    predictor = _SlowPredictor()
    predictor.gate.clear()
    batcher = MicroBatcher(max_batch=1, max_wait_s=0.001, max_age_s=0.2)
    first = threading.Thread(target=batcher.predict, args=(predictor, "first", "free"))
    first.start()
    errors = []

    def late():
        try:
            batcher.predict(predictor, "abandoned", "free")
        except ServerBusy as error:
            errors.append(error)

    second = threading.Thread(target=late)
    second.start()
    time.sleep(0.5)  # longer than max_age_s: its client's timeout has passed
    predictor.gate.set()
    first.join(20)
    second.join(20)
    assert [b for b in predictor.batches] == [["first"]] and len(errors) == 1


def test_the_app_queue_holds_64_clients_and_predict_runs_them_concurrently():
    settings = AppSettings(runs_dir="runs")
    assert settings.queue_max_size >= 2 * 64 and settings.predict_concurrency >= 64


@pytest.mark.parametrize(
    "peer, forwarded, expected",
    [
        ("93.184.216.34", "", "93.184.216.34"),
        ("93.184.216.34", "1.1.1.1", "93.184.216.34"),  # a direct client cannot pick its address
        ("10.0.0.2", "6.6.6.6, 198.51.100.7", "198.51.100.7"),  # behind a proxy: its entry
    ],
)
def test_the_client_behind_a_proxy_is_the_proxys_last_forwarded_entry(peer, forwarded, expected):
    from types import SimpleNamespace

    from gradio.context import LocalContext

    headers = {"x-forwarded-for": forwarded} if forwarded else {}
    request = SimpleNamespace(client=SimpleNamespace(host=peer), headers=headers)
    token = LocalContext.request.set(request)
    try:
        assert throttle.current_client() == expected
    finally:
        LocalContext.request.reset(token)
