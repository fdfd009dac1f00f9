"""Gemma 3's vision side against transformers (fp32, CPU): the SigLIP tower (`SiglipVisionModel`
without head) and `Gemma3MultiModalProjector` on tiny random variants loaded through the name
tables, export back to the same tensors, the names `Gemma3ForConditionalGeneration` saves, the
vision config's parsing and errors, and the image preprocessing against `Gemma3ImageProcessorPil`
on shared-data photos and synthetic arrays."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from flax import nnx  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.numpy import save_file  # noqa: E402
from transformers.models.gemma3.image_processing_pil_gemma3 import Gemma3ImageProcessorPil  # noqa: E402
from transformers.models.gemma3.modeling_gemma3 import Gemma3MultiModalProjector  # noqa: E402

from rmpl_jax.models.gemma3.images import preprocess  # noqa: E402
from rmpl_jax.models.gemma3.projector import MultiModalProjector, projector_name_rules  # noqa: E402
from rmpl_jax.models.gemma3.vision import SiglipVisionTower, vision_name_rules  # noqa: E402
from rmpl_jax.models.gemma3.vision_config import SiglipVisionConfig  # noqa: E402
from rmpl_jax.models.hf.safetensors_io import iter_hf_tensors, load_state  # noqa: E402
from rmpl_jax.models.lora import apply_lora  # noqa: E402

TOL = 1e-4
TEXT = dict(
    vocab_size=300,
    hidden_size=32,
    intermediate_size=64,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=1,
    head_dim=16,
)


def _vision(hidden, intermediate, layers, heads, image, patch, **extra) -> dict:
    """A SigLIP vision_config dict."""
    return dict(
        hidden_size=hidden,
        intermediate_size=intermediate,
        num_hidden_layers=layers,
        num_attention_heads=heads,
        image_size=image,
        patch_size=patch,
        **extra,
    )


# (SigLIP vision_config, mm_tokens_per_image, text hidden size): pooling 2x2, 2x2 and 4x4.
VARIANTS = {
    "image56_patch14": (_vision(32, 48, 2, 2, 56, 14), 4, 24),
    "image64_patch8": (_vision(48, 40, 3, 4, 64, 8), 16, 40),
    "image64_patch8_gelu": (_vision(24, 56, 1, 3, 64, 8, hidden_act="gelu", layer_norm_eps=1e-5), 4, 16),
}
# gemma-3-4b's vision_config as the Hub has it: no act, eps or channels (transformers' defaults)
HUB = {**_vision(1152, 4304, 27, 16, 896, 14), "model_type": "siglip_vision_model", "vision_use_head": False}


class VisionPart(nnx.Module):
    """The two modules at the attributes the Gemma 3 model gives them."""

    def __init__(self, cfg: SiglipVisionConfig, text_hidden: int, tokens: int, *, dtype=jnp.float32, rngs):
        self.vision_tower = SiglipVisionTower(cfg, dtype=dtype, rngs=rngs)
        self.multi_modal_projector = MultiModalProjector(cfg, text_hidden, tokens, dtype=dtype, rngs=rngs)

    def __call__(self, pixel_values):
        return self.multi_modal_projector(self.vision_tower(pixel_values))


def _randomise(module: torch.nn.Module, seed: int) -> None:
    """HF init leaves norms at 1 / 0, biases at 0 and the projection at 0: make every tensor matter."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(torch.randn(p.shape, generator=gen) * 0.3)


@functools.cache
def _hf_modules(variant: str):
    """(HF vision config, SiglipVisionModel, Gemma3MultiModalProjector), random, eval mode."""
    vision, tokens, text_hidden = VARIANTS[variant]
    config = transformers.Gemma3Config(
        text_config={**TEXT, "hidden_size": text_hidden},
        vision_config={**vision, "vision_use_head": False},
        mm_tokens_per_image=tokens,
    )
    tower = transformers.SiglipVisionModel(config.vision_config).eval()
    projector = Gemma3MultiModalProjector(config).eval()
    _randomise(tower, 0)
    _randomise(projector, 1)
    return config.vision_config, tower, projector


def _hf_tensors(tower, projector) -> dict[str, np.ndarray]:
    """The tensors under transformers 5's saved names."""
    out = {f"vision_tower.{k}": v.numpy() for k, v in tower.state_dict().items()}
    out.update({f"multi_modal_projector.{k}": v.numpy() for k, v in projector.state_dict().items()})
    return out


def _rules(cfg, tower_prefix="vision_tower.", projector_prefix="multi_modal_projector."):
    return vision_name_rules(cfg, tower_prefix) + projector_name_rules(projector_prefix)


def _load(hf_dir, variant: str, rules=None, **kw) -> VisionPart:
    _, tokens, text_hidden = VARIANTS[variant]
    cfg = SiglipVisionConfig.from_hf(_hf_modules(variant)[0].to_dict())
    model = nnx.eval_shape(lambda: VisionPart(cfg, text_hidden, tokens, rngs=nnx.Rngs(0)))
    load_state(model, hf_dir, rules or _rules(cfg), **kw)
    return model


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """variant -> directory holding that variant's model.safetensors."""
    out = {}
    for variant in VARIANTS:
        path = tmp_path_factory.mktemp(variant)
        _, tower, projector = _hf_modules(variant)
        save_file(_hf_tensors(tower, projector), str(path / "model.safetensors"))
        out[variant] = path
    return out


def _pixels(cfg, n=2, seed=0):
    return np.random.default_rng(seed).uniform(-1, 1, (n, 3, cfg.image_size, cfg.image_size)).astype(np.float32)


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_tower_and_projector_match_transformers(saved, variant):
    hf_cfg, tower, projector = _hf_modules(variant)
    model = _load(saved[variant], variant)
    pixels = _pixels(hf_cfg)
    with torch.no_grad():
        hidden = tower(pixel_values=torch.tensor(pixels)).last_hidden_state
        soft = projector(hidden).numpy()
    hidden = hidden.numpy()
    ours_hidden = np.asarray(model.vision_tower(jnp.asarray(pixels)))
    ours_soft = np.asarray(model.multi_modal_projector(jnp.asarray(hidden)))  # the projector alone
    end_to_end = np.asarray(jax.jit(lambda m, x: m(x))(model, jnp.asarray(pixels)))
    assert ours_hidden.shape == hidden.shape and ours_soft.shape == soft.shape
    diffs = [np.abs(a - b).max() for a, b in ((ours_hidden, hidden), (ours_soft, soft), (end_to_end, soft))]
    print(variant, "max |diff| tower, projector, both:", diffs)
    assert max(diffs) <= TOL


@pytest.mark.parametrize("variant", ["image64_patch8"])
def test_export_gives_back_the_tensors_and_hub_spelling_loads(saved, variant, tmp_path):
    _, tower, projector = _hf_modules(variant)
    tensors = _hf_tensors(tower, projector)
    model = _load(saved[variant], variant)
    cfg = model.vision_tower.config
    exported = dict(iter_hf_tensors(model, _rules(cfg)))
    assert set(exported) == set(tensors)
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, tensors[name], err_msg=name)
    # The Hub's files nest the tower under `vision_tower.vision_model.`
    hub = {k.replace("vision_tower.", "vision_tower.vision_model.", 1): v for k, v in tensors.items()}
    save_file(hub, str(tmp_path / "model.safetensors"))
    other = _load(tmp_path, variant, _rules(cfg, "vision_tower.vision_model."))
    for (path, a), (_, b) in zip(nnx.to_flat_state(nnx.state(model)), nnx.to_flat_state(nnx.state(other))):
        np.testing.assert_array_equal(np.asarray(a[...]), np.asarray(b[...]), err_msg=str(path))


def test_names_saved_by_gemma3_for_conditional_generation(tmp_path):
    """transformers 5 saves `vision_tower.*` and `multi_modal_projector.*` (the LM under
    `language_model.model.*`); the vision tables load them and give `get_image_features`."""
    vision, tokens, text_hidden = VARIANTS["image56_patch14"]
    config = transformers.Gemma3Config(
        text_config={**TEXT, "hidden_size": text_hidden},
        vision_config={**vision, "vision_use_head": False},
        mm_tokens_per_image=tokens,
        image_token_index=299,
        boi_token_index=297,
        eoi_token_index=298,
    )
    torch.manual_seed(0)
    hf_model = transformers.Gemma3ForConditionalGeneration(config).eval()
    _randomise(hf_model.model.vision_tower, 2)
    _randomise(hf_model.model.multi_modal_projector, 3)
    hf_model.save_pretrained(tmp_path)
    cfg = SiglipVisionConfig.from_hf(config.vision_config.to_dict())
    model = nnx.eval_shape(lambda: VisionPart(cfg, text_hidden, tokens, rngs=nnx.Rngs(0)))
    report = load_state(model, tmp_path, _rules(cfg), strict=False)
    assert report.skipped and all(n.startswith("language_model.model.") for n in report.skipped)
    pixels = _pixels(cfg, n=1, seed=4)
    with torch.no_grad():
        ref = hf_model.model.get_image_features(torch.tensor(pixels)).pooler_output.numpy()
    np.testing.assert_allclose(np.asarray(model(jnp.asarray(pixels))), ref, atol=TOL, rtol=0)


def test_bf16_runs_and_lora_targets_the_fused_projections():
    cfg = SiglipVisionConfig.from_hf({**VARIANTS["image56_patch14"][0], "model_type": "siglip_vision_model"})
    model = VisionPart(cfg, 24, 4, dtype=jnp.bfloat16, rngs=nnx.Rngs(0))
    out = model(jnp.asarray(_pixels(cfg)))
    assert out.shape == (2, 4, 24) and out.dtype == jnp.bfloat16
    assert model.vision_tower(jnp.asarray(_pixels(cfg))).dtype == jnp.bfloat16
    chosen = apply_lora(model, 2, 4.0, r"vision_tower/layers/self_attn/(q|v)_proj$")
    assert chosen == ["vision_tower/layers/self_attn/q_proj", "vision_tower/layers/self_attn/v_proj"]


# -- config ---------------------------------------------------------------------------------
def test_config_parses_hf_and_writes_it_back():
    hf = transformers.SiglipVisionConfig(**VARIANTS["image64_patch8_gelu"][0], vision_use_head=False).to_dict()
    cfg = SiglipVisionConfig.from_hf(hf)
    assert (cfg.hidden_size, cfg.num_layers, cfg.num_heads, cfg.head_dim) == (24, 1, 3, 8)
    assert (cfg.image_size, cfg.patch_size, cfg.grid, cfg.num_patches) == (64, 8, 8, 64)
    assert (cfg.hidden_act, cfg.layer_norm_eps, cfg.num_channels) == ("gelu", 1e-5, 3)
    back = cfg.to_hf()
    assert back == hf
    assert transformers.SiglipVisionConfig(**back).to_dict() == hf
    cfg = SiglipVisionConfig.from_hf(HUB)
    assert (cfg.hidden_act, cfg.layer_norm_eps, cfg.num_channels) == ("gelu_pytorch_tanh", 1e-6, 3)
    assert cfg.num_patches == 4096
    assert SiglipVisionConfig.from_hf({**HUB, "image_size": [896, 896]}) == cfg


@pytest.mark.parametrize(
    "change,message",
    [
        ({"vision_use_head": True}, "vision_config.vision_use_head"),
        ({"hidden_size": None}, "'hidden_size'"),
        ({"image_size": [896, 448]}, "vision_config.image_size"),
        ({"patch_size": "big"}, "vision_config.patch_size"),
        ({"hidden_act": "relu6"}, "vision_config.hidden_act"),
        ({"num_attention_heads": 5}, "num_attention_heads 5"),
        ({"model_type": "clip_vision_model"}, "vision_config.model_type"),
        ({"layer_norm_eps": "x"}, "vision_config.layer_norm_eps"),
    ],
)
def test_config_errors_name_the_key(change, message):
    with pytest.raises((KeyError, ValueError), match=message) as err:
        SiglipVisionConfig.from_hf({**HUB, **change}, source="m/config.json")
    assert "m/config.json" in str(err.value)


@pytest.mark.parametrize("tokens", [8, 9])
def test_projector_refuses_token_counts_that_do_not_tile_the_grid(tokens):
    cfg = SiglipVisionConfig.from_hf(VARIANTS["image64_patch8"][0])  # 8 x 8 patches
    with pytest.raises(ValueError, match="mm_tokens_per_image"):
        MultiModalProjector(cfg, 16, tokens, rngs=nnx.Rngs(0))


# -- images ---------------------------------------------------------------------------------
def _reference(images, size):
    return Gemma3ImageProcessorPil(size={"height": size, "width": size})(images, return_tensors="np")["pixel_values"]


def _synthetic():
    rng = np.random.default_rng(0)
    arrays = [
        rng.integers(0, 256, (37, 53, 3), dtype=np.uint8),
        rng.integers(0, 256, (20, 90, 1), dtype=np.uint8),
        rng.integers(0, 256, (64, 40, 4), dtype=np.uint8),
    ]
    pil = [Image.fromarray(arrays[2]), Image.fromarray(arrays[0]).convert("L"), Image.fromarray(arrays[0]).convert("P")]
    return arrays + pil


@pytest.mark.parametrize("size", [56, 224])
def test_preprocess_equals_transformers_on_synthetic_images(size):
    images = _synthetic()
    ours = preprocess(images, size)
    assert ours.shape == (len(images), 3, size, size) and ours.dtype == np.float32
    np.testing.assert_array_equal(ours, _reference(images, size))
    grey = images[1]
    np.testing.assert_array_equal(preprocess([grey[..., 0]], size), ours[1:2])  # [H, W] as [H, W, 1]


def test_preprocess_equals_transformers_on_shared_photos(shared_data_dir):
    paths = sorted((shared_data_dir / "m2e2" / "images").glob("*.jpg"))[:2]
    if len(paths) < 2:
        pytest.skip(f"fewer than 2 photos in {shared_data_dir / 'm2e2' / 'images'}")
    photos = [Image.open(p) for p in paths]
    photos.append(photos[0].convert("RGBA"))
    np.testing.assert_array_equal(preprocess(photos, 224), _reference(photos, 224))


def test_preprocess_within_grey_levels_of_the_torchvision_backend():
    pytest.importorskip("torchvision", reason="transformers' default (torchvision) backend needs torchvision")
    from transformers.models.gemma3.image_processing_gemma3 import Gemma3ImageProcessor

    images = _synthetic()
    ref = Gemma3ImageProcessor(size={"height": 56, "width": 56})(images, return_tensors="np")["pixel_values"]
    diff = np.abs(preprocess(images, 56) - ref).max(axis=(1, 2, 3)) * 255 / 2  # in grey levels
    # torchvision's antialiased resize rounds differently from PIL's in rare pixels (1 level);
    # its alpha blend truncates where PIL's and numpy's round (1 more level)
    has_alpha = [2, 3]  # the RGBA array and its PIL image (`_synthetic`)
    assert diff[has_alpha].max() <= 2 + 1e-4
    assert np.delete(diff, has_alpha).max() <= 1 + 1e-4


def test_preprocess_refuses_float_arrays():
    with pytest.raises(TypeError, match="uint8"):
        preprocess([np.zeros((8, 8, 3), np.float32)], 16)
