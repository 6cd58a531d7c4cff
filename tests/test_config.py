import copy

import pytest
import yaml

from jobs.config import (
    ConfigError,
    DegradationConfig,
    StepConfig,
    diff_steps,
    load_config,
    parse_config,
    pipeline_spec,
    steps_from_spec,
)

BASE = {
    "name": "churn",
    "input": {"path": "/data/customers", "partition_by": ["ds"]},
    "keys": ["customer_id"],
    "model": {"uri": "models:/churn@champion"},
    "validation": {"rules": [{"type": "range", "column": "tenure", "min": 0}]},
    "preprocessing": [{"step": "cast", "column": "tenure", "to": "double"}],
    "output": {"scored": "/t/s", "quarantine": "/t/q", "stats": "/t/st", "runs": "/t/r"},
}


def with_(path: str, value):
    raw = copy.deepcopy(BASE)
    node = raw
    keys = path.split(".")
    for k in keys[:-1]:
        node = node[int(k)] if isinstance(node, list) else node[k]
    last = keys[-1]
    if isinstance(node, list):
        node[int(last)] = value
    else:
        node[last] = value
    return raw


def test_valid_config_parses_into_typed_objects():
    cfg = parse_config(BASE, "churn.yaml")
    assert cfg.input.partition_by == ("ds",)
    assert cfg.rules[0].kind == "range" and cfg.rules[0].min == 0.0 and cfg.rules[0].name == "range_tenure"
    assert cfg.preprocessing[0].param("to") == "double"
    assert cfg.engine == "auto" and cfg.scoring.batch_size == 100_000


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        ("output.partition_by", ["x"], "churn.yaml: output.partition_by: unknown key"),
        ("input.partition_by", [], "churn.yaml: input.partition_by: the input must be partitioned"),
        ("model.uri", "churn", "churn.yaml: model.uri: 'churn' is not models:/"),
        ("validation.rules", [{"type": "range", "column": "t"}], "churn.yaml: validation.rules[0]: a range rule needs min"),
        ("validation.rules", [{"type": "regexx", "column": "t"}], "churn.yaml: validation.rules[0].type: unknown rule type"),
        ("preprocessing", [{"step": "cast", "column": "t", "to": "decimal"}], "churn.yaml: preprocessing[0].to: unknown type"),
        (
            "preprocessing",
            [{"step": "clip", "column": "t", "lower": 2, "upper": 1}],
            "preprocessing[0].lower: lower 2.0 is greater",
        ),
        ("keys", ["bad name"], "churn.yaml: keys[0]: 'bad name' is not a valid column name"),
        ("engine", "spark", "churn.yaml: engine: expected one of auto, embedded, native"),
        ("scoring", {"batch_size": 0}, "churn.yaml: scoring.batch_size: expected a positive integer"),
        (
            "validation.rules",
            [{"type": "regex", "column": "t", "pattern": "a("}],
            "churn.yaml: validation.rules[0].pattern: 'a(' is not a valid",
        ),
        ("validation.rules", [{"type": "regex", "column": "t"}], "churn.yaml: validation.rules[0].pattern: is required"),
        ("validation.rules", [{"type": "unique", "column": "t"}], "churn.yaml: validation.rules[0].column: unknown key"),
        (
            "validation.rules",
            [{"type": "unique", "columns": []}],
            "churn.yaml: validation.rules[0].columns: expected at least one",
        ),
        (
            "validation.rules",
            [{"type": "unique", "columns": ["a", "a"]}],
            "churn.yaml: validation.rules[0].columns: columns repeat",
        ),
        (
            "validation.rules",
            [{"type": "range", "column": "t", "min": 0, "allow_nan": "yes"}],
            "rules[0].allow_nan: expected true or false",
        ),
        ("validation.rules", [{"type": "not_null", "column": "t", "allow_nan": True}], "rules[0].allow_nan: unknown key"),
        (
            "preprocessing",
            [
                {"step": "cast", "column": "t", "to": "double"},
                {"step": "log1p", "column": "t"},
                {"step": "bucketize", "column": "t", "splits": [0, 5, 5]},
            ],
            "churn.yaml: preprocessing[2].splits[2]: splits must increase strictly: 5.0 after 5.0",
        ),
        (
            "preprocessing",
            [{"step": "bucketize", "column": "t", "splits": [1]}],
            "churn.yaml: preprocessing[0].splits: expected a list of at least two",
        ),
        (
            "preprocessing",
            [{"step": "bucketize", "column": "t", "splits": [0, "x"]}],
            "churn.yaml: preprocessing[0].splits[1]: expected a number",
        ),
        (
            "preprocessing",
            [{"step": "fill_null", "column": "t", "value": {"reference": "p90"}}],
            "preprocessing[0].value.reference: unknown statistic 'p90'",
        ),
        (
            "preprocessing",
            [{"step": "fill_null", "column": "t", "value": {"median": True}}],
            "preprocessing[0].value.median: unknown key",
        ),
        (
            "preprocessing",
            [{"step": "map_categories", "column": "t", "mapping": []}],
            "churn.yaml: preprocessing[0].mapping: expected a non-empty mapping",
        ),
        (
            "preprocessing",
            [{"step": "map_categories", "column": "t", "mapping": {"a": [1]}}],
            "churn.yaml: preprocessing[0].mapping.a: expected a scalar",
        ),
        ("preprocessing", [{"step": "derive", "column": "t"}], "churn.yaml: preprocessing[0].expr: is required"),
        (
            "preprocessing",
            [{"step": "derive", "column": "bad col", "expr": "1"}],
            "churn.yaml: preprocessing[0].column: 'bad col' is not a valid",
        ),
        (
            "preprocessing",
            [{"step": "select", "columns": []}],
            "churn.yaml: preprocessing[0].columns: expected at least one column",
        ),
        ("preprocessing", [{"step": "select", "column": "t"}], "churn.yaml: preprocessing[0].column: unknown key"),
        (
            "preprocessing",
            [{"step": "rename", "columns": {"a": "c", "b": "c"}}],
            "preprocessing[0].columns: two columns renamed to the same name",
        ),
        (
            "preprocessing",
            [{"step": "rename", "columns": ["a"]}],
            "churn.yaml: preprocessing[0].columns: expected a non-empty mapping",
        ),
        ("preprocessing", {"step": "log1p"}, "churn.yaml: preprocessing: expected a list of steps"),
        ("preprocessing_override", "yes", "churn.yaml: preprocessing_override: expected true or false"),
        ("contract", {"columns": {"t": "varchar"}}, "churn.yaml: contract.columns.t: unknown type 'varchar'"),
        ("contract", {"columns": ["t"]}, "churn.yaml: contract.columns: expected a mapping"),
        ("contract", {"types": {}}, "churn.yaml: contract.types: unknown key"),
    ],
)
def test_config_errors_name_the_file_and_key_path(path, value, message):
    with pytest.raises(ConfigError) as err:
        parse_config(with_(path, value), "churn.yaml")
    assert message in str(err.value)


def test_missing_required_section_is_named():
    raw = copy.deepcopy(BASE)
    del raw["model"]
    with pytest.raises(ConfigError, match=r"churn.yaml: model: is required"):
        parse_config(raw, "churn.yaml")


def test_output_tables_must_differ_from_input_and_each_other():
    with pytest.raises(ConfigError, match="must all be different paths"):
        parse_config(with_("output.stats", "/t/s"), "x.yaml")


def test_set_overrides_apply_before_validation(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(BASE))
    cfg = load_config(path, ["scoring.batch_size=5000", "model.uri=models:/churn/3"])
    assert cfg.scoring.batch_size == 5000
    assert cfg.model.uri == "models:/churn/3"
    with pytest.raises(ConfigError, match=r"job.yaml: scoring.batch_size: expected a positive integer"):
        load_config(path, ["scoring.batch_size=-1"])


def test_an_unreadable_config_file_is_named(tmp_path):
    with pytest.raises(ConfigError, match=r"nope\.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml")


def test_a_config_file_that_is_not_valid_yaml_is_named(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match=r"bad\.yaml: not valid YAML"):
        load_config(bad)


def test_config_hash_changes_with_what_is_computed_not_with_spark_settings():
    a = parse_config(BASE, "a.yaml")
    b = parse_config(with_("spark", {"conf": {"spark.executor.memory": "8g"}}), "b.yaml")
    c = parse_config(with_("model.uri", "models:/churn/2"), "a.yaml")
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash


def test_a_config_file_that_is_not_utf8_is_named_with_its_line(tmp_path):
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(yaml.safe_dump(BASE).encode() + "# café\n".encode("latin-1"))
    with pytest.raises(ConfigError, match=r"latin1\.yaml: line \d+: not UTF-8 text \(byte 0xe9\)"):
        load_config(latin1)


@pytest.fixture
def job_yaml(tmp_path):
    path = tmp_path / "job.yaml"
    path.write_text(yaml.safe_dump(BASE))
    return path


def test_set_of_a_dotted_spark_setting_sets_that_one_key(job_yaml):
    cfg = load_config(job_yaml, ["spark.conf.spark.sql.shuffle.partitions=1", "spark.conf.spark.sql.ansi.enabled=true"])
    assert cfg.spark.conf == (("spark.sql.ansi.enabled", "true"), ("spark.sql.shuffle.partitions", "1"))


def test_a_spark_setting_must_be_a_scalar():
    with pytest.raises(ConfigError, match=r"x.yaml: spark.conf.spark: expected a scalar"):
        parse_config(with_("spark", {"conf": {"spark": {"sql": {"shuffle": 1}}}}), "x.yaml")


def test_set_reaches_list_items_as_errors_spell_them(job_yaml):
    assert load_config(job_yaml, ["validation.rules[0].min=5"]).rules[0].min == 5.0
    assert load_config(job_yaml, ["validation.rules.0.min=6"]).rules[0].min == 6.0
    with pytest.raises(ConfigError, match=r"--set validation.rules\[3\].min: 3: expected an index below 1"):
        load_config(job_yaml, ["validation.rules[3].min=5"])
    with pytest.raises(ConfigError, match=r"--set name.x: cannot set 'x' inside a str"):
        load_config(job_yaml, ["name.x=1"])


@pytest.mark.parametrize(
    ("assignment", "message"),
    [
        # unknown keys, refused as in the file, naming the --set
        (
            "scoring.batchsize=5",
            "job.yaml: scoring.batchsize: unknown key (allowed: batch_size) (from --set scoring.batchsize=5)",
        ),
        ("modle.uri=models:/x/1", "job.yaml: modle: unknown key (allowed: contract, drift, engine,"),
        ("modle.uri=models:/x/1", "(from --set modle.uri=models:/x/1)"),
        ("validation.rules[0].maximum=5", "job.yaml: validation.rules[0].maximum: unknown key"),
        ("scoring.batch_size=[1", "--set 'scoring.batch_size=[1': the value is not valid YAML"),
        # numbers beyond what the run can take, refused before it starts
        ("scoring.batch_size=99999999999", "scoring.batch_size: expected a positive integer between 1 and 1,000,000"),
        ("scoring.batch_size=1000001", "between 1 and 1,000,000, got 1000001"),
        ("stats.top_k=5000", "stats.top_k: expected a positive integer between 1 and 1,000"),
        ("gate.min_rows=99999999999999999999", "gate.min_rows: expected a non-negative integer between 0 and"),
        ("gate.max_psi=.nan", "gate.max_psi: expected a number, got nan"),
        ("validation.rules[0].min=.nan", "validation.rules[0].min: expected a number, got nan"),
    ],
)
def test_a_set_that_cannot_take_effect_is_refused_naming_it(job_yaml, assignment, message):
    with pytest.raises(ConfigError) as err:
        load_config(job_yaml, [assignment])
    assert message in str(err.value)


def test_the_largest_batch_size_is_taken(job_yaml):
    assert load_config(job_yaml, ["scoring.batch_size=1000000"]).scoring.batch_size == 1_000_000


# every config field, a different value for it, and whether the config hash must change with it
HASHED = {
    "input.path": ("/data/other", True),
    "input.partition_by": (("ds", "hour"), True),
    "keys": (("id",), True),
    "output.passthrough": (("region",), True),
    "contract.columns": ((("tenure", "double"),), True),
    "rules": ((), True),
    "preprocessing": (None, True),
    "preprocessing_override": (True, True),
    "model.uri": ("models:/churn/2", True),
    "model.tracking_uri": ("http://mlflow:5000", True),
    "model.features": (("tenure",), True),
    "stats.top_k": (11, True),
    "drift.reference_partition": ("ds=2024-06-01", True),
    "gate.mode": ("warn", True),
    "gate.min_rows": (5, True),
    "gate.max_quarantine_rate": (0.5, True),
    "gate.max_null_rate": ((("*", 0.1),), True),
    "gate.max_psi": ((("*", 0.2),), True),
    "name": ("other", False),
    "source": ("other.yaml", False),
    "engine": ("native", False),
    "output.scored": ("/u/s", False),
    "output.quarantine": ("/u/q", False),
    "output.stats": ("/u/st", False),
    "output.runs": ("/u/r", False),
    "output.reports": ("/u/reports", False),
    "output.held": ("/u/held", False),
    "scoring.batch_size": (5000, False),
    "spark.master": ("local[1]", False),
    "spark.app_name": ("x", False),
    "spark.conf": ((("spark.sql.shuffle.partitions", "1"),), False),
    "model.allow_local": (True, False),
    "model.registry_timeout_seconds": (1.0, False),
    "model.challengers": (("models:/churn@challenger",), False),
    "output.shadow": ("/u/shadow", False),
    "output.model_events": ("/u/events", False),
    "promotion.min_partitions": (5, False),
    # read by the evaluation job after publication: nothing the scoring job publishes depends on them
    "evaluation.labels": ("/u/labels", False),
    "evaluation.label": ("churned", False),
    "evaluation.keys": (("customer_id",), False),
    "evaluation.partition_by": (("ds",), False),
    "evaluation.horizon_days": (7, False),
    "evaluation.min_labelled": (0.5, False),
    "evaluation.output": ("/u/evaluation", False),
    "evaluation.output_column": ("score", False),
    "evaluation.decision_column": ("decision", False),
    "evaluation.degradation": (DegradationConfig((("roc_auc", 0.1),), 1, 2, 0.3), False),
    "evaluation.signals": ("/u/signals", False),
    "evaluation.task": ("regression", False),
}


def replaced(cfg, path: str, value):
    """``cfg`` with the field at ``section.field`` (or a JobConfig field) set to ``value``."""
    import dataclasses

    section, _, name = path.rpartition(".")
    if not section:
        return dataclasses.replace(cfg, **{name: value})
    return dataclasses.replace(cfg, **{section: dataclasses.replace(getattr(cfg, section), **{name: value})})


def config_fields(cfg) -> set[str]:
    import dataclasses

    out = set()
    for f in dataclasses.fields(cfg):
        value = getattr(cfg, f.name)
        is_section = dataclasses.is_dataclass(value) and f.name not in ("rules", "preprocessing")
        out |= {f"{f.name}.{g.name}" for g in dataclasses.fields(value)} if is_section else {f.name}
    return out


def test_every_config_field_is_classified_as_hashed_or_not():
    cfg = parse_config(BASE, "x.yaml")
    assert config_fields(cfg) - set(HASHED) == set(), "decide whether these change what a run computes"


@pytest.mark.parametrize("path", sorted(HASHED))
def test_config_hash_changes_exactly_with_what_changes_a_published_partition(path):
    cfg = parse_config(BASE, "x.yaml")
    assert path in config_fields(cfg), f"{path} is classified but is no config field: remove it from HASHED"
    value, changes = HASHED[path]
    other = replaced(cfg, path, value)
    assert (other.config_hash != cfg.config_hash) is changes
    assert (other.config_hashes != cfg.config_hashes) is changes


@pytest.mark.parametrize(
    ("one", "other"),
    [
        ("http://mlflow.example:5000", "HTTP://MLflow.Example:5000/"),
        ("sqlite:////tmp/mlflow.db", "sqlite:////tmp/mlflow.db/"),
        ("databricks", "databricks"),
        ("https://user:secret@mlflow.example", "https://user:rotated@mlflow.example"),
    ],
)
def test_the_tracking_uri_hashes_in_one_spelling(one, other):
    a = parse_config(with_("model", {"uri": "models:/churn@champion", "tracking_uri": one}), "x.yaml")
    b = parse_config(with_("model", {"uri": "models:/churn@champion", "tracking_uri": other}), "x.yaml")
    assert a.config_hash == b.config_hash


def test_the_input_path_hashes_in_one_spelling_and_its_path_case_counts():
    def hash_of(path):
        return parse_config(with_("input.path", path), "x.yaml").config_hash

    assert hash_of("s3a://Bucket/customers/") == hash_of("s3://bucket/customers")
    assert hash_of("s3://bucket/Customers") != hash_of("s3://bucket/customers")


def test_changed_sections_name_what_changed_in_order():
    from jobs.config.sections import changed_sections

    a = parse_config(BASE, "x.yaml")
    b = parse_config(
        with_("validation.rules", []) | {"preprocessing": [], "output": BASE["output"] | {"reports": "/else"}}, "x.yaml"
    )
    assert changed_sections(a.config_hashes, b.config_hashes) == ["rules", "preprocessing"]
    assert changed_sections(a.config_hashes, a.config_hashes) == []
    assert changed_sections({"old": "1"}, {"new": "2"}) == ["new", "old"]


def test_shipped_demo_config_is_valid():
    from tests.helpers import REPO

    cfg = load_config(REPO / "conf/jobs/churn.yaml")
    assert cfg.model.uri == "models:/lakescore_churn@champion"
    assert {r.kind for r in cfg.rules} == {"not_null", "unique", "range", "allowed_values"}
    assert dict(cfg.contract.columns)["customer_id"] == "bigint"
    assert cfg.preprocessing is None  # the demo model carries its pipeline


def new_keys_config():
    """A config using the newer rule types, steps and contract spellings, parsed."""
    raw = with_(
        "validation.rules",
        [
            {"type": "regex", "column": "plan", "pattern": "^[a-z]+$"},
            {"type": "unique", "columns": ["customer_id", "ds"]},
            {"type": "range", "column": "charge", "min": 0, "allow_nan": True},
            {"type": "range", "column": "other", "max": 1},
        ],
    )
    raw["preprocessing"] = [
        {"step": "fill_null", "column": "charge", "value": {"reference": "median"}},
        {"step": "bucketize", "column": "charge", "splits": [0, 10, 100]},
        {"step": "map_categories", "column": "plan", "mapping": {"a": "x", 1: "y"}},
        {"step": "rename", "columns": {"plan": "tier"}},
    ]
    raw["contract"] = {"columns": {"customer_id": "long", "charge": "Double"}}
    return parse_config(raw, "x.yaml")


def test_new_rule_keys_parse_with_their_defaults():
    regex, unique, nan_ok, strict = new_keys_config().rules
    assert (regex.name, regex.pattern) == ("regex_plan", "^[a-z]+$")
    assert (unique.name, unique.columns, unique.column) == ("unique_customer_id_ds", ("customer_id", "ds"), None)
    assert nan_ok.allow_nan is True and strict.allow_nan is False


def test_new_step_keys_parse_with_their_defaults():
    cfg = new_keys_config()
    fill, bucket, mapping, rename = cfg.preprocessing
    assert fill.param("reference") == "median" and fill.param("value") is None
    assert bucket.param("splits") == (0.0, 10.0, 100.0)
    assert dict(mapping.param("mapping")) == {"a": "x", "1": "y"} and mapping.param("other") == "other"
    assert rename.column is None and dict(rename.param("columns")) == {"plan": "tier"}
    assert cfg.preprocessing_override is False


def test_declared_contract_type_names_are_normalised_to_spark_names():
    assert new_keys_config().contract.columns == (("customer_id", "bigint"), ("charge", "double"))


def test_absent_preprocessing_differs_from_an_empty_list():
    assert parse_config(BASE | {"preprocessing": None}, "x.yaml").preprocessing is None
    assert parse_config(BASE | {"preprocessing": []}, "x.yaml").preprocessing == ()


ALL_STEPS = [
    {"step": "cast", "column": "a", "to": "double"},
    {"step": "fill_null", "column": "a", "value": {"reference": "median"}},
    {"step": "fill_null", "column": "b", "value": "none"},
    {"step": "clip", "column": "a", "lower": 0.0, "upper": 5.0},
    {"step": "log1p", "column": "a"},
    {"step": "bucketize", "column": "a", "splits": [float("-inf"), 0.0, 1.0, float("inf")]},
    {"step": "map_categories", "column": "b", "mapping": {"x": "X"}, "other": "rest"},
    {"step": "derive", "column": "c", "expr": "a * 2"},
    {"step": "rename", "columns": {"c": "d"}},
    {"step": "select", "columns": ["a", "b", "d"]},
]


def test_pipeline_spec_round_trips_through_json_to_equal_steps():
    import json

    steps = parse_config(BASE | {"preprocessing": ALL_STEPS}, "x.yaml").preprocessing
    spec = json.loads(json.dumps(pipeline_spec(steps)))
    assert spec["steps"] == ALL_STEPS  # the YAML form, readable in the model's artifacts
    assert steps_from_spec(spec, "model.json") == steps


def test_step_differences_name_the_index_and_the_field():
    a = parse_config(BASE | {"preprocessing": ALL_STEPS[:3]}, "x.yaml").preprocessing
    changed = [ALL_STEPS[0] | {"to": "float"}, ALL_STEPS[1], ALL_STEPS[2] | {"value": "missing"}]
    b = parse_config(BASE | {"preprocessing": [*changed, ALL_STEPS[4]]}, "x.yaml").preprocessing
    assert diff_steps(a, b, "the model", "the config") == [
        "preprocessing[0].to: the model has 'double', the config has 'float'",
        "preprocessing[2].value: the model has 'none', the config has 'missing'",
        'preprocessing[3]: the config has {"step": "log1p", "column": "a"}, the model has no step 3',
    ]
    assert diff_steps(a, a, "m", "c") == []
    assert StepConfig("log1p", "a") == b[3]
