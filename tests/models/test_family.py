"""The family registry and the typed interface: every registered family and processor
satisfies its Protocol, lookups fail naming what is known, and the text processor finds the
end-of-turn token from the chat template (ChatML, a template-less tokenizer's default)."""

from __future__ import annotations

import json

import pytest

pytest.importorskip("transformers")

from rmpl_jax.models import family as F
from rmpl_jax.models.llama.processor import DEFAULT_CHAT_TEMPLATE, TextProcessor
from rmpl_jax.models.qwen2_vl.processor import QwenProcessor
from tests.testing.hf_tiny_llama import tiny_llama_chat_dir
from tests.testing.tiny_tokenizer import make_tiny_tokenizer, save_tiny_processor_files, write_min_config


def test_registered_families_implement_the_interface():
    assert {"qwen2_vl", "qwen2_5_vl", "llama", "llava"} <= set(F.FAMILIES)
    for model_type, family in F.FAMILIES.items():
        assert isinstance(family, F.ModelFamily), model_type
        assert family.default_lora_targets and isinstance(family.static_batch_keys, tuple)


def test_register_and_lookup_errors(tmp_path):
    with pytest.raises(ValueError, match="already registered"):
        F.register("llama", F.FAMILIES["llama"])
    with pytest.raises(TypeError, match=r"object is not a ModelFamily; it lacks \[.*'box_codec'"):
        F.register("new_type", object())
    assert "new_type" not in F.FAMILIES
    with pytest.raises(KeyError, match=r"unknown model_type 'gpt2'; known: \["):
        F.get_family("gpt2")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        F.family_for_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps({"hidden_size": 8}))
    with pytest.raises(KeyError, match="no 'model_type' key"):
        F.family_for_dir(tmp_path)


def test_processors_implement_the_interface(tmp_path):
    qwen_dir = save_tiny_processor_files(write_min_config(tmp_path / "qwen"))
    qwen = F.get_family("qwen2_5_vl").processor(qwen_dir)
    llama = F.family_for_dir(tiny_llama_chat_dir(tmp_path)).processor(tmp_path / "gqa")
    assert isinstance(qwen, QwenProcessor) and isinstance(llama, TextProcessor)
    for processor in (qwen, llama):
        assert isinstance(processor, F.Processor)
    assert (qwen.end_of_turn, qwen.takes_images) == ("<|im_end|>", True)
    assert (llama.end_of_turn, llama.takes_images) == ("<|im_end|>", False)


def test_text_processor_chat_and_end_of_turn(tmp_path):
    hf_dir = tiny_llama_chat_dir(tmp_path)
    proc = TextProcessor.from_dir(hf_dir)
    prompt = proc.apply_chat_template([{"role": "user", "content": [{"type": "text", "text": "hi"}]}])
    assert prompt == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    enc = proc([prompt, "the"], padding=True, padding_side="left")
    assert enc["input_ids"].shape == enc["attention_mask"].shape and enc["attention_mask"][1, 0] == 0
    with pytest.raises(ValueError, match="text-only model: it takes no images"):
        proc(prompt, images=["a photo"])
    with pytest.raises(
        ValueError, match=r"message 0: a text-only model takes text parts only, got \['image', 'text'\]"
    ):
        proc.apply_chat_template([{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "x"}]}])

    plain = make_tiny_tokenizer()  # no chat template: the documented default, ended by eos
    plain.eos_token = "<|endoftext|>"
    default = TextProcessor(plain)
    assert default.chat_template == DEFAULT_CHAT_TEMPLATE and default.end_of_turn == "<|endoftext|>"
    assert default.apply_chat_template([{"role": "user", "content": "hi"}]) == "USER: hi ASSISTANT:"
