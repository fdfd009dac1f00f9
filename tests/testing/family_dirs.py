"""One tiny random HF directory per registered `model_type`, as a user would give it to a run:
weights saved by transformers, a transformers tokenizer and the family's chat template (or the
processor's default). The family-contract test (tests/test_family_contract.py) trains, exports and
predicts with each; a family registered without an entry here fails that test, naming this file.

    hf_dir = FAMILY_DIRS["llava"](tmp_path)
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable

from tests.testing.hf_tiny import make_tiny_qwen
from tests.testing.hf_tiny_gemma3 import tiny_gemma3_chat_dir
from tests.testing.hf_tiny_llama import tiny_llama_chat_dir
from tests.testing.hf_tiny_llava import tiny_llava_chat_dir
from tests.testing.tiny_tokenizer import save_tiny_processor_files


def _qwen_dir(variant: str) -> Callable[[pathlib.Path], pathlib.Path]:
    def make(root: pathlib.Path) -> pathlib.Path:
        hf_dir, _ = make_tiny_qwen(root, variant)
        return save_tiny_processor_files(hf_dir)

    return make


FAMILY_DIRS: dict[str, Callable[[pathlib.Path], pathlib.Path]] = {
    "qwen2_vl": _qwen_dir("qwen2_vl"),
    "qwen2_5_vl": _qwen_dir("qwen2_5_vl"),
    "llama": tiny_llama_chat_dir,
    "llava": tiny_llava_chat_dir,
    "gemma3_text": tiny_gemma3_chat_dir,
    "gemma3": lambda root: tiny_gemma3_chat_dir(root, multimodal=True),
}
