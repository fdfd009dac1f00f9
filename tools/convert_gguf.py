"""Converts a GGUF file (llama.cpp) into a Hugging Face model directory.

    python tools/convert_gguf.py SmolLM2-135M-Instruct.Q4_1.gguf smollm2-hf [--dtype float32]

Writes config.json, model.safetensors, generation_config.json, the tokenizer files and the
chat template; prints one JSON line (tensors per GGUF type, files, seconds). The directory
loads with transformers (`AutoModelForCausalLM.from_pretrained(DIR)`) and as
`--config.model.hf_dir=DIR`. What is supported: `rmpl_jax/models/hf/gguf.py`.
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
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("gguf", type=pathlib.Path, help="the .gguf file")
    p.add_argument("out_dir", type=pathlib.Path, help="the HF directory to write")
    p.add_argument("--dtype", default="float32", choices=sorted(DTYPES), help="dtype of the written weights")
    args = p.parse_args(argv)
    report = dataclasses.asdict(convert_gguf(args.gguf, args.out_dir, dtype=args.dtype))
    print(json.dumps(report), flush=True)
    return report


if __name__ == "__main__":
    main()
