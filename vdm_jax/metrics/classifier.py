"""A small MLP digit classifier whose penultimate layer serves as a feature space.

Sample quality on the digits is scored with a Frechet distance
(`vdm_jax.metrics.frechet`) between Gaussian fits of these features of real
and generated images, in the spirit of FID but in a 64-d feature space learned
here; the numbers are comparable only within one experiment, never with the
Inception FID.

Training is the engine's (`vdm_jax.training`): Adam on the softmax cross
entropy of minibatches of `batch_size` images drawn with replacement, each
perturbed by Gaussian noise of std `noise_std` (so that the features are robust
to the residual noise of samples). The minibatch indices come from
``numpy.random.default_rng(seed)`` and the noise of step k from
``jax.random.key(k)``, the stream of the loop this replaces, so its features
and figures are reproduced.

References:
  Heusel, Ramsauer, Unterthiner, Nessler & Hochreiter. GANs Trained by a Two
  Time-Scale Update Rule Converge to a Local Nash Equilibrium.
  https://arxiv.org/abs/1706.08500, 2017 (features of a trained classifier).
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vdm_jax import training


class DigitClassifier(nn.Module):
  """MLP `[N, ...] -> [N, 10]` logits; ``return_features=True`` gives the 64-d layer."""

  @nn.compact
  def __call__(self, x, return_features=False):
    h = x.reshape(x.shape[0], -1)
    h = nn.gelu(nn.Dense(256)(h))
    h = nn.gelu(nn.Dense(64)(h))
    if return_features:
      return h
    return nn.Dense(10)(h)


class FeatureClassifier(NamedTuple):
  """A trained `DigitClassifier`: `features(images) -> [N, 64]`, `accuracy(x, y)`."""
  params: object
  features: Callable
  logits: Callable

  def accuracy(self, images, labels) -> float:
    return float(np.mean(np.argmax(self.logits(images), -1) == np.asarray(labels)))


def train_digit_classifier(images, labels, *, steps: int, seed: int = 0,
                           batch_size: int = 128, learning_rate: float = 1e-3,
                           noise_std: float = 0.1, log_every: int = 100,
                           progress: bool = False) -> FeatureClassifier:
  """Trains a `DigitClassifier` on `images [N, H, W, C]`, integer `labels [N]`.

  Args:
    images, labels: the training set (images in the range samples will have).
    steps: Adam steps.
    seed: parameter init key and minibatch stream.
    batch_size: images per step, drawn with replacement.
    learning_rate: constant Adam step size.
    noise_std: std of the Gaussian noise added to each training batch.
    log_every: steps per metrics window (clipped to `steps`).
    progress: show the engine's progress bar.

  Returns:
    a `FeatureClassifier` with jitted `features` and `logits` (numpy out).
  """
  x = np.asarray(images, np.float32)
  y = np.asarray(labels, np.int32)
  if len(x) != len(y):
    raise ValueError(f"images and labels differ in length: {len(x)} vs {len(y)}.")
  training.check_positive_int(steps, "steps")
  model = DigitClassifier()
  params = model.init(jax.random.key(seed), x[:1])
  opt = training.make_optimizer(learning_rate=learning_rate)
  ema = training.ema(0.0, warmup=False)  # unused: the last iterate is kept.

  def loss_fn(params, batch, rng, shard):
    del shard
    xb, yb = batch
    xb = xb + noise_std * jax.random.normal(rng, xb.shape)
    logits = model.apply(params, xb)
    return optax.softmax_cross_entropy_with_integer_labels(logits, yb), {}

  step = training.make_step(training.value_and_grad(loss_fn), opt, ema,
                            axis_name=training.AXIS,
                            rng_fn=lambda base_rng, k: jax.random.key(k))

  def batches(start):
    rng = np.random.default_rng(seed)
    for _ in range(start):  # a resumed stream replays the skipped draws.
      rng.integers(0, len(x), batch_size)
    while True:
      idx = rng.integers(0, len(x), batch_size)
      yield x[idx][None], y[idx][None]

  log_every = max(1, min(log_every, steps))
  while steps % log_every:
    log_every -= 1
  run = training.train(step, training.init_state(params, opt, ema), batches=batches,
                       base_rng=jax.random.key(seed), num_steps=steps,
                       log_every=log_every, num_devices=1, progress=progress,
                       name="classifier")
  params = run.state.params
  feats = jax.jit(lambda z: model.apply(params, z, return_features=True))
  logits = jax.jit(lambda z: model.apply(params, z))
  return FeatureClassifier(
      params, lambda imgs: np.asarray(feats(jnp.asarray(imgs, jnp.float32))),
      lambda imgs: np.asarray(logits(jnp.asarray(imgs, jnp.float32))))
