"""Converts a GGUF file (llama.cpp) of a Llama or Gemma 3 text model into a Hugging Face model directory.

    python tools/convert_gguf.py SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf [--dtype float32]
    python tools/convert_gguf.py gemma-3-270m-q4_k_m.gguf gemma3-270m-hf

Architectures: `llama` (-> LlamaForCausalLM, byte-level BPE tokenizer) and `gemma3`
(-> Gemma3ForCausalLM, `gemma3_text`, Gemma's SentencePiece tokenizer, Gemma's chat template
when the file has none). Writes config.json, model.safetensors, generation_config.json, the
tokenizer files and the chat template; prints one JSON line (architecture, tensors per GGUF
type, files, seconds). The directory loads with transformers
(`AutoModelForCausalLM.from_pretrained(DIR)`) and as `--config.model.hf_dir=DIR` (the family of
its model_type). An unsupported architecture, key, tensor or quantisation is an error naming the
file and the key. What is supported in detail: `rmpl_jax/models/hf/gguf.py` and docs/gguf.md.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import pathlib
import sys
from collections.abc import Sequence

_REPO = pathlib.Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(_REPO))

from rmpl_jax.models.hf.gguf import DTYPES, convert_gguf  # noqa: E402


def main(argv: Sequence[str] | None = None) -> dict:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        epilog=__doc__.split("\n\n", 2)[2],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("gguf", type=pathlib.Path, help="the .gguf file (architecture llama or gemma3)")
    p.add_argument("out_dir", type=pathlib.Path, help="the HF directory to write")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the written weights")
    args = p.parse_args(argv)
    report = dataclasses.asdict(convert_gguf(args.gguf, args.out_dir, dtype=args.dtype))
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
