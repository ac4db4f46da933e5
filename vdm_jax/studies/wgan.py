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

Training runs on the engine (`vdm_jax.training`). Each player's update is the
engine's pure step (`training.make_step`) on its own `TrainState`, with the
other player's parameters passed in the batch; `make_wgan_step` composes
`n_critic` critic steps (a `lax.scan`, weights clipped after each in 'clip'
mode) and one generator step into one ``step(state, batch, base_rng) ->
(state, metrics)`` that `training.train` runs like any method's. The
mini-batch OT generator needs an exact assignment (POT, on the host) between
its samples and the data every step, which cannot run inside a device step:
`fit` drives it with a host loop that calls the engine's jitted steps.

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
import numpy as np
import optax

from vdm_jax import training
from vdm_jax.metrics import discrepancy

MODES = ("clip", "gp")
METHODS = ("wgan_clip", "wgan_gp", "minibatch_ot")
# Neither player keeps a parameter average: decay 0 is the last iterate.
_NO_EMA = training.ema(0.0, warmup=False)


def _given_rng(base_rng, step):
  """An engine `rng_fn` that uses the key passed to the step as is."""
  del step
  return base_rng


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
  """`step`: generator steps so far; `gen`, `critic`: each player's engine `TrainState`."""
  step: jax.Array
  gen: training.TrainState
  critic: training.TrainState


def init_gan_state(g_params, c_params, g_opt: optax.GradientTransformation,
                   c_opt: optax.GradientTransformation) -> GANState:
  return GANState(jnp.zeros((), jnp.int32),
                  training.init_state(g_params, g_opt, _NO_EMA),
                  training.init_state(c_params, c_opt, _NO_EMA))


def optimizers(method: str):
  """The study's optimisers `(g_opt, c_opt)`: RMSProp 5e-4 for the clipped WGAN
  (Arjovsky et al.), Adam 2e-4 with betas (0.5, 0.9) otherwise (Gulrajani et al.)."""
  if method not in METHODS:
    raise ValueError(f"method must be one of {METHODS}, got {method!r}.")
  if method == "wgan_clip":
    return optax.rmsprop(5e-4), optax.rmsprop(5e-4)
  adam = lambda: training.make_optimizer(learning_rate=2e-4, b1=0.5, b2=0.9)
  return adam(), adam()


def make_wgan_step(gen: nn.Module, critic: nn.Module, *, mode: str,
                   z_dim: int, batch_size: int, n_critic: int = 5,
                   clip: float = 0.01, gp_weight: float = 10.0,
                   g_opt: optax.GradientTransformation,
                   c_opt: optax.GradientTransformation,
                   update_generator: bool = True):
  """Builds ``step(state, (data,), base_rng) -> (state, metrics)`` of one generator step.

  With ``key = fold_in(base_rng, state.step)``, ``kc, kg = split(key)``:
  `n_critic` critic updates, the i-th on a fresh real batch drawn from `data`
  [N, D] with key ``split(kc, n_critic)[i]``, precede one generator update on
  noise drawn from `kg`; 'clip' clips the critic's weights after every update,
  'gp' adds the gradient penalty. `update_generator=False` trains the critic
  only (a monitoring critic beside another generator objective). Metrics:
  'critic_gap' (before the generator update), 'critic_loss', 'loss' (the
  generator's) and 'finite'. The step is `training.train`-ready (`Resident`
  data); it does not average over devices, so run it on one.
  """
  if mode not in MODES:
    raise ValueError(f"mode must be one of {MODES}, got {mode!r}.")

  def draw(key, data):
    k1, k2 = jax.random.split(key)
    real = data[jax.random.randint(k1, (batch_size,), 0, data.shape[0])]
    z = jax.random.normal(k2, (batch_size, z_dim))
    return real, z

  def c_loss(cp, batch, rng, shard):
    del shard
    gp, data = batch
    ka, kb = jax.random.split(rng)
    real, z = draw(ka, data)
    u = jax.random.uniform(kb, (batch_size,))
    fake = gen.apply(gp, z)
    f = lambda x: critic.apply(cp, x)
    loss = -critic_gap(f(real), f(fake))
    if mode == "gp":
      loss = loss + gp_weight * gradient_penalty(f, real, fake, u)
    return loss, {}

  def g_loss(gp, batch, rng, shard):
    del rng, shard
    cp, z = batch
    return -jnp.mean(critic.apply(cp, gen.apply(gp, z))), {}

  c_step = training.make_step(training.value_and_grad(c_loss), c_opt, _NO_EMA,
                              rng_fn=_given_rng)
  g_step = training.make_step(training.value_and_grad(g_loss), g_opt, _NO_EMA)

  def step(state: GANState, batch, base_rng):
    (data,) = batch
    key = jax.random.fold_in(base_rng, state.step)

    def c_body(c_state, k):
      c_state, m = c_step(c_state, (state.gen.params, data), k)
      if mode == "clip":
        # The original WGAN's projection onto the weight box, after the update.
        c_state = c_state._replace(params=clip_weights(c_state.params, clip))
      return c_state, (m["loss"], m["finite"])

    kc, kg = jax.random.split(key)
    c_state, (c_losses, c_finite) = jax.lax.scan(
        c_body, state.critic, jax.random.split(kc, n_critic))
    metrics = {"critic_loss": c_losses[-1], "finite": jnp.all(c_finite)}
    g_state = state.gen
    if update_generator:
      real, z = draw(kg, data)
      cp = c_state.params
      metrics["critic_gap"] = critic_gap(critic.apply(cp, real),
                                         critic.apply(cp, gen.apply(g_state.params, z)))
      g_state, g_metrics = g_step(g_state, (cp, z), kg)
      metrics["loss"] = g_metrics["loss"]
      metrics["finite"] = metrics["finite"] & g_metrics["finite"]
    return GANState(state.step + 1, g_state, c_state), metrics

  return step


def make_ot_generator_step(gen: nn.Module, g_opt: optax.GradientTransformation):
  """The engine step of the mini-batch OT generator: batch ``(z, x_matched)``.

  Its loss is `matched_cost` of ``gen(z)`` against the real points matched to
  them (the matching found on the host, held fixed).
  """
  def loss(gp, batch, rng, shard):
    del rng, shard
    z, xm = batch
    return matched_cost(gen.apply(gp, z), xm), {}
  return training.make_step(training.value_and_grad(loss), g_opt, _NO_EMA)


def init_models(method: str, d: int, seed: int, *, hidden=(128, 128, 128)):
  """The study's MLP generator and critic, their `GANState` and the loop key.

  Returns:
    `(gen, critic, state, key, z_dim)`; ``z_dim = max(2, d)``.
  """
  z_dim = max(2, d)
  gen = MLP(tuple(hidden), out=d)
  critic = MLP(tuple(hidden), out=1)
  kg, kc, key = jax.random.split(jax.random.key(seed), 3)
  g_opt, c_opt = optimizers(method)
  # Jitted inits: eagerly, Flax compiles each op alone (the same bits for these MLPs).
  state = init_gan_state(jax.jit(gen.init)(kg, jnp.zeros((1, z_dim))),
                         jax.jit(critic.init)(kc, jnp.zeros((1, d))), g_opt, c_opt)
  return gen, critic, state, key, z_dim


def fit(method: str, data, *, steps: int, batch_size: int, seed: int,
        eval_fn: Callable | None = None, eval_every: int = 0,
        host_rng: np.random.Generator | None = None, n_critic: int = 5,
        workdir: str | None = None):
  """Trains one generator of the study on `data` [N, D]; evaluates along the way.

  'wgan_clip' and 'wgan_gp' run `make_wgan_step` through `training.train`;
  'minibatch_ot' trains its generator on the exact mini-batch W1 with a host
  loop (the matching is POT's, on the host: real batches from `host_rng`,
  noise from the step key), next to a GP critic trained for monitoring only.

  Args:
    method: one of `METHODS`.
    data: `[N, D]` training points.
    steps: generator steps.
    batch_size: batch of every update.
    seed: initialisation and random stream.
    eval_fn: ``(state, step) -> dict`` called at step 0 and every `eval_every`.
    eval_every: steps between evaluations (0: none).
    host_rng: the generator of the OT method's real batches (default: seeded
      with `seed`); share it with `eval_fn` to keep one host stream.
    n_critic: critic updates per generator step.
    workdir: checkpoints and metrics of the engine runs (None: in memory).

  Returns:
    `(gen, critic, state)`: the modules and the final `GANState`.
  """
  data = jnp.asarray(data)
  gen, critic, state, key, z_dim = init_models(method, data.shape[1], seed)
  g_opt, c_opt = optimizers(method)
  if eval_fn is not None:
    eval_fn(state, 0)
  mode = "clip" if method == "wgan_clip" else "gp"
  if method != "minibatch_ot":
    step = make_wgan_step(gen, critic, mode=mode, z_dim=z_dim, n_critic=n_critic,
                          batch_size=batch_size, g_opt=g_opt, c_opt=c_opt)
    run = training.train(step, state, batches=training.Resident((data,)),
                         base_rng=key, num_steps=steps,
                         log_every=eval_every or steps, workdir=workdir,
                         num_devices=1, eval_fn=eval_fn if eval_every else None,
                         eval_every=eval_every, progress=False, name=method)
    return gen, critic, run.state
  host_rng = np.random.default_rng(seed) if host_rng is None else host_rng
  real = np.asarray(data)
  monitor = jax.jit(make_wgan_step(gen, critic, mode=mode, z_dim=z_dim,
                                   n_critic=n_critic, batch_size=batch_size,
                                   g_opt=g_opt, c_opt=c_opt,
                                   update_generator=False))
  g_step = jax.jit(make_ot_generator_step(gen, g_opt))
  for s in range(steps):
    state, c_metrics = monitor(state, (data,), key)
    k = jax.random.fold_in(key, s)
    k1, _ = jax.random.split(k)
    xb = real[host_rng.integers(0, len(real), batch_size)]
    z = jax.random.normal(k1, (batch_size, z_dim))
    fake = np.asarray(gen.apply(state.gen.params, z))
    perm = discrepancy.ot_assignment(fake, xb)
    g_state, g_metrics = g_step(state.gen, (z, jnp.asarray(xb[perm])), k)
    state = state._replace(gen=g_state)
    if not (bool(c_metrics["finite"]) and bool(g_metrics["finite"])):
      raise RuntimeError(f"Non-finite loss, gradient or parameters at step {s + 1} "
                         f"({method}); lower the learning rate.")
    if eval_fn is not None and eval_every and (s + 1) % eval_every == 0:
      eval_fn(state, s + 1)
  return gen, critic, state
