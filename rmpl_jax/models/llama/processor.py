"""Text inputs of a Llama-family model: its tokenizer and chat template.

The chat template is the directory's (`chat_template.jinja`, `chat_template.json`) or the
tokenizer's own; a tokenizer without one gets `DEFAULT_CHAT_TEMPLATE`, the plain Vicuna v1.1
format (`USER: ... ASSISTANT: ...</s>`) that LLaVA-1.5's language model was tuned with. The
end-of-turn token is read off the template: the special token that follows an assistant
message (`<|im_end|>` for ChatML, as SmolLM2-Instruct; `<|eot_id|>` for Llama 3), else the
tokenizer's eos token. Templates see message content as one string (text parts joined).
Prompts are tokenized without extra special tokens: a template that wants BOS writes it.
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from transformers import AutoTokenizer

DEFAULT_CHAT_TEMPLATE = (
    "{{ bos_token or '' }}"
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'system' -%}{{ message['content'] + ' ' }}"
    "{%- elif message['role'] == 'user' -%}{{ 'USER: ' + message['content'] + ' ' }}"
    "{%- else -%}{{ 'ASSISTANT: ' + message['content'] + eos_token }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ 'ASSISTANT:' }}{%- endif -%}"
)
_PROBE = "rmpl-end-of-turn-probe"  # an assistant message whose ending the template shows
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")


def _flatten(messages: list[dict]) -> list[dict]:
    """Messages with list content ([{'type': 'text', ...}]) turned into one string each."""
    out = []
    for i, message in enumerate(messages):
        content = message.get("content", "")
        if not isinstance(content, str):
            kinds = [part.get("type") for part in content]
            if any(kind != "text" for kind in kinds):
                raise ValueError(f"message {i}: a text-only model takes text parts only, got {kinds}")
            content = "".join(part["text"] for part in content)
        out.append({**message, "content": content})
    return out


def as_texts(text: str | Sequence[str]) -> list[str]:
    """One prompt or several as a non-empty list of strings, else ValueError."""
    texts = [text] if isinstance(text, str) else list(text)
    if not texts or not all(isinstance(t, str) for t in texts):
        raise ValueError("text must be a string or a non-empty list of strings")
    return texts


def _directory_template(hf_dir: pathlib.Path) -> str | None:
    jinja = hf_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    path = hf_dir / "chat_template.json"
    if path.is_file():
        template = json.loads(path.read_text()).get("chat_template")
        return template if isinstance(template, str) else None
    return None


class TextProcessor:
    """Tokenizer + chat template of a text-only model; build with `TextProcessor.from_dir`."""

    takes_images = False
    image_keys: tuple[str, ...] = ()  # the model's image inputs among `__call__`'s outputs

    def __init__(self, tokenizer, *, chat_template: str | None = None, source: str = "<memory>"):
        if tokenizer.pad_token is None:  # batches need one; the eos token never scores (masked)
            tokenizer.pad_token = tokenizer.eos_token
        self.tokenizer = tokenizer
        self.source = source
        self.chat_template = chat_template or tokenizer.chat_template or DEFAULT_CHAT_TEMPLATE
        self.end_of_turn = self._end_of_turn()

    @classmethod
    def from_dir(cls, hf_dir: str | pathlib.Path) -> TextProcessor:
        hf_dir = pathlib.Path(hf_dir)
        if not any((hf_dir / name).is_file() for name in _TOKENIZER_FILES):
            raise FileNotFoundError(f"{hf_dir}: no tokenizer files ({', '.join(_TOKENIZER_FILES)})")
        tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))
        return cls(tokenizer, chat_template=_directory_template(hf_dir), source=str(hf_dir))

    def _end_of_turn(self) -> str:
        """The special token right after an assistant message, else the eos token."""
        text = self.apply_chat_template(
            [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _PROBE}], add_generation_prompt=False
        )
        tail = text[text.rindex(_PROBE) + len(_PROBE) :].lstrip(" ")
        specials = sorted(set(self.tokenizer.all_special_tokens) | set(self.tokenizer.get_added_vocab()), key=len)
        for token in reversed(specials):  # the longest match first
            if token and tail.startswith(token):
                return token
        if self.tokenizer.eos_token is None:
            raise ValueError(
                f"{self.source}: the chat template ends assistant turns with no special token and "
                "the tokenizer has no eos token: nothing could end an answer"
            )
        return self.tokenizer.eos_token

    def template_messages(self, messages: list[dict]) -> list[dict]:
        """Messages as the chat template takes them: text parts joined into strings."""
        return _flatten(messages)

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Prompt text for chat messages (content: a string or text parts; photo processors
        take image parts too)."""
        return self.tokenizer.apply_chat_template(
            self.template_messages(messages),
            chat_template=self.chat_template,
            tokenize=False,
            add_generation_prompt=add_generation_prompt,
        )

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        *,
        padding: bool | str = True,
        padding_side: str | None = None,
    ) -> dict[str, np.ndarray]:
        """input_ids and attention_mask [B, T] (numpy) of chat-formatted texts."""
        if images:
            raise ValueError(f"{self.source} is a text-only model: it takes no images ({len(images)} given)")
        return self.tokenize(as_texts(text), padding=padding, padding_side=padding_side)

    def tokenize(self, texts: list[str], *, padding: bool | str, padding_side: str | None) -> dict[str, np.ndarray]:
        """input_ids and attention_mask [B, T] of prompt texts, no special tokens added."""
        kwargs = {} if padding_side is None else {"padding_side": padding_side}
        enc = self.tokenizer(
            texts, padding=padding, add_special_tokens=False, return_tensors="np", return_attention_mask=True, **kwargs
        )
        return {"input_ids": np.asarray(enc["input_ids"]), "attention_mask": np.asarray(enc["attention_mask"])}

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self.tokenizer.decode(list(ids), skip_special_tokens=skip_special_tokens)
