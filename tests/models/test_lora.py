"""LoRA: zero-B identity, merge equivalence, per-projection (PEFT-style) semantics on fused
layers checked against transformers with the adapted weights written in, export, splitting."""

from __future__ import annotations

import copy

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from flax import nnx  # noqa: E402

from rmpl_jax.models import qwen2_vl as Q  # noqa: E402
from rmpl_jax.models.family import get_family  # noqa: E402
from rmpl_jax.models.layers import Linear, modules_by_path, variables_by_path  # noqa: E402
from rmpl_jax.models.lora import apply_lora, has_lora, lora_state, merge_lora, projection_paths  # noqa: E402
from tests.testing.hf_tiny import make_tiny_qwen  # noqa: E402

DEFAULT_TARGETS = get_family("qwen2_5_vl").default_lora_targets
RANK, ALPHA = 4, 8.0


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    hf_dir, torch_model = make_tiny_qwen(tmp_path_factory.mktemp("lora"), "qwen2_5_vl")
    return hf_dir, torch_model


def _ids():
    return np.random.default_rng(0).integers(3, 290, size=(2, 9))


def _logits(model, ids):
    graphdef, state = nnx.split(model)
    return np.asarray(jax.jit(lambda s, i: nnx.merge(graphdef, s)(i))(state, jnp.asarray(ids)))


def _randomize_b(model, seed=0):
    rng = np.random.default_rng(seed)
    for var in variables_by_path(model, nnx.LoRAParam).values():
        var.set_value(jnp.asarray(rng.normal(0, 0.2, var.get_value().shape), var.get_value().dtype))


def test_default_targets_and_zero_b_is_identity(tiny):
    hf_dir, _ = tiny
    model = Q.load_hf(hf_dir, with_vision=False)
    base = _logits(model, _ids())
    adapted = apply_lora(model, RANK, ALPHA, DEFAULT_TARGETS)
    assert adapted == sorted(
        f"layers/{p}"
        for p in [
            "self_attn/q_proj",
            "self_attn/k_proj",
            "self_attn/v_proj",
            "self_attn/o_proj",
            "mlp/gate_proj",
            "mlp/up_proj",
            "mlp/down_proj",
        ]
    )
    adapters = variables_by_path(model, nnx.LoRAParam)
    assert len(adapters) == 14
    a = adapters["layers/self_attn/qkv_proj/lora_a_k_proj"]
    b = adapters["layers/self_attn/qkv_proj/lora_b_k_proj"]
    assert a.get_value().shape == (2, 64, RANK) and b.get_value().shape == (2, RANK, 32)
    assert a.get_metadata()["out_sharding"] == ("layers", "embed", "lora_rank")
    assert float(jnp.abs(a[...]).max()) > 0 and float(jnp.abs(b[...]).max()) == 0
    np.testing.assert_array_equal(_logits(model, _ids()), base)
    with pytest.raises(ValueError, match="already has"):
        apply_lora(model, RANK, ALPHA, r"q_proj")
    with pytest.raises(ValueError, match="matches no projection"):
        apply_lora(model, RANK, ALPHA, r"^nothing$")


def test_merge_equals_unmerged_and_export_merges(tiny, tmp_path):
    hf_dir, _ = tiny
    model = Q.load_hf(hf_dir)
    base = _logits(model, _ids())
    apply_lora(model, RANK, ALPHA, DEFAULT_TARGETS, rngs=nnx.Rngs(1))
    _randomize_b(model)
    adapted = _logits(model, _ids())
    assert np.abs(adapted - base).max() > 1e-2
    # Export folds the adapters in without touching the model.
    Q.export_hf(model, tmp_path / "merged")
    assert has_lora(model)
    exported = _logits(Q.load_hf(tmp_path / "merged"), _ids())
    merge_lora(model)
    assert not has_lora(model) and not variables_by_path(model, nnx.LoRAParam)
    merged = _logits(model, _ids())
    print(f"merge max|diff| {np.abs(merged - adapted).max():.2e}, export {np.abs(exported - adapted).max():.2e}")
    np.testing.assert_allclose(merged, adapted, atol=1e-5)
    np.testing.assert_allclose(exported, adapted, atol=1e-5)


def test_fused_adapters_equal_separate_peft_adapters(tiny):
    """q and v adapters on the fused qkv (k untouched), gate only on the fused gate/up:
    identical to adding scale * A @ B to HF's separate q_proj / v_proj / gate_proj."""
    hf_dir, torch_model = tiny
    model = Q.load_hf(hf_dir, with_vision=False)
    chosen = apply_lora(model, RANK, ALPHA, r"(q_proj|v_proj|gate_proj)$", rngs=nnx.Rngs(2))
    assert chosen == ["layers/mlp/gate_proj", "layers/self_attn/q_proj", "layers/self_attn/v_proj"]
    _randomize_b(model, seed=3)
    ours = _logits(model, _ids())

    ref_model = copy.deepcopy(torch_model)
    adapters = {k: np.asarray(v[...]) for k, v in variables_by_path(model, nnx.LoRAParam).items()}
    owner = {"q_proj": "self_attn/qkv_proj", "v_proj": "self_attn/qkv_proj", "gate_proj": "mlp/gate_up_proj"}
    with torch.no_grad():
        for i, layer in enumerate(ref_model.model.language_model.layers):
            for proj, path in owner.items():
                a = adapters[f"layers/{path}/lora_a_{proj}"][i]
                b = adapters[f"layers/{path}/lora_b_{proj}"][i]
                module = getattr(layer.self_attn if proj != "gate_proj" else layer.mlp, proj)
                module.weight += torch.from_numpy((ALPHA / RANK) * (a @ b).T)
        ref = ref_model(input_ids=torch.tensor(_ids())).logits.numpy()
    diff = np.abs(ours - ref).max()
    print(f"fused LoRA vs separate-projection reference max|diff| {diff:.2e}")
    assert diff <= 1e-4
    assert np.abs(ours - torch_model(input_ids=torch.tensor(_ids())).logits.detach().numpy()).max() > 1e-2


def test_split_and_gradients_reach_only_adapters(tiny):
    hf_dir, _ = tiny
    model = Q.load_hf(hf_dir, with_vision=False)
    apply_lora(model, RANK, ALPHA, DEFAULT_TARGETS)
    graphdef, lora, rest = nnx.split(model, nnx.LoRAParam, ...)
    assert len(jax.tree.leaves(lora)) == 14 and jax.tree.leaves(lora_state(model))
    ids = jnp.asarray(_ids())

    def loss(lora):
        logits = nnx.merge(graphdef, lora, rest)(ids)
        return jnp.mean(jax.nn.logsumexp(logits, -1) - jnp.take_along_axis(logits, ids[..., None], -1)[..., 0])

    grads = jax.jit(jax.grad(loss))(lora)
    flat = {"/".join(map(str, p)): v for p, v in nnx.to_flat_state(grads)}
    b_grad = flat["layers/self_attn/qkv_proj/lora_b_q_proj"]
    assert float(jnp.abs(b_grad[...] if hasattr(b_grad, "get_value") else b_grad).max()) > 0


def test_vision_targets_optional(tiny):
    """The tower's projections are adaptable, but only when a regex names them."""
    hf_dir, _ = tiny
    model = Q.load_hf(hf_dir)
    paths = projection_paths(model)
    assert "visual/blocks/attn/qkv" in paths  # see tests/models/test_vision_lora.py
    assert set(modules_by_path(model, Linear)) >= {"layers/self_attn/qkv_proj", "layers/mlp/gate_up_proj"}
    adapted = apply_lora(model, 2, 4.0, DEFAULT_TARGETS)
    assert adapted and not any(p.startswith("visual") for p in adapted)


def test_lm_head_adapter_merges(tiny):
    hf_dir, _ = tiny
    model = Q.load_hf(hf_dir, with_vision=False)
    assert apply_lora(model, 2, 4.0, r"^lm_head$") == ["lm_head"]
    _randomize_b(model, seed=5)
    adapted = _logits(model, _ids())
    merge_lora(model)
    np.testing.assert_allclose(_logits(model, _ids()), adapted, atol=1e-5)
