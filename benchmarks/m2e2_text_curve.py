"""Learning curves of M2E2-text runs: held-out F1 of every saved checkpoint against training passes.

    python benchmarks/m2e2_text_curve.py --run "SmolLM2-135M=W1" --run "Gemma 3 270M=W2" \
        --split ../shared/data/splits/m2e2_text_docs.json --part dev --out benchmarks/m2e2_text_curve

Each run is a `configs/m2e2_text.py` workdir trained with `--config.data.m2e2.heldout_part=PART`
and checkpoints kept (`--config.checkpoint.keep`). Every checkpoint step without a score is
predicted by `configs/predict_m2e2.py` with the run's own decode block into
W/curve_PART/STEP/ (kept, so a rerun only decodes new steps); the last step reuses the run's
end-of-run W/heldout/metrics.json when its held-out part is PART. Prints a markdown table
(step, passes, examples, training loss over the last tenth before the step, text_event and
text_argument P/R/F1) and draws OUT.png.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from rmpl_jax.io.read_report import load_json
from rmpl_jax.train.metrics_log import read_metrics

SETTINGS = ("text_event", "text_argument")


def _steps(workdir: str) -> list[int]:
    directory = os.path.join(workdir, "stage2", "checkpoints")
    return sorted(int(name) for name in os.listdir(directory) if name.isdigit())


def _decode_overrides(run_config: dict) -> list[str]:
    out = []
    for key, value in run_config["decode"].items():
        text = "(" + ",".join(map(str, value)) + ")" if isinstance(value, list) else str(value)
        out.append(f"--config.decode.{key}={text}")
    return out


def _scored_dir(workdir: str, step: int, last: bool, run_config: dict, split: str, part: str) -> str:
    """The directory with `step`'s predictions.jsonl and metrics.json on `part`, predicted if absent."""
    end_of_run = os.path.join(workdir, "heldout")
    if last and run_config["data"]["m2e2"]["heldout_part"] == part and os.path.exists(end_of_run):
        return end_of_run
    out = os.path.join(workdir, f"curve_{part}", str(step))
    if not os.path.exists(os.path.join(out, "metrics.json")):
        command = [
            sys.executable, "-m", "rmpl_jax.main", "--config", "configs/predict_m2e2.py", "--workdir", out,
            f"--config.checkpoint={os.path.join(workdir, 'stage2', 'checkpoints')}",
            f"--config.checkpoint_step={step}", f"--config.split={split}", f"--config.split_part={part}",
            *_decode_overrides(run_config),
        ]  # fmt: skip
        print(f"predicting {workdir} step {step} ...", file=sys.stderr, flush=True)
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return out


def curve(workdir: str, split: str, part: str, pass_examples: int, only: set[int] | None = None) -> list[dict]:
    """One row per checkpoint step (those in `only` when given): passes, examples, recent loss
    and the held-out scores."""
    run_config = load_json(os.path.join(workdir, "config.json"))
    log = [line for line in read_metrics(os.path.join(workdir, "stage2")) if "examples" in line]
    steps = _steps(workdir)
    rows = []
    for step in steps if only is None else [s for s in steps if s in only]:
        seen = [line for line in log if line["step"] <= step]
        examples = int(sum(line["examples"] for line in seen))
        recent = seen[-max(1, len(seen) // 10) :]
        scored = _scored_dir(workdir, step, step == steps[-1], run_config, split, part)
        metrics = load_json(os.path.join(scored, "metrics.json"))
        rows.append(
            dict(
                step=step,
                examples=examples,
                passes=examples / pass_examples,
                loss=float(np.mean([line["loss"] for line in recent])),
                **{name: metrics[name] for name in SETTINGS},
            )
        )
    return rows


def _table(name: str, rows: list[dict]) -> str:
    lines = [
        f"| {name}: step | passes | examples | training loss (last tenth of its steps) "
        "| text_event P / R / F1 | text_argument P / R / F1 |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        cells = [" / ".join(f"{100 * r[s][k]:.1f}" for k in ("p", "r", "f1")) for s in SETTINGS]
        head = f"| {r['step']} | {r['passes']:.2f} | {r['examples']} | {r['loss']:.3f}"
        lines.append(f"{head} | {cells[0]} | {cells[1]} |")
    return "\n".join(lines)


def plot(curves: dict[str, list[dict]], part: str) -> Figure:
    """text_event and text_argument F1 against passes, one line per run."""
    figure = Figure(figsize=(9, 3.4), layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(1, len(SETTINGS))
    for ax, setting in zip(axes, SETTINGS):
        for name, rows in curves.items():
            ax.plot([r["passes"] for r in rows], [100 * r[setting]["f1"] for r in rows], marker="o", label=name)
        ax.set_title(f"{part} {setting} F1 (strict)")
        ax.set_xlabel("passes over the training examples")
        ax.grid(alpha=0.3)
    axes[0].legend()
    return figure


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", action="append", required=True, help="NAME=WORKDIR (repeatable)")
    parser.add_argument("--split", required=True, help="the document split JSON the runs trained with")
    parser.add_argument("--part", default="dev", help="the held-out part to score")
    parser.add_argument(
        "--pass-examples", type=int, default=2183,
        help="training examples in one pass (run.md's stage tasks; 2,183 for configs/m2e2_text.py)",
    )  # fmt: skip
    parser.add_argument("--steps", default="", help="comma-separated checkpoint steps to score (default: all)")
    parser.add_argument("--out", required=True, help="OUT.png is written")
    args = parser.parse_args(argv)
    curves = {}
    for spec in args.run:
        name, _, workdir = spec.partition("=")
        if not workdir:
            parser.error(f"--run {spec!r}: expected NAME=WORKDIR")
        for needed in ("config.json", os.path.join("stage2", "checkpoints"), os.path.join("stage2", "metrics.jsonl")):
            if not os.path.exists(os.path.join(workdir, needed)):
                parser.error(f"--run {spec!r}: {os.path.join(workdir, needed)} not found (a configs/m2e2_text.py run?)")
        only = {int(s) for s in args.steps.split(",")} if args.steps else None
        curves[name] = curve(workdir, args.split, args.part, args.pass_examples, only)
        print(_table(name, curves[name]) + "\n")
    plot(curves, args.part).savefig(args.out + ".png", dpi=110)
    return 0


if __name__ == "__main__":
    sys.exit(main())
