"""Per-chip memory of the product stage-2 train step and predict decode loop of a preset
model (Qwen2-VL / Qwen2.5-VL or Gemma 3), compiled ahead of time for accelerators this machine
does not have.

    pip install -e '.[tpu-aot]'     # libtpu: the real XLA:TPU compiler, no TPU needed
    python tools/aot_memory.py --model qwen2.5-vl-7b --topology v5e:2x4 --batch 64
    python tools/aot_memory.py --model gemma-3-4b --topology v5e:2x4 --batch 64
    python tools/aot_memory.py --model qwen2.5-vl-tiny --topology cpu:8    # XLA:CPU, 8 devices

`--model` names a preset of any family with presets (`PRESET_MODULES`); its `model_type` picks
the family, and `SYNTHETIC` the module that writes the family's photo tokens and pixels.

The train step is built by the same functions `mode=train` uses (`configs/stage2.py` with
an HF model: `model_options`, `mesh_shape`, `apply_lora`, `split_model`, `make_optimizer`,
`stage_train_step`), with abstract weights (`nnx.eval_shape`: nothing is allocated) sharded
over the topology's chips; the decode loop is `infer.decode.Decoder`'s jit over the same
sharded weights. `--topology v5e:2x4` names 8 abstract TPU v5e chips
(`jax.experimental.topologies.get_topology_desc`); `cpu:N` uses N host devices (set
XLA_FLAGS=--xla_force_host_platform_device_count=N before JAX starts; the tool does).

Prints one JSON line per compiled step: {"step": "train" | "decode", "argument_bytes",
"output_bytes", "temp_bytes", "alias_bytes", "total_bytes" (arguments + outputs + temporaries
- aliased donations: what one chip holds at the peak), "total_gib", "fits" (the total within
the chip's usable HBM, where the tool knows it: `HBM_GIB`), "compile_s", the shapes and
options}; all figures per chip, from XLA's `memory_analysis()` of the compiled program. A
program XLA:TPU refuses for the chip's HBM gives `"fits": false` and the compiler's message
(it names the memory the program would need).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:  # `configs` (the run configs this tool builds from) lives at the repo root
    sys.path.insert(0, REPO)
if __name__ == "__main__":  # host devices must be asked for before JAX starts
    _topo = next((a.split("=", 1)[1] for a in sys.argv if a.startswith("--topology=")), None)
    if _topo is None and "--topology" in sys.argv[:-1]:
        _topo = sys.argv[sys.argv.index("--topology") + 1]
    if _topo and _topo.startswith("cpu:"):
        os.environ["XLA_FLAGS"] = (
            os.environ.get("XLA_FLAGS", "") + f" --xla_force_host_platform_device_count={_topo[4:]}"
        ).strip()

import jax
import numpy as np
from flax import nnx

from configs import stage2
from rmpl_jax.infer.decode import Decoder
from rmpl_jax.infer.settings import DecodeSettings
from rmpl_jax.models import lora
from rmpl_jax.models.family import get_family
from rmpl_jax.models.gemma3 import presets as gemma3_presets
from rmpl_jax.models.gemma3 import synthetic as gemma3_synthetic
from rmpl_jax.models.qwen2_vl import presets as qwen2_vl_presets
from rmpl_jax.models.qwen2_vl import synthetic as qwen2_vl_synthetic
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.loop import stage_optimizer, stage_train_step
from rmpl_jax.train.loss import target_budget
from rmpl_jax.train.model_setup import lora_targets, mesh_shape, model_options
from rmpl_jax.train.state import abstract_train_state, split_model

# Memory a program may use per chip, as XLA:TPU states it when it refuses one ("available HBM").
HBM_GIB = {"TPU v5 lite": 15.75}

# The families' preset modules (`PRESETS` names -> HF config dicts), searched in this order.
PRESET_MODULES = (qwen2_vl_presets, gemma3_presets)
# Family name -> the module with `photo_token_run(cfg, side)` and `photo_inputs(cfg, n, side)`.
SYNTHETIC = {"qwen2_vl": qwen2_vl_synthetic, "gemma3": gemma3_synthetic}


def preset(name: str) -> dict[str, Any]:
    """The HF config dict of a preset of any family (a copy)."""
    for module in PRESET_MODULES:
        if name in module.PRESETS:
            return module.preset(name)
    known = sorted(n for module in PRESET_MODULES for n in module.PRESETS)
    raise SystemExit(f"--model {name!r}: no such preset; known: {known}")


def synthetic(family):
    """The module that writes the family's photo inputs."""
    try:
        return SYNTHETIC[family.name]
    except KeyError:
        raise SystemExit(f"model family {family.name!r} has no photo inputs here; known: {sorted(SYNTHETIC)}") from None


def photo_side(cfg, family, image_side: int) -> int:
    """The side the photos really have: `image_side`, unless the family squashes every photo
    to one square (Gemma 3: the tower's)."""
    module = synthetic(family)
    return module.photo_side(cfg, image_side) if hasattr(module, "photo_side") else image_side


def topology_devices(name: str) -> list:
    """`v5e:2x4`-style names: abstract TPU chips; `cpu:N`: the first N host devices."""
    if name.startswith("cpu:"):
        n = int(name[4:])
        devices = jax.devices("cpu")
        if len(devices) < n:
            raise SystemExit(f"--topology {name}: only {len(devices)} host devices (set XLA_FLAGS before JAX starts)")
        return devices[:n]
    from jax.experimental import topologies

    return list(topologies.get_topology_desc(topology_name=name, platform="tpu").devices)


def run_config(model: str, options: argparse.Namespace):
    """`configs/stage2.py` as a user's 7B run sets it (bf16 HF model, this batch), plus the
    tool's overrides."""
    config = stage2.get_config()
    config.model.hf_dir = model  # only its truthiness counts here: an HF (pretrained) model
    config.model.dtype = options.dtype
    config.model.remat = options.remat
    config.model.attention = options.attention
    config.data.batch_size = options.batch
    if options.mesh:
        config.mesh_shape = tuple(int(x) for x in options.mesh.split(","))
    config.train.head_at_targets = not options.full_head
    if options.loss_chunk:
        config.train.loss_chunk = options.loss_chunk
    return config


def abstract_model(model: str, config, layers: int = 0):
    """The family's model from a preset, shapes only, with the run's dtype and options
    (`layers` > 0: that many decoder layers, for quick checks)."""
    hf = preset(model)
    family = get_family(hf["model_type"])
    if layers:  # the LM's depth: top level (Qwen) or under text_config (Gemma 3)
        hf.get("text_config", hf)["num_hidden_layers"] = layers
    options = model_options(config.model, pretrained=True)
    cfg = family.config_from_hf(hf, dtype=config.model.dtype, param_dtype=config.model.dtype, **options)
    return family, cfg, family.abstract_model(cfg), options


def train_batch(family, cfg, batch: int, seq: int, image_side: int, answer: int) -> dict[str, np.ndarray]:
    """A stage-2 image batch as the pipeline gives it: [B, seq] right-padded tokens with one
    image per row (`image_side`^2 pixels), the answer's `answer` tokens at the end."""
    photos = synthetic(family)
    photo = photos.photo_token_run(cfg, image_side)
    if seq - len(photo) - 10 < answer + 2:
        raise SystemExit(f"--seq {seq}: too short for {len(photo)} photo tokens and a {answer}-token answer")
    ids = np.full((batch, seq), 100, np.int32)
    ids[:, 10 : 10 + len(photo)] = photo
    loss_mask = np.zeros((batch, seq), np.int32)
    loss_mask[:, seq - answer :] = 1
    tokens = {"input_ids": ids, "loss_mask": loss_mask, "attention_mask": np.ones((batch, seq), np.int32)}
    return {**tokens, **photos.photo_inputs(cfg, batch, image_side)}


class DoesNotFit:
    """A program the compiler refused for the chip's memory (XLA:TPU checks HBM at compile time)."""

    def __init__(self, message: str):
        self.message = message


def compile_or_report(lowered: Any) -> Any:
    """The compiled program, or `DoesNotFit` with the compiler's words when it needs more
    memory than a chip has."""
    try:
        return lowered.compile()
    except jax.errors.JaxRuntimeError as err:
        if "RESOURCE_EXHAUSTED" not in str(err):
            raise
        return DoesNotFit(str(err).strip().splitlines()[0])


def memory_record(step: str, compiled: Any, compile_s: float, **extra: Any) -> dict[str, Any]:
    """The JSON line of one compiled program (per chip); `fits: false` and the compiler's
    message when it does not fit."""
    if isinstance(compiled, DoesNotFit):
        return {"step": step, "fits": False, "error": compiled.message, "compile_s": round(compile_s, 1), **extra}
    hbm = HBM_GIB.get(extra.get("device_kind", ""))
    m = compiled.memory_analysis()
    record = {
        "step": step,
        "argument_bytes": int(m.argument_size_in_bytes),
        "output_bytes": int(m.output_size_in_bytes),
        "temp_bytes": int(m.temp_size_in_bytes),
        "alias_bytes": int(m.alias_size_in_bytes),
    }
    total = record["argument_bytes"] + record["output_bytes"] + record["temp_bytes"] - record["alias_bytes"]
    record.update(
        total_bytes=total,
        total_gib=round(total / 2**30, 3),
        fits=None if hbm is None else total / 2**30 <= hbm,
        hbm_gib=hbm,
        compile_s=round(compile_s, 1),
        **extra,
    )
    return record


def compile_train(
    model: str, config, devices: Sequence, seq: int, image_side: int, answer: int, layers: int = 0
) -> dict:
    """AOT-compiles the stage-2 train step of `config` on `devices`; returns its record."""
    family, cfg, net, options = abstract_model(model, config, layers)
    mesh = shd.make_mesh(mesh_shape(config), devices=devices)
    lora.apply_lora(
        net,
        config.model.lora_rank,
        config.model.lora_alpha,
        lora_targets(config.model.lora_targets, family),
        rngs=nnx.Rngs(0),
    )
    layout, trainable, frozen = split_model(net, config.model.trainable_regex or None)
    del net
    stage = config.stage2
    tx, schedule = stage_optimizer(config, stage)
    state = abstract_train_state(layout, trainable, frozen, tx, mesh)
    max_targets = target_budget(answer) if config.train.head_at_targets else None
    step = stage_train_step(config, family, layout, tx, mesh, state, schedule, max_targets)
    host = train_batch(family, cfg, config.data.batch_size, seq, image_side, answer)
    sh = step.batch_shardings(host)
    batch = {k: (jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh[k]) if k in sh else v) for k, v in host.items()}
    t0 = time.perf_counter()
    compiled = compile_or_report(step.lower(state, batch))
    return memory_record(
        "train",
        compiled,
        time.perf_counter() - t0,
        model=model,
        devices=len(devices),
        device_kind=devices[0].device_kind,
        mesh=dict(mesh.shape),
        global_batch=config.data.batch_size,
        seq=seq,
        image_side=photo_side(cfg, family, image_side),
        answer_tokens=answer,
        max_targets=max_targets,
        loss_chunk=config.train.loss_chunk,
        remat=options["remat_policy"],
        attention=options["attention_impl"] or "xla",
        lora_rank=config.model.lora_rank,
        dtype=config.model.dtype,
    )


def compile_decode(
    model: str, config, devices: Sequence, batch: int, prompt: int, new_tokens: int, image_side: int, layers: int = 0
) -> dict:
    """AOT-compiles predict's prefill + decode loop (`Decoder`) over the same sharded
    weights (LoRA merged: no adapters), `batch` prompts of `prompt` tokens with one image."""
    family, cfg, net, options = abstract_model(model, config, layers)
    mesh = shd.make_mesh(mesh_shape(config), devices=devices)
    graphdef, state = nnx.split(net)
    shardings = shd.model_shardings(state, mesh)
    state = jax.tree.map(lambda a, s: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=s), state, shardings)
    decoder = Decoder(
        nnx.merge(graphdef, state),
        batch_size=batch,
        max_new_tokens=new_tokens,
        eos_ids=(cfg.vocab_size - 1,),
        pad_id=0,
    )
    run = synthetic(family).photo_token_run(cfg, image_side)
    image_tokens = batch * int(np.sum(run == cfg.image_token_id))  # the run less its start and end marks
    t0 = time.perf_counter()
    compiled = compile_or_report(decoder.lower(prompt, image_tokens=image_tokens))
    return memory_record(
        "decode",
        compiled,
        time.perf_counter() - t0,
        model=model,
        devices=len(devices),
        device_kind=devices[0].device_kind,
        mesh=dict(mesh.shape),
        batch=batch,
        prompt_tokens=prompt,
        new_tokens=new_tokens,
        attention=options["attention_impl"] or "xla",
        dtype=config.model.dtype,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="qwen2.5-vl-7b", help="a preset of models/{qwen2_vl,gemma3}/presets.py")
    p.add_argument("--topology", default="v5e:2x4", help="TPU topology name (libtpu) or cpu:N")
    p.add_argument("--batch", type=int, default=8, help="global train batch")
    p.add_argument("--seq", type=int, default=1026, help="tokens per training row (image tokens included)")
    p.add_argument("--image-side", type=int, default=448, help="data.image_side (Gemma 3: the tower's)")
    p.add_argument("--answer", type=int, default=256, help="answer tokens per row (the LM head's budget)")
    p.add_argument("--dtype", default="bfloat16")
    p.add_argument("--remat", default="auto", help="model.remat")
    p.add_argument("--attention", default="auto", help="model.attention")
    p.add_argument("--mesh", default="", help="mesh_shape 'data,fsdp,tensor' (default: the run's, fsdp)")
    p.add_argument("--loss-chunk", type=int, default=0, help="train.loss_chunk (0: the config's)")
    p.add_argument("--full-head", action="store_true", help="project every position (train.head_at_targets=False)")
    p.add_argument("--what", default="train,decode")
    predict = DecodeSettings()
    p.add_argument("--decode-batch", type=int, default=predict.batch_size, help="predict's decode.batch_size")
    p.add_argument("--prompt", type=int, default=1024, help="decode prompt bucket")
    p.add_argument("--new-tokens", type=int, default=predict.max_new_tokens, help="predict's decode.max_new_tokens")
    p.add_argument("--layers", type=int, default=0, help="override the LM depth (quick checks)")
    return p.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> list[dict]:
    args = parse_args(argv)
    devices = topology_devices(args.topology)
    config = run_config(args.model, args)
    records = []
    for what in args.what.split(","):
        if what == "train":
            record = compile_train(args.model, config, devices, args.seq, args.image_side, args.answer, args.layers)
        elif what == "decode":
            record = compile_decode(
                args.model,
                config,
                devices,
                args.decode_batch,
                args.prompt,
                args.new_tokens,
                args.image_side,
                args.layers,
            )
        else:
            raise SystemExit(f"--what: unknown step {what!r} (train, decode)")
        record["topology"] = args.topology
        print(json.dumps(record), flush=True)
        records.append(record)
    return records


if __name__ == "__main__":
    main()
