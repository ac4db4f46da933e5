"""Maximum-likelihood training pieces for image flows: dequantisation and NLL.

Discrete data ``x_int`` in ``{0, ..., K-1}`` is dequantised uniformly and mapped
to ``[0, 1]``, ``u = (x_int + U[0, 1)) / K``. Then for any density p on the
continuum,

.. math::

  -\\log P(x_{\\rm int}) \\le \\mathbb{E}_U[-\\log p(u)] + D \\log K

(Theis, van den Oord, Bethge 2016), so the per-example loss below is an upper
bound on the discrete NLL in bits/dim.

References:
  Theis, van den Oord, Bethge. A note on the evaluation of generative models.
  https://arxiv.org/abs/1511.01844, 2016.
  Dinh, Sohl-Dickstein, Bengio. Density estimation using Real NVP.
  https://arxiv.org/abs/1605.08803, 2016.
"""

from __future__ import annotations


from vdm_jax import _checks
from vdm_jax.flows import multiscale
from vdm_jax.sde import likelihood


def dequantize(rng, x_int, *, num_bins: int = 256, center: bool = True):
  """Uniform dequantisation of integer images to ``[0, 1]`` (or ``[-0.5, 0.5]``).

  .. math:: u = (x_{\\rm int} + U[0, 1)) / K \\; (- 1/2 \\text{ if center}).

  Args:
    rng: a JAX PRNG key.
    x_int: ``[B, H, W, C]`` integer array with values in ``[0, num_bins)``.
    num_bins: K, number of levels (keyword-only).
    center: subtract 1/2 so the data is centred (range 1 either way).

  Returns:
    ``[B, H, W, C]`` float32 array.
  """
  _checks.check_rank(x_int, 4, "x_int")
  # The score-SDE dequantiser with data range [-1/2, 1/2] (or [0, 1]) and
  # uniform noise: one implementation of x -> (x + u) / K for the library.
  u, _ = likelihood.dequantize(rng, x_int, vocab_size=num_bins,
                               data_range=(-0.5, 0.5) if center else (0.0, 1.0))
  return u


def make_nll_fn(flow, *, num_bins: int = 256):
  """Builds ``nll_fn(params, rng, x_int) -> [B]`` bits/dim for a `MultiScaleFlow`.

  Args:
    flow: a `MultiScaleFlow` (anything with a ``log_prob`` method).
    num_bins: K of the integer data (keyword-only).

  Returns:
    ``nll_fn(params, rng, x_int, cond=None)``: per-example dequantised bits/dim,
    shape ``[B]``; average it in the train step.
  """

  def nll_fn(params, rng, x_int, cond=None):
    u = dequantize(rng, x_int, num_bins=num_bins)
    log_prob = flow.apply(params, u, cond, method="log_prob")
    return multiscale.bits_per_dim(log_prob, u.shape, num_bins=num_bins)

  return nll_fn
