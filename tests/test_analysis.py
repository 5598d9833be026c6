"""Loss-history loading and analysis, on the seed's published table and real logs."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from vetllm.analysis import (
    SOURCE_LOSS_HISTORY,
    analyse_losses,
    load_log_history,
    smooth_losses,
)
from vetllm.cli import main
from vetllm.coverage import plan_coverage
from vetllm.errors import DataError, VetLLMError

SEED_STATE = Path(__file__).parent / "assets" / "seed_trainer_state.json"


def _codes(flags: list[dict]) -> set[str]:
    return {flag["code"] for flag in flags}


def _write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    return path


def test_seed_asset_is_the_published_table():
    history = load_log_history(SEED_STATE)
    assert [(h["step"], h["epoch"], h["loss"]) for h in history] == [
        (h["step"], h["epoch"], h["loss"]) for h in SOURCE_LOSS_HISTORY
    ]
    assert len(SOURCE_LOSS_HISTORY) == 10 and SOURCE_LOSS_HISTORY[-1]["step"] == 603


def test_seed_table_arithmetic():
    analysis = analyse_losses(load_log_history(SEED_STATE), steps_per_epoch=201)
    assert round(analysis.reduction, 3) == 0.984  # (3.3359 - 0.0533) / 3.3359
    assert analysis.reduction == pytest.approx((3.3359 - 0.0533) / 3.3359)
    first = analysis.points[0]
    assert (first["step"], round(first["epoch_from_steps"], 4)) == (10, 0.0498)
    assert analysis.points[2]["reduction"] == pytest.approx((3.3359 - 0.4986) / 3.3359)
    assert (analysis.first_loss, analysis.final_loss, analysis.final_step) == (3.3359, 0.0533, 603)
    assert (analysis.min_loss, analysis.min_loss_step) == (0.0533, 600)
    assert [b["step"] for b in analysis.epoch_boundaries] == [201, 402, 603]
    assert analysis.epoch_boundaries[1]["mean_loss"] == pytest.approx((0.0549 + 0.0562) / 2)


def test_seed_steps_per_epoch_inferred_from_the_log():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY)
    assert (analysis.steps_per_epoch, analysis.steps_per_epoch_source) == (201, "inferred")


def test_seed_plateau_and_early_stop():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=201)
    plateau = analysis.plateau
    # From step 200 (loss 0.0587) the loss only reaches 0.0533: 9.2 % < 10 %.
    assert plateau["start_step"] == 200
    assert plateau["later_improvement"] == pytest.approx((0.0587 - 0.0533) / 0.0587)
    assert plateau["steps_after"] == 403
    stop = analysis.early_stop
    assert stop["step"] == 200 and stop["steps_saved"] == 403
    assert stop["share_saved"] == pytest.approx(403 / 603)
    assert "confirm on a validation set" in stop["reason"]
    # With a 5 % threshold the step-200 point does not qualify (9.2 % still to go).
    stricter = analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=201, threshold=0.05)
    assert stricter.plateau["start_step"] > 200


def test_median_smoothing_ignores_a_single_spike():
    assert smooth_losses([1.0, 0.5, 9.0, 0.4, 0.3]) == [0.75, 1.0, 0.5, 0.4, 0.35]
    history = [
        {"step": s, "loss": v}
        for s, v in zip(
            range(10, 110, 10), [2.0, 1.0, 0.5, 0.31, 0.3, 3.0, 0.3, 0.29, 0.3, 0.29], strict=True
        )
    ]
    analysis = analyse_losses(history)
    assert analysis.plateau["start_step"] == 40
    assert "train_loss_rising" not in _codes(analysis.flags)


def test_steadily_falling_loss_has_no_plateau():
    history = [{"step": s, "loss": 0.8**s} for s in range(1, 21)]
    analysis = analyse_losses(history)
    assert analysis.plateau is None and analysis.early_stop is None
    assert "still_improving" in _codes(analysis.flags)
    assert analysis.steps_per_epoch is None and analysis.epoch_boundaries == []


def test_metrics_jsonl_with_eval_lines_overfitting_and_early_stop(tmp_path):
    rows = []
    for step in range(10, 110, 10):
        rows.append({"step": step, "epoch": step / 50, "loss": 2.0 / step, "learning_rate": 1e-4})
    evals = [(20, 0.9, 0.40), (40, 0.7, 0.55), (60, 0.75, 0.60), (80, 0.9, 0.52), (100, 1.1, 0.5)]
    for step, loss, acc in evals:
        rows.append({"step": step, "epoch": step / 50, "eval_loss": loss,
                     "eval_lenient_accuracy": acc})  # fmt: skip
    path = _write_jsonl(tmp_path / "metrics.jsonl", rows)
    analysis = analyse_losses(load_log_history(path))
    assert analysis.steps_per_epoch == 50 and len(analysis.eval_points) == 5
    assert analysis.early_stop["step"] == 60
    assert "eval_lenient_accuracy peaks at 0.600" in analysis.early_stop["reason"]
    flags = {f["code"]: f["message"] for f in analysis.flags}
    assert "eval loss rose from 0.7 (step 40) to 1.1 (step 100)" in flags["overfitting"]


def test_eval_loss_flat_is_not_overfitting():
    history = [{"step": s, "loss": 1 / s} for s in range(1, 11)]
    history += [{"step": s, "eval_loss": 0.5} for s in (5, 10)]
    analysis = analyse_losses(history)
    assert "overfitting" not in _codes(analysis.flags)
    assert (
        analysis.early_stop["step"] == 5 and "eval_loss is lowest" in analysis.early_stop["reason"]
    )


def test_loss_over_prompt_from_config():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY, config={"train_on_prompt": True})
    assert "loss_over_prompt" in _codes(analysis.flags)
    masked = analyse_losses(SOURCE_LOSS_HISTORY, config={"method": "qlora", "epochs": 3})
    assert "loss_over_prompt" not in _codes(masked.flags)


def test_non_finite_losses_are_flagged_not_fatal(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text(
        '{"step": 1, "loss": 2.0}\n{"step": 2, "loss": NaN}\n{"step": 3, "loss": 1.0}\n'
    )
    analysis = analyse_losses(load_log_history(path))
    assert [p["step"] for p in analysis.points] == [1, 3]
    assert "non_finite_loss" in _codes(analysis.flags)
    assert "too_few_points" in _codes(analysis.flags)


def test_bad_lines_are_all_reported_with_line_numbers(tmp_path):
    path = tmp_path / "metrics.jsonl"
    path.write_text('{"step": 1, "loss": 2.0}\n{"step": 2, "loss": \n\n{"step": 4\n')
    with pytest.raises(DataError) as error:
        load_log_history(path)
    assert [p.line for p in error.value.problems] == [2, 4]
    assert "metrics.jsonl, line 2" in str(error.value)


def test_wrong_types_name_the_field(tmp_path):
    path = _write_jsonl(
        tmp_path / "m.jsonl", [{"step": "ten", "loss": 1.0}, {"step": 2, "loss": "x"}]
    )
    with pytest.raises(DataError) as error:
        load_log_history(path)
    assert [(p.line, p.field) for p in error.value.problems] == [(1, "step"), (2, "loss")]


@pytest.mark.parametrize(
    "content,match",
    [
        ("", "no entry with 'loss'"),
        ('{"log_history": []}', "no entry with 'loss'"),
        ("42", "expected a JSON object"),
        ('[{"step": 1, "learning_rate": 0.1}]', "no entry with 'loss'"),
    ],
)
def test_unusable_files_raise_clear_errors(tmp_path, content, match):
    path = tmp_path / "trainer_state.json"
    path.write_text(content)
    with pytest.raises(VetLLMError, match=match):
        load_log_history(path)


def test_missing_and_binary_files(tmp_path):
    with pytest.raises(VetLLMError, match="nothing.json does not exist"):
        load_log_history(tmp_path / "nothing.json")
    binary = tmp_path / "state.json"
    binary.write_bytes(b"\xff\xfe\x00\x01garbage")
    with pytest.raises(VetLLMError, match="not UTF-8"):
        load_log_history(binary)


def test_invalid_settings():
    with pytest.raises(VetLLMError, match="steps_per_epoch: expected a whole number"):
        analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=0)
    with pytest.raises(VetLLMError, match="threshold"):
        analyse_losses(SOURCE_LOSS_HISTORY, threshold=1.5)
    with pytest.raises(VetLLMError, match="no finite training loss"):
        analyse_losses([{"step": 1, "loss": math.inf}, {"step": 2, "eval_loss": 1.0}])


def test_real_trainer_state_json_is_read(tmp_path):
    """A trainer_state.json written by the real Trainer (train + eval lines, final summary)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()

    class Quadratic(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.weight = torch.nn.Parameter(torch.tensor([3.0]))

        def forward(self, idx, labels=None):
            return {"loss": ((self.weight - 1.0) ** 2).sum() + 0.0 * idx.float().sum()}

    data = [{"idx": i, "labels": 0} for i in range(24)]  # labels: eval reports eval_loss
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path), per_device_train_batch_size=4, gradient_accumulation_steps=2,
        num_train_epochs=4, logging_steps=2, eval_strategy="steps", eval_steps=4,
        save_strategy="no", report_to="none", disable_tqdm=True, use_cpu=True, learning_rate=0.1,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=Quadratic(), args=args, train_dataset=data, eval_dataset=data[:4]
    )
    trainer.train()
    trainer.state.save_to_json(str(tmp_path / "trainer_state.json"))
    history = load_log_history(tmp_path / "trainer_state.json")
    analysis = analyse_losses(history)
    plan = plan_coverage(24, 4, 2, 4)
    assert analysis.steps_per_epoch == plan.steps_per_epoch == 3
    assert analysis.final_step == plan.total_steps == 12
    assert [p["step"] for p in analysis.points] == [2, 4, 6, 8, 10, 12]
    assert [e["step"] for e in analysis.eval_points] == [4, 8, 12]
    assert analysis.points[0]["epoch"] == pytest.approx(plan.logged_epoch(2))
    assert analysis.final_loss < analysis.first_loss


def test_cli_analyze_json_and_report(tmp_path, capsys):
    assert main(["analyze", str(SEED_STATE), "--steps-per-epoch", "201", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)["analysis"]
    assert out["plateau"]["start_step"] == 200 and out["steps_per_epoch_source"] == "given"
    report = tmp_path / "out" / "report.md"
    assert main(["analyze", str(SEED_STATE), "--report", str(report)]) == 0
    assert "report written" in capsys.readouterr().out
    assert "# Training analysis" in report.read_text(encoding="utf-8")


def test_cli_analyze_errors(tmp_path, capsys):
    assert main(["analyze", str(SEED_STATE), "--steps-per-epoch", "two"]) == 2
    assert "--steps-per-epoch" in capsys.readouterr().err
    assert main(["analyze", str(tmp_path / "missing.jsonl")]) == 2
    err = capsys.readouterr().err
    assert "missing.jsonl does not exist" in err and str(tmp_path) not in err


def test_resumed_run_keeps_the_last_entry_per_step(tmp_path):
    # Killed after step 30 (checkpoint at 20), resumed: steps 30 and 40 are logged again.
    rows = [{"step": s, "epoch": None, "loss": v} for s, v in [(10, 3.0), (20, 2.0), (30, 1.9)]]
    rows += [{"step": 30, "epoch": None, "loss": 1.5}, {"step": 40, "epoch": None, "loss": 1.0}]
    rows += [{"step": 20, "eval_loss": 2.5}, {"step": 20, "eval_loss": 2.4}]
    analysis = analyse_losses(load_log_history(_write_jsonl(tmp_path / "metrics.jsonl", rows)))
    assert [(p["step"], p["loss"]) for p in analysis.points] == [
        (10, 3.0), (20, 2.0), (30, 1.5), (40, 1.0)
    ]  # fmt: skip
    assert analysis.eval_points == [{"step": 20, "eval_loss": 2.4}]
    assert analysis.steps_per_epoch is None  # epoch not logged: nothing to infer from


def test_history_passed_directly_tolerates_unusable_entries():
    history = [{"step": 1, "loss": 2.0}, {"step": "x", "loss": 1.0}, {"loss": "?"}, {"step": 3}]
    history += [{"step": 4, "loss": 1.0}, {"step": 5, "loss": 0.9}, {"train_loss": 1.2}]
    analysis = analyse_losses(history)
    assert [p["step"] for p in analysis.points] == [1, 4, 5]


def _cosine_history(losses: list[float], peak_lr: float = 2e-3) -> list[dict]:
    """Logged points of a cosine schedule (learning rate from its peak down to 0)."""
    last = len(losses) - 1
    return [
        {"step": 10 * (i + 1), "loss": loss, "learning_rate": peak_lr * (1 + math.cos(math.pi * i / last)) / 2}
        for i, loss in enumerate(losses)
    ]  # fmt: skip


def test_loss_noise_after_the_learning_rate_decayed_is_not_rising_loss():
    # The lowest loss comes with the learning rate under 1% of its peak; the last point is 20%
    # above it: batch noise, since updates that small cannot drive the loss up.
    losses = [2.0, 1.0, 0.5, 0.2, 0.1, 0.06, 0.05, 0.045, 0.04, 0.03, 0.036]
    analysis = analyse_losses(_cosine_history(losses))
    assert "train_loss_rising" not in _codes(analysis.flags)


def test_loss_rising_while_the_learning_rate_is_high_is_flagged():
    losses = [2.0, 1.0, 0.5, 0.2, 0.4, 0.6, 0.7, 0.7, 0.7, 0.7, 0.7]
    flags = {f["code"]: f["message"] for f in analyse_losses(_cosine_history(losses)).flags}
    assert "above the minimum 0.2 (step 40)" in flags["train_loss_rising"]
    # Without a logged learning rate the rule stays as it was: last loss vs the lowest.
    plain = [{"step": 10 * (i + 1), "loss": v} for i, v in enumerate(losses)]
    assert "train_loss_rising" in _codes(analyse_losses(plain).flags)
