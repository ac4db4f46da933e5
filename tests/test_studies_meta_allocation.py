"""Mixed-linear-regression risk formula vs Monte Carlo; allocation optimum."""

import numpy as np
import pytest
import jax

from vdm_jax.studies import meta_allocation as ma


@pytest.mark.parametrize("n,t", [(2, 6), (4, 3), (12, 4), (30, 2)])
def test_risk_formula_matches_monte_carlo(n, t):
  prob = ma.MLRProblem(d=8, w0_norm2=1.0, r2=0.5, sigma2=0.25)
  mc, se = ma.monte_carlo_risk(jax.random.key(n * 100 + t), prob, n, t,
                               n_reps=1000)
  exact = ma.risk(prob, n, t)
  assert abs(mc - exact) < 4 * se + 1e-3, (mc, exact, se)


def test_noise_free_at_threshold_is_finite_and_exact():
  prob = ma.MLRProblem(d=5, w0_norm2=1.0, r2=0.5, sigma2=0.0)
  for n in (4, 5, 6):
    mc, se = ma.monte_carlo_risk(jax.random.key(n), prob, n, 3, n_reps=1000)
    assert abs(mc - ma.risk(prob, n, 3)) < 4 * se + 1e-3
  assert ma.risk(ma.MLRProblem(d=5), 5, 3) == float("inf")


def test_optimum_converges_to_constant_near_threshold():
  prob = ma.MLRProblem(d=10, w0_norm2=1.0, r2=0.5, sigma2=0.25)
  star = ma.asymptotic_optimum(prob)
  assert 11 < star < 20
  big = [ma.optimal_labels_per_task(prob, b) for b in (20000, 40000)]
  assert all(abs(n - star) <= 1.5 for n in big), (big, star)
  # The exact large-n branch is minimised at n* for any budget (B-free).
  ns = np.arange(12, 60)
  r = [(ma.risk(prob, n, 1) - prob.r2 - prob.sigma2) * n for n in ns]  # B x excess.
  assert abs(ns[int(np.argmin(r))] - star) <= 1


def test_bad_inputs():
  with pytest.raises(ValueError, match="d must be"):
    ma.risk(ma.MLRProblem(d=0), 3, 2)
  with pytest.raises(ValueError, match="n_tasks"):
    ma.risk(ma.MLRProblem(d=3), 3, 0)
  with pytest.raises(ValueError, match="x must be"):
    ma.meta_estimate(np.zeros((2, 3)), np.zeros((2, 3)))
