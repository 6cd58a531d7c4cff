"""The retraining signal's rule (issue 15): when a model version has degraded enough that the
scheduler should retrain it.

Two kinds of evidence, each judged on the version's newest partitions:

* ``performance``: a metric is degraded on a final partition when even the best end of its 95%
  interval (the upper end; the lower for a loss) is worse than the version's validation value by
  more than ``max_drop``; the signal needs that on at least ``k`` of the last ``n`` final
  partitions. An interval is the test, not the point value, so a small day's noise does not page
  anyone.
* ``drift``: a feature (or the score) whose PSI against the training reference exceeds
  ``drift_psi`` on at least ``k`` of the last ``n`` scored partitions.

A signal is identified by its evidence (``signal_id``, a hash of what it rests on): evaluating the
same partitions again with the same labels finds the same signal, which the signals table keeps once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field

from jobs.config import LOSS_METRICS, DegradationConfig

PERFORMANCE, DRIFT = "performance", "drift"


@dataclass(frozen=True)
class Observation:
    """A metric of one partition: its value and 95% interval (None: undefined or no interval)."""

    partition: str
    value: float | None
    lower: float | None = None
    upper: float | None = None
    label_coverage: float | None = None


@dataclass(frozen=True)
class Signal:
    """Evidence that a model version should be retrained: ``observed`` and its interval are those of
    the newest partition that broke the rule, ``partitions`` every partition that did, ``window``
    the last ``n`` partitions judged."""

    job: str
    model_name: str | None
    model_version: str | None
    kind: str
    column: str
    metric: str
    observed: float | None
    lower: float | None
    upper: float | None
    baseline: float | None  # the version's validation value (performance) or the PSI limit (drift)
    limit: float  # max_drop (performance) or drift_psi (drift)
    partitions: tuple[str, ...]
    window: tuple[str, ...]
    label_coverage: float | None = None
    k: int = 1
    n: int = 1
    signal_id: str = field(default="", compare=False)

    def __post_init__(self) -> None:
        if not self.signal_id:
            object.__setattr__(self, "signal_id", evidence_id(self))

    def describe(self) -> str:
        where = f"{len(self.partitions)} of the last {len(self.window)} partitions ({', '.join(self.partitions)})"
        if self.kind == PERFORMANCE:
            interval = "" if self.lower is None or self.upper is None else f" [{self.lower:.4f}, {self.upper:.4f}]"
            return (
                f"{self.metric} {_number(self.observed)}{interval} against validation {_number(self.baseline)} "
                f"(max drop {self.limit:g}) on {where}"
            )
        return f"PSI of {self.column} {_number(self.observed)} above {self.limit:g} on {where}"

    def record(self) -> dict[str, object]:
        return {**asdict(self), "partitions": list(self.partitions), "window": list(self.window)}


def _number(x: float | None) -> str:
    return "undefined" if x is None else f"{x:.4f}"


def evidence_id(s: Signal) -> str:
    """A stable id of what the signal rests on: the same version, rule and partitions with the same
    values give the same id; more labels or a corrected label (other values) give another."""
    rounded = lambda x: None if x is None else round(x, 9)  # noqa: E731
    payload = [
        s.job,
        s.model_name,
        s.model_version,
        s.kind,
        s.column,
        s.metric,
        rounded(s.observed),
        rounded(s.lower),
        rounded(s.upper),
        rounded(s.baseline),
        s.limit,
        list(s.partitions),
        list(s.window),
        s.k,
        s.n,
    ]
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()[:16]


def is_degraded(metric: str, o: Observation, baseline: float, max_drop: float) -> bool:
    """Whether the interval's best end is worse than ``baseline`` by more than ``max_drop``. A
    metric without an interval is judged on its value; an undefined one never degrades."""
    if metric in LOSS_METRICS:
        best = o.lower if o.lower is not None else o.value
        return best is not None and best > baseline + max_drop
    best = o.upper if o.upper is not None else o.value
    return best is not None and best < baseline - max_drop


def _window(observations: Sequence[Observation], n: int) -> list[Observation]:
    """The last ``n`` by partition order (the caller's order is the partitions' own, oldest first)."""
    return list(observations)[-n:]


def performance_signals(
    job: str,
    model: tuple[str | None, str | None],
    column: str,
    final: Mapping[str, Sequence[Observation]],
    baselines: Mapping[str, float],
    rule: DegradationConfig,
) -> list[Signal]:
    """The metrics of ``rule.max_drop`` degraded on ``k`` of the version's last ``n`` final partitions.

    Args:
        final: metric -> the version's final partitions' observations, oldest first.
        baselines: metric -> the version's validation value; a metric without one is not judged.
    """
    out = []
    for metric, max_drop in rule.max_drop:
        if metric not in baselines:
            continue
        window = _window(final.get(metric, ()), rule.n)
        broke = [o for o in window if is_degraded(metric, o, baselines[metric], max_drop)]
        if len(broke) >= rule.k:
            newest = broke[-1]
            out.append(
                Signal(
                    job,
                    *model,
                    kind=PERFORMANCE,
                    column=column,
                    metric=metric,
                    observed=newest.value,
                    lower=newest.lower,
                    upper=newest.upper,
                    baseline=baselines[metric],
                    limit=max_drop,
                    partitions=tuple(o.partition for o in broke),
                    window=tuple(o.partition for o in window),
                    label_coverage=newest.label_coverage,
                    k=rule.k,
                    n=rule.n,
                )
            )
    return out


def drift_signals(
    job: str, model: tuple[str | None, str | None], psi: Mapping[str, Sequence[Observation]], rule: DegradationConfig
) -> list[Signal]:
    """The columns whose PSI exceeds ``rule.drift_psi`` on ``k`` of their last ``n`` scored partitions.

    Args:
        psi: column -> its PSI per partition scored by the version, oldest first.
    """
    if rule.drift_psi is None:
        return []
    limit = rule.drift_psi
    out = []
    for column, observations in sorted(psi.items()):
        window = _window(observations, rule.n)
        broke = [o for o in window if o.value is not None and o.value > limit]
        if len(broke) >= rule.k:
            newest = broke[-1]
            out.append(
                Signal(
                    job,
                    *model,
                    kind=DRIFT,
                    column=column,
                    metric="psi",
                    observed=newest.value,
                    lower=None,
                    upper=None,
                    baseline=None,
                    limit=limit,
                    partitions=tuple(o.partition for o in broke),
                    window=tuple(o.partition for o in window),
                    k=rule.k,
                    n=rule.n,
                )
            )
    return out
