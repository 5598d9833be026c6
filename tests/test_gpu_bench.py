"""`vetllm bench --gpu`: its logic end to end on the tiny shape on the CPU (no timing asserts)."""

from __future__ import annotations

import contextlib
import io
import json

import pytest

from vetllm.cli import main as cli_main
from vetllm.engine.gpu_bench import format_gpu_bench, run_gpu_bench
from vetllm.errors import VetLLMError


@pytest.fixture(scope="module")
def bench_run(tmp_path_factory):
    """(result, stdout): two variants, two steps each, then 4-note prediction timings."""
    import torch

    threads = torch.get_num_threads()
    printed = io.StringIO()
    try:
        with contextlib.redirect_stdout(printed):
            result = run_gpu_bench(
                shape="tiny",
                steps=2,
                n_single=2,
                n_batch=4,
                work_dir=tmp_path_factory.mktemp("gpu-bench"),
                variants=("source recipe", "fast", "fast + liger"),
                save_to=tmp_path_factory.getbasetemp() / "gpu-bench.json",
            )
    finally:
        torch.set_num_threads(threads)
    return result, printed.getvalue()


pytestmark = pytest.mark.slow


def test_stdout_stays_free_for_the_json_and_the_saved_copy_is_complete(bench_run, tmp_path_factory):
    assert bench_run[1] == ""
    saved = tmp_path_factory.getbasetemp() / "gpu-bench.json"
    assert json.loads(saved.read_text()) == json.loads(json.dumps(bench_run[0]))


def test_source_recipe_and_fast_path_side_by_side(bench_run):
    rows = {row["name"]: row for row in bench_run[0]["training"]}
    source, fast = rows["source recipe"], rows["fast"]
    assert (source["micro_batch"], source["grad_accum"], source["padded_to_512"]) == (2, 4, True)
    assert (fast["micro_batch"], fast["grad_accum"], fast["gradient_checkpointing"]) == (
        8,
        1,
        False,
    )
    for row in (source, fast):
        assert row["steps"] == 2 and row["s_per_step"] > 0 and row["real_tokens_per_s"] > 0
        assert row["source_data_steps"] == 603  # the same step count on the source's 1,602
        assert len(row["losses"]) == 2
    assert source["padding_share"] > fast["padding_share"]  # every batch padded to 512
    # The seeded sampler gives both the same 8 samples per step, so the losses agree.
    assert bench_run[0]["summary"]["fast vs source: max loss difference"] < 0.01


def test_liger_is_skipped_with_the_reason_on_a_cpu(bench_run):
    liger = next(r for r in bench_run[0]["training"] if r["name"] == "fast + liger")
    assert liger["skipped"] == "Liger kernels need a CUDA GPU"


def test_prediction_before_and_after_merging(bench_run):
    prediction = bench_run[0]["prediction"]
    assert prediction["merged"]["merged"] is True
    for path in ("unmerged", "merged"):
        keys = {(t["decoding"], t["batch_size"]) for t in prediction[path]["timings"]}
        assert keys == {("free", 1), ("free", 4), ("constrained", 1), ("constrained", 4)}
    assert set(prediction["notes_with_different_codes"].values()) == {0}
    text = format_gpu_bench(bench_run[0])
    assert "source recipe" in text and "predict merged" in text


def test_unknown_shape_is_refused():
    with pytest.raises(VetLLMError, match="--shape: got 'huge'"):
        run_gpu_bench(shape="huge")


def test_cli_passes_shape_and_steps(monkeypatch, capsys):
    import vetllm.engine.gpu_bench as gpu_bench

    calls = {}

    def fake(**kwargs):
        calls.update(kwargs)
        return {"shape": kwargs["shape"]}

    monkeypatch.setattr(gpu_bench, "run_gpu_bench", fake)
    assert cli_main(["bench", "--gpu", "--shape", "tiny", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"shape": "tiny"}
    assert calls == {"shape": "tiny", "steps": 12, "n_batch": 64, "save_to": None}


def _cuda_and_bitsandbytes() -> bool:
    import importlib.util

    import torch

    return torch.cuda.is_available() and importlib.util.find_spec("bitsandbytes") is not None


@pytest.mark.gpu
@pytest.mark.skipif(not _cuda_and_bitsandbytes(), reason="needs a CUDA GPU and bitsandbytes")
def test_on_a_gpu_variants_train_qlora_and_prediction_merges_the_4bit_base(tmp_path):
    result = run_gpu_bench(
        shape="small",
        steps=3,
        n_single=2,
        n_batch=8,
        work_dir=tmp_path,
        variants=("source recipe", "fast"),
    )
    for row in result["training"]:
        assert row["method"] == "qlora" and row["peak_gpu_memory_gb"] > 0, row
    prediction = result["prediction"]
    assert prediction["unmerged"]["four_bit_base"] is True
    assert prediction["merged"]["merged"] is True
