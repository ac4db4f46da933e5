"""Feature spaces for scoring ScoreVAE reconstructions: a digit classifier or PCA.

The Frechet distance (`metrics.frechet_distance`) and the class kept by a
reconstruction are read in a feature space fitted to the training split:
either the penultimate layer of `DigitFeatureClassifier`, an MLP classifier
trained here, or PCA components. Reconstructions are scored this way in the
distortion-perception comparison of ScoreVAE (Batzolis, Stanczuk, Schonlieb,
https://arxiv.org/abs/2304.12141, 2023) with a Gaussian VAE.

`DigitFeatureClassifier` is not `vdm_jax.metrics.classifier.DigitClassifier`:
that one has GELU layers, a fixed 64-d feature layer and trains on noisy
images with its own stream; this one has SiLU layers, a `feature_dim`-wide
feature layer and trains on clean images through `training.fit`, so its
features (and the recorded ScoreVAE figures) differ.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vdm_jax.score_vae import training


class DigitFeatureClassifier(nn.Module):
  """MLP `[N, ...] -> (logits [N, 10], features [N, feature_dim])`, SiLU layers."""
  feature_dim: int

  @nn.compact
  def __call__(self, x):
    h = x.reshape(x.shape[0], -1)
    h = nn.silu(nn.Dense(256)(h))
    feats = nn.silu(nn.Dense(self.feature_dim)(h))
    return nn.Dense(10)(feats), feats


class FeatureSpace(NamedTuple):
  """`features(x) -> [N, F]`, `classify(x) -> [N]` labels (or None), description."""
  features: Callable[[np.ndarray], np.ndarray]
  classify: Callable[[np.ndarray], np.ndarray] | None
  description: str


def make_feature_space(kind: str, x_train, y_train, *, feature_dim: int,
                       classifier_steps: int, rng) -> FeatureSpace:
  """Fits a feature space to the training images.

  Args:
    kind: 'classifier' (a `DigitFeatureClassifier`, cross entropy with Adam,
      batch 128, lr 1e-3; falls back to 'pca' when `y_train` is None) or 'pca'.
    x_train: `[N, H, W, C]` training images on the scale they will be scored.
    y_train: `[N]` integer labels, or None.
    feature_dim: F.
    classifier_steps: Adam steps of the classifier.
    rng: PRNG key of the classifier's init and batches.

  Returns:
    a `FeatureSpace` (unpacks as `features, classify, description`).
  """
  if kind == "classifier" and y_train is not None:
    net = DigitFeatureClassifier(feature_dim)
    params = jax.jit(net.init)(rng, jnp.asarray(x_train[:1]))  # jitted: not op by op.
    labels = jnp.asarray(y_train)

    def xent(params, key, idx_batch):
      del key
      idx = idx_batch[:, 0].astype(jnp.int32)
      logits, _ = net.apply(params, jnp.asarray(x_train)[idx])
      return optax.softmax_cross_entropy_with_integer_labels(logits, labels[idx])

    ids = np.arange(len(x_train), dtype=np.float32)[:, None]
    params, _, _ = training.fit(xent, params, ids, steps=classifier_steps,
                                batch_size=128, lr=1e-3, rng=rng,
                                name="classifier")
    apply = jax.jit(lambda x: net.apply(params, x))
    return FeatureSpace(
        lambda x: np.asarray(apply(jnp.asarray(x))[1]),
        lambda x: np.asarray(jnp.argmax(apply(jnp.asarray(x))[0], -1)),
        f"penultimate layer ({feature_dim} units) of an MLP classifier "
        "trained on the training split")
  if kind not in ("classifier", "pca"):
    raise ValueError(f"features must be 'classifier' or 'pca', got {kind!r}.")
  from sklearn.decomposition import PCA  # pylint: disable=g-import-not-at-top
  pca = PCA(feature_dim).fit(x_train.reshape(len(x_train), -1))
  return FeatureSpace(
      lambda x: pca.transform(np.asarray(x).reshape(len(x), -1)), None,
      f"{feature_dim} PCA components of the training split")
