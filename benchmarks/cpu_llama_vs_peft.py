"""CPU side by side: rmpl_jax's Llama LoRA train step and greedy decoding against transformers +
peft, on the same arrays of the real SmolLM2-135M (float32), printing hf_s / ours_s ratios.

    python benchmarks/cpu_llama_vs_peft.py --hf-dir smollm2-hf                      # train + decode
    python benchmarks/cpu_llama_vs_peft.py --hf-dir smollm2-hf --what train,profile \
        --variants base,remat_full,unfused,all_positions
    python benchmarks/cpu_llama_vs_peft.py --hf-dir smollm2-hf --what train --xla-flags=--xla_cpu_use_onednn=true

`smollm2-hf` comes from `tools/convert_gguf.py` (see `configs/m2e2_text.py`). Ours: the model
loaded and adapted as `train.loop.build_model` does (`load_hf` onto a (1, -1, 1) mesh, LoRA r16
alpha 32 on q,k,v,o,gate,up,down), the run's optimizer and step (`stage_optimizer`,
`stage_train_step`: AdamW lr 1e-4 constant, weight decay 0, global-norm clip 1.0, loss chunk 512,
LM head at the first 64 target positions of each row like `train.head_at_targets`), settings of
`configs/m2e2_text.py` (remat none). HF: `get_peft_model(LoraConfig(r=16, lora_alpha=32, same 7
modules, dropout 0))`, SDPA attention, torch AdamW lr 1e-4 weight decay 0 with the same
`clip_grad_norm_(1.0)`. Batch: 8 x 128 random tokens, the loss on the last 32 of each row.

Timing: AOT compile first, then rounds (every variant of ours, then HF, again and again) so that
machine contention hits all alike; `--warmup` untimed rounds, the median of `--steps` timed ones,
each timed to `block_until_ready` (HF: forward + backward + clip + optimizer.step + zero_grad).
Decode: greedy, prompt 96 random tokens, exactly 64 new tokens (ours: `infer.decode.Decoder`
with an end token argmax never yields; HF: `generate(max_new_tokens=64)` with no end token),
adapters unmerged on both sides (as the held-out evaluation after training decodes), median of 3
after warm-up. `profile`: forward-only and forward+backward times of both stacks, XLA's cost
analysis, and ops ranked by time from a `jax.profiler` trace of the base step.

Variants (`--variants`, comma list, all in one process) change our model's options or the LM
head's positions: see VARIANTS. `--xla-flags` sets XLA_FLAGS before jax is imported (a new process).
Output: one JSON line per figure {"figure", "ours_s", "hf_s", "ratio": hf_s / ours_s} (> 1: we
are faster), then a Markdown table. Logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-dir", required=True, help="the converted SmolLM2 (any Llama-family HF directory)")
    p.add_argument("--what", default="train,decode", help="comma list of train, decode, profile")
    p.add_argument("--variants", default="base", help="comma list of VARIANTS keys (ours)")
    p.add_argument("--xla-flags", default="", help="appended to XLA_FLAGS before jax is imported")
    p.add_argument("--threads", type=int, default=os.cpu_count(), help="torch threads (default: all cores)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--seq", type=int, default=128)
    p.add_argument("--targets", type=int, default=32, help="loss positions at the end of each row")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--prompt-len", type=int, default=96)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--decode-batches", default="1,16")
    p.add_argument("--decode-reps", type=int, default=3)
    p.add_argument("--profile-reps", type=int, default=5)
    p.add_argument("--dump-hlo", default="", help="a folder: writes each variant's compiled step HLO there")
    return p.parse_args(argv)


ARGS = parse_args() if __name__ == "__main__" else None
if ARGS is not None and ARGS.xla_flags:  # must precede the first jax import
    os.environ["XLA_FLAGS"] = (os.environ.get("XLA_FLAGS", "") + " " + ARGS.xla_flags).strip()

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if _REPO not in sys.path:  # run as a script from anywhere: configs/ and rmpl_jax/ importable
    sys.path.insert(0, _REPO)

import jax  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402
from flax import nnx  # noqa: E402

from configs import m2e2_text  # noqa: E402
from rmpl_jax.infer.decode import Decoder, Prompt  # noqa: E402
from rmpl_jax.models.family import family_for_dir  # noqa: E402
from rmpl_jax.models.lora import apply_lora  # noqa: E402
from rmpl_jax.train import sharding as shd  # noqa: E402
from rmpl_jax.train.loop import stage_optimizer, stage_train_step  # noqa: E402
from rmpl_jax.train.model_setup import HF_MESH, lora_targets, model_options  # noqa: E402
from rmpl_jax.train.state import abstract, create_train_state, split_model  # noqa: E402

HF_TARGETS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


def log(*parts):
    print("[cpu-bench]", *parts, file=sys.stderr, flush=True)


def load1() -> float:
    return os.getloadavg()[0]


# name -> (load options, max_targets: "run" is the product's 64 (target_budget(32)))
VARIANTS = {
    "base": ({}, "run"),
    "remat_full": ({"remat_policy": "full"}, "run"),
    "unfused": ({"fuse_qkv": False, "fuse_gate_up": False}, "run"),
    "unfused_qkv": ({"fuse_qkv": False}, "run"),
    "unfused_gate_up": ({"fuse_gate_up": False}, "run"),
    "all_positions": ({}, None),  # train.head_at_targets = False
}


def run_config():
    """configs/m2e2_text.py as the run sets it, with the benchmark's constant learning rate."""
    config = m2e2_text.get_config()
    config.stage2.update(learning_rate=1e-4, warmup_steps=0, steps=None)
    return config


class Ours:
    """One variant of our model + train state + compiled step on the same host batch."""

    def __init__(self, name, args, mesh, host):
        options, max_targets = VARIANTS[name]
        self.name, self.mesh, config = name, mesh, run_config()
        family = family_for_dir(args.hf_dir)
        # train.loop.build_model, with the variant's extra load options (fusion, remat).
        opts = {**model_options(config.model, pretrained=True), **options}
        model = family.load_hf(args.hf_dir, dtype=config.model.dtype, shardings=shd.variable_sharding(mesh), **opts)
        targets = lora_targets(config.model.lora_targets, family)
        apply_lora(model, config.model.lora_rank, config.model.lora_alpha, targets, rngs=nnx.Rngs(config.seed))
        self.model = model  # kept for decoding (its arrays are not donated: trainables are copied)
        layout, trainable, frozen = split_model(model, config.model.trainable_regex or None)
        tx, schedule = stage_optimizer(config, config.stage2)
        self.state = create_train_state(layout, trainable, frozen, tx, mesh, seed=config.seed)
        self.max_targets = 64 if max_targets == "run" else max_targets  # target_budget(32) = 64
        self.step = stage_train_step(config, family, layout, tx, mesh, self.state, schedule, self.max_targets)
        sh = self.step.batch_shardings(host)
        self.batch = {k: jax.device_put(v, sh[k]) for k, v in host.items()}
        t0 = time.perf_counter()
        self.compiled = self.step.compile(abstract(self.state), self.batch, print_fn=None)
        self.compile_s = time.perf_counter() - t0
        if args.dump_hlo:
            os.makedirs(args.dump_hlo, exist_ok=True)
            with open(os.path.join(args.dump_hlo, f"train_step_{name}.hlo.txt"), "w") as f:
                f.write(self.compiled.as_text())
        log(f"{name}: compiled in {self.compile_s:.1f} s; options {opts}, max_targets {self.max_targets}")

    def train_step(self):
        self.state, metrics = self.step(self.state, self.batch)
        jax.block_until_ready((self.state, metrics))
        return float(metrics["loss"])

    def loss_fns(self):
        """Jitted forward-only loss and forward+backward (no optimizer) of the step's own `_loss`."""
        st, step, b = self.state, self.step, self.batch

        def fwd(tr, fr, batch):
            return step._loss(tr, fr, batch, {})

        fb = jax.value_and_grad(fwd, has_aux=True)
        with shd.activate(self.mesh, None):
            f = jax.jit(fwd).lower(st.trainable, st.frozen, b).compile()
            g = jax.jit(fb).lower(st.trainable, st.frozen, b).compile()
        return (lambda: jax.block_until_ready(f(st.trainable, st.frozen, b))), (
            lambda: jax.block_until_ready(g(st.trainable, st.frozen, b))
        )


class HF:
    """transformers + peft on the same weights and batch."""

    def __init__(self, args, ids: np.ndarray):
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        base = AutoModelForCausalLM.from_pretrained(args.hf_dir, dtype=torch.float32, attn_implementation="sdpa")
        cfg = LoraConfig(r=16, lora_alpha=32, target_modules=HF_TARGETS, lora_dropout=0.0)
        self.model = get_peft_model(base, cfg)
        self.params = [p for p in self.model.parameters() if p.requires_grad]
        self.opt = torch.optim.AdamW(self.params, lr=1e-4, weight_decay=0.0)
        self.ids = torch.from_numpy(ids.astype(np.int64))
        self.mask = torch.ones_like(self.ids)
        self.labels = self.ids.clone()
        self.labels[:, : -args.targets] = -100

    def forward(self):
        return self.model(input_ids=self.ids, attention_mask=self.mask, labels=self.labels).loss

    def train_step(self):
        loss = self.forward()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.params, 1.0)  # the product's optimizer clips too
        self.opt.step()
        self.opt.zero_grad(set_to_none=True)
        return float(loss.detach())

    def fwd_only(self):
        with torch.no_grad():
            self.forward()

    def fwd_bwd(self):
        self.forward().backward()
        self.model.zero_grad(set_to_none=True)


# ------------------------------------------------------------------------------ measuring
class Table:
    def __init__(self):
        self.rows = []

    def emit(self, figure, ours_s, hf_s, **extra):
        rec = {"figure": figure, "ours_s": ours_s, "hf_s": hf_s, "ratio": hf_s / ours_s, **extra}
        self.rows.append(rec)
        print(json.dumps(rec), flush=True)


CPU_TIMES: dict = {}  # name -> process CPU seconds of each timed call (less sensitive to other load)


def timed(fn, name=None):
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    if name is not None:
        CPU_TIMES.setdefault(name, []).append(time.process_time() - c0)
    return time.perf_counter() - t0, out


def rounds(fns: dict, warmup: int, reps: int) -> dict:
    """Calls every fn once per round (interleaved), `warmup` untimed rounds then `reps` timed;
    returns name -> list of seconds."""
    times = {k: [] for k in fns}
    for i in range(warmup + reps):
        line = {}
        for k, fn in fns.items():
            line[k], _ = timed(fn, k if i >= warmup else None)
            if i >= warmup:
                times[k].append(line[k])
        log(f"round {i}{' (warm-up)' if i < warmup else ''}: " + " ".join(f"{k}={v:.3f}" for k, v in line.items()))
    return times


def bench_train(args, ours, hf, table):
    first = {o.name: o.train_step() for o in ours}
    hf_first = hf.train_step()
    for name, loss in first.items():
        log(f"first-step loss: ours[{name}] {loss:.6f}  hf {hf_first:.6f}  diff {abs(loss - hf_first):.2e}")
    table.loss_check = {"ours": first, "hf": hf_first}
    fns = {o.name: o.train_step for o in ours}
    fns["hf"] = hf.train_step
    times = rounds(fns, max(args.warmup - 1, 0), args.steps)  # the loss step above was warm-up 1
    hf_med = statistics.median(times["hf"])
    for o in ours:
        med = statistics.median(times[o.name])
        table.emit(
            f"train_step[{o.name}]",
            med,
            hf_med,
            ours_cpu_s=statistics.median(CPU_TIMES[o.name]),
            hf_cpu_s=statistics.median(CPU_TIMES["hf"]),
            ours_all=times[o.name],
            hf_all=times["hf"],
            compile_s=o.compile_s,
            first_loss_ours=first[o.name],
            first_loss_hf=hf_first,
        )


def bench_decode(args, ours, hf, table):
    rng = np.random.default_rng(1)
    vocab = ours.model.config.vocab_size
    hf.model.eval()
    for b in [int(x) for x in args.decode_batches.split(",") if x]:
        ids = rng.integers(3, vocab, (b, args.prompt_len), dtype=np.int64)
        prompts = [Prompt(row.astype(np.int32)) for row in ids]
        # eos -1: argmax never yields it, so every row runs all new tokens (as bench.py does).
        dec = Decoder(
            ours.model,
            batch_size=b,
            max_new_tokens=args.new_tokens,
            eos_ids=(-1,),
            pad_id=0,
            buckets=(args.prompt_len,),
        )
        t_ids = torch.from_numpy(ids)
        # No end token on either side (not min_new_tokens, which would mask the end token's
        # logit and change HF's argmax where ours keeps it): the same greedy tokens, all new_tokens.
        gen_kw = dict(max_new_tokens=args.new_tokens, do_sample=False, pad_token_id=0)
        hf.model.generation_config.eos_token_id = None

        def ours_fn(dec=dec, prompts=prompts):
            return dec.generate(prompts)

        def hf_fn(t_ids=t_ids, gen_kw=gen_kw):
            with torch.no_grad():
                return hf.model.generate(input_ids=t_ids, attention_mask=torch.ones_like(t_ids), **gen_kw)

        first, out = timed(ours_fn)
        for _ in range(2):  # the donated cache may come back with another sharding: one retrace
            before = dec.traces
            out = ours_fn()
            if dec.traces == before:
                break
        hf_out = hf_fn()
        a = np.stack([g.tokens for g in out])
        h = hf_out[:, args.prompt_len :].numpy()
        assert a.shape == h.shape == (b, args.new_tokens), (a.shape, h.shape)
        agree = float(np.mean([np.argmin(np.r_[x == y, False]) for x, y in zip(a, h)]))
        times = rounds({"ours": ours_fn, "hf": hf_fn}, 0, args.decode_reps)
        table.emit(
            f"decode_b{b}",
            statistics.median(times["ours"]),
            statistics.median(times["hf"]),
            ours_all=times["ours"],
            hf_all=times["hf"],
            first_call_s=first,
            mean_agreeing_prefix=agree,
            adapters="unmerged",
        )


def op_profile(o: Ours, top: int = 25):
    """Ranks the XLA ops of the compiled base step by their summed thunk time (CPU-ms per step,
    summed over XLA's worker threads) from a `jax.profiler` trace of two steps, each with the
    op's HLO line (shape, fused computation) so that it can be named."""
    import tempfile

    d = tempfile.mkdtemp(prefix="jaxprof")
    with jax.profiler.trace(d):
        o.train_step()
        o.train_step()
    paths = [os.path.join(r, f) for r, _, fs in os.walk(d) for f in fs if f.endswith(".xplane.pb")]
    data = jax.profiler.ProfileData.from_file(paths[0])
    hlo = {}
    for ln in o.compiled.as_text().splitlines():
        ln = ln.strip()
        if " = " in ln and not ln.startswith("ROOT"):
            hlo.setdefault(ln.split(" = ", 1)[0].lstrip("%"), ln)
    per, total = {}, 0.0
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLAEigen"):  # the threads that run XLA's thunks
                continue
            for ev in line.events:
                if ev.name.startswith("ThunkExecutor"):
                    continue
                n, t = per.get(ev.name, (0, 0.0))
                per[ev.name] = (n + 0.5, t + ev.duration_ns / 2e6)  # per step
                total += ev.duration_ns / 2e6
    ranked = sorted(per.items(), key=lambda kv: -kv[1][1])
    for name, (n, ms) in ranked[:top]:
        rec = {"figure": "op_profile", "op": name, "calls_per_step": n, "cpu_ms_per_step": round(ms, 1)}
        print(json.dumps({**rec, "share": round(ms / total, 3), "hlo": hlo.get(name, "")[:300]}))
    kinds = {}
    for name, (_, ms) in per.items():
        kind = name.rstrip("0123456789.").rstrip("_")
        kinds[kind] = kinds.get(kind, 0.0) + ms
    kinds = {k: round(v, 1) for k, v in sorted(kinds.items(), key=lambda kv: -kv[1])}
    print(json.dumps({"figure": "op_kinds", "cpu_ms_per_step": kinds, "total": round(total, 1)}))


def bench_profile(args, ours, hf, table):
    base = ours[0]
    cost = base.compiled.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    flops, accessed = cost.get("flops"), cost.get("bytes accessed")
    print(json.dumps({"figure": "xla_cost_analysis", "variant": base.name, "flops": flops, "bytes_accessed": accessed}))
    fns = {}
    for o in ours:
        f, g = o.loss_fns()
        fns[f"{o.name}_fwd"], fns[f"{o.name}_fwdbwd"] = f, g
    fns["hf_fwd"], fns["hf_fwdbwd"] = hf.fwd_only, hf.fwd_bwd
    times = rounds(fns, 1, args.profile_reps)
    med = {k: statistics.median(v) for k, v in times.items()}
    for o in ours:
        table.emit(f"forward[{o.name}]", med[f"{o.name}_fwd"], med["hf_fwd"])
        table.emit(f"forward+backward[{o.name}]", med[f"{o.name}_fwdbwd"], med["hf_fwdbwd"])
    op_profile(base)


def main():
    args = ARGS
    torch.set_num_threads(args.threads)
    what = set(args.what.split(","))
    names = [v for v in args.variants.split(",") if v]
    log(f"load average (1 min) at start: {load1():.2f}; XLA_FLAGS={os.environ.get('XLA_FLAGS', '')!r}")
    mesh = shd.make_mesh(HF_MESH)
    rng = np.random.default_rng(0)
    with open(os.path.join(args.hf_dir, "config.json")) as f:
        vocab = json.load(f)["vocab_size"]
    ids = rng.integers(0, vocab, (args.batch, args.seq), dtype=np.int32)
    loss_mask = np.zeros_like(ids)
    loss_mask[:, -args.targets :] = 1
    host = {"input_ids": ids, "loss_mask": loss_mask, "attention_mask": np.ones_like(ids)}
    ours = [Ours(n, args, mesh, host) for n in names]
    hf = HF(args, ids)
    table = Table()
    # Decode first: both models still hold the loaded weights (HF's train steps update its
    # adapters in place; ours decodes the model as loaded), so their greedy tokens compare.
    if "decode" in what:
        bench_decode(args, ours[0], hf, table)
    if "train" in what:
        bench_train(args, ours, hf, table)
    if "profile" in what:
        bench_profile(args, ours, hf, table)
    end = load1()
    versions = dict(jax=jax.__version__, torch=torch.__version__, threads=torch.get_num_threads())
    print(json.dumps({"figure": "meta", "load1_end": end, "xla_flags": os.environ.get("XLA_FLAGS", ""), **versions}))
    print("\n| figure | ours (s) | HF (s) | ratio HF/ours |\n| --- | ---: | ---: | ---: |")
    for r in table.rows:
        print(f"| {r['figure']} | {r['ours_s']:.3f} | {r['hf_s']:.3f} | {r['ratio']:.2f} |")
    log(f"load average (1 min) at end: {end:.2f}")


if __name__ == "__main__":
    main()
