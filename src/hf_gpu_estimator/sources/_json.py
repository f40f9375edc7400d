"""Decoding untrusted JSON (config.json, safetensors headers, index files, cache entries) safely.

``json.loads`` on hostile bytes raises more than ``JSONDecodeError``: ``RecursionError`` for
deeply nested arrays, ``ValueError`` for integers above ``sys.get_int_max_str_digits()``
(CPython >= 3.11), ``UnicodeDecodeError`` for non-UTF-8 bytes. :func:`loads` turns every one
into :class:`JSONProblem` with a one-line reason, so each caller raises its own typed error.
"""

from __future__ import annotations

import json
from typing import Any


class JSONProblem(ValueError):
    """The bytes are not the JSON the caller accepts; ``str()`` is a one-line reason."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise JSONProblem(f"duplicate key {key!r}")
        out[key] = value
    return out


def _no_constant(name: str) -> Any:
    raise JSONProblem(f"{name} is not JSON")


def loads(data: str | bytes, *, max_bytes: int | None = None, strict: bool = False) -> Any:
    """``json.loads`` that raises only :class:`JSONProblem`.

    Args:
        data: UTF-8 bytes or text.
        max_bytes: refuse anything longer (bounded memory for the decoded objects).
        strict: also refuse duplicate keys and ``NaN``/``Infinity`` (what serde_json, and so the
            safetensors crate, refuses).
    """
    if max_bytes is not None and len(data) > max_bytes:
        raise JSONProblem(f"{len(data):,} bytes exceeds the limit of {max_bytes:,}")
    hooks: dict[str, Any] = {"object_pairs_hook": _no_duplicates, "parse_constant": _no_constant} if strict else {}
    try:
        if isinstance(data, (bytes, bytearray)):
            # As json.loads does for bytes (a BOM, UTF-16/32); the header format is UTF-8 only.
            data = bytes(data).decode("utf-8" if strict else json.detect_encoding(data), "strict")
        return json.loads(data, **hooks)
    except JSONProblem:
        raise
    except UnicodeDecodeError as e:
        raise JSONProblem(f"not valid {e.encoding} text (byte {e.start})") from None
    except json.JSONDecodeError as e:
        raise JSONProblem(f"{e.msg} at line {e.lineno} column {e.colno}") from None
    except RecursionError:
        raise JSONProblem("nested too deeply") from None
    except ValueError as e:  # e.g. an integer with more digits than int() converts
        raise JSONProblem(str(e).splitlines()[0][:200]) from None
