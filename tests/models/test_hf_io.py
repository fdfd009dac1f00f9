"""HF safetensors loading and export: round trip through transformers, sharded files, bf16,
alternative tensor names, tied embeddings, shardings, and errors that name the tensor."""

from __future__ import annotations

import json
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from safetensors.numpy import load_file, save_file  # noqa: E402

from rmpl_jax.models import qwen2_vl as Q  # noqa: E402
from rmpl_jax.models.family import family_for_dir, get_family  # noqa: E402
from rmpl_jax.models.hf.safetensors_io import CheckpointError, LoadReport  # noqa: E402
from rmpl_jax.models.layers import variables_by_path  # noqa: E402
from tests.testing.hf_tiny import IMAGE_TOKEN, image_patches, make_tiny_qwen, tokens_with_images  # noqa: E402

GRID = [[1, 4, 6]]
CLASSES = {"qwen2_vl": "Qwen2VLForConditionalGeneration", "qwen2_5_vl": "Qwen2_5_VLForConditionalGeneration"}


def _inputs(torch_model):
    ids = tokens_with_images([3, 4], GRID, seed=1)[None]
    return ids, image_patches(GRID, torch_model, seed=2)


def _torch_logits(model, ids, pixels):
    with torch.no_grad():
        return model(
            input_ids=torch.tensor(ids),
            pixel_values=torch.tensor(pixels),
            image_grid_thw=torch.tensor(GRID),
            mm_token_type_ids=torch.tensor((ids == IMAGE_TOKEN).astype(np.int64)),
        ).logits.numpy()


def _our_logits(model, ids, pixels):
    return np.asarray(model(jnp.asarray(ids), pixel_values=jnp.asarray(pixels), image_grid_thw=np.asarray(GRID)))


def _load_torch(path, variant):
    cls = getattr(transformers, CLASSES[variant])
    return cls.from_pretrained(path, dtype=torch.float32).eval()


@pytest.mark.parametrize("variant", ["qwen2_5_vl", "qwen2_vl"])
def test_load_export_roundtrip_through_transformers(tmp_path, variant):
    hf_dir, torch_model = make_tiny_qwen(tmp_path, variant)
    ids, pixels = _inputs(torch_model)
    ref = _torch_logits(torch_model, ids, pixels)
    family = family_for_dir(hf_dir)
    model = family.load_hf(hf_dir)
    ours = _our_logits(model, ids, pixels)
    assert np.abs(ours - ref).max() <= 1e-4

    out = tmp_path / "export"
    family.export_hf(model, out)
    reloaded = _load_torch(out, variant)
    # Every tensor round-trips bit for bit, so transformers' logits are identical.
    orig = {k: v.numpy() for k, v in torch_model.state_dict().items()}
    again = {k: v.numpy() for k, v in reloaded.state_dict().items()}
    assert orig.keys() == again.keys()
    for k in orig:
        np.testing.assert_array_equal(orig[k], again[k], err_msg=k)
    np.testing.assert_array_equal(_torch_logits(reloaded, ids, pixels), ref)
    # And the exported directory loads back into our model with the same logits.
    np.testing.assert_array_equal(_our_logits(family.load_hf(out), ids, pixels), ours)
    assert json.loads((out / "config.json").read_text())["model_type"] == variant


def test_sharded_export_and_load(tmp_path):
    hf_dir, torch_model = make_tiny_qwen(tmp_path, "qwen2_5_vl")
    model = Q.load_hf(hf_dir)
    out = tmp_path / "sharded"
    files = Q.export_hf(model, out, max_shard_bytes=60_000)
    assert len(files) > 2 and (out / "model.safetensors.index.json").is_file()
    assert not (out / "model.safetensors").exists()
    index = json.loads((out / "model.safetensors.index.json").read_text())
    assert set(index["weight_map"].values()) == {f.name for f in files}
    ids, pixels = _inputs(torch_model)
    np.testing.assert_array_equal(
        _torch_logits(_load_torch(out, "qwen2_5_vl"), ids, pixels), _torch_logits(torch_model, ids, pixels)
    )
    np.testing.assert_array_equal(_our_logits(Q.load_hf(out), ids, pixels), _our_logits(model, ids, pixels))


def test_bf16_checkpoint_and_bf16_export(tmp_path):
    _hf_dir, torch_model = make_tiny_qwen(tmp_path, "qwen2_5_vl", save=False)
    bf16_dir = tmp_path / "bf16"
    torch_model.to(torch.bfloat16).save_pretrained(bf16_dir)
    model = Q.load_hf(bf16_dir)  # float32 params from bf16 tensors
    got = variables_by_path(model)["layers/mlp/down_proj/kernel"][...]
    want = torch_model.model.language_model.layers[1].mlp.down_proj.weight.detach().float().numpy().T
    np.testing.assert_array_equal(np.asarray(got)[1], want)
    m16 = Q.load_hf(bf16_dir, dtype="bfloat16")
    assert variables_by_path(m16)["layers/self_attn/qkv_proj/kernel"][...].dtype == jnp.bfloat16
    out = tmp_path / "bf16_export"
    Q.export_hf(m16, out)
    reloaded = getattr(transformers, CLASSES["qwen2_5_vl"]).from_pretrained(out).eval()
    for (k, a), b in zip(torch_model.state_dict().items(), reloaded.state_dict().values()):
        assert b.dtype == torch.bfloat16, k
        assert torch.equal(a, b), k


def _rewrite(hf_dir, fn):
    path = hf_dir / "model.safetensors"
    tensors = fn(load_file(str(path)))
    save_file(tensors, str(path), metadata={"format": "pt"})


def test_errors_name_the_tensor(tmp_path):
    hf_dir, _ = make_tiny_qwen(tmp_path, "qwen2_5_vl")

    def variant(name, fn):
        d = tmp_path / name
        shutil.copytree(hf_dir, d)
        _rewrite(d, fn)
        return d

    missing = variant("missing", lambda t: {k: v for k, v in t.items() if k != "model.layers.1.self_attn.k_proj.bias"})
    with pytest.raises(CheckpointError, match=r"missing: model\.layers\.1\.self_attn\.k_proj\.bias"):
        Q.load_hf(missing)
    extra = variant("extra", lambda t: {**t, "model.layers.0.mystery.weight": np.ones(3, np.float32)})
    with pytest.raises(CheckpointError, match=r"unexpected tensors: model\.layers\.0\.mystery\.weight"):
        Q.load_hf(extra)
    report = LoadReport()
    Q.load_hf(extra, strict=False, report=report)
    assert report.skipped == ["model.layers.0.mystery.weight"] and report.loaded > 0
    shape = variant("shape", lambda t: {**t, "model.layers.1.mlp.up_proj.weight": np.ones((5, 64), np.float32)})
    with pytest.raises(CheckpointError, match=r"model\.layers\.1\.mlp\.up_proj\.weight.*\(5, 64\)"):
        Q.load_hf(shape)
    too_many = variant("layers", lambda t: {**t, "model.layers.2.input_layernorm.weight": np.ones(64, np.float32)})
    with pytest.raises(CheckpointError, match=r"layers\.2\.input_layernorm.*beyond the model.s 2 layers"):
        Q.load_hf(too_many)
    with pytest.raises(CheckpointError, match="neither model.safetensors"):
        (tmp_path / "empty").mkdir()
        shutil.copy(hf_dir / "config.json", tmp_path / "empty" / "config.json")
        Q.load_hf(tmp_path / "empty")


def test_transformers5_names_and_ignored_buffers(tmp_path):
    hf_dir, torch_model = make_tiny_qwen(tmp_path, "qwen2_vl")

    def rename(t):
        out = {}
        for k, v in t.items():
            if k.startswith("model."):
                k = "model.language_model." + k[len("model.") :]
            elif k.startswith("visual."):
                k = "model." + k
            out[k] = v
        out["model.language_model.rotary_emb.inv_freq"] = np.ones(4, np.float32)
        return out

    _rewrite(hf_dir, rename)
    ids, pixels = _inputs(torch_model)
    diff = np.abs(_our_logits(Q.load_hf(hf_dir), ids, pixels) - _torch_logits(torch_model, ids, pixels)).max()
    assert diff <= 1e-4


def test_tied_embeddings(tmp_path):
    hf_dir, torch_model = make_tiny_qwen(tmp_path, "qwen2_5_vl", tie_word_embeddings=True)
    assert torch_model.lm_head.weight.data_ptr() == torch_model.model.language_model.embed_tokens.weight.data_ptr()
    model = Q.load_hf(hf_dir)
    assert model.lm_head is None
    ids, pixels = _inputs(torch_model)
    ref = _torch_logits(torch_model, ids, pixels)
    assert np.abs(_our_logits(model, ids, pixels) - ref).max() <= 1e-4
    out = tmp_path / "tied_export"
    Q.export_hf(model, out)
    from safetensors import safe_open

    with safe_open(str(out / "model.safetensors"), "numpy") as f:
        assert "lm_head.weight" not in f.keys()  # noqa: SIM118 (safe_open is not a mapping)
    np.testing.assert_array_equal(_torch_logits(_load_torch(out, "qwen2_5_vl"), ids, pixels), ref)


def test_shardings_are_applied(tmp_path):
    hf_dir, _ = make_tiny_qwen(tmp_path, "qwen2_5_vl")
    mesh = jax.sharding.Mesh(np.asarray(jax.devices()[:1]), ("fsdp",))
    seen = []

    def sharding_for(path, var):
        seen.append(path)
        names = var.get_metadata().get("out_sharding")
        spec = jax.sharding.PartitionSpec(*["fsdp" if n == "embed" else None for n in names])
        return jax.sharding.NamedSharding(mesh, spec)

    model = get_family("qwen2_5_vl").load_hf(hf_dir, shardings=sharding_for)
    params = variables_by_path(model)
    assert sorted(seen) == sorted(params)
    kernel = params["layers/self_attn/qkv_proj/kernel"][...]
    assert kernel.sharding.spec == jax.sharding.PartitionSpec(None, "fsdp", None)
