"""The benchmark runs end to end with tiny sizes and reports every figure (no timing asserts)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from vetllm.cli import main as cli_main
from vetllm.engine.bench import format_bench, run_bench
from vetllm.errors import VetLLMError

pytestmark = pytest.mark.slow  # trains a tiny model for a few steps, then predicts (~10-20 s)

TINY = {
    "tiny_hidden_size": 32,
    "tiny_intermediate_size": 64,
    "tiny_vocab_size": 500,
    "tiny_layers": 1,
    "torch_threads": 1,
}


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """(result, what the bench printed to stdout): stdout must stay clean for --json."""
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        result = run_bench(
            steps=3,
            n_notes=4,
            batch_sizes=(1, 4),
            work_dir=tmp_path_factory.mktemp("bench"),
            tiny_overrides=TINY,
        )
    return result, printed.getvalue()


@pytest.fixture(scope="module")
def bench_result(bench_run):
    return bench_run[0]


def test_bench_keeps_stdout_free_for_json(bench_run):
    assert bench_run[1] == ""


def test_bench_reports_training_throughput(bench_result):
    training = bench_result["training_cpu_default"]
    assert training["steps"] == 3
    assert training["samples_per_s"] > 0 and training["real_tokens_per_s"] > 0
    assert training["real_tokens_per_s"] == pytest.approx(
        training["mean_real_tokens_per_sample"] * training["samples_per_s"], rel=0.01
    )


def test_bench_times_each_decoding_and_batch_size(bench_result):
    timings = bench_result["prediction"]["timings"]
    assert {(t["decoding"], t["batch_size"]) for t in timings} == {
        ("free", 1),
        ("free", 4),
        ("constrained", 1),
        ("constrained", 4),
    }
    assert all(t["notes_per_s"] > 0 for t in timings)
    assert bench_result["prediction"]["n_notes"] == 4


def test_bench_without_cuda_says_why_gpu_part_is_skipped(bench_result):
    assert bench_result["gpu_comparison"] == {"skipped": "no CUDA device"}
    json.dumps(bench_result)
    text = format_bench(bench_result)
    assert "samples/s" in text and "constrained" in text and "skipped" in text


def test_bench_rejects_bad_counts():
    with pytest.raises(VetLLMError, match="steps: got 0"):
        run_bench(steps=0)
    with pytest.raises(VetLLMError, match="n_notes"):
        run_bench(n_notes=-1)


def test_cli_bench_json(tmp_path, capsys, monkeypatch):
    import vetllm.engine.bench as bench

    calls = {}

    def fake_run_bench(**kwargs):  # the CLI is a thin wrapper: check what it passes and prints
        calls.update(kwargs)
        return {"gpu_comparison": {"skipped": "no CUDA device"}, "steps": kwargs["steps"]}

    monkeypatch.setattr(bench, "run_bench", fake_run_bench)
    assert cli_main(["bench", "--steps", "7", "--notes", "5", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["steps"] == 7
    assert calls["n_notes"] == 5 and calls["run_dir"] is None
