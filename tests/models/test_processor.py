"""QwenProcessor output equals transformers' processor (PIL backend) on a tiny offline tokenizer."""

from __future__ import annotations

import json

import numpy as np
import pytest

pytest.importorskip("transformers")
from PIL import Image

from rmpl_jax.models.qwen2_vl.processor import DEFAULT_MAX_PIXELS, DEFAULT_MIN_PIXELS, QwenProcessor
from tests.testing.tiny_tokenizer import SPECIAL_IDS, reference_processor, save_tiny_processor_files, write_min_config

IMAGE_PAD = SPECIAL_IDS["<|image_pad|>"]


def _image(h, w, seed):
    return Image.fromarray(np.random.RandomState(seed).randint(0, 256, (h, w, 3), dtype=np.uint8))


# sizes: wide, tall, one below min_pixels (upscaled), one above max_pixels (downscaled)
IMAGES = [_image(120, 300, 0), _image(400, 90, 1), _image(30, 40, 2), _image(500, 420, 3)]


@pytest.fixture(scope="module")
def processor_dir(tmp_path_factory):
    d = tmp_path_factory.mktemp("tiny_processor")
    write_min_config(d, "qwen2_5_vl")
    save_tiny_processor_files(d)
    return d


@pytest.fixture(scope="module")
def procs(processor_dir):
    return QwenProcessor.from_dir(processor_dir), reference_processor(processor_dir)


def _prompt(proc, text, n_images, image_first=True):
    content = [{"type": "image"}] * n_images
    content = content + [{"type": "text", "text": text}] if image_first else [{"type": "text", "text": text}] + content
    return proc.apply_chat_template([{"role": "user", "content": content}])


def _assert_same(ours, ref):
    for key in ("input_ids", "attention_mask", "mm_token_type_ids", "pixel_values", "image_grid_thw"):
        if key not in ref:
            continue
        np.testing.assert_array_equal(ours[key], np.asarray(ref[key]), err_msg=key)


def test_chat_template_matches(procs):
    ours, ref = procs
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who is in the photo?"}]}]
    assert ours.apply_chat_template(messages) == ref.apply_chat_template(messages, add_generation_prompt=True)
    assert ours.apply_chat_template(messages, add_generation_prompt=False) == ref.apply_chat_template(
        messages, add_generation_prompt=False
    )


def test_one_image(procs):
    ours, ref = procs
    text = _prompt(ours, "Is there an attack in the image?", 1)
    out = ours(text, IMAGES[:1])
    _assert_same(out, ref(text=[text], images=IMAGES[:1], padding=True, return_tensors="np"))
    grid = out["image_grid_thw"]
    assert (out["input_ids"] == IMAGE_PAD).sum() == grid[0].prod() // 4
    np.testing.assert_array_equal(out["resized_sizes"], grid[:, 1:] * 14)
    np.testing.assert_array_equal(out["original_sizes"], [[120, 300]])


@pytest.mark.parametrize("padding_side", ["right", "left"])
def test_two_images_batch_with_padding(procs, padding_side):
    ours, ref = procs
    texts = [_prompt(ours, "Compare the two photos, the event is", 2), _prompt(ours, "it is an", 1, image_first=False)]
    images = IMAGES[:3]
    out = ours(texts, images, padding_side=padding_side)
    expected = ref(text=texts, images=images, padding=True, padding_side=padding_side, return_tensors="np")
    _assert_same(out, expected)
    assert out["image_grid_thw"].shape == (3, 3) and len({tuple(g) for g in out["image_grid_thw"]}) == 3
    assert out["attention_mask"].min() == 0  # the batch really is padded
    short = int(out["attention_mask"].sum(1).argmin())
    assert out["attention_mask"][short, 0 if padding_side == "left" else -1] == 0
    pads = (out["input_ids"] == IMAGE_PAD).sum(1)
    assert pads.tolist() == [
        sum(ours.tokens_per_image(out["image_grid_thw"][:2])),
        ours.tokens_per_image(out["image_grid_thw"][2:])[0],
    ]


def test_resize_limits(procs):
    ours, _ = procs
    out = ours.process_images(IMAGES)
    for (h, w), (rh, rw) in zip(out["original_sizes"], out["resized_sizes"]):
        assert rh % 28 == 0 and rw % 28 == 0
        assert ours.min_pixels <= rh * rw <= ours.max_pixels
        assert (rh, rw) == ours.resized_size(h, w)
    assert out["resized_sizes"][2].prod() > 30 * 40  # upscaled
    assert out["resized_sizes"][3].prod() < 500 * 420  # downscaled


def test_pixel_limit_override(processor_dir, procs):
    small = QwenProcessor.from_dir(processor_dir, max_pixels=28 * 28 * 16)
    assert small.max_pixels == 28 * 28 * 16
    grid = small.process_images(IMAGES[3:])["image_grid_thw"]
    assert (
        grid[0, 1] * grid[0, 2] * 14 * 14
        <= 28 * 28 * 16
        < procs[0].process_images(IMAGES[3:])["image_grid_thw"][0, 1:].prod() * 14 * 14
    )


def test_fallback_without_tokenizer(tmp_path):
    """config.json only: default image settings, no tokenizer, id-level expansion."""
    from transformers.models.qwen2_vl.image_processing_pil_qwen2_vl import Qwen2VLImageProcessorPil

    write_min_config(tmp_path, "qwen2_vl")
    proc = QwenProcessor.from_dir(tmp_path)
    assert proc.tokenizer is None
    assert (proc.min_pixels, proc.max_pixels, proc.patch_size, proc.merge_size) == (
        DEFAULT_MIN_PIXELS,
        DEFAULT_MAX_PIXELS,
        14,
        2,
    )
    out = proc.process_images(IMAGES[:2])
    ref = Qwen2VLImageProcessorPil()(images=IMAGES[:2], return_tensors="np")
    np.testing.assert_array_equal(out["pixel_values"], ref["pixel_values"])
    np.testing.assert_array_equal(out["image_grid_thw"], ref["image_grid_thw"])
    with pytest.raises(ValueError, match="no tokenizer"):
        proc("hello", None)
    ids = proc.expand_image_token_ids([5, IMAGE_PAD, 6, IMAGE_PAD], out["image_grid_thw"])
    n0, n1 = proc.tokens_per_image(out["image_grid_thw"])
    assert ids.tolist() == [5] + [IMAGE_PAD] * n0 + [6] + [IMAGE_PAD] * n1
    run = proc.image_token_run(out["image_grid_thw"][0])
    assert run[0] == SPECIAL_IDS["<|vision_start|>"] and run[-1] == SPECIAL_IDS["<|vision_end|>"]
    assert len(run) == n0 + 2
    with pytest.raises(ValueError, match="placeholder"):
        proc.expand_image_token_ids([IMAGE_PAD], out["image_grid_thw"])


def test_bad_inputs(processor_dir, procs, tmp_path):
    ours, _ = procs
    with pytest.raises(ValueError, match="placeholders but 2 images"):
        ours(_prompt(ours, "x", 1), IMAGES[:2])
    with pytest.raises(ValueError, match="placeholders but 0 images"):
        ours(_prompt(ours, "x", 1))
    # config.json and tokenizer disagree on the image token id
    save_tiny_processor_files(tmp_path)
    write_min_config(tmp_path)
    cfg = json.loads((tmp_path / "config.json").read_text())
    cfg["image_token_id"] = 7
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(ValueError, match="image_token_id=7"):
        QwenProcessor.from_dir(tmp_path)
    with pytest.raises(FileNotFoundError, match="config.json"):
        QwenProcessor.from_dir(tmp_path / "missing")
