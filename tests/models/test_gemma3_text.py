"""The gemma3_text family against transformers' `Gemma3ForCausalLM` (fp32, CPU): logits of a
padded batch whose prompts run past the sliding window, for hand-made variants (MQA with a
linear-scaled global rotary, GQA with two full layers and a separate head, MHA with biases)
and for sizes drawn at random; the KV-cache forward past the window; greedy decoding equal to
`generate` for 64 new tokens; load -> export -> transformers; config errors naming the key."""

from __future__ import annotations

import json

import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file  # noqa: E402

from rmpl_jax.infer.decode import Decoder, Prompt  # noqa: E402
from rmpl_jax.models.family import family_for_dir, get_family  # noqa: E402
from rmpl_jax.models.gemma3.config import Gemma3TextConfig  # noqa: E402
from rmpl_jax.models.gemma3.presets import PRESETS, preset  # noqa: E402
from tests.testing.hf_tiny_gemma3 import TEXT_VARIANTS, make_tiny_gemma3_text, random_text_config  # noqa: E402

TOL = 1e-4


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """variant -> (hf_dir, torch_model), built once per module."""
    root = tmp_path_factory.mktemp("gemma3_text")
    return {v: make_tiny_gemma3_text(root, v) for v in sorted(TEXT_VARIANTS)}


def _batch(seed: int = 0, length: int = 30, pad: int = 7):
    """Two rows, the second left-padded by `pad`, both longer than the tiny windows (<= 8)."""
    rng = np.random.default_rng(seed)
    ids = rng.integers(3, 290, (2, length))
    mask = np.ones_like(ids)
    mask[1, :pad], ids[1, :pad] = 0, 0
    return ids, mask, np.clip(mask.cumsum(1) - 1, 0, None)


def _torch_logits(model, ids, mask, positions):
    with torch.no_grad():
        out = model(
            input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), position_ids=torch.tensor(positions)
        )
    return out.logits.numpy()


def _max_diff(model, torch_model, seed=0):
    ids, mask, positions = _batch(seed)
    ref = _torch_logits(torch_model, ids, mask, positions)
    ours = np.asarray(model(jnp.asarray(ids), attention_mask=jnp.asarray(mask)))
    return np.abs(ours - ref)[mask.astype(bool)].max()


@pytest.mark.parametrize("variant", sorted(TEXT_VARIANTS))
def test_logits_match_transformers(tiny, variant):
    hf_dir, torch_model = tiny[variant]
    model = family_for_dir(hf_dir).load_hf(hf_dir)
    assert model.dims.has_sliding and not all(model.dims.layer_sliding)
    diff = _max_diff(model, torch_model)
    print(variant, "max |diff|", diff)
    assert diff <= TOL


@pytest.mark.parametrize("seed", [11, 12, 13])
def test_logits_match_transformers_on_drawn_sizes(tmp_path, seed):
    hf_dir, torch_model = make_tiny_gemma3_text(tmp_path, f"drawn{seed}", seed=seed, config=random_text_config(seed))
    model = get_family("gemma3_text").load_hf(hf_dir)
    diff = _max_diff(model, torch_model, seed)
    print(seed, json.loads((hf_dir / "config.json").read_text())["layer_types"], "max |diff|", diff)
    assert diff <= TOL


def test_window_matters(tiny):
    """Negative control: the same weights with the window made wider than the prompt differ."""
    hf_dir, torch_model = tiny["mqa"]
    cfg = Gemma3TextConfig.from_dir(hf_dir)
    model = get_family("gemma3_text").load_hf(hf_dir)
    wide = get_family("gemma3_text").build(cfg.replace(sliding_window=1000))
    from flax import nnx

    nnx.update(wide, nnx.state(model))
    assert _max_diff(wide, torch_model) > 1e-2


def test_cache_forward_past_the_window_equals_full_forward(tiny):
    hf_dir, torch_model = tiny["gqa_untied"]
    model = get_family("gemma3_text").load_hf(hf_dir)
    ids, mask, positions = _batch(seed=3, length=30)
    full = _torch_logits(torch_model, ids, mask, positions)
    cache = model.init_cache(2, 40, jnp.float32)
    logits, cache = model.prefill(
        jnp.asarray(ids[:, :20]),
        attention_mask=jnp.asarray(mask[:, :20]),
        position_ids=jnp.asarray(positions[:, :20]),
        cache=cache,
    )
    np.testing.assert_allclose(np.asarray(logits), full[:, 19], atol=TOL)
    valid = np.zeros((2, 40), bool)
    valid[:, :20] = mask[:, :20]
    for slot in range(20, 30):  # one token at a time, each past the window of 6
        valid[:, slot] = True
        step, cache = model.decode_step(
            jnp.asarray(ids[:, slot : slot + 1]),
            position_ids=jnp.asarray(positions[:, slot : slot + 1]),
            cache=cache,
            slot=slot,
            key_mask=jnp.asarray(valid),
        )
        np.testing.assert_allclose(np.asarray(step[:, 0]), full[:, slot], atol=TOL)


def _hf_generate(model, rows, max_new):
    width = max(len(r) for r in rows)
    ids = np.zeros((len(rows), width), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(rows):
        ids[i, width - len(r) :], mask[i, width - len(r) :] = r, 1
    with torch.no_grad():
        out = model.generate(
            input_ids=torch.tensor(ids),
            attention_mask=torch.tensor(mask),
            max_new_tokens=max_new,
            do_sample=False,
            eos_token_id=-1,
            pad_token_id=0,
        ).numpy()
    return out[:, width:]


@pytest.mark.parametrize("variant", ["mqa", "gqa_untied"])
def test_greedy_64_tokens_equals_hf_generate(tiny, variant):
    """64 new tokens, far past the window, from a left-padded batch of three."""
    hf_dir, torch_model = tiny[variant]
    model = get_family("gemma3_text").load_hf(hf_dir)
    rng = np.random.default_rng(5)
    rows = [rng.integers(3, 290, n) for n in (5, 12, 9)]
    ref = _hf_generate(torch_model, rows, 64)
    dec = Decoder(model, batch_size=4, max_new_tokens=64, eos_ids=(-1,), pad_id=0, buckets=(16,))
    ours = dec.generate([Prompt(r) for r in rows])
    for i, (o, r) in enumerate(zip(ours, ref)):
        assert o.tokens.tolist() == r.tolist(), f"row {i}: ours {o.tokens.tolist()} HF {r.tolist()}"


def test_load_export_roundtrip_through_transformers(tiny, tmp_path):
    hf_dir, torch_model = tiny["gqa_untied"]
    family = family_for_dir(hf_dir)
    out = tmp_path / "export"
    family.export_hf(family.load_hf(hf_dir), out)
    original, exported = load_file(str(hf_dir / "model.safetensors")), load_file(str(out / "model.safetensors"))
    assert set(exported) == set(original)
    for name, tensor in exported.items():
        np.testing.assert_array_equal(tensor, original[name], err_msg=name)
    back = transformers.Gemma3ForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    assert back.config.layer_types == torch_model.config.layer_types
    ids, mask, positions = _batch()
    np.testing.assert_allclose(
        _torch_logits(back, ids, mask, positions), _torch_logits(torch_model, ids, mask, positions), atol=1e-6
    )


def test_presets_parse_and_count():
    family = get_family("gemma3_text")
    for name in ("gemma-3-270m", "gemma-3-1b"):
        cfg = family.config_from_hf(preset(name))
        assert cfg.layer_sliding.count(False) == cfg.num_layers // 6
    counts = {}
    for name in ("gemma-3-270m",):
        model = family.abstract_model(family.config_from_hf(PRESETS[name]))
        from rmpl_jax.models.layers import variables_by_path

        counts[name] = sum(int(np.prod(v.shape)) for v in variables_by_path(model).values())
    assert counts["gemma-3-270m"] == 268_098_176  # transformers' count of google/gemma-3-270m


@pytest.mark.parametrize(
    "change,message",
    [
        (dict(final_logit_softcapping=30.0), "final_logit_softcapping"),
        (dict(use_bidirectional_attention=True), "use_bidirectional_attention"),
        (dict(layer_types=["full_attention"]), "layer_types"),
        (dict(rope_parameters={"full_attention": {"rope_type": "yarn"}}), "rope type"),
    ],
)
def test_config_errors_name_the_key(change, message):
    hf = dict(preset("gemma-3-270m"), **change)
    with pytest.raises((ValueError, NotImplementedError), match=message):
        Gemma3TextConfig.from_hf(hf, source="x/config.json")
