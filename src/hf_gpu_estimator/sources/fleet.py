"""Read a fleet file (YAML or JSON): the models to plan together and their traffic."""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError, excerpt


#: A fleet file lists models and their traffic: kilobytes. Larger is not a fleet file, and decoding it
#: would cost memory unbounded.
MAX_FLEET_BYTES = 1 << 20
#: Nesting a fleet file needs: the top object, ``models``, an entry, a list in it (``gpus``): 4.
#: Deeper structures are refused before they are built (PyYAML's composer recurses per level).
MAX_FLEET_DEPTH = 16


def read_fleet_file(source: str | os.PathLike[str]) -> Mapping[str, Any]:
    """The fleet description in a YAML or JSON file, as a mapping (schema: :func:`~hf_gpu_estimator.planner.plan_fleet`).

    Raises:
        InvalidArgumentError: The file is unreadable, over :data:`MAX_FLEET_BYTES`, not UTF-8, not
            valid JSON/YAML (YAML aliases included), nested past :data:`MAX_FLEET_DEPTH`, or not an object.
        MissingDependencyError: A YAML file without PyYAML installed.
    """
    path = Path(source)
    try:
        with path.open("rb") as f:
            raw = f.read(MAX_FLEET_BYTES + 1)
    except OSError as e:
        raise InvalidArgumentError("fleet", str(path), "a readable YAML or JSON file", hint=e.strerror) from e
    if len(raw) > MAX_FLEET_BYTES:
        raise InvalidArgumentError("fleet", str(path), f"a fleet file of at most {MAX_FLEET_BYTES:,} bytes")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise InvalidArgumentError("fleet", str(path), "a UTF-8 text file", hint=f"{e.reason} at byte {e.start}") from e
    return parse_fleet(text, yaml=path.suffix.lower() in (".yaml", ".yml"), where=str(path))


def parse_fleet(text: str, *, yaml: bool | None = None, where: str = "fleet") -> Mapping[str, Any]:
    """A fleet description from its text: JSON, or YAML when ``yaml`` (``None``: JSON if the text
    starts with ``{``, else YAML).

    Safe by construction: the text is bounded (:data:`MAX_FLEET_BYTES`), YAML aliases (``*name``, the
    billion-laughs expansion) are refused, nesting stops at :data:`MAX_FLEET_DEPTH`, and integers past
    the interpreter's digit limit are a typed error.

    Raises:
        InvalidArgumentError: Not valid JSON/YAML, too large, too deep, or not an object.
        MissingDependencyError: YAML without PyYAML installed.
    """
    if len(text) > MAX_FLEET_BYTES:
        raise InvalidArgumentError("fleet", where, f"a fleet description of at most {MAX_FLEET_BYTES:,} characters")
    if yaml is None:
        yaml = not text.lstrip().startswith("{")
    if yaml:
        data = _load_yaml(text, where)
    else:
        from hf_gpu_estimator.sources._json import JSONProblem, loads

        try:
            data = loads(text)
        except JSONProblem as e:
            raise InvalidArgumentError("fleet", where, "valid JSON", hint=str(e)) from e
        if _depth(data) > MAX_FLEET_DEPTH:
            raise InvalidArgumentError("fleet", where, f"JSON nested at most {MAX_FLEET_DEPTH} levels deep")
    if not isinstance(data, Mapping):
        raise InvalidArgumentError("fleet", where, "an object with a 'models' list")
    return data


def _load_yaml(text: str, where: str) -> object:
    from hf_gpu_estimator.sources._yaml import YAMLProblem, loads

    try:
        return loads(text, max_chars=MAX_FLEET_BYTES, max_depth=MAX_FLEET_DEPTH)
    except ImportError as e:
        from hf_gpu_estimator.errors import MissingDependencyError

        raise MissingDependencyError("pyyaml", "yaml", "reading a YAML fleet file") from e
    except YAMLProblem as e:
        raise InvalidArgumentError("fleet", where, "valid YAML", hint=str(e)) from e


def _depth(value: object) -> int:
    """Nesting depth of decoded JSON, iteratively (the decoder's own limit is the interpreter's recursion)."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_FLEET_DEPTH:
            break
        children = item.values() if isinstance(item, Mapping) else item if isinstance(item, list) else ()
        stack.extend((child, level + 1) for child in children)
    return deepest


#: Numeric fields of a fleet entry; each must be a positive, finite number up to ``_MAX_NUMBER`` (a
#: quadrillion: above any rate, size or token budget, below what overflows the planner's float arithmetic).
_MAX_NUMBER = 1e15
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
        where = f"models[{i}] ({excerpt(item['model'])})"
        for key in _NUMBERS:
            if key in item:
                v = item[key]
                if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= _MAX_NUMBER \
                        or not math.isfinite(v):  # fmt: skip
                    raise InvalidArgumentError(f"{where}.{key}", v, f"a positive number up to {_MAX_NUMBER:g}")
        check_gpus(f"{where}.gpus", item.get("gpus"))
        try:
            model = item["model"]
            if not isinstance(model, str):
                raise InvalidArgumentError(f"{where}.model", model, "a catalog model, Hub id or local path (a string)")
            inspect_model(model)
        except SourceError as e:
            raise InvalidArgumentError(f"{where}.model", item["model"], "a catalog model, Hub id or local path",
                                       hint=str(e).splitlines()[0]) from e
    return data
