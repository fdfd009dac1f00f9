"""The LLaVA family against transformers' `LlavaForConditionalGeneration` (fp32, CPU): logits
for text only, one photo and a padded batch of two with photos, for every variant of
tests/testing/hf_tiny_llava.py (QuickGELU / GELU tower, class token dropped or kept, one or two
feature layers, tied head, projector without bias); the KV-cache forward; load -> export ->
transformers; the Hub's other tensor spellings; the processor against transformers'
`LlavaProcessor`; the 7B preset's parameter count; config errors that name the file."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.numpy import load_file, save_file  # noqa: E402

from rmpl_jax.models import llava as LV  # noqa: E402
from rmpl_jax.models.family import family_for_dir, get_family  # noqa: E402
from rmpl_jax.models.layers import variables_by_path  # noqa: E402
from rmpl_jax.models.llava.boxes import LlavaBoxes  # noqa: E402
from rmpl_jax.models.llava.presets import PRESETS, preset  # noqa: E402
from rmpl_jax.models.lora import apply_lora  # noqa: E402
from tests.testing.hf_tiny_llava import (  # noqa: E402
    IMAGE_TOKEN_ID,
    VARIANTS,
    make_tiny_llava,
    tiny_llava_chat_dir,
    tiny_llava_config,
)

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """variant -> (hf_dir, torch_model), built once per module."""
    root = tmp_path_factory.mktemp("llava")
    return {v: make_tiny_llava(root, v) for v in sorted(VARIANTS)}


# Every variant with photos in both rows of a padded batch; text only and one photo once.
CASES = [(v, (1, 1)) for v in sorted(VARIANTS)] + [("default", (0, 0)), ("default", (1, 0))]


def _batch(n_tokens: int, images_per_row=(1, 1), seed: int = 0, length: int = 48):
    """Two rows, the second left-padded by 6, each with its photos' image-token runs, HF
    generate's positions, and random pixels for the photos."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 290, (2, length))
    mask = np.ones_like(ids)
    mask[1, :6], ids[1, :6] = 0, 0
    for row, n in enumerate(images_per_row):
        for k in range(n):
            start = 8 + row * 2 + k * (n_tokens + 2)
            ids[row, start : start + n_tokens] = IMAGE_TOKEN_ID
    pixels = rng.normal(size=(sum(images_per_row), 3, 28, 28)).astype(np.float32)
    return ids, mask, np.clip(mask.cumsum(1) - 1, 0, None), pixels


def _torch_logits(model, ids, mask, positions, pixels=None):
    kw = dict(attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions))
    if pixels is not None:
        kw["pixel_values"] = torch.tensor(pixels)
    with torch.no_grad():
        return model(input_ids=torch.tensor(ids), **kw).logits.numpy()


@pytest.mark.parametrize("variant,photos", CASES)
def test_logits_match_transformers(tiny, variant, photos):
    hf_dir, torch_model = tiny[variant]
    model = family_for_dir(hf_dir).load_hf(hf_dir)
    ids, mask, positions, pixels = _batch(model.config.tokens_per_image, photos)
    pixels = pixels if sum(photos) else None
    ref = _torch_logits(torch_model, ids, mask, positions, pixels)
    ours = model(jnp.asarray(ids), attention_mask=jnp.asarray(mask), pixel_values=pixels)
    diff = np.abs(np.asarray(ours) - ref)[mask.astype(bool)].max()
    print(variant, photos, "max |diff|", diff)
    assert diff <= TOL


def test_cache_forward_with_photo_equals_full_forward(tiny):
    hf_dir, torch_model = tiny["full_two_layers"]
    model = LV.load_hf(hf_dir)
    ids, mask, positions, pixels = _batch(model.config.tokens_per_image, (1, 1), seed=2, length=40)
    full = _torch_logits(torch_model, ids, mask, positions, pixels)  # the full forward, as transformers gives it
    features = get_family("llava").image_features(model, {"pixel_values": jnp.asarray(pixels)})
    features = jnp.pad(features, ((0, 5), (0, 0)))  # the decoder pads features to a multiple
    cache = model.init_cache(2, 48, jnp.float32)
    logits, cache = model.prefill(
        jnp.asarray(ids[:, :36]),
        attention_mask=jnp.asarray(mask[:, :36]),
        position_ids=jnp.asarray(positions[:, :36]),
        cache=cache,
        image_features=features,
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 35], atol=TOL)
    valid = np.zeros((2, 48), bool)
    valid[:, :38] = True
    valid[:, :36] = mask[:, :36]
    logits, _ = model.decode_step(
        jnp.asarray(ids[:, 36:38]), position_ids=jnp.asarray(positions[:, 36:38]), cache=cache, slot=36, key_mask=valid
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 36:38], atol=TOL)


@pytest.mark.parametrize("variant", ["default", "tied_no_bias"])
def test_load_export_roundtrip_through_transformers(tiny, variant, tmp_path):
    hf_dir, torch_model = tiny[variant]
    family = family_for_dir(hf_dir)
    out = tmp_path / "export"
    family.export_hf(family.load_hf(hf_dir), out)
    original, exported = load_file(str(hf_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(exported) == set(original)
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, original[name], err_msg=name)
    back = transformers.LlavaForConditionalGeneration.from_pretrained(
        out, dtype=torch.float32, attn_implementation="eager"
    ).eval()
    ids, mask, positions, pixels = _batch(LV.LlavaConfig.from_dir(hf_dir).tokens_per_image, seed=3)
    np.testing.assert_array_equal(
        _torch_logits(back, ids, mask, positions, pixels), _torch_logits(torch_model, ids, mask, positions, pixels)
    )
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlavaForConditionalGeneration"]


def test_hub_and_in_memory_spellings_load(tiny, tmp_path):
    hf_dir, _ = tiny["default"]
    tensors = load_file(str(hf_dir / "model.safetensors"))
    reference = LV.load_hf(hf_dir)
    renames = {  # llava-hf's Hub files, then transformers' module names
        "hub": lambda n: n.replace("vision_tower.", "vision_tower.vision_model.", 1),
        "memory": lambda n: (
            "lm_head.weight" if n == "language_model.lm_head.weight" else "model." + n.replace(".model.", ".", 1)
        ),
    }
    for spelling, rename in renames.items():
        other = tmp_path / spelling
        other.mkdir()
        (other / "config.json").write_text((hf_dir / "config.json").read_text())
        save_file({rename(k): v for k, v in tensors.items()}, str(other / "model.safetensors"))
        loaded = variables_by_path(LV.load_hf(other))
        for path, var in variables_by_path(reference).items():
            np.testing.assert_array_equal(np.asarray(loaded[path][...]), np.asarray(var[...]), err_msg=path)


def test_processor_matches_transformers_llava_processor(tmp_path):
    hf_dir = tiny_llava_chat_dir(tmp_path)
    ours = get_family("llava").processor(hf_dir)
    assert ours.takes_images and ours.end_of_turn == "<|endoftext|>"  # Vicuna turns end with eos
    messages = [{"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Who is there?"}]}]
    prompt = ours.apply_chat_template(messages)
    assert prompt == "USER: <image>\nWho is there? ASSISTANT:"
    wide = Image.fromarray(np.random.default_rng(0).integers(0, 255, (30, 70, 3), np.uint8))
    enc = ours(prompt, [wide], padding=False)
    reference = transformers.LlavaProcessor(
        image_processor=ours.image_processor,
        tokenizer=ours.tokenizer,
        patch_size=7,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,
        chat_template=ours.chat_template,
    )
    ref = reference(text=prompt, images=[wide], return_tensors="np")
    np.testing.assert_array_equal(enc["input_ids"], ref["input_ids"])
    assert (enc["input_ids"] == IMAGE_TOKEN_ID).sum() == 16
    np.testing.assert_allclose(enc["pixel_values"], ref["pixel_values"], atol=1e-6)
    # Padded to a square first: the rows above the photo are the CLIP mean (about 0 after
    # normalising), so the box codec's padded frame is what the tower sees.
    assert enc["pixel_values"].shape == (1, 3, 28, 28)
    assert np.abs(enc["pixel_values"][0, :, :5]).max() < 0.02
    with pytest.raises(ValueError, match="1 <image> marks for 2 images"):
        ours(prompt, [wide, wide])


def test_family_hooks_and_lora_targets(tiny):
    hf_dir, _ = tiny["default"]
    family = get_family("llava")
    model = family.load_hf(hf_dir)
    assert family.has_vision(model.config) and isinstance(family.box_codec(model.config, 448), LlavaBoxes)
    mask = np.array([[0, 1, 1], [1, 1, 1]])
    positions, next_pos = family.prompt_positions(model.config, np.zeros((2, 3)), mask)
    assert positions.tolist() == [[0, 0, 1], [0, 1, 2]] and next_pos.tolist() == [2, 3]
    apply_lora(model, 2, 4.0, family.default_lora_targets, rngs=nnx.Rngs(0))
    adapted = {p.rsplit("/", 1)[0] for p in variables_by_path(model, nnx.LoRAParam)}
    assert adapted and all(p.startswith("layers/") for p in adapted), adapted
    ids = np.full((1, 20), 5)
    ids[0, 2:6] = IMAGE_TOKEN_ID  # 4 image tokens for a 16-token photo
    with pytest.raises(ValueError, match="hold 4 image tokens .* give 16 features"):
        model(jnp.asarray(ids), pixel_values=np.zeros((1, 3, 28, 28), np.float32))
    with pytest.raises(ValueError, match=r"takes \[N, 3, 28, 28\]"):
        model(jnp.asarray(ids), pixel_values=np.zeros((1, 3, 56, 56), np.float32))


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts_match_transformers(name):
    """eval_shape at full size (no memory) against transformers on the meta device."""
    family = get_family("llava")
    model = family.abstract_model(family.config_from_hf(preset(name), dtype="bfloat16"))
    ours = sum(int(np.prod(v.get_value().shape)) for v in variables_by_path(model).values())
    with torch.device("meta"):
        hf = transformers.LlavaForConditionalGeneration(transformers.LlavaConfig(**preset(name)))
    print(name, f"{ours:,}")
    assert ours == sum(p.numel() for p in hf.parameters())
    if name == "llava-1.5-7b":
        assert ours == 7_063_427_072
        assert model.config.tokens_per_image == 576


def test_defaults_for_missing_keys_are_transformers_defaults():
    text, vision = transformers.LlamaConfig(), transformers.CLIPVisionConfig()
    for key, value in LV.config.TEXT_DEFAULTS.items():
        assert getattr(text, key) == value, key
    for key, value in LV.config.VISION_DEFAULTS.items():
        assert getattr(vision, key) == value, key


def test_config_errors_name_the_file(tmp_path):
    path = tmp_path / "config.json"
    for change, error, message in (
        (dict(vision_feature_layer=-9), ValueError, "vision_feature_layer -9 is outside the tower's 3 layers"),
        (dict(vision_feature_select_strategy="cls"), ValueError, "strategy 'cls' not in"),
        (dict(vision_config=dict(tiny_llava_config()["vision_config"], image_size=30)), ValueError, "not a multiple"),
    ):
        cfg = dict(tiny_llava_config(), model_type="llava", **change)
        path.write_text(json.dumps(cfg))
        with pytest.raises(error, match=message):
            LV.LlavaConfig.from_dir(tmp_path)
    path.write_text(json.dumps(dict(tiny_llava_config(), model_type="llava", image_token_index=305)))
    hf_dir = tiny_llava_chat_dir(tmp_path / "tok")
    (hf_dir / "config.json").write_text(path.read_text())
    with pytest.raises(ValueError, match="'<image>' as id 304, config.json's image_token_index is 305"):
        get_family("llava").processor(hf_dir)
