"""`launch.py --mode=compress|decompress`: the codec on a trained checkpoint.

  python launch.py --config=configs/vdm_digits.py --workdir=RUN --mode=compress \\
      --input=IMAGES --output=FILE
  python launch.py --config=configs/vdm_digits.py --workdir=RUN --mode=decompress \\
      --input=FILE --output=OUT.npy

IMAGES is a .npy of uint8 images [N, H, W(, C)] or PNG file(s) (a file, a
directory, a glob or a comma-separated list), all coded as one stream. The
decompressed images are written to OUT.npy and as PNGs in the directory OUT/.
T and the latent precision come from ``config.compression``.
"""

from __future__ import annotations

import os

import numpy as np
from absl import logging

from vdm_jax.compression import codec
from vdm_jax.compression import container
from vdm_jax.compression import image_io


def load_model(config, workdir):
  """(eps_fn, gamma_fn, vocab_size, params_hash) of the latest EMA checkpoint."""
  import jax  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top

  vdm, params, step = train.load_params(config, workdir)
  logging.info("compression: using the EMA parameters of step %d in %s", step, workdir)
  return (jax.jit(vdm.eps_fn(params)), jax.jit(vdm.gamma_fn(params)), vdm.vocab_size,
          container.hash_params(params))


def run(mode: str, config, workdir: str, input_path: str, output_path: str, *,
        model=None) -> dict:
  """Compress images to a file, or decompress a file to images.

  Args:
    mode: 'compress' or 'decompress'.
    config: the experiment config (uses ``config.compression.num_steps`` and
      ``config.compression.latent_precision``).
    workdir: the run directory holding the checkpoint.
    input_path: images (compress) or a compressed file (decompress).
    output_path: the compressed file (compress) or a .npy path (decompress).
    model: optional ``(eps_fn, gamma_fn, vocab_size, params_hash)`` instead of
      loading the checkpoint from `workdir`.

  Returns:
    a dict of what was done, printed by the launcher.
  """
  eps_fn, gamma_fn, vocab_size, params_hash = model or load_model(config, workdir)
  kw = dict(eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size, params_hash=params_hash)
  if mode == "compress":
    images = image_io.read_images(input_path)
    if images.max() >= vocab_size:
      raise ValueError(f"{input_path!r}: pixel values must be < vocab_size={vocab_size} for "
                       f"this model, got a maximum of {images.max()}.")
    precision = int(config.compression.latent_precision)
    if precision > 6:
      logging.warning("config.compression.latent_precision=%d: grids finer than 2**6 bins per "
                      "std cost more than they save (see vdm_jax.compression.codec).", precision)
    n = codec.compress_file(images, output_path, num_steps=int(config.compression.num_steps),
                            latent_precision=precision, **kw)
    return {"output": output_path, "images": images.shape[0], "bytes": n,
            "bits_per_dim": 8.0 * n / images.size}
  if mode == "decompress":
    images = codec.decompress_file(input_path, **kw)
    if images.ndim == 3:
      images = images[..., None]
    out = output_path if output_path.endswith(".npy") else output_path + ".npy"
    image_io.write_images(images, out)
    png_dir = os.path.splitext(out)[0]
    if images.ndim == 4 and images.shape[-1] in (1, 3, 4) and images.dtype == np.uint8:
      image_io.write_images(images, png_dir)
    return {"output": out, "png_dir": png_dir, "images": images.shape[0]}
  raise ValueError(f"mode must be 'compress' or 'decompress', got {mode!r}.")
