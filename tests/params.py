"""Parameter helpers shared by the network tests."""

import jax


def perturb(params, seed: int = 1, scale: float = 0.1):
  """Adds scale * N(0, 1) to every leaf, so zero- or identity-initialised
  layers (zero convs, identity couplings, zero conditioning projections) are
  live in tests of inversion, log-determinants and conditioning."""
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(
      tree, [p + scale * jax.random.normal(k, p.shape)
             for p, k in zip(leaves, keys)])
