"""Drift metrics over bin counts, each against an independent numpy/scipy computation."""

import numpy as np
import pytest
from scipy.spatial.distance import jensenshannon
from scipy.stats import ks_2samp

from transforms.drift import EPSILON, compare, js_distance, ks_from_bins, proportions, psi


def test_psi_matches_the_formula_written_out():
    ref, cur = np.array([50, 30, 20]), np.array([30, 30, 40])
    p, q = ref / ref.sum(), cur / cur.sum()
    expected = sum((qi - pi) * np.log(qi / pi) for pi, qi in zip(p, q, strict=True))
    assert psi(ref, cur) == pytest.approx(expected, rel=1e-12)
    assert psi(ref, ref * 7) == pytest.approx(0.0, abs=1e-15)  # counts, not shares: the scale does not matter


def test_psi_gives_an_empty_bin_epsilon_instead_of_infinity():
    ref, cur = [10, 0, 10], [5, 10, 5]
    p = np.array([0.5, EPSILON, 0.5]) / (1 + EPSILON)
    q = np.array([0.25, 0.5, 0.25])
    assert psi(ref, cur) == pytest.approx(float(np.sum((q - p) * np.log(q / p))), rel=1e-12)
    assert proportions([1, 0, 0, 0]).min() > 0
    # a bin empty on both sides adds nothing
    assert psi([10, 0, 10], [5, 0, 15]) == pytest.approx(psi([10, 10], [5, 15]), rel=1e-3)


def test_js_distance_matches_scipy():
    rng = np.random.default_rng(0)
    for _ in range(20):
        ref, cur = rng.integers(0, 50, 10), rng.integers(0, 50, 10)
        ref[rng.integers(0, 10)] = 0  # empty bins need no epsilon
        assert js_distance(ref, cur) == pytest.approx(jensenshannon(ref, cur, base=2), rel=1e-9)
    assert js_distance([1, 0], [0, 1]) == pytest.approx(1.0)


def test_ks_from_bins_equals_scipy_when_values_sit_on_the_edges():
    rng = np.random.default_rng(1)
    a, b = rng.poisson(3, 2000), rng.poisson(3.4, 1500)
    edges = np.arange(0, max(a.max(), b.max()) + 2)  # one bin per integer: the CDF at every edge is exact
    ca, _ = np.histogram(a, edges)
    cb, _ = np.histogram(b, edges)
    assert ks_from_bins(ca, cb) == pytest.approx(ks_2samp(a, b).statistic, abs=1e-12)


def test_ks_from_decile_bins_is_close_to_scipy_for_continuous_data():
    rng = np.random.default_rng(2)
    ref, cur = rng.normal(0, 1, 5000), rng.normal(0.3, 1, 5000)
    edges = np.quantile(ref, np.linspace(0, 1, 11))
    edges[0], edges[-1] = -np.inf, np.inf
    cr, _ = np.histogram(ref, edges)
    cc, _ = np.histogram(cur, edges)
    exact = ks_2samp(ref, cur).statistic
    assert ks_from_bins(cr, cc) <= exact + 1e-12  # evaluated on the edges only: a lower bound
    assert ks_from_bins(cr, cc) == pytest.approx(exact, abs=0.02)


def test_compare_skips_ks_for_unordered_bins():
    assert set(compare([1, 2], [2, 1], ordered=False)) == {"psi", "js_distance"}
    assert set(compare([1, 2], [2, 1], ordered=True)) == {"psi", "js_distance", "ks"}


def test_psi_refuses_an_empty_side():
    with pytest.raises(ValueError, match="empty"):
        psi([1, 2], [0, 0])
