"""`vetllm bench accuracy` logic at tiny sizes: data sets, seeds, spreads, baselines (no timing)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from vetllm.cli import main as cli_main
from vetllm.data.loading import load_dataset_file
from vetllm.data.split import leakage_report
from vetllm.engine.accuracy_bench import (
    _all_splits,
    format_accuracy_bench,
    run_accuracy_bench,
    write_bench_datasets,
)
from vetllm.errors import VetLLMError

pytestmark = pytest.mark.slow  # trains a tiny model twice for one epoch (~10-30 s)

TINY = (
    "epochs=1",
    "tiny_hidden_size=32",
    "tiny_intermediate_size=64",
    "tiny_vocab_size=400",
    "eval_steps=null",
    "synthetic_notes=20",
)


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    printed = io.StringIO()
    work_dir = tmp_path_factory.mktemp("accuracy")
    with contextlib.redirect_stdout(printed):
        result = run_accuracy_bench(
            datasets=("source-like", "template-to-free"),
            seeds=(0, 1),
            work_dir=work_dir,
            overrides=TINY,
            n_source=160,
            n_free=80,
        )
    return result, printed.getvalue(), work_dir


def test_bench_keeps_stdout_free_for_json(bench_run):
    assert bench_run[1] == ""
    json.dumps(bench_run[0])


def test_bench_reports_mean_and_minimum_over_seeds(bench_run):
    result = bench_run[0]
    assert result["seeds"] == [0, 1]
    for item in result["datasets"].values():
        for key in ("lenient_accuracy", "strict_accuracy", "macro_f1", "train_seconds"):
            spread = item["model"][key]
            assert len(spread["per_seed"]) == 2
            assert spread["min"] == min(spread["per_seed"]) <= spread["mean"] <= spread["max"]
        for baseline in ("bag_of_words", "majority"):
            assert 0.0 <= item[baseline]["lenient_accuracy"] <= 1.0
            assert 0.0 <= item[baseline]["macro_f1"] <= 1.0
        assert item["bag_of_words"]["settings"]["folds"] >= 2


def test_template_to_free_reuses_the_source_like_runs_on_free_text(bench_run):
    datasets = bench_run[0]["datasets"]
    source, transfer = datasets["source-like"], datasets["template-to-free"]
    assert transfer["model"]["train_seconds"] == source["model"]["train_seconds"]
    assert transfer["data"]["train"] == source["data"]["train"]
    # Free-text test notes: nearly every one distinct.
    test = transfer["data"]["test"]
    assert test["distinct_notes"] >= 0.9 * test["records"]
    verdicts = bench_run[0]["model_min_beats_bag_of_words"]
    assert set(verdicts) == {"source-like", "template-to-free"}
    assert verdicts["source-like"] == (
        source["model"]["lenient_accuracy"]["min"] >= source["bag_of_words"]["lenient_accuracy"]
    )
    gap = bench_run[0]["gap_to_bag_of_words"]["source-like"]["min"]
    assert gap == pytest.approx(
        source["model"]["lenient_accuracy"]["min"] - source["bag_of_words"]["lenient_accuracy"],
        abs=1e-4,
    )
    # Each seed's gap comes with a paired interval around it; the worst seed's is the one reported.
    per_seed = source["gap_to_bag_of_words_per_seed"]
    assert [g["gap"] for g in per_seed] == pytest.approx(
        [
            acc - source["bag_of_words"]["lenient_accuracy"]
            for acc in source["model"]["lenient_accuracy"]["per_seed"]
        ],
        abs=1e-3,
    )
    for g in per_seed:
        assert g["ci95"][0] <= g["gap"] <= g["ci95"][1]
    worst = min(per_seed, key=lambda g: g["gap"])
    assert bench_run[0]["gap_to_bag_of_words"]["source-like"]["min_ci95"] == worst["ci95"]
    table = format_accuracy_bench(bench_run[0])
    assert "| template-to-free |" in table
    assert f"({worst['ci95'][0]:+.3f} to {worst['ci95'][1]:+.3f})" in table


def test_run_card_says_synthetic_notes_were_mixed_into_training(bench_run):
    card = json.loads(
        (bench_run[2] / "runs" / "source-like-seed0" / "model" / "run_card.json").read_text()
    )
    assert card["training_mix"]["synthetic_free_text_notes"] == 20
    assert (
        card["training_mix"]["user_records"]
        == bench_run[0]["datasets"]["source-like"]["data"]["train"]["records"]
    )


def test_bench_data_sets_are_split_by_note_text(tmp_path):
    paths = write_bench_datasets(tmp_path, ("source-like",), n_source=200, data_seed=2)
    parts = {k: load_dataset_file(p).records for k, p in paths["source-like"].items()}
    assert leakage_report(parts["train"], parts["test"]).share_leaked == 0.0
    assert leakage_report(parts["train"], parts["val"]).share_leaked == 0.0
    assert sum(len(rows) for rows in parts.values()) == 200


def test_several_data_seeds_give_one_split_each(tmp_path):
    names = ("bundled", "source-like", "template-to-free")
    paths = _all_splits(tmp_path, names, 200, 80, (1, 2))
    assert set(paths) == {
        "bundled",  # fixed data: once
        "source-like@1",
        "template-to-free@1",
        "source-like@2",
        "template-to-free@2",
    }
    notes = {
        key: {r.note for r in load_dataset_file(paths[key]["test"]).records}
        for key in ("source-like@1", "source-like@2")
    }
    assert notes["source-like@1"] != notes["source-like@2"]
    assert paths["template-to-free@2"]["train"] == paths["source-like@2"]["train"]


def test_bench_refuses_unknown_data_sets_and_seeds():
    with pytest.raises(VetLLMError, match="datasets: got.*seeds: got"):
        run_accuracy_bench(datasets=("nope",), seeds=())


def test_cli_refuses_bad_seeds(capsys):
    assert cli_main(["bench", "accuracy", "--seeds", "0,x"]) == 2
    assert "--seeds" in capsys.readouterr().err
    assert cli_main(["bench", "accuracy", "--data-seeds", "1,two"]) == 2
    assert "--data-seeds" in capsys.readouterr().err
