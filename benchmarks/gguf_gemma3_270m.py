"""Gemma 3 270M from GGUF: our converted HF directory against transformers' own GGUF loading.

    python benchmarks/gguf_gemma3_270m.py gemma-3-270m-q4_k_m.gguf gemma3-270m-hf [--no-convert]

Converts the file into the directory (timed; `--no-convert` reuses a directory already written),
then loads the directory with `AutoModelForCausalLM` and the .gguf with
`AutoModelForCausalLM.from_pretrained(..., gguf_file=...)` (both float32, eager attention: the
same dequantised bytes, so the logits should agree to float32 rounding) and prints one JSON line:

- max_abs_logit_diff / argmax_agreement over every position of the sentences below;
- tokens_equal: our tokenizer's ids == transformers' GGUF tokenizer's on those sentences, and
  tokens_equal_extra on harder strings (Unicode, digits, spaces, newlines, a chat rendering);
- nll: mean next-token loss of our model on the sentences, and of two deliberately wrong
  conversions — norms left as llama.cpp stores them (+1), q/k rows "un-interleaved" as for
  Llama — which show that what the conversion undoes (and does not) is what llama.cpp did;
- convert_seconds: the conversion's wall time.
"""

from __future__ import annotations

import argparse
import json
import pathlib
import sys
import time

import numpy as np
import torch
import transformers

_REPO = pathlib.Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:
    sys.path.insert(0, str(_REPO))

from rmpl_jax.models.hf.gguf import convert_gguf, unpermute_rows  # noqa: E402

SENTENCES = [
    "Police arrested dozens of protesters outside the parliament building in the capital on Monday.",
    "The United Nations said on Tuesday that more than 12,000 people had fled the fighting since March.",
    "Rescue workers searched through the rubble after the earthquake struck the coastal town overnight.",
    "Shares of the carmaker fell 4.5% in early trading after it cut its profit forecast for the year.",
]
EXTRA = [
    "“Quotes” and \u2018single\u2019 — dashes \u2013 and accents: café, naïve, Ångström, São Paulo 🤖🎉",
    "   leading spaces, trailing  \n\n\tTabs and\r\nnewlines 0123456789 1,234.56",
    "<start_of_turn>user\nWho met whom?<end_of_turn>\n<start_of_turn>model\n",
]


def _logits(model, ids: list[int]) -> np.ndarray:
    with torch.no_grad():
        return model(torch.tensor([ids])).logits[0].float().numpy()


def _nll(model, batch: list[list[int]]) -> float:
    losses = []
    for ids in batch:
        logits = torch.from_numpy(_logits(model, ids))
        losses.append(torch.nn.functional.cross_entropy(logits[:-1], torch.tensor(ids[1:])).item())
    return round(float(np.mean(losses)), 4)


def _ablation_nll(model, batch: list[list[int]], config) -> dict[str, float]:
    """Loss with one conversion step done wrong, the weights restored afterwards."""
    state = model.state_dict()
    out = {}
    norms = [k for k in state if k.endswith("norm.weight")]
    saved = {k: state[k].clone() for k in norms}
    with torch.no_grad():
        for k in norms:
            state[k].add_(1.0)  # as stored in the GGUF
    out["norms_kept_plus_one"] = _nll(model, batch)
    with torch.no_grad():
        for k in norms:
            state[k].copy_(saved[k])
    heads = {"q_proj": config.num_attention_heads, "k_proj": config.num_key_value_heads}
    qk = [k for k in state if k.endswith(("q_proj.weight", "k_proj.weight"))]
    saved = {k: state[k].clone() for k in qk}
    with torch.no_grad():
        for k in qk:
            n = heads[k.split(".")[-2]]
            state[k].copy_(torch.from_numpy(unpermute_rows(state[k].numpy(), n)))
    out["qk_rows_unpermuted_as_llama"] = _nll(model, batch)
    with torch.no_grad():
        for k in qk:
            state[k].copy_(saved[k])
    return out


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gguf", type=pathlib.Path)
    p.add_argument("hf_dir", type=pathlib.Path)
    p.add_argument("--no-convert", action="store_true", help="use the directory as it is")
    args = p.parse_args(argv)
    torch.manual_seed(0)
    seconds = None
    if not args.no_convert:
        start = time.perf_counter()
        convert_gguf(args.gguf, args.hf_dir)
        seconds = round(time.perf_counter() - start, 1)
    gguf_dir, gguf_name = str(args.gguf.resolve().parent), args.gguf.name
    tok = transformers.AutoTokenizer.from_pretrained(args.hf_dir)
    ref_tok = transformers.AutoTokenizer.from_pretrained(gguf_dir, gguf_file=gguf_name)
    ids = [tok(s)["input_ids"] for s in SENTENCES]
    tokens_equal = all(i == ref_tok(s)["input_ids"] for i, s in zip(ids, SENTENCES))
    chat = tok.apply_chat_template(
        [{"role": "user", "content": "Who met whom?"}, {"role": "assistant", "content": "The envoys met."}],
        tokenize=False,
        add_generation_prompt=False,
    )
    extra = [*EXTRA, chat]
    tokens_equal_extra = all(tok(s)["input_ids"] == ref_tok(s)["input_ids"] for s in extra)
    kw = dict(dtype=torch.float32, attn_implementation="eager")
    ours = transformers.AutoModelForCausalLM.from_pretrained(args.hf_dir, **kw).eval()
    ref = transformers.AutoModelForCausalLM.from_pretrained(gguf_dir, gguf_file=gguf_name, **kw).eval()
    diffs, agree, total = [], 0, 0
    for row in ids:
        a, b = _logits(ours, row), _logits(ref, row)
        diffs.append(float(np.abs(a - b).max()))
        agree += int((a.argmax(-1) == b.argmax(-1)).sum())
        total += len(row)
    report = {
        "max_abs_logit_diff": max(diffs),
        "max_abs_logit": float(max(np.abs(_logits(ref, row)).max() for row in ids)),
        "argmax_agreement": f"{agree}/{total}",
        "tokens_equal": tokens_equal,
        "tokens_equal_extra": tokens_equal_extra,
        "end_of_turn_ids": tok("<end_of_turn>", add_special_tokens=False)["input_ids"],
        "nll": {"ours": _nll(ours, ids), "transformers_gguf": _nll(ref, ids), **_ablation_nll(ours, ids, ours.config)},
        "convert_seconds": seconds,
        "torch_threads": torch.get_num_threads(),
    }
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
