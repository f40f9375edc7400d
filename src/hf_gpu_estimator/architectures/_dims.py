"""The standard dimensions of a decoder config, read once with a family's defaults and field names."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final, Literal

from hf_gpu_estimator.architectures._fields import Fields
from hf_gpu_estimator.spec import Architecture

#: ``num_key_value_heads`` / ``head_dim`` that the family's config has no field for: every head has its own
#: keys and values, and a head is ``hidden_size // num_attention_heads`` wide.
DERIVED: Final = "derived"
Derived = Literal["derived"]


@dataclass(frozen=True, kw_only=True)
class Dims:
    """The dimensions every family reports in :class:`~hf_gpu_estimator.spec.Architecture` (same names)."""

    num_layers: int
    hidden_size: int
    num_attention_heads: int
    num_key_value_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    max_position_embeddings: int | None
    hidden_act: str

    @classmethod
    def read(
        cls,
        f: Fields,
        *,
        hidden_size: int,
        num_hidden_layers: int,
        num_attention_heads: int,
        intermediate_size: int | None,
        vocab_size: int,
        tie_word_embeddings: bool | None,
        max_position_embeddings: int | None,
        hidden_act: str = "silu",
        num_key_value_heads: int | None | Derived = None,
        head_dim: int | None | Derived = None,
        required: bool = False,
        names: Mapping[str, tuple[str, ...]] | None = None,
    ) -> Dims:
        """Read the standard fields with the family's defaults (each keyword is the default of its field).

        Args:
            f: the (text) config's fields.
            intermediate_size: the default; ``None``: absent or null means ``4 * hidden_size`` (gpt2's
                ``n_inner``, falcon's ``ffn_hidden_size``).
            tie_word_embeddings: the default; ``None``: the model never ties its head (not read).
            max_position_embeddings: the default; ``None``: the family has no such limit (not read).
            num_key_value_heads: the default; absent with a ``None`` default, or an explicit null, means
                ``num_attention_heads`` (transformers' ``getattr(config, ..., None) or``); :data:`DERIVED`: not
                read.
            head_dim: likewise, falling back to ``hidden_size // num_attention_heads``.
            required: an explicit null in ``num_key_value_heads`` or ``head_dim`` is an error rather than the
                fallback (the config class takes them as plain integers).
            names: for a standard field (keyed by its transformers name), the names the family's config
                uses, first wins (gpt2: ``{"hidden_size": ("n_embd", "hidden_size")}``).
        """
        names = names or {}

        def integer(name: str, default: int) -> int:
            first, *aliases = names.get(name, (name,))
            return f.integer(first, default, aliases=aliases)

        def fallback(name: str, default: int | None | Derived, derived: int) -> int:
            if default == DERIVED:
                return derived
            first, *aliases = names.get(name, (name,))
            if required:
                return f.integer(first, default, aliases=aliases)  # type: ignore[arg-type]
            return f.opt_int(first, default, aliases=aliases) or derived  # type: ignore[arg-type]

        hidden = integer("hidden_size", hidden_size)
        layers = integer("num_hidden_layers", num_hidden_layers)
        heads = integer("num_attention_heads", num_attention_heads)
        kv_heads = fallback("num_key_value_heads", num_key_value_heads, heads)
        head_width = fallback("head_dim", head_dim, hidden // heads)
        if intermediate_size is None:
            first, *aliases = names.get("intermediate_size", ("intermediate_size",))
            inter = f.opt_int(first, aliases=aliases) or 4 * hidden
        else:
            inter = integer("intermediate_size", intermediate_size)
        vocab = integer("vocab_size", vocab_size)
        first, *aliases = names.get("tie_word_embeddings", ("tie_word_embeddings",))
        tie = tie_word_embeddings is not None and f.boolean(first, tie_word_embeddings, aliases=aliases)
        positions = (None if max_position_embeddings is None
                     else integer("max_position_embeddings", max_position_embeddings))
        first, *aliases = names.get("hidden_act", ("hidden_act",))
        act = f.string(first, hidden_act, aliases=aliases)
        return cls(num_layers=layers, hidden_size=hidden, num_attention_heads=heads, num_key_value_heads=kv_heads,
                   head_dim=head_width, intermediate_size=inter, vocab_size=vocab, tie_word_embeddings=tie,
                   max_position_embeddings=positions, hidden_act=act)

    def keywords(self) -> dict[str, Any]:
        """These dimensions as :class:`~hf_gpu_estimator.spec.Architecture` keywords."""
        return {x.name: getattr(self, x.name) for x in dataclasses.fields(self)}

    def architecture(self, model_type: str, *, family: str | None = None, **details: Any) -> Architecture:
        """The :class:`~hf_gpu_estimator.spec.Architecture` of these dimensions and the family's ``details``.

        ``family`` defaults to ``model_type``; ``details`` may also replace a dimension the family reports
        otherwise than it reads it (falcon's key/value heads, dory's layer runs).
        """
        keywords = {**self.keywords(), **details}
        return Architecture(model_type=model_type, family=family or model_type, **keywords)
