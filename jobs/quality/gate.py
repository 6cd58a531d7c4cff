"""The quality gate: a partition's statistics and drift rows turned into pass/fail checks, checked
before its scores are published."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from jobs.config import ALL_COLUMNS, ConfigError, GateConfig
from jobs.quality.drift import BASELINE, CONSECUTIVE, Row

GATE = "gate"


@dataclass(frozen=True)
class Check:
    """One gate check of one partition: ``observed`` against ``limit`` (``None`` observed: not measurable, skipped)."""

    name: str
    column: str
    observed: float | None
    limit: float
    passed: bool

    @property
    def outcome(self) -> str:
        return "skipped" if self.observed is None else ("pass" if self.passed else "fail")

    def row(self) -> Row:
        return {"scope": GATE, "column": self.column, "metric": self.name, "bucket": self.outcome, "value": self.observed}


def _per_column(limits: Sequence[tuple[str, float]], columns: Sequence[str], what: str, source: str) -> dict[str, float]:
    """Column -> limit, ``*`` filling in the columns not named.

    Raises:
        ConfigError: a limit names a column the run does not have (it would never fire).
    """
    named = dict(limits)
    unknown = sorted(set(named) - {ALL_COLUMNS} - set(columns))
    if unknown:
        raise ConfigError(f"{source}: gate.{what}: {unknown} not among the columns checked ({', '.join(columns)})")
    default = named.get(ALL_COLUMNS)
    return {c: limit for c in columns if (limit := named.get(c, default)) is not None}


def check_gate(
    gate: GateConfig, rows: Sequence[Row], features: Sequence[str], outputs: Sequence[str], source: str
) -> list[Check]:
    """The gate's checks for one partition's statistics rows (counts, null rates, drift).

    ``max_psi`` takes the PSI against the training reference, or, for a column that has none
    there (e.g. the predictions of a model whose reference did not profile them), against the
    previous partition; neither gives a ``skipped`` check.
    """

    def value(scope: str, column: str, metric: str) -> float | None:
        return next((r["value"] for r in rows if (r["scope"], r["column"], r["metric"]) == (scope, column, metric)), None)

    checks = []
    rows_in = value("rows", "*", "rows_in") or 0.0
    if gate.min_rows is not None:
        checks.append(Check("min_rows", "*", rows_in, gate.min_rows, rows_in >= gate.min_rows))
    if gate.max_quarantine_rate is not None:
        rate = (value("rows", "*", "rows_quarantined") or 0.0) / rows_in if rows_in else 0.0
        checks.append(Check("max_quarantine_rate", "*", rate, gate.max_quarantine_rate, rate <= gate.max_quarantine_rate))
    for column, limit in _per_column(gate.max_null_rate, features, "max_null_rate", source).items():
        null_rate = value("input", column, "null_rate")
        checks.append(Check("max_null_rate", column, null_rate, limit, null_rate is None or null_rate <= limit))
    for column, limit in _per_column(gate.max_psi, [*features, *outputs], "max_psi", source).items():
        psi = value(BASELINE, column, "psi")
        if psi is None:
            psi = value(CONSECUTIVE, column, "psi")
        unbinned = not any(r["column"] == column and r["metric"] == "histogram" for r in rows)
        if psi is None and column in outputs and unbinned and column not in dict(gate.max_psi):
            continue  # "*" does not reach an output without a distribution (a label); naming it does
        checks.append(Check("max_psi", column, psi, limit, psi is None or psi <= limit))
    return checks
