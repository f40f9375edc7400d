"""Read a fleet file (YAML or JSON): the models to plan together and their traffic."""

from __future__ import annotations

import math
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
    return parse_fleet(text, yaml=path.suffix.lower() in (".yaml", ".yml"), where=str(path))


def parse_fleet(text: str, *, yaml: bool | None = None, where: str = "fleet") -> Mapping[str, Any]:
    """A fleet description from its text: JSON, or YAML when ``yaml`` (``None``: JSON if the text
    starts with ``{``, else YAML).

    Raises:
        InvalidArgumentError: Not valid JSON/YAML, or not an object.
        MissingDependencyError: YAML without PyYAML installed.
    """
    if yaml is None:
        yaml = not text.lstrip().startswith("{")
    if yaml:
        try:
            import yaml as pyyaml
        except ImportError as e:
            from hf_gpu_estimator.errors import MissingDependencyError

            raise MissingDependencyError("pyyaml", "yaml", "reading a YAML fleet file") from e
        try:
            data = pyyaml.safe_load(text)
        except pyyaml.YAMLError as e:
            raise InvalidArgumentError("fleet", where, "valid YAML", hint=str(e).splitlines()[0]) from e
    else:
        import json

        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InvalidArgumentError("fleet", where, "valid JSON", hint=str(e)) from e
    if not isinstance(data, Mapping):
        raise InvalidArgumentError("fleet", where, "an object with a 'models' list")
    return data


#: Numeric fields of a fleet entry; each must be a positive, finite number.
_NUMBERS = ("request_rate", "input_tokens", "output_tokens", "tpot_ms", "ttft_ms", "token_budget", "deadline_hours")


def validate_fleet(source: str | os.PathLike[str] | Mapping[str, Any]) -> Mapping[str, Any]:
    """Read a fleet file (or take its mapping) and check every entry up front: one error naming the
    entry and the field, before any planning.

    Raises:
        InvalidArgumentError: A negative or non-numeric rate, size, target or budget.
        UnknownNameError: An unknown GPU (``gpus`` or ``models[i].gpus``).
        InvalidArgumentError: Also a model that cannot be read (not in the catalog nor on the Hub).
    """
    from hf_gpu_estimator.errors import InvalidArgumentError, SourceError, UnknownNameError
    from hf_gpu_estimator.hardware import get_gpu
    from hf_gpu_estimator.sources import inspect_model

    data = read_fleet_file(source) if not isinstance(source, Mapping) else source
    models = data.get("models")
    if not isinstance(models, list) or not models:
        raise InvalidArgumentError("models", models, "a non-empty list of model entries")

    def check_gpus(where: str, names: Any) -> None:
        if names is None:
            return
        if not isinstance(names, list):
            raise InvalidArgumentError(where, names, "a list of GPU names")
        for name in names:
            try:
                get_gpu(name)
            except UnknownNameError as e:
                raise UnknownNameError(where, str(name), e.candidates) from e

    check_gpus("gpus", data.get("gpus"))
    for i, item in enumerate(models):
        if not isinstance(item, Mapping) or "model" not in item:
            raise InvalidArgumentError(f"models[{i}]", item, "an object with a 'model' key")
        where = f"models[{i}] ({item['model']})"
        for key in _NUMBERS:
            if key in item:
                v = item[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0:
                    raise InvalidArgumentError(f"{where}.{key}", v, "a positive number")
        check_gpus(f"{where}.gpus", item.get("gpus"))
        try:
            inspect_model(str(item["model"]))
        except SourceError as e:
            raise InvalidArgumentError(f"{where}.model", item["model"], "a catalog model, Hub id or local path",
                                       hint=str(e).splitlines()[0]) from e
    return data
