"""Hugging Face safetensors <-> NNX state, driven by a family's `NameRule` table.

Loading streams one tensor at a time (`safe_open(..., framework='numpy')`, memory-mapped),
assembles one target leaf at a time on the host (stacked layers, fused slices), casts it to
the leaf's dtype and places it with `jax.device_put` / `jax.make_array_from_callback` into an
optional per-leaf sharding, so the peak host memory is about one leaf. The model to fill is
built abstractly (`nnx.eval_shape`), so random initialisation of a 7B model never happens.

Export walks the same table backwards and writes HF-layout safetensors (sharded with an
index above `max_shard_bytes`) plus config.json; LoRA adapters are folded in on the fly
(the model itself is not changed).
"""

from __future__ import annotations

import dataclasses
import json
import re
import struct
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path

import jax
import ml_dtypes
import numpy as np
from flax import nnx
from jax.experimental import multihost_utils
from safetensors import safe_open
from safetensors.numpy import save_file

from rmpl_jax.models.hf.names import NameRule
from rmpl_jax.models.layers import Linear, modules_by_path, variables_by_path

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

# safetensors dtype tags numpy cannot name itself.
_RAW_DTYPES = {"BF16": ml_dtypes.bfloat16, "F8_E4M3": ml_dtypes.float8_e4m3fn, "F8_E5M2": ml_dtypes.float8_e5m2}
_NP_DTYPES = {
    "F64": np.float64,
    "F32": np.float32,
    "F16": np.float16,
    "I64": np.int64,
    "I32": np.int32,
    "I16": np.int16,
    "I8": np.int8,
    "U8": np.uint8,
    "BOOL": np.bool_,
    **_RAW_DTYPES,
}

Shardings = Mapping[str, jax.sharding.Sharding] | Callable[[str, nnx.Variable], jax.sharding.Sharding | None] | None


class CheckpointError(ValueError):
    """A checkpoint does not fit the model: names the tensors and the files."""


def _list(names: Iterable[str], limit: int = 10) -> str:
    names = sorted(names)
    more = f" ... and {len(names) - limit} more" if len(names) > limit else ""
    return ", ".join(names[:limit]) + more


class SafetensorsDir:
    """The tensors of an HF model directory (single file or sharded with an index)."""

    def __init__(self, hf_dir: str | Path):
        self.dir = Path(hf_dir)
        index = self.dir / INDEX_FILE
        single = self.dir / SINGLE_FILE
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text())["weight_map"]
            except (json.JSONDecodeError, KeyError) as err:
                raise CheckpointError(f"{index}: not a safetensors index with a 'weight_map' ({err})") from err
            self.file_of = {name: self.dir / fname for name, fname in weight_map.items()}
            for path in set(self.file_of.values()):
                if not path.is_file():
                    raise CheckpointError(f"{index}: names shard {path.name}, which does not exist")
        elif single.is_file():
            with safe_open(str(single), framework="numpy") as f:
                self.file_of = dict.fromkeys(f.keys(), single)
        else:
            found = sorted(p.name for p in self.dir.glob("*")) if self.dir.is_dir() else "no such directory"
            raise CheckpointError(f"{self.dir}: neither {SINGLE_FILE} nor {INDEX_FILE} (found: {found})")
        self._handles: dict[Path, object] = {}

    def names(self) -> list[str]:
        return list(self.file_of)

    def _handle(self, path: Path):

        if path not in self._handles:
            self._handles[path] = safe_open(str(path), framework="numpy")
        return self._handles[path]

    def read(self, name: str) -> np.ndarray:
        """One tensor as numpy (bf16/fp8 via ml_dtypes: read raw when safetensors cannot)."""
        path = self.file_of[name]
        try:
            return self._handle(path).get_tensor(name)
        except (TypeError, ValueError) as err:  # old safetensors: no numpy bf16
            return _read_raw(path, name, err)

    def close(self) -> None:
        self._handles.clear()


def _read_raw(path: Path, name: str, why: Exception) -> np.ndarray:
    with open(path, "rb") as f:
        (n,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(n))
    info = header.get(name)
    if info is None or info["dtype"] not in _NP_DTYPES:
        raise CheckpointError(f"{path}: tensor {name!r} cannot be read ({why})") from why
    start, stop = info["data_offsets"]
    data = np.memmap(path, dtype=np.uint8, mode="r", offset=8 + n + start, shape=(stop - start,))
    return np.asarray(data.view(_NP_DTYPES[info["dtype"]]).reshape(info["shape"]))


@dataclasses.dataclass
class LoadReport:
    """What a load did: tensors read, and (lenient mode only) tensors skipped."""

    loaded: int = 0
    skipped: list[str] = dataclasses.field(default_factory=list)


def _resolve_sharding(shardings: Shardings, path: str, var: nnx.Variable):
    if shardings is None:
        return None
    if callable(shardings):
        return shardings(path, var)
    return shardings.get(path)


def _place(buf: np.ndarray, sharding) -> jax.Array:
    if sharding is None:
        return jax.device_put(buf)
    return jax.make_array_from_callback(buf.shape, sharding, lambda idx: buf[idx])


def load_state(
    model: nnx.Module,
    hf_dir: str | Path,
    rules: list[NameRule],
    *,
    canonical: Callable[[str], str] = lambda n: n,
    ignore: Iterable[str] = (),
    shardings: Shardings = None,
    strict: bool = True,
) -> LoadReport:
    """Fills every `nnx.Param` of `model` (abstract or concrete) from the checkpoint.

    rules: the family's name table; canonical: maps alternative HF spellings to the table's;
    ignore: regexes of HF tensors that are known and deliberately unused (tied lm_head, rotary
    buffers). strict=False skips unexpected tensors and reports them instead of raising;
    missing or wrongly shaped tensors always raise.
    """
    files = SafetensorsDir(hf_dir)
    params = variables_by_path(model, nnx.Param)
    names: dict[str, str] = {}
    for raw in files.names():
        name = canonical(raw)
        if name in names:
            raise CheckpointError(f"{files.dir}: tensors {names[name]!r} and {raw!r} both map to {name!r}")
        names[name] = raw
    by_leaf: dict[str, list[tuple[NameRule, int | None, str]]] = defaultdict(list)
    report = LoadReport()
    for name in names:
        matches = [(r, m) for r in rules if (m := r.match(name))]
        if not matches:
            if any(re.fullmatch(p, name) for p in ignore):
                continue
            report.skipped.append(names[name])
            continue
        if len(matches) > 1:
            raise CheckpointError(f"{name!r} matches several rules: {[r.ours for r, _ in matches]}")
        rule, m = matches[0]
        layer = int(m["layer"]) if "layer" in m.groupdict() else None
        by_leaf[rule.ours].append((rule, layer, name))
    if report.skipped and strict:
        raise CheckpointError(f"{files.dir}: {len(report.skipped)} unexpected tensors: {_list(report.skipped)}")

    # What the table expects: every rule once, or once per layer of a stacked leaf.
    unknown_leaves = sorted({r.ours for r in rules} - set(params))
    if unknown_leaves:
        raise CheckpointError(f"name table targets leaves the model lacks: {_list(unknown_leaves)}")
    for path, entries in by_leaf.items():
        depth = params[path].get_value().shape[0]
        extra = [names[n] for _, layer, n in entries if layer is not None and layer >= depth]
        if extra:
            raise CheckpointError(
                f"{files.dir}: {_list(extra)}: layer index beyond the model's {depth} "
                f"layers (config.json and the weights disagree)"
            )
    missing = []
    for rule in rules:
        shape = params[rule.ours].get_value().shape
        stacked = "(?P<layer>" in rule.hf
        expected = [rule.hf_name(i) for i in range(shape[0])] if stacked else [rule.hf_name()]
        missing += [n for n in expected if n not in names]
    if missing:
        raise CheckpointError(f"{files.dir}: {len(missing)} tensors missing: {_list(missing)}")
    uncovered = sorted(set(params) - set(by_leaf))
    if uncovered:
        raise CheckpointError(f"no checkpoint tensor fills model parameters: {_list(uncovered)}")

    for path, entries in by_leaf.items():
        var = params[path]
        value = var.get_value()
        buf = np.zeros(value.shape, dtype=value.dtype)
        for rule, layer, name in entries:
            target = buf if layer is None else buf[layer]
            slot = rule.slot(target)
            tensor = rule.to_ours(files.read(names[name]))
            if tensor.shape != slot.shape:
                raise CheckpointError(
                    f"{files.file_of[names[name]].name}: tensor {names[name]!r} has shape "
                    f"{files.read(names[name]).shape}; {path} expects {slot.shape} in our "
                    f"layout (after transpose/flatten) for it"
                )
            slot[...] = tensor.astype(buf.dtype)
            report.loaded += 1
        var.set_value(_place(buf, _resolve_sharding(shardings, path, var)))
        del buf
    files.close()
    return report


# -- export ---------------------------------------------------------------------------------------
def _host(x: jax.Array) -> np.ndarray:
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        x = multihost_utils.process_allgather(x, tiled=True)
    return np.asarray(jax.device_get(x))


def merged_leaf(model: nnx.Module, path: str) -> np.ndarray:
    """The host value of a parameter with any LoRA of its Linear folded in (model unchanged).
    Adapters are added one segment at a time, so the extra memory is one segment in float32."""
    var = variables_by_path(model, nnx.Param)[path]
    value = _host(var[...])
    owner = modules_by_path(model, Linear).get(path[: -len("/kernel")]) if path.endswith("/kernel") else None
    if owner is None or not owner.lora_segments:
        return value
    value = np.array(value)  # writable copy
    flat = value.reshape(*value.shape[: -len(owner.out_shape)], owner.out_features)
    for start, stop, delta in owner.lora_segment_deltas():
        merged = flat[..., start:stop].astype(np.float32) + _host(delta)
        flat[..., start:stop] = merged.astype(value.dtype)
    return value


def iter_hf_tensors(model: nnx.Module, rules: list[NameRule], dtype=None):
    """Yields (hf_name, numpy tensor) in table order, LoRA merged, cast to `dtype` if given."""
    for ours in dict.fromkeys(r.ours for r in rules):
        leaf = merged_leaf(model, ours)
        for rule in (r for r in rules if r.ours == ours):
            stacked = "(?P<layer>" in rule.hf
            for layer in range(leaf.shape[0]) if stacked else [None]:
                part = rule.slot(leaf if layer is None else leaf[layer])
                tensor = rule.to_hf(np.asarray(part))
                yield rule.hf_name(layer), tensor if dtype is None else tensor.astype(dtype)


def save_safetensors(
    tensors: Iterable[tuple[str, np.ndarray]], out_dir: str | Path, max_shard_bytes: int = 4 << 30
) -> list[Path]:
    """Writes tensors as model.safetensors, or numbered shards plus an index when larger."""

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    written: list[Path] = []
    weight_map: dict[str, int] = {}
    size = total = 0
    tmp_names = []

    def flush():
        idx = len(tmp_names)
        path = out_dir / f".shard-{idx:05d}.safetensors"
        save_file(shards[-1], str(path), metadata={"format": "pt"})
        tmp_names.append(path)
        shards[-1] = {}

    for name, tensor in tensors:
        if name in weight_map:
            raise ValueError(f"export produced {name!r} twice")
        if size and size + tensor.nbytes > max_shard_bytes:
            flush()
            size = 0
        shards[-1][name] = np.ascontiguousarray(tensor)
        weight_map[name] = len(tmp_names)
        size += tensor.nbytes
        total += tensor.nbytes
    flush()
    for stale in [out_dir / SINGLE_FILE, out_dir / INDEX_FILE, *out_dir.glob("model-*-of-*.safetensors")]:
        stale.unlink(missing_ok=True)
    if len(tmp_names) == 1:
        final = out_dir / SINGLE_FILE
        tmp_names[0].rename(final)
        return [final]
    n = len(tmp_names)
    for i, tmp in enumerate(tmp_names):
        final = out_dir / f"model-{i + 1:05d}-of-{n:05d}.safetensors"
        tmp.rename(final)
        written.append(final)
    index = {
        "metadata": {"total_size": total},
        "weight_map": {name: written[i].name for name, i in sorted(weight_map.items())},
    }
    (out_dir / INDEX_FILE).write_text(json.dumps(index, indent=2) + "\n")
    return written


def export_state(
    model: nnx.Module,
    out_dir: str | Path,
    rules: list[NameRule],
    config: dict,
    *,
    dtype=None,
    max_shard_bytes: int = 4 << 30,
) -> list[Path]:
    """Writes HF safetensors (LoRA merged) and config.json; in a multi-process job every
    process must call it (arrays are gathered) and only process 0 writes."""
    tensors = iter_hf_tensors(model, rules, dtype)
    if jax.process_index() != 0:
        for _ in tensors:  # take part in the gathers
            pass
        return []
    files = save_safetensors(tensors, out_dir, max_shard_bytes)
    (Path(out_dir) / "config.json").write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return files
