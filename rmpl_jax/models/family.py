"""The typed interface every model family implements, and the registry by HF `model_type`.

    family = family_for_dir(hf_dir)               # or get_family("qwen2_5_vl"), family_of(model)
    model = family.load_hf(hf_dir, dtype="bfloat16", shardings=None)
    processor = family.processor(hf_dir)
    family.export_hf(model, out_dir)

Generic code (data, training, decoding, prediction, LoRA) talks to a model only through
`ModelFamily`, `Processor` and `CausalLM`, and never names a family's own inputs: a family's
processor returns its image inputs under its own keys (featurisation keeps them, batches
concatenate them along their first axis), and the family turns a batch into the model's
keyword inputs (`model_inputs`), image layouts into features (`image_features`) and prompts
into positions (`prompt_positions`). A family is one package under `models/` (model, config,
params, processor, box codec, presets) with one object satisfying `ModelFamily`, registered
here; tests/test_family_contract.py runs the product path for every registered family.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import jax
import numpy as np
from flax import nnx

from rmpl_jax.m2e2.boxes import BoxCodec
from rmpl_jax.models.gemma3.family import GEMMA3, GEMMA3_TEXT
from rmpl_jax.models.layers import KVCache
from rmpl_jax.models.llama.family import LLAMA
from rmpl_jax.models.llava.family import LLAVA
from rmpl_jax.models.qwen2_vl.family import QWEN2_VL


@runtime_checkable
class Processor(Protocol):
    """Text (and image) inputs of a family, as featurisation and decoding use them.

    tokenizer: the transformers tokenizer (None when the directory has no tokenizer files).
    end_of_turn: the token string that closes every assistant turn: training appends it to
        every target, decoding stops on it, the constrained grammar ends with it.
    takes_images: whether `__call__` accepts images.
    image_keys: which of `__call__`'s outputs are the model's image inputs.
    """

    tokenizer: Any
    source: str
    end_of_turn: str
    takes_images: bool
    image_keys: tuple[str, ...]

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Prompt text of chat messages ({'role', 'content': str | [{'type': 'image'|'text'}]})."""
        ...

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        *,
        padding: bool | str = True,
        padding_side: str | None = None,
    ) -> dict[str, np.ndarray]:
        """input_ids, attention_mask [B, T] and, with images, the family's image inputs (each
        an array whose first axis runs over the images, or over their rows in image order, so
        that concatenating examples' inputs gives the batch's)."""
        ...

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str: ...


@runtime_checkable
class CausalLM(Protocol):
    """The public methods of a family's model that training and decoding call."""

    config: Any  # the family's config: `model_type` and `compute_dtype` at least

    def hidden_states(
        self, input_ids, *, attention_mask=None, right_padded=False, segment_ids=None, **inputs
    ) -> jax.Array:
        """Final-norm hidden states [B, T, D]; `inputs`: the image inputs `model_inputs` names;
        `right_padded`: causal attention over key lengths, no [B, 1, T, T] mask (training);
        `segment_ids`: packed rows (`models/segments.py`: attention within each example,
        positions restarting per example, photos in per-row slots)."""
        ...

    def logits_from_hidden(self, h: jax.Array) -> jax.Array:
        """[.., D] -> float32 logits [.., V]."""
        ...

    def init_cache(self, batch: int, max_len: int, dtype=None) -> KVCache: ...

    def prefill(self, input_ids, *, attention_mask, position_ids, cache: KVCache, image_features=None):
        """A left-padded prompt batch fills cache slots 0..P-1 -> (last logits [B, V], cache)."""
        ...

    def decode_step(self, tokens, *, position_ids, cache: KVCache, slot, key_mask):
        """New tokens in slots slot.. attend over the cache -> (logits [B, T, V], cache)."""
        ...


@runtime_checkable
class ModelFamily(Protocol):
    """One model family: its HF checkpoints, processor, conventions and decoding hooks.

    default_lora_targets: regex over projection paths (`models.lora`) that `lora_targets=""`
        means. image_keys: the keys of its processor's image inputs (empty: text only).
        static_batch_keys: image inputs passed to the model as host constants (a
        layout: each value compiles its own step; one row per example, equal within a batch).
        batch_logical_axes: logical axes of image inputs whose dim 0 is not one example per row.
    """

    name: str
    default_lora_targets: str
    image_keys: tuple[str, ...]
    static_batch_keys: tuple[str, ...]
    batch_logical_axes: Mapping[str, tuple[str | None, ...]]

    def config_from_hf(self, hf: Mapping[str, Any], **options) -> Any:
        """The family's config from an HF config dict; `options` set run-time fields."""
        ...

    def build(self, config, dtype: str | None = None, rngs: nnx.Rngs | None = None, **options) -> CausalLM:
        """A randomly initialised model."""
        ...

    def abstract_model(self, config) -> CausalLM:
        """The model with shapes only (`nnx.eval_shape`): no memory, no compute."""
        ...

    def load_hf(
        self, hf_dir, dtype: str | None = None, shardings=None, *, strict: bool = True, report=None, **options
    ) -> CausalLM:
        """The model of an HF directory, tensors streamed straight into `shardings`
        (None, a path -> Sharding mapping, or a callable (path, variable) -> Sharding)."""
        ...

    def export_hf(self, model, out_dir, dtype: str | None = None) -> list[Path]:
        """HF safetensors (LoRA merged) and config.json that transformers loads."""
        ...

    def processor(self, hf_dir) -> Processor:
        """Tokenizer, chat template and image processing of an HF directory."""
        ...

    def has_vision(self, config) -> bool:
        """Whether a model of this config takes images."""
        ...

    def box_codec(self, config, image_side: int | None) -> BoxCodec | None:
        """How answers write boxes for photos resized to image_side x image_side (None: at
        their own size); None for a model without vision."""
        ...

    def model_inputs(self, batch: Mapping[str, Any]) -> dict[str, Any]:
        """The keyword inputs of `hidden_states` from a training batch (`input_ids`,
        `attention_mask` and the image inputs; the static keys as host arrays; the step has
        removed the loss mask and the ids). Any other key is an error naming it."""
        ...

    def prompt_positions(self, config, input_ids: np.ndarray, attention_mask: np.ndarray, images=None):
        """Host-side position ids of a left-padded prompt batch for `prefill`, and the
        position [B] of each row's first generated token; `images`: the batch's image inputs
        (host arrays, concatenated over its photos) or None."""
        ...

    def decode_positions(self, positions: jax.Array) -> jax.Array:
        """Position ids for `decode_step` of one new token per row at positions [B] (in jit)."""
        ...

    def image_features(self, model, images: Mapping[str, Any]) -> jax.Array:
        """Image features [n_image_tokens, D] that `prefill` takes (in jit: arrays traced,
        the static keys host arrays)."""
        ...


FAMILIES: dict[str, ModelFamily] = {
    "qwen2_vl": QWEN2_VL,
    "qwen2_5_vl": QWEN2_VL,
    "llama": LLAMA,
    "llava": LLAVA,
    "gemma3_text": GEMMA3_TEXT,
    "gemma3": GEMMA3,
}


def register(model_type: str, family: ModelFamily) -> None:
    """Adds a family; refuses to replace an existing one or an object lacking the interface."""
    if model_type in FAMILIES:
        raise ValueError(f"model_type {model_type!r} is already registered")
    if not isinstance(family, ModelFamily):
        members = set(ModelFamily.__annotations__) | {n for n in vars(ModelFamily) if not n.startswith("_")}
        missing = sorted(name for name in members if not hasattr(family, name))
        raise TypeError(f"{type(family).__name__} is not a ModelFamily; it lacks {missing}")
    FAMILIES[model_type] = family


def get_family(model_type: str) -> ModelFamily:
    try:
        return FAMILIES[model_type]
    except KeyError:
        raise KeyError(f"unknown model_type {model_type!r}; known: {sorted(FAMILIES)}") from None


def family_for_dir(hf_dir: str | Path) -> ModelFamily:
    """The family of an HF directory, from config.json's model_type."""
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json")
    model_type = json.loads(path.read_text()).get("model_type")
    if model_type is None:
        raise KeyError(f"{path}: no 'model_type' key")
    return get_family(model_type)


def family_of(model) -> ModelFamily:
    """The family of a built model (from its config's model_type)."""
    return get_family(model.config.model_type)
