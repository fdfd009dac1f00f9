"""tools/bench.py at the tiny size on CPU (the CI smoke run), its FLOP bookkeeping at the 7B
size (abstract, no memory), and benchmarks/ratios.py on hand-made records."""

from __future__ import annotations

import json
import math

import jax
import numpy as np
import pytest
from flax import nnx

from benchmarks import ratios
from rmpl_jax.models.family import get_family
from rmpl_jax.models.lora import apply_lora
from tools import bench

TINY = [
    "--size",
    "tiny",
    "--batch",
    "2",
    "--text-tokens",
    "32",
    "--image-size",
    "56",
    "--steps",
    "2",
    "--warmup",
    "1",
    "--new-tokens",
    "3",
    "--decode-batches",
    "2",
    "--decode-reps",
    "1",
]


def _by_figure(records):
    return {(r["figure"], r.get("batch") if r["figure"].startswith("decode") else None): r for r in records}


def test_tiny_train_and_decode_print_positive_figures(capsys):
    records = bench.main(TINY + ["--what", "train,decode"])
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.startswith("{")]
    assert printed == records  # every figure is one JSON line on stdout
    figs = _by_figure(records)
    for key in [
        ("params", None),
        ("init_s", None),
        ("train_compile_s", None),
        ("train_step_s", None),
        ("train_tokens_per_s", None),
        ("train_model_tflops", None),
        ("train_flops_per_step", None),
        ("decode_first_call_s", 2),
        ("decode_tokens_per_s", 2),
    ]:
        assert key in figs, f"missing figure {key}"
        value = figs[key]["value"]
        assert isinstance(value, (int, float)) and math.isfinite(value) and value > 0, (key, value)
    train = figs[("train_tokens_per_s", None)]
    assert train["tokens_per_step"] == 2 * (32 + 2 + 4)  # text + vision start/end + 4 image tokens
    assert train["value"] == pytest.approx(train["tokens_per_step"] / figs[("train_step_s", None)]["value"])
    assert figs[("train_step_s", None)]["loss"] == pytest.approx(math.log(152064), abs=0.2)  # random init
    dec = figs[("decode_tokens_per_s", 2)]
    assert dec["value"] == pytest.approx(2 * 3 / dec["total_s_median"])
    assert all(r["tool"] == "rmpl_jax" and r["size"] == "tiny" for r in records)


def test_tiny_dry_run_compiles_without_running(capsys):
    # cuDNN attention asked for: where it is missing (CPU) the part is retried with XLA, visibly.
    records = bench.main(TINY + ["--what", "train,decode", "--dry-run", "--attention", "cudnn"])
    figs = {r["figure"] for r in records}
    assert {"params", "train_compile_s", "train_flops_per_step"} <= figs
    assert not figs & {"train_step_s", "train_tokens_per_s", "decode_tokens_per_s"}
    assert all(r["dry_run"] and r["dtype"] == "bfloat16" for r in records)
    compile_rec = next(r for r in records if r["figure"] == "train_compile_s")
    if jax.devices()[0].platform == "cpu":
        assert "attention_fallback" in figs and compile_rec["attention"] == "xla"


def test_bad_arguments_are_refused():
    with pytest.raises(SystemExit):
        bench.parse_args(["--what", "train,sing"])
    with pytest.raises(SystemExit):
        bench.parse_args(["--decode-batches", "1,x"])


def test_7b_flop_count_matches_hand_count():
    cfg = bench.model_config("7b", remat="full", attention=None)

    def adapted():
        model = get_family("qwen2_5_vl").build(cfg)
        apply_lora(model, 16, 32.0, get_family("qwen2_5_vl").default_lora_targets)
        return model

    model = nnx.eval_shape(adapted)  # shapes only: no 16 GB of weights
    d, f, v, layers, kv = 3584, 18944, 152064, 28, 4 * 128
    per_layer = d * (d + 2 * kv) + d * d + 3 * d * f
    assert bench.count_params(get_family("qwen2_5_vl").abstract_model(cfg)) == 8_292_166_656
    grid = np.array([[1, 32, 32]] * 8)
    fc = bench.train_flops(cfg, model, 8, 1026, grid)
    assert fc.n_lm == layers * per_layer + d * v
    lora_per_layer = 16 * ((d + d) + 2 * (d + kv) + (d + d) + 2 * (d + f) + (f + d))  # q, k+v, o, gate+up, down
    assert fc.n_lora == layers * lora_per_layer
    # Vision attention: 28 windowed blocks (16 windows of 64 patches), 4 full blocks (1024).
    vis_attn = 8 * (28 * 16 * 4 * 64**2 * 1280 + 4 * 4 * 1024**2 * 1280)
    assert bench.vision_attention_flops(cfg, grid) == pytest.approx(vis_attn)
    per_token = fc.lora_aware / (8 * 1026)
    assert 29e9 < per_token < 32e9  # about 30 GFLOP per token: the 26k tok/s at 780 TFLOP/s
    assert fc.six_n - fc.lora_aware == pytest.approx(8 * 1026 * 2 * fc.n_lm)


def _write(path, records):
    path.write_text("log line, not JSON\n" + "".join(json.dumps(r) + "\n" for r in records))
    return str(path)


def test_ratios_table_and_goals(tmp_path):
    ours = [
        {"figure": "params", "value": 100, "unit": "count"},
        {"figure": "train_tokens_per_s", "value": 20000.0, "unit": "tokens/s", "tokens_per_step": 8208},
        {"figure": "train_step_s", "value": 0.41, "unit": "s"},
        {"figure": "train_peak_memory_gib", "value": 70.0, "unit": "GiB"},
        {"figure": "train_compile_s", "value": 45.0, "unit": "s"},
        {"figure": "train_flops_per_step", "value": 2.5e14, "unit": "FLOP", "n_lm": 7e9},
        {"figure": "decode_tokens_per_s", "value": 250.0, "unit": "tokens/s", "batch": 1},
        {"figure": "decode_tokens_per_s", "value": 2000.0, "unit": "tokens/s", "batch": 16},
    ]
    hf = [
        {"what": "init", "params": 100},
        {"what": "hf_peft_lora_train_step", "tokens_per_s": 8000.0, "step_s_median": 1.026, "peak_mem_gib": 100.0},
        {"what": "hf_generate_greedy", "batch": 1, "new_tokens_per_s": 25.0},
        {"what": "hf_generate_greedy", "batch": 16, "new_tokens_per_s": 400.0},
    ]
    probe = [{"what": "jax_bf16_matmul", "tflops": 780.0}, {"what": "jax_copy", "gbytes_per_s": 4200.0}]
    out = tmp_path / "r.md"
    summary = ratios.main(
        [
            _write(tmp_path / "o.jsonl", ours),
            _write(tmp_path / "h.jsonl", hf),
            "--probe",
            _write(tmp_path / "p.jsonl", probe),
            "--out",
            str(out),
        ]
    )
    assert summary["train_speed_ratio"] == pytest.approx(2.5)
    assert summary["train_memory_ratio"] == pytest.approx(0.7)
    assert summary["decode_b1_ratio"] == pytest.approx(10.0)
    assert summary["decode_b16_ratio"] == pytest.approx(5.0)
    assert summary["train_tokens_per_s_ceiling"] == pytest.approx(780e12 / (2.5e14 / 8208))
    assert summary["decode_b1_tokens_per_s_ceiling"] == pytest.approx(4200e9 / 14e9)
    assert "params_mismatch" not in summary
    rows = {line.split("|")[1].strip(): line for line in out.read_text().splitlines()}
    assert rows["train tokens/s"].rstrip().endswith("| yes |")
    assert rows["train peak memory GiB"].rstrip().endswith("| **no** |")  # 0.7 > 0.6
    assert rows["decode tokens/s, batch 1"].rstrip().endswith("| yes |")
    assert rows["decode tokens/s, batch 16"].rstrip().endswith("| **no** |")  # 2,000 < 2,400
    assert rows["train-step compile s"].rstrip().endswith("| yes |")


def test_ratios_flags_different_models(tmp_path):
    summary = ratios.main(
        [
            _write(tmp_path / "o.jsonl", [{"figure": "params", "value": 1}]),
            _write(tmp_path / "h.jsonl", [{"what": "init", "params": 2}]),
        ]
    )
    assert summary["params_mismatch"] == [1, 2]
    assert summary["train_speed_ratio"] is None
