"""Logit parity of our JAX model with the transformers torch model on one HF directory.

    python tools/parity.py --hf-dir DIR [--images K] [--dtype float32]

Builds a batch of two prompts (different lengths, padded) holding K synthetic images of
different sizes (vision families; default 2) or text only (text-only families such as
`llama`; K must be 0), runs our model (registry: family of config.json's model_type, loaded
from DIR) and the transformers model, and prints ONE JSON line: max_abs_logit_diff,
argmax_agreement (over non-padding positions), model_type, dtype, n_images, shapes.

DIR may hold only config.json + safetensors: then the token ids are random (with the
image-token runs inserted where the images go) and the image processor uses the family's
default settings. With tokenizer files the prompts go through the chat template. A model with
1-D positions (`llama`, `llava`, `gemma3_text`, `gemma3`) gets the position ids transformers'
`generate` gives a padded batch (the count of real tokens before each), as our model does by
default. LLaVA images are padded to squares and resized to the tower's side; Gemma 3's are
squashed to it, and transformers gets `token_type_ids` so a photo's tokens see each other;
`--images 0` checks the text path.

The accelerator machine may lack torch: `--save-reference FILE.npz` runs only transformers
(here) and stores inputs and logits; `--reference FILE.npz` runs only our model on those
inputs and compares. `--max-diff X` makes the exit status 1 when the difference exceeds X.
"""

from __future__ import annotations

import argparse
import functools
import inspect
import json
import math
import pathlib
import sys
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx
from PIL import Image

from rmpl_jax.models.family import family_for_dir
from rmpl_jax.models.gemma3.images import preprocess as gemma3_pixels
from rmpl_jax.models.gemma3.multimodal_config import Gemma3Config
from rmpl_jax.models.gemma3.processor import Gemma3Processor
from rmpl_jax.models.inputs import split_static, static_inputs
from rmpl_jax.models.llama.processor import TextProcessor
from rmpl_jax.models.llava.config import LlavaConfig
from rmpl_jax.models.llava.processor import IMAGE_TOKEN as LLAVA_IMAGE_TOKEN
from rmpl_jax.models.llava.processor import LlavaProcessor, image_processor, pixel_values
from rmpl_jax.models.qwen2_vl.processor import IMAGE_TOKEN, QwenProcessor

_REPO = pathlib.Path(__file__).resolve().parent.parent
if str(_REPO) not in sys.path:  # run as a script from anywhere
    sys.path.insert(0, str(_REPO))

# HF class per model_type (AutoModelForImageTextToText is the fallback).
HF_CLASSES = {
    "qwen2_vl": "Qwen2VLForConditionalGeneration",
    "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration",
    "llama": "LlamaForCausalLM",
    "llava": "LlavaForConditionalGeneration",
    "gemma3_text": "Gemma3ForCausalLM",
    "gemma3": "Gemma3ForConditionalGeneration",
}
SENTENCES = ["Police arrested the protesters near the parliament building on Monday.", "Troops fired at the convoy."]


def synthetic_images(k: int, seed: int = 0) -> list:
    """K RGB PIL images of different sizes and aspect ratios (smooth gradients plus noise,
    so resizing is not trivial)."""

    rng = np.random.default_rng(seed)
    sizes = [(140, 220), (260, 110), (96, 96), (200, 330), (330, 150), (120, 400)]
    images = []
    for i in range(k):
        h, w = sizes[i % len(sizes)]
        h, w = h + 17 * (i // len(sizes)), w + 11 * (i // len(sizes))
        yy, xx = np.mgrid[0:h, 0:w]
        base = np.stack([255 * yy / h, 255 * xx / w, 127 + 100 * np.sin((xx + yy) / 9.0)], -1)
        noisy = np.clip(base + rng.normal(0, 25, size=base.shape), 0, 255).astype(np.uint8)
        images.append(Image.fromarray(noisy))
    return images


def _split_images(k: int) -> list[int]:
    """Images per batch row: the first row gets the larger half."""
    return [math.ceil(k / 2), k // 2]


def _read_config(hf_dir: pathlib.Path) -> dict:
    path = hf_dir / "config.json"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no config.json")
    return json.loads(path.read_text())


# ------------------------------------------------------------------------ input building


def qwen_inputs(
    hf_dir: pathlib.Path, config: dict, n_images: int, *, seed: int, padding_side: str, max_pixels: int | None
) -> dict[str, Any]:
    """Batch of two for Qwen2-VL / Qwen2.5-VL: chat prompts when DIR has a tokenizer,
    otherwise random ids with <vision_start> <image_pad>*n <vision_end> runs."""

    proc = QwenProcessor.from_dir(hf_dir, max_pixels=max_pixels)
    images = synthetic_images(n_images, seed)
    per_row = _split_images(n_images)
    if proc.tokenizer is not None:
        texts = []
        for row, n in enumerate(per_row):
            content = [{"type": "image"}] * n + [{"type": "text", "text": SENTENCES[row]}]
            texts.append(proc.apply_chat_template([{"role": "user", "content": content}]))
        out = proc(texts, images or None, padding=True, padding_side=padding_side)
        assert sum(t.count(IMAGE_TOKEN) for t in texts) == n_images
        out["tokenizer"] = True
        return out

    out: dict[str, Any] = {"tokenizer": False}
    runs = []
    if images:
        out.update({k: v for k, v in proc.process_images(images).items() if k in proc.image_keys})
        runs = proc.image_token_runs(out)
    text_cfg = config.get("text_config") or config
    vocab = int(text_cfg.get("vocab_size", config.get("vocab_size", 0)))
    special = [proc.image_token_id, proc.video_token_id, proc.vision_start_token_id, proc.vision_end_token_id]
    high = min([vocab] + [s for s in special if s > 1])
    if high <= 2:
        raise ValueError(f"{hf_dir}/config.json: no room for random text ids below the vision tokens")
    rng = np.random.default_rng(seed)
    rows, img = [], 0
    for row, n in enumerate(per_row):
        pieces = [rng.integers(1, high, size=5 + 4 * (1 - row))]
        for _ in range(n):
            pieces += [runs[img], rng.integers(1, high, size=3)]
            img += 1
        rows.append(np.concatenate([np.asarray(p, np.int64) for p in pieces]))
    width = max(len(r) for r in rows)
    pad_id = int(text_cfg.get("pad_token_id") or 0)
    ids = np.full((2, width), pad_id, np.int64)
    mask = np.zeros((2, width), np.int64)
    for i, r in enumerate(rows):
        sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
        ids[i, sl], mask[i, sl] = r, 1
    out.update(input_ids=ids, attention_mask=mask, mm_token_type_ids=(ids == proc.image_token_id).astype(np.int64))
    return out


def text_inputs(
    hf_dir: pathlib.Path, config: dict, n_images: int, *, seed: int, padding_side: str, max_pixels: int | None
) -> dict[str, Any]:
    """Batch of two for a text-only model: chat prompts when DIR has a tokenizer, otherwise
    random ids; position ids count the real tokens before each (0 on padding)."""
    if n_images:
        raise ValueError(f"{hf_dir}: a text-only {config.get('model_type')} model takes no images (use --images 0)")
    if any((hf_dir / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        proc = TextProcessor.from_dir(hf_dir)
        texts = [proc.apply_chat_template([{"role": "user", "content": s}]) for s in SENTENCES]
        out: dict[str, Any] = dict(proc(texts, padding=True, padding_side=padding_side), tokenizer=True)
    else:
        rng = np.random.default_rng(seed)
        rows = [rng.integers(1, int(config["vocab_size"]), size=n) for n in (14, 9)]
        ids = np.full((2, 14), int(config.get("pad_token_id") or 0), np.int64)
        mask = np.zeros_like(ids)
        for i, r in enumerate(rows):
            sl = slice(14 - len(r), 14) if padding_side == "left" else slice(0, len(r))
            ids[i, sl], mask[i, sl] = r, 1
        out = {"input_ids": ids, "attention_mask": mask, "tokenizer": False}
    mask = out["attention_mask"]
    out["position_ids"] = ((np.cumsum(mask, axis=1) - 1) * mask).astype(np.int64)
    return out


def llava_inputs(
    hf_dir: pathlib.Path, config: dict, n_images: int, *, seed: int, padding_side: str, max_pixels: int | None
) -> dict[str, Any]:
    """Batch of two for LLaVA: chat prompts (each image an expanded `<image>`) when DIR has
    a tokenizer, otherwise random ids with one run of image tokens per image; pixels padded
    to a square and resized to the tower's side; positions as generate gives them."""
    cfg = LlavaConfig.from_dir(hf_dir)
    images = synthetic_images(n_images, seed)
    per_row = _split_images(n_images)
    if any((hf_dir / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        proc = LlavaProcessor.from_dir(hf_dir)
        texts = []
        for row, n in enumerate(per_row):
            content = [{"type": "image"}] * n + [{"type": "text", "text": SENTENCES[row]}]
            texts.append(proc.apply_chat_template([{"role": "user", "content": content}]))
        out: dict[str, Any] = dict(proc(texts, images or None, padding=True, padding_side=padding_side))
        assert sum(t.count(LLAVA_IMAGE_TOKEN) for t in texts) == n_images
        out["tokenizer"] = True
    else:
        rng = np.random.default_rng(seed)
        high = min(cfg.vocab_size, cfg.image_token_id) if cfg.image_token_id > 2 else cfg.vocab_size
        rows = []
        for row, n in enumerate(per_row):
            pieces = [rng.integers(1, high, size=5 + 4 * (1 - row))]
            for _ in range(n):
                pieces += [np.full(cfg.tokens_per_image, cfg.image_token_id), rng.integers(1, high, size=3)]
            rows.append(np.concatenate([np.asarray(p, np.int64) for p in pieces]))
        width = max(len(r) for r in rows)
        ids = np.full((2, width), int(config["text_config"].get("pad_token_id") or 0), np.int64)
        mask = np.zeros((2, width), np.int64)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
            ids[i, sl], mask[i, sl] = r, 1
        out = {"input_ids": ids, "attention_mask": mask, "tokenizer": False}
        if images:
            out["pixel_values"] = pixel_values(image_processor(hf_dir, cfg), images)
    mask = out["attention_mask"]
    out["position_ids"] = ((np.cumsum(mask, axis=1) - 1) * mask).astype(np.int64)
    return out


def gemma3_inputs(
    hf_dir: pathlib.Path, config: dict, n_images: int, *, seed: int, padding_side: str, max_pixels: int | None
) -> dict[str, Any]:
    """Batch of two for Gemma 3 with vision: chat prompts (each photo its begin-of-image
    mark, expanded) when DIR has a tokenizer, otherwise random ids with one begin / image
    tokens / end run per photo; pixels squashed to the tower's square; positions as generate
    gives them; `token_type_ids` (1 on image tokens) for transformers' bidirectional mask."""
    cfg = Gemma3Config.from_dir(hf_dir)
    images = synthetic_images(n_images, seed)
    per_row = _split_images(n_images)
    if any((hf_dir / name).is_file() for name in ("tokenizer.json", "tokenizer.model", "tokenizer_config.json")):
        proc = Gemma3Processor.from_dir(hf_dir)
        texts = []
        for row, n in enumerate(per_row):
            content = [{"type": "image"}] * n + [{"type": "text", "text": SENTENCES[row]}]
            texts.append(proc.apply_chat_template([{"role": "user", "content": content}]))
        out: dict[str, Any] = dict(proc(texts, images or None, padding=True, padding_side=padding_side))
        out["tokenizer"] = True
    else:
        rng = np.random.default_rng(seed)
        specials = {cfg.image_token_id, cfg.boi_token_id, cfg.eoi_token_id}
        high = min(cfg.vocab_size, *specials)
        run = np.asarray([cfg.boi_token_id] + [cfg.image_token_id] * cfg.tokens_per_image + [cfg.eoi_token_id])
        rows = []
        for row, n in enumerate(per_row):
            pieces = [rng.integers(3, high, size=5 + 4 * (1 - row))]
            for _ in range(n):
                pieces += [run, rng.integers(3, high, size=3)]
            rows.append(np.concatenate([np.asarray(p, np.int64) for p in pieces]))
        width = max(len(r) for r in rows)
        ids = np.full((2, width), int(config["text_config"].get("pad_token_id") or 0), np.int64)
        mask = np.zeros((2, width), np.int64)
        for i, r in enumerate(rows):
            sl = slice(width - len(r), width) if padding_side == "left" else slice(0, len(r))
            ids[i, sl], mask[i, sl] = r, 1
        out = {"input_ids": ids, "attention_mask": mask, "tokenizer": False}
        if images:
            out["pixel_values"] = gemma3_pixels(images, cfg.vision.image_size)
    mask = out["attention_mask"]
    out["position_ids"] = ((np.cumsum(mask, axis=1) - 1) * mask).astype(np.int64)
    out["token_type_ids"] = (out["input_ids"] == cfg.image_token_id).astype(np.int64)
    return out


INPUT_BUILDERS: dict[str, Callable[..., dict[str, Any]]] = {
    "qwen2_vl": qwen_inputs,
    "qwen2_5_vl": qwen_inputs,
    "llama": text_inputs,
    "llava": llava_inputs,
    "gemma3_text": text_inputs,
    "gemma3": gemma3_inputs,
}


# ----------------------------------------------------------------------------- models


def hf_logits(hf_dir: pathlib.Path, model_type: str, inputs: dict[str, Any], dtype: str, attn: str) -> np.ndarray:
    """Logits [B, T, V] float32 from the transformers torch model (CPU); the family's image
    inputs go in under their own names (transformers' names)."""

    import torch
    import transformers

    cls_name = HF_CLASSES.get(model_type)
    cls = getattr(transformers, cls_name) if cls_name else transformers.AutoModelForImageTextToText
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16}[dtype]
    model = cls.from_pretrained(str(hf_dir), dtype=torch_dtype, attn_implementation=attn).eval()
    accepted = inspect.signature(model.forward).parameters
    names = ("input_ids", "attention_mask", "position_ids", *family_for_dir(hf_dir).image_keys)
    kw = {}
    for name in names:
        if inputs.get(name) is not None:
            value = torch.from_numpy(np.asarray(inputs[name]))
            kw[name] = value.to(torch_dtype) if value.is_floating_point() else value
    if "pixel_values" in kw and "mm_token_type_ids" in accepted and inputs.get("mm_token_type_ids") is not None:
        kw["mm_token_type_ids"] = torch.from_numpy(inputs["mm_token_type_ids"])
    if "token_type_ids" in accepted and inputs.get("token_type_ids") is not None:  # Gemma 3's photo blocks
        kw["token_type_ids"] = torch.from_numpy(inputs["token_type_ids"])
    with torch.no_grad():
        return model(**kw).logits.float().numpy()


def our_logits(hf_dir: pathlib.Path, inputs: dict[str, Any], dtype: str) -> np.ndarray:
    """Logits [B, T, V] float32 from our model, one jitted forward of the inputs the family
    takes (`model_inputs`; its static keys as host constants)."""

    if dtype == "float32":  # no TF32 shortcuts on GPU: this is a correctness check
        jax.config.update("jax_default_matmul_precision", "highest")
    family = family_for_dir(hf_dir)
    model = family.load_hf(hf_dir, dtype=dtype)
    graphdef, state = nnx.split(model)
    taken = {k: inputs[k] for k in ("input_ids", "attention_mask", *family.image_keys) if inputs.get(k) is not None}
    arrays, static = split_static(taken, family.static_batch_keys)
    arrays = {k: jnp.asarray(v) for k, v in arrays.items()}

    @functools.partial(jax.jit, static_argnums=(2,))
    def forward(state, arrays, static):
        m = nnx.merge(graphdef, state)
        constants = static_inputs(static)
        return m.logits_from_hidden(m.hidden_states(**family.model_inputs({**arrays, **constants})))

    return np.asarray(jax.device_get(forward(state, arrays, static)), np.float32)


# ------------------------------------------------------------------------------ driver


def compare(ours: np.ndarray, ref: np.ndarray, mask: np.ndarray) -> dict[str, float]:
    if ours.shape != ref.shape:
        raise ValueError(f"logit shapes differ: ours {ours.shape}, transformers {ref.shape}")
    valid = mask.astype(bool)
    diff = np.abs(ours - ref)[valid]
    agree = (ours.argmax(-1) == ref.argmax(-1))[valid]
    return {
        "max_abs_logit_diff": float(diff.max()),
        "mean_abs_logit_diff": float(diff.mean()),
        "argmax_agreement": float(agree.mean()),
        "max_abs_logit": float(np.abs(ref[valid]).max()),
    }


def _save_reference(path: pathlib.Path, inputs: dict[str, Any], logits: np.ndarray, meta: dict) -> None:
    arrays = {k: np.asarray(v) for k, v in inputs.items() if isinstance(v, np.ndarray)}
    np.savez(path, logits=logits, meta=np.asarray(json.dumps(meta)), **arrays)


def _load_reference(path: pathlib.Path) -> tuple[dict[str, Any], np.ndarray, dict]:
    with np.load(path, allow_pickle=False) as f:
        data = {k: f[k] for k in f.files}
    for key in ("logits", "meta", "input_ids", "attention_mask"):
        if key not in data:
            raise KeyError(f"{path}: reference file lacks {key!r} (write it with --save-reference)")
    meta = json.loads(str(data.pop("meta")))
    return data, data.pop("logits"), meta


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--hf-dir", required=True, type=pathlib.Path)
    p.add_argument(
        "--images", type=int, default=None, help="synthetic images over the batch of two (default: 2; text-only: 0)"
    )
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--padding-side", default="left", choices=["left", "right"])
    p.add_argument("--max-pixels", type=int, default=None, help="override the image processor's max_pixels")
    p.add_argument("--hf-attn", default="eager", choices=["eager", "sdpa"])
    p.add_argument(
        "--save-reference",
        type=pathlib.Path,
        default=None,
        help="run transformers only; write inputs and logits to this .npz",
    )
    p.add_argument(
        "--reference",
        type=pathlib.Path,
        default=None,
        help="run our model only, against inputs and logits from this .npz",
    )
    p.add_argument("--max-diff", type=float, default=None, help="exit 1 when max_abs_logit_diff exceeds this")
    args = p.parse_args(argv)
    if args.images is not None and args.images < 0:
        p.error("--images must be >= 0")
    if args.save_reference and args.reference:
        p.error("--save-reference and --reference exclude each other")
    return args


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Runs the check and prints one JSON line; returns the same dict."""
    args = parse_args(argv)
    hf_dir = args.hf_dir
    model_type = _read_config(hf_dir).get("model_type")
    if args.reference is not None:
        inputs, ref, meta = _load_reference(args.reference)
        if meta.get("model_type") != model_type:
            raise ValueError(
                f"{args.reference}: made for model_type {meta.get('model_type')!r}, {hf_dir} is {model_type!r}"
            )
        tokenizer_used, n_images = bool(meta.get("tokenizer")), int(meta.get("n_images", 0))
    else:
        if model_type not in INPUT_BUILDERS:
            raise KeyError(
                f"{hf_dir}/config.json: no parity input builder for model_type {model_type!r}; "
                f"known: {sorted(INPUT_BUILDERS)}"
            )
        n_images = args.images if args.images is not None else (0 if INPUT_BUILDERS[model_type] is text_inputs else 2)
        inputs = INPUT_BUILDERS[model_type](
            hf_dir,
            _read_config(hf_dir),
            n_images,
            seed=args.seed,
            padding_side=args.padding_side,
            max_pixels=args.max_pixels,
        )
        tokenizer_used = bool(inputs.pop("tokenizer"))
        ref = hf_logits(hf_dir, model_type, inputs, args.dtype, args.hf_attn)

    image_keys = family_for_dir(hf_dir).image_keys
    result: dict[str, Any] = {
        "model_type": model_type,
        "dtype": args.dtype,
        "n_images": n_images,
        "tokenizer": tokenizer_used,
        "input_ids_shape": list(inputs["input_ids"].shape),
        # the family's image inputs: name -> shape (layouts such as a patch grid: their values)
        "image_inputs": {
            k: np.asarray(inputs[k]).tolist() if np.asarray(inputs[k]).dtype.kind in "iu" else list(inputs[k].shape)
            for k in image_keys
            if inputs.get(k) is not None
        },
        "logits_shape": list(ref.shape),
        "padding_tokens": int((inputs["attention_mask"] == 0).sum()),
    }
    if args.save_reference is not None:
        _save_reference(
            args.save_reference,
            inputs,
            ref,
            {"model_type": model_type, "tokenizer": tokenizer_used, "n_images": n_images},
        )
        result["saved_reference"] = str(args.save_reference)
    else:
        ours = our_logits(hf_dir, inputs, args.dtype)
        result.update(compare(ours, ref, inputs["attention_mask"]))
    print(json.dumps(result), flush=True)
    return result


if __name__ == "__main__":
    res = main()
    limit = parse_args(None).max_diff
    sys.exit(1 if limit is not None and res.get("max_abs_logit_diff", 0.0) > limit else 0)
