"""Resolving a model reference to one concrete version, on the driver, before scoring starts.

Three ways it can fail, told apart because they need different responses:

* :class:`RegistryUnavailableError`: the registry did not answer (refused, timed out, 5xx). A retry
  later may work: exit 1. Each request waits at most ``model.registry_timeout_seconds`` and the
  retries' back-off fits in that time too, instead of MLflow's default 120 s times 7 retries.
* :class:`ModelError`: the reference does not resolve, or what it resolves to is not a usable
  model (no or a bad ``MLmodel``, missing files, no signature). Retrying will not help: exit 2.
* ``transforms.model_cache.ModelLoadError``: the model passed these checks but a Python worker
  could not load it.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import os
import re
import shutil
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pyspark.sql import types as T

from jobs.config import ConfigError, ModelConfig, StepConfig, steps_from_spec
from jobs.model.training import METADATA_KEY
from jobs.redact import redact
from transforms.cbpe import Calibration

log = logging.getLogger("lakescore.models")

ALIAS_URI = re.compile(r"^models:/(?P<name>[^/@]+)@(?P<alias>[\w-]+)$")
VERSION_URI = re.compile(r"^models:/(?P<name>[^/@]+)/(?P<version>\d+)$")
MAX_RETRIES = 7  # MLflow's own default: the most retries the timeout budget is given
TIMEOUT_VAR, RETRIES_VAR = "MLFLOW_HTTP_REQUEST_TIMEOUT", "MLFLOW_HTTP_REQUEST_MAX_RETRIES"


class ModelError(ValueError):
    """The model reference cannot be resolved, or its files cannot drive scoring."""


class RegistryUnavailableError(RuntimeError):
    """The model registry did not answer in time: try again later (exit 1, not a config error)."""


@dataclass(frozen=True)
class ResolvedModel:
    """What every scored row records, and what the workers load.

    Attributes:
        requested_uri: the reference in the config (``models:/churn@champion``).
        uri: the concrete reference it resolved to (``models:/churn/3``).
        local_path: the model's files, downloaded once on the driver, inside ``workdir``.
        workdir: the run's own temporary folder for the model; :func:`release_model` removes it.
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
    workdir: str | None = None
    calibration: dict[str, Any] | None = None  # lakescore/calibration.json (transforms.cbpe.Calibration), likewise


def _artifacts(local: str, uri: str, declared: Sequence[str] = ()) -> tuple[tuple[StepConfig, ...] | None, Any, Any]:
    """The pipeline spec, training reference and calibration map logged with the model, if any.

    ``declared``: the files the model's MLmodel metadata says it carries (``TRAINER_METADATA``).

    Raises:
        ModelError: a file is there but cannot be read as one, or a declared file is missing
            (scoring without the model's preprocessing would be silently wrong).
    """
    folder = Path(local) / "lakescore"
    out: list[Any] = []
    for name in ("pipeline.json", "reference.json", "calibration.json"):
        path = folder / name
        if not path.is_file():
            if f"lakescore/{name}" in declared:
                raise ModelError(
                    f"model {uri} was logged with lakescore/{name} (its MLmodel metadata says so) but the file "
                    "is missing from its artifacts; refusing to score it without its preprocessing, reference and calibration"
                )
            out.append(None)
            continue
        try:
            out.append(json.loads(path.read_text()))
        except ValueError as exc:
            raise ModelError(f"model {uri}: lakescore/{name} is not valid JSON: {exc}") from None
    spec, reference, calibration = out
    if calibration is not None:
        try:
            Calibration.from_map(calibration)
        except ValueError as exc:
            raise ModelError(f"model {uri}: lakescore/calibration.json is not a calibration map: {exc}") from None
    steps = None
    if spec is not None:
        try:
            steps = steps_from_spec(spec, f"model {uri} lakescore/pipeline.json")
        except ConfigError as exc:
            raise ModelError(str(exc)) from None
    return steps, reference, calibration


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


def _pyfunc_files(flavor: dict[str, Any]) -> list[str]:
    """The files and folders a pyfunc flavor says its loader reads, relative to the model."""
    named = [flavor.get(key) for key in ("data", "python_model", "code")]
    named += [a.get("path") for a in (flavor.get("artifacts") or {}).values() if isinstance(a, dict)]
    return [p for p in named if isinstance(p, str) and p and not os.path.isabs(p)]


def _read_model(local: str, uri: str) -> Any:
    """The model's MLmodel, checked to be a pyfunc whose files are all there, with a signature.

    Raises:
        ModelError: naming what is wrong with the files (a corrupt model is not retried).
    """
    from mlflow.models import Model

    try:
        model = Model.load(local)
    except Exception as exc:  # a missing or unparsable MLmodel: yaml, OSError, MlflowException
        raise ModelError(f"model {uri}: its MLmodel cannot be read: {type(exc).__name__}: {redact(str(exc))}") from None
    flavor = (model.flavors or {}).get("python_function")
    if not isinstance(flavor, dict) or not flavor.get("loader_module"):
        raise ModelError(f"model {uri} has no python_function flavor; LakeScore scores pyfunc models")
    missing = [p for p in _pyfunc_files(flavor) if not (Path(local) / p).exists()]
    if missing:
        raise ModelError(f"model {uri} is incomplete: its MLmodel names {', '.join(missing)}, which are not among its files")
    if model.signature is None:
        raise ModelError(f"model {uri} has no signature; LakeScore needs one for input and output columns")
    return model


def use_tracking(uri: str | None) -> None:
    """Point MLflow's tracking and model registry at ``uri`` (None: leave MLflow's own default,
    ``MLFLOW_TRACKING_URI`` or ./mlruns)."""
    import mlflow

    if uri:
        mlflow.set_tracking_uri(uri)
        mlflow.set_registry_uri(uri)


def _backoff_seconds(retries: int, factor: float, jitter: float) -> float:
    """The longest the back-off sleeps of ``retries`` retries take, as MLflow configures urllib3:
    none before the first, then ``factor * 2**(n-1)``, each plus up to twice ``jitter``."""
    return factor * (2**retries - 2) + 2 * jitter * retries if retries else 0.0


def retries_within(budget: float, factor: float, jitter: float) -> int:
    """The most retries (at most ``MAX_RETRIES``) whose back-off fits in ``budget`` seconds."""
    retries = 0
    while retries < MAX_RETRIES and _backoff_seconds(retries + 1, factor, jitter) <= budget:
        retries += 1
    return retries


def registry_limits(timeout: float, env: Mapping[str, str] = os.environ) -> dict[str, str]:
    """MLflow's HTTP settings bounding one registry call by ``timeout`` seconds: the request
    timeout, and as many retries as fit their back-off in it. A variable the user set is theirs:
    it is left out, so it wins."""
    from mlflow.environment_variables import MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR, MLFLOW_HTTP_REQUEST_BACKOFF_JITTER

    retries = retries_within(timeout, MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR.get(), MLFLOW_HTTP_REQUEST_BACKOFF_JITTER.get())
    limits = {TIMEOUT_VAR: str(max(1, math.ceil(timeout))), RETRIES_VAR: str(retries)}
    return {key: value for key, value in limits.items() if key not in env}


@contextlib.contextmanager
def bounded_registry(cfg: ModelConfig) -> Iterator[None]:
    """Registry calls bounded by ``cfg.registry_timeout_seconds`` (MLflow reads these variables on
    every request), and their failures sorted: unavailable (retry later) or not resolvable."""
    from mlflow.exceptions import MlflowException

    added = registry_limits(cfg.registry_timeout_seconds)
    os.environ.update(added)
    try:
        yield
    except MlflowException as exc:
        if _unavailable(exc):
            raise RegistryUnavailableError(
                f"model {cfg.uri}: the model registry at {_tracking_uri(cfg)} did not answer within "
                f"{cfg.registry_timeout_seconds:g} s per request (model.registry_timeout_seconds): {redact(exc.message)}"
            ) from None
        raise ModelError(f"model {cfg.uri} does not resolve: {redact(exc.message)}") from None
    finally:
        for key in added:
            os.environ.pop(key, None)


def _tracking_uri(cfg: ModelConfig) -> str:
    import mlflow

    return redact(cfg.tracking_uri or mlflow.get_tracking_uri())


def _unavailable(exc: BaseException) -> bool:
    """Whether an MLflow error means the registry did not answer: a connection refused or timed
    out, retries used up, or the server's own failure (5xx), anywhere in the exception's chain."""
    import requests
    from mlflow.exceptions import RestException

    if isinstance(exc, RestException) and exc.get_http_status_code() >= 500:
        return True
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, (requests.exceptions.ConnectionError, requests.exceptions.Timeout, requests.exceptions.RetryError)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def _refuse_local(cfg: ModelConfig) -> None:
    """A local directory only with ``model.allow_local`` (parse_config refuses it too; a
    ModelConfig made in code comes here without that check)."""
    if not cfg.local:
        return
    if not cfg.allow_local:
        raise ConfigError(f"model.uri: {cfg.uri!r} is a local directory; it is loaded only with model.allow_local: true")
    log.warning("model.allow_local: loading model %s from a local directory; its code runs in every worker", cfg.uri)


def _pin(cfg: ModelConfig) -> tuple[str, str, str | None, str | None]:
    """(name, concrete uri, version, run id) of the reference, asking the registry for ``models:/``."""
    from mlflow import MlflowClient

    if m := ALIAS_URI.match(cfg.uri):
        mv = MlflowClient().get_model_version_by_alias(m["name"], m["alias"])
    elif m := VERSION_URI.match(cfg.uri):
        mv = MlflowClient().get_model_version(m["name"], m["version"])
    else:  # no registry to ask (a client would create MLflow's default store in the working directory)
        return cfg.uri, cfg.uri, None, cfg.uri.split("/")[1] if cfg.uri.startswith("runs:/") else None
    return mv.name, f"models:/{mv.name}/{mv.version}", str(mv.version), mv.run_id


def _download(uri: str, workdir: str) -> str:
    """The model's files under ``workdir``, as MLflow downloads them.

    Raises:
        ModelError: a local path that does not exist or is not a folder.
    """
    import mlflow

    try:
        return mlflow.artifacts.download_artifacts(uri, dst_path=os.path.join(workdir, "files"))
    except (FileNotFoundError, NotADirectoryError) as exc:
        raise ModelError(f"model {uri}: its files are missing: {exc}") from None


def resolve_model(cfg: ModelConfig) -> ResolvedModel:
    """Pin ``cfg.uri`` to one version, download it into a folder of its own, and read its signature.

    Raises:
        ConfigError: a local directory without ``model.allow_local``.
        RegistryUnavailableError: the registry did not answer in time (retry later).
        ModelError: the reference does not resolve, or the model is not usable.
    """
    _refuse_local(cfg)
    use_tracking(cfg.tracking_uri)
    workdir = tempfile.mkdtemp(prefix="lakescore-model-")
    try:
        with bounded_registry(cfg):
            name, uri, version, run_id = _pin(cfg)
            local = _download(uri, workdir)
        return _described(cfg, local, uri, (name, version, run_id), workdir)
    except BaseException:  # nothing of a model that is not used is left behind
        shutil.rmtree(workdir, ignore_errors=True)
        raise


def _described(cfg: ModelConfig, local: str, uri: str, pinned: tuple[str, str | None, str | None], workdir: str) -> ResolvedModel:
    """The resolved model, from its downloaded files; ``pinned`` is (name, version, run id)."""
    name, version, run_id = pinned
    mlmodel = _read_model(local, uri)
    signature = mlmodel.signature
    declared = (mlmodel.metadata or {}).get(METADATA_KEY) or ()
    features = cfg.features or tuple(signature.inputs.input_names())
    try:
        inputs = T.StructType(
            [
                T.StructField(spec.name, spec.type.to_spark(), True)
                for spec in signature.inputs.inputs
                if getattr(spec, "name", None)
            ]
        )
    except Exception as exc:  # tensor specs have no Spark column type
        raise ModelError(f"model {uri}: an input of its signature has no Spark type: {exc}") from None
    outputs = _outputs(signature, uri)
    steps, reference, calibration = _artifacts(local, uri, declared if isinstance(declared, list) else ())
    log.info(
        "model %s resolved to %s (run %s), features=%s outputs=%s, pipeline: %s",
        cfg.uri,
        uri,
        run_id,
        list(features),
        outputs.simpleString(),
        "none logged" if steps is None else f"{len(steps)} step(s)",
    )
    return ResolvedModel(
        cfg.uri, uri, name, version, run_id, local, tuple(features), inputs, outputs, steps, reference, workdir, calibration
    )


def release_model(model: ResolvedModel) -> None:
    """Remove the run's copy of the model (its ``workdir``), once nothing reads ``local_path``
    again: after the run's last Spark job. Safe to call twice.

    The archive shipped to executors (``jobs.model.ship``) lives in Spark's own folder for the
    driver's files, which Spark deletes when the SparkContext stops: executors that join later in
    the same context fetch it from there.
    """
    if model.workdir:
        shutil.rmtree(model.workdir, ignore_errors=True)


def peek_version(cfg: ModelConfig) -> str | None:
    """The version a ``models:/`` reference points at now, without downloading the model
    (None for ``runs:/`` and paths, which have no registry version).

    Raises:
        RegistryUnavailableError: the registry did not answer in time.
        ModelError: the name, version or alias does not exist.
    """
    if not ALIAS_URI.match(cfg.uri) and not VERSION_URI.match(cfg.uri):
        return None
    use_tracking(cfg.tracking_uri)
    with bounded_registry(cfg):
        return _pin(cfg)[2]
