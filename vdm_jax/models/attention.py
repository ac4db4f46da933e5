"""Single-head softmax attention with a hand-written backward pass.

.. math::

  O = \\mathrm{softmax}_{\\text{row}}(\\tau\\, Q K^\\top)\\, V, \\qquad \\tau = 1 / \\sqrt{C}

(Vaswani et al., Attention Is All You Need, 2017, Eq. 1): the value of
`jax.nn.dot_product_attention` with one head, computed and differentiated in
fewer passes over the `[B, L, L]` scores. With E = exp(S - max_row S) and
r_i = 1 / sum_j E_ij, the forward pass normalises after the product,
O = diag(r) (E V), and keeps E and r. The backward pass is the closed form

.. math::

  \\tilde G = \\mathrm{diag}(r)\\, dO, \\quad dV = E^\\top \\tilde G, \\quad
  dS = E \\odot (\\tilde G V^\\top - \\delta), \\quad
  \\delta_i = \\textstyle\\sum_c \\tilde G_{ic} O_{ic}, \\quad
  dQ = \\tau\\, dS\\, K, \\quad dK = \\tau\\, dS^\\top Q,

(dS = P ⊙ (dP - rowsum(P ⊙ dP)) with P = diag(r) E, dP = dO V^T, and
rowsum(P ⊙ dP) = rowsum(dO ⊙ O)), four matrix products and one elementwise
pass, where autodiff of the softmax differentiates its max-subtraction, exp and
division separately.

On XLA:CPU the `[B, L, L]` arrays of a 32x32 image (L = 1024) do not fit in
cache and every pass over them is paid in memory traffic, so there the batch is
split into chunks of at most `_CPU_CHUNK_BYTES` of scores, run one after the
other. Together, ~2.2x faster value and gradient than
`jax.nn.dot_product_attention` at `[16, 1024, 32]` on a 2-core CPU
(`benchmarks/train_throughput.py`); values and gradients equal it up to float
rounding (tests/test_models.py).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

_CPU_CHUNK_BYTES = 16 * 2 ** 20


def _check(q, k, v):
  if q.ndim != 3 or k.shape != q.shape or v.ndim != 3 or v.shape[:2] != k.shape[:2]:
    raise ValueError(
        "attention: q and k must both be [B, L, C] and v [B, L, C_v], got "
        f"q {q.shape}, k {k.shape}, v {v.shape}.")
  if not q.dtype == k.dtype == v.dtype:
    raise ValueError(
        f"attention: q, k and v must share a dtype, got {q.dtype}, {k.dtype}, {v.dtype}.")


def _forward(q, k, v):
  """O, E and r (see the module docstring); scores and sums in float32."""
  f32 = jnp.float32
  logits = jnp.einsum("bqc,bkc->bqk", q, k, preferred_element_type=f32)
  logits = logits * jnp.asarray(q.shape[-1] ** -0.5, f32)
  e = jnp.exp(logits - jnp.max(logits, axis=-1, keepdims=True))
  r = 1.0 / jnp.sum(e, axis=-1, keepdims=True)
  e = e.astype(v.dtype)
  out = jnp.einsum("bqk,bkc->bqc", e, v, preferred_element_type=f32) * r
  return out.astype(v.dtype), e, r


@jax.custom_vjp
def _attention(q, k, v):
  return _forward(q, k, v)[0]


def _attention_fwd(q, k, v):
  out, e, r = _forward(q, k, v)
  return out, (q, k, v, out, e, r)


def _attention_bwd(res, d_out):
  q, k, v, out, e, r = res
  f32 = jnp.float32
  g = d_out.astype(f32) * r
  delta = jnp.sum(g * out.astype(f32), axis=-1, keepdims=True)
  g = g.astype(v.dtype)
  d_v = jnp.einsum("bqk,bqc->bkc", e, g, preferred_element_type=f32)
  d_probs = jnp.einsum("bqc,bkc->bqk", g, v, preferred_element_type=f32)
  d_logits = (e.astype(f32) * (d_probs - delta)).astype(q.dtype)
  scale = jnp.asarray(q.shape[-1] ** -0.5, f32)
  d_q = jnp.einsum("bqk,bkc->bqc", d_logits, k, preferred_element_type=f32) * scale
  d_k = jnp.einsum("bqk,bqc->bkc", d_logits, q, preferred_element_type=f32) * scale
  return d_q.astype(q.dtype), d_k.astype(k.dtype), d_v.astype(v.dtype)


_attention.defvjp(_attention_fwd, _attention_bwd)


def attention(q, k, v, *, chunk_bytes: int | None | str = "auto"):
  """softmax(Q K^T / sqrt(C)) V for `[B, L, C]` queries, keys and `[B, L, C_v]` values.

  Args:
    q, k: `[B, L, C]` queries and keys.
    v: `[B, L, C_v]` values, the same dtype as q and k.
    chunk_bytes: run the batch in consecutive chunks whose float32 scores
      `[b, L, L]` take at most this many bytes (at least one example per
      chunk); None: one chunk. "auto": `_CPU_CHUNK_BYTES` on CPU, where it
      keeps the scores in cache, and one chunk on other backends.

  Returns:
    `[B, L, C_v]` in the dtype of v. Scores, softmax and products accumulate in
    float32 for any input dtype.
  """
  _check(q, k, v)
  if chunk_bytes == "auto":
    chunk_bytes = _CPU_CHUNK_BYTES if jax.default_backend() == "cpu" else None
  b, length = q.shape[:2]
  per_example = 4 * length * length
  if chunk_bytes is None or b * per_example <= chunk_bytes:
    return _attention(q, k, v)
  n_chunks = math.ceil(b / max(1, chunk_bytes // per_example))
  parts = zip(*(jnp.array_split(x, n_chunks) for x in (q, k, v)))
  return jnp.concatenate([_attention(*p) for p in parts], axis=0)
