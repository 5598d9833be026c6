"""The Markdown training report and its concerns, on the seed's published table and synthetic logs."""

from __future__ import annotations

import subprocess
import sys

from vetllm.analysis import SOURCE_LOSS_HISTORY, analyse_losses
from vetllm.coverage import plan_coverage
from vetllm.report import render_training_report, report_concerns


def _codes(flags: list[dict]) -> set[str]:
    return {flag["code"] for flag in flags}


def test_the_report_builds_on_the_analysis_and_never_the_reverse():
    """One import direction (report -> analysis), and neither pulls in torch or gradio."""
    import vetllm.analysis

    assert not hasattr(vetllm.analysis, "render_training_report")
    for first, second in (("report", "analysis"), ("analysis", "report")):
        code = (
            f"import vetllm.{first}, vetllm.{second}, sys;"
            "from vetllm.report import render_training_report, report_concerns;"
            "print('torch' in sys.modules, 'gradio' in sys.modules)"
        )
        done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["False", "False"]
    assert report_concerns and render_training_report


def test_seed_report_contents():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=201)
    plan = plan_coverage(1602, 2, 4, 3, drop_last=True, unique_notes=444)
    report = render_training_report(analysis, plan=plan)
    assert "(reduction 98.4%)" in report
    assert "| 10 | 0.05 | 0.0498 | 3.3359 | 0.0% |" in report
    assert "| 603 | 3 | 3.0000 | 0.0533 | 98.4% |" in report
    assert "| optimizer steps per epoch | 201 |" in report
    assert "plateau from step 200" in report
    assert "`low_loss_unverified`" in report
    assert "`steps_mismatch`" not in report  # the log ends at the planned 603


def test_low_loss_with_low_accuracy_is_flagged():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY, steps_per_epoch=201)
    evaluation = {"metrics": {"n": 200, "strict_accuracy": 0.0, "lenient_accuracy": 0.43,
                              "strict_ci": [0.0, 0.019]}}  # fmt: skip
    concerns = {c["code"]: c for c in report_concerns(analysis, evaluation=evaluation)}
    assert "low_loss_low_accuracy" in concerns
    assert "43.0%" in concerns["low_loss_low_accuracy"]["message"]
    assert "low_loss_unverified" not in concerns
    report = render_training_report(analysis, evaluation=evaluation)
    assert "- strict accuracy: 0.0% (95% CI 0.0%-1.9%)" in report
    assert "- n: 200" in report


def test_plan_mismatch_and_majority_baseline():
    analysis = analyse_losses(SOURCE_LOSS_HISTORY)
    plan = plan_coverage(1602, 8, 1, 3, drop_last=True).to_dict()  # 600 steps, the log has 603
    stats = {"n_records": 1602, "n_unique_notes": 444, "accuracy_ceiling": 0.946,
             "majority_baseline": {"labels": ["1679004"], "count": 652, "share": 0.407}}  # fmt: skip
    concerns = _codes(report_concerns(analysis, plan, stats, {"strict_accuracy": 0.40}))
    assert {"steps_mismatch", "below_majority_baseline"} <= concerns
    report = render_training_report(analysis, plan=plan, stats=stats, evaluation={"strict_accuracy": 0.9})  # fmt: skip
    assert "| steps per epoch | 200 |" in report
    assert "- majority-code baseline: 40.7%" in report
    assert "- accuracy ceiling (label noise): 94.6%" in report
    assert "`below_majority_baseline`" not in report


def test_log_ending_one_logging_interval_early_is_not_a_mismatch():
    history = [{"step": s, "loss": 1 / s} for s in range(10, 610, 10)]  # logging_steps=10
    plan = {"total_steps": 603}
    assert "steps_mismatch" not in _codes(report_concerns(analyse_losses(history), plan))
    stopped = analyse_losses(history[:50])  # ends at step 500
    concerns = {c["code"]: c["message"] for c in report_concerns(stopped, plan)}
    assert "ends at step 500 but the plan has 603" in concerns["steps_mismatch"]


def test_evaluation_metrics_json_layout():
    """The layout evaluate_run writes: scores at the top level, baselines beside them."""
    evaluation = {"n": 120, "strict_accuracy": 0.85, "strict_ci": [0.78, 0.9],
                  "lenient_accuracy": 0.9, "share_in_training_data": 0.0,
                  "baselines": {"majority": {"accuracy": 0.4, "ci": [0.31, 0.49]},
                                "bag_of_words": {"accuracy": 0.86, "ci": [0.79, 0.91]}}}  # fmt: skip
    report = render_training_report(analyse_losses(SOURCE_LOSS_HISTORY), evaluation=evaluation)
    assert "- strict accuracy: 85.0% (95% CI 78.0%-90.0%)" in report
    assert "- baseline bag_of_words: 86.0% (95% CI 79.0%-91.0%)" in report
    assert "- evaluated notes also in the training data: 0.0%" in report
    assert "low_loss" not in report  # 90% accuracy: the low loss is not suspicious


def test_long_history_table_is_thinned_but_keeps_key_points():
    history = [{"step": s, "loss": 5.0 / s + (0.5 if s == 333 else 0)} for s in range(1, 1001)]
    analysis = analyse_losses(history)
    table = render_training_report(analysis).split("## Loss history")[1].split("##")[0]
    rows = [line for line in table.splitlines() if line.startswith("| ") and "step" not in line]
    assert 50 <= len(rows) <= 64
    assert rows[0].startswith("| 1 |") and rows[-1].startswith("| 1000 |")
    assert "of 1000 logged points shown" in table


def test_epoch_table_lists_every_epoch_of_a_three_epoch_run():
    # 3 epochs of 85 steps logged every 10: the log ends at step 250, inside epoch 3
    history = [{"step": s, "epoch": s / 85, "loss": 2.0 / s} for s in range(10, 256, 10)]
    analysis = analyse_losses(history)
    assert analysis.steps_per_epoch == 85
    assert [b["epoch"] for b in analysis.epoch_boundaries] == [1, 2, 3]
    report = render_training_report(analysis)
    table = report.split("## Epochs")[1].split("##")[0]
    assert "| 3 | 171-255 | 250 |" in table
    assert "| 1 | 1-85 | 80 |" in table


def _run_with_losses(path, lines):
    from vetllm.runs.directory import RunDirectory

    run = RunDirectory(path)
    run.write_status("completed")
    for line in lines:
        run.append_metrics(line)
    return run


def test_vetllm_report_infers_steps_per_epoch_and_survives_a_damaged_epoch(tmp_path, capsys):
    from vetllm.cli import main

    lines = [{"step": s, "epoch": s / 50, "loss": 3.0 / s} for s in range(10, 110, 10)]
    run = _run_with_losses(tmp_path / "run", [*lines, {"step": 110, "epoch": "x", "loss": 0.02}])
    assert main(["report", "--run", str(run.path)]) == 0
    captured = capsys.readouterr()
    assert "- steps per epoch: 50 (inferred)" in captured.out  # not "(given)": nobody gave it
    assert "coverage and data statistics left out" in captured.err  # no config.yaml


def test_the_cli_and_the_app_build_the_same_report_through_report_from_metrics(
    tmp_path, monkeypatch
):
    """A run with its config: both show its coverage plan and data set, and the same text."""
    from vetllm import report as report_module
    from vetllm.config import load_config
    from vetllm.ui.chart_handlers import ChartHandlers
    from vetllm.ui.settings import AppSettings

    lines = [{"step": s, "epoch": s / 50, "loss": 3.0 / s} for s in range(10, 110, 10)]
    run = _run_with_losses(tmp_path / "runs" / "r1", lines)
    load_config("tiny-cpu").to_yaml(run.config_path)
    calls, real = [], report_module.report_from_metrics

    def counted(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(report_module, "report_from_metrics", counted)
    app_text, _ = ChartHandlers(AppSettings(runs_dir=tmp_path / "runs")).report("r1")
    cli_text, left_out = report_module.run_report(run)
    assert len(calls) == 2 and left_out is None
    assert app_text == cli_text
    assert "## Coverage" in app_text and "## Data set" in app_text
