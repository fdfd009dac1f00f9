"""`W/curves.png`: loss, learning rate and tokens/s against step, one column per stage, from
the stages' `metrics.jsonl` (matplotlib's Agg canvas: no display, no global pyplot state)."""

from __future__ import annotations

import os

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rmpl_jax.train.metrics_log import read_metrics

PANELS = (("loss", "loss"), ("learning_rate", "learning rate"), ("tokens_per_s", "answer tokens/s"))


def plot_curves(stages: dict[str, list[dict]]) -> Figure:
    """A figure with a row per metric and a column per stage (stage name -> logged lines)."""
    columns = max(1, len(stages))
    figure = Figure(figsize=(4.2 * columns, 7.5), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(PANELS), columns, squeeze=False)
    for col, (name, lines) in enumerate(stages.items()):
        for row, (key, label) in enumerate(PANELS):
            ax = axes[row][col]
            points = [(line["step"], line[key]) for line in lines if key in line]
            if points:
                ax.plot(*zip(*points), linewidth=1.2)
                values = [v for _, v in points]
                if key == "loss" and min(values) > 0 and max(values) >= 10 * min(values):
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
    plot_curves(stages).savefig(path, dpi=100)
    return path
