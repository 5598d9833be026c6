"""The Charts tab: its layout (defaults, chart chrome) and the analysis of an uploaded Trainer run."""

from __future__ import annotations

import gradio as gr

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
