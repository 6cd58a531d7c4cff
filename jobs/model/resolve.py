"""Resolving a model reference to one concrete version, on the driver, before scoring starts."""

from __future__ import annotations

import json
import logging
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import types as T

from jobs.config import ConfigError, ModelConfig, StepConfig, steps_from_spec

log = logging.getLogger("lakescore.models")

_ALIAS = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
_VERSION = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")


class ModelError(ValueError):
    """The model reference cannot be resolved or its signature cannot drive scoring."""


@dataclass(frozen=True)
class ResolvedModel:
    """What every scored row records, and what the workers load.

    Attributes:
        requested_uri: the reference in the config (``models:/churn@champion``).
        uri: the concrete reference it resolved to (``models:/churn/3``).
        local_path: the model's files, downloaded once on the driver.
    """

    requested_uri: str
    uri: str
    name: str
    version: str | None
    source_run_id: str | None
    local_path: str
    features: tuple[str, ...]
    inputs: T.StructType  # the signature's input columns and types (those it declares)
    outputs: T.StructType
    pipeline: tuple[StepConfig, ...] | None = None  # lakescore/pipeline.json, when the trainer logged one
    reference: dict[str, Any] | None = None  # lakescore/reference.json, likewise


def _artifacts(local: str, uri: str) -> tuple[tuple[StepConfig, ...] | None, dict[str, Any] | None]:
    """The pipeline spec and training reference logged with the model, if any.

    Raises:
        ModelError: a file is there but cannot be read as one.
    """
    folder = Path(local) / "lakescore"
    out: list[Any] = []
    for name in ("pipeline.json", "reference.json"):
        path = folder / name
        if not path.is_file():
            out.append(None)
            continue
        try:
            out.append(json.loads(path.read_text()))
        except ValueError as exc:
            raise ModelError(f"model {uri}: lakescore/{name} is not valid JSON: {exc}") from None
    spec, reference = out
    steps = None
    if spec is not None:
        try:
            steps = steps_from_spec(spec, f"model {uri} lakescore/pipeline.json")
        except ConfigError as exc:
            raise ModelError(str(exc)) from None
    return steps, reference


def _outputs(signature, uri: str) -> T.StructType:
    if signature is None or signature.outputs is None:
        raise ModelError(f"model {uri} has no output signature; log it with one so output types are known")
    fields = []
    for i, spec in enumerate(signature.outputs.inputs):
        name = getattr(spec, "name", None) or ("prediction" if len(signature.outputs.inputs) == 1 else f"output_{i}")
        try:
            spark_type = spec.type.to_spark()
        except Exception as exc:  # tensor specs and other shapes have no Spark column type
            raise ModelError(f"model {uri}: output {name!r} of type {spec.type} has no Spark type") from exc
        fields.append(T.StructField(name, spark_type, True))
    return T.StructType(fields)


def use_tracking(uri: str | None) -> None:
    """Point MLflow's tracking and model registry at ``uri`` (None: leave MLflow's own default,
    ``MLFLOW_TRACKING_URI`` or ./mlruns)."""
    import mlflow

    if uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)


def resolve_model(cfg: ModelConfig) -> ResolvedModel:
    """Pin ``cfg.uri`` to one version, download it, and read its signature.

    Raises:
        ModelError: the reference does not resolve, or the model has no usable signature.
    """
    import mlflow
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException
    from mlflow.models import Model

    use_tracking(cfg.tracking_uri)
    client = MlflowClient()
    name, version, run_id, uri = cfg.uri, None, None, cfg.uri
    try:
        if m := _ALIAS.match(cfg.uri):
            mv = client.get_model_version_by_alias(m["name"], m["alias"])
        elif m := _VERSION.match(cfg.uri):
            mv = client.get_model_version(m["name"], m["version"])
        else:
            mv = None
        if mv is not None:
            name, version, run_id = mv.name, str(mv.version), mv.run_id
            uri = f"models:/{mv.name}/{mv.version}"
        elif cfg.uri.startswith("runs:/"):
            run_id = cfg.uri.split("/")[1]
        local = mlflow.artifacts.download_artifacts(uri, dst_path=tempfile.mkdtemp(prefix="lakescore-model-"))
    except MlflowException as exc:
        raise ModelError(f"model {cfg.uri} does not resolve: {exc.message}") from None
    signature = Model.load(local).signature
    if signature is None:
        raise ModelError(f"model {uri} has no signature; LakeScore needs one for input and output columns")
    features = cfg.features or tuple(signature.inputs.input_names())
    inputs = T.StructType(
        [T.StructField(spec.name, spec.type.to_spark(), True) for spec in signature.inputs.inputs if getattr(spec, "name", None)]
    )
    outputs = _outputs(signature, uri)
    steps, reference = _artifacts(local, uri)
    log.info(
        "model %s resolved to %s (run %s), features=%s outputs=%s, pipeline: %s",
        cfg.uri,
        uri,
        run_id,
        list(features),
        outputs.simpleString(),
        "none logged" if steps is None else f"{len(steps)} step(s)",
    )
    return ResolvedModel(cfg.uri, uri, name, version, run_id, local, tuple(features), inputs, outputs, steps, reference)


def peek_version(cfg: ModelConfig) -> str | None:
    """The version a ``models:/`` reference points at now, without downloading the model
    (None for ``runs:/`` and paths, which have no registry version).

    Raises:
        ModelError: the name, version or alias does not exist.
    """
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    use_tracking(cfg.tracking_uri)
    try:
        if m := _ALIAS.match(cfg.uri):
            return str(MlflowClient().get_model_version_by_alias(m["name"], m["alias"]).version)
        if m := _VERSION.match(cfg.uri):
            return str(MlflowClient().get_model_version(m["name"], m["version"]).version)
    except MlflowException as exc:
        raise ModelError(f"model {cfg.uri} does not resolve: {exc.message}") from None
    return None
