"""`vetllm config show|validate|presets`: the resolved config as YAML, every problem at once."""

from __future__ import annotations

import yaml

from vetllm.cli import main as cli_main
from vetllm.config import load_config


def test_show_prints_the_resolved_preset_with_overrides(capsys, tmp_path):
    assert cli_main(["config", "show", "--config", "tiny-cpu", "--set", "epochs=2"]) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    cfg = load_config("tiny-cpu", ["epochs=2"])
    assert shown == cfg.to_sections()  # sectioned: name, then model, data, lora, ...
    assert shown["optimisation"]["epochs"] == 2.0 and shown["model"]["base_model"] == "tiny"
    saved = tmp_path / "shown.yaml"  # what show prints loads back to the same config
    saved.write_text(yaml.safe_dump(shown), encoding="utf-8")
    assert load_config(saved) == cfg


def test_show_takes_overrides_with_their_section(capsys):
    args = ["config", "show", "--set", "optimisation.learning_rate=1e-3", "--set", "lora_r=4"]
    assert cli_main(args) == 0
    shown = yaml.safe_load(capsys.readouterr().out)
    assert (shown["optimisation"]["learning_rate"], shown["lora"]["lora_r"]) == (1e-3, 4)


def test_validate_names_the_section_of_a_misplaced_key(capsys, tmp_path):
    path = tmp_path / "moved.yaml"
    path.write_text("optimisation:\n  lora_r: 8\n  epochz: 3\nseed: 2\n", encoding="utf-8")
    assert cli_main(["config", "validate", str(path)]) == 2
    err = capsys.readouterr().err
    assert "3 problem(s)" in err
    assert "optimisation.lora_r: lora_r belongs in section lora" in err
    assert "seed: seed belongs in section optimisation" in err
    assert "unknown field(s) optimisation.epochz; did you mean optimisation.epochs?" in err


def test_show_defaults_to_the_cpu_default(capsys):
    assert cli_main(["config", "show"]) == 0
    assert yaml.safe_load(capsys.readouterr().out)["name"] == "tiny-cpu"


def test_validate_reports_every_problem_of_every_file(capsys, tmp_path):
    good = tmp_path / "good.yaml"
    good.write_text("learning_rate: 2e-4\n", encoding="utf-8")
    bad = tmp_path / "bad.yaml"
    bad.write_text("epochz: 3\nlearning_rate: fast\n", encoding="utf-8")
    worse = tmp_path / "worse.yaml"
    worse.write_text("per_device_batch: 0\nwarmup_ratio: 2\n", encoding="utf-8")
    assert cli_main(["config", "validate", str(good), str(bad), str(worse)]) == 2
    captured = capsys.readouterr()
    assert f"{good}: ok (good" in captured.out
    assert "2 of 3 config(s) invalid" in captured.err
    for text in ("unknown field(s) epochz", "learning_rate: got 'fast'", "per_device_batch: got 0"):
        assert text in captured.err
    assert "warmup_ratio: got 2" in captured.err


def test_validate_accepts_every_preset(capsys):
    assert cli_main(["config", "validate", "tiny-cpu", "alpaca-7b-qlora"]) == 0
    assert capsys.readouterr().out.count(": ok (") == 2


def test_presets_lists_the_cpu_default_first(capsys):
    assert cli_main(["config", "presets"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("tiny-cpu\t") and len(lines) >= 4
