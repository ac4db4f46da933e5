"""A tiny discrete-time VDM (MLP noise model) for codec tests, benchmarks and demos.

It trains in seconds on the 8x8 digits by minimising the same T-step negative
ELBO the codec's rate converges to (:mod:`vdm_jax.compression.elbo`, one random
diffusion step per example). It is a stand-in for a checkpoint from
``vdm_jax.train``: the codec only needs ``eps_fn`` and ``gamma_fn``.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from vdm_jax import schedules
from vdm_jax import training
from vdm_jax.compression.elbo import discrete_time_nelbo
from vdm_jax.models import ScoreMLP
from vdm_jax.models import UNet


class ToyVDM(NamedTuple):
  """A trained (or freshly initialised) toy model as the codec sees it."""
  eps_fn: Callable
  gamma_fn: Callable
  params: dict
  losses: np.ndarray  # training -ELBO per step (nats per image), empty if untrained


def _linear_gamma(t):
  return schedules.linear_gamma(t)


def apply_eps(net, params, z, gamma, vocab_size: int, *, flat: bool = True):
  r"""eps_hat from a network that outputs per-pixel logits over the V grey levels.

  The logits are added to the exact Gaussian log-likelihood of each bin centre,
  so the posterior mean of the data is

  .. math::

    \hat x = \sum_k c_k\,\mathrm{softmax}_k\big(\ell_k(z) - (z - \alpha c_k)^2/(2\sigma^2)\big),
    \qquad \hat\epsilon = (z - \alpha \hat x)/\sigma ,

  which is exact at low noise (where an MLP could not resolve the 1/sigma slope)
  and learned at high noise. The net is conditioned on gamma normalised to [0, 1]
  with the fixed ends (-13.3, 5), as in the official VDM code, not the learned ends.

  Args:
    net: ScoreMLP with out_dim = D * V (``flat=True``), or a UNet with
      out_channels = C * V (``flat=False``).
    params: its parameters.
    z: [B, ...] float32 latents ([B, H, W, C] for the UNet).
    gamma: [B] float32.
    vocab_size: V.
    flat: whether the network takes flattened [B, D] inputs.

  Returns:
    eps_hat, shape of z.
  """
  b = z.shape[0]
  gamma = jnp.asarray(gamma, jnp.float32).reshape(b)
  t_in = (gamma - schedules.GAMMA_MIN) / (schedules.GAMMA_MAX - schedules.GAMMA_MIN)
  out = net.apply(params, z.reshape(b, -1) if flat else z, t_in)
  flat = z.reshape(b, -1)
  logits = out.reshape(b, flat.shape[1], vocab_size)
  g = gamma[:, None, None]
  alpha = jnp.sqrt(jax.nn.sigmoid(-g))
  centres = (2.0 * jnp.arange(vocab_size, dtype=jnp.float32) + 1.0) / vocab_size - 1.0
  # (z - alpha c)^2 / (2 sigma^2) = (z/alpha - c)^2 e^{-gamma} / 2 with alpha^2/sigma^2 = e^{-gamma}.
  loglik = -0.5 * (flat[..., None] / alpha - centres) ** 2 * jnp.exp(-g)
  x_hat = (jax.nn.softmax(logits + loglik, axis=-1) * centres).sum(-1)
  sigma = jnp.sqrt(jax.nn.sigmoid(gamma))[:, None]
  eps = (flat - alpha[..., 0] * x_hat) / sigma
  return eps.reshape(z.shape)


def make_eps_fn(net, params, vocab_size: int, *, flat: bool = True) -> Callable:
  """Jitted ``eps_fn(z [B, ...], gamma [B])`` of :func:`apply_eps` with fixed params."""
  return jax.jit(lambda z, gamma: apply_eps(net, params, z, gamma, vocab_size, flat=flat))


def _net(dim, vocab_size, hidden, zero_init=True):
  return ScoreMLP(hidden=tuple(hidden), emb_dim=32, out_dim=dim * vocab_size,
                  zero_init_output=zero_init)


def _make_net(image_shape, vocab_size, network, hidden, unet_ch):
  """(module, flat, init_input) for 'mlp' or 'unet' (8x8-style images, one level)."""
  dim = int(np.prod(image_shape))
  if network == "mlp":
    return _net(dim, vocab_size, hidden), True, jnp.zeros((1, dim))
  if network == "unet":
    if len(image_shape) != 3:
      raise ValueError(f"network='unet' needs images [H, W, C], got shape {tuple(image_shape)}.")
    net = UNet(ch=unet_ch, n_blocks=2, dropout=0.0, fourier_exponents=(3, 4),
               out_channels=image_shape[-1] * vocab_size)
    return net, False, jnp.zeros((1,) + tuple(image_shape))
  raise ValueError(f"network must be 'mlp' or 'unet', got {network!r}.")


def init_toy_vdm(image_shape, *, vocab_size: int, hidden: Sequence[int] = (128, 128),
                 seed: int = 0, random_output: bool = False) -> ToyVDM:
  """An untrained toy model (uniform logits, or random ones if `random_output`)."""
  dim = int(np.prod(image_shape))
  net = _net(dim, vocab_size, hidden, zero_init=not random_output)
  params = net.init(jax.random.key(seed), jnp.zeros((1, dim)), jnp.zeros((1,)))
  return ToyVDM(make_eps_fn(net, params, vocab_size), _linear_gamma, params, np.zeros((0,)))


def train_toy_vdm(images, *, vocab_size: int, num_steps: int, train_steps: int = 300,
                  batch_size: int = 128, learning_rate: float = 3e-3,
                  hidden: Sequence[int] = (128, 128), seed: int = 0, network: str = "mlp",
                  unet_ch: int = 32) -> ToyVDM:
  """Fit the toy model to integer images by minimising the T-step -ELBO.

  Args:
    images: [N, ...] integers in [0, vocab_size).
    vocab_size: V.
    num_steps: T used in the training objective (use the codec's T).
    train_steps: Adam steps.
    batch_size: images per step (sampled with replacement).
    learning_rate: Adam learning rate (cosine-decayed to 0).
    hidden: MLP widths.
    seed: PRNG seed.
    network: 'mlp' (over flattened images) or 'unet' (2 blocks, one level).
    unet_ch: UNet width.

  Returns:
    a :class:`ToyVDM` with the trained parameters and the loss curve.
  """
  images = jnp.asarray(np.asarray(images), jnp.int32)
  net, flat, example = _make_net(images.shape[1:], vocab_size, network, hidden, unet_ch)
  rng = jax.random.key(seed)
  params = net.init(rng, example, jnp.zeros((1,)))
  opt = training.make_optimizer(learning_rate=learning_rate, decay="cosine",
                                total_steps=max(train_steps, 1))
  no_average = training.ema(0.0, warmup=False)

  def loss_fn(p, key, x):
    eps_fn = lambda z, g: apply_eps(net, p, z, g, vocab_size, flat=flat)
    return discrete_time_nelbo(key, x, eps_fn=eps_fn, gamma_fn=_linear_gamma,
                               vocab_size=vocab_size, num_steps=num_steps,
                               full_sum=False).total

  losses = np.zeros((0,))
  if train_steps:
    step = training.make_step(training.value_and_grad(
        training.minibatch_loss(loss_fn, batch_size)), opt, no_average,
                              axis_name=training.AXIS)
    run = training.train(step, training.init_state(params, opt, no_average),
                         batches=training.Resident((images,)), base_rng=rng,
                         num_steps=train_steps, log_every=1, num_devices=1,
                         name="toy_vdm", progress=False)
    params = run.state.params
    losses = np.asarray([m["loss"] for _, m in run.history])
  return ToyVDM(make_eps_fn(net, params, vocab_size, flat=flat), _linear_gamma, params,
                losses)
