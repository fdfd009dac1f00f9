"""The Llama family against transformers' `LlamaForCausalLM` (fp32, CPU): logits of padded
batches for every variant of tests/testing/hf_tiny_llama.py (GQA, MQA with head_dim, tied
embeddings, biases, llama3 and linear rotary), unfused projections, the KV-cache forward,
load -> export -> transformers round trip, parameter counts of full-size presets, and
config errors that name the file."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file  # noqa: E402

from rmpl_jax.models import llama as L  # noqa: E402
from rmpl_jax.models.family import family_for_dir, get_family  # noqa: E402
from rmpl_jax.models.layers import variables_by_path  # noqa: E402
from rmpl_jax.models.llama.presets import PRESETS, preset  # noqa: E402
from tests.testing.hf_tiny_llama import VARIANTS, make_tiny_llama  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module", params=sorted(VARIANTS))
def pair(request, tmp_path_factory):
    hf_dir, torch_model = make_tiny_llama(tmp_path_factory.mktemp("llama"), request.param)
    return request.param, hf_dir, torch_model


def _batch(seed: int = 0, length: int = 40):
    """Two rows, the second left-padded by 7, and HF generate's positions for them."""
    ids = np.random.default_rng(seed).integers(3, 300, (2, length))
    mask = np.ones_like(ids)
    mask[1, :7] = 0
    ids[1, :7] = 0
    return ids, mask, np.clip(mask.cumsum(1) - 1, 0, None)


def _torch_logits(model, ids, mask=None, positions=None):
    kw = {"attention_mask": torch.tensor(mask)} if mask is not None else {}
    if positions is not None:
        kw["position_ids"] = torch.tensor(positions)
    with torch.no_grad():
        return model(torch.tensor(ids), **kw).logits.numpy()


def test_logits_match_transformers_left_padded(pair):
    variant, hf_dir, torch_model = pair
    ids, mask, positions = _batch()
    ref = _torch_logits(torch_model, ids, mask, positions)
    model = family_for_dir(hf_dir).load_hf(hf_dir)
    ours = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    diff = np.abs(ours - ref)[mask.astype(bool)].max()
    print(variant, "max |diff|", diff)
    assert diff <= TOL


def test_right_padding_needs_no_mask_and_unfused_equals_fused(pair):
    _, hf_dir, torch_model = pair
    ids = np.random.default_rng(1).integers(3, 300, (2, 16))
    ref = _torch_logits(torch_model, ids)
    fused = L.load_hf(hf_dir)
    unfused = L.load_hf(hf_dir, fuse_qkv=False, fuse_gate_up=False)
    assert "layers/self_attn/q_proj/kernel" in variables_by_path(unfused)
    for model in (fused, unfused):
        assert np.abs(np.asarray(model(jnp.asarray(ids))) - ref).max() <= TOL


def test_cache_forward_equals_full_forward(pair):
    _, hf_dir, _ = pair
    model = L.load_hf(hf_dir)
    ids, mask, positions = _batch(2, length=12)
    full = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    cache = model.init_cache(2, 16, jnp.float32)
    logits, cache = model.prefill(
        jnp.asarray(ids[:, :8]),
        attention_mask=jnp.asarray(mask[:, :8]),
        position_ids=jnp.asarray(positions[:, :8]),
        cache=cache,
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 7], atol=TOL)
    valid = np.zeros((2, 16), bool)
    valid[:, :10] = True
    valid[:, :8] = mask[:, :8]
    logits, _ = model.decode_step(
        jnp.asarray(ids[:, 8:10]), position_ids=jnp.asarray(positions[:, 8:10]), cache=cache, slot=8, key_mask=valid
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 8:10], atol=TOL)


def test_load_export_roundtrip_through_transformers(pair, tmp_path):
    _, hf_dir, torch_model = pair
    family = family_for_dir(hf_dir)
    model = family.load_hf(hf_dir)
    out = tmp_path / "export"
    family.export_hf(model, out)
    original, exported = load_file(str(hf_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(exported) == set(original)  # a tied head is written by neither
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, original[name], err_msg=name)
    back = transformers.AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32, attn_implementation="eager")
    ids, mask, positions = _batch(3)
    np.testing.assert_array_equal(
        _torch_logits(back.eval(), ids, mask, positions), _torch_logits(torch_model, ids, mask, positions)
    )
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]


def test_text_only_model_refuses_image_inputs(tmp_path):
    hf_dir, _ = make_tiny_llama(tmp_path, "gqa")
    model = L.load_hf(hf_dir)
    family = get_family("llama")
    batch = {"input_ids": np.zeros((1, 4), np.int32), "pixel_values": np.zeros((4, 8))}
    with pytest.raises(ValueError, match=r"batch keys \['pixel_values'\] are not inputs of a llama model"):
        family.model_inputs(batch)
    with pytest.raises(ValueError, match="takes no image features"):
        model.prefill(batch["input_ids"], attention_mask=None, position_ids=None, cache=None, image_features=np.ones(1))
    assert not family.has_vision(model.config) and family.box_codec(model.config, 448) is None


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_preset_parameter_counts_match_transformers(name):
    """eval_shape at full size (no memory) against transformers on the meta device."""
    config = preset(name)
    model = get_family("llama").abstract_model(L.LlamaConfig.from_hf(config, dtype="bfloat16", param_dtype="bfloat16"))
    ours = sum(int(np.prod(v.get_value().shape)) for v in variables_by_path(model).values())
    with torch.device("meta"):
        hf = transformers.LlamaForCausalLM(transformers.LlamaConfig(**config))
    print(name, f"{ours:,}")
    assert ours == sum(p.numel() for p in hf.parameters())
    if name == "vicuna-7b-v1.5":
        assert ours == 6_738_415_616


def test_config_errors_name_the_file(tmp_path):
    bad = dict(preset("smollm2-135m"), rope_scaling={"rope_type": "yarn", "factor": 4.0})
    (tmp_path / "config.json").write_text(json.dumps(bad))
    with pytest.raises(NotImplementedError, match=r"config.json: rope type 'yarn' is not supported"):
        L.LlamaConfig.from_dir(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(dict(preset("smollm2-135m"), hidden_act="gelu")))
    with pytest.raises(ValueError, match="config.json: hidden_act 'gelu' unsupported"):
        L.LlamaConfig.from_dir(tmp_path)
    del bad["vocab_size"]
    with pytest.raises(KeyError, match=r"required keys missing: \['vocab_size'\]"):
        L.LlamaConfig.from_hf(bad, source="x.json")
