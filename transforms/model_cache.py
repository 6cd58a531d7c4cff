"""The per-process model cache: Python imports a module once per worker, so this dict is per worker.

The scoring function looks its model up here for every batch; only the first lookup in a worker
loads it from disk.
"""

from __future__ import annotations

import os
import threading
from collections import Counter
from typing import Any

_models: dict[str, Any] = {}
_lock = threading.Lock()
loads: Counter[str] = Counter()  # loads per location in this process: tests read it


def _local_path(location: str) -> str:
    if os.path.isdir(location):
        return location
    from pyspark import SparkFiles  # shipped with addArchive: the name is the directory it was unpacked to

    return SparkFiles.get(location)


def get(location: str) -> Any:
    """The pyfunc model at ``location`` (a local directory or a SparkFiles name), loaded once."""
    model = _models.get(location)
    if model is None:
        with _lock:
            model = _models.get(location)
            if model is None:
                import warnings

                import mlflow.pyfunc

                with warnings.catch_warnings():  # mlflow's advice about type hints, once per worker
                    warnings.simplefilter("ignore", UserWarning)
                    model = mlflow.pyfunc.load_model(_local_path(location))
                _models[location] = model
                loads[location] += 1
    return model
