"""Reading config fields with transformers' defaults and typed errors; tallying parameters by role."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from hf_gpu_estimator.constants import MAX_INT, MAX_LAYERS
from hf_gpu_estimator.errors import MalformedConfigError, excerpt
from hf_gpu_estimator.spec import ROLES, ParameterCounts

MISSING: Any = object()
FULL = "full_attention"
SLIDING = "sliding_attention"
CHUNKED = "chunked_attention"  # llama4 (configuration_llama4.py)


# --------------------------------------------------------------------------------------------
# Reading fields with transformers' defaults and typed errors.
# --------------------------------------------------------------------------------------------


class Fields:
    """Typed access to a config mapping; absent fields take the family default.

    Every source's numbers go through it (config.json, GGUF metadata, params.json), so they are read
    under one set of limits (:data:`~hf_gpu_estimator.constants.MAX_INT`, ``MAX_LAYERS``); a source
    with its own error type overrides :meth:`error`.
    """

    def __init__(self, config: Mapping[str, Any], *, source: str, prefix: str = ""):
        self.config = config
        self.source = source
        self.prefix = prefix

    def error(self, name: str, value: object, expected: str) -> MalformedConfigError:
        path = f"{self.prefix}{name}"
        return MalformedConfigError(
            self.source,
            f"{self.source}: field {path!r} is {excerpt(value)}, expected {expected} "
            f"(fix the value, or remove the field to use transformers' default)",
            field=path,
        )

    def raw(self, name: str, aliases: Sequence[str] = ()) -> Any:
        for key in (name, *aliases):
            if key in self.config:
                return self.config[key]
        return MISSING

    def _name(self, name: str, aliases: Sequence[str]) -> str:
        for key in (name, *aliases):
            if key in self.config:
                return key
        return name

    def integer(self, name: str, default: int, *, aliases: Sequence[str] = (), minimum: int = 1) -> int:
        value = self.opt_int(name, default, aliases=aliases, minimum=minimum)
        if value is None:
            raise self.error(self._name(name, aliases), None, f"an integer >= {minimum}")
        return value

    def opt_int(
        self, name: str, default: int | None = None, *, aliases: Sequence[str] = (), minimum: int = 1,
        maximum: int | None = None,
    ) -> int | None:
        """An optional integer: absent -> ``default``; an explicit JSON null -> ``None``."""
        value = self.raw(name, aliases)
        if value is MISSING:
            return default
        if value is None:
            return None
        # bool is a subclass of int in Python, but `"hidden_size": true` is a broken config.
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(self._name(name, aliases), value, f"an integer >= {minimum}")
        if value < minimum:
            raise self.error(self._name(name, aliases), value, f"an integer >= {minimum}")
        if maximum is None:
            maximum = MAX_LAYERS if name.endswith("layers") or name == "n_layer" else MAX_INT
        if value > maximum:
            raise self.error(self._name(name, aliases), value, f"an integer from {minimum} to {maximum:,}")
        return value

    def boolean(self, name: str, default: bool, *, aliases: Sequence[str] = ()) -> bool:
        value = self.raw(name, aliases)
        if value is MISSING:
            return default
        if not isinstance(value, bool):
            raise self.error(self._name(name, aliases), value, "true or false")
        return value

    def opt_float(self, name: str, default: float | None, *, positive: bool = False) -> float | None:
        value = self.raw(name)
        if value is MISSING:
            return default
        if value is None:
            return None
        expected = "a positive number or null" if positive else "a finite number or null"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.error(name, value, expected)
        if positive and value <= 0:
            raise self.error(name, value, expected)
        return float(value)

    def string(self, name: str, default: str, *, aliases: Sequence[str] = ()) -> str:
        value = self.raw(name, aliases)
        if value is MISSING or value is None:
            return default
        if not isinstance(value, str):
            raise self.error(self._name(name, aliases), value, "a string")
        return value

    def int_list(self, name: str) -> tuple[int, ...] | None:
        value = self.raw(name)
        if value is MISSING or value is None:
            return None
        if not isinstance(value, (list, tuple)) or any(
            isinstance(v, bool) or not isinstance(v, int) for v in value
        ):
            raise self.error(name, value, "a list of integers")
        return tuple(value)

    def layer_types(self, num_layers: int, allowed: tuple[str, ...] = (FULL, SLIDING)) -> tuple[str, ...] | None:
        value = self.raw("layer_types")
        if value is MISSING or value is None:
            return None
        if (
            not isinstance(value, (list, tuple))
            or len(value) != num_layers
            or any(v not in allowed for v in value)
        ):
            raise self.error(
                "layer_types", value, f"a list of {num_layers} entries, each one of {', '.join(map(repr, allowed))}"
            )
        return tuple(value)

    def sub(self, name: str) -> Fields:
        value = self.raw(name)
        if value is MISSING or value is None:
            value = {}
        if not isinstance(value, Mapping):
            raise self.error(name, value, "an object (a nested config)")
        return Fields(value, source=self.source, prefix=f"{self.prefix}{name}.")


# --------------------------------------------------------------------------------------------
# Tallying.
# --------------------------------------------------------------------------------------------


def lin(in_features: int, out_features: int, bias: bool) -> int:
    """Parameters of ``nn.Linear(in_features, out_features, bias=bias)``."""
    return in_features * out_features + (out_features if bias else 0)


@dataclass
class Tally:
    roles: dict[str, int] = field(default_factory=lambda: dict.fromkeys(ROLES, 0))
    idle: int = 0  # routed-expert parameters a single token is not sent to
    #: Parameters only another input reaches (ParameterCounts.off_text_path), by that input.
    off_text: dict[str, int] = field(default_factory=dict)

    def add(self, role: str, n: int) -> None:
        self.roles[role] += n

    def add_off_text(self, source: str, n: int) -> None:
        self.off_text[source] = self.off_text.get(source, 0) + n

    def counts(self) -> ParameterCounts:
        total = sum(self.roles.values())
        return ParameterCounts(total=total, by_role=dict(self.roles), active=total - self.idle,
                               off_text_path={k: n for k, n in self.off_text.items() if n})



Head = Literal[
    "causal_lm", "base", "masked_lm", "pretraining", "lm_head_model", "seq2seq", "encoder_only", "conditional"
]
