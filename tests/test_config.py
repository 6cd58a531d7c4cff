import copy

import pytest
import yaml

from jobs.config import ConfigError, load_config, parse_config

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
        ("preprocessing", [{"step": "clip", "column": "t", "lower": 2, "upper": 1}], "preprocessing[0].lower: lower 2.0 is greater"),
        ("keys", ["bad name"], "churn.yaml: keys[0]: 'bad name' is not a valid column name"),
        ("engine", "spark", "churn.yaml: engine: expected one of auto, embedded, native"),
        ("scoring", {"batch_size": 0}, "churn.yaml: scoring.batch_size: expected a positive integer"),
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


def test_unreadable_and_invalid_yaml_name_the_file(tmp_path):
    with pytest.raises(ConfigError, match="nope.yaml: cannot read config"):
        load_config(tmp_path / "nope.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: [unclosed")
    with pytest.raises(ConfigError, match="bad.yaml: not valid YAML"):
        load_config(bad)


def test_config_hash_changes_with_what_is_computed_not_with_spark_settings():
    a = parse_config(BASE, "a.yaml")
    b = parse_config(with_("spark", {"conf": {"spark.executor.memory": "8g"}}), "b.yaml")
    c = parse_config(with_("model.uri", "models:/churn/2"), "a.yaml")
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash


def test_shipped_demo_config_is_valid():
    from tests.conftest import REPO

    cfg = load_config(REPO / "conf/jobs/churn.yaml")
    assert cfg.model.uri == "models:/lakescore_churn@champion"
    assert {r.kind for r in cfg.rules} == {"not_null", "range", "allowed_values"}
