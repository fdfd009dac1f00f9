"""Chunked cross-entropy equals the naive full-logits cross-entropy, and never builds the
full [B, T, V] logits."""

from __future__ import annotations

import jax
import jax.extend
import jax.numpy as jnp
import numpy as np
import pytest

from rmpl_jax.train.loss import chunked_cross_entropy, next_token_targets


def _naive(hidden, w, targets, mask):
    logits = (hidden @ w).astype(jnp.float32)
    logp = jax.nn.log_softmax(logits, axis=-1)
    nll = -jnp.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    m = mask.astype(jnp.float32)
    return jnp.sum(nll * m), jnp.sum(m)


def _inputs(b, t, d, v, seed=0):
    rng = np.random.default_rng(seed)
    hidden = jnp.asarray(rng.normal(size=(b, t, d)), jnp.float32)
    w = jnp.asarray(rng.normal(size=(d, v)) * 0.5, jnp.float32)
    targets = jnp.asarray(rng.integers(0, v, (b, t)), jnp.int32)
    mask = jnp.asarray(rng.random((b, t)) < 0.6, jnp.int32)
    return hidden, w, targets, mask


@pytest.mark.parametrize("t,chunk", [(32, 8), (30, 8), (7, 16), (16, 16), (13, 1)])
def test_matches_naive_value_and_grads(t, chunk):
    hidden, w, targets, mask = _inputs(3, t, 12, 50)

    def chunked(h, w):
        return chunked_cross_entropy(h, lambda x: x @ w, targets, mask, chunk)

    def naive(h, w):
        return _naive(h, w, targets, mask)

    _, n_c = chunked(hidden, w)
    (l_c, grads_c) = jax.value_and_grad(lambda h, w: chunked(h, w)[0], argnums=(0, 1))(hidden, w)
    (l_n, grads_n) = jax.value_and_grad(lambda h, w: naive(h, w)[0], argnums=(0, 1))(hidden, w)
    assert float(n_c) == float(np.sum(np.asarray(mask)))
    # f32: only summation order differs.
    np.testing.assert_allclose(float(l_c), float(l_n), rtol=1e-6)
    for gc, gn in zip(grads_c, grads_n):
        np.testing.assert_allclose(np.asarray(gc), np.asarray(gn), rtol=1e-5, atol=1e-6)


def test_masked_tokens_do_not_count():
    hidden, w, targets, mask = _inputs(2, 10, 8, 20, seed=1)
    base, _ = chunked_cross_entropy(hidden, lambda x: x @ w, targets, mask, 4)
    # Changing targets where the mask is 0 must not change the loss.
    other = jnp.where(mask == 0, (targets + 7) % 20, targets)
    again, _ = chunked_cross_entropy(hidden, lambda x: x @ w, other, mask, 4)
    assert float(base) == float(again)
    zero, count = chunked_cross_entropy(hidden, lambda x: x @ w, targets, jnp.zeros_like(mask), 4)
    assert float(zero) == 0.0 and float(count) == 0.0


def _max_intermediate(jaxpr) -> int:
    biggest = 0
    for eqn in jaxpr.eqns:
        for var in eqn.outvars:
            shape = getattr(var.aval, "shape", ())
            biggest = max(biggest, int(np.prod(shape)) if shape else 1)
        for sub in jax.extend.core.jaxprs_in_params(eqn.params):
            biggest = max(biggest, _max_intermediate(sub))
    return biggest


def test_full_logits_never_materialised():
    b, t, d, v, chunk = 2, 64, 8, 1000, 16
    hidden, w, targets, mask = _inputs(b, t, d, v, seed=2)

    def loss(h, w):
        return chunked_cross_entropy(h, lambda x: x @ w, targets, mask, chunk)[0]

    jaxpr = jax.make_jaxpr(jax.grad(loss, argnums=(0, 1)))(hidden, w).jaxpr
    biggest = _max_intermediate(jaxpr)
    assert biggest <= b * chunk * v, (biggest, b * t * v)
    # The naive version does build [B, T, V]: the check can fail.
    naive_jaxpr = jax.make_jaxpr(jax.grad(lambda h, w: _naive(h, w, targets, mask)[0]))(hidden, w)
    assert _max_intermediate(naive_jaxpr.jaxpr) >= b * t * v


def test_next_token_targets_shift():
    ids = jnp.asarray([[5, 6, 7, 8]])
    mask = jnp.asarray([[0, 0, 1, 1]])
    tgt, m = next_token_targets(ids, mask)
    assert tgt[0, :3].tolist() == [6, 7, 8]
    # Position 1 predicts token 2 (an answer token); the last position predicts nothing.
    assert m.tolist() == [[0, 1, 1, 0]]


def test_bad_shapes_raise():
    hidden, w, targets, mask = _inputs(2, 8, 4, 10)
    with pytest.raises(ValueError, match="targets"):
        chunked_cross_entropy(hidden, lambda x: x @ w, targets[:, :4], mask, 4)
    with pytest.raises(ValueError, match="hidden"):
        chunked_cross_entropy(hidden[0], lambda x: x @ w, targets, mask, 4)
