"""`W/curves.png`: loss, learning rate, input tokens/s and padding share against step, one
column per stage, from the stages' `metrics.jsonl` (matplotlib's Agg canvas: no display, no
global pyplot state). Noisy per-step values are drawn faint with their running mean on top."""

from __future__ import annotations

import io
import os

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rmpl_jax.io import paths
from rmpl_jax.train.metrics_log import read_metrics

SMOOTHING_POINTS = 25  # the running mean covers 1/25 of a stage's logged steps
PANELS = (
    ("loss", "loss"),
    ("learning_rate", "learning rate"),
    ("input_tokens_per_s", "input tokens/s"),
    ("padding_share", "padding share"),
)


def plot_curves(stages: dict[str, list[dict]]) -> Figure:
    """A figure with a row per metric and a column per stage (stage name -> logged lines)."""
    columns = max(1, len(stages))
    figure = Figure(figsize=(4.2 * columns, 2.5 * len(PANELS)), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(PANELS), columns, squeeze=False)
    for col, (name, lines) in enumerate(stages.items()):
        for row, (key, label) in enumerate(PANELS):
            ax = axes[row][col]
            points = [(line["step"], line[key]) for line in lines if key in line]
            if points:
                steps, values = (np.asarray(v, dtype=float) for v in zip(*points))
                window = len(values) // SMOOTHING_POINTS
                if key != "learning_rate" and window > 1:  # noisy per-step values: a mean over a window on top
                    ax.plot(steps, values, linewidth=0.8, alpha=0.35, color="tab:blue")
                    mean = np.convolve(values, np.ones(window) / window, mode="valid")
                    ax.plot(steps[window - 1 :], mean, linewidth=1.6, color="tab:blue")
                else:
                    ax.plot(steps, values, linewidth=1.2, color="tab:blue")
                if key == "loss" and values.min() > 0 and values.max() >= 10 * values.min():
                    ax.set_yscale("log")  # a from-scratch loss falls by orders of magnitude
            else:
                ax.text(0.5, 0.5, "not logged", ha="center", va="center", transform=ax.transAxes)
            ax.set_ylabel(label)
            ax.grid(alpha=0.3)
            if row == 0:
                ax.set_title(name)
            if row == len(PANELS) - 1:
                ax.set_xlabel("step")
    return figure


def write_curves(workdir: str, stage_names: list[str], path: str | None = None) -> str | None:
    """Plots the logged stages of `workdir` into `path` (default `workdir/curves.png`);
    returns the path, or None when no stage has logged a step."""
    stages = {name: read_metrics(os.path.join(workdir, name)) for name in stage_names}
    stages = {name: lines for name, lines in stages.items() if lines}
    if not stages:
        return None
    path = path or os.path.join(workdir, "curves.png")
    png = io.BytesIO()  # the workdir may be remote (gs://): matplotlib writes local files only
    plot_curves(stages).savefig(png, format="png", dpi=100)
    return paths.write_bytes(path, png.getvalue())
