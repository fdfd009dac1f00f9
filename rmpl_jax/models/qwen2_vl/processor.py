"""Qwen2-VL / Qwen2.5-VL inputs: transformers' image processor (PIL backend) and tokenizer
from an HF directory, the chat template, and image-token expansion, all returning numpy.

For the same texts and images `QwenProcessor(...)(text, images)` gives the same
`input_ids`, `attention_mask`, `pixel_values`, `image_grid_thw` and `mm_token_type_ids`
as `transformers.AutoProcessor` (PIL backend). It also reports each image's original and
resized (height, width): Qwen2.5-VL boxes are absolute pixels of the resized image.

A directory holding only config.json + safetensors still works for images: the image
processor then uses Qwen2VLImageProcessor's defaults (min 56*56, max 28*28*1280 pixels)
with the patch/merge/temporal sizes of config.json, and there is no tokenizer (callers
build token ids themselves with `image_token_run` / `expand_image_token_ids`).
"""

from __future__ import annotations

import json
import pathlib
from collections.abc import Sequence
from typing import Any

import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from transformers import AutoTokenizer
from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import (
    Qwen2VLImageProcessorPil,
)

from rmpl_jax.models.qwen2_vl.boxes import smart_resize

END_OF_TURN = "<|im_end|>"  # closes every turn of the Qwen chat format
IMAGE_TOKEN = "<|image_pad|>"
VIDEO_TOKEN = "<|video_pad|>"
VISION_START_TOKEN = "<|vision_start|>"
VISION_END_TOKEN = "<|vision_end|>"

# Qwen2VLImageProcessor defaults (also what Qwen2.5-VL checkpoints ship).
DEFAULT_MIN_PIXELS = 56 * 56
DEFAULT_MAX_PIXELS = 28 * 28 * 1280

_MODEL_TYPES = ("qwen2_vl", "qwen2_5_vl")
_TOKENIZER_FILES = ("tokenizer.json", "vocab.json", "tokenizer_config.json")

# Used only when neither the tokenizer nor the directory carries a chat template. It writes
# the Qwen chat format: a default system turn, <|im_start|>role\n ... <|im_end|>\n per turn,
# each image part as <|vision_start|><|image_pad|><|vision_end|>.
DEFAULT_CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if loop.first and message['role'] != 'system' -%}"
    "{{ '<|im_start|>system\\nYou are a helpful assistant.<|im_end|>\\n' }}"
    "{%- endif -%}"
    "{{ '<|im_start|>' + message['role'] + '\\n' }}"
    "{%- if message['content'] is string -%}{{ message['content'] }}"
    "{%- else -%}{%- for part in message['content'] -%}"
    "{%- if part['type'] == 'image' -%}{{ '<|vision_start|><|image_pad|><|vision_end|>' }}"
    "{%- elif part['type'] == 'text' -%}{{ part['text'] }}"
    "{%- endif -%}{%- endfor -%}{%- endif -%}"
    "{{ '<|im_end|>\\n' }}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}{{ '<|im_start|>assistant\\n' }}{%- endif -%}"
)


def _read_json(path: pathlib.Path) -> dict:
    try:
        with open(path) as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: invalid JSON at line {e.lineno}: {e.msg}") from e


def _size_limits(image_processor) -> tuple[int, int]:
    size = getattr(image_processor, "size", None) or {}
    get = size.get if hasattr(size, "get") else (lambda k: getattr(size, k, None))
    lo = get("shortest_edge") or getattr(image_processor, "min_pixels", None)
    hi = get("longest_edge") or getattr(image_processor, "max_pixels", None)
    if lo is None or hi is None:
        raise ValueError(f"image processor {type(image_processor).__name__} has no min/max pixel limits")
    return int(lo), int(hi)


def _hw_of(image: Any, index: int) -> tuple[int, int]:
    """(height, width) of a PIL image or an HWC / CHW array."""
    if hasattr(image, "size") and hasattr(image, "mode"):  # PIL.Image
        w, h = image.size
        return int(h), int(w)
    arr = np.asarray(image)
    if arr.ndim == 2:
        return arr.shape
    if arr.ndim == 3:
        # channels-first only when the first axis looks like channels and the last does not
        if arr.shape[0] in (1, 3, 4) and arr.shape[-1] not in (1, 3, 4):
            return arr.shape[1], arr.shape[2]
        return arr.shape[0], arr.shape[1]
    raise ValueError(f"image {index}: expected a PIL image or an HxW[xC] array, got shape {arr.shape}")


class QwenProcessor:
    """Tokenizer + image processor for the Qwen2-VL family; see the module docstring.

    Build with `QwenProcessor.from_dir(hf_dir)`. `tokenizer` may be None (no tokenizer
    files): images still work, text calls raise.
    """

    end_of_turn = END_OF_TURN
    takes_images = True
    image_keys = ("pixel_values", "image_grid_thw")  # the model's image inputs among `__call__`'s outputs

    def __init__(
        self,
        image_processor,
        tokenizer=None,
        *,
        model_type: str,
        image_token_id: int,
        video_token_id: int,
        vision_start_token_id: int,
        vision_end_token_id: int,
        chat_template: str | None = None,
        source: str = "<memory>",
    ):
        if model_type not in _MODEL_TYPES:
            raise ValueError(f"{source}: model_type {model_type!r} is not one of {_MODEL_TYPES}")
        self.image_processor = image_processor
        self.tokenizer = tokenizer
        self.model_type = model_type
        self.image_token_id = int(image_token_id)
        self.video_token_id = int(video_token_id)
        self.vision_start_token_id = int(vision_start_token_id)
        self.vision_end_token_id = int(vision_end_token_id)
        self.chat_template = chat_template
        self.source = source
        self.min_pixels, self.max_pixels = _size_limits(image_processor)

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_dir(
        cls, hf_dir: str | pathlib.Path, *, min_pixels: int | None = None, max_pixels: int | None = None
    ) -> QwenProcessor:
        """Load from an HF model directory (config.json required; tokenizer and
        preprocessor files optional). min/max_pixels override the image processor's."""
        hf_dir = pathlib.Path(hf_dir)
        config_path = hf_dir / "config.json"
        if not config_path.is_file():
            raise FileNotFoundError(f"{config_path} not found (need the model's config.json)")
        config = _read_json(config_path)
        model_type = config.get("model_type")
        if model_type not in _MODEL_TYPES:
            raise ValueError(f"{config_path}: model_type {model_type!r} is not one of {_MODEL_TYPES}")
        vision = config.get("vision_config") or {}

        overrides = {k: v for k, v in (("min_pixels", min_pixels), ("max_pixels", max_pixels)) if v is not None}
        ip_cls = Qwen2VLImageProcessorPil
        has_ip_config = (hf_dir / "preprocessor_config.json").is_file() or (
            (hf_dir / "processor_config.json").is_file()
            and "image_processor" in _read_json(hf_dir / "processor_config.json")
        )
        if has_ip_config:
            image_processor = ip_cls.from_pretrained(str(hf_dir), **overrides)
        else:
            image_processor = ip_cls(
                patch_size=int(vision.get("patch_size", 14)),
                temporal_patch_size=int(vision.get("temporal_patch_size", 2)),
                merge_size=int(vision.get("spatial_merge_size", 2)),
                min_pixels=overrides.get("min_pixels", DEFAULT_MIN_PIXELS),
                max_pixels=overrides.get("max_pixels", DEFAULT_MAX_PIXELS),
            )
        _check_image_processor_matches(image_processor, vision, config_path)

        tokenizer = None
        if any((hf_dir / name).is_file() for name in _TOKENIZER_FILES):
            tokenizer = AutoTokenizer.from_pretrained(str(hf_dir))

        ids = {
            "image_token_id": config.get("image_token_id", 151655),
            "video_token_id": config.get("video_token_id", 151656),
            "vision_start_token_id": config.get("vision_start_token_id", 151652),
            "vision_end_token_id": config.get("vision_end_token_id", 151653),
        }
        if tokenizer is not None:
            tokens = {
                "image_token_id": IMAGE_TOKEN,
                "video_token_id": VIDEO_TOKEN,
                "vision_start_token_id": VISION_START_TOKEN,
                "vision_end_token_id": VISION_END_TOKEN,
            }
            for key, token in tokens.items():
                tok_id = tokenizer.convert_tokens_to_ids(token)
                if tok_id is None or (tok_id == tokenizer.unk_token_id and token not in tokenizer.get_vocab()):
                    raise ValueError(f"{hf_dir}: tokenizer has no {token} token")
                if key in config and int(config[key]) != tok_id:
                    raise ValueError(f"{config_path}: {key}={config[key]} but the tokenizer maps {token} to {tok_id}")
                ids[key] = tok_id
        return cls(
            image_processor,
            tokenizer,
            model_type=model_type,
            chat_template=_find_chat_template(hf_dir, tokenizer),
            source=str(hf_dir),
            **ids,
        )

    # --------------------------------------------------------------------- settings
    @property
    def patch_size(self) -> int:
        return int(self.image_processor.patch_size)

    @property
    def merge_size(self) -> int:
        return int(self.image_processor.merge_size)

    @property
    def temporal_patch_size(self) -> int:
        return int(self.image_processor.temporal_patch_size)

    def resized_size(self, height: int, width: int) -> tuple[int, int]:
        """(height, width) the image processor resizes an image of this size to."""
        return tuple(
            smart_resize(int(height), int(width), self.patch_size * self.merge_size, self.min_pixels, self.max_pixels)
        )

    def num_image_tokens(self, height: int, width: int) -> int:
        """Number of <|image_pad|> tokens for an image of this (original) size."""
        h, w = self.resized_size(height, width)
        return (h // self.patch_size) * (w // self.patch_size) // self.merge_size**2

    # ----------------------------------------------------------------------- images
    def process_images(self, images: Sequence[Any]) -> dict[str, np.ndarray]:
        """pixel_values [n_patches, C*T*P*P] float32, image_grid_thw [n, 3] int64,
        original_sizes / resized_sizes [n, 2] int64 as (height, width)."""
        images = list(images)
        if not images:
            raise ValueError("process_images needs at least one image")
        original = np.asarray([_hw_of(im, i) for i, im in enumerate(images)], np.int64)
        out = self.image_processor(images=images, return_tensors="np")
        pixel_values = np.asarray(out["pixel_values"], np.float32)
        grid = np.asarray(out["image_grid_thw"], np.int64).reshape(-1, 3)
        resized = grid[:, 1:] * self.patch_size
        expected = np.asarray([self.resized_size(h, w) for h, w in original], np.int64)
        if not np.array_equal(resized, expected):
            # The size we report must be the one the processor really used.
            raise RuntimeError(f"image processor resized to {resized.tolist()}, smart_resize says {expected.tolist()}")
        return {
            "pixel_values": pixel_values,
            "image_grid_thw": grid,
            "original_sizes": original,
            "resized_sizes": resized,
        }

    def tokens_per_image(self, grid_thw: np.ndarray) -> list[int]:
        grid = np.asarray(grid_thw).reshape(-1, 3)
        return [int(t * h * w) // self.merge_size**2 for t, h, w in grid]

    def image_token_run(self, grid_row: Sequence[int]) -> list[int]:
        """<|vision_start|> <|image_pad|>*n <|vision_end|> ids for one image's (t, h, w)."""
        (n,) = self.tokens_per_image(np.asarray(grid_row).reshape(1, 3))
        return [self.vision_start_token_id] + [self.image_token_id] * n + [self.vision_end_token_id]

    def image_token_runs(self, image_inputs: dict[str, np.ndarray]) -> list[list[int]]:
        """The token run of each image of `process_images`' output, in order."""
        return [self.image_token_run(row) for row in np.asarray(image_inputs["image_grid_thw"]).reshape(-1, 3)]

    def expand_image_token_ids(self, ids: Sequence[int], grid_thw: np.ndarray) -> np.ndarray:
        """Replace each single <|image_pad|> id by the image's run of pad ids (images in order)."""
        counts = self.tokens_per_image(grid_thw)
        ids = list(ids)
        found = sum(1 for i in ids if i == self.image_token_id)
        if found != len(counts):
            raise ValueError(f"{found} image placeholder ids in the sequence but {len(counts)} images in grid_thw")
        out, k = [], 0
        for i in ids:
            if i == self.image_token_id:
                out.extend([i] * counts[k])
                k += 1
            else:
                out.append(i)
        return np.asarray(out, np.int64)

    def expand_image_tokens(self, texts: Sequence[str], grid_thw: np.ndarray) -> list[str]:
        """Replace the i-th <|image_pad|> over all texts by the i-th image's run of pads."""
        counts = self.tokens_per_image(grid_thw)
        found = sum(t.count(IMAGE_TOKEN) for t in texts)
        if found != len(counts):
            raise ValueError(f"the texts hold {found} {IMAGE_TOKEN} placeholders but {len(counts)} images were given")
        it = iter(counts)
        return [
            "".join(
                piece if j == 0 else IMAGE_TOKEN * next(it) + piece for j, piece in enumerate(text.split(IMAGE_TOKEN))
            )
            for text in texts
        ]

    # ------------------------------------------------------------------------- text
    def _require_tokenizer(self):
        if self.tokenizer is None:
            raise ValueError(
                f"{self.source} has no tokenizer files; only images can be processed "
                "(build token ids with image_token_run / expand_image_token_ids)"
            )
        return self.tokenizer

    def apply_chat_template(self, messages: list[dict], add_generation_prompt: bool = True) -> str:
        """Prompt text for chat messages ({'role', 'content': str | [{'type': 'image'|'text', ...}]})."""
        template = self.chat_template or DEFAULT_CHAT_TEMPLATE
        if self.tokenizer is not None:
            return self.tokenizer.apply_chat_template(
                messages, chat_template=template, tokenize=False, add_generation_prompt=add_generation_prompt
            )
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        return env.from_string(template).render(messages=messages, add_generation_prompt=add_generation_prompt)

    def __call__(
        self,
        text: str | Sequence[str],
        images: Sequence[Any] | None = None,
        *,
        padding: bool | str = True,
        padding_side: str | None = None,
    ) -> dict[str, np.ndarray]:
        """Tokenize texts whose <|image_pad|> placeholders stand for `images` (a flat list in
        order of appearance over the texts). Returns numpy arrays: input_ids,
        attention_mask, mm_token_type_ids [B, T] and, with images, pixel_values,
        image_grid_thw, original_sizes, resized_sizes."""
        tokenizer = self._require_tokenizer()
        texts = [text] if isinstance(text, str) else list(text)
        if not texts or not all(isinstance(t, str) for t in texts):
            raise ValueError("text must be a string or a non-empty list of strings")
        n_placeholders = sum(t.count(IMAGE_TOKEN) for t in texts)
        n_images = 0 if images is None else len(images)
        if n_placeholders != n_images:
            raise ValueError(
                f"the texts hold {n_placeholders} {IMAGE_TOKEN} placeholders but {n_images} images were given"
            )
        out: dict[str, np.ndarray] = {}
        if n_images:
            out.update(self.process_images(images))
            texts = self.expand_image_tokens(texts, out["image_grid_thw"])
        kwargs = {} if padding_side is None else {"padding_side": padding_side}
        enc = tokenizer(texts, padding=padding, return_tensors="np", return_attention_mask=True, **kwargs)
        input_ids = np.asarray(enc["input_ids"])
        found = int((input_ids == self.image_token_id).sum())
        expected = sum(self.tokens_per_image(out["image_grid_thw"])) if n_images else 0
        if found != expected:
            raise ValueError(f"tokenized texts hold {found} image-pad ids, expected {expected} (truncated?)")
        mm = np.zeros_like(input_ids)
        mm[input_ids == self.image_token_id] = 1
        mm[input_ids == self.video_token_id] = 2
        out.update(input_ids=input_ids, attention_mask=np.asarray(enc["attention_mask"]), mm_token_type_ids=mm)
        return out

    def decode(self, ids: Sequence[int], skip_special_tokens: bool = True) -> str:
        return self._require_tokenizer().decode(list(ids), skip_special_tokens=skip_special_tokens)


def _check_image_processor_matches(image_processor, vision: dict, config_path: pathlib.Path) -> None:
    """The preprocessor's patch geometry must be the vision tower's, or features misalign."""
    pairs = (
        ("patch_size", "patch_size"),
        ("temporal_patch_size", "temporal_patch_size"),
        ("merge_size", "spatial_merge_size"),
    )
    for ip_key, cfg_key in pairs:
        if cfg_key in vision and int(getattr(image_processor, ip_key)) != int(vision[cfg_key]):
            raise ValueError(
                f"{config_path}: vision_config.{cfg_key}={vision[cfg_key]} but the image processor "
                f"has {ip_key}={getattr(image_processor, ip_key)}"
            )


def _find_chat_template(hf_dir: pathlib.Path, tokenizer) -> str | None:
    """The directory's chat template: chat_template.jinja, chat_template.json,
    processor_config.json, then the tokenizer's own; None when there is none."""
    jinja = hf_dir / "chat_template.jinja"
    if jinja.is_file():
        return jinja.read_text()
    for name in ("chat_template.json", "processor_config.json"):
        path = hf_dir / name
        if path.is_file():
            template = _read_json(path).get("chat_template")
            if isinstance(template, str):
                return template
    template = getattr(tokenizer, "chat_template", None) if tokenizer is not None else None
    return template if isinstance(template, str) else None
