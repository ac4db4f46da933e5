"""Lossless compression with a VDM (bits-back ANS) against PNG, WebP, zlib and lzma.

On the digits test split (297 images, 8x8, 17 grey levels) coded as one stream,
reports bits per dimension of

  (a) the model's discrete-time negative ELBO with the codec's T (mean over
      several Monte Carlo draws, with its standard error),
  (b) the actual compressed file (header included), and its ANS payload alone,
  (c) PNG and WebP lossless (Pillow) of the same pixels, both per image and as one
      mosaic image, zlib (level 9) and lzma (preset 9e) of the raw pixel bytes,

plus encode and decode seconds per image, and checks that decoding is exact.
The model is a small MLP VDM trained here on the digits train split for the
codec's T (``vdm_jax.compression.toy_model``), unless ``--workdir`` points at a
checkpoint trained with ``launch.py`` (then ``--config`` describes it). A CIFAR-10
row is added when ``--cifar_workdir`` holds a checkpoint and its tfds data are
prepared; otherwise it is reported as skipped.

  python -m benchmarks.compression                      # ~2-4 min on 2 CPU cores
  python -m benchmarks.compression --quick              # smoke run, < 1 min
  python -m benchmarks.compression --precisions=2,3,4   # latent-precision sweep
  python -m benchmarks.compression --network=unet --train_steps=1000 --precisions=1

Writes ``results/compression/compression.json``, ``.md`` and a bar chart PNG.

Reference: Kingma, Salimans, Poole, Ho, Variational Diffusion Models,
https://arxiv.org/abs/2107.00630, 2021 (§6.3, Table 2).
"""

from __future__ import annotations

import argparse
import io
import json
import lzma
import os
import time
import zlib

import jax  # noqa: E402  pylint: disable=g-import-not-at-top,wrong-import-position
import jax.numpy as jnp  # noqa: E402  pylint: disable=wrong-import-position
import numpy as np  # noqa: E402  pylint: disable=wrong-import-position

from vdm_jax import compression  # noqa: E402  pylint: disable=wrong-import-position
from vdm_jax.compression import elbo  # noqa: E402  pylint: disable=wrong-import-position
from vdm_jax.compression import toy_model  # noqa: E402  pylint: disable=wrong-import-position
from vdm_jax.data import DIGITS_VOCAB_SIZE  # noqa: E402  pylint: disable=wrong-import-position
from vdm_jax.data import digits_arrays  # noqa: E402  pylint: disable=wrong-import-position

_ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _mosaic(images):
  """[N, H, W, C] -> one [rows*H, cols*W, C] image (no padding)."""
  n, h, w, c = images.shape
  cols = int(np.ceil(np.sqrt(n)))
  rows = int(np.ceil(n / cols))
  canvas = np.zeros((rows * h, cols * w, c), np.uint8)
  for k, im in enumerate(images):
    r, q = divmod(k, cols)
    canvas[r * h:(r + 1) * h, q * w:(q + 1) * w] = im
  return canvas


def _pil_bytes(image, fmt):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  arr = image[..., 0] if image.shape[-1] == 1 else image
  buf = io.BytesIO()
  if fmt == "PNG":
    Image.fromarray(arr).save(buf, format="PNG", optimize=True)
  else:
    Image.fromarray(arr).save(buf, format="WEBP", lossless=True, quality=100, method=6)
  return len(buf.getvalue())


def classical_baselines(images):
  """Bits/dim of PNG, WebP lossless, zlib and lzma on the same uint8 pixels."""
  dims = images.size
  raw = np.ascontiguousarray(images).tobytes()
  mosaic = _mosaic(images)
  return {
      "png_per_image": 8 * sum(_pil_bytes(im, "PNG") for im in images) / dims,
      "png_mosaic": 8 * _pil_bytes(mosaic, "PNG") / dims,
      "webp_lossless_per_image": 8 * sum(_pil_bytes(im, "WEBP") for im in images) / dims,
      "webp_lossless_mosaic": 8 * _pil_bytes(mosaic, "WEBP") / dims,
      "zlib_9": 8 * len(zlib.compress(raw, 9)) / dims,
      "lzma_9e": 8 * len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME)) / dims,
  }


def nelbo_bpd(images, *, eps_fn, gamma_fn, vocab_size, num_steps, draws, batch=100):
  """Mean and standard error over `draws` of the T-step -ELBO in bits/dim."""
  x = jnp.asarray(images, jnp.int32)
  dim = int(np.prod(images.shape[1:]))
  fn = jax.jit(lambda key, xb: elbo.discrete_time_nelbo(
      key, xb, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size,
      num_steps=num_steps).total)
  values = []
  for d in range(draws):
    nats = [fn(jax.random.fold_in(jax.random.key(1234), d * 1000 + k), x[k:k + batch])
            for k in range(0, x.shape[0], batch)]
    values.append(float(jnp.concatenate(nats).mean()) / (dim * np.log(2)))
  values = np.asarray(values)
  return float(values.mean()), float(values.std(ddof=1) / np.sqrt(draws)) if draws > 1 else 0.0


def code(images, *, eps_fn, gamma_fn, vocab_size, params_hash, num_steps, precision, decode=True):
  """Encode (and decode) one stream; sizes in bits/dim and seconds per image."""
  kw = dict(eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size, params_hash=params_hash)
  # Compile the network call outside the timed region (the codec uses batch 1).
  jax.block_until_ready(eps_fn(jnp.zeros((1,) + images.shape[1:], jnp.float32),
                               jnp.zeros((1,), jnp.float32)))
  t0 = time.perf_counter()
  data = compression.encode(images, num_steps=num_steps, latent_precision=precision, **kw)
  t_enc = time.perf_counter() - t0
  header = compression.read_header(data)
  row = {
      "latent_precision": precision,
      "file_bpd": 8 * len(data) / images.size,
      "payload_bpd": 32 * header.num_payload_words / images.size,
      "file_bytes": len(data),
      "encode_s_per_image": t_enc / len(images),
  }
  if decode:
    t0 = time.perf_counter()
    out = compression.decode(data, **kw)
    row["decode_s_per_image"] = (time.perf_counter() - t0) / len(images)
    row["exact"] = bool(np.array_equal(out, images))
  return row


def stream_length_rows(images, *, eps_fn, gamma_fn, vocab_size, params_hash, num_steps,
                       precision, lengths, nelbo_fn):
  """File size per image for growing prefixes of one stream, and the marginal rate.

  The one-off costs (header, funding images, initial bits) are shared by the
  stream, so the file rate tends to the -ELBO as the stream grows; the marginal
  rate (size(N) - size(N0)) / ((N - N0) D) of the images added excludes them.
  """
  kw = dict(eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab_size, params_hash=params_hash,
            num_steps=num_steps, latent_precision=precision)
  dim = int(np.prod(images.shape[1:]))
  sizes = {n: 8 * len(compression.encode(images[:n], **kw)) for n in lengths}
  rows = [{"images": n, "file_bpd": sizes[n] / (n * dim), "nelbo_bpd": nelbo_fn(images[:n])}
          for n in lengths]
  n0, n1 = lengths[0], lengths[-1]
  marginal = {"from_images": n0, "to_images": n1,
              "marginal_bpd": (sizes[n1] - sizes[n0]) / ((n1 - n0) * dim),
              "nelbo_bpd_of_added_images": nelbo_fn(images[n0:n1])}
  return rows, marginal


def _digits_model(args, x_train):
  if args.workdir:
    import importlib.util  # pylint: disable=g-import-not-at-top
    spec = importlib.util.spec_from_file_location("cfg", args.config)
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    from vdm_jax.compression import cli  # pylint: disable=g-import-not-at-top
    eps_fn, gamma_fn, _, params_hash = cli.load_model(cfg.get_config(), args.workdir)
    return eps_fn, gamma_fn, params_hash, {"model": f"checkpoint in {args.workdir}"}
  t0 = time.perf_counter()
  model = toy_model.train_toy_vdm(x_train, vocab_size=DIGITS_VOCAB_SIZE, num_steps=args.num_steps,
                                  train_steps=args.train_steps, hidden=args.hidden,
                                  seed=args.seed, network=args.network, unet_ch=args.unet_ch,
                                  learning_rate=args.learning_rate)
  arch = (f"MLP {tuple(args.hidden)}" if args.network == "mlp" else
          f"UNet (ch {args.unet_ch}, 2 blocks)")
  info = {"model": f"toy {arch} VDM, {args.train_steps} Adam steps on digits "
                   f"train, T={args.num_steps}",
          "train_seconds": time.perf_counter() - t0}
  return model.eps_fn, model.gamma_fn, compression.hash_params(model.params), info


def _cifar_row(args):
  if not args.cifar_workdir:
    return {"skipped": "no --cifar_workdir checkpoint given"}
  try:
    import importlib.util  # pylint: disable=g-import-not-at-top
    spec = importlib.util.spec_from_file_location("cfg", args.cifar_config)
    cfg = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cfg)
    config = cfg.get_config()
    from vdm_jax import data  # pylint: disable=g-import-not-at-top
    from vdm_jax.compression import cli  # pylint: disable=g-import-not-at-top
    source = data.make_source(config, "test")
    images, _ = source.get(np.arange(min(args.cifar_images, len(source))))
    eps_fn, gamma_fn, vocab, params_hash = cli.load_model(config, args.cifar_workdir)
  except (FileNotFoundError, ImportError, ValueError) as e:
    return {"skipped": f"{type(e).__name__}: {e}"}
  row = {"images": int(images.shape[0])}
  mean, se = nelbo_bpd(images, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab,
                       num_steps=args.num_steps, draws=2, batch=16)
  row.update(nelbo_bpd=mean, nelbo_bpd_se=se)
  row.update(code(images, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=vocab,
                  params_hash=params_hash, num_steps=args.num_steps,
                  precision=args.precisions[0]))
  row.update(classical_baselines(images))
  return row


def _table(result):
  d = result["digits"]
  main = d["codec"][0]
  lines = [
      f"Digits test split: {d['images']} images of 8x8, V=17, one stream; T={d['num_steps']}; "
      f"{d['model']}.",
      "",
      "| method | bits/dim | vs -ELBO |",
      "|---|---|---|",
      f"| (a) discrete-time -ELBO, T={d['num_steps']} | {d['nelbo_bpd']:.4f} "
      f"(+-{d['nelbo_bpd_se']:.4f}) | 1.000 |",
  ]
  for row in d["codec"]:
    lines.append(f"| (b) bits-back file, precision {row['latent_precision']} (header incl.) | "
                 f"{row['file_bpd']:.4f} | {row['file_bpd'] / d['nelbo_bpd']:.3f} |")
    lines.append(f"| (b) ANS payload only, precision {row['latent_precision']} | "
                 f"{row['payload_bpd']:.4f} | {row['payload_bpd'] / d['nelbo_bpd']:.3f} |")
  for name, value in d["baselines"].items():
    lines.append(f"| (c) {name} | {value:.4f} | {value / d['nelbo_bpd']:.3f} |")
  lines += ["", f"Stream length (precision {main['latent_precision']}): the one-off costs "
            "are amortised.", "", "| images in stream | file bits/dim | -ELBO bits/dim | ratio |",
            "|---|---|---|---|"]
  for row in d["stream_length"]:
    lines.append(f"| {row['images']} | {row['file_bpd']:.4f} | {row['nelbo_bpd']:.4f} | "
                 f"{row['file_bpd'] / row['nelbo_bpd']:.3f} |")
  m = d["marginal"]
  lines.append(f"| marginal, images {m['from_images']}..{m['to_images']} | "
               f"{m['marginal_bpd']:.4f} | {m['nelbo_bpd_of_added_images']:.4f} | "
               f"{m['marginal_bpd'] / m['nelbo_bpd_of_added_images']:.3f} |")
  lines += [
      "",
      f"Encode {main['encode_s_per_image'] * 1e3:.1f} ms/image, decode "
      f"{main.get('decode_s_per_image', float('nan')) * 1e3:.1f} ms/image "
      f"(precision {main['latent_precision']}); exact decode: {main.get('exact')}.",
      f"CIFAR-10: {result['cifar10'].get('skipped') or result['cifar10']}",
  ]
  return "\n".join(lines)


def _figure(result, path):
  try:
    import matplotlib  # pylint: disable=g-import-not-at-top
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
  except ImportError:
    return None
  d = result["digits"]
  names = ["-ELBO", "bits-back file"] + list(d["baselines"])
  values = [d["nelbo_bpd"], d["codec"][0]["file_bpd"]] + list(d["baselines"].values())
  fig, ax = plt.subplots(figsize=(8, 3.5))
  ax.barh(names[::-1], values[::-1], color=["C0"] * len(d["baselines"]) + ["C2", "C1"])
  ax.set_xlabel("bits / dim (digits test, lower is better)")
  fig.tight_layout()
  fig.savefig(path, dpi=120)
  plt.close(fig)
  return path


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  p.add_argument("--num_steps", type=int, default=50, help="T of the chain (and of training)")
  p.add_argument("--precisions", default="1,0,2,3", help="comma-separated latent precisions; the "
                 "first is decoded and timed, the rest are encoded only")
  p.add_argument("--train_steps", type=int, default=1500)
  p.add_argument("--learning_rate", type=float, default=3e-3)
  p.add_argument("--network", default="mlp", choices=("mlp", "unet"),
                 help="toy model: MLP (fast) or a small UNet (better, ~10x slower)")
  p.add_argument("--hidden", default="256,256")
  p.add_argument("--unet_ch", type=int, default=32)
  p.add_argument("--num_images", type=int, default=0, help="0: the whole test split (297)")
  p.add_argument("--elbo_draws", type=int, default=8)
  p.add_argument("--seed", type=int, default=0)
  p.add_argument("--workdir", default="", help="use this launch.py checkpoint instead")
  p.add_argument("--config", default=os.path.join(_ROOT, "configs", "vdm_digits.py"))
  p.add_argument("--cifar_workdir", default="")
  p.add_argument("--cifar_config", default=os.path.join(_ROOT, "configs", "vdm_cifar10.py"))
  p.add_argument("--cifar_images", type=int, default=100)
  p.add_argument("--out", default=os.path.join(_ROOT, "results", "compression"))
  p.add_argument("--quick", action="store_true", help="T=10, 200 train steps, 100 images")
  args = p.parse_args(argv)
  args.hidden = tuple(int(h) for h in args.hidden.split(","))
  args.precisions = [int(v) for v in args.precisions.split(",")]
  if args.quick:
    args.num_steps, args.train_steps, args.num_images, args.elbo_draws = 10, 200, 100, 2
  os.makedirs(args.out, exist_ok=True)

  x_train, _ = digits_arrays("train")
  x_test, _ = digits_arrays("test")
  if args.num_images:
    x_test = x_test[:args.num_images]
  eps_fn, gamma_fn, params_hash, info = _digits_model(args, x_train)
  mean, se = nelbo_bpd(x_test, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=DIGITS_VOCAB_SIZE,
                       num_steps=args.num_steps, draws=args.elbo_draws)
  rows = [code(x_test, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=DIGITS_VOCAB_SIZE,
               params_hash=params_hash, num_steps=args.num_steps, precision=prec,
               decode=k == 0)
          for k, prec in enumerate(args.precisions)]
  n = x_test.shape[0]
  lengths = sorted({max(1, n // 8), max(1, n // 3), n})
  nelbo_fn = lambda x: nelbo_bpd(x, eps_fn=eps_fn, gamma_fn=gamma_fn,
                                 vocab_size=DIGITS_VOCAB_SIZE, num_steps=args.num_steps,
                                 draws=args.elbo_draws)[0]
  stream, marginal = stream_length_rows(
      x_test, eps_fn=eps_fn, gamma_fn=gamma_fn, vocab_size=DIGITS_VOCAB_SIZE,
      params_hash=params_hash, num_steps=args.num_steps, precision=args.precisions[0],
      lengths=lengths, nelbo_fn=nelbo_fn)
  result = {
      "digits": dict(info, images=int(n), num_steps=args.num_steps,
                     nelbo_bpd=mean, nelbo_bpd_se=se, codec=rows,
                     baselines=classical_baselines(x_test), stream_length=stream,
                     marginal=marginal),
      "cifar10": _cifar_row(args),
      "platform": jax.devices()[0].platform,
  }
  table = _table(result)
  with open(os.path.join(args.out, "compression.json"), "w") as fh:
    json.dump(result, fh, indent=2)
  with open(os.path.join(args.out, "compression.md"), "w") as fh:
    fh.write(table + "\n")
  _figure(result, os.path.join(args.out, "compression.png"))
  print(table)
  return result


if __name__ == "__main__":
  main()
