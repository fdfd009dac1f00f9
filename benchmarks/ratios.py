"""Ratio table of rmpl_jax against the Hugging Face reference, from their JSON-line outputs.

    python benchmarks/ratios.py OURS.jsonl HF.jsonl [--probe PROBE.jsonl] [--out ratios.md]
                                [--summary-out summary.json]

OURS.jsonl: lines of `tools/bench.py` ({"figure": ..., "value": ...}); HF.jsonl: lines of the
shared `hf_reference.py` ({"what": "hf_peft_lora_train_step" | "hf_generate_greedy", ...});
PROBE.jsonl: lines of `device_probe.py` (versions, bf16 matmul TFLOP/s, copy GB/s), used for
the hardware ceilings. Lines that are not JSON objects are skipped (logs mixed in). When a
figure appears more than once, the last line wins.

Prints a Markdown table (the one `benchmarks/h200.md` records) and writes it to --out;
the last stdout line is a JSON summary {"what": "ratios", ...}. Goals are issue 6's:
train >= 2.0x the reference's tokens/s at <= 0.6x its peak memory, decode >= 200 tokens/s at
batch 1 and >= 2,400 at batch 16, train-step compile <= 60 s.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

GOALS = {
    "train_speed_ratio": 2.0,  # ours / HF tokens/s, at least
    "train_memory_ratio": 0.6,  # ours / HF peak memory, at most
    "decode_b1_tokens_per_s": 200.0,
    "decode_b16_tokens_per_s": 2400.0,
    "train_compile_s": 60.0,  # at most
}


def read_jsonl(path: str | Path) -> list[dict[str, Any]]:
    """JSON objects, one per line; other lines (logs, blank) are skipped."""
    out = []
    for line in Path(path).read_text().splitlines():
        line = line.strip()
        if not line.startswith("{"):
            continue
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(rec, dict):
            out.append(rec)
    return out


def ours_figures(records: Iterable[dict]) -> dict[tuple[str, int | None], dict]:
    """(figure, batch or None) -> record; decode figures are keyed by their batch."""
    out = {}
    for r in records:
        if "figure" not in r:
            continue
        batch = r.get("batch") if str(r["figure"]).startswith("decode_") else None
        out[(r["figure"], batch)] = r
    return out


def hf_figures(records: Iterable[dict]) -> dict[str, Any]:
    out: dict[str, Any] = {"decode": {}}
    for r in records:
        what = r.get("what")
        if what == "init":
            out["init"] = r
        elif what == "hf_peft_lora_train_step":
            out["train"] = r
        elif what == "hf_generate_greedy":
            out["decode"][int(r["batch"])] = r
    return out


def probe_figures(records: Iterable[dict]) -> dict[str, Any]:
    return {r["what"]: r for r in records if "what" in r}


def _value(table: dict, key) -> float | None:
    rec = table.get(key)
    return None if rec is None else rec.get("value")


def _fmt(x: float | None, digits: int = 1) -> str:
    if x is None:
        return "—"
    if abs(x) >= 1000:
        return f"{x:,.0f}"
    return f"{x:.{digits}f}"


def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b == 0 else a / b


def _met(ok: bool | None) -> str:
    return "—" if ok is None else ("yes" if ok else "**no**")


def build(
    ours_recs: Sequence[dict], hf_recs: Sequence[dict], probe_recs: Sequence[dict] = ()
) -> tuple[str, dict[str, Any]]:
    """(markdown table, summary dict) from the three record lists."""
    ours, hf, probe = ours_figures(ours_recs), hf_figures(hf_recs), probe_figures(probe_recs)
    rows = []
    summary: dict[str, Any] = {"what": "ratios"}

    tok_o = _value(ours, ("train_tokens_per_s", None))
    tok_h = (hf.get("train") or {}).get("tokens_per_s")
    r = _ratio(tok_o, tok_h)
    summary["train_speed_ratio"] = r
    rows.append(
        (
            "train tokens/s",
            _fmt(tok_o),
            _fmt(tok_h),
            _fmt(r, 2),
            f">= {GOALS['train_speed_ratio']}x",
            _met(None if r is None else r >= GOALS["train_speed_ratio"]),
        )
    )

    mem_o = _value(ours, ("train_peak_memory_gib", None))
    mem_h = (hf.get("train") or {}).get("peak_mem_gib")
    r = _ratio(mem_o, mem_h)
    summary["train_memory_ratio"] = r
    rows.append(
        (
            "train peak memory GiB",
            _fmt(mem_o),
            _fmt(mem_h),
            _fmt(r, 2),
            f"<= {GOALS['train_memory_ratio']}x",
            _met(None if r is None else r <= GOALS["train_memory_ratio"]),
        )
    )

    for b, goal_key in ((1, "decode_b1_tokens_per_s"), (16, "decode_b16_tokens_per_s")):
        d_o = _value(ours, ("decode_tokens_per_s", b))
        d_h = (hf["decode"].get(b) or {}).get("new_tokens_per_s")
        r = _ratio(d_o, d_h)
        summary[f"decode_b{b}_ratio"] = r
        summary[goal_key] = d_o
        rows.append(
            (
                f"decode tokens/s, batch {b}",
                _fmt(d_o),
                _fmt(d_h),
                _fmt(r, 2),
                f">= {GOALS[goal_key]:,.0f} tok/s",
                _met(None if d_o is None else d_o >= GOALS[goal_key]),
            )
        )

    comp = _value(ours, ("train_compile_s", None))
    summary["train_compile_s"] = comp
    rows.append(
        (
            "train-step compile s",
            _fmt(comp),
            "—",
            "—",
            f"<= {GOALS['train_compile_s']:.0f} s",
            _met(None if comp is None else comp <= GOALS["train_compile_s"]),
        )
    )

    step_o = _value(ours, ("train_step_s", None))
    step_h = (hf.get("train") or {}).get("step_s_median")
    rows.append(("train step s (median)", _fmt(step_o, 3), _fmt(step_h, 3), _fmt(_ratio(step_o, step_h), 2), "", ""))
    mfu = _value(ours, ("train_mfu", None))
    flops = _value(ours, ("train_flops_per_step", None))
    if flops and step_h:
        hf_mfu = flops / step_h / 1e12 / ours[("train_mfu", None)]["peak_tflops"] if mfu is not None else None
        rows.append(("train MFU (LoRA-aware)", _fmt(mfu, 3), _fmt(hf_mfu, 3), _fmt(_ratio(mfu, hf_mfu), 2), "", ""))

    # Hardware ceilings from the probe: matmul rate over the step's FLOPs; copy rate over the
    # LM weight bytes read once per generated token (batch 1).
    mm = (probe.get("jax_bf16_matmul") or {}).get("tflops")
    cp = (probe.get("jax_copy") or {}).get("gbytes_per_s")
    tokens_step = (ours.get(("train_tokens_per_s", None)) or {}).get("tokens_per_step")
    if mm and flops and tokens_step:
        ceiling = mm * 1e12 / (flops / tokens_step)
        summary["train_tokens_per_s_ceiling"] = ceiling
        rows.append(("train tokens/s ceiling (probe matmul rate)", _fmt(ceiling), "", "", "", ""))
    lm_bytes = (ours.get(("train_flops_per_step", None)) or {}).get("n_lm")
    if cp and lm_bytes:
        ceiling = cp * 1e9 / (2 * lm_bytes)
        summary["decode_b1_tokens_per_s_ceiling"] = ceiling
        rows.append(("decode b1 tokens/s ceiling (probe copy rate, bf16 LM weights)", _fmt(ceiling), "", "", "", ""))

    p_o = _value(ours, ("params", None))
    p_h = (hf.get("init") or {}).get("params")
    if p_o is not None and p_h is not None and p_o != p_h:
        summary["params_mismatch"] = [p_o, p_h]
    head = "| figure | rmpl_jax | HF reference | ours / HF | goal | met |\n| --- | --- | --- | --- | --- | --- |\n"
    table = head + "".join(f"| {' | '.join(r)} |\n" for r in rows)
    if "params_mismatch" in summary:
        table += f"\nWARNING: parameter counts differ (ours {p_o:,}, HF {p_h:,}): not the same model.\n"
    return table, summary


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("ours")
    p.add_argument("hf")
    p.add_argument("--probe", default=None)
    p.add_argument("--out", default=None, help="also write the Markdown table here")
    p.add_argument("--summary-out", default=None, help="also write the JSON summary here")
    args = p.parse_args(argv)
    for path in (args.ours, args.hf, args.probe):
        if path is not None and not Path(path).is_file():
            p.error(f"{path}: no such file")
    table, summary = build(read_jsonl(args.ours), read_jsonl(args.hf), read_jsonl(args.probe) if args.probe else ())
    if args.out:
        Path(args.out).write_text(table)
    if args.summary_out:
        Path(args.summary_out).write_text(json.dumps(summary) + "\n")
    sys.stdout.write(table)
    print(json.dumps(summary), flush=True)
    return summary


if __name__ == "__main__":
    main()
