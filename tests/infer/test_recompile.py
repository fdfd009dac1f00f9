"""One compile per (batch, length bucket, image features bucket): prompts of other lengths,
contents and pixels within a bucket reuse the compiled decode loop, and the KV cache is
donated to each call and reused."""

from __future__ import annotations

import numpy as np
import pytest

from rmpl_jax.infer.decode import Decoder, Prompt
from tests.testing import train_models as tiny
from tests.testing.hf_tiny import tokens_with_images


@pytest.fixture(scope="module")
def model():
    return tiny.build(with_vision=True)


def test_no_recompile_within_a_bucket(model):
    dec = Decoder(model, batch_size=3, max_new_tokens=6, eos_ids=(2,), pad_id=0, buckets=(16, 32))
    rng = np.random.default_rng(0)
    base = dec.traces
    for lengths in [(5, 9), (16, 3, 12), (1,), (7, 7, 7)]:  # all fit bucket 16
        dec.generate([Prompt(rng.integers(3, 290, n)) for n in lengths])
    assert dec.traces == base + 1
    cache = dec._caches[(3, 16 + 6)]
    dec.generate([Prompt(rng.integers(3, 290, 20))])  # bucket 32: one more compile
    assert dec.traces == base + 2
    dec.generate([Prompt(rng.integers(3, 290, 4))])
    assert dec.traces == base + 2
    assert cache.k.is_deleted()  # donated to the call, which returned the cache now held
    assert not dec._caches[(3, 16 + 6)].k.is_deleted()


def test_image_batches_reuse_the_loop(model):
    dec = Decoder(model, batch_size=2, max_new_tokens=4, eos_ids=(2,), pad_id=0, buckets=(32,), feature_multiple=64)
    grid = np.asarray([1, 4, 4])
    base = dec.traces
    rng = np.random.default_rng(1)
    outs = []
    for seed in range(3):
        rows = [tokens_with_images([2 + seed, 3], [grid], seed=seed), tokens_with_images([1, 5 - seed], [grid], seed=9)]
        prompts = [
            Prompt(
                r, {"pixel_values": rng.normal(size=(16, tiny.PATCH_DIM)).astype(np.float32), "image_grid_thw": grid}
            )
            for r in rows
        ]
        outs.append(dec.generate(prompts[: 1 + seed % 2]))
    assert dec.traces == base + 1
    assert all(len(g.tokens) <= 4 for batch in outs for g in batch)


def test_weights_on_a_mesh_compile_once(model):
    """The cache returned by a call has the weights' mesh sharding; the fresh one is made with
    it too, so the second call does not trace again."""
    import jax
    from flax import nnx
    from jax.sharding import NamedSharding, PartitionSpec

    from rmpl_jax.train import sharding as shd

    mesh = shd.make_mesh((1, 1, 1), devices=jax.devices()[:1])
    graphdef, state = nnx.split(model)
    state = jax.tree.map(lambda x: jax.device_put(x, NamedSharding(mesh, PartitionSpec())), state)
    dec = Decoder(nnx.merge(graphdef, state), batch_size=2, max_new_tokens=3, eos_ids=(2,), pad_id=0, buckets=(16,))
    base = dec.traces
    for n in (6, 9, 4):
        dec.generate([Prompt(np.arange(3, 3 + n))])
    assert dec.traces == base + 1
