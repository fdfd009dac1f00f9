"""`W/run.md`: what a run was and what it gave, in one page of Markdown — config, model, data
sizes per task, steps, wall time, final scores, and everything the run counted as skipped."""

from __future__ import annotations

import dataclasses
import datetime
import time

from rmpl_jax.eval.scorer import SETTINGS, VARIANTS
from rmpl_jax.io import paths


@dataclasses.dataclass
class StageSummary:
    """One stage as this invocation ran it."""

    name: str
    tasks: dict[str, tuple[int, float]]  # task -> (examples, mixture weight)
    left_out: tuple[str, ...]  # configured tasks that had no examples
    first_step: int  # where this invocation started (a resumed stage starts past 0)
    last_step: int
    total_steps: int
    seconds: float  # the step loop's wall time
    compile_seconds: float | None
    trainable_params: int
    total_params: int
    loss: tuple[float, float] | None = None  # mean of the first and last tenth of the steps run
    input_tokens: float = 0.0  # the rows' tokens over the steps run, padding not counted
    batch_tokens: float = 0.0  # the rows' token slots (input tokens + padding)
    examples: float = 0.0


@dataclasses.dataclass
class RunCard:
    """Filled while the run goes; `markdown()` renders it."""

    workdir: str
    config_json: str
    model: dict[str, object]
    data: dict[str, object]
    stages: list[StageSummary] = dataclasses.field(default_factory=list)
    scores: dict | None = None  # the scorer's `as_dict()` on held-out data
    scores_about: str = ""
    skips: list[str] = dataclasses.field(default_factory=list)
    outputs: list[str] = dataclasses.field(default_factory=list)
    started: float = dataclasses.field(default_factory=time.time)

    def markdown(self, finished: float | None = None) -> str:
        finished = time.time() if finished is None else finished
        lines = [
            "# Run card",
            "",
            f"- workdir: `{self.workdir}`",
            f"- started {_utc(self.started)}, finished {_utc(finished)}: "
            f"wall time {_duration(finished - self.started)}",
            "",
            "## Model",
            "",
            *(f"- {k}: {v}" for k, v in self.model.items()),
            "",
            "## Data",
            "",
            *(f"- {k}: {v}" for k, v in self.data.items()),
            "",
            "## Stages",
            "",
            *self._stages(),
            "## Scores",
            "",
            *self._scores(),
            "## Skips",
            "",
            *([f"- {s}" for s in self.skips] or ["- nothing was skipped"]),
            "",
        ]
        if self.outputs:
            lines += ["## Outputs", "", *(f"- `{o}`" for o in self.outputs), ""]
        lines += ["## Config", "", "```json", self.config_json.strip(), "```", ""]
        return "\n".join(lines)

    def _stages(self) -> list[str]:
        if not self.stages:
            return ["No stage ran.", ""]
        out = [
            "| stage | steps (this run) | of | wall time | compile | steps/s | input tokens/s | padding "
            "| examples/step | loss first -> last | trainable / total params |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for s in self.stages:
            run = s.last_step - s.first_step
            timed = run and s.seconds > 0
            rate = f"{run / s.seconds:.2f}" if timed else "-"
            tokens = f"{s.input_tokens / s.seconds:,.0f}" if timed and s.input_tokens else "-"
            padding = f"{100 * (1 - s.input_tokens / s.batch_tokens):.1f}%" if s.batch_tokens else "-"
            examples = f"{s.examples / run:.1f}" if run and s.examples else "-"
            loss = f"{s.loss[0]:.3f} -> {s.loss[1]:.3f}" if s.loss else "-"
            compile_s = f"{s.compile_seconds:.1f} s" if s.compile_seconds is not None else "-"
            out.append(
                f"| {s.name} | {s.first_step} -> {s.last_step} ({run}) | {s.total_steps} | "
                f"{_duration(s.seconds)} | {compile_s} | {rate} | {tokens} | {padding} | {examples} | {loss} | "
                f"{s.trainable_params:,} / {s.total_params:,} |"
            )
        out.append("")
        for s in self.stages:
            tasks = ", ".join(f"{t} {n:,} examples (weight {w:g})" for t, (n, w) in s.tasks.items())
            out.append(f"- {s.name} tasks: {tasks}")
        return [*out, ""]

    def _scores(self) -> list[str]:
        if not self.scores:
            return ["No scores: this run scored nothing.", ""]
        out = [self.scores_about, "", "| setting | P | R | F1 | tp | pred | gold |", "|---" * 7 + "|"]
        rows = [(n, self.scores[n]) for n in SETTINGS if n in self.scores]
        rows += [(n, self.scores.get("variants", {})[n]) for n in VARIANTS if n in self.scores.get("variants", {})]
        for name, s in rows:
            out.append(
                f"| {name} | {100 * s['p']:.1f} | {100 * s['r']:.1f} | {100 * s['f1']:.1f} | "
                f"{s['tp']} | {s['pred']} | {s['gold']} |"
            )
        return [*out, ""]

    def write(self, path: str) -> str:
        return paths.write_text(path, self.markdown())


def _utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _duration(seconds: float) -> str:
    minutes, s = divmod(round(seconds), 60)
    return f"{minutes} min {s} s" if minutes else f"{seconds:.1f} s"
