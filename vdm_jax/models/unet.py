"""The score UNet of VDM, with optional down-sampling levels and conditioning.

With ``ch_mult=(1,)`` (the default) this is the VDM reference architecture: no
down-sampling, `n_blocks` ResNet blocks down, a ResBlock-Attention-ResBlock
middle, `n_blocks + 1` blocks up on concatenated skips, GroupNorm-swish-conv out
(zero initialised). Longer `ch_mult` adds resolution levels (DDPM-style), which
is cheaper for large images.

Conditioning enters through one embedding vector added in every ResNet block:
the sinusoidal embedding of the scalar `t_in` (VDM feeds (gamma - gamma_min) /
(gamma_max - gamma_min), *not* t), plus an optional class embedding (index
`num_classes` is the "no label" token used by classifier-free guidance). Extra
image-shaped conditions `y` (super-resolution input, masked image, edge map)
are concatenated to the input channels.

Reference: Kingma et al., Variational Diffusion Models,
https://arxiv.org/abs/2107.00630 (App. B, C); Ho et al. DDPM,
https://arxiv.org/abs/2006.11239 (levels).
"""

from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax.numpy as jnp

from vdm_jax import _checks
from vdm_jax.models.attention import attention
from vdm_jax.models.layers import AttnBlock
from vdm_jax.models.layers import ResnetBlock
from vdm_jax.models.layers import fourier_features
from vdm_jax.models.layers import num_groups
from vdm_jax.models.layers import timestep_embedding


class UNet(nn.Module):
  """Image score network ``apply(params, z, t_in, y=None, label=None, train=False)``.

  Args (call):
    z: `[B, H, W, C]` noisy image (float32 or bfloat16).
    t_in: `[B]` or scalar conditioning value, typically in [0, 1].
    y: optional `[B, H, W, Cy]` image condition, concatenated to the input.
    label: optional `[B]` int class labels in [0, num_classes]; num_classes = null.
    train: enables dropout (needs a 'dropout' rng).

  `attention_fn` is the core of every attention block, `(q, k, v) -> out` on
  `[B, L, C]` arrays (default `vdm_jax.models.attention.attention`).

  Returns:
    `[B, H, W, out_channels or C]` float32.
  """
  ch: int = 128
  n_blocks: int = 32
  ch_mult: Sequence[int] = (1,)
  attn_in_blocks: bool = False
  attn_resolutions: Sequence[int] = ()
  dropout: float = 0.1
  fourier_exponents: Sequence[int] = (7, 8)
  out_channels: int | None = None
  num_classes: int = 0
  dtype: jnp.dtype = jnp.float32
  attention_fn: Callable = attention

  @nn.compact
  def __call__(self, z, t_in, y=None, label=None, train: bool = False):
    _checks.check_rank(z, 4, "UNet input z [B, H, W, C]")
    _checks.check_floating(z, "z")
    b, hgt, wdt, c = z.shape
    factor = 2 ** (len(self.ch_mult) - 1)
    if hgt % factor or wdt % factor:
      raise ValueError(
          f"UNet: image size {hgt}x{wdt} must be divisible by 2^(levels-1) = "
          f"{factor} for ch_mult={tuple(self.ch_mult)}.")
    t_in = jnp.broadcast_to(jnp.asarray(t_in, jnp.float32), (b,))
    emb_dim = self.ch * 4
    cond = timestep_embedding(t_in, self.ch)
    if self.num_classes:
      if label is None:
        raise ValueError("UNet: num_classes > 0 needs `label` ([B] ints; "
                         f"{self.num_classes} means 'no label').")
      _checks.check_rank(label, 1, "label")
      cond = cond + nn.Embed(self.num_classes + 1, self.ch, name="label_emb")(label)
    elif label is not None:
      raise ValueError("UNet: got `label` but the network has num_classes=0.")
    cond = nn.swish(nn.Dense(emb_dim, name="cond_dense0")(cond))
    cond = nn.swish(nn.Dense(emb_dim, name="cond_dense1")(cond)).astype(self.dtype)

    h = [z]
    if self.fourier_exponents:
      h.append(fourier_features(z.astype(jnp.float32), self.fourier_exponents))
    if y is not None:
      _checks.check_rank(y, 4, "UNet condition y [B, H, W, Cy]")
      if y.shape[:3] != z.shape[:3]:
        raise ValueError(f"UNet: y has shape {y.shape}, expected [B, H, W] = "
                         f"{z.shape[:3]} to match z (resize y first).")
      h.append(y)
    h = jnp.concatenate([v.astype(self.dtype) for v in h], axis=-1)
    h = nn.Conv(self.ch, (3, 3), dtype=self.dtype, name="conv_in")(h)

    def block(h, out_ch):
      h = ResnetBlock(out_ch, self.dropout, self.dtype)(h, cond, train)
      if self.attn_in_blocks or h.shape[1] in self.attn_resolutions:
        h = AttnBlock(self.dtype, self.attention_fn)(h)
      return h

    skips = [h]
    for level, mult in enumerate(self.ch_mult):
      for _ in range(self.n_blocks):
        h = block(h, self.ch * mult)
        skips.append(h)
      if level != len(self.ch_mult) - 1:
        h = nn.Conv(h.shape[-1], (3, 3), strides=(2, 2), dtype=self.dtype)(h)
        skips.append(h)

    h = ResnetBlock(None, self.dropout, self.dtype)(h, cond, train)
    h = AttnBlock(self.dtype, self.attention_fn)(h)
    h = ResnetBlock(None, self.dropout, self.dtype)(h, cond, train)

    for level, mult in reversed(list(enumerate(self.ch_mult))):
      for _ in range(self.n_blocks + 1):
        h = block(jnp.concatenate([h, skips.pop()], axis=-1), self.ch * mult)
      if level != 0:
        bb, hh, ww, cc = h.shape
        h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
        h = nn.Conv(cc, (3, 3), dtype=self.dtype)(h)
    assert not skips

    h = nn.swish(nn.GroupNorm(num_groups=num_groups(h.shape[-1]), dtype=self.dtype)(h))
    out = nn.Conv(self.out_channels or c, (3, 3), kernel_init=nn.initializers.zeros,
                  dtype=self.dtype, name="conv_out")(h)
    return out.astype(jnp.float32)
