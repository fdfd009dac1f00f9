"""A tiny offline Qwen2 tokenizer and processor files for tests (no downloads).

Byte-level BPE over the 256 byte symbols plus a few merges, with Qwen's special tokens at
ids chosen to agree with `tests/models/hf_tiny.py` (image pad 300, video pad 301, vision
start 302, vision end 303; vocab < 320). `save_tiny_processor_files(dir)` writes tokenizer
files, preprocessor_config.json and a chat template, so both `transformers` and
`rmpl_jax.processor.QwenProcessor` load the directory.
"""

from __future__ import annotations

import json
import pathlib

SPECIAL_IDS = {
    "<|endoftext|>": 290,
    "<|im_start|>": 291,
    "<|im_end|>": 292,
    "<|vision_pad|>": 293,
    "<|image_pad|>": 300,
    "<|video_pad|>": 301,
    "<|vision_start|>": 302,
    "<|vision_end|>": 303,
}
WORDS = ["the", "he", "in", "an", "er", "on", "at", "en", "is", "it", "or", "es", "ar", "al", "ed"]


def _byte_symbols() -> list[str]:
    """GPT-2 byte-level alphabet: printable bytes map to themselves, others are shifted."""
    printable = [*range(ord("!"), ord("~") + 1), *range(ord("¡"), ord("¬") + 1), *range(ord("®"), ord("ÿ") + 1)]
    symbols, shift = {}, 0
    for b in range(256):
        if b in printable:
            symbols[b] = chr(b)
        else:
            symbols[b] = chr(256 + shift)
            shift += 1
    return [symbols[b] for b in range(256)]


def make_tiny_tokenizer(extra_special: dict[str, int] | None = None):
    """A transformers Qwen2Tokenizer with the vocabulary above; `extra_special` adds special
    tokens at given ids (in the vocabulary itself, so they survive a save and reload)."""
    from tokenizers import AddedToken
    from transformers.models.qwen2.tokenization_qwen2 import Qwen2Tokenizer

    vocab = {s: i for i, s in enumerate(_byte_symbols())}
    merges = []
    for word in WORDS:  # two-symbol merges, with and without the leading-space marker
        for a, b in ((word[0], word[1:]), ("Ġ", word)):
            if a + b not in vocab and (a in vocab and b in vocab):
                merges.append((a, b))
                vocab[a + b] = len(vocab)
    assert len(vocab) <= min(SPECIAL_IDS.values()), len(vocab)
    specials = {**SPECIAL_IDS, **(extra_special or {})}
    vocab.update(specials)
    tok = Qwen2Tokenizer(vocab=vocab, merges=merges)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in specials])
    return tok


def save_tiny_processor_files(
    hf_dir, *, min_pixels: int = 56 * 56, max_pixels: int = 28 * 28 * 64, chat_template: str | None = None
) -> pathlib.Path:
    """Writes tokenizer + image-processor + chat-template files into hf_dir (created)."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    from rmpl_jax.models.qwen2_vl.processor import DEFAULT_CHAT_TEMPLATE

    hf_dir = pathlib.Path(hf_dir)
    hf_dir.mkdir(parents=True, exist_ok=True)
    make_tiny_tokenizer().save_pretrained(str(hf_dir))
    Qwen2VLImageProcessorPil(min_pixels=min_pixels, max_pixels=max_pixels).save_pretrained(str(hf_dir))
    (hf_dir / "chat_template.jinja").write_text(chat_template or DEFAULT_CHAT_TEMPLATE)
    processor_config = hf_dir / "processor_config.json"
    if not processor_config.exists():
        processor_config.write_text(json.dumps({"processor_class": "Qwen2VLProcessor"}))
    return hf_dir


def write_min_config(hf_dir, model_type: str = "qwen2_5_vl") -> pathlib.Path:
    """A config.json with just what the processor reads (for processor-only tests)."""
    hf_dir = pathlib.Path(hf_dir)
    hf_dir.mkdir(parents=True, exist_ok=True)
    config = {
        "model_type": model_type,
        "image_token_id": SPECIAL_IDS["<|image_pad|>"],
        "video_token_id": SPECIAL_IDS["<|video_pad|>"],
        "vision_start_token_id": SPECIAL_IDS["<|vision_start|>"],
        "vision_end_token_id": SPECIAL_IDS["<|vision_end|>"],
        "vision_config": {"patch_size": 14, "temporal_patch_size": 2, "spatial_merge_size": 2},
    }
    (hf_dir / "config.json").write_text(json.dumps(config))
    return hf_dir


def reference_processor(hf_dir):
    """transformers' own processor for hf_dir, PIL image backend.

    `AutoProcessor` also builds a video processor, which needs torchvision; where that is
    missing we use an image-only subclass of `Qwen2VLProcessor` so the text expansion and
    tokenization still run through transformers' own `__call__`.
    """
    import transformers
    from transformers import AutoTokenizer, Qwen2VLProcessor
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil
    from transformers.processing_utils import ProcessorMixin

    try:
        proc = transformers.AutoProcessor.from_pretrained(str(hf_dir))
        if not isinstance(proc.image_processor, Qwen2VLImageProcessorPil):  # torchvision backend picked
            proc.image_processor = Qwen2VLImageProcessorPil.from_pretrained(str(hf_dir))
        return proc
    except ImportError:  # no torchvision -> no video processor
        pass

    class ImageOnlyQwen2VLProcessor(Qwen2VLProcessor):
        def __init__(self, image_processor=None, tokenizer=None, chat_template=None, **kwargs):
            # Qwen2VLProcessor.__init__ minus the video processor.
            self.image_token = getattr(tokenizer, "image_token", None) or "<|image_pad|>"
            self.video_token = getattr(tokenizer, "video_token", None) or "<|video_pad|>"
            self.image_token_id = getattr(tokenizer, "image_token_id", None) or tokenizer.convert_tokens_to_ids(
                self.image_token
            )
            self.video_token_id = getattr(tokenizer, "video_token_id", None) or tokenizer.convert_tokens_to_ids(
                self.video_token
            )
            ProcessorMixin.__init__(self, image_processor, tokenizer, chat_template=chat_template)

    chat_template_path = pathlib.Path(hf_dir) / "chat_template.jinja"
    return ImageOnlyQwen2VLProcessor(
        image_processor=Qwen2VLImageProcessorPil.from_pretrained(str(hf_dir)),
        tokenizer=AutoTokenizer.from_pretrained(str(hf_dir)),
        chat_template=chat_template_path.read_text() if chat_template_path.exists() else None,
    )
