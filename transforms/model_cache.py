"""The per-process model cache: Python imports a module once per worker, so this dict is per worker.

The scoring function looks its model up here for every batch; only the first lookup in a worker
loads it from disk. A load that fails raises :class:`ModelLoadError`, whose line in the worker's
traceback (``transforms.model_cache.ModelLoadError: the model at ... could not be loaded``) holds
:data:`MODEL_LOAD_MARKER`: the driver sees it inside Spark's own exception text and can tell a
model that cannot be loaded (exit 2) from a worker that failed (exit 1).
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

_models: dict[str, Any] = {}
_lock = threading.Lock()
loads: Counter[str] = Counter()  # loads per location in this process: tests read it
MODEL_LOAD_MARKER = "ModelLoadError: "


class ModelLoadError(RuntimeError):
    """The model's files are there but MLflow could not load them in this Python worker: a
    missing dependency, a corrupt pickle, code that fails on import."""


def is_model_load_failure(error: BaseException | str) -> bool:
    """Whether an error is a failed model load: a ModelLoadError, or Spark's error (or its text)
    wrapping a worker's traceback that ends in one."""
    return isinstance(error, ModelLoadError) or MODEL_LOAD_MARKER in str(error)


def _load(location: str) -> Any:
    import warnings

    import mlflow.pyfunc

    path = _local_path(location)
    try:
        with warnings.catch_warnings():  # mlflow's advice about type hints, once per worker
            warnings.simplefilter("ignore", UserWarning)
            return mlflow.pyfunc.load_model(path)
    except Exception as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        raise ModelLoadError(
            f"the model at {location} ({path}) could not be loaded in a Python worker: {type(exc).__name__}: {first}"
        ) from exc


def _local_path(location: str) -> str:
    if os.path.isdir(location):
        return location
    from pyspark import SparkFiles  # shipped with addArchive: the name is the directory it was unpacked to

    return SparkFiles.get(location)


def get(location: str) -> Any:
    """The pyfunc model at ``location`` (a local directory or a SparkFiles name), loaded once.

    Raises:
        ModelLoadError: the model could not be loaded (it is tried again on the next lookup).
    """
    model = _models.get(location)
    if model is None:
        with _lock:
            model = _models.get(location)
            if model is None:
                model = _load(location)
                _models[location] = model
                loads[location] += 1
    return model
