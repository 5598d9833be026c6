"""The seed ensemble: members trained in their own folders, answers by vote, stop and resume."""

import json
import shutil

import pytest

from vetllm.config import load_config
from vetllm.data.synth import write_synthetic_dataset
from vetllm.engine.ensemble import member_dirs, vote
from vetllm.engine.export import export_run
from vetllm.engine.members import MemberProcesses
from vetllm.engine.predict import Prediction, Predictor
from vetllm.engine.training import train
from vetllm.errors import VetLLMError
from vetllm.postprocess import postprocess
from vetllm.runs.directory import RunDirectory
from vetllm.sharing import archive_run


def answer(codes, confidence=None, confidences=None, alternatives=()):
    raw = "Diagnosed conditions: " + ", ".join(codes)
    confidences = confidences if confidences is not None else {c: 0.5 for c in codes}
    return Prediction(
        raw, postprocess(raw), confidences, "free", list(alternatives), [], confidence
    )


def test_the_answer_most_models_give_wins_with_their_mean_confidence():
    notes = vote(
        [
            [answer(["1679004"], confidences={"1679004": 0.9})],
            [answer(["2260006"], confidences={"2260006": 0.95})],
            [answer(["1679004"], confidences={"1679004": 0.6})],
        ]
    )
    (chosen,) = notes
    assert chosen.result.codes == ["1679004"]
    # free decoding: each model's confidence is its codes' product; the other model counts 0
    assert chosen.confidence == pytest.approx((0.9 + 0.6) / 3)
    assert chosen.confidences == {"1679004": pytest.approx((0.9 + 0.6) / 3)}
    assert chosen.warnings == ["the models disagree: 2 of 3 gave this answer"]


def test_a_tie_goes_to_the_larger_summed_confidence_and_agreement_warns_nothing():
    tie = vote([[answer(["1679004"], confidence=0.4)], [answer(["2260006"], confidence=0.7)]])
    assert tie[0].result.codes == ["2260006"] and tie[0].confidence == pytest.approx(0.35)
    same = vote([[answer(["1679004"], confidence=0.8)], [answer(["1679004"], confidence=0.6)]])
    assert same[0].confidence == pytest.approx(0.7) and same[0].warnings == []


def test_code_order_does_not_split_a_vote_and_alternatives_are_averaged():
    first = answer(["1679004", "2260006"], 0.5, alternatives=[("1679004, 2260006", 0.5)])
    second = answer(["2260006", "1679004"], 0.3, alternatives=[("1679004", 0.6)])
    third = answer(["1679004"], 0.9, alternatives=[("1679004", 0.9)])
    chosen = vote([[first], [second], [third]])[0]
    assert sorted(chosen.result.codes) == ["1679004", "2260006"]
    assert chosen.confidence == pytest.approx(0.8 / 3)
    assert chosen.alternatives[0] == ("1679004", pytest.approx(0.5))
    assert chosen.alternatives[1] == ("1679004, 2260006", pytest.approx(0.5 / 3))


def test_ensemble_is_checked_and_kept_to_the_tiny_model():
    with pytest.raises(VetLLMError, match="ensemble: got 0; use 1"):
        load_config("tiny-cpu", ["ensemble=0"])
    with pytest.raises(VetLLMError, match="seed ensembles are for the tiny CPU model"):
        load_config("qwen2.5-7b-qlora", ["ensemble=3"])
    assert load_config("tiny-cpu").ensemble == 3  # the CPU default votes (issue 7)


def test_an_ensemble_refuses_torchrun_with_a_clear_error(monkeypatch, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    others = MemberProcesses(load_config("tiny-cpu"), tmp_path / "run", print)
    with pytest.raises(
        VetLLMError,
        match="without torchrun / accelerate launch, or set ensemble: 1 .and bag_of_words_vote",
    ):
        others.start()
    assert not (tmp_path / "run" / "members").exists()


def two_small_models(data, *settings):
    """The CPU default as a 2-model ensemble of small models on `data`/{train,val}.json."""
    return load_config(
        "tiny-cpu",
        [
            f"data={data / 'train.json'}",
            f"val_data={data / 'val.json'}",
            "ensemble=2",
            "tiny_hidden_size=32",
            "tiny_intermediate_size=64",
            "tiny_heads=2",
            "tiny_vocab_size=400",
            *settings,
        ],
    )


@pytest.fixture(scope="module")
def ensemble_run(tmp_path_factory):
    """A 2-model ensemble trained for a few steps."""
    folder = tmp_path_factory.mktemp("ens")
    write_synthetic_dataset(folder / "data", n=200, seed=2)
    cfg = two_small_models(folder / "data", "max_steps=12", "eval_steps=6", "synthetic_notes=40")
    status = train(cfg, folder / "run")
    assert status["state"] == "completed"
    return folder / "run"


def test_each_member_is_a_run_of_its_own_listed_on_the_run_card(ensemble_run):
    card = json.loads((ensemble_run / "model" / "run_card.json").read_text())
    (member,) = card["ensemble"]["members"]
    assert member["seed"] == 1000 and member["folder"] == "members/seed-1000"
    assert member["served"]["step"] in (6, 12)
    assert card["ensemble"]["summary"] in card["served"]["summary"]
    assert "vote of 2 models" in card["ensemble"]["summary"]
    member_run = RunDirectory(ensemble_run / "members" / "seed-1000")
    assert member_run.read_status().state == "completed"
    assert load_config(member_run.config_path).seed == 1000
    assert load_config(member_run.config_path).ensemble == 1
    assert not load_config(member_run.config_path).bag_of_words_vote
    assert not (member_run.model_dir / "bag_of_words.json").exists()
    assert "vote of 2 models" in (ensemble_run / "report.md").read_text()


def test_the_served_answers_are_the_vote_of_both_models_and_the_bag_of_words(ensemble_run):
    predictor = Predictor.from_run(ensemble_run)
    assert len(predictor.members) == 1 and predictor.bag_of_words is not None
    card = json.loads((ensemble_run / "model" / "run_card.json").read_text())
    assert card["bag_of_words_vote"]["file"] == "bag_of_words.json"
    assert "the tuned bag of words votes too" in card["served"]["summary"]
    notes = json.loads((ensemble_run.parent / "data" / "val.json").read_text())[:12]
    notes = [row["input"] for row in notes]
    for decoding in ("free", "constrained"):
        served = predictor.predict(notes, decoding)
        alone = [
            Predictor._one_model(path, None)[0].predict(notes, decoding)
            for path in (ensemble_run, *member_dirs(ensemble_run))
        ]
        voter = predictor._voter_answers(notes, decoding)
        for answer_, ranked in zip(voter, predictor.bag_of_words.ranked(notes), strict=True):
            assert tuple(answer_.result.codes) == ranked[0][0]
            assert answer_.confidence == ranked[0][1] and answer_.decoding == decoding
        expected = vote([*alone, voter])
        assert [p.raw_output for p in served] == [p.raw_output for p in expected]


def test_export_and_archive_carry_every_model(ensemble_run, tmp_path):
    result = export_run(ensemble_run, tmp_path / "out")
    assert "members" in result["files"] and "ensemble of 2 models" in result["note"]
    assert (tmp_path / "out" / "members" / "seed-1000" / "model.safetensors").is_file()
    names = set(
        __import__("zipfile").ZipFile(archive_run(ensemble_run, tmp_path / "a.zip")).namelist()
    )
    assert "run/members/seed-1000/model/model.safetensors" in names
    assert "run/members/seed-1000/config.yaml" in names
    assert "run/model/bag_of_words.json" in names and "bag_of_words.json" in result["files"]
    assert not any("checkpoint" in name for name in names)


def test_a_missing_member_says_how_to_get_it_back_and_resume_retrains_it(ensemble_run, tmp_path):
    copy = tmp_path / "run"
    shutil.copytree(ensemble_run, copy)
    shutil.rmtree(copy / "members")
    with pytest.raises(VetLLMError, match="members/seed-1000 missing; resume the run"):
        Predictor.from_run(copy)
    status = train(load_config(copy / "config.yaml"), copy, resume=True)
    assert status["state"] == "completed"
    assert len(Predictor.from_run(copy).members) == 1


def test_a_stop_flag_in_the_run_folder_stops_the_member_in_training(tmp_path):
    member = RunDirectory(tmp_path / "run" / "members" / "seed-1000")
    member.path.mkdir(parents=True)
    assert not member.stop_requested()
    RunDirectory(tmp_path / "run").request_stop()
    assert member.stop_requested()


def test_stopping_while_a_member_trains_stops_the_run_and_resume_finishes_it(tmp_path, monkeypatch):
    write_synthetic_dataset(tmp_path / "data", n=120, seed=3)
    cfg = two_small_models(
        tmp_path / "data", "max_steps=6", "eval_steps=null", "synthetic_notes=0", "final_eval=false"
    )
    run = RunDirectory(tmp_path / "run")
    real_start = MemberProcesses.start

    def start_then_stop(self):  # the user presses Stop as the models start
        real_start(self)
        run.request_stop()

    monkeypatch.setattr(MemberProcesses, "start", start_then_stop)
    assert train(cfg, run.path)["state"] == "stopped"
    assert not (run.path / "members" / "seed-1000" / "model").exists()
    monkeypatch.setattr(MemberProcesses, "start", real_start)
    assert train(cfg, run.path, resume=True)["state"] == "completed"
    assert len(Predictor.from_run(run.path).members) == 1


def test_a_member_whose_training_process_is_killed_gets_a_stop_flag(tmp_path):
    import os
    import signal
    import subprocess
    import sys
    import time

    child = (
        "import pathlib, sys, time; from vetllm.engine.member_process import stop_when_orphaned; "
        "stop_when_orphaned(sys.argv[1]); pathlib.Path(sys.argv[1], 'watching').touch(); "
        "time.sleep(30)"
    )
    parent = (
        "import subprocess, sys, time; "
        f"p = subprocess.Popen([sys.executable, '-c', {child!r}, sys.argv[1]]); "
        "print(p.pid, flush=True); time.sleep(60)"
    )
    folder = tmp_path / "members" / "seed-1000"
    folder.mkdir(parents=True)
    trainer = subprocess.Popen(
        [sys.executable, "-c", parent, str(folder)], stdout=subprocess.PIPE, text=True
    )
    member_pid = int(trainer.stdout.readline())
    try:
        deadline = time.monotonic() + 30
        while not (folder / "watching").exists() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert not RunDirectory(folder).stop_requested()
        trainer.kill()  # kill -9 of the training process
        trainer.wait()
        deadline = time.monotonic() + 10
        while not RunDirectory(folder).stop_requested() and time.monotonic() < deadline:
            time.sleep(0.2)
        assert RunDirectory(folder).stop_requested()
    finally:
        os.kill(member_pid, signal.SIGKILL)
