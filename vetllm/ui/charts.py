"""Pure figure builders: plain records in, plotly figures out (no gradio, no files).

Every chart the app shows is built here from lists and dicts (metrics lines of a run, the
numbers of a coverage plan, label counts, a confusion matrix), so each one can be tested
without a browser. Runs are passed as a mapping `{run name: metrics records}` so that one
chart can compare several runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

PALETTE = ("#2563eb", "#dc2626", "#059669", "#d97706", "#7c3aed", "#db2777", "#0891b2")
REFERENCE_COLOR = "#6b7280"
# The source's loss covered the whole prompt, ours only the answer: shown, never compared.
REFERENCE_NAME = "source analysis (not comparable: its loss covered the whole prompt)"
PLATEAU_LABEL_GAP = 0.07  # paper units between the plateau labels of successive runs
EVAL_N_KEYS = ("eval_n", "eval_n_notes", "eval_accuracy_n")  # notes behind eval accuracy
_LAYOUT = {
    "template": "plotly_white",
    "height": 380,
    "margin": {"l": 60, "r": 20, "t": 50, "b": 50},
    "legend": {"orientation": "h", "y": -0.2},
}


def _color(index: int) -> str:
    return PALETTE[index % len(PALETTE)]


def _finite(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def log_ticks(values: Sequence[float]) -> tuple[list[float], list[str]]:
    """Tick values and labels for a log axis: 1-2-5 steps per decade over the data's range.

    Plotly's own log ticks label the minor steps with their first digit only ("5, 2, 1, 5, 2,
    0.1"); these labels are whole numbers ("0.05", "0.2", "1", "20"), each shown once. Decades
    with only a few points get 1-2-5; a range over 4 decades gets the decades only.
    """
    positive = [float(v) for v in values if _finite(v) and v > 0]
    if not positive:
        return [], []
    low, high = math.floor(math.log10(min(positive))), math.ceil(math.log10(max(positive)))
    steps = (1,) if high - low > 4 else (1, 2, 5)
    ticks = [m * 10.0**d for d in range(low, high + 1) for m in steps]
    lo, hi = min(positive), max(positive)
    # keep one tick either side of the data so the axis is labelled at both ends
    below = [t for t in ticks if t <= lo][-1:]
    above = [t for t in ticks if t >= hi][:1]
    shown = below + [t for t in ticks if lo < t < hi] + above
    return shown, [_tick_text(t) for t in shown]


def _tick_text(value: float) -> str:
    text = f"{value:.10f}".rstrip("0").rstrip(".")
    return text if value < 1000 else f"{value:,.0f}"


def _log_axis(figure: go.Figure, values: Sequence[float], axis: str = "y") -> None:
    tickvals, ticktext = log_ticks(values)
    update = figure.update_yaxes if axis == "y" else figure.update_xaxes
    update(type="log", tickvals=tickvals or None, ticktext=ticktext or None)


def series(
    records: Sequence[Mapping], key: str, x: str = "step"
) -> tuple[list[float], list[float]]:
    """(x values, values) of every record with a finite `key` and a finite `x` ("step" or "epoch")."""
    steps, values = [], []
    for record in records:
        value, step = record.get(key), record.get(x)
        if _finite(value) and _finite(step):
            steps.append(float(step))
            values.append(float(value))
    return steps, values


def smooth_ema(values: Sequence[float], weight: float = 0.6) -> list[float]:
    """Exponential moving average with start-up bias correction (TensorBoard's smoothing).

    weight 0 returns the values unchanged; 0.9 averages over roughly the last 10 points.
    """
    if not 0.0 <= weight < 1.0:
        raise ValueError(f"smoothing weight must be in [0, 1), got {weight}")
    smoothed, running = [], 0.0
    for count, value in enumerate(values, start=1):
        running = weight * running + (1.0 - weight) * value
        smoothed.append(running / (1.0 - weight**count))
    return smoothed


def epoch_boundaries(records: Sequence[Mapping]) -> list[float]:
    """Steps at which an epoch ends, except at the last step, interpolated between logged points.

    The logged epoch passes a whole number k between two logged steps; the boundary is where the
    straight line through those two (step, epoch) points reaches k, not the next logged step
    (with logging every 10 steps and 201 steps per epoch, epoch 1 ends at 201, not at 210).
    """
    boundaries, last = [], None
    for record in records:
        epoch, step = record.get("epoch"), record.get("step")
        if not (_finite(epoch) and _finite(step)):
            continue
        if last is not None and epoch > last[1]:
            for whole in range(math.floor(last[1] + 1e-9) + 1, math.floor(epoch + 1e-9) + 1):
                share = (whole - last[1]) / (epoch - last[1])
                boundaries.append(round(last[0] + share * (step - last[0]), 6))
        last = (float(step), float(epoch))
    return [b for b in boundaries if last is None or b < last[0] - 1e-9]


def _reference_points(reference: Sequence, x_axis: str = "step") -> tuple[list[float], list[float]]:
    xs, losses = [], []
    for point in reference:
        if isinstance(point, Mapping):
            xs.append(float(point[x_axis]))
            losses.append(float(point["loss"]))
        else:  # (step, epoch, loss)
            xs.append(float(point[0] if x_axis == "step" else point[1]))
            losses.append(float(point[-1]))
    return xs, losses


def _add_run_loss(figure, name, records, index, smoothing, plateau, x_axis) -> None:
    """Raw and smoothed loss of one run, its epoch ends (dotted) and its plateau (dashed)."""
    xs, losses = series(records, "loss", x_axis)
    if not xs:
        return
    color = _color(index)
    figure.add_scatter(
        x=xs, y=losses, mode="lines", name=f"{name} (raw)", opacity=0.35,
        line={"color": color, "width": 1},
    )  # fmt: skip
    figure.add_scatter(
        x=xs, y=smooth_ema(losses, smoothing), mode="lines", name=f"{name} (smoothed)",
        line={"color": color, "width": 2.5},
    )  # fmt: skip
    ends = epoch_boundaries(records)
    if x_axis == "epoch":
        ends = [float(e) for e in range(1, math.ceil(max(xs) - 1e-9))]
    for boundary in ends:
        figure.add_vline(x=boundary, line={"color": color, "dash": "dot", "width": 1})
    if _finite(plateau):
        figure.add_vline(x=plateau, line={"color": color, "dash": "dash", "width": 2})
        # one label row per run, so runs whose plateaus start close together stay readable
        figure.add_annotation(
            x=plateau, y=1 - PLATEAU_LABEL_GAP * index, xref="x", yref="paper",
            text=f"plateau ({name})", showarrow=False, xanchor="left", yanchor="top",
            font={"color": color, "size": 11}, bgcolor="rgba(255,255,255,0.8)",
        )  # fmt: skip


def loss_figure(
    runs: Mapping[str, Sequence[Mapping]],
    *,
    smoothing: float = 0.6,
    plateau_steps: Mapping[str, float | None] | None = None,
    reference: Sequence | None = None,
    log_scale: bool = True,
    x_axis: str = "step",
) -> go.Figure:
    """Training loss per run, raw (faint) and smoothed, with epoch ends and the plateau marked.

    `plateau_steps` maps a run to where its loss stopped improving (from vetllm.analysis), in
    `x_axis` units; `reference` is the source analysis's (step, epoch, loss) table. With
    x_axis="epoch", runs of different lengths (and the 603-step reference) line up.
    """
    if x_axis not in ("step", "epoch"):
        raise ValueError(f"x_axis must be 'step' or 'epoch', got {x_axis!r}")
    figure = go.Figure()
    for index, (name, records) in enumerate(runs.items()):
        plateau = (plateau_steps or {}).get(name)
        _add_run_loss(figure, name, records, index, smoothing, plateau, x_axis)
    all_losses = [v for records in runs.values() for v in series(records, "loss", x_axis)[1]]
    if reference:
        ref_x, ref_losses = _reference_points(reference, x_axis)
        all_losses += ref_losses
        figure.add_scatter(
            x=ref_x, y=ref_losses, mode="lines+markers", name=REFERENCE_NAME,
            line={"color": REFERENCE_COLOR, "dash": "dash"},
        )  # fmt: skip
    figure.update_layout(
        title="Training loss (dotted lines: epoch ends)",
        xaxis_title="optimizer step" if x_axis == "step" else "epoch", yaxis_title="loss", **_LAYOUT,
    )  # fmt: skip
    if not figure.data:
        figure.add_annotation(text="no training loss logged yet", showarrow=False,
                              xref="paper", yref="paper", x=0.5, y=0.5)  # fmt: skip
    elif log_scale:
        _log_axis(figure, all_losses)
    return figure


def eval_figure(runs: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """Eval loss (left axis, dashed squares in a darker shade) and validation strict / lenient
    accuracy (right axis, solid / dotted circles) per step; names say how many notes were scored.
    """
    figure = go.Figure()
    sizes = []
    for index, (name, records) in enumerate(runs.items()):
        color = _color(index)
        n = eval_notes(records)
        sizes.append(n)
        steps, values = series(records, "eval_loss")
        if steps:
            figure.add_scatter(
                x=steps, y=values, mode="lines+markers", name=f"{name} eval loss",
                line={"color": _darken(color), "dash": "dash", "width": 1.5},
                marker={"symbol": "square", "size": 7},
            )  # fmt: skip
        for key, dash in (("eval_strict_accuracy", "solid"), ("eval_lenient_accuracy", "dot")):
            steps, values = series(records, key)
            if steps:
                label = key.removeprefix("eval_").replace("_", " ")
                shown = f"{label} on {n:,} notes" if n else label
                figure.add_scatter(
                    x=steps, y=values, mode="lines+markers", name=f"{name} {shown}",
                    yaxis="y2", line={"color": color, "dash": dash, "width": 2.5},
                    marker={"symbol": "circle", "size": 8},
                )  # fmt: skip
    figure.update_layout(
        title=_eval_title(sizes),
        xaxis_title="optimizer step", yaxis_title="eval loss (dashed)",
        yaxis2={"title": "accuracy (solid, dotted)", "overlaying": "y", "side": "right",
                "range": [0, 1.02]},
        **_LAYOUT,
    )  # fmt: skip
    return figure


def eval_notes(records: Sequence[Mapping]) -> int | None:
    """How many validation notes the logged accuracy was computed on (the latest record's n)."""
    for record in reversed(records):
        for key in EVAL_N_KEYS:
            value = record.get(key)
            if _finite(value) and value >= 1:
                return int(value)
    return None


def _eval_title(sizes: list[int | None]) -> str:
    known = {n for n in sizes if n}
    if len(known) == 1 and None not in sizes:
        return f"Validation: eval loss and lenient accuracy on {known.pop():,} validation notes"
    if known:
        return "Validation: eval loss and accuracy (notes scored per run in the legend)"
    return "Validation: eval loss and accuracy (number of validation notes not recorded)"


def _darken(color: str, factor: float = 0.55) -> str:
    """A darker shade of a #rrggbb colour (eval loss next to the same run's accuracy)."""
    red, green, blue = (int(color[i : i + 2], 16) for i in (1, 3, 5))
    return "#" + "".join(f"{int(c * factor):02x}" for c in (red, green, blue))


def learning_rate_figure(runs: Mapping[str, Sequence[Mapping]]) -> go.Figure:
    """The learning-rate schedule each run actually used, per optimizer step."""
    figure = go.Figure()
    for index, (name, records) in enumerate(runs.items()):
        steps, values = series(records, "learning_rate")
        if steps:
            figure.add_scatter(x=steps, y=values, mode="lines", name=name,
                               line={"color": _color(index)})  # fmt: skip
    figure.update_layout(title="Learning-rate schedule", xaxis_title="optimizer step",
                         yaxis_title="learning rate", **_LAYOUT)  # fmt: skip
    return figure


def coverage_figure(
    seen_per_epoch: Sequence[float],
    dropped_per_epoch: Sequence[float],
    total_epochs: int | None = None,
) -> go.Figure:
    """Stacked bars: samples the optimizer saw and samples dropped (drop_last) in each epoch.

    `total_epochs` (when more epochs start than there are bars) is named in the title.
    """
    epochs = [f"epoch {i + 1}" for i in range(len(seen_per_epoch))]
    figure = go.Figure()
    figure.add_bar(x=epochs, y=list(seen_per_epoch), name="samples seen", marker_color=PALETTE[2])
    figure.add_bar(x=epochs, y=list(dropped_per_epoch), name="samples not seen (drop_last or epoch cut short)",
                   marker_color=PALETTE[1])  # fmt: skip
    title = "Samples seen vs dropped per epoch"
    if total_epochs and total_epochs > len(epochs):
        title += f" (first {len(epochs)} of {total_epochs:,} epochs)"
    figure.update_layout(barmode="stack", title=title, yaxis_title="samples", **_LAYOUT)
    return figure


def exposure_figure(copies_per_note: Sequence[int], epochs: float = 1.0) -> go.Figure:
    """Histogram of how often training shows each unique note (copies x epochs)."""
    exposures = [copies * epochs for copies in copies_per_note]
    figure = go.Figure()
    figure.add_histogram(x=exposures, marker_color=PALETTE[0], name="unique notes")
    figure.update_layout(
        title=f"Exposures per unique note over {epochs:g} epoch(s) (duplicates)",
        xaxis_title="times the model sees the note", yaxis_title="unique notes", **_LAYOUT,
    )  # fmt: skip
    figure.update_yaxes(type="log", dtick=1)  # decades only: 1, 10, 100 (no "2, 5" minors)
    return figure


def distribution_figure(counts: Mapping[str, int], title: str) -> go.Figure:
    """Horizontal bars of a count table (labels or species), largest first."""
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    figure = go.Figure()
    figure.add_bar(
        y=[name for name, _ in ordered][::-1], x=[count for _, count in ordered][::-1],
        orientation="h", marker_color=PALETTE[0],
    )  # fmt: skip
    layout = dict(_LAYOUT, height=max(260, 28 * len(ordered) + 100))
    figure.update_layout(title=title, xaxis_title="records", **layout)
    return figure


def leakage_figure(n_eval_notes: int, n_leaked: int, title: str = "Validation notes") -> go.Figure:
    """Validation notes that also occur verbatim in training vs notes the model never saw."""
    figure = go.Figure()
    figure.add_bar(
        x=["also in training (leaked)", "unseen"], y=[n_leaked, max(n_eval_notes - n_leaked, 0)],
        marker_color=[PALETTE[1], PALETTE[2]],
    )  # fmt: skip
    share = n_leaked / n_eval_notes if n_eval_notes else 0.0
    figure.update_layout(title=f"{title}: {share:.0%} leaked from training",
                         yaxis_title="notes", **_LAYOUT)  # fmt: skip
    return figure


def confusion_figure(
    labels: Sequence[str], matrix: Sequence[Sequence[float]], names: Mapping[str, str] | None = None
) -> go.Figure:
    """Heatmap of gold (rows) vs predicted (columns) labels, annotated with counts."""
    shown = [f"{(names or {}).get(label, label)}" for label in labels]
    figure = go.Figure(
        go.Heatmap(z=[list(row) for row in matrix], x=shown, y=shown, colorscale="Blues",
                   text=[list(row) for row in matrix], texttemplate="%{text}")
    )  # fmt: skip
    size = max(380, 34 * len(labels) + 160)
    layout = dict(_LAYOUT, height=size)
    figure.update_layout(title="Confusion matrix", xaxis_title="predicted", yaxis_title="gold",
                         **layout)  # fmt: skip
    figure.update_yaxes(autorange="reversed")
    return figure


def accuracy_comparison_figure(rows: Sequence[Mapping]) -> go.Figure:
    """Bars of accuracy with 95% confidence intervals: the model next to the baselines.

    Each row: {"name", "accuracy", "ci": (low, high)}.
    """
    names = [str(row["name"]) for row in rows]
    values = [float(row["accuracy"]) for row in rows]
    lows = [float(row["ci"][0]) for row in rows]
    highs = [float(row["ci"][1]) for row in rows]
    figure = go.Figure()
    figure.add_bar(
        x=names, y=values, marker_color=[_color(i) for i in range(len(rows))],
        error_y={"type": "data", "symmetric": False,
                 "array": [h - v for h, v in zip(highs, values, strict=True)],
                 "arrayminus": [v - low for v, low in zip(values, lows, strict=True)]},
    )  # fmt: skip
    figure.update_layout(title="Accuracy with 95% intervals: model vs baselines",
                         yaxis={"title": "accuracy", "range": [0, 1.05]}, **_LAYOUT)  # fmt: skip
    return figure


def reliability_figure(rows: Sequence[Mapping], title: str = "Reliability diagram") -> go.Figure:
    """Accuracy against mean confidence per confidence bin; the diagonal is perfect calibration.

    Rows as vetllm.calibration.reliability_table gives them: {"low", "high", "n",
    "mean_confidence", "accuracy"}; marker size grows with the bin's number of answers.
    """
    figure = go.Figure()
    figure.add_scatter(x=[0, 1], y=[0, 1], mode="lines", name="perfectly calibrated",
                       line={"color": REFERENCE_COLOR, "dash": "dash"})  # fmt: skip
    counts = [int(row["n"]) for row in rows]
    biggest = max(counts, default=1)
    figure.add_scatter(
        x=[float(row["mean_confidence"]) for row in rows],
        y=[float(row["accuracy"]) for row in rows],
        mode="lines+markers", name="model", line={"color": _color(0)},
        marker={"size": [8 + 16 * math.sqrt(n / biggest) for n in counts]},
        text=[f"{row['low']:.1f}-{row['high']:.1f}: {row['n']} answers" for row in rows],
        hovertemplate="%{text}<br>confidence %{x:.3f}<br>accuracy %{y:.1%}<extra></extra>",
    )  # fmt: skip
    figure.update_layout(title=title, xaxis={"title": "mean confidence", "range": [0, 1.02]},
                         yaxis={"title": "accuracy", "range": [0, 1.05]}, **_LAYOUT)  # fmt: skip
    return figure


def coverage_accuracy_figure(
    rows: Sequence[Mapping], threshold: Mapping | None = None
) -> go.Figure:
    """Accuracy of the answers kept against the share of notes answered (selective prediction).

    Rows as vetllm.calibration.selective_table gives them ({"coverage", "accuracy",
    "threshold"}); `threshold`, when the run chose one, is marked ({"coverage", "accuracy"}).
    """
    ordered = sorted(rows, key=lambda row: float(row["coverage"]))
    figure = go.Figure()
    figure.add_scatter(
        x=[float(row["coverage"]) for row in ordered],
        y=[float(row["accuracy"]) for row in ordered],
        mode="lines+markers", name="model", line={"color": _color(0)},
        text=[f"confidence >= {float(row['threshold']):.3f}" for row in ordered],
        hovertemplate="%{text}<br>coverage %{x:.1%}<br>accuracy %{y:.1%}<extra></extra>",
    )  # fmt: skip
    if threshold and _finite(threshold.get("coverage")) and _finite(threshold.get("accuracy")):
        figure.add_scatter(x=[threshold["coverage"]], y=[threshold["accuracy"]], mode="markers",
                           name="chosen threshold",
                           marker={"color": _color(1), "size": 14, "symbol": "star"})  # fmt: skip
    figure.update_layout(title="Accuracy vs coverage (most confident answers kept)",
                         xaxis={"title": "coverage (share of notes answered)", "range": [0, 1.02]},
                         yaxis={"title": "accuracy on answered notes"}, **_LAYOUT)  # fmt: skip
    return figure
