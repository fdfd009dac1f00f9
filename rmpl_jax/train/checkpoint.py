"""Orbax checkpoints of the training state (trainables, optimizer, step, RNG, data position).

Layout of one step directory (Orbax items):
  params/  trainable params, flat {'/'-path: array}  (what `init_from` reads)
  train/   {'opt_state', 'step', 'rng'}
  data/    JSON {'format': 1, 'processes': [state of process 0, 1, ...]}  (iterator states)
Frozen params are not saved: they come from the base model every run.

Each process has its own data iterator, so every process's state is gathered and written
in the one JSON item; on restore each process gets its own entry back.

Resuming (`restore_newest_readable`) survives a damaged newest checkpoint: Orbax finishes a
step directory by renaming it into place, so a save cut short leaves only a temporary
directory that is never listed; a listed step that still cannot be read (truncated or
missing files) is moved aside to `<step>.unreadable` with a warning naming it and the step
used instead.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import time
from collections.abc import Callable, Mapping
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

from rmpl_jax.io import paths
from rmpl_jax.io.errors import UserError
from rmpl_jax.train.state import TrainState, abstract

_FORMAT = 1
_log = logging.getLogger(__name__)


class CheckpointError(UserError, ValueError):
    """A checkpoint that cannot serve this run (unreadable, or other trainables)."""


class CheckpointMismatch(CheckpointError):
    """The checkpoint's trainables differ from this run's: the config changed, not the file."""


_ITEMS = ("params", "train", "data")


def _handlers() -> dict[str, Any]:
    # Registered up front so a fresh manager can read item metadata before any restore.
    return {
        "params": ocp.StandardCheckpointHandler(),
        "train": ocp.StandardCheckpointHandler(),
        "data": ocp.JsonCheckpointHandler(),
    }


def _encode_data_state(data_state: Any) -> Any:
    """Checks the iterator state is JSON-serialisable; bytes (Grain's DataLoader form)
    travel as base64."""
    if data_state is None:
        return None
    if isinstance(data_state, (bytes, bytearray)):
        return {"bytes_b64": base64.b64encode(bytes(data_state)).decode("ascii")}
    if not isinstance(data_state, Mapping):
        raise TypeError(f"data_state must be a dict (JSON-serialisable) or bytes, got {type(data_state).__name__}")
    try:
        json.dumps(data_state)
    except TypeError as e:
        raise TypeError(f"data_state is not JSON-serialisable: {e}") from e
    return {"json": dict(data_state)}


def _decode_data_state(entry: Any) -> Any:
    if entry is None:
        return None
    if "bytes_b64" in entry:
        return base64.b64decode(entry["bytes_b64"])
    return entry["json"]


def _allgather_json(value: Any) -> list[Any]:
    """Every process's JSON value, in process order (one collective; all must call)."""
    if jax.process_count() == 1:
        return [value]

    raw = np.frombuffer(json.dumps(value).encode("utf-8"), np.uint8)
    lengths = np.asarray(multihost_utils.process_allgather(np.int32(raw.size))).reshape(-1)
    padded = np.zeros(int(lengths.max()), np.uint8)
    padded[: raw.size] = raw
    rows = np.asarray(multihost_utils.process_allgather(padded)).reshape(len(lengths), -1)
    return [json.loads(bytes(rows[i, : lengths[i]]).decode("utf-8")) for i in range(len(lengths))]


def _first_line(error: Exception, limit: int = 300) -> str:
    """`Type: first line of the message`, cut to `limit` characters (TensorStore's run long)."""
    lines = str(error).splitlines()
    return f"{type(error).__name__}: {lines[0] if lines else ''}"[:limit]


def _tree_metadata(mgr: ocp.CheckpointManager, step: int) -> Mapping[str, Any]:
    """{param name: array metadata (shape, dtype)} of a step's `params` item."""
    meta = mgr.item_metadata(step)["params"]
    tree = getattr(meta, "tree", meta)  # orbax wraps the tree in TreeMetadata
    if not isinstance(tree, Mapping):
        raise ValueError(f"{mgr.directory}/{step}/params: unexpected metadata {type(tree)}")
    return tree


class CheckpointManager:
    """Saves and restores `TrainState` (minus frozen params) plus the data-iterator state.

    All processes must call `save`/`restore` together (they are collective). Saves are
    synchronous by default: adapters are small, and a finished save is a finished save.
    """

    def __init__(
        self,
        directory: str | os.PathLike,
        *,
        max_to_keep: int | None = 3,
        save_interval_steps: int = 1,
        async_save: bool = False,
    ):
        self.directory = paths.absolute(directory)  # a local folder or a URL (gs://...)
        self.save_interval_steps = int(save_interval_steps)
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            save_interval_steps=save_interval_steps,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self._mgr = ocp.CheckpointManager(self.directory, options=options, item_handlers=_handlers())

    def latest_step(self) -> int | None:
        """Newest finished checkpoint step, None when there is none."""
        return self._mgr.latest_step()

    def due(self, step: int) -> bool:
        """Whether the interval saves at `step`: decided on the host from the step count,
        with no collective, so a loop asks every step and calls `save` only when due."""
        return step > 0 and step % self.save_interval_steps == 0

    def all_steps(self) -> list[int]:
        return list(self._mgr.all_steps())

    def save(self, state: TrainState, data_state: Any = None, *, force: bool = False) -> bool:
        """Saves at `state.step` (when the interval says so, or `force`). `data_state` is this
        process's iterator state: a JSON-serialisable dict or bytes. Returns whether it saved."""
        step = int(jax.device_get(state.step))
        entries = _allgather_json(_encode_data_state(data_state))
        data = {"format": _FORMAT, "processes": entries}
        train = {"opt_state": state.opt_state, "step": state.step, "rng": state.rng}
        return self._mgr.save(
            step,
            force=force,
            args=ocp.args.Composite(
                params=ocp.args.StandardSave(state.trainable),
                train=ocp.args.StandardSave(train),
                data=ocp.args.JsonSave(data),
            ),
        )

    def restore(self, template: TrainState, step: int | None = None) -> tuple[TrainState, Any]:
        """Restores into the shapes/shardings of `template` (a freshly created state, whose
        frozen params are kept). Returns (state, this process's data_state or None)."""
        step = self.latest_step() if step is None else step
        if step is None:
            raise FileNotFoundError(f"no checkpoint in {self.directory}")
        if step not in self.all_steps():
            raise FileNotFoundError(f"no checkpoint for step {step} in {self.directory} (have {self.all_steps()})")
        self._check_names(step, template)
        train_t = {"opt_state": template.opt_state, "step": template.step, "rng": template.rng}
        out = self._mgr.restore(
            step,
            args=ocp.args.Composite(
                params=ocp.args.StandardRestore(abstract(template.trainable)),
                train=ocp.args.StandardRestore(abstract(train_t)),
                data=ocp.args.JsonRestore(),
            ),
        )
        data = out["data"] or {}
        if data.get("format") != _FORMAT:
            raise ValueError(f"{self.directory}/{step}/data: unknown format {data.get('format')!r}")
        entries = data["processes"]
        if len(entries) != jax.process_count():
            raise ValueError(
                f"{self.directory}/{step}/data: saved by {len(entries)} processes, restoring "
                f"with {jax.process_count()}; iterator states cannot be mapped"
            )
        state = template.replace(
            trainable=out["params"],
            opt_state=out["train"]["opt_state"],
            step=out["train"]["step"],
            rng=out["train"]["rng"],
        )
        return state, _decode_data_state(entries[jax.process_index()])

    def _check_names(self, step: int, template: TrainState) -> None:
        saved = set(_tree_metadata(self._mgr, step))
        want = set(template.trainable)
        if saved != want:
            raise CheckpointMismatch(
                f"{self.directory}/{step}/params: trainable params differ from this run "
                f"(missing {sorted(want - saved)[:5]}, unexpected {sorted(saved - want)[:5]}); "
                f"use init_from to start a new stage from another stage's checkpoint"
            )

    def restore_newest_readable(self, template: TrainState) -> tuple[TrainState, Any] | None:
        """`restore` of the newest step that reads back; None when there is no checkpoint.

        A step that fails to read is moved aside (`<step>.unreadable`) with a warning naming
        it and the step tried next, so later saves of that step number work again. A
        checkpoint of other trainables (`CheckpointMismatch`) is raised, not skipped. All
        processes agree on the step used.
        """
        for step in sorted(self.all_steps(), reverse=True):
            error = None
            try:
                restored = self.restore(template, step)
            except CheckpointMismatch:
                raise
            except Exception as e:  # Orbax and TensorStore raise many kinds on damaged files
                error = _first_line(e)
            problems = [p for p in _allgather_json(error) if p is not None]
            if not problems:
                return restored
            older = [s for s in self.all_steps() if s < step]
            aside = self._move_aside(step)
            _log.warning(
                "checkpoint step %d in %s is unreadable (%s); moved it to %s and %s",
                step,
                self.directory,
                problems[0],
                aside,
                f"trying step {older[-1]}" if older else "no older checkpoint is left: starting over",
            )
        return None

    def _move_aside(self, step: int) -> str:
        """Renames a step directory out of Orbax's sight (process 0; all processes wait)."""
        source = os.path.join(self.directory, str(step))
        target = f"{source}.unreadable"
        if paths.exists(target):
            target = f"{target}-{time.time_ns()}"
        if jax.process_index() == 0:
            paths.as_path(source).rename(target)
        if jax.process_count() > 1:
            multihost_utils.sync_global_devices(f"checkpoint_moved_aside_{step}")
        self._mgr.reload()
        return target

    def wait(self) -> None:
        """Blocks until pending (async) saves are done."""
        self._mgr.wait_until_finished()

    def close(self) -> None:
        self._mgr.wait_until_finished()
        self._mgr.close()

    def __enter__(self) -> CheckpointManager:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_params(
    directory: str | os.PathLike,
    step: int | None = None,
    *,
    target: Callable[[str, Any], jax.ShapeDtypeStruct] | None = None,
) -> tuple[int, dict[str, Any]]:
    """(step, {name: array}) of a checkpoint's `params` item (default: its latest step).

    `target(name, metadata)` gives each saved param's shape, dtype and sharding to restore
    into (it raises to refuse a param); without it the params come back as host arrays.
    """
    directory = paths.absolute(directory)
    mgr = ocp.CheckpointManager(
        directory, item_handlers=_handlers(), options=ocp.CheckpointManagerOptions(create=False, read_only=True)
    )
    try:
        step = mgr.latest_step() if step is None else step
        if step is None or step not in mgr.all_steps():
            raise FileNotFoundError(
                f"{directory}: no checkpoint{'' if step is None else f' for step {step}'} "
                f"(have {list(mgr.all_steps())})"
            )
        try:
            if target is None:
                restore = ocp.args.StandardRestore()
            else:
                metadata = _tree_metadata(mgr, step).items()
                restore = ocp.args.StandardRestore({name: target(name, m) for name, m in metadata})
            params = mgr.restore(step, args=ocp.args.Composite(params=restore))["params"]
        except CheckpointError:
            raise
        except Exception as e:  # a damaged step: say which, and what else there is
            raise CheckpointError(
                f"{directory}: step {step} is unreadable ({_first_line(e)}); "
                f"the directory has steps {list(mgr.all_steps())}; pick another step or repair the files"
            ) from None
    finally:
        mgr.close()
    return step, dict(params)


def init_from(
    directory: str | os.PathLike, state: TrainState, step: int | None = None, *, log: logging.Logger | None = None
) -> tuple[TrainState, dict]:
    """Starts a new stage from another stage's checkpoint: loads only its `params` item.

    Each saved param goes to the same path in `state.trainable`, or in `state.frozen` when
    this stage freezes it (e.g. a merger trained in stage 1 only). Optimizer, step, RNG and
    data position start fresh. A saved param absent from this model, or of another shape,
    is an error; this stage's trainables absent from the checkpoint keep their init and are
    listed in the report.
    Returns (state, report) with report = {'step', 'trainable', 'frozen', 'not_in_checkpoint'}.
    """
    where = {}

    def target(name, meta):
        pool = "trainable" if name in state.trainable else ("frozen" if name in state.frozen else None)
        if pool is None:
            raise CheckpointMismatch(f"init_from {directory}: param {name!r} is not in this model")
        ref = getattr(state, pool)[name]
        if tuple(meta.shape) != tuple(ref.shape):
            raise CheckpointMismatch(
                f"init_from {directory}: param {name!r} has shape "
                f"{tuple(meta.shape)}, this model has {tuple(ref.shape)}"
            )
        where[name] = pool
        return jax.ShapeDtypeStruct(ref.shape, ref.dtype, sharding=ref.sharding)

    step, loaded = read_params(directory, step, target=target)
    trainable, frozen = dict(state.trainable), dict(state.frozen)
    for name, value in loaded.items():
        (trainable if where[name] == "trainable" else frozen)[name] = value
    report = {
        "step": step,
        "trainable": sorted(n for n in where if where[n] == "trainable"),
        "frozen": sorted(n for n in where if where[n] == "frozen"),
        "not_in_checkpoint": sorted(set(state.trainable) - set(where)),
    }
    if log is not None:
        log.info(
            "init_from %s step %d: %d trainable, %d frozen params loaded; %d trainables not in checkpoint",
            directory,
            step,
            len(report["trainable"]),
            len(report["frozen"]),
            len(report["not_in_checkpoint"]),
        )
    return state.replace(trainable=trainable, frozen=frozen), report
