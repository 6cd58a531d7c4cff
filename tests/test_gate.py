"""The quality gate and drift: config validation, the checks, and the job's exit codes through its entry point."""

import contextlib
import io
import json
from types import SimpleNamespace

import numpy as np
import pytest
import yaml
from deltalake import DeltaTable
from scipy.spatial.distance import jensenshannon

from jobs.config import ConfigError, GateConfig, load_config
from jobs.quality.drift import drift_rows
from jobs.quality.gate import check_gate
from jobs.score import main
from tests.helpers import D1, D2, REPO, delta, expected_quarantine, job_config, ledger, write_demo_input
from transforms.drift import EPSILON
from transforms.stats import Bins


def config_with(tmp_path, **sections):
    conf = yaml.safe_load((REPO / "conf/jobs/churn.yaml").read_text()) | sections
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(conf))
    return path


def test_gate_config_takes_a_number_for_every_column_or_a_mapping_per_column(tmp_path):
    gate = {
        "mode": "warn",
        "min_rows": 10,
        "max_quarantine_rate": 0.05,
        "max_null_rate": 0.1,
        "max_psi": {"*": 0.25, "probability": 0.1},
    }
    cfg = load_config(config_with(tmp_path, gate=gate))
    assert cfg.gate == GateConfig("warn", 10, 0.05, (("*", 0.1),), (("*", 0.25), ("probability", 0.1)))
    assert load_config(config_with(tmp_path, gate={})).gate == GateConfig()  # no limits: mode fail, nothing checked
    assert cfg.output.reports == str(tmp_path.parent / REPO.name / ".lakescore/tables/reports") or cfg.output.reports.endswith(
        "/reports"
    )


@pytest.mark.parametrize(
    ("gate", "message"),
    [
        ({"mode": "loud"}, "gate.mode: expected one of fail, warn, got 'loud'"),
        ({"max_quarantine_rate": 1.5}, "gate.max_quarantine_rate: expected a rate between 0 and 1, got 1.5"),
        ({"max_null_rate": {"plan": "x"}}, "gate.max_null_rate.plan: expected a number, got 'x'"),
        ({"max_psi": {"bad col": 0.1}}, "gate.max_psi: 'bad col' is not a valid column name"),
        ({"max_psi": -1}, "gate.max_psi: expected a non-negative number, got -1"),
        ({"min_rows": 1.5}, "gate.min_rows: expected a non-negative integer"),
        ({"max_rows": 3}, "gate.max_rows: unknown key"),
    ],
)
def test_bad_gate_config_names_the_file_and_key_path(tmp_path, gate, message):
    path = config_with(tmp_path, gate=gate)
    with pytest.raises(
        ConfigError,
        match="^" + str(path).replace(".", r"\.") + ": " + message.replace("(", r"\(").replace(")", r"\)").replace("[", r"\["),
    ):
        load_config(path)


def stats(rows_in, quarantined, null_rates=None, psi=None, consecutive_psi=None):
    out = [
        {"scope": "rows", "column": "*", "metric": "rows_in", "bucket": None, "value": rows_in},
        {"scope": "rows", "column": "*", "metric": "rows_quarantined", "bucket": None, "value": quarantined},
        {"scope": "prediction", "column": "probability", "metric": "histogram", "bucket": "00", "value": 1.0},
    ]
    out += [
        {"scope": "input", "column": c, "metric": "null_rate", "bucket": None, "value": v} for c, v in (null_rates or {}).items()
    ]
    out += [{"scope": "drift_baseline", "column": c, "metric": "psi", "bucket": None, "value": v} for c, v in (psi or {}).items()]
    out += [
        {"scope": "drift_consecutive", "column": c, "metric": "psi", "bucket": "ds=x", "value": v}
        for c, v in (consecutive_psi or {}).items()
    ]
    return out


def test_gate_checks_each_threshold_and_per_column_limits_override_the_default():
    gate = GateConfig("fail", 100, 0.1, (("*", 0.2), ("b", 0.5)), (("*", 0.25), ("probability", 0.1)))
    rows = stats(200, 30, {"a": 0.3, "b": 0.3}, {"a": 0.1, "b": 0.3}, {"probability": 0.2})
    got = {
        (c.name, c.column): (c.observed, c.outcome)
        for c in check_gate(gate, rows, ["a", "b"], ["probability", "label"], "job.yaml")
    }
    assert got == {
        ("min_rows", "*"): (200, "pass"),
        ("max_quarantine_rate", "*"): (30 / 200, "fail"),
        ("max_null_rate", "a"): (0.3, "fail"),  # the default 0.2
        ("max_null_rate", "b"): (0.3, "pass"),  # its own 0.5
        ("max_psi", "a"): (0.1, "pass"),
        ("max_psi", "b"): (0.3, "fail"),
        ("max_psi", "probability"): (0.2, "fail"),  # no baseline for the prediction: vs the previous partition
    }  # "*" does not reach the label, which has no distribution


def test_a_gate_limit_on_a_column_the_run_does_not_have_is_a_config_error():
    with pytest.raises(ConfigError, match=r"job.yaml: gate.max_psi: \['nope'\] not among the columns checked"):
        check_gate(GateConfig(max_psi=(("nope", 0.1),)), stats(1, 0), ["a"], ["probability"], "job.yaml")


def test_drift_rows_match_numpy_and_scipy_for_baseline_and_consecutive():
    ref = (0.1, 0.2, 0.3, 0.4)
    bins = {"x": Bins("x", edges=(0.0, 1.0, 2.0, 3.0, 4.0), reference=ref, reference_mean=2.0)}
    labels = bins["x"].labels
    now, before = [30, 0, 30, 40], [10, 20, 30, 40]

    def binned(counts, mean):
        return [
            {"scope": "model_input", "column": "x", "metric": "bin_count", "bucket": b, "value": float(n)}
            for b, n in zip(labels, counts, strict=True)
        ] + [{"scope": "model_input", "column": "x", "metric": "mean", "bucket": None, "value": mean}]

    got = {(r["scope"], r["metric"]): r for r in drift_rows(binned(now, 2.5), bins, {}, binned(before, 2.25), "ds=2024-05-31")}
    for scope, base, base_mean in (("drift_baseline", np.array(ref), 2.0), ("drift_consecutive", np.array(before, float), 2.25)):
        p = np.maximum(base / base.sum(), EPSILON)
        p /= p.sum()
        q = np.maximum(np.array(now) / sum(now), EPSILON)
        q /= q.sum()
        assert got[(scope, "psi")]["value"] == pytest.approx(
            sum((qi - pi) * np.log(qi / pi) for pi, qi in zip(p, q, strict=True))
        )
        assert got[(scope, "js_distance")]["value"] == pytest.approx(jensenshannon(base, now, base=2))
        assert got[(scope, "ks")]["value"] == pytest.approx(
            np.abs(np.cumsum(base / base.sum()) - np.cumsum(np.array(now) / sum(now))).max()
        )
        assert got[(scope, "mean_diff")]["value"] == pytest.approx(2.5 - base_mean)
    assert got[("drift_consecutive", "psi")]["bucket"] == "ds=2024-05-31" and got[("drift_baseline", "psi")]["bucket"] is None


# --- through the entry point ------------------------------------------------------------------


def gate_rows(tmp_path, partition):
    s = delta(tmp_path / "stats")
    s = s[(s["scope"] == "gate") & (s["partition"] == partition)]
    return {(r.metric, r.column): (r.value, r.bucket) for r in s.itertuples()}


def test_gate_failure_exits_3_publishes_no_scores_and_records_stats_and_ledger(demo, registry):
    tmp_path, _, source = demo
    conf = job_config(tmp_path, registry, gate={"min_rows": 1000, "max_psi": {"total_charges": 0.0}})
    assert main(["--conf", conf, "--partition", "ds=2024-06-01"]) == 3

    assert not DeltaTable.is_deltatable(str(tmp_path / "scored"))  # nothing published
    run = ledger(tmp_path / "runs").iloc[0]
    assert (run.status, run.exit_code) == ("gate_failed", 3)
    assert "min_rows 400 < 1000" in run.error and "max_psi(total_charges)" in run.error
    gate = gate_rows(tmp_path, "ds=2024-06-01")
    assert gate[("min_rows", "*")] == (400, "fail")
    assert gate[("max_psi", "total_charges")][1] == "fail" and gate[("max_psi", "total_charges")][0] > 0
    quarantined = expected_quarantine(source[source["ds"] == D1]).sum()
    # nothing published: the quarantined rows are held for the operator, not in the quarantine table
    assert (run.rows_in, run.rows_scored, run.rows_quarantined, run.rows_held) == (400, 0, 0, quarantined)
    assert not DeltaTable.is_deltatable(str(tmp_path / "quarantine"))
    held = delta(tmp_path / "quarantine_held")
    assert len(held) == quarantined and set(held["run_id"]) == {run.run_id}


@pytest.fixture(scope="module")
def pass_then_warn(tmp_path_factory, registry, spark):
    """Two days of demo input scored one after the other: ds=2024-06-01 under a gate it passes, then
    ds=2024-06-02 in warn mode under a max_psi of 0, which it breaches. The two runs are shared by
    the tests below: their exit codes, and what the warn run wrote to stderr."""
    tmp_path = tmp_path_factory.mktemp("gate")
    source = write_demo_input(tmp_path / "customers", days=2, rows_per_day=400)
    conf = job_config(tmp_path, registry, gate={"min_rows": 100, "max_quarantine_rate": 0.5, "max_null_rate": 0.5})
    passed = main(["--conf", conf, "--partition", "ds=2024-06-01"])
    conf = job_config(tmp_path, registry, gate={"mode": "warn", "max_psi": 0.0})
    with contextlib.redirect_stderr(io.StringIO()) as err:  # the job's log follows sys.stderr
        warned = main(["--conf", conf, "--partition", "ds=2024-06-02"])
    return SimpleNamespace(path=tmp_path, source=source, passed=passed, warned=warned, warn_stderr=err.getvalue())


def test_a_partition_that_passes_every_gate_check_is_published(pass_then_warn):
    tmp_path = pass_then_warn.path
    assert pass_then_warn.passed == 0
    assert gate_rows(tmp_path, "ds=2024-06-01")[("min_rows", "*")] == (400, "pass")
    assert set(v[1] for v in gate_rows(tmp_path, "ds=2024-06-01").values()) == {"pass"}


def test_warn_mode_publishes_a_partition_that_breaches_the_gate(pass_then_warn):
    tmp_path = pass_then_warn.path
    assert pass_then_warn.warned == 0
    assert "quality gate breached (gate.mode: warn): published anyway" in pass_then_warn.warn_stderr
    assert set(delta(tmp_path / "scored")["ds"]) == {D1, D2}
    runs = ledger(tmp_path / "runs").sort_values("started_at")
    assert list(runs["status"]) == ["succeeded", "succeeded"]
    assert gate_rows(tmp_path, "ds=2024-06-02")[("max_psi", "total_charges")][1] == "fail"


def test_drift_stats_match_numpy_and_scipy_against_the_training_reference_and_the_previous_partition(pass_then_warn, model_dir):
    tmp_path, source = pass_then_warn.path, pass_then_warn.source
    # drift of total_charges (no preprocessing step touches it) recomputed from the rows with numpy/scipy
    ref = json.loads((REPO / model_dir / "lakescore" / "reference.json").read_text())["features"]["total_charges"]
    edges = np.array([-np.inf, *ref["bins"]["edges"][1:-1], np.inf])

    def good(ds):
        day = source[source["ds"] == ds]
        values = day.loc[~expected_quarantine(day), "total_charges"].to_numpy(dtype=float)
        return values[np.isfinite(values)]

    def psi(p, q):
        p, q = np.maximum(p / p.sum(), EPSILON), np.maximum(q / q.sum(), EPSILON)
        p, q = p / p.sum(), q / q.sum()
        return float(np.sum((q - p) * np.log(q / p)))

    d1, d2 = np.histogram(good(D1), edges)[0].astype(float), np.histogram(good(D2), edges)[0].astype(float)
    s = delta(tmp_path / "stats")
    s = s[(s["partition"] == "ds=2024-06-02") & (s["column"] == "total_charges")]
    got = {(r.scope, r.metric): r for r in s.itertuples()}
    base = np.array(ref["bins"]["proportions"])
    assert got[("drift_baseline", "psi")].value == pytest.approx(psi(base, d2), rel=1e-9)
    assert got[("drift_baseline", "js_distance")].value == pytest.approx(jensenshannon(base, d2, base=2), rel=1e-9)
    assert got[("drift_baseline", "mean_diff")].value == pytest.approx(good(D2).mean() - ref["mean"], rel=1e-9)
    assert got[("drift_consecutive", "psi")].value == pytest.approx(psi(d1, d2), rel=1e-9)
    assert got[("drift_consecutive", "psi")].bucket == "ds=2024-06-01"  # compared with the partition before
    assert got[("drift_consecutive", "js_distance")].value == pytest.approx(jensenshannon(d1, d2, base=2), rel=1e-9)
    ks = np.abs(np.cumsum(d1 / d1.sum()) - np.cumsum(d2 / d2.sum())).max()
    assert got[("drift_consecutive", "ks")].value == pytest.approx(ks, rel=1e-9)
    assert got[("drift_consecutive", "mean_diff")].value == pytest.approx(good(D2).mean() - good(D1).mean(), rel=1e-9)
    # the prediction histogram drifts against the training reference (held-out predictions) and the previous partition
    probability = {(r.scope, r.metric) for r in delta(tmp_path / "stats").query("column == 'probability'").itertuples()}
    assert {("drift_baseline", "psi"), ("drift_consecutive", "psi")} <= probability


def test_a_model_without_reference_drifts_against_the_configured_input_partition(demo, registry, spark):
    from dataclasses import replace

    from jobs.model.resolve import resolve_model
    from jobs.model.training import fitted_values
    from jobs.run.plan import Plan, choose_pipeline
    from jobs.run.plan import drift_reference as _drift_reference
    from jobs.tables import read_table

    tmp_path, _, source = demo
    cfg = load_config(job_config(tmp_path, registry, drift={"reference": {"partition": "ds=2024-06-01"}}))
    model = resolve_model(cfg.model)
    steps = choose_pipeline(cfg, model)
    plan = Plan(steps, fitted_values(steps, model.reference, "model"))
    schema = read_table(spark, cfg.input.path, "embedded").schema
    assert _drift_reference(spark, cfg, "embedded", model, plan, schema, 0) is model.reference  # the model's own wins

    ref = _drift_reference(spark, cfg, "embedded", replace(model, reference=None), plan, schema, 0)
    day = source[source["ds"] == D1]
    good = day[~expected_quarantine(day)]
    assert ref["rows"] == len(good)  # the rows that pass the rules, nothing else
    charges = good["total_charges"].to_numpy(dtype=float)
    assert ref["features"]["total_charges"]["bins"]["edges"] == pytest.approx(list(np.quantile(charges, np.linspace(0, 1, 11))))
    # after preprocessing: monthly_charges' nulls are filled with the model's fitted median
    median = model.reference["fitted"][0]["value"]
    assert ref["features"]["monthly_charges"]["mean"] == pytest.approx(good["monthly_charges"].fillna(median).mean())
    assert ref["features"]["plan"]["frequencies"] == pytest.approx(
        (good["plan"].value_counts() / good["plan"].notna().sum()).to_dict()
    )
