"""Conditional sampling from CAFLOW, coarse to fine, with a temperature.

Given ``y``, encode ``l = F(y)``; for ``i = L-1, ..., 0`` draw
``z_i ~ N(0, T^2 I)`` and invert ``m_i = G_i^{-1}(z_i; c_i(l_{\\ge i},
m_{>i}))``; finally ``x = T^{-1}(m)``:

.. math::

  m_i = G_i^{-1}\\big(T_{\\rm emp}\\, \\epsilon_i;\\; l_{\\ge i}, m_{>i}\\big),
  \\quad \\epsilon_i \\sim N(0, I), \\qquad x = T^{-1}(m_0, \\dots, m_{L-1}).

Temperature 1 samples the model; below 1 trades diversity for fidelity (Glow,
Sec. 5); 0 gives the deterministic ``x = T^{-1}(G^{-1}(0; y))``.

References:
  Batzolis, Carioni, Etmann, Afyouni, Kourtzi, Schoenlieb. CAFLOW: Conditional
  autoregressive flows. https://arxiv.org/abs/2106.02531, 2021.
  Kingma, Dhariwal. Glow: Generative flow with invertible 1x1 convolutions.
  https://arxiv.org/abs/1807.03039, 2018.
"""

from __future__ import annotations

import jax
import numpy as np

from vdm_jax.caflow import model as model_lib
from vdm_jax.caflow import training


def make_sampler(model, *, channels: int, num_bins: int | None = None):
  """Builds a jitted ``sample_fn(params, rng, y, temperature) -> x``.

  Args:
    model: a `vdm_jax.caflow.CAFlow`.
    channels: channel count Cx of the targets (keyword-only).
    num_bins: if given, samples are mapped from the dequantised flow space back
      to images in [-1, 1] (`vdm_jax.caflow.flow_to_images`); None returns the
      flow's raw output.

  Returns:
    ``sample_fn(params, rng, y [B, H, W, Cy], temperature) -> [B, H, W, Cx]``;
    ``temperature`` is a traced scalar (one compile for all values) and is
    checked to be >= 0 before tracing.
  """

  @jax.jit
  def draw(params, rng, y, temperature):
    u = model.apply(params, rng, y, channels=channels, temperature=temperature,
                    method="sample")
    return u if num_bins is None else training.flow_to_images(
        u, num_bins=num_bins)

  def sample_fn(params, rng, y, temperature=1.0):
    model_lib.check_temperature(temperature)
    return draw(params, rng, y, temperature)

  return sample_fn


def sample_many(sample_fn, params, rng, y, n_samples: int, *,
                temperature: float = 1.0, batch_size: int = 512):
  """``n_samples`` draws per condition: ``[K, N, H, W, Cx]`` numpy.

  Args:
    sample_fn: from `make_sampler`.
    params: model parameters.
    rng: PRNG key.
    y: ``[N, H, W, Cy]`` conditions.
    n_samples: K draws per condition.
    temperature: sampling temperature (keyword-only).
    batch_size: conditions per call.

  Returns:
    ``[K, N, H, W, Cx]`` numpy array.
  """
  if n_samples < 1:
    raise ValueError(f"n_samples must be >= 1, got {n_samples}.")
  model_lib.check_temperature(temperature)
  out = []
  for k in range(n_samples):
    chunks = []
    for s in range(0, y.shape[0], batch_size):
      key = jax.random.fold_in(jax.random.fold_in(rng, k), s)
      chunks.append(np.asarray(sample_fn(params, key, y[s:s + batch_size],
                                         temperature)))
    out.append(np.concatenate(chunks))
  return np.stack(out)
