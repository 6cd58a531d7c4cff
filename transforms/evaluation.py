"""Sufficient statistics of labelled, scored rows (issue 15), the counts, sums and score histograms
:mod:`jobs.quality.metrics` derives the metrics from, as long rows like the stats table's, in one
Spark aggregation. All are sums, so a window's statistics are its partitions' added up.

Poisson-bootstrap replicates come from the same pass: the aggregation also sums each of ``buckets``
hash buckets of the keys (:mod:`transforms.bootstrap`), and bucket b weighs ``w_br ~ Poisson(1)`` in
replicate r, the same in every run and window and for both models of a pair: the bootstrap over
random clusters of rows, one extra entry set per row instead of one per replicate (which had made
the aggregation 20x a bare ``groupBy``, bench/RESULTS.md).

Not one wide row of aggregates (``transforms.stats._long``): 2,000 ``sum(when(bin = k))`` took 30 s
to plan on 4,000 rows. Each row emits a few ``(key, value)`` entries (the key packs target, statistic,
replicate or bucket, and bin into a long) that one ``groupBy(group..., key).agg(sum)`` adds up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from transforms.bootstrap import key_bucket, poisson_weight
from transforms.numeric import not_finite

SCOPE = "evaluation"
BOOT = "boot_"  # prefix of a replicate's statistic: bucket "r" or "r:bin" (r from 0)
# the settings, a row each per group and target (beside its ``n`` or ``paired_n``); never summed
CONSTANTS = frozenset({"log_loss_eps", "score_bins", "boot_bins", "calib_bins", "replicates", "boot_buckets"})


@dataclass(frozen=True)
class Settings:
    """How the statistics are binned and resampled; stored beside them (:data:`CONSTANTS`).

    ``score_bins`` equal bins over [0, 1] for the per-class score histograms (ROC AUC, average
    precision), ``boot_bins`` for the replicates' (coarser: a replicate's histogram is
    ``2 * boot_bins`` rows, and ``score_bins`` must be a multiple, so a coarse bin is a union of fine
    ones), ``calibration_bins`` for ECE, ``eps`` the log-loss clip, ``replicates`` the bootstrap's R
    (0: no replicates), ``buckets`` the hash buckets the replicates weigh, ``seed`` mixed into the
    replicate weights' hash.
    """

    score_bins: int = 1000
    boot_bins: int = 100
    calibration_bins: int = 10
    replicates: int = 50
    buckets: int = 1000
    eps: float = 1e-15
    seed: int = 0

    def __post_init__(self) -> None:
        if min(self.score_bins, self.boot_bins, self.calibration_bins) < 1:
            raise ValueError("evaluation settings: bin counts must be at least 1")
        if self.score_bins % self.boot_bins:
            raise ValueError(f"evaluation settings: score_bins {self.score_bins} is no multiple of boot_bins {self.boot_bins}")
        if self.buckets < 1:
            raise ValueError(f"evaluation settings: buckets must be at least 1, got {self.buckets}")
        if self.replicates < 0:
            raise ValueError(f"evaluation settings: replicates must be 0 or more, got {self.replicates}")
        if not 0.0 < self.eps < 0.5:
            raise ValueError(f"evaluation settings: eps must be in (0, 0.5), got {self.eps}")


@dataclass(frozen=True)
class BinaryTarget:
    """A binary classifier's output: ``label`` 0/1, ``score`` the probability of 1, ``decision`` 0/1.
    ``column`` names the statistics rows (the output evaluated)."""

    column: str
    label: str
    score: str
    decision: str


@dataclass(frozen=True)
class RegressionTarget:
    """A regressor's output: ``label`` and ``prediction``, numbers."""

    column: str
    label: str
    prediction: str


@dataclass(frozen=True)
class PairedTarget:
    """Champion and challenger scored on the same rows, for McNemar and a paired ΔAUC."""

    column: str
    label: str
    champion_score: str
    champion_decision: str
    challenger_score: str
    challenger_decision: str


Target = BinaryTarget | RegressionTarget | PairedTarget
_BINARY = ("n", "unlabelled", "invalid_label", "missing_score", "tp", "fp", "fn", "tn", "score_hist_pos", "score_hist_neg")
_BINARY_SUMS = ("log_loss_sum", "brier_sum", "calib_count", "calib_score_sum", "calib_label_sum")
_REGRESSION = ("abs_err_sum", "sq_err_sum", "err_sum", "label_sum", "label_sq_sum", "ape_sum", "ape_n")
_PAIRED = ("paired_n", "paired_missing", "mcnemar_n01", "mcnemar_n10")
_HISTS = tuple(f"{m}_hist_{c}" for m in ("champion", "challenger") for c in ("pos", "neg"))
STATISTICS = tuple(dict.fromkeys((*_BINARY, *_BINARY_SUMS, *_REGRESSION, *_PAIRED, *_HISTS)))
_ID = {name: i for i, name in enumerate(STATISTICS)}
_R, _W, _E = "_eval_r", "_eval_w", "_eval_e"


@dataclass(frozen=True)
class _Packing:
    """(target, statistic, replicate, bin) <-> one long key, the aggregation's only grouping key beside
    the groups; replicate -1 is the point estimate, bin -1 none. ``replicates``: the slots of the
    replicate field, which holds a bucket before the replicates are drawn."""

    replicates: int
    bins: int

    def pack(self, target: int, statistic: str | Column, bin_: Column | None) -> Column:
        m = F.lit(_ID[statistic]) if isinstance(statistic, str) else statistic
        return self.repack(F.lit(target).cast("long"), m, F.col(_R), F.lit(-1) if bin_ is None else bin_)

    def repack(self, target: Column, statistic: Column, replicate: Column, bin_: Column) -> Column:
        key = (target.cast("long") * len(STATISTICS) + statistic) * (self.replicates + 1) + (replicate + 1)
        return key * (self.bins + 1) + bin_ + 1

    def unpack(self, key: Column) -> tuple[Column, Column, Column, Column]:
        def divmod_(k: Column, d: int) -> tuple[Column, Column]:
            return F.floor(k / F.lit(d)), k % F.lit(d)

        rest, b = divmod_(key, self.bins + 1)
        rest, r = divmod_(rest, self.replicates + 1)
        t, m = divmod_(rest, len(STATISTICS))
        return t, m, r - 1, b - 1


def _pick(condition: Column, yes: str, no: str) -> Column:
    return F.when(condition, F.lit(_ID[yes])).otherwise(F.lit(_ID[no]))


def _flag(condition: Column) -> Column:
    return F.when(F.coalesce(condition, F.lit(False)), F.lit(1.0)).otherwise(F.lit(0.0))


def _usable(col: Column) -> Column:
    return col.isNotNull() & ~F.coalesce(not_finite(col.cast("double")), F.lit(False))


def _binary(col: Column) -> Column:
    return F.coalesce(col.isin(0, 1), F.lit(False))


def _bin(p: Column, bins: int) -> Column:
    return F.least(F.floor(p * F.lit(bins)), F.lit(bins - 1))


def _clipped(score: str) -> Column:
    return F.least(F.greatest(F.col(score).cast("double"), F.lit(0.0)), F.lit(1.0))


class _Rows:
    """One target's entries: ``pre`` computes a per-row value once, before the rows are repeated per
    replicate (inlined, the entries' code outgrew what the JVM compiles and ran 7x slower);
    ``emit`` makes an entry of a statistic (a name, or a column of ids from :func:`_pick`)."""

    def __init__(self, index: int, packing: _Packing) -> None:
        self.index, self.packing, self.prepared = index, packing, list[Column]()

    def pre(self, name: str, value: Column) -> Column:
        alias = f"_eval_t{self.index}_{name}"
        self.prepared.append(value.alias(alias))
        return F.col(alias)

    def emit(self, statistic: str | Column, value: Column, bin_: Column | None = None) -> Column:
        return F.struct(self.packing.pack(self.index, statistic, bin_).alias("k"), value.cast("double").alias("v"))


def _binary_entries(t: BinaryTarget, s: Settings, e: _Rows, w: Column) -> tuple[list[Column], list[Column]]:
    y, d, p = F.col(t.label).cast("double"), F.col(t.decision), _clipped(t.score)
    labelled, binary_label = F.col(t.label).isNotNull(), _binary(F.col(t.label))
    scored = _usable(F.col(t.score)) & _binary(d)
    valid = e.pre("valid", labelled & binary_label & scored)
    pe = F.least(F.greatest(p, F.lit(s.eps)), F.lit(1.0 - s.eps))
    log_loss = e.pre("log_loss", -(y * F.log(pe) + (1.0 - y) * F.log(1.0 - pe)))
    brier = e.pre("brier", (p - y) * (p - y))
    cell = e.pre("cell", F.when(y == 1, _pick(d == 1, "tp", "fn")).otherwise(_pick(d == 1, "fp", "tn")))
    hist = e.pre("hist", _pick(y == 1, "score_hist_pos", "score_hist_neg"))
    fine, calib = e.pre("fine", _bin(p, s.score_bins)), e.pre("calib", _bin(p, s.calibration_bins))
    coarse = e.pre("coarse", F.floor(_bin(p, s.score_bins) / F.lit(s.score_bins // s.boot_bins)))
    score, label = e.pre("p", p), e.pre("y", y)

    def sums(weight: Column, hist_bin: Column) -> list[Column]:
        return [
            e.emit(hist, weight, hist_bin),
            e.emit("log_loss_sum", weight * log_loss),
            e.emit("brier_sum", weight * brier),
            e.emit("calib_count", weight, calib),
            e.emit("calib_score_sum", weight * score, calib),
            e.emit("calib_label_sum", weight * label, calib),
        ]

    one = F.lit(1.0)
    point = [
        e.emit("n", e.pre("n", _flag(valid))),
        e.emit("unlabelled", e.pre("unlabelled", _flag(~labelled))),
        e.emit("invalid_label", e.pre("invalid", _flag(labelled & ~binary_label))),
        e.emit("missing_score", e.pre("missing", _flag(labelled & binary_label & ~scored))),
        *[
            F.when(valid, x)
            for x in [
                *[e.emit(c, F.when(cell == _ID[c], one).otherwise(0.0)) for c in ("tp", "fp", "fn", "tn")],
                *sums(one, fine),
            ]
        ],
    ]
    return point, [F.when(valid, x) for x in [e.emit(cell, w), *sums(w, coarse)]]


def _regression_entries(t: RegressionTarget, s: Settings, e: _Rows, w: Column) -> tuple[list[Column], list[Column]]:
    y, err = F.col(t.label).cast("double"), F.col(t.prediction).cast("double") - F.col(t.label).cast("double")
    labelled = _usable(F.col(t.label))
    valid = e.pre("valid", labelled & _usable(F.col(t.prediction)))
    nonzero = y != 0
    values = {
        "abs_err_sum": F.abs(err),
        "sq_err_sum": err * err,
        "err_sum": err,
        "label_sum": y,
        "label_sq_sum": y * y,
        "ape_sum": F.when(nonzero, F.abs(err) / F.abs(y)).otherwise(0.0),
        "ape_n": F.when(nonzero, 1.0).otherwise(0.0),
    }
    pre = {m: e.pre(m, v) for m, v in values.items()}
    point = [
        e.emit("n", e.pre("n", _flag(valid))),
        e.emit("unlabelled", e.pre("unlabelled", _flag(~labelled))),
        e.emit("missing_score", e.pre("missing", _flag(labelled & ~valid))),
        *[F.when(valid, e.emit(m, v)) for m, v in pre.items()],
    ]
    boot = [F.when(valid, e.emit(m, w * v)) for m, v in {"n": F.lit(1.0), **pre}.items()]
    return point, boot


def _paired_entries(t: PairedTarget, s: Settings, e: _Rows, w: Column) -> tuple[list[Column], list[Column]]:
    y, labelled = F.col(t.label), _binary(F.col(t.label))
    models = (("champion", t.champion_score, t.champion_decision), ("challenger", t.challenger_score, t.challenger_decision))
    scored = F.lit(True)
    for _, score, decision in models:
        scored = scored & _usable(F.col(score)) & _binary(F.col(decision))
    valid = e.pre("valid", labelled & scored)
    champion_right, challenger_right = F.col(t.champion_decision) == y, F.col(t.challenger_decision) == y
    point = [
        e.emit("paired_n", e.pre("n", _flag(valid))),
        e.emit("paired_missing", e.pre("missing", _flag(labelled & ~scored))),
        F.when(valid, e.emit("mcnemar_n01", e.pre("n01", _flag(champion_right & ~challenger_right)))),
        F.when(valid, e.emit("mcnemar_n10", e.pre("n10", _flag(~champion_right & challenger_right)))),
    ]
    boot = []
    for name, score, _ in models:
        fine = _bin(_clipped(score), s.score_bins)
        hist = e.pre(f"{name}_hist", _pick(y == 1, f"{name}_hist_pos", f"{name}_hist_neg"))
        point.append(F.when(valid, e.emit(hist, F.lit(1.0), e.pre(f"{name}_fine", fine))))
        coarse = e.pre(f"{name}_coarse", F.floor(fine / F.lit(s.score_bins // s.boot_bins)))
        boot.append(F.when(valid, e.emit(hist, w, coarse)))
    return point, boot


def _constants(target: Target, s: Settings) -> dict[str, float]:
    if isinstance(target, BinaryTarget):
        names: tuple[str, ...] = ("score_bins", "boot_bins", "calib_bins", "log_loss_eps")
    elif isinstance(target, RegressionTarget):
        names = ()
    else:
        names = ("score_bins", "boot_bins")
    values = {"score_bins": s.score_bins, "boot_bins": s.boot_bins, "calib_bins": s.calibration_bins, "log_loss_eps": s.eps}
    return {n: float(values[n]) for n in names} | {"replicates": float(s.replicates), "boot_buckets": float(s.buckets)}


def _entries(target: Target, s: Settings, e: _Rows, w: Column) -> tuple[list[Column], list[Column]]:
    if isinstance(target, BinaryTarget):
        return _binary_entries(target, s, e, w)
    if isinstance(target, RegressionTarget):
        return _regression_entries(target, s, e, w)
    return _paired_entries(target, s, e, w)


def evaluation_statistics(
    targets: Sequence[Target], keys: Sequence[str], group_by: Sequence[str], settings: Settings | None = None
) -> Callable[[DataFrame], DataFrame]:
    """The sufficient statistics of each target, per group, in one aggregation; scope ``evaluation``,
    column = the target's ``column``, bucket as below (an absent histogram bin or replicate row: 0).

    Every target: ``n`` (rows counted), ``unlabelled`` (null label; for regression also NaN/inf),
    ``missing_score`` (labelled, but a null, NaN or infinite score or prediction, or a decision outside
    {0, 1}); none of these rows enter any other statistic. ``replicates`` (R), ``boot_buckets``.

    Binary: ``invalid_label`` (label outside {0, 1}); ``tp``, ``fp``, ``fn``, ``tn`` (decision against
    label); ``score_hist_pos`` / ``score_hist_neg`` (bucket = bin index from 0 of ``score_bins`` equal
    bins over [0, 1]: min(floor(p·B), B - 1)); ``log_loss_sum`` (p clipped to [ε, 1 - ε]) and
    ``log_loss_eps``; ``brier_sum``; ``calib_count``, ``calib_score_sum``, ``calib_label_sum`` (bucket =
    calibration bin) and ``calib_bins``; ``score_bins``, ``boot_bins``. A score outside [0, 1] is
    clipped to it first, for every statistic.

    Regression: ``abs_err_sum``, ``sq_err_sum``, ``err_sum`` (prediction - label), ``label_sum``,
    ``label_sq_sum``, ``ape_sum`` (Σ|e|/|y|) and ``ape_n``, both over the rows with label != 0.

    Paired (rows where the label and both models' scores and decisions are usable): ``paired_n``,
    ``paired_missing`` (labelled, either model unusable), ``mcnemar_n01`` (champion right, challenger
    wrong), ``mcnemar_n10`` (the reverse), ``champion_hist_pos`` / ``_neg``, ``challenger_hist_pos`` /
    ``_neg`` (fine bins); ``score_bins``, ``boot_bins``.

    Replicates: ``boot_<statistic>``, bucket ``"r"`` (scalars) or ``"r:bin"`` (histograms in
    ``boot_bins`` bins, calibration in its own bins), r from 0: binary ``tp fp fn tn score_hist_pos
    score_hist_neg log_loss_sum brier_sum calib_count calib_score_sum calib_label_sum``; regression
    ``n`` and the sums above; paired the four histograms.

    Args:
        keys: the columns identifying a row (the labels' key): its bucket hashes them.
        group_by: the columns the statistics are per (partition columns, ``model_version``).
    """
    s = settings or Settings()
    if not targets:
        raise ValueError("evaluation statistics: no target")
    if len({t.column for t in targets}) != len(targets):
        raise ValueError(f"evaluation statistics: target columns must be unique, got {[t.column for t in targets]}")
    packing = _Packing(max(s.replicates, s.buckets), max(s.score_bins, s.calibration_bins))

    def _(df: DataFrame) -> DataFrame:
        point, boot, prepared = list[Column](), list[Column](), list[Column]()
        for i, target in enumerate(targets):
            rows_of = _Rows(i, packing)
            p, b = _entries(target, s, rows_of, F.lit(1.0))
            point, boot, prepared = point + p, boot + b, prepared + rows_of.prepared
        # each row twice: its point entries (slot -1) and, when there are replicates, its bootstrap
        # entries unweighted in its key's bucket's slot
        modes = F.array(F.lit(-1), key_bucket(keys, s.buckets, s.seed)) if s.replicates else F.array(F.lit(-1))
        rows = df.select(*group_by, *[k for k in keys if k not in group_by], *prepared).select("*", F.explode(modes).alias(_R))
        entries = F.when(F.col(_R) < 0, F.array(*point)).otherwise(F.array(*boot))
        summed = (
            rows.select(*group_by, F.explode(entries).alias(_E))
            .where(F.col(_E).isNotNull())
            .groupBy(*group_by, F.col(f"{_E}.k").alias("key"))
            .agg(F.sum(f"{_E}.v").alias("value"))
        )
        if s.replicates:
            summed = _replicated(summed, group_by, s, packing)
        return summed.select(*group_by, F.inline(_decoded(targets, s, packing)))

    return _


def _replicated(summed: DataFrame, group_by: Sequence[str], s: Settings, packing: _Packing) -> DataFrame:
    """The point rows as they are, and each bucket's sums weighed into the replicates (bucket b
    weighs w_br in replicate r) and added up: a second aggregation, over the first's rows (buckets x
    statistics), not over the input's."""
    t, m, b, bin_ = packing.unpack(F.col("key"))
    point = b < 0
    slots = F.when(point, F.array(F.lit(-1))).otherwise(F.sequence(F.lit(0), F.lit(s.replicates - 1)))
    weight = F.when(F.col(_R) < 0, F.lit(1)).otherwise(poisson_weight([b.cast("int")], F.col(_R), s.seed))
    key = F.when(F.col(_R) < 0, F.col("key")).otherwise(packing.repack(t, m, F.col(_R), bin_))
    return (
        summed.select(*group_by, "key", "value", F.explode(slots).alias(_R))
        .select(*group_by, key.alias("key"), "value", weight.cast("double").alias(_W))
        .where(F.col(_W) > 0)  # a bucket weighing 0 in a replicate adds nothing to it
        .groupBy(*group_by, "key")
        .agg(F.sum(F.col("value") * F.col(_W)).alias("value"))
    )


def _decoded(targets: Sequence[Target], s: Settings, packing: _Packing) -> Column:
    """The long row(s) of one aggregated key: itself, and beside each target's ``n`` / ``paired_n`` its
    constants."""
    t, m, r, b = packing.unpack(F.col("key"))
    name = F.element_at(F.array(*[F.lit(n) for n in STATISTICS]), (m + 1).cast("int"))
    column = F.element_at(F.array(*[F.lit(x.column) for x in targets]), (t + 1).cast("int"))
    point = r < 0
    rs, bs = r.cast("string"), b.cast("string")
    bucket = F.when(point, F.when(b >= 0, bs)).when(b < 0, rs).otherwise(F.concat(rs, F.lit(":"), bs))

    def row(metric: Column, bucket: Column, value: Column) -> Column:
        return F.struct(
            F.lit(SCOPE).alias("scope"),
            column.alias("column"),
            metric.alias("metric"),
            bucket.cast("string").alias("bucket"),
            value.cast("double").alias("value"),
        )

    this = row(F.when(point, name).otherwise(F.concat(F.lit(BOOT), name)), bucket, F.col("value"))
    none = F.lit(None).cast("string")
    constants = F.array(this)
    for i, target in enumerate(targets):
        consts = [row(F.lit(n), none, F.lit(v)) for n, v in _constants(target, s).items()]
        constants = F.when(t == i, F.array(this, *consts)).otherwise(constants)
    anchor = point & m.isin(_ID["n"], _ID["paired_n"])
    return F.when(anchor, constants).otherwise(F.array(this))
