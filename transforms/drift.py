"""Drift between two binned distributions: pure numpy over bin counts, no Spark.

Both sides are counts (or proportions) over the same bins, in the same order: a numeric
feature's bins are the training reference's deciles, a categorical's the reference's categories
plus one bin for every other value. Empty bins are replaced by ``EPSILON`` before logarithms
or ratios are taken (PSI would be infinite otherwise) and the proportions renormalised; a bin
empty on both sides then contributes nothing.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

EPSILON = 1e-4  # the share an empty bin is given: about 1 row in 10,000, small next to any real bin


def proportions(counts: Sequence[float], epsilon: float = EPSILON) -> np.ndarray:
    """Counts as shares summing to 1, every bin at least ``epsilon`` (then renormalised).

    Raises:
        ValueError: no counts at all (a distribution of nothing has no shape to compare).
    """
    c = np.asarray(counts, dtype="float64")
    if c.ndim != 1 or len(c) == 0 or np.any(c < 0) or not np.isfinite(c).all():
        raise ValueError(f"expected non-negative finite counts, got {list(c)}")
    total = c.sum()
    if total <= 0:
        raise ValueError("the distribution is empty")
    p = np.maximum(c / total, epsilon)
    return p / p.sum()


def psi(reference: Sequence[float], current: Sequence[float], epsilon: float = EPSILON) -> float:
    """Population stability index: ``sum((q_i - p_i) * ln(q_i / p_i))`` with ``p`` the reference
    shares and ``q`` the current ones. Rules of thumb: < 0.1 stable, 0.1-0.25 moderate, > 0.25 shifted."""
    p, q = proportions(reference, epsilon), proportions(current, epsilon)
    return float(np.sum((q - p) * np.log(q / p)))


def js_distance(reference: Sequence[float], current: Sequence[float]) -> float:
    """Jensen-Shannon distance (base 2, so in [0, 1]): ``sqrt((KL(p||m) + KL(q||m)) / 2)``, ``m = (p+q)/2``.

    No epsilon: the mixture ``m`` is positive wherever either side is, and ``0 * log 0`` is 0.
    """
    p, q = _shares(reference), _shares(current)
    m = (p + q) / 2
    return float(np.sqrt(max((_kl(p, m) + _kl(q, m)) / 2, 0.0)))


def ks_from_bins(reference: Sequence[float], current: Sequence[float]) -> float:
    """Kolmogorov-Smirnov statistic ``max |F_ref(e) - F_cur(e)|`` evaluated at the bin edges.

    The reference's numeric bins are its training deciles, so ``F_ref`` at the edges is its
    quantile sketch; ``F_cur`` comes from the current counts in the same bins. This is the exact
    KS statistic when every value lies on a bin edge, and a lower bound otherwise (the gap can
    be larger inside a bin). Only meaningful for ordered bins (numerics, predictions).
    """
    p, q = _shares(reference), _shares(current)
    return float(np.max(np.abs(np.cumsum(p) - np.cumsum(q))))


def _shares(counts: Sequence[float]) -> np.ndarray:
    c = np.asarray(counts, dtype="float64")
    if c.ndim != 1 or len(c) == 0 or np.any(c < 0) or c.sum() <= 0:
        raise ValueError(f"expected non-negative counts with a positive total, got {list(c)}")
    return c / c.sum()


def _kl(a: np.ndarray, b: np.ndarray) -> float:
    nz = a > 0
    return float(np.sum(a[nz] * np.log2(a[nz] / b[nz])))


def compare(reference: Sequence[float], current: Sequence[float], ordered: bool) -> dict[str, float]:
    """Every drift metric for one pair of binned distributions: ``psi``, ``js_distance`` and, for
    ordered bins, ``ks``."""
    out = {"psi": psi(reference, current), "js_distance": js_distance(reference, current)}
    if ordered:
        out["ks"] = ks_from_bins(reference, current)
    return out
