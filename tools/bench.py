"""Speed and memory of rmpl_jax on the work of the shared Hugging Face reference benchmark.

    python tools/bench.py --size 7b                          # on the accelerator
    python tools/bench.py --size tiny --what train,decode    # CPU smoke run (seconds)
    python tools/bench.py --size 7b --dry-run --layers 2     # lower + compile only, no arrays

Same shapes as `hf_reference.py` (the shared peer): Qwen2.5-VL with random bf16 weights
built on the device (the init is one jit with sharded outputs: nothing is materialised on
the host), a LoRA step on batch x (text_tokens + one image of image_size^2 pixels) tokens
with adapters of rank r on every LM projection (q, k, v, o, gate, up, down), AdamW; greedy
generation of new_tokens tokens after the same kind of prompt at each decode batch size.

Prints one JSON line per figure: {"figure", "value", "unit", "tool": "rmpl_jax", "size", ...}.
Figures: params, init_s, train_compile_s, train_step_s, train_tokens_per_s,
train_model_tflops, train_mfu, train_mfu_6n, train_peak_memory_gib, train_xla_memory_gib,
decode_first_call_s, decode_tokens_per_s, decode_peak_memory_gib. Logs go to stderr.

Timing: train steps are timed one by one with block_until_ready after `--warmup` untimed
steps (the reference does the same); the figure is the median. Decode time is the whole
`generate` call (vision tower, prefill and the 128-token loop), as for HF's `generate`;
every row generates exactly new_tokens tokens (no end token can occur, like the
reference's min_new_tokens).

FLOP conventions (model FLOPs: recomputation by remat is not counted; a matmul of an
[m, k] by a [k, n] matrix is 2mkn):
  * LoRA-aware (`train_mfu`, `train_model_tflops`): what the step needs. LM projections and
    the LM head: forward 2N plus backward 2N for the input gradient only (the frozen base
    weights get no weight gradient), i.e. 4 N_lm per token; adapters 6 N_lora per token;
    causal self-attention scores and values 2 T^2 H d per layer forward (half the T x T
    matrix), x3 with backward; the vision tower forward only (nothing upstream of it is
    trained): 2 N_vis per patch (merger weights per merged token) plus its windowed/full
    attention. N counts matmul weights (kernels), not embeddings or norms.
  * 6N (`train_mfu_6n`): the usual full fine-tuning convention, 6 (N_lm + N_lora) per token,
    plus the same attention and vision terms: what the step would cost if every LM weight
    were trained. Reported so figures compare with papers quoting 6N MFU.
MFU = model FLOP/s / peak (`--peak-tflops`; by default the datasheet dense bf16 rate of the
device kind when known: 989.4 for H100/H200 SXM).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import statistics
import sys
import time
from collections.abc import Sequence
from typing import Any

import flax
import jax
import numpy as np
from flax import nnx

from configs import stage2
from rmpl_jax.infer.decode import Decoder, Prompt
from rmpl_jax.models.family import get_family
from rmpl_jax.models.lora import apply_lora
from rmpl_jax.models.qwen2_vl.presets import preset
from rmpl_jax.models.qwen2_vl.synthetic import photo_grid, photo_inputs, photo_token_run
from rmpl_jax.models.qwen2_vl.vision_config import VisionConfig
from rmpl_jax.train import sharding as shd
from rmpl_jax.train.loop import stage_optimizer, stage_train_step
from rmpl_jax.train.state import abstract, abstract_train_state, create_train_state, split_model

FAMILY = "qwen2_5_vl"
# --size -> (preset, overrides so the architecture is exactly the reference's SIZES entry)
SIZES = {
    "7b": ("qwen2.5-vl-7b", {}),
    "3b": ("qwen2.5-vl-3b", {"vocab_size": 152064}),  # the reference keeps the 7B vocabulary
    "tiny": ("qwen2.5-vl-tiny", {}),
}
# Datasheet dense bf16 TFLOP/s by device kind substring (MFU denominator when not given).
PEAK_TFLOPS = {"H200": 989.4, "H100": 989.4, "A100": 312.0}


def log(*parts: Any) -> None:
    print("[bench]", *parts, file=sys.stderr, flush=True)


class Emitter:
    """Prints figures as JSON lines (stdout) and keeps them for callers (tests)."""

    def __init__(self, common: dict[str, Any]):
        self.common = common
        self.records: list[dict[str, Any]] = []

    def __call__(self, figure: str, value: Any, unit: str, **extra: Any) -> None:
        rec = {"figure": figure, "value": value, "unit": unit, **self.common, **extra}
        self.records.append(rec)
        print(json.dumps(rec), flush=True)


# ------------------------------------------------------------------------------ config & data


def model_config(
    size: str, *, remat: str | None, attention: str | None, layers: int | None = None, dtype: str = "bfloat16"
):
    """The Qwen2VLConfig of a benchmark size (`dtype` weights and compute)."""
    name, overrides = SIZES[size]
    hf = preset(name)
    hf.update(overrides)
    if layers is not None:
        if layers < 1:
            raise ValueError(f"--layers must be >= 1, got {layers}")
        hf["num_hidden_layers"] = layers
    return get_family(FAMILY).config_from_hf(
        hf, source=f"preset {name}", dtype=dtype, param_dtype=dtype, remat_policy=remat, attention_impl=attention
    )


@dataclasses.dataclass(frozen=True)
class Batch:
    """One benchmark batch: the reference's layout (text, the photo's token run, text) with one
    image per row; `images`: the family's image inputs of the batch's photos."""

    input_ids: np.ndarray  # [B, T] int32
    images: dict[str, np.ndarray]
    grid: np.ndarray  # [B, 3]: (t, h, w) patches of each row's photo, for the FLOP count


def make_batch(cfg, batch: int, text_tokens: int, image_size: int, seed: int = 0) -> Batch:
    """Random token ids and pixels with the reference's shapes."""
    if batch < 1 or text_tokens < 2:
        raise ValueError(f"need batch >= 1 and text tokens >= 2, got {batch}, {text_tokens}")
    rng = np.random.default_rng(seed)
    photo = photo_token_run(cfg, image_size)
    text = rng.integers(0, 150000, (batch, text_tokens), dtype=np.int32)
    half = text_tokens // 2
    ids = np.concatenate([text[:, :half], np.tile(photo, (batch, 1)), text[:, half:]], axis=1)
    grid = np.asarray([photo_grid(cfg, image_size)] * batch, np.int64)
    return Batch(ids, photo_inputs(cfg, batch, image_size, rng), grid)


# ------------------------------------------------------------------------------ FLOPs


def _kernel_sizes(model) -> dict[str, int]:
    """'/'-path -> element count of every matmul weight (kernels; the tied embedding)."""
    out = {}
    for path, var in nnx.to_flat_state(nnx.state(model, nnx.Param)):
        name = "/".join(map(str, path))
        if name.endswith("kernel") or "lora_" in name:
            out[name] = int(math.prod(var.get_value().shape))
    return out


def _segments(n: int, size: int) -> list[int]:
    return [min(size, n - s) for s in range(0, n, size)]


def vision_attention_flops(cfg, grid: np.ndarray) -> float:
    """Forward FLOPs of the vision tower's attention (QK^T and PV, non-causal) for these
    images: windowed blocks attend within merged-patch windows, full blocks within images."""

    vc = VisionConfig.from_hf(cfg.vision_config, cfg.model_type)
    merge = vc.spatial_merge_size
    full = set(vc.fullatt_block_indexes) if vc.variant == "qwen2_5_vl" else set(range(vc.depth))
    total = 0.0
    for t, h, w in np.asarray(grid).reshape(-1, 3):
        full_cost = t * 4.0 * (h * w) ** 2 * vc.width
        if vc.variant == "qwen2_5_vl":
            mw = vc.merger_window
            win = (
                sum(
                    4.0 * (a * b * merge * merge) ** 2 * vc.width
                    for a in _segments(int(h) // merge, mw)
                    for b in _segments(int(w) // merge, mw)
                )
                * t
            )
        else:
            win = full_cost
        total += len(full) * full_cost + (vc.depth - len(full)) * win
    return total


@dataclasses.dataclass(frozen=True)
class FlopCount:
    n_lm: int  # LM projection + head weights
    n_lora: int
    n_vision: int  # vision weights applied per patch
    n_merger: int  # vision merger weights (per merged token)
    lora_aware: float  # per step
    six_n: float  # per step


def train_flops(cfg, model, batch: int, seq: int, grid: np.ndarray) -> FlopCount:
    """Model FLOPs of one LoRA train step (see the module docstring for the conventions)."""
    sizes = _kernel_sizes(model)
    n_lora = sum(v for k, v in sizes.items() if "lora_" in k)
    n_vis = sum(
        v
        for k, v in sizes.items()
        if k.startswith("visual/") and not k.startswith("visual/merger/") and "lora_" not in k
    )
    n_merger = sum(v for k, v in sizes.items() if k.startswith("visual/merger/"))
    n_lm = sum(v for k, v in sizes.items() if not k.startswith("visual/") and "lora_" not in k)
    if cfg.tie_word_embeddings:
        n_lm += cfg.vocab_size * cfg.hidden_size  # the head is the embedding, still a matmul
    tokens = batch * seq
    attn_fwd = batch * cfg.num_layers * 2.0 * seq * seq * cfg.num_heads * cfg.head_dim
    patches = int(np.asarray(grid).reshape(-1, 3).prod(axis=1).sum())
    merge = cfg.spatial_merge_size
    vision = 2.0 * n_vis * patches + 2.0 * n_merger * patches / (merge * merge)
    vision += vision_attention_flops(cfg, grid)
    lora_aware = tokens * (4.0 * n_lm + 6.0 * n_lora) + 3 * attn_fwd + vision
    six_n = tokens * 6.0 * (n_lm + n_lora) + 3 * attn_fwd + vision
    return FlopCount(n_lm, n_lora, n_vis, n_merger, lora_aware, six_n)


# ------------------------------------------------------------------------------ model & state


def count_params(model) -> int:
    return sum(int(math.prod(v.get_value().shape)) for _, v in nnx.to_flat_state(nnx.state(model, nnx.Param)))


def init_model(cfg, mesh=None, seed: int = 0):
    """Random-weight model built on the device: one jit, so no weight passes through host
    memory. With `mesh`, outputs are placed with the parameters' logical-axis shardings (what
    the train step expects, so it takes them without a copy); without, on the default device
    (what the decoder's jit reuses without recompiling for a re-sharded KV cache)."""
    family = get_family(FAMILY)
    graphdef, abstract_state = nnx.split(family.abstract_model(cfg))
    shardings = shd.model_shardings(abstract_state, mesh) if mesh is not None else None

    def make():
        return nnx.split(family.build(cfg, rngs=nnx.Rngs(seed)))[1]

    state = jax.jit(make, out_shardings=shardings)()
    return nnx.merge(graphdef, state)


def with_attention(cfg, state, attention: str | None):
    """A model over the same weights (`state`, no adapters) whose LM attention runs with
    `attention`: only the static graph changes, no array is copied."""
    graphdef = nnx.split(get_family(FAMILY).abstract_model(cfg.replace(attention_impl=attention)))[0]
    return nnx.merge(graphdef, state)


def add_adapters(model, rank: int, alpha: float, seed: int) -> list[str]:
    return apply_lora(model, rank, alpha, get_family(FAMILY).default_lora_targets, rngs=nnx.Rngs(seed + 1))


def peak_memory_gib(device) -> float | None:
    """The allocator's high-water mark since the process started (None where the backend
    keeps no statistics, e.g. CPU)."""
    try:
        stats = device.memory_stats()
    except Exception:  # some backends raise instead of returning None
        return None
    if not stats or "peak_bytes_in_use" not in stats:
        return None
    return stats["peak_bytes_in_use"] / 2**30


def compiled_memory_gib(compiled) -> float | None:
    """XLA's own estimate: arguments + outputs + temporaries - donated aliases."""
    try:
        m = compiled.memory_analysis()
    except Exception:
        return None
    if m is None:
        return None
    total = m.argument_size_in_bytes + m.output_size_in_bytes + m.temp_size_in_bytes - m.alias_size_in_bytes
    return total / 2**30


# ------------------------------------------------------------------------------ train


def product_config(args):
    """`configs/stage2.py` as a 7B run sets it, with the benchmark's loss chunk and a constant
    learning rate (no warmup or decay, as the reference's AdamW)."""
    config = stage2.get_config()
    config.model.dtype = args.dtype
    config.train.loss_chunk = args.loss_chunk
    config.stage2.update(learning_rate=1e-4, warmup_steps=0, steps=None)
    return config


def bench_train(args, cfg, mesh, emit: Emitter, model) -> None:
    """AOT-compiles and times the LoRA train step. `model` is concrete, or abstract for
    --dry-run (then nothing runs: only lowering, compilation and XLA's analyses)."""
    data = make_batch(cfg, args.batch, args.text_tokens, args.image_size)
    adapted = add_adapters(model, args.lora_rank, args.lora_alpha or 2.0 * args.lora_rank, args.seed)
    log(f"LoRA r={args.lora_rank} on {len(adapted)} projections")
    layout, trainable, frozen = split_model(model)
    b, t = data.input_ids.shape
    flops = train_flops(cfg, model, b, t, data.grid)
    # The run's optimizer (AdamW with its gradient clipping) and step; adapters stay f32.
    config = product_config(args)
    tx, schedule = stage_optimizer(config, config.stage2)
    if args.dry_run:
        state = abstract_train_state(layout, trainable, frozen, tx, mesh)
    else:
        state = create_train_state(layout, trainable, frozen, tx, mesh, seed=args.seed)
        shared = sum(state.frozen[k] is frozen[k] for k in frozen)
        if shared != len(frozen):  # a copy would double the weights' memory
            log(f"warning: {len(frozen) - shared} frozen params were copied when placed")
        del trainable, frozen
    # The training run's step factory and options; the loss covers every position (max_targets
    # None), as the reference's does.
    step = stage_train_step(config, get_family(FAMILY), layout, tx, mesh, state, schedule, max_targets=None)
    pixels = {k: v.astype(cfg.compute_dtype) if v.dtype == np.float32 else v for k, v in data.images.items()}
    host = {"input_ids": data.input_ids, "loss_mask": np.ones_like(data.input_ids), **pixels}
    sh = step.batch_shardings(host)
    if args.dry_run:
        batch = {
            k: (v if k not in sh else jax.ShapeDtypeStruct(v.shape, v.dtype, sharding=sh[k])) for k, v in host.items()
        }
    else:
        batch = {k: (v if k not in sh else jax.device_put(v, sh[k])) for k, v in host.items()}

    t0 = time.perf_counter()
    compiled = step.compile(abstract(state), batch, print_fn=log)  # kept for the calls below
    compile_s = time.perf_counter() - t0
    extra = dict(batch=b, seq_len=t, lora_rank=args.lora_rank, remat=args.remat, attention=cfg.attention_impl or "xla")
    emit("train_compile_s", compile_s, "s", note="lower + XLA compile (AOT, before the first step)", **extra)
    est = compiled_memory_gib(compiled)
    if est is not None:
        emit("train_xla_memory_gib", est, "GiB", note="XLA memory analysis of the compiled step", **extra)
    try:
        cost = compiled.cost_analysis()
        cost = cost[0] if isinstance(cost, (list, tuple)) else cost
        xla_flops = float(cost.get("flops", 0.0)) if cost else 0.0
    except Exception:
        xla_flops = 0.0
    emit(
        "train_flops_per_step",
        flops.lora_aware,
        "FLOP",
        convention="lora_aware",
        six_n=flops.six_n,
        n_lm=flops.n_lm,
        n_lora=flops.n_lora,
        n_vision=flops.n_vision,
        n_merger=flops.n_merger,
        xla_cost_analysis_flops=xla_flops,
        note="xla_cost_analysis_flops may count a scanned layer body once",
        **extra,
    )
    if args.dry_run:
        return

    times, metrics = [], None
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        state, metrics = step(state, batch)
        jax.block_until_ready((state, metrics))
        dt = time.perf_counter() - t0
        if i >= args.warmup:
            times.append(dt)
        log(f"step {i}: {dt:.3f} s loss {float(metrics['loss']):.4f}")
    loss = float(metrics["loss"])
    if not math.isfinite(loss):
        raise FloatingPointError(f"train step loss is {loss}")
    med = statistics.median(times)
    tokens = b * t
    emit("train_step_s", med, "s", step_s_all=times, loss=loss, **extra)
    emit("train_tokens_per_s", tokens / med, "tokens/s", tokens_per_step=tokens, step_s_median=med, **extra)
    tflops = flops.lora_aware / med / 1e12
    emit(
        "train_model_tflops", tflops, "TFLOP/s", convention="lora_aware", six_n_tflops=flops.six_n / med / 1e12, **extra
    )
    if args.peak_tflops:
        emit(
            "train_mfu",
            tflops / args.peak_tflops,
            "fraction",
            convention="lora_aware",
            peak_tflops=args.peak_tflops,
            **extra,
        )
        emit(
            "train_mfu_6n",
            flops.six_n / med / 1e12 / args.peak_tflops,
            "fraction",
            convention="6n",
            peak_tflops=args.peak_tflops,
            **extra,
        )
    peak = peak_memory_gib(jax.devices()[0])
    if peak is not None:
        emit("train_peak_memory_gib", peak, "GiB", note="peak_bytes_in_use since process start", **extra)
    del state


# ------------------------------------------------------------------------------ decode


def bench_decode(args, cfg, emit: Emitter, model, batch_size: int, after_train: bool) -> None:
    """Greedy generation of exactly new_tokens tokens per row with `decode.Decoder`."""

    data = make_batch(cfg, batch_size, args.text_tokens, args.image_size, seed=1)
    rng = np.random.default_rng(2)
    prompts = [Prompt(ids, photo_inputs(cfg, 1, args.image_size, rng)) for ids in data.input_ids]
    prompt_len = data.input_ids.shape[1]
    # eos -1: argmax never yields it, so every row runs all new_tokens steps (HF: min_new_tokens).
    decoder = Decoder(
        model, batch_size=batch_size, max_new_tokens=args.new_tokens, eos_ids=(-1,), pad_id=0, buckets=(prompt_len,)
    )
    extra = dict(
        batch=batch_size,
        prompt_len=prompt_len,
        new_tokens_per_seq=args.new_tokens,
        attention=model.config.attention_impl or "xla",
    )
    traces0 = decoder.traces  # the counter is shared by decoders of one model structure
    t0 = time.perf_counter()
    out = decoder.generate(prompts)
    first = time.perf_counter() - t0
    emit("decode_first_call_s", first, "s", note="compile + one generate", **extra)
    # The loop may compile again on the second call (the donated KV cache comes back with the
    # weights' mesh sharding, while a fresh one has none): warm up until tracing stops.
    warm = 1
    while warm < 3:
        before = decoder.traces
        decoder.generate(prompts)
        warm += 1
        if decoder.traces == before:
            break
    traces = decoder.traces - traces0
    if traces > 1:
        log(f"decode batch {batch_size}: the loop was traced {traces} times in {warm} warm-up calls")
    times = []
    for _ in range(args.decode_reps):
        t0 = time.perf_counter()
        out = decoder.generate(prompts)
        times.append(time.perf_counter() - t0)
    lengths = {len(g.tokens) for g in out}
    if lengths != {args.new_tokens}:
        raise AssertionError(f"decode produced lengths {sorted(lengths)}, expected {args.new_tokens}")
    med = statistics.median(times)
    new = batch_size * args.new_tokens
    emit(
        "decode_tokens_per_s",
        new / med,
        "tokens/s",
        total_s_median=med,
        total_s_all=times,
        traces=decoder.traces - traces0,
        warmup_calls=warm,
        **extra,
    )
    peak = peak_memory_gib(jax.devices()[0])
    if peak is not None:
        emit(
            "decode_peak_memory_gib",
            peak,
            "GiB",
            includes_train=after_train,
            note="peak_bytes_in_use since process start",
            **extra,
        )


# ------------------------------------------------------------------------------ main


def parse_args(argv: Sequence[str] | None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--size", default="tiny", choices=sorted(SIZES))
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--text-tokens", type=int, default=768)
    p.add_argument("--image-size", type=int, default=448)
    p.add_argument("--lora-rank", type=int, default=16)
    p.add_argument("--lora-alpha", type=float, default=None, help="default 2 x rank (as the reference)")
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--new-tokens", type=int, default=128)
    p.add_argument("--decode-batches", default="1,16")
    p.add_argument("--decode-reps", type=int, default=2)
    p.add_argument("--what", default="train,decode", help="comma list of train, decode")
    p.add_argument("--remat", default="full", choices=["none", "full", "dots"])
    p.add_argument(
        "--attention",
        default="auto",
        choices=["auto", "cudnn", "xla"],
        help="LM attention backend; auto = cudnn on GPU, xla elsewhere",
    )
    p.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "bfloat16", "float32"],
        help="weights and compute; auto = bfloat16, except float32 when running on CPU "
        "(XLA:CPU lacks some bf16 dots; the reference also runs f32 on CPU)",
    )
    p.add_argument("--loss-chunk", type=int, default=512, help="sequence positions per cross-entropy chunk")
    p.add_argument(
        "--peak-tflops",
        type=float,
        default=None,
        help="MFU denominator; default: datasheet bf16 rate of the device kind, if known",
    )
    p.add_argument("--layers", type=int, default=None, help="override the LM depth (reduced dry runs)")
    p.add_argument(
        "--dry-run",
        action="store_true",
        help="abstract weights: lower and compile the train step only (no memory, no run)",
    )
    p.add_argument(
        "--no-fallback",
        dest="fallback",
        action="store_false",
        help="fail instead of retrying a part with XLA attention when cuDNN attention fails",
    )
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    what = {w for w in args.what.split(",") if w}
    unknown = what - {"train", "decode"}
    if unknown or not what:
        p.error(f"--what: unknown or empty parts {sorted(unknown)}; use train and/or decode")
    args.what = what
    try:
        args.decode_batches = [int(b) for b in args.decode_batches.split(",") if b]
    except ValueError:
        p.error(f"--decode-batches must be a comma list of integers, got {args.decode_batches!r}")
    if any(b < 1 for b in args.decode_batches):
        p.error("--decode-batches entries must be >= 1")
    for name in ("steps", "decode_reps", "lora_rank", "new_tokens", "loss_chunk"):
        if getattr(args, name) < 1:
            p.error(f"--{name.replace('_', '-')} must be >= 1")
    if args.warmup < 0:
        p.error("--warmup must be >= 0")
    return args


def main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Runs the benchmark; returns the emitted records (also printed as JSON lines)."""
    args = parse_args(argv)
    device = jax.devices()[0]
    on_gpu = device.platform == "gpu"
    attention = {"auto": "cudnn" if on_gpu else None, "cudnn": "cudnn", "xla": None}[args.attention]
    remat = None if args.remat == "none" else args.remat
    if args.peak_tflops is None:
        args.peak_tflops = next((v for k, v in PEAK_TFLOPS.items() if k in device.device_kind), None)
    dtype = args.dtype
    if dtype == "auto":
        dtype = "float32" if device.platform == "cpu" and not args.dry_run else "bfloat16"
    emit = Emitter(
        dict(
            tool="rmpl_jax",
            size=args.size,
            device=device.device_kind,
            platform=device.platform,
            dtype=dtype,
            jax=jax.__version__,
            flax=flax.__version__,
            dry_run=args.dry_run,
        )
    )
    cfg = model_config(args.size, remat=remat, attention=attention, layers=args.layers, dtype=dtype)
    mesh = shd.make_mesh((1, 1, 1), devices=[device])
    log(
        f"size {args.size}: {cfg.num_layers} layers, hidden {cfg.hidden_size}, remat {remat}, "
        f"attention {attention or 'xla'}, {dtype}, device {device.device_kind}"
    )

    t0 = time.perf_counter()
    if args.dry_run:
        model = get_family(FAMILY).abstract_model(cfg)
    else:
        model = init_model(cfg, mesh if "train" in args.what else None, args.seed)
        jax.block_until_ready(nnx.state(model))
    init_s = time.perf_counter() - t0
    emit("params", count_params(model), "count", layers=cfg.num_layers)
    emit("init_s", init_s, "s", note="random weights built on the device (one jit)")
    peak = peak_memory_gib(device)
    if peak is not None:  # the later peaks are only meaningful if they exceed this one
        emit("init_peak_memory_gib", peak, "GiB", note="peak_bytes_in_use after building the weights")
    base_state = nnx.state(model)  # the weights without adapters (LoRA is added to `model`)

    parts = [p for p in ("train", "decode") if p in args.what]
    for part in parts:
        if part == "decode" and args.dry_run:
            log("--dry-run: decode is not lowered (only the train step is)")
            continue
        impl = attention
        while True:
            fresh = with_attention(cfg, base_state, impl)
            try:
                if part == "train":
                    bench_train(args, cfg.replace(attention_impl=impl), mesh, emit, fresh)
                else:
                    for b in args.decode_batches:
                        bench_decode(args, cfg, emit, fresh, b, after_train="train" in args.what)
                break
            except Exception as err:  # one retry with XLA attention: the run must still measure
                out_of_memory = "RESOURCE_EXHAUSTED" in str(err) or "out of memory" in str(err).lower()
                if impl != "cudnn" or not args.fallback or out_of_memory:
                    raise
                log(f"{part} with cuDNN attention failed ({type(err).__name__}: {err}); retrying with XLA")
                emit("attention_fallback", 1, "flag", part=part, error=f"{type(err).__name__}: {str(err)[:400]}")
                impl = None
    return emit.records


if __name__ == "__main__":
    main()
