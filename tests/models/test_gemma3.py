"""The gemma3 family (with vision) against transformers' `Gemma3ForConditionalGeneration`
(fp32, CPU): logits for text only, one photo and two photos in a left-padded batch whose
prompts run past the sliding window, the photos' tokens attending to each other both ways
(transformers' `token_type_ids`); the KV-cache forward; greedy decoding with photos equal to
`generate` for 64 new tokens; load -> export -> transformers; the processor; the presets."""

from __future__ import annotations

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from PIL import Image  # noqa: E402
from safetensors.numpy import load_file  # noqa: E402

from rmpl_jax.infer.decode import Decoder, Prompt  # noqa: E402
from rmpl_jax.models.family import family_for_dir, get_family  # noqa: E402
from rmpl_jax.models.gemma3.presets import preset  # noqa: E402
from rmpl_jax.models.layers import variables_by_path  # noqa: E402
from tests.testing.hf_tiny_gemma3 import SPECIALS, make_tiny_gemma3, tiny_gemma3_chat_dir  # noqa: E402

TOL = 1e-4
IMAGE = SPECIALS["<image_soft_token>"]
TOKENS = 4  # image tokens per photo of the tiny models


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    root = tmp_path_factory.mktemp("gemma3")
    return {
        "default": make_tiny_gemma3(root, "default"),
        "gqa_wide": make_tiny_gemma3(
            root,
            "gqa_wide",
            seed=3,
            text=dict(num_key_value_heads=2, hidden_size=40, head_dim=12, sliding_window=3),
            image_size=32,
            patch_size=4,
            hidden_size=24,
        ),
    }


def _batch(images_per_row, seed=0, length=34, pad=6, side=28):
    """Two rows, the second left-padded by `pad`, each with its photos' image-token runs."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 290, (2, length))
    mask = np.ones_like(ids)
    mask[1, :pad], ids[1, :pad] = 0, 0
    for row, n in enumerate(images_per_row):
        for k in range(n):
            start = pad + 3 + row + k * (TOKENS + 3)
            ids[row, start : start + TOKENS] = IMAGE
    pixels = rng.normal(size=(sum(images_per_row), 3, side, side)).astype(np.float32)
    return ids, mask, np.clip(mask.cumsum(1) - 1, 0, None), pixels


def _torch_logits(model, ids, mask, positions, pixels=None):
    kw = dict(attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions))
    if pixels is not None and len(pixels):
        kw["pixel_values"] = torch.tensor(pixels)
    kw["token_type_ids"] = torch.tensor((ids == IMAGE).astype(np.int64))
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), **kw).logits.numpy()


CASES = [("default", (0, 0)), ("default", (1, 0)), ("default", (1, 1)), ("default", (2, 1)), ("gqa_wide", (1, 2))]


@pytest.mark.parametrize("variant,photos", CASES)
def test_logits_match_transformers(tiny, variant, photos):
    hf_dir, torch_model = tiny[variant]
    model = family_for_dir(hf_dir).load_hf(hf_dir)
    side = model.config.vision.image_size
    ids, mask, positions, pixels = _batch(photos, side=side)
    ref = _torch_logits(torch_model, ids, mask, positions, pixels)
    ours = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask), pixel_values=pixels if sum(photos) else None)
    diff = np.abs(np.asarray(ours) - ref)[mask.astype(bool)].max()
    print(variant, photos, "max |diff|", diff)
    assert diff <= TOL


def test_photo_tokens_attend_both_ways(tiny):
    """Negative control: with a causal mask over the photo's tokens the logits move."""
    hf_dir, torch_model = tiny["default"]
    model = get_family("gemma3").load_hf(hf_dir)
    ids, mask, positions, pixels = _batch((1, 1))
    x = model.embed(jnp.asarray(ids), pixel_values=jnp.asarray(pixels), attention_mask=jnp.asarray(mask))
    causal = model.hidden_from_embeds(x, position_ids=jnp.asarray(positions), attention_mask=jnp.asarray(mask))
    ref = _torch_logits(torch_model, ids, mask, positions, pixels)
    assert np.abs(np.asarray(model.logits_from_hidden(causal)) - ref)[mask.astype(bool)].max() > 1e-3


def test_cache_forward_with_photos_equals_full_forward(tiny):
    hf_dir, torch_model = tiny["default"]
    model = get_family("gemma3").load_hf(hf_dir)
    ids, mask, positions, pixels = _batch((1, 1), seed=2)
    full = _torch_logits(torch_model, ids, mask, positions, pixels)
    features = get_family("gemma3").image_features(model, {"pixel_values": jnp.asarray(pixels)})
    cache = model.init_cache(2, 40, jnp.float32)
    logits, cache = model.prefill(
        jnp.asarray(ids[:, :24]),
        attention_mask=jnp.asarray(mask[:, :24]),
        position_ids=jnp.asarray(positions[:, :24]),
        cache=cache,
        image_features=jnp.pad(features, ((0, 3), (0, 0))),  # the decoder pads features to a multiple
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 23], atol=TOL)
    valid = np.zeros((2, 40), bool)
    valid[:, :24] = mask[:, :24]
    valid[:, 24:34] = True
    steps, _ = model.decode_step(
        jnp.asarray(ids[:, 24:34]), position_ids=jnp.asarray(positions[:, 24:34]), cache=cache, slot=24, key_mask=valid
    )
    np.testing.assert_allclose(np.asarray(steps), full[:, 24:34], atol=TOL)


def _hf_generate(model, rows, pixels, max_new):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            token_type_ids=torch.tensor((ids == IMAGE).astype(np.int64)),
            pixel_values=torch.tensor(pixels),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=-1,
            pad_token_id=0,
        ).numpy()
    return out[:, width:]


def test_greedy_64_tokens_with_photos_equals_hf_generate(tiny):
    hf_dir, torch_model = tiny["default"]
    model = get_family("gemma3").load_hf(hf_dir)
    rng = np.random.default_rng(4)

    def photo(k):
        return np.concatenate([rng.integers(3, 290, 3), np.full(TOKENS, IMAGE), rng.integers(3, 290, k)])

    rows = [photo(4), rng.integers(3, 290, 9), photo(8)]
    pixels = rng.normal(size=(2, 3, 28, 28)).astype(np.float32)
    ref = _hf_generate(torch_model, rows, pixels, 64)
    dec = Decoder(model, batch_size=4, max_new_tokens=64, eos_ids=(-1,), pad_id=0, buckets=(16,))
    prompts = [
        Prompt(rows[0], {"pixel_values": pixels[:1]}),
        Prompt(rows[1]),
        Prompt(rows[2], {"pixel_values": pixels[1:]}),
    ]
    for i, (o, r) in enumerate(zip(dec.generate(prompts), ref)):
        assert o.tokens.tolist() == r.tolist(), f"row {i}: ours {o.tokens.tolist()} HF {r.tolist()}"


def test_load_export_roundtrip_through_transformers(tiny, tmp_path):
    hf_dir, torch_model = tiny["gqa_wide"]
    family = family_for_dir(hf_dir)
    out = tmp_path / "export"
    family.export_hf(family.load_hf(hf_dir), out)
    original, exported = load_file(str(hf_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(exported) == set(original)
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, original[name], err_msg=name)
    back = transformers.Gemma3ForConditionalGeneration.from_pretrained(out, attn_implementation="eager").eval()
    ids, mask, positions, pixels = _batch((1, 1), side=32)
    np.testing.assert_allclose(
        _torch_logits(back, ids, mask, positions, pixels),
        _torch_logits(torch_model, ids, mask, positions, pixels),
        atol=1e-6,
    )


def test_hub_spelling_loads(tiny, tmp_path):
    """The Hub's files say `vision_tower.vision_model.*`: they load to the same model."""
    from safetensors.numpy import save_file

    hf_dir, _ = tiny["default"]
    hub = tmp_path / "hub"
    hub.mkdir()
    (hub / "config.json").write_text((hf_dir / "config.json").read_text())
    tensors = load_file(str(hf_dir / "model.safetensors"))
    renamed = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in tensors.items()}
    save_file(renamed, str(hub / "model.safetensors"))
    family = get_family("gemma3")
    a, b = variables_by_path(family.load_hf(hf_dir)), variables_by_path(family.load_hf(hub))
    for path in a:
        np.testing.assert_array_equal(np.asarray(a[path][...]), np.asarray(b[path][...]), err_msg=path)


def test_processor_matches_transformers(tmp_path):
    hf_dir = tiny_gemma3_chat_dir(tmp_path, multimodal=True)
    processor = get_family("gemma3").processor(hf_dir)
    messages = [
        {"role": "system", "content": "Find events."},
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "the photo"}]},
    ]
    prompt = processor.apply_chat_template(messages)
    assert prompt.count("<start_of_image>") == 1 and prompt.endswith("<start_of_turn>model\n")
    photo = Image.fromarray(np.random.default_rng(0).integers(0, 255, (20, 30, 3), dtype=np.uint8))
    ours = processor(prompt, [photo])
    assert int((ours["input_ids"] == IMAGE).sum()) == TOKENS
    assert ours["pixel_values"].shape == (1, 3, 28, 28)
    assert processor.end_of_turn == "<end_of_turn>"
    reference = transformers.Gemma3ImageProcessor(size={"height": 28, "width": 28})
    expected = np.asarray(reference([photo], return_tensors="np")["pixel_values"])
    assert np.abs(ours["pixel_values"] - expected).max() <= 2 / 255 + 1e-6
    with pytest.raises(ValueError, match="marks for 2 images"):
        processor(prompt, [photo, photo])


def test_presets_parse_and_count():
    family = get_family("gemma3")
    counts = {}
    for name in ("gemma-3-4b", "gemma-3-12b"):
        cfg = family.config_from_hf(preset(name))
        assert cfg.tokens_per_image == 256 and cfg.vision.image_size == 896
        model = family.abstract_model(cfg)
        counts[name] = sum(int(np.prod(v.shape)) for v in variables_by_path(model).values())
    print(counts)
    assert counts["gemma-3-4b"] == 4_300_079_472  # transformers' count of google/gemma-3-4b-it
