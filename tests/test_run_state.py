"""RunState and RunStatus: the typed status keeps status.json's strings and reads old files."""

from __future__ import annotations

import json

import pytest

from vetllm.runs.directory import RunDirectory
from vetllm.runs.state import (
    ACTIVE_STATES,
    FINAL_STATES,
    RUN_STATES,
    UNFINISHED_STATES,
    RunState,
    RunStatus,
)

# A status.json as an older version wrote it: no pid_start, no eta_s, a key no code reads
# any more, and a final state.
OLD_STATUS = {
    "state": "completed",
    "step": 24,
    "total_steps": 24,
    "progress": 1.0,
    "message": "completed",
    "error": None,
    "final_metrics": {"lenient_accuracy": 0.8, "n": 20},
    "legacy_field": [1, 2],
    "updated_at": "2025-01-01T00:00:00Z",
}


def test_states_are_the_strings_status_json_holds():
    assert [state.value for state in RunState] == [
        "queued", "running", "stopping", "completed", "failed", "stopped", "interrupted",
        "unknown",
    ]  # fmt: skip
    assert RunState.RUNNING == "running" and str(RunState.FAILED) == "failed"
    assert f"{RunState.STOPPED}" == "stopped"
    assert json.dumps({"state": RunState.QUEUED}) == '{"state": "queued"}'
    assert "running" in ACTIVE_STATES  # a state read from JSON is found in the sets


def test_active_and_final_states_split_the_writable_ones():
    assert RunState.UNKNOWN not in RUN_STATES
    assert ACTIVE_STATES | FINAL_STATES == set(RUN_STATES)
    assert not ACTIVE_STATES & FINAL_STATES
    assert UNFINISHED_STATES < FINAL_STATES
    assert RunState.STOPPING.active and RunState.INTERRUPTED.final
    assert not RunState.UNKNOWN.active and not RunState.UNKNOWN.final


@pytest.mark.parametrize("value", [None, "exploded", 3, ""])
def test_anything_else_parses_as_unknown(value):
    assert RunState.parse(value) is RunState.UNKNOWN


def test_an_old_status_loads_typed_and_round_trips_unchanged():
    status = RunStatus.from_dict(OLD_STATUS)
    assert status.state is RunState.COMPLETED and status.final and not status.active
    assert (status.step, status.total_steps, status.progress) == (24, 24, 1.0)
    assert status.final_metrics["lenient_accuracy"] == 0.8
    assert status.pid is None and status.pid_start is None and status.eta_s is None
    assert status.raw["legacy_field"] == [1, 2]
    assert status.to_dict() == OLD_STATUS
    assert list(status.to_dict()) == list(OLD_STATUS)  # key order kept too


def test_missing_odd_and_unknown_fields_read_as_none_or_unknown():
    assert RunStatus.from_dict({}).state is RunState.UNKNOWN
    odd = RunStatus.from_dict({"state": "exploded", "step": "7", "pid": True, "epoch": 2})
    assert odd.state is RunState.UNKNOWN
    assert odd.step is None and odd.pid is None  # wrong types are not trusted...
    assert odd.epoch == 2  # (a whole number is a fine float)
    assert odd.to_dict()["step"] == "7"  # ...but kept as they were
    assert odd.to_dict()["state"] == "exploded"  # an unknown state too (UNKNOWN in code)
    assert RunStatus.from_dict({}).to_dict() == {"state": "unknown"}


def test_a_state_this_version_does_not_know_is_shown_as_written(tmp_path, capsys):
    from vetllm.cli import main

    run = RunDirectory(tmp_path / "runs" / "r1")
    run.path.mkdir(parents=True)
    run.config_path.write_text("name: r1\n")
    run.status_path.write_text(json.dumps({"state": "paused", "step": 3}))
    assert run.read_status().state is RunState.UNKNOWN
    assert run.read_status().to_dict() == {"state": "paused", "step": 3}
    assert main(["runs", "status", str(run.path), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["state"] == "paused"
    assert main(["runs", "list", "--runs-dir", str(tmp_path / "runs"), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["state"] == "paused"


def test_merged_sets_fields_as_a_status_write_would():
    status = RunStatus.from_dict({"state": "unknown", "error": "status.json is not valid JSON"})
    running = status.merged(state=RunState.RUNNING, error=None, message="alive")
    assert running.state is RunState.RUNNING and running.active
    assert running.to_dict() == {"state": "running", "error": None, "message": "alive"}
    assert status.state is RunState.UNKNOWN  # frozen: the original is unchanged


def test_writing_an_enum_writes_the_same_file_as_writing_the_string(tmp_path):
    with_enum, with_text = RunDirectory(tmp_path / "a"), RunDirectory(tmp_path / "b")
    with_enum.write_status(RunState.STOPPED, step=3)
    with_text.write_status("stopped", step=3)
    on_disk = [json.loads(run.status_path.read_text()) for run in (with_enum, with_text)]
    on_disk[0].pop("updated_at"), on_disk[1].pop("updated_at")
    assert on_disk[0] == on_disk[1] == {"state": "stopped", "step": 3}
    assert '"state": "stopped"' in with_enum.status_path.read_text()


def test_read_status_of_an_old_run_folder(tmp_path):
    run = RunDirectory(tmp_path / "old-run")
    run.path.mkdir()
    run.status_path.write_text(json.dumps(OLD_STATUS))
    status = run.read_status()
    assert isinstance(status, RunStatus) and status.state == RunState.COMPLETED
    assert status.to_dict() == OLD_STATUS
    run.write_status(message="re-read")  # a later write keeps every old key
    assert json.loads(run.status_path.read_text())["legacy_field"] == [1, 2]
