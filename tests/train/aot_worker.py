"""Run by tests/tools/test_aot_memory.py with 8 host CPU devices: tools/aot_memory.py on a
one-layer tiny Qwen2.5-VL (train step and decode loop); prints the records as one JSON line."""

from __future__ import annotations

import contextlib
import io
import json

from tools import aot_memory

SMALL = ["--model", "qwen2.5-vl-tiny", "--topology", "cpu:8", "--layers", "1", "--batch", "8", "--seq", "96"]
SMALL += ["--image-side", "56", "--answer", "16", "--decode-batch", "8", "--prompt", "64", "--new-tokens", "4"]


def main() -> None:
    with contextlib.redirect_stdout(io.StringIO()) as printed:
        records = aot_memory.main(SMALL)
    lines = [json.loads(line) for line in printed.getvalue().splitlines() if line.startswith("{")]
    print(json.dumps({"records": records, "printed": lines}))


if __name__ == "__main__":
    main()
