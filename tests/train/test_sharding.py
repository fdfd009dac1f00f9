"""Logical-axis rules -> PartitionSpecs, mesh construction and batch specs (no devices
needed: specs are computed against an AbstractMesh)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import nnx
from jax.sharding import AbstractMesh
from jax.sharding import PartitionSpec as P

from rmpl_jax.train import sharding as shd

MESH = AbstractMesh((2, 2, 2), shd.MESH_AXES)


def test_default_rules_map_model_axes():
    spec = shd.logical_to_spec(("layers", "embed", "q_heads"), (4, 64, 128), MESH)
    assert spec == P(None, "fsdp", "tensor")
    assert shd.logical_to_spec(("vocab", "embed"), (320, 64), MESH) == P("tensor", "fsdp")
    assert shd.logical_to_spec(("batch", None), (8, 5), MESH) == P(("data", "fsdp"), None)
    assert shd.logical_to_spec(None, (3, 3), MESH) == P()


def test_non_dividing_and_repeated_mesh_axes_are_left_out():
    # 3 heads cannot split over tensor=2: replicated instead of an error (tiny models).
    assert shd.logical_to_spec(("embed", "kv_heads"), (64, 3), MESH) == P("fsdp", None)
    # Batch of 2 takes 'data' only (2 does not split over data*fsdp=4).
    assert shd.logical_to_spec(("batch",), (2,), MESH) == P("data")
    # Two dims on 'fsdp': only the first gets it.
    assert shd.logical_to_spec(("vision_embed", "embed"), (128, 64), MESH) == P("fsdp", None)


def test_rule_errors_name_the_problem():
    with pytest.raises(ValueError, match="w/kernel: logical axis 'mystery'"):
        shd.logical_to_spec(("mystery",), (4,), MESH, where="w/kernel")
    with pytest.raises(ValueError, match="2 logical axis names"):
        shd.logical_to_spec(("embed", "mlp"), (4,), MESH)
    with pytest.raises(ValueError, match="no axis 'model'"):
        shd.normalize_rules([("embed", "model")], MESH)
    with pytest.raises(ValueError, match="rule #1"):
        shd.normalize_rules([("embed", "fsdp"), ("mlp",)], MESH)
    with pytest.raises(ValueError, match="twice"):
        shd.normalize_rules([("embed", "fsdp"), ("embed", None)])
    # Lists (as ml_collections stores tuples) are accepted.
    assert shd.normalize_rules([["batch", ["data", "fsdp"]]])["batch"] == ("data", "fsdp")


def test_custom_rules_override_defaults():
    rules = [("embed", None), ("mlp", ("fsdp", "tensor"))]
    assert shd.logical_to_spec(("embed", "mlp"), (64, 112), MESH, rules) == P(None, ("fsdp", "tensor"))


def test_batch_spec_requires_divisible_batch():
    assert shd.batch_spec((8, 16), MESH) == P(("data", "fsdp"), None)
    assert shd.batch_spec((3, 8, 16), MESH, logical_axes=(None, "batch", None)) == P(None, ("data", "fsdp"), None)
    with pytest.raises(ValueError, match="batch size|not divisible"):
        shd.batch_spec((6, 16), MESH, where="batch['input_ids']")


def test_state_shardings_reads_nnx_metadata():
    class M(nnx.Module):
        def __init__(self):
            self.w = nnx.Param(jnp.zeros((8, 6)), out_sharding=("embed", "mlp"))
            self.b = nnx.Param(jnp.zeros((6,)))

    with nnx.use_eager_sharding(False):
        model = M()
    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    sh = shd.model_shardings(nnx.state(model), mesh)
    assert sh["w"].get_value().spec == P(None, None)  # size-1 mesh axes shard nothing
    assert shd.variable_axis_names(nnx.state(model)["w"]) == ("embed", "mlp")
    assert shd.variable_axis_names(nnx.state(model)["b"]) is None


def test_make_mesh_shapes_and_errors():
    n = jax.device_count()
    mesh = shd.make_mesh((-1, 1, 1))
    assert dict(mesh.shape) == {"data": n, "fsdp": 1, "tensor": 1}
    assert all(t == jax.sharding.AxisType.Auto for t in mesh.axis_types)
    with pytest.raises(ValueError, match="at most one"):
        shd.make_mesh((-1, -1, 1))
    with pytest.raises(ValueError, match="needs"):
        shd.make_mesh((n + 1, 1, 1))
    with pytest.raises(ValueError, match="3 mesh axes"):
        shd.make_mesh((1, 1))
