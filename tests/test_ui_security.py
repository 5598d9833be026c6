"""Attacks on a launched app (RELIABILITY.md): bad notes, hidden events, uploads, logs.

Apps are launched as a hosted Space would be (settings.hosted, bound to 127.0.0.1 here) on the
session's tiny trained run. Hidden (private) events are still reachable by anyone who posts their
fn_index to /gradio_api/queue/join, exactly as the page does, so the admin-only handlers must
refuse without the password; these tests call them that way. Nothing here may start training.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[1]
PASSWORD = "correct horse battery staple"
UPLOAD_LIMIT = 4096  # bytes; small so an over-limit upload is cheap
MARKER = "Zebu-7f3c heifer, secret clinical marker"  # must never reach a log
# What an error must never show: tracebacks, server paths, the admin password itself.
INTERNAL = ("Traceback", 'File "', "/tmp/", "/work/", "site-packages", PASSWORD)


def _settings(quick_run: Path, **mode):
    from vetllm.ui.settings import AppSettings

    return AppSettings(
        runs_dir=quick_run.parent, bootstrap=False, max_upload_bytes=UPLOAD_LIMIT, **mode
    )


@pytest.fixture(scope="module")
def hosted_open(quick_run, app_launcher):
    """Hosted, no admin password: admin actions are disabled."""
    _, url = app_launcher(_settings(quick_run, hosted=True))
    return url


@pytest.fixture(scope="module")
def hosted_locked(quick_run, app_launcher):
    """Hosted with an admin password."""
    _, url = app_launcher(_settings(quick_run, hosted=True, admin_password=PASSWORD))
    return url


def fn_index(url: str, api_name: str) -> int:
    deps = httpx.get(url + "config", timeout=10).json()["dependencies"]
    return next(i for i, dep in enumerate(deps) if dep.get("api_name") == api_name)


def call_event(url: str, api_name: str, data: list, session: str) -> dict:
    """Post an event by fn_index as the browser does; the final queue message."""
    body = {"data": data, "fn_index": fn_index(url, api_name), "session_hash": session}
    joined = httpx.post(url + "gradio_api/queue/join", json=body, timeout=10)
    assert joined.status_code == 200, joined.text
    return _completion(url, session)


def _completion(url: str, session: str) -> dict:
    stream_url = url + f"gradio_api/queue/data?session_hash={session}"
    with httpx.stream("GET", stream_url, timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("the queue stream ended without a result")


def assert_nothing_internal(text: str) -> None:
    for fragment in INTERNAL:
        assert fragment not in text, f"{fragment!r} leaked: {text[:300]}"


# -- (1) the public predict endpoint ------------------------------------------------------------
@pytest.mark.parametrize(
    "bad, message",
    [
        ("", "empty"),
        ("\u200b\u202e\ufeff \u2066", "empty"),  # only invisible characters
        ("\x00\x00", "empty"),
        ("a" * 1_000_000, "longer than the limit"),
        (None, "no text"),
        (3.5, r"expected text, got a number \(3.5\)"),
        (["cow", "fever"], "expected text, got a list"),
        ({"note": "cow fever"}, "expected text, got an object"),
    ],
)
def test_predict_rejects_bad_notes_clearly(hosted_open, bad, message):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match=message) as caught:
        Client(hosted_open, verbose=False).predict(bad, api_name="/predict")
    assert_nothing_internal(str(caught.value))


def test_predict_treats_markup_and_invisible_characters_as_plain_text(hosted_open):
    from gradio_client import Client

    client = Client(hosted_open, verbose=False)
    plain = client.predict("goat fever sores on lips", "constrained", api_name="/predict")
    hidden = client.predict(
        "\u200bgoat\u202e fever\u2066 sores on\ufeff lips", "constrained", api_name="/predict"
    )
    # invisible characters are removed as they are from training notes: the same answer
    assert [c["code"] for c in hidden["codes"]] == [c["code"] for c in plain["codes"]]
    script = client.predict("<script>alert(1)</script> cow fever", api_name="/predict")
    assert set(script) >= {"codes", "raw_output", "repairs"}
    assert "<script>" not in json.dumps(script)  # the note is never echoed back


def test_a_lone_surrogate_gets_a_clear_message_not_a_server_error(hosted_open):
    session = "surrogate"
    body = b'{"data": ["cow \\udcff fever", "free", ""], "fn_index": %d, "session_hash": "%s"}' % (
        fn_index(hosted_open, "predict"),
        session.encode(),
    )
    joined = httpx.post(
        hosted_open + "gradio_api/queue/join",
        content=body,
        headers={"content-type": "application/json"},
        timeout=10,
    )
    assert joined.status_code == 200
    message = _completion(hosted_open, session)
    assert message["success"] is False
    assert "surrogate" in message["output"]["error"]
    assert_nothing_internal(json.dumps(message))


def test_bad_decoding_names_the_field(hosted_open):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    with pytest.raises(AppError, match="decoding") as caught:
        Client(hosted_open, verbose=False).predict("cow fever", "greedy", api_name="/predict")
    assert_nothing_internal(str(caught.value))


def test_uploaded_species_cannot_inject_html_or_remote_images_into_the_statistics(tmp_path):
    from vetllm.ui.settings import AppSettings
    from vetllm.ui.train_handlers import UPLOAD_CHOICE, TrainHandlers

    species = ["<img src=x onerror=alert(1)>", "![px](http://evil.example/p.png)", "goat"]
    rows = [
        {"input": f"note {i}: fever and sores", "snomed_codes": ["1679004"], "animal": kind}
        for i, kind in enumerate(species * 2)
    ]
    upload = tmp_path / "data.json"
    upload.write_text(json.dumps(rows), encoding="utf-8")
    handlers = TrainHandlers(AppSettings(runs_dir=tmp_path / "runs", bootstrap=False))
    stats_md = handlers.check_data(UPLOAD_CHOICE, str(upload), False)[2]
    assert "Species" in stats_md or "species" in stats_md
    assert "<img" not in stats_md and "&lt;img" in stats_md
    assert not re.search(r"(?<!\\)\]\(", stats_md) and "![" not in stats_md  # no link/image
    assert "!\\[px\\](http://evil.example/p.png)" in stats_md  # shown as text


# -- (2) hidden endpoints when hosted -----------------------------------------------------------
@pytest.mark.parametrize("app", ["hosted_open", "hosted_locked"])
def test_hosted_apps_document_only_predict(app, request):
    from gradio_client import Client

    url = request.getfixturevalue(app)
    info = httpx.get(url + "gradio_api/info", timeout=10).json()
    assert sorted(info["named_endpoints"]) == ["/predict"]
    assert info.get("unnamed_endpoints", {}) == {}
    client = Client(url, verbose=False)
    for name in ("/launch", "/stop", "/resume", "/evaluate", "/evaluate_in_page"):
        with pytest.raises(Exception, match="api_name|endpoint|Cannot find"):
            client.predict("x", api_name=name)


@pytest.mark.parametrize(
    "host, public",
    [(None, False), ("127.0.0.1", False), ("localhost", False), ("::1", False),
     ("0.0.0.0", True), ("192.168.1.20", True), ("::", True), ("myhost.example", True)],
)  # fmt: skip
def test_binding_to_the_network_needs_the_admin_password_like_sharing(host, public, tmp_path,
                                                                      monkeypatch):  # fmt: skip
    from vetllm.ui.settings import AppSettings

    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.delenv("VETLLM_ADMIN_PASSWORD", raising=False)
    settings = AppSettings.from_env(tmp_path, host=host)
    assert settings.public is public
    assert settings.admin_actions_available is (not public)


def test_app_py_passes_the_host_to_the_access_rules(tmp_path, monkeypatch):
    import importlib.util

    spec = importlib.util.spec_from_file_location("app_main", REPO / "app.py")
    app_main = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(app_main)
    seen = {}
    monkeypatch.delenv("SPACE_ID", raising=False)
    monkeypatch.setattr(app_main, "build_app", lambda settings: settings)
    monkeypatch.setattr(app_main, "launch_app", lambda s, *a, **k: seen.update(settings=s, **k))
    app_main.main(["--host", "0.0.0.0", "--runs-dir", str(tmp_path), "--no-bootstrap"])
    assert seen["settings"].public and seen["host"] == "0.0.0.0"
    with pytest.raises(Exception, match="disabled"):
        seen["settings"].require_admin("anything", "launching training")


def _launch_inputs(password: str) -> list:
    from vetllm.ui.train_handlers import DEFAULT_PRESET, HYPERPARAMETERS, preset_config

    cfg = preset_config(DEFAULT_PRESET)
    values = [getattr(cfg, key) for key in HYPERPARAMETERS]
    return [DEFAULT_PRESET, None, "attack", password, *values]


@pytest.mark.parametrize(
    "app, password, refusal",
    [
        ("hosted_open", PASSWORD, "disabled"),  # no password configured: even a guess fails
        ("hosted_locked", "", "needs the admin password"),
        ("hosted_locked", "guess", "needs the admin password"),
    ],
)
def test_admin_events_refuse_anonymous_fn_index_calls(app, password, refusal, request, quick_run):
    url = request.getfixturevalue(app)
    runs_before = sorted(p.name for p in quick_run.parent.iterdir())
    session = f"{app}-{len(password)}"
    for refresh in ("refresh_runs", "refresh_models"):  # fill the run lists as a page load does
        call_event(url, refresh, [None], session)
    calls = {
        "launch": _launch_inputs(password),
        "stop": [quick_run.name, password],
        "resume": [quick_run.name, password],
        "evaluate_in_page": [quick_run.name, "Bundled validation set", None, "free", password],
    }
    for api_name, data in calls.items():
        message = call_event(url, api_name, data, session)
        assert message["success"] is False, api_name
        error = message["output"]["error"] or ""
        assert refusal in error, (api_name, error)
        assert_nothing_internal(error)
    assert sorted(p.name for p in quick_run.parent.iterdir()) == runs_before  # nothing started
    assert not (quick_run / "STOP").exists()


def test_an_anonymous_coverage_plan_for_a_million_epochs_stays_small_and_fast(hosted_open):
    session = "huge-plan"
    call_event(hosted_open, "lambda", [], session)  # the page load: checks the bundled data
    started = time.perf_counter()
    message = call_event(hosted_open, "plan", [None, 1, 1, 1_000_000, False], session)
    elapsed = time.perf_counter() - started
    assert message["success"] is True
    plan_md, figure = message["output"]["data"]
    assert "1.4e+06" in plan_md  # 1,344 samples x 1e6 epochs over 961 distinct notes
    bars = json.loads(figure["plot"])["data"][0]["x"]
    assert len(bars) == 100  # was one bar per epoch: 8 s and a 37 MB answer
    assert elapsed < 5.0


# -- (3) uploads ------------------------------------------------------------------------------
def test_uploads_over_the_limit_are_refused(hosted_open):
    big = b"[" + b" " * UPLOAD_LIMIT + b"]"
    answer = httpx.post(
        hosted_open + "gradio_api/upload", files={"files": ("big.json", big)}, timeout=10
    )
    assert answer.status_code == 413


def test_an_upload_is_deleted_once_checked_and_no_longer_served(hosted_open):
    rows = [{"input": f"goat {i} fever and sores", "snomed_codes": ["1679004"]} for i in range(4)]
    answer = httpx.post(
        hosted_open + "gradio_api/upload",
        files={"files": ("data.json", json.dumps(rows).encode())},
        timeout=10,
    )
    uploaded = answer.json()[0]
    assert Path(uploaded).is_file()
    assert httpx.get(hosted_open + "gradio_api/file=" + uploaded, timeout=10).status_code == 200
    file_data = {"path": uploaded, "orig_name": "data.json", "meta": {"_type": "gradio.FileData"}}
    message = call_event(hosted_open, "check_data", ["Upload a file", file_data, False], "up")
    assert message["success"] is True
    assert not Path(uploaded).exists()
    assert httpx.get(hosted_open + "gradio_api/file=" + uploaded, timeout=10).status_code != 200


def test_a_refused_evaluation_still_deletes_its_upload(hosted_locked, quick_run):
    rows = [{"input": "goat fever and sores", "snomed_codes": ["1679004"]}]
    answer = httpx.post(
        hosted_locked + "gradio_api/upload",
        files={"files": ("val.json", json.dumps(rows).encode())},
        timeout=10,
    )
    uploaded = answer.json()[0]
    file_data = {"path": uploaded, "orig_name": "val.json", "meta": {"_type": "gradio.FileData"}}
    session = "refused-eval"
    call_event(hosted_locked, "refresh_models", [None], session)
    data = [quick_run.name, "Upload a file", file_data, "free", "wrong password"]
    message = call_event(hosted_locked, "evaluate_in_page", data, session)
    assert "needs the admin password" in message["output"]["error"]
    assert not Path(uploaded).exists()


def test_server_files_cannot_be_read_or_deleted_through_a_file_payload(
    hosted_open, quick_run, tmp_path
):
    victim = tmp_path / "victim.json"
    victim.write_text("[]", encoding="utf-8")
    for path in (victim, quick_run / "config.yaml"):
        served = httpx.get(hosted_open + f"gradio_api/file={path}", timeout=10)
        assert served.status_code == 403
        file_data = {"path": str(path), "orig_name": "x.json", "meta": {"_type": "gradio.FileData"}}
        message = call_event(hosted_open, "check_data", ["Upload a file", file_data, False], "arb")
        assert message["success"] is False
        assert path.is_file()  # gradio refused it before the handler could discard it


def test_download_copies_do_not_pile_up(tmp_path, monkeypatch):
    from vetllm.ui import guards

    monkeypatch.setattr(guards, "_TEMP_FOLDER", tmp_path / "downloads")
    (tmp_path / "downloads").mkdir()
    first = Path(guards.write_temp_file("note,code\n", "predictions.csv"))
    old = time.time() - guards.TEMP_FILE_TTL_S - 1
    os.utime(first, (old, old))
    second = Path(guards.write_temp_file("note,code\n", "predictions.csv"))
    assert second.read_text(encoding="utf-8") == "note,code\n"
    assert not first.exists() and not first.parent.exists()


# -- (4) notes stay out of the logs -------------------------------------------------------------
def test_note_text_is_never_logged(hosted_open, capfd, caplog):
    from gradio_client import Client
    from gradio_client.exceptions import AppError

    caplog.set_level("DEBUG")
    client = Client(hosted_open, verbose=False)
    client.predict(MARKER, api_name="/predict")
    with pytest.raises(AppError):
        client.predict(MARKER * 200, api_name="/predict")  # too long: an error path
    with pytest.raises(AppError):
        client.predict(MARKER, "greedy", api_name="/predict")
    out, err = capfd.readouterr()
    assert "Zebu-7f3c" not in out + err
    assert "Zebu-7f3c" not in caplog.text
