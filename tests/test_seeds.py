"""Several seeds one setting away: `vetllm train --seeds`, its runs and its mean / minimum."""

import json

import pytest

from vetllm.cli import main as cli_main
from vetllm.config import load_config
from vetllm.data.synth import write_synthetic_dataset
from vetllm.engine.seeds import describe_summary, parse_seeds, summarise_seeds
from vetllm.errors import VetLLMError
from vetllm.runs.directory import RunDirectory


def test_seeds_are_distinct_whole_numbers():
    assert parse_seeds("0, 1,2") == [0, 1, 2]
    for bad in ("", "a,b", "1,1", "-1", "0.5"):
        with pytest.raises(VetLLMError, match="--seeds: got"):
            parse_seeds(bad)


def test_summary_gives_mean_and_minimum_with_the_worst_seed():
    results = [
        {"seed": 0, "state": "completed", "lenient_accuracy": 0.84, "strict_accuracy": 0.80},
        {"seed": 1, "state": "completed", "lenient_accuracy": 0.89, "strict_accuracy": 0.85},
        {"seed": 2, "state": "completed", "lenient_accuracy": 0.83, "strict_accuracy": 0.81},
    ]
    summary = summarise_seeds(results)
    lenient = summary["lenient_accuracy"]
    assert lenient["mean"] == pytest.approx(0.8533, abs=1e-4)
    assert (lenient["min"], lenient["min_seed"], lenient["n_seeds"]) == (0.83, 2, 3)
    assert summary["strict_accuracy"]["min_seed"] == 0 and summary["complete"]
    line = describe_summary(summary)
    assert "lenient accuracy over 3 seeds: mean 0.853, min 0.830 (seed 2)" in line
    partial = summarise_seeds(results[:1], planned=3)
    assert not partial["complete"] and "[1 of 3 seeds finished]" in describe_summary(partial)


@pytest.mark.slow
def test_cli_trains_one_run_per_seed_and_writes_the_summary(tmp_path, capsys):
    write_synthetic_dataset(tmp_path / "data", n=240, seed=1)
    base = tmp_path / "runs" / "multi"
    args = ["train", "--config", "configs/tiny-cpu.yaml", "--output", str(base), "--seeds", "3,5"]
    args += ["--data", str(tmp_path / "data" / "train.json")]
    args += ["--val-data", str(tmp_path / "data" / "val.json")]
    for setting in ("max_steps=6", "tiny_hidden_size=32", "tiny_heads=2", "eval_steps=null"):
        args += ["--set", setting]
    assert cli_main(args) == 0
    summary = json.loads((tmp_path / "runs" / "multi-seeds.json").read_text())
    accuracies = []
    for seed in (3, 5):
        run = RunDirectory(tmp_path / "runs" / f"multi-seed{seed}")
        assert load_config(run.config_path).seed == seed
        status = run.read_status()
        assert status.state == "completed"
        accuracies.append(status.final_metrics["lenient_accuracy"])
    assert [r["seed"] for r in summary["seeds"]] == [3, 5] and summary["complete"]
    assert summary["lenient_accuracy"]["mean"] == pytest.approx(sum(accuracies) / 2)
    assert summary["lenient_accuracy"]["min"] == min(accuracies)
    assert "lenient accuracy over 2 seeds: mean" in capsys.readouterr().out
