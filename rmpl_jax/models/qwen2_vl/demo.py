"""A tiny Qwen2.5-VL-shaped model directory for the embedded demo: no weights exist
offline, so the demo trains from scratch with a byte-level BPE tokenizer learned from
its own corpus. The directory has the same files as a real HF checkpoint (config.json,
tokenizer, preprocessor config) minus the weights, so every later step — processor,
model build, training, export — runs the code real checkpoints use.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Iterable

from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import PreTrainedTokenizerFast, Qwen2_5_VLConfig
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil,
)

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>",
    "<|im_start|>",
    "<|im_end|>",
    "<|vision_start|>",
    "<|vision_end|>",
    "<|vision_pad|>",
    "<|image_pad|>",
    "<|video_pad|>",
)


def train_tokenizer(texts: Iterable[str], vocab_size: int):
    """A byte-level BPE `PreTrainedTokenizerFast` with Qwen's special tokens (ids 0-7)."""

    core = Tokenizer(models.BPE())
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    core.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=list(QWEN_SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    core.train_from_iterator(texts, trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=core,
        eos_token="<|im_end|>",
        pad_token="<|endoftext|>",
        additional_special_tokens=list(QWEN_SPECIAL_TOKENS[1:]),
    )


def write_demo_model_dir(
    out_dir: str | pathlib.Path, texts: Iterable[str], *, vocab_size: int, text: dict, vision: dict, image_side: int
) -> pathlib.Path:
    """Writes config.json, tokenizer files and preprocessor_config.json to `out_dir`.

    `text` / `vision` are Qwen2.5-VL text_config / vision_config entries (sizes);
    `image_side` fixes the image processor's pixel budget to one square of that side.
    """

    out_dir = pathlib.Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = train_tokenizer(texts, vocab_size)
    tokenizer.save_pretrained(str(out_dir))
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_SPECIAL_TOKENS}
    text_config = dict(
        text,
        vocab_size=len(tokenizer),
        bos_token_id=ids["<|endoftext|>"],
        eos_token_id=ids["<|im_end|>"],
        pad_token_id=ids["<|endoftext|>"],
    )
    config = Qwen2_5_VLConfig(
        text_config=text_config,
        vision_config=dict(vision, out_hidden_size=text["hidden_size"]),
        image_token_id=ids["<|image_pad|>"],
        video_token_id=ids["<|video_pad|>"],
        vision_start_token_id=ids["<|vision_start|>"],
        vision_end_token_id=ids["<|vision_end|>"],
        tie_word_embeddings=True,
    )
    config.save_pretrained(str(out_dir))
    pixels = image_side * image_side
    Qwen2VLImageProcessorPil(
        min_pixels=pixels,
        max_pixels=pixels,
        patch_size=vision["patch_size"],
        merge_size=vision["spatial_merge_size"],
        temporal_patch_size=vision["temporal_patch_size"],
    ).save_pretrained(str(out_dir))
    (out_dir / "demo_model.json").write_text(
        json.dumps({"note": "random-initialised demo model; tokenizer learned from the synthetic corpus"})
    )
    return out_dir
