"""WGAN pieces for the "does the critic estimate W1?" study: losses and train steps.

The Kantorovich-Rubinstein dual gives

.. math::

  W_1(P, Q) = \\sup_{\\|f\\|_L \\le 1} \\mathbb E_P f - \\mathbb E_Q f,

and a WGAN trains a critic :math:`f_\\phi` to maximise the gap
:math:`\\hat W = \\frac1B\\sum f(x_i) - \\frac1B\\sum f(g(z_i))` under an
approximate Lipschitz constraint: weight clipping to [-c, c] (then the gap
estimates K W_1 for an unknown K) or the gradient penalty
:math:`\\lambda\\, \\mathbb E(\\|\\nabla f(\\hat x)\\| - 1)^2` on random
interpolates. The generator minimises :math:`-\\frac1B\\sum f(g(z_i))`.
The exact alternative trains the generator on the mini-batch OT cost
:math:`\\frac1B \\sum_i \\|g(z_i) - x_{\\pi(i)}\\|` with the optimal matching
:math:`\\pi` held fixed (its gradient is the gradient of the batch W1 by the
envelope theorem).

References:
  Arjovsky, Chintala & Bottou. Wasserstein GAN.
  https://arxiv.org/abs/1701.07875, 2017.
  Gulrajani, Ahmed, Arjovsky, Dumoulin & Courville. Improved training of
  Wasserstein GANs. https://arxiv.org/abs/1704.00028, 2017.
  Stanczuk, Etmann, Kreusser & Schoenlieb. Wasserstein GANs work because they
  fail (to approximate the Wasserstein distance).
  https://arxiv.org/abs/2103.01678, 2021.
  Genevay, Peyre & Cuturi. Learning generative models with Sinkhorn
  divergences (mini-batch OT). https://arxiv.org/abs/1706.00292, 2018.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax

MODES = ("clip", "gp")


class MLP(nn.Module):
  """Plain MLP `[B, D_in] -> [B, out]` (leaky-ReLU hidden layers)."""
  hidden: Sequence[int] = (128, 128, 128)
  out: int = 1

  @nn.compact
  def __call__(self, x):
    for w in self.hidden:
      x = nn.leaky_relu(nn.Dense(w)(x), 0.2)
    return nn.Dense(self.out)(x)


def critic_gap(f_real, f_fake):
  """Dual objective estimate mean f(real) - mean f(fake) (a W1 estimate)."""
  return jnp.mean(f_real) - jnp.mean(f_fake)


def gradient_penalty(critic_fn: Callable, real, fake, u):
  """mean (||grad f(u real + (1 - u) fake)|| - 1)^2 with `u [B]` in [0, 1]."""
  if real.shape != fake.shape:
    raise ValueError(f"real and fake must have the same shape, got {real.shape} "
                     f"and {fake.shape}.")
  xh = u[:, None] * real + (1 - u[:, None]) * fake
  g = jax.vmap(jax.grad(lambda x: critic_fn(x[None])[0, 0]))(xh)
  return jnp.mean(jnp.square(jnp.sqrt(jnp.sum(g * g, -1) + 1e-12) - 1.0))


def clip_weights(params, c: float):
  """Clips every parameter to [-c, c] (the original WGAN constraint)."""
  return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


def matched_cost(fake, real_matched):
  """Mini-batch OT cost mean_i ||fake_i - real_pi(i)|| for a fixed matching."""
  return jnp.mean(jnp.sqrt(jnp.sum(jnp.square(fake - real_matched), -1) + 1e-12))


class GANState(NamedTuple):
  g_params: object
  c_params: object
  g_opt: object
  c_opt: object


def make_wgan_step(gen: nn.Module, critic: nn.Module, *, mode: str,
                   z_dim: int, batch_size: int, n_critic: int = 5,
                   clip: float = 0.01, gp_weight: float = 10.0,
                   g_opt: optax.GradientTransformation,
                   c_opt: optax.GradientTransformation):
  """Builds `step(state, key, data) -> (state, critic_gap)` for one generator step.

  `n_critic` critic updates (each on a fresh real batch drawn from `data`
  [N, D]) precede one generator update; 'clip' clips after every critic update,
  'gp' adds the gradient penalty.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")

  def draw(key, data):
    k1, k2 = jax.random.split(key)
    real = data[jax.random.randint(k1, (batch_size,), 0, data.shape[0])]
    z = jax.random.normal(k2, (batch_size, z_dim))
    return real, z

  def c_loss(cp, gp, real, z, u):
    fake = gen.apply(gp, z)
    f = lambda x: critic.apply(cp, x)
    loss = -critic_gap(f(real), f(fake))
    if mode == "gp":
      loss = loss + gp_weight * gradient_penalty(f, real, fake, u)
    return loss

  def g_loss(gp, cp, z):
    return -jnp.mean(critic.apply(cp, gen.apply(gp, z)))

  def step(state, key, data):
    def c_step(carry, k):
      cp, co = carry
      ka, kb = jax.random.split(k)
      real, z = draw(ka, data)
      u = jax.random.uniform(kb, (batch_size,))
      g = jax.grad(c_loss)(cp, state.g_params, real, z, u)
      upd, co = c_opt.update(g, co, cp)
      cp = optax.apply_updates(cp, upd)
      if mode == "clip":
        cp = clip_weights(cp, clip)
      return (cp, co), None

    kc, kg = jax.random.split(key)
    (cp, co), _ = jax.lax.scan(c_step, (state.c_params, state.c_opt),
                               jax.random.split(kc, n_critic))
    real, z = draw(kg, data)
    gap = critic_gap(critic.apply(cp, real), critic.apply(cp, gen.apply(state.g_params, z)))
    g = jax.grad(g_loss)(state.g_params, cp, z)
    upd, go = g_opt.update(g, state.g_opt, state.g_params)
    return GANState(optax.apply_updates(state.g_params, upd), cp, go, co), gap

  return step
