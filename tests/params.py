"""Parameter helpers shared by the network tests."""

import jax
import numpy as np


def perturb(params, seed: int = 1, scale: float = 0.1):
  """Adds scale * N(0, 1) to every leaf, so zero- or identity-initialised
  layers (zero convs, identity couplings, zero conditioning projections) are
  live in tests of inversion, log-determinants and conditioning.

  One normal draw of the total size, cut into the leaves in numpy: a draw per
  leaf compiled a sampler per leaf shape (7 s of CPU for a 74-leaf flow)."""
  leaves, tree = jax.tree.flatten(params)
  sizes = [int(np.size(p)) for p in leaves]
  noise = np.asarray(jax.random.normal(jax.random.key(seed), (sum(sizes),)))
  out, start = [], 0
  for p, n in zip(leaves, sizes):
    p = np.asarray(p)
    out.append(jax.numpy.asarray(
        p + (scale * noise[start:start + n]).reshape(p.shape).astype(p.dtype)))
    start += n
  return jax.tree.unflatten(tree, out)
