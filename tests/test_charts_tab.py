"""The Charts tab: its layout (defaults, chart chrome) and the analysis of an uploaded Trainer run."""

from __future__ import annotations

import gradio as gr
import pytest

from vetllm.ui.chart_handlers import ChartHandlers
from vetllm.ui.charts_tab import build_charts_tab
from vetllm.ui.settings import AppSettings


def _built_tab(tmp_path) -> gr.Blocks:
    with gr.Blocks() as demo:
        build_charts_tab(ChartHandlers(AppSettings(runs_dir=tmp_path, bootstrap=False)))
    return demo


def _components(demo: gr.Blocks, kind) -> list:
    return [block for block in demo.blocks.values() if isinstance(block, kind)]


def test_charts_have_no_label_chips_and_the_source_overlay_is_off(tmp_path):
    demo = _built_tab(tmp_path)
    plots = _components(demo, gr.Plot)
    assert len(plots) >= 8
    assert all(plot.show_label is False for plot in plots)  # no "Plot" chip over a titled chart
    overlay = [c for c in _components(demo, gr.Checkbox) if "source analysis" in c.label]
    assert len(overlay) == 1 and overlay[0].value is False
    assert "not comparable" in overlay[0].label


def _upload(tmp_path, name: str, text: str):
    path = tmp_path / "upload" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return str(path)


def test_an_uploaded_trainer_state_gets_the_same_charts_and_report_and_is_deleted(tmp_path):
    from pathlib import Path

    seed = (Path(__file__).parent / "assets" / "seed_trainer_state.json").read_text()
    handlers = ChartHandlers(AppSettings(runs_dir=tmp_path, bootstrap=False))
    state = _upload(tmp_path, "trainer_state.json", seed)
    args = _upload(tmp_path, "args.json", '{"per_device_train_batch_size": 4, '
                   '"gradient_accumulation_steps": 8, "dataloader_drop_last": true}')  # fmt: skip
    out = handlers.analyse_upload(state, args, None, None, 1602, 0.6, False, "step")
    summary, loss, evals, lr, table, plan_md, coverage, *rest = out
    exposure, labels, species, leakage, report, download, *cleared = rest
    assert "Was the model trained on the whole dataset?** Yes: all 1,602 samples" in summary
    assert [t.name for t in loss.data] == ["trainer_state.json (uploaded) (raw)",
                                           "trainer_state.json (uploaded) (smoothed)"]  # fmt: skip
    assert len(table) == 10 and "optimizer steps per epoch | 201" in plan_md
    assert list(coverage.data[0].y) == [1602, 1602, 1602]
    assert "- **mismatch**: the arguments give 50 steps per epoch, the log 201" in report
    assert download.visible is True and cleared == [None] * 4
    assert not Path(state).exists() and not Path(args).exists()  # deleted once read
    assert exposure is None and labels is None and species is None and leakage is None


def test_uploads_over_the_limit_or_missing_state_are_refused_and_deleted(tmp_path):
    from pathlib import Path

    handlers = ChartHandlers(AppSettings(runs_dir=tmp_path, bootstrap=False, max_upload_bytes=100))
    big = _upload(tmp_path, "trainer_state.json", '{"log_history": []}' + " " * 200)
    with pytest.raises(gr.Error, match="over the upload limit of 100 bytes"):
        handlers.analyse_upload(big, None, None, None, None, 0.6, False, "step")
    assert not Path(big).exists()
    args = _upload(tmp_path, "args.json", "{}")
    with pytest.raises(gr.Error, match="upload the run's trainer_state.json first"):
        handlers.analyse_upload(None, args, None, None, 0, 0.6, False, "step")  # 0: empty box
    state = _upload(tmp_path, "trainer_state.json", "{}")
    with pytest.raises(gr.Error, match="training samples: expected a whole number"):
        handlers.analyse_upload(state, None, None, None, -5, 0.6, False, "step")
    assert not Path(state).exists()
    assert not Path(args).exists()
