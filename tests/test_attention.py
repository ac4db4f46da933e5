"""The hand-written attention backward against autodiff of the textbook formula."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.test_util import check_grads

from vdm_jax.models import UNet
from vdm_jax.models import attention


def _qkv(b=5, length=12, c=4, dtype=jnp.float32, seed=0):
  keys = jax.random.split(jax.random.key(seed), 4)
  q, k, v, g = (2.0 * jax.random.normal(key, (b, length, c)) for key in keys)
  return q.astype(dtype), k.astype(dtype), v.astype(dtype), g


def _textbook(q, k, v):
  logits = jnp.einsum("bqc,bkc->bqk", q, k) / np.sqrt(q.shape[-1])
  return jnp.einsum("bqk,bkc->bqc", jax.nn.softmax(logits, axis=-1), v)


def _value_and_grads(fn, q, k, v, g):
  return jax.jit(jax.value_and_grad(lambda *a: jnp.sum(fn(*a) * g), argnums=(0, 1, 2)))(q, k, v)


@pytest.mark.parametrize("chunk_bytes", [None, 4 * 12 * 12 * 2])
def test_value_and_gradient_match_autodiff(chunk_bytes):
  # chunk_bytes = two examples' scores: 5 examples run as chunks of 2, 2, 1.
  q, k, v, g = _qkv()
  ours = _value_and_grads(lambda *a: attention(*a, chunk_bytes=chunk_bytes), q, k, v, g)
  want = _value_and_grads(_textbook, q, k, v, g)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(want)):
    np.testing.assert_allclose(a, b, rtol=2e-5, atol=2e-5)
  np.testing.assert_allclose(
      attention(q, k, v, chunk_bytes=chunk_bytes),
      jax.nn.dot_product_attention(q[:, :, None], k[:, :, None], v[:, :, None])[:, :, 0],
      rtol=1e-5, atol=1e-5)
  check_grads(lambda *a: attention(*a, chunk_bytes=chunk_bytes), (q, k, v), order=1,
              modes=("rev",), atol=1e-2, rtol=1e-2)


def test_chunks_change_nothing_but_rounding():
  q, k, v, g = _qkv(b=7, length=20)
  whole = _value_and_grads(lambda *a: attention(*a, chunk_bytes=None), q, k, v, g)
  chunked = _value_and_grads(lambda *a: attention(*a, chunk_bytes=1), q, k, v, g)  # 1 per chunk
  for a, b in zip(jax.tree.leaves(whole), jax.tree.leaves(chunked)):
    np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-6)
  calls = lambda cb: str(jax.make_jaxpr(lambda *a: attention(*a, chunk_bytes=cb))(q, k, v)
                         ).count("custom_vjp_call")
  assert (calls(None), calls(1), calls(4 * 20 * 20 * 3)) == (1, 7, 3)


def test_bfloat16_inputs_keep_their_dtype_and_float32_accuracy():
  q, k, v, g = _qkv(dtype=jnp.bfloat16)
  out = attention(q, k, v)
  assert out.dtype == jnp.bfloat16
  grads = jax.grad(lambda *a: jnp.sum(attention(*a).astype(jnp.float32) * g),
                   argnums=(0, 1, 2))(q, k, v)
  assert all(x.dtype == jnp.bfloat16 for x in grads)
  f32 = [x.astype(jnp.float32) for x in (q, k, v)]
  np.testing.assert_allclose(out.astype(jnp.float32), _textbook(*f32), rtol=0.05, atol=0.05)


def test_bad_inputs_raise():
  q, k, v, _ = _qkv()
  with pytest.raises(ValueError, match=r"\[B, L, C\]"):
    attention(q[0], k[0], v[0])
  with pytest.raises(ValueError, match=r"\[B, L, C\]"):
    attention(q, k[:, :-1], v)
  with pytest.raises(ValueError, match="dtype"):
    attention(q, k, v.astype(jnp.bfloat16))


def test_unet_attention_fn_is_swappable_with_the_same_parameters():
  net = UNet(ch=8, n_blocks=1, dropout=0.0)
  z = jax.random.normal(jax.random.key(0), (2, 4, 4, 1))
  params = net.init(jax.random.key(1), z, jnp.zeros(2))
  params = jax.tree.map(lambda p: p + 0.05 * jnp.cos(jnp.arange(p.size).reshape(p.shape)),
                        params)  # non-zero output projections, so attention matters
  ours = net.apply(params, z, jnp.full(2, 0.3))
  textbook = net.clone(attention_fn=_textbook).apply(params, z, jnp.full(2, 0.3))
  no_attention = net.clone(attention_fn=lambda q, k, v: v).apply(params, z, jnp.full(2, 0.3))
  np.testing.assert_allclose(ours, textbook, rtol=1e-5, atol=1e-5)
  assert not np.allclose(ours, no_attention, atol=1e-3)
