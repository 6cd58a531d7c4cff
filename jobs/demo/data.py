"""Synthetic customer rows, partitioned by day, with nulls and a few rows that break the rules."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd
import pyarrow as pa

PLANS = np.array(["basic", "standard", "premium"])
REGIONS = np.array(["north", "south", "east", "west"])
FEATURES = ["tenure_months", "monthly_charges", "total_charges", "support_calls", "plan", "region"]

INPUT_SCHEMA = pa.schema(
    [
        pa.field("customer_id", pa.int64()),
        pa.field("tenure_months", pa.int32()),
        pa.field("monthly_charges", pa.float64()),
        pa.field("total_charges", pa.float64()),
        pa.field("support_calls", pa.int32()),
        pa.field("plan", pa.string()),
        pa.field("region", pa.string()),
        pa.field("ds", pa.date32()),
    ]
)


def customers(rows: int, seed: int, ds: dt.date | None = None, bad_fraction: float = 0.0) -> pd.DataFrame:
    """``rows`` customers with a churn probability that depends on the features.

    Includes a ``churned`` label drawn from that probability; the scoring input drops it.
    With ``bad_fraction`` > 0 that share of rows breaks a rule (negative tenure, unknown plan,
    missing id or a non-finite charge).
    """
    rng = np.random.default_rng(seed)
    tenure = rng.integers(0, 72, rows)
    monthly = np.round(rng.gamma(4.0, 16.0, rows), 2)
    calls = rng.poisson(1.5, rows)
    plan = PLANS[rng.choice(3, rows, p=[0.5, 0.3, 0.2])]
    region = REGIONS[rng.integers(0, 4, rows)]
    logit = -1.0 - 0.04 * tenure + 0.012 * monthly + 0.45 * calls - 0.6 * (plan == "premium") + 0.3 * (region == "south")
    churned = (rng.random(rows) < 1 / (1 + np.exp(-logit))).astype("int64")
    frame = pd.DataFrame(
        {
            "customer_id": np.arange(rows, dtype="int64") + seed * 1_000_000,
            "tenure_months": pd.array(tenure, dtype="Int32"),
            "monthly_charges": monthly,
            "total_charges": np.round(monthly * np.maximum(tenure, 1) * rng.uniform(0.9, 1.1, rows), 2),
            "support_calls": pd.array(calls, dtype="Int32"),
            "plan": plan.astype(object),
            "region": region.astype(object),
            "churned": churned,
        }
    )
    # ordinary missing values, which the model copes with
    frame.loc[rng.random(rows) < 0.03, "monthly_charges"] = np.nan
    frame.loc[rng.random(rows) < 0.02, "region"] = None
    if bad_fraction > 0:
        bad = np.flatnonzero(rng.random(rows) < bad_fraction)
        kinds = rng.integers(0, 4, len(bad))
        frame.loc[bad[kinds == 0], "tenure_months"] = -5
        frame.loc[bad[kinds == 1], "plan"] = "platinum"
        frame.loc[bad[kinds == 2], "customer_id"] = None
        frame.loc[bad[kinds == 3], "total_charges"] = np.inf
        frame["customer_id"] = frame["customer_id"].astype("Int64")
    if ds is not None:
        frame["ds"] = ds
    return frame


LABELS_SCHEMA = pa.schema([pa.field("customer_id", pa.int64()), pa.field("ds", pa.date32()), pa.field("churned", pa.int64())])
# how the labels arrive, newest day first: the share of a day's customers whose label has landed
# (the newest day none yet, the one before about half, older days all but the few that never do)
LABELLED_SHARE = (0.0, 0.5)
LABELLED_AT_LAST = 0.98
NEVER_SCORED = 5  # label rows per labelled day for customers the scoring input never had
# the newest fully labelled day (2024-06-03 of make demo's five) is the day churn changed its causes:
# long-standing customers leave and support calls stop mattering, so the model degrades there
DEGRADED_AGE = len(LABELLED_SHARE)


def changed_churn(frame: pd.DataFrame, seed: int) -> np.ndarray:
    """``churned`` of the degraded day: drawn again from another relation between features and churn."""
    tenure = frame["tenure_months"].astype("float64").fillna(0).to_numpy()
    monthly = frame["monthly_charges"].fillna(frame["monthly_charges"].median()).to_numpy()
    logit = -3.0 + 0.05 * tenure + 0.01 * monthly - 0.6 * (frame["plan"] == "premium").to_numpy()
    return (np.random.default_rng(seed).random(len(frame)) < 1 / (1 + np.exp(-logit))).astype("int64")


def _days(days: int, rows_per_day: int, start: dt.date, bad_fraction: float) -> list[pd.DataFrame]:
    return [
        customers(rows_per_day, seed=100 + i, ds=start + dt.timedelta(days=i), bad_fraction=bad_fraction) for i in range(days)
    ]


def input_table(days: int, rows_per_day: int, start: dt.date, bad_fraction: float = 0.01) -> pa.Table:
    """The demo scoring input: ``days`` daily partitions, no label column."""
    frames = [frame.drop(columns="churned") for frame in _days(days, rows_per_day, start, bad_fraction)]
    return pa.Table.from_pandas(pd.concat(frames, ignore_index=True), schema=INPUT_SCHEMA, preserve_index=False)


def labels_table(days: int, rows_per_day: int, start: dt.date, bad_fraction: float = 0.01) -> pa.Table:
    """The labels of the input ``input_table`` makes with the same arguments: ``churned`` of the same
    customers on the same days, as a label feed delivers them weeks later: the newest days
    unlabelled or in part (``LABELLED_SHARE``), and per labelled day a few rows for customers that
    were never scored (ids above the day's). Rows without a customer id have no label. The day
    ``DEGRADED_AGE`` days before the newest has its churn drawn from another relation
    (:func:`changed_churn`): the model, trained on the old one, degrades there."""
    frames = []
    for i, frame in enumerate(_days(days, rows_per_day, start, bad_fraction)):
        age, seed = days - 1 - i, 100 + i  # the seed customers() drew the day with
        if age == DEGRADED_AGE:
            frame = frame.assign(churned=changed_churn(frame, seed + 3_000))
        share = LABELLED_SHARE[age] if age < len(LABELLED_SHARE) else LABELLED_AT_LAST
        arrived = np.random.default_rng(seed + 1_000).random(len(frame)) < share
        rows = frame.loc[arrived & frame["customer_id"].notna(), ["customer_id", "ds", "churned"]]
        if share > 0:
            ids = seed * 1_000_000 + rows_per_day + np.arange(NEVER_SCORED)
            churned = np.random.default_rng(seed + 2_000).integers(0, 2, NEVER_SCORED)
            extra = pd.DataFrame({"customer_id": ids, "ds": start + dt.timedelta(days=i), "churned": churned})
            rows = pd.concat([rows, extra], ignore_index=True)
        frames.append(rows.astype({"customer_id": "int64", "churned": "int64"}))
    data = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=LABELS_SCHEMA.names)
    return pa.Table.from_pandas(data.sort_values(["ds", "customer_id"]), schema=LABELS_SCHEMA, preserve_index=False)
