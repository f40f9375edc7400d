"""Read a fleet file (YAML or JSON): the models to plan together and their traffic."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError


def read_fleet_file(source: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The fleet description in a YAML or JSON file, as a mapping (schema: :func:`~hf_gpu_estimator.planner.plan_fleet`).

    Raises:
        InvalidArgumentError: The file is unreadable, not valid JSON, or not an object.
        MissingDependencyError: A YAML file without PyYAML installed.
    """
    path = Path(source)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InvalidArgumentError("fleet", str(path), "a readable YAML or JSON file", hint=e.strerror) from e
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            from hf_gpu_estimator.errors import MissingDependencyError

            raise MissingDependencyError("pyyaml", "all", "reading a YAML fleet file") from e
        data = yaml.safe_load(text)
    else:
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError("fleet", str(path), "valid JSON", hint=str(e)) from e
    if not isinstance(data, Mapping):
        raise InvalidArgumentError("fleet", str(path), "an object with a 'models' list")
    return data
