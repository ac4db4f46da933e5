"""Riemannian autoencoder on high-dimensional deformed Gaussians and the digits.

For each data set trains an isometry-regularised anisotropic RealNVP with that
set's own hyperparameters (``per_dataset`` below, applied by
`dataset_config`), applies the epsilon rule (eps = 0.1 everywhere, the paper's
value, Diepeveen et al. 2024) to the learned variances a and reports the
chosen dimension against the true k, the reconstruction error and its bound. With
``digits=True`` it does the same on the 64-D bundled digits (no ground truth).

  python launch.py --config=configs/pullback_rae.py --workdir=results/pullback_geometry
  python launch.py --config=configs/pullback_rae.py:quick --workdir=/tmp/pullback_quick

Data sets (Diepeveen et al. 2024). Sinusoid(k, D) is a family (a
k-dimensional Gaussian bent into R^D by sines, known phi): Sinusoid(1, 3),
Sinusoid(2, 3) and Sinusoid(1, 100) are the paper's, Sinusoid(2, 10) is ours
(a k >= 2 set between D = 3 and D = 100). Hemisphere(5, 20) is the paper's
k = 5 set; it is not a deformed Gaussian (no ground-truth phi).

Why per-set settings (what the diagnosis found, 2000 steps, eps = 0.1):

* The isometry weight fixes the gauge between phi and A (the NLL is invariant
  under z_i -> c z_i, a_i -> c^2 a_i). On Sinusoid(1, 100) the curve's
  tangent is stretched ~10x by the true shear and ||J^T J - I||_F^2 charges a
  stretch quartically but a collapse at most 1 per direction, so with
  expanding-or-contracting ('tanh') couplings the flow collapses the
  on-manifold axis (a_1 = 0.10 at lambda_iso = 0.5, 0.015 at 0.1) until the
  99 noise axes (1e-3 each) outweigh it: 82-88 dimensions kept. The paper's
  contracting couplings (s = sigmoid(h + 2) + 1e-3, ``scale_type='sigmoid'``)
  cannot hide a collapse behind an expansion elsewhere, so lambda_vol
  |log det| charges it: a_1 = 1.9, dimension 1. A larger lambda_iso (2, the
  paper's) also gives 1 but folds the curve into a second axis (a_2 = 0.06)
  and the reconstruction error grows from 0.6 to 31 (diagnostic runs).
* On curved k >= 2 surfaces the isometry term fights the flattening (a curved
  surface has no isometric chart): at lambda_iso = 0.5 Sinusoid(2, 10) keeps
  a third axis (a_3 = 0.87, unchanged after 4000 steps) while the noise axes
  are already at 1e-3; at lambda_iso = 0.1 a_3 falls to 1.7e-3 and the
  dimension is 2. The paper's lambda_iso = 5 with its 'length' estimator (a
  weaker, lengths-only penalty) also flattens Sinusoid(2, 3) (a_3 = 7e-4)
  and Sinusoid(2, 10) (eps_eff 0.003, but err^2 0.23 against 0.03), so
  Sinusoid(2, 3) keeps the paper's setting and Sinusoid(2, 10) uses the
  Frobenius term at lambda_iso = 0.1.
* The paper's lr 3e-4 / batch 64 is tuned for ~1000 epochs of 100k points; in
  2000 steps it under-fits (Sinusoid(1, 3): noise a = 0.11 instead of 1e-3,
  eps_eff 0.087), so lr 1e-3 / batch 128 throughout. The paper's 16 steps on
  Sinusoid(1, 100) were worse in this budget (a_1 = 1.36, 8 dimensions) and
  twice as slow, so 8. The exact Jacobian on D = 100 and D = 20 (paper) is
  replaced by the unbiased Hutchinson estimate of the same Frobenius term
  (on Hemisphere(5, 20) the paper's exact 12-step setting gave the same a).
  The paper's 'length' estimator is kept where it is the paper's choice
  (Sinusoid(1, 3), (2, 3)); with 4 random probes in D = 100 it hardly sees the
  curve's tangent and fails there (29 dimensions).
* Hemisphere(5, 20): its on-manifold variances decay geometrically (theta_1
  ~ (pi/2) Beta(5, 5), products of sines): even the ideal chart, normal
  coordinates at the mean, has variances 0.33 / 0.17 / 0.084 / 0.042 / 0.026,
  so the eps = 0.1 rule keeps 4 of the 5 axes. The learned a_i are exactly 5
  non-vanishing ones followed by ~0 (the paper's reading, "exactly 5
  non-vanishing a_i"), but less balanced than the ideal chart, so the eps
  rule keeps 3. The table adds the largest-log-gap dimension
  (`rae.choose_dimension_by_gap`, not the paper's rule), which reads 5.

epsilon is never tuned per set (0.1 everywhere). Evaluation uses the EMA
weights (as in Diepeveen et al. 2024; rate 0.995 for a 2000-step run instead
of 0.999).

Measured (default config, ``nice -n 10`` on the 2 shared CPU cores under a
load of ~9-10 from other jobs: 11.5 and 13.2 min wall for the RAE part in two
identical (deterministic) runs, training 57-67 / 57-61 / 101-123 / 127-131 /
83-89 / 112-122 s per set):

| data set | D | k | RAE dim (eps_eff) | ref. dim | gap dim | E err^2 (true phi) | bound L^2 sum a_dropped (L) | top learned a |
|---|---|---|---|---|---|---|---|---|
| Sinusoid(1, 3) | 3 | 1 | **1** (0.0004) | 1 | 1 | 0.017 (0.0017) | 0.20 (9.8) | 5.88, 0.0011, 0.0010 |
| Sinusoid(2, 3) | 3 | 2 | **2** (0.0001) | 2 | 2 | 0.027 (0.0011) | 0.047 (8.1) | 4.46, 3.97, 0.0007 |
| Sinusoid(2, 10) | 10 | 2 | **2** (0.0018) | 2 | 2 | 0.095 (0.0083) | 4.2 (18.1) | 4.51, 2.53, 0.0018, 0.0018 |
| Sinusoid(1, 100) | 100 | 1 | **1** (0.056) | 1 | 1 | 1.42 (0.099) | 331 (51.1) | 2.14, 0.0015, 0.0014 |
| Hemisphere(5, 20) | 20 | 5 | 3 (0.096) | 4 | 5 | 0.062 | 0.25 (2.6) | 0.195, 0.083, 0.068, 0.025, 0.011, 0.0000 |
| digits | 64 | - | 17 (0.099) | - | 45 | 2.0 | 84.6 (9.6) | 1.11, 1.09, 0.88, 0.88, 0.82 |

Every per-example error is below its pointwise bound L_x^2 ||(I - P) phi(x)||^2
(64 test points per set). The reference dimension is the eps rule on the true a
(sinusoids) or on the ideal chart's variances (hemisphere). The RAE recovers k
on every Sinusoid set (the Gaussian-through-a-known-map family, D up to
100); on Hemisphere(5, 20) the eps rule cannot give 5 even with the ideal chart.
Before this config (one shared setting, lambda_iso = 0.5, tanh couplings):
1 / 3 / 82 on Sinusoid(1, 3) / (2, 10) / (1, 100).

Second seed (``--rae_config.seed=1``): 1 / 2 / 2 / 1 on Sinusoid(1, 3) /
(2, 3) / (2, 10) / (1, 100), eps_eff 0.0003 / 0.0001 / 0.0021 / 0.059. The
bound column uses L estimated on 64 test points; with seed 1 the mean error of
Sinusoid(2, 3) over 500 points (0.037) exceeds that estimate's bound (0.032),
while every checked pointwise bound holds. Sinusoid(1, 100) is the tightest
row: its 99 noise axes hold 0.11 of variance, so the eps rule needs a_1 > 1.1
and the learned a_1 is ~2.1 (true 3).
"""

import ml_collections

from configs import default

# Per-data-set overrides of the shared defaults below: {name: {section: {..}}}.
# Paper settings (Diepeveen et al. 2024, authors' configs) quoted in the
# comments; deviations explained in the module docstring.
PER_DATASET = {
    # Paper: 8 steps, lambda_iso 5, lambda_vol 1, 'length' (4 probes).
    "sinusoid_1_3": dict(
        flow=dict(n_steps=8),
        loss=dict(lambda_iso=5.0, lambda_vol=1.0, iso_estimator="length",
                  num_probes=4)),
    # Paper: as Sinusoid(1, 3).
    "sinusoid_2_3": dict(
        flow=dict(n_steps=8),
        loss=dict(lambda_iso=5.0, lambda_vol=1.0, iso_estimator="length",
                  num_probes=4)),
    # Ours (not in the paper): a curved 2-D surface, weak isometry.
    "sinusoid_2_10": dict(
        flow=dict(n_steps=8),
        loss=dict(lambda_iso=0.1, lambda_vol=1.0, iso_estimator="hutchinson",
                  num_probes=2)),
    # Paper: 16 steps, lambda_iso 2, lambda_vol 1, exact Jacobian.
    "sinusoid_1_100": dict(
        flow=dict(n_steps=8, scale_type="sigmoid"),
        loss=dict(lambda_iso=0.5, lambda_vol=1.0, iso_estimator="hutchinson",
                  num_probes=2)),
    # Paper: 8 steps, lambda_iso 1, lambda_vol 1, exact Jacobian (quick run).
    "hemisphere_2_3": dict(
        flow=dict(n_steps=8),
        loss=dict(lambda_iso=1.0, lambda_vol=1.0, iso_estimator="exact")),
    # Paper: 12 steps, lambda_iso 0.75, lambda_vol 1.2, exact Jacobian.
    "hemisphere_5_20": dict(
        flow=dict(n_steps=8),
        loss=dict(lambda_iso=0.75, lambda_vol=1.2, iso_estimator="hutchinson",
                  num_probes=2)),
}


def get_config(arg=None):
  """RAE config; ``arg='quick'`` shrinks it for a smoke run."""
  quick = default.parse_arg(arg)["quick"]
  c = default.base_config("pullback_geometry", seed=0)
  c.parts = ("rae",)
  c.datasets = (("sinusoid_1_3", "sinusoid_2_3", "sinusoid_2_10",
                 "sinusoid_1_100", "hemisphere_5_20")
                if not quick else ("sinusoid_1_3", "hemisphere_2_3"))
  c.num_train = 5000 if not quick else 1000
  c.num_test = 500 if not quick else 200
  c.epsilon = 0.1            # the paper's eval epsilon (Diepeveen et al. 2024), all sets
  c.digits = not quick       # also run the RAE on the 64-D digits
  c.digits_epsilon = 0.1

  # Shared defaults (used as-is by the digits); per_dataset overrides them.
  c.flow = ml_collections.ConfigDict()
  c.flow.n_steps = 8         # paper: 8-24 for the RAE sets
  c.flow.hidden = 64         # paper: ResidualNet, 64 units, 2 blocks
  c.flow.n_blocks = 2
  c.flow.log_scale_bound = 2.0
  c.flow.scale_type = "tanh"
  c.flow.mask_type = "random"   # seeded coordinate splits; see flows.RealNVP

  c.loss = ml_collections.ConfigDict()
  c.loss.lambda_iso = 0.5
  c.loss.lambda_vol = 1.0
  c.loss.learn_a = True
  c.loss.iso_estimator = "hutchinson"   # JVP/VJP probes: scales to D = 100
  c.loss.num_probes = 2

  c.optim = ml_collections.ConfigDict()
  c.optim.lr = 1e-3
  c.optim.log_a_lr_mult = 10.0   # log_a must move by O(5); see make_optimizer
  c.optim.warmup_steps = 200
  c.optim.num_steps = 2000 if not quick else 200
  c.optim.steps_per_call = 100
  c.optim.batch_size = 128
  c.optim.grad_clip = 1.0
  c.optim.weight_decay = 1e-5
  c.optim.ema_rate = 0.995

  c.per_dataset = ml_collections.ConfigDict(PER_DATASET)
  return c


def dataset_config(config: ml_collections.ConfigDict, name: str):
  """The config for one data set: the shared defaults + its overrides.

  Args:
    config: a config from `get_config` (its ``per_dataset`` may have been
      edited on the command line, e.g.
      ``--rae_config.per_dataset.sinusoid_1_100.loss.lambda_iso=2.0``).
    name: the data-set name.

  Returns:
    A new `ml_collections.ConfigDict` with ``flow``, ``loss`` and ``optim``
    updated from ``config.per_dataset[name]`` (unchanged if absent).
  """
  c = config.copy_and_resolve_references()
  overrides = config.get("per_dataset", {}).get(name, {})
  for section, values in overrides.items():
    if section not in ("flow", "loss", "optim"):
      raise ValueError(
          f"per_dataset[{name!r}] may override 'flow', 'loss' or 'optim', "
          f"got {section!r}.")
    for key, value in values.items():
      if key not in c[section]:
        raise ValueError(
            f"per_dataset[{name!r}].{section} has unknown key {key!r}; "
            f"expected one of {sorted(c[section])}.")
      c[section][key] = value
  return c
