"""report_to: experiment tracking passes through to the Trainer, off by default, checked early."""

from __future__ import annotations

import importlib.util
import types

import pytest

from vetllm.config import TrainConfig
from vetllm.config_checks import tracker_names
from vetllm.engine import environment
from vetllm.engine.training import train, training_arguments
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory


def test_tracking_is_off_by_default(tmp_path):
    cfg = TrainConfig()
    assert cfg.report_to == "none" and tracker_names(cfg.report_to) == []
    args = training_arguments(cfg, RunDirectory(tmp_path), has_eval=False)
    assert args.report_to in ([], ["none"], "none")


def test_trackers_pass_through_to_the_trainer(tmp_path):
    cfg = TrainConfig(report_to="tensorboard, wandb")
    args = training_arguments(cfg, RunDirectory(tmp_path), has_eval=False)
    assert args.report_to == ["tensorboard", "wandb"]


def test_unknown_tracker_is_a_config_problem():
    with pytest.raises(VetLLMError, match="report_to: got 'mlflow'; use none or any of"):
        TrainConfig(report_to="mlflow")


def test_missing_tracker_fails_before_training_with_the_install_command(monkeypatch, tmp_path):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        environment.importlib.util,
        "find_spec",
        lambda name, *a: None if name in ("wandb", "trackio") else real(name, *a),
    )
    with pytest.raises(VetLLMError, match=r"wandb is not installed.*pip install wandb"):
        environment.check_trackers(TrainConfig(report_to="wandb"))
    run = RunDirectory(tmp_path / "run")
    with pytest.raises(VetLLMError, match="pip install trackio"):
        train(TrainConfig(report_to="trackio", data="nothere.json"), run.path)
    status = run.read_status()  # failed on the tracker, before the (missing) data was read
    assert status.state == "failed" and "pip install trackio" in status.error


def test_installed_tracker_is_accepted(monkeypatch):
    real = importlib.util.find_spec
    fake = types.SimpleNamespace(name="tensorboard")
    monkeypatch.setattr(
        environment.importlib.util,
        "find_spec",
        lambda name, *a: fake if name == "tensorboard" else real(name, *a),
    )
    assert environment.check_trackers(TrainConfig(report_to="tensorboard")) == ["tensorboard"]
