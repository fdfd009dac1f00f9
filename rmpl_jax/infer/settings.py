"""Decode settings: one config block, `decode`, for the training run's held-out decode
(`configs/stage1.py` and the configs built on it) and for `mode=predict`
(`configs/predict_m2e2.py`), read into one typed `DecodeSettings`. The defaults live here
only: both configs take their block from `decode_block()`.

    python -m rmpl_jax.main --config configs/predict_m2e2.py --config.decode.max_new_tokens=96 ...
    python -m rmpl_jax.main --config configs/stage1.py --config.decode.no_event_penalty=0.5

Renamed keys: the training run's `eval.batch_size`, `eval.max_new_tokens`, `eval.buckets`,
`eval.pipeline`, `eval.pair_filter`, `eval.no_event_penalty` and predict's top-level
`batch_size`, `max_new_tokens`, `buckets`, `pipeline`, `pair_filter`, `constrained`,
`temperature`, `no_event_penalty` are all `decode.KEY` now (`RENAMED`); the old spellings are
refused with the new key named. `eval.heldout` stays: whether a training run decodes its
held-out data at all.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import ml_collections

from rmpl_jax.io.errors import ConfigError

BLOCK = "decode"  # the settings' block in a config
AUTO = "auto"  # pipeline: the one the trained stages call for (`resolve_pipeline`)
PIPELINES = ("joint", "stage2", "multimedia")
PAIR_FILTERS = ("all", "events")  # the multimedia pipeline's pairs: every document pair, or both with events
MULTIMEDIA_TASK = "multimedia"  # the training task whose weight > 0 in the last stage makes 'auto' 'multimedia'


@dataclasses.dataclass(frozen=True)
class DecodeSettings:
    """How a model's answers are decoded (`infer.predict.predict_records`, `infer.decode.Decoder`).

    batch_size: prompts per decode call; shapes are static, so the loop compiles once per
    prompt bucket (and value-table shape).
    max_new_tokens: the answer budget in tokens. Constrained decoding finishes every answer
    within it (a token is allowed only when the answer can still end in the budget left), so
    a budget below an answer's length cuts it short rather than leaving it unparsed.
    buckets: prompt lengths; a batch is left-padded to the smallest that holds its longest
    prompt (longer prompts: a multiple of 512).
    pipeline: 'joint' asks for whole events (stage 1's text_ee, visual_ee); 'stage2' for event
    mentions, then each mention's arguments; 'multimedia' is 'stage2' plus the multimedia task
    on a document's (sentence, photo) pairs, whose answers decide the coref records; 'auto':
    the one the trained stages call for (`resolve_pipeline`: 'multimedia' when the last stage
    trains the multimedia task, 'stage2' after stage 2, 'joint' after stage 1 alone; predict
    reads the stages from the training run's config.json, 'stage2' when it finds none).
    pair_filter: the multimedia pipeline's pairs: 'events' only pairs whose sentence and
    photo both got an event from the stage-2 decode, 'all' every document pair.
    constrained: schema-constrained decoding (every output parses; `infer/constrained.py`).
    temperature: 0 decodes greedily, > 0 samples.
    no_event_penalty: subtracted from the logits of the tokens that begin a `none` answer to
    an event-block task (mentions, whole events, multimedia pairs): > 0 gives more events
    (recall for precision); constrained decoding only. Choose it on dev data.

    A bad value is a `ConfigError` naming its `--config.decode.KEY`.
    """

    batch_size: int = 16
    max_new_tokens: int = 128
    buckets: tuple[int, ...] = (64, 128, 256, 512, 768, 1024, 1536, 2048)
    pipeline: str = AUTO
    pair_filter: str = "events"
    constrained: bool = True
    temperature: float = 0.0
    no_event_penalty: float = 0.0

    def __post_init__(self):
        object.__setattr__(self, "buckets", tuple(self.buckets))
        for key in ("batch_size", "max_new_tokens"):
            value = getattr(self, key)
            if not _is_int(value) or value < 1:
                raise _error(key, value, "must be an integer >= 1")
        if not self.buckets or not all(_is_int(b) and b >= 1 for b in self.buckets):
            raise _error("buckets", self.buckets, "give positive token lengths, e.g. '(512, 1024)'")
        if self.pipeline not in (AUTO, *PIPELINES):
            raise _error("pipeline", self.pipeline, f"one of {(AUTO, *PIPELINES)}")
        if self.pair_filter not in PAIR_FILTERS:
            raise _error("pair_filter", self.pair_filter, f"one of {PAIR_FILTERS}")
        if not isinstance(self.constrained, bool):
            raise _error("constrained", self.constrained, "True or False")
        if not _is_number(self.temperature) or self.temperature < 0:
            raise _error("temperature", self.temperature, "a number >= 0 (0: greedy)")
        if not _is_number(self.no_event_penalty):
            raise _error("no_event_penalty", self.no_event_penalty, "a finite number (subtracted from logits)")
        if self.no_event_penalty and not self.constrained:
            why = f"needs constrained decoding (--config.{BLOCK}.constrained=True)"
            raise _error("no_event_penalty", self.no_event_penalty, why)

    @classmethod
    def from_config(cls, block) -> DecodeSettings:
        """The settings of a config's `decode` block (an ml_collections ConfigDict or a mapping,
        e.g. a run's config.json); a key the settings do not have is refused."""
        if block is None:
            raise ConfigError(f"the config has no `{BLOCK}` block (rmpl_jax.infer.settings.decode_block() makes one)")
        values = dict(block)
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(f"--config.{BLOCK}.{unknown[0]}: not a decode setting; the settings are {sorted(known)}")
        if isinstance(values.get("buckets"), list):  # JSON
            values["buckets"] = tuple(values["buckets"])
        return cls(**values)

    def resolved(self, stages: Sequence[str], last_tasks: Mapping[str, float] | None) -> DecodeSettings:
        """These settings with an 'auto' pipeline replaced by `resolve_pipeline`'s choice."""
        return dataclasses.replace(self, pipeline=resolve_pipeline(self.pipeline, stages, last_tasks))


def resolve_pipeline(pipeline: str, stages: Sequence[str], last_tasks: Mapping[str, float] | None) -> str:
    """`pipeline`, where 'auto' follows the last trained stage: 'multimedia' when it trains the
    multimedia task (`last_tasks`: its task weights), else 'stage2' after stage 2 and 'joint'
    after stage 1 alone; no stages known (no training run found): 'stage2'."""
    if pipeline != AUTO:
        return pipeline
    if not stages:
        return "stage2"
    if (last_tasks or {}).get(MULTIMEDIA_TASK, 0) > 0:
        return "multimedia"
    return "stage2" if stages[-1] == "stage2" else "joint"


def decode_block() -> ml_collections.ConfigDict:
    """A config's `decode` block with the defaults of `DecodeSettings` (see its docstring)."""
    return ml_collections.ConfigDict(dataclasses.asdict(DecodeSettings()))


# Old spelling (a config key path) -> the key it is now.
_FIELDS = tuple(f.name for f in dataclasses.fields(DecodeSettings))
_EVAL_KEYS = ("batch_size", "max_new_tokens", "buckets", "pipeline", "pair_filter", "no_event_penalty")
RENAMED = {
    **{f"eval.{k}": f"{BLOCK}.{k}" for k in _EVAL_KEYS},
    **{k: f"{BLOCK}.{k}" for k in _FIELDS},
}


def renamed_flags(argv: Sequence[str]) -> list[str]:
    """'--config.OLD is now --config.NEW' for each renamed key `argv` overrides."""
    out = []
    for arg in argv:
        if arg.startswith("--config."):
            key = arg[len("--config.") :].split("=", 1)[0]
            if key in RENAMED:
                out.append(f"--config.{key} is now --config.{RENAMED[key]}")
    return list(dict.fromkeys(out))


def check_not_renamed(config) -> None:
    """A ConfigError when a config (edited in Python, where a new key is just added) still sets
    a renamed key."""
    for old, new in RENAMED.items():
        block, _, key = old.rpartition(".")
        holder = config.get(block) if block else config
        if holder is not None and hasattr(holder, "keys") and key in holder:
            raise ConfigError(f"--config.{old} is now --config.{new}")


def _error(key: str, value, why: str) -> ConfigError:
    return ConfigError(f"--config.{BLOCK}.{key}={value!r}: {why}")


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
