"""Poisson-bootstrap replicate weights from a hash: the same key (of the same types) gets the same
weight in any run, partitioning and window, so replicates of partitions add up and both models of a
paired comparison are weighed alike.

The evaluation weighs hash buckets of keys rather than keys (:func:`key_bucket`): the rows of a
bucket share a weight in a replicate, the bootstrap over random clusters of rows.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from pyspark.sql import Column
from pyspark.sql import functions as F

POISSON_MAX = 10  # weights above are cut to it: P(X >= 10) = 1.1e-7 for X ~ Poisson(1)
# P(X <= k) for X ~ Poisson(1), k = 0 .. POISSON_MAX - 1: the weight is the first k with u < P(X <= k)
POISSON_CDF = tuple(math.exp(-1.0) * sum(1.0 / math.factorial(j) for j in range(k + 1)) for k in range(POISSON_MAX))


def poisson_weight(columns: Sequence[Column | str], replicate: int | Column, seed: int = 0) -> Column:
    """A weight ~ Poisson(1) of ``columns``' values in ``replicate``: the top 53 bits of
    ``xxhash64(columns..., replicate, seed)`` as a uniform u in [0, 1), inverted through the
    Poisson(1) CDF (the first k with u < P(X <= k), :data:`POISSON_CDF`, a CASE of ten branches;
    above 9 it is cut to 10)."""
    h = F.xxhash64(*[F.col(c) if isinstance(c, str) else c for c in columns], F.lit(replicate).cast("int"), F.lit(seed))
    u = F.shiftrightunsigned(h, 11).cast("double") / F.lit(float(2**53))
    weight = F.when(u < F.lit(POISSON_CDF[0]), F.lit(0))
    for k, cdf in enumerate(POISSON_CDF[1:], start=1):
        weight = weight.when(u < F.lit(cdf), F.lit(k))
    return weight.otherwise(F.lit(POISSON_MAX))


def key_bucket(keys: Sequence[str], buckets: int, seed: int = 0) -> Column:
    """The hash bucket, 0 .. ``buckets`` - 1, of a row's key values."""
    return F.pmod(F.xxhash64(*[F.col(k) for k in keys], F.lit(-1 - seed)), F.lit(buckets)).cast("int")


def row_weight(keys: Sequence[str], replicate: int | Column, buckets: int, seed: int = 0) -> Column:
    """The weight a row has in ``replicate``: its key bucket's."""
    return poisson_weight([key_bucket(keys, buckets, seed)], replicate, seed)
