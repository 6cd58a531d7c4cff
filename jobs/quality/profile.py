"""A partition's statistics: counts, nulls, distributions and binned counts of what came in, what
the model saw and what it said, in three aggregations over the two cached frames of the partition."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql import DataFrame
from pyspark.sql import types as T

from jobs.config import JobConfig
from jobs.model.resolve import ResolvedModel
from jobs.quality.estimates import derive_estimates
from transforms.cbpe import Calibration
from transforms.stats import Bins, category_profile, input_profile, prediction_profile

if TYPE_CHECKING:  # jobs.run imports this module
    from jobs.run.challengers import Challenger

log = logging.getLogger("lakescore.stats")


def profile_partition(
    cfg: JobConfig,
    model: ResolvedModel,
    bins: tuple[Mapping[str, Bins], Mapping[str, Bins]],
    checked: DataFrame,
    model_view: DataFrame,
    profiled: Sequence[str],
    challengers: Sequence[Challenger] = (),
) -> list[dict[str, Any]]:
    """The partition's statistics rows (the first query to touch ``model_view`` scores it).

    Args:
        bins: the features' and the predictions' bins (the run plan's), what drift is counted in.
        checked: the partition's rows after validation, quarantined ones included.
        model_view: the scored rows with the binned features riding along.
        profiled: the features the raw input has (derived ones appear only after preprocessing).
        challengers: scored beside the champion in ``model_view``: their profiles, their comparison
            with the champion and their failed rows are counted in the same aggregation (scopes
            ``challenger#<tag>`` and ``comparison#<tag>``, see ``transforms.comparison``).

    A champion that carries a calibration map gets its quality estimated (scope ``estimate``,
    ``jobs.quality.estimates``); one without gets no estimate rows.
    """
    feature_bins, prediction_bins = bins
    group = list(cfg.input.partition_by)
    categorical = [f for f in profiled if not isinstance(checked.schema[f].dataType, T.NumericType)]
    known = {c: b.categories for c, b in feature_bins.items() if b.categories and c in categorical}
    profile = (
        checked.transform(input_profile(profiled, [r.name for r in cfg.rules], group))
        .unionByName(checked.transform(category_profile(categorical, group, cfg.stats.top_k, known)))
        .unionByName(
            model_view.transform(
                prediction_profile(
                    model.outputs,
                    group,
                    dict(feature_bins),
                    dict(prediction_bins),
                    [(ch.tag, ch.output_columns(model.outputs)) for ch in challengers],
                    {ch.tag: ch.error_column for ch in challengers},
                    estimate_of(model),
                )
            )
        )
    )
    # The aggregates are a few rows per feature and metric: small enough for the driver.
    return derive_estimates([r.asDict() for r in profile.collect()])


def estimate_of(model: ResolvedModel) -> Calibration | None:
    """The champion's calibration map when it has one whose score and decision are among its
    outputs (resolving checked its shape), else None: no estimate."""
    if model.calibration is None:
        return None
    calibration = Calibration.from_map(model.calibration)
    outputs = model.outputs.fieldNames()
    if calibration.score not in outputs or calibration.decision not in outputs:
        log.warning(
            "model %s: lakescore/calibration.json maps %r and %r, not both among its outputs %s: no estimate",
            model.uri,
            calibration.score,
            calibration.decision,
            outputs,
        )
        return None
    return calibration
