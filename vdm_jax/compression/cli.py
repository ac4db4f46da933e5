"""`launch.py --mode=compress|decompress`: the codec on a trained checkpoint.

  python launch.py --config=configs/vdm_digits.py --workdir=RUN --mode=compress \\
      --input=IMAGES --output=FILE
  python launch.py --config=configs/vdm_digits.py --workdir=RUN --mode=decompress \\
      --input=FILE --output=OUT.npy

IMAGES is a .npy of uint8 images [N, H, W(, C)] or PNG file(s) (a file, a
directory, a glob or a comma-separated list), all coded as one stream; they
must have the model's size and channels (``config.data.image_shape``). The
decompressed images are written to OUT.npy and, when they are 8-bit images with
1, 3 or 4 channels, as PNGs ``image_00000.png``, ... in the folder OUT/. T and
the latent precision come from ``config.compression`` and are stored in the file.

Everything that can be checked without the model is checked before the
checkpoint is loaded and before any coding: the config's compression values,
--input, --output (its folder exists; decompress: the PNG folder is absent or
empty; a non-empty one is refused, never merged into), N >= 1 and the image
shape. Outputs are written to temporary names beside their targets and renamed
into place once complete, so an interrupted run leaves the old outputs or the
new ones, never a mix. A checkpoint of another architecture than the config
describes is an error naming the config's architecture and the workdir.

A compressed size above log2(V) bits per dimension (the cost of storing the
pixels raw) is reported by a warning and by ``above_raw_rate`` in the result:
the T-step negative ELBO the bits-back rate tends to grows as T falls
(Kingma et al. 2021, §3.4), and the header and the initial bits are paid once
per file (Townsend et al. 2019), so few images per file cost more.

References:
  Townsend, Bird, Barber, Practical lossless compression with latent variables
  using bits back coding (BB-ANS), https://arxiv.org/abs/1901.04866, 2019.
  Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
  https://arxiv.org/abs/2107.00630, 2021.
"""

from __future__ import annotations

import math
import os
import shutil
import tempfile

import numpy as np
from absl import logging

from vdm_jax.compression import codec
from vdm_jax.compression import container
from vdm_jax.compression import image_io

# config.model fields that fix the parameter shapes, named in architecture errors.
_ARCH_FIELDS = ("schedule", "schedule_features", "ch", "n_blocks", "ch_mult",
                "attn_in_blocks", "fourier_exponents", "class_conditional")


def describe_architecture(config) -> str:
  """The config fields that fix the checkpoint's parameter shapes, as one line."""
  data = config.get("data", {})
  model = config.get("model", {})
  parts = [f"config.data.{k}={data[k]!r}" for k in ("image_shape", "vocab_size") if k in data]
  parts += [f"config.model.{k}={model[k]!r}" for k in _ARCH_FIELDS if k in model]
  return ", ".join(parts)


def _shape_diffs(expected, got) -> list:
  """'path: config builds X, checkpoint holds Y' for each leaf that differs."""
  import jax  # pylint: disable=g-import-not-at-top

  def shapes(tree):
    return {jax.tree_util.keystr(p): tuple(np.shape(x))
            for p, x in jax.tree_util.tree_flatten_with_path(tree)[0]}

  want, have = shapes(expected), shapes(got)
  diffs = []
  for path in sorted(set(want) | set(have)):
    w, h = want.get(path, "nothing"), have.get(path, "nothing")
    if w != h:
      diffs.append(f"{path}: the config builds {w}, the checkpoint holds {h}")
  return diffs


def load_model(config, workdir):
  """(eps_fn, gamma_fn, vocab_size, params_hash) of the latest EMA checkpoint.

  The model codes images of shape ``config.data.image_shape``.

  Raises:
    vdm_jax.training.CheckpointError: naming the workdir and the config's
      architecture when the checkpoint was trained with another one (other
      parameter names, or the same names with other shapes).
    FileNotFoundError: when the workdir holds no checkpoint.
  """
  import jax  # pylint: disable=g-import-not-at-top
  import jax.numpy as jnp  # pylint: disable=g-import-not-at-top
  from vdm_jax import train  # pylint: disable=g-import-not-at-top
  from vdm_jax import training  # pylint: disable=g-import-not-at-top

  advice = ("Pass the config the run was trained with (and the same --config.* "
            "overrides), or the workdir of a run trained with this config.")
  try:
    vdm, params, step = train.load_params(config, workdir)
  except training.CheckpointError as e:
    raise training.CheckpointError(
        f"--workdir {workdir!r}: its checkpoint was not written for the model this config "
        f"describes ({describe_architecture(config)}). {advice} "
        f"(Restoring said: {str(e)[:600]})") from e
  image_shape = tuple(config.data.image_shape)
  x = jnp.zeros((1,) + image_shape, jnp.int32)
  label = jnp.zeros((1,), jnp.int32) if config.model.class_conditional else None
  expected = jax.eval_shape(lambda: vdm.init(jax.random.key(0), x, label))
  diffs = _shape_diffs(expected, params)
  if diffs:
    more = f" (and {len(diffs) - 3} more)" if len(diffs) > 3 else ""
    raise training.CheckpointError(
        f"--workdir {workdir!r}: its checkpoint of step {step} holds parameters of another "
        f"architecture than this config describes ({describe_architecture(config)}): "
        f"{'; '.join(diffs[:3])}{more}. {advice}")
  logging.info("compression: using the EMA parameters of step %d in %s", step, workdir)
  return (jax.jit(vdm.eps_fn(params)), jax.jit(vdm.gamma_fn(params)), vdm.vocab_size,
          container.hash_params(params))


def _model_image_shape(config, model):
  """(shape, what it is called): from the model spec, else config.data.image_shape."""
  if model is not None and len(model) > 4 and model[4] is not None:
    return tuple(model[4]), "the model's image_shape"
  data = config.get("data", None) if hasattr(config, "get") else None
  if data is not None and "image_shape" in data:
    return tuple(data.image_shape), "config.data.image_shape"
  return None, ""


def _check_compression_config(config) -> None:
  comp = config.compression
  t, p = comp.num_steps, comp.latent_precision
  if isinstance(t, bool) or int(t) != t or not 1 <= t <= container.MAX_NUM_STEPS:
    raise ValueError(f"config.compression.num_steps (T) must be an integer in "
                     f"[1, {container.MAX_NUM_STEPS}], got {t!r}.")
  if isinstance(p, bool) or int(p) != p or not 0 <= p <= container.MAX_LATENT_PRECISION:
    raise ValueError(f"config.compression.latent_precision must be an integer in "
                     f"[0, {container.MAX_LATENT_PRECISION}], got {p!r}.")


def _check_input_file(input_path: str) -> None:
  if not os.path.isfile(input_path):
    got = "a folder" if os.path.isdir(input_path) else "nothing there"
    raise ValueError(f"--input {input_path!r}: expected a compressed file, got {got}.")


def _check_output_file(flag_value: str, path: str, input_path: str) -> None:
  """Raises ValueError unless `path` can be written as a new or replaced file."""
  folder = os.path.dirname(os.path.abspath(path))
  if not os.path.isdir(folder):
    raise ValueError(f"--output {flag_value!r}: expected a path in an existing folder, but "
                     f"the folder {folder!r} does not exist; create it first.")
  if not os.access(folder, os.W_OK | os.X_OK):
    raise ValueError(f"--output {flag_value!r}: expected a writable folder, but "
                     f"{folder!r} is not writable.")
  if os.path.isdir(path):
    raise ValueError(f"--output {flag_value!r}: expected a file name, got the existing "
                     f"folder {path!r}.")
  if os.path.exists(path) and os.path.exists(input_path) and os.path.samefile(path, input_path):
    raise ValueError(f"--output {flag_value!r} is the --input file; write to another path.")


def _check_png_folder(flag_value: str, png_dir: str) -> None:
  """Raises ValueError if `png_dir` exists and is not an empty folder.

  A decode never merges its PNGs into a used folder: PNGs of an earlier, larger
  decode would stay beside the new ones and look like part of the result.
  """
  if not os.path.lexists(png_dir):
    return
  if not os.path.isdir(png_dir) or os.path.islink(png_dir):
    raise ValueError(f"--output {flag_value!r}: the PNGs go to the folder {png_dir!r}, "
                     "which exists and is not a folder; remove it or choose another --output.")
  entries = sorted(os.listdir(png_dir))
  if entries:
    raise ValueError(
        f"--output {flag_value!r}: the PNGs go to the folder {png_dir!r}, expected absent or "
        f"empty, but it holds {len(entries)} entries (e.g. {entries[0]!r}); PNGs of an "
        "earlier decode would stay beside the new ones. Remove the folder or choose "
        "another --output.")


def _check_images(images: np.ndarray, input_path: str, model_shape, shape_name: str) -> None:
  if images.shape[0] == 0:
    raise ValueError(f"--input {input_path!r}: expected at least one image, got 0 "
                     f"(an array of shape {images.shape}).")
  if model_shape is None:
    return
  got = tuple(images.shape[1:])
  want = tuple(model_shape)
  if got == want:
    return
  where = f"{shape_name}={want}"
  if len(got) == len(want) == 3 and got[:2] == want[:2]:
    raise ValueError(
        f"--input {input_path!r}: the model codes images with {want[2]} channel(s) ({where}), "
        f"got {got[2]} channel(s) (images of shape {got}); convert them first (e.g. to grey "
        "levels for a 1-channel model).")
  if len(got) == len(want) == 3:
    raise ValueError(
        f"--input {input_path!r}: the model codes {want[0]}x{want[1]} images ({where}), got "
        f"{got[0]}x{got[1]} (images of shape {got}); resize or crop them first.")
  raise ValueError(f"--input {input_path!r}: the model codes images of shape {want} "
                   f"({where}), got images of shape {got}.")


def _writes_png(header: container.Header) -> bool:
  shape = tuple(header.image_shape)
  return header.vocab_size <= 256 and (
      len(shape) == 2 or (len(shape) == 3 and shape[-1] in (1, 3, 4)))


def _replace_file(path: str, write) -> None:
  """Calls write(file object) on a temporary file beside `path`, then renames it to `path`."""
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", suffix=".tmp", dir=folder)
  try:
    with os.fdopen(fd, "wb") as fh:
      write(fh)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def _write_png_folder(images: np.ndarray, png_dir: str) -> None:
  """Writes the PNGs to a temporary folder beside `png_dir`, then renames it to `png_dir`."""
  folder = os.path.dirname(os.path.abspath(png_dir))
  tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(png_dir)}.", suffix=".tmp", dir=folder)
  try:
    image_io.write_images(images, tmp)
    if os.path.isdir(png_dir):
      os.rmdir(png_dir)  # empty (checked before decoding); rmdir refuses otherwise.
    os.rename(tmp, png_dir)
  except BaseException:
    shutil.rmtree(tmp, ignore_errors=True)
    raise


def run(mode: str, config, workdir: str, input_path: str, output_path: str, *,
        model=None) -> dict:
  """Compress images to a file, or decompress a file to images.

  Args:
    mode: 'compress' or 'decompress'.
    config: the experiment config (uses ``config.compression.num_steps``,
      ``config.compression.latent_precision`` and, when present,
      ``config.data.image_shape``).
    workdir: the run directory holding the checkpoint.
    input_path: images (compress) or a compressed file (decompress).
    output_path: the compressed file (compress) or a .npy path (decompress; the
      PNGs go to the folder of the same name without ``.npy``, which must be
      absent or empty).
    model: optional ``(eps_fn, gamma_fn, vocab_size, params_hash[, image_shape])``
      instead of loading the checkpoint from `workdir`.

  Returns:
    a dict of what was done, printed by the launcher. Compress: output, images,
    bytes, bits_per_dim, raw_bits_per_dim (log2 V) and above_raw_rate.
    Decompress: output, png_dir (None when no PNGs were written) and images.

  Raises:
    ValueError: naming the flag or config field, what was expected and what was
      got, before the checkpoint is loaded where the check allows it.
  """
  if mode not in ("compress", "decompress"):
    raise ValueError(f"mode must be 'compress' or 'decompress', got {mode!r}.")
  model_shape, shape_name = _model_image_shape(config, model)
  if mode == "compress":
    _check_compression_config(config)
    _check_output_file(output_path, output_path, input_path)
    images = image_io.read_images(input_path)
    _check_images(images, input_path, model_shape, shape_name)
    eps_fn, gamma_fn, vocab_size, params_hash = (model or load_model(config, workdir))[:4]
    if images.max() >= vocab_size:
      raise ValueError(f"{input_path!r}: pixel values must be < vocab_size={vocab_size} for "
                       f"this model, got a maximum of {images.max()}.")
    precision = int(config.compression.latent_precision)
    if precision > 6:
      logging.warning("config.compression.latent_precision=%d: grids finer than 2**6 bins per "
                      "std cost more than they save (see vdm_jax.compression.codec).", precision)
    num_steps = int(config.compression.num_steps)
    data = codec.encode(images, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size,
                        params_hash=params_hash, num_steps=num_steps,
                        latent_precision=precision)
    _replace_file(output_path, lambda fh: fh.write(data))
    n = len(data)
    bits_per_dim = 8.0 * n / images.size
    raw = math.log2(vocab_size)
    above = bits_per_dim > raw
    if above:
      logging.warning(
          "compress: %s holds %.3f bits/dim, more than the %.3f bits/dim (log2 of "
          "vocab_size=%d) of the raw pixels. Raise config.compression.num_steps (T=%d; the "
          "T-step bound falls as T grows) or put more images in one file (%d images here; "
          "the %d-byte header and the initial bits are paid once per file).",
          output_path, bits_per_dim, raw, vocab_size, num_steps, images.shape[0],
          container.HEADER_SIZE)
    return {"output": output_path, "images": images.shape[0], "bytes": n,
            "bits_per_dim": bits_per_dim, "raw_bits_per_dim": raw, "above_raw_rate": above}
  # decompress
  out = output_path if output_path.endswith(".npy") else output_path + ".npy"
  png_dir = os.path.splitext(out)[0]
  _check_input_file(input_path)
  with open(input_path, "rb") as fh:
    data = fh.read()
  header = container.unpack(data)[0]
  if model_shape is not None and tuple(header.image_shape) != model_shape:
    raise container.ModelMismatchError(
        f"--input {input_path!r}: the file holds images of image_shape="
        f"{tuple(header.image_shape)}, the model codes {model_shape} ({shape_name}); "
        "decompress with the config (and checkpoint) it was compressed with.")
  _check_output_file(output_path, out, input_path)
  writes_png = _writes_png(header)
  if writes_png:
    _check_png_folder(output_path, png_dir)
  eps_fn, gamma_fn, vocab_size, params_hash = (model or load_model(config, workdir))[:4]
  images = codec.decode(data, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size,
                        params_hash=params_hash, image_shape=model_shape)
  if images.ndim == 3:
    images = images[..., None]
  if writes_png:
    _write_png_folder(images, png_dir)
  _replace_file(out, lambda fh: np.save(fh, images))
  return {"output": out, "png_dir": png_dir if writes_png else None, "images": images.shape[0]}
