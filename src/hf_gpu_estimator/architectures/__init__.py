"""Architectures: config.json (+ header shapes) -> exact parameter counts and per-layer dimensions (pure Python).

The ground truth is transformers itself (v5): for a config ``c``, ``parameter_counts(c).total`` equals
``sum(p.numel() for p in Cls(Config(**c)).parameters())`` for ``Cls = model_class_name(c)``, which
counts tied weights once. Each family below mirrors its ``configuration_<family>.py`` defaults and
``modeling_<family>.py`` module tree; the comments name the file a rule comes from. A family reads its
fields, builds the parts its modeling file has (:mod:`~hf_gpu_estimator.architectures.parts`: each part
carries its parameters, its linears and its mixer or FFN) and gives the layer pattern; ``parts.stack``
sums the counts and builds the layers, so the two cannot disagree. No torch, no I/O.

Roles (``ParameterCounts.by_role``):

* ``embedding``: token embeddings, learned positional embeddings (gpt2 ``wpe``, bert position and
  token-type tables), and the lm_head when it is tied (it is the same tensor).
* ``attention``: attention projections and their biases, T5's relative position bias table.
* ``mlp``: dense feed-forward layers. ``experts``: routed and shared experts. ``router``: the
  router weight and qwen2_moe's ``shared_expert_gate``.
* ``norm``: every normalization weight and bias (including q/k norms and MLA's latent norms).
* ``lm_head``: an untied output projection, phi's lm_head bias, bert's MLM head transform and bias.
* ``other``: bert's pooler and next-sentence head, gemma3's SigLIP vision tower and projector.

``active`` is what one token touches: the total minus the routed experts it is not sent to.

``Architecture.linears`` lists one block's linear layers by the leaf names peft targets. For MoE
models it describes a MoE block: the routed experts appear as transformers 5 stores them, fused 3-D
parameters ``gate_up_proj`` (out = 2 * moe_intermediate_size) and ``down_proj`` with
``count=num_experts``, then the shared expert's ``gate_proj``/``up_proj``/``down_proj``; the router
is left out. T5's list is an encoder block.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.architectures._fields import MISSING, Fields, Head
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.families import FAMILIES
from hf_gpu_estimator.architectures.generic import (
    analyze_generic,
    computes_loss_upcast,
    generic_assumption,
    generic_native_softmax,
    generic_supports_sdpa,
    known_model_types,
    transformers_version,
)
from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError
from hf_gpu_estimator.spec import Architecture, ParameterCounts

__all__ = [
    "SUPPORTED_MODEL_TYPES",
    "Analysis",
    "analyze",
    "architecture_from_config",
    "family_for",
    "model_class_name",
    "parameter_counts",
]

#: model_type values whose counts a family module derives exactly from config.json alone.
SUPPORTED_MODEL_TYPES: tuple[str, ...] = tuple(sorted(FAMILIES))

#: Every other model type transformers implements: standard fields, exact counts from headers.
GENERIC = Family(analyze=analyze_generic, default_class="AutoModelForCausalLM", classes={},
                 module=__name__ + ".generic")


@dataclass(frozen=True)
class Analysis:
    """A config's architecture and exact parameter counts, derived together."""

    architecture: Architecture
    counts: ParameterCounts
    class_name: str


def family_for(model_type: str) -> Family | None:
    """The family module's facts for ``model_type``, or ``None`` when it has none."""
    return FAMILIES.get(model_type)
def _family(config: Mapping[str, Any]) -> tuple[Fields, str, Family]:
    source = "config.json"
    if not isinstance(config, Mapping):
        raise MalformedConfigError(
            source, f"{source}: expected a JSON object (a mapping), got {type(config).__name__}"
        )
    name = config.get("_name_or_path")
    if isinstance(name, str) and name:
        source = f"{name}/config.json"
    model_type = config.get("model_type")
    if model_type is None:
        raise MalformedConfigError(
            source,
            f"{source}: field 'model_type' is missing; add the model_type transformers uses "
            f"(one of {', '.join(SUPPORTED_MODEL_TYPES)})",
            field="model_type",
        )
    if not isinstance(model_type, str):
        raise MalformedConfigError(
            source, f"{source}: field 'model_type' is {model_type!r}, expected a string", field="model_type"
        )
    return Fields(config, source=source), model_type, FAMILIES.get(model_type, GENERIC)


def _analyze_unrecorded(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Any]:
    """The generic family on a model type the record does not know: a config without the standard fields is
    refused as unsupported (nothing to read), not as malformed."""
    try:
        arch, tally = analyze_generic(f, model_type, head)
    except MalformedConfigError as e:
        if e.field is None or f.raw(e.field) is not MISSING:
            raise
        raise UnsupportedArchitectureError(
            model_type, SUPPORTED_MODEL_TYPES,
            hint=f"transformers {transformers_version()} (the recorded version) does not implement {model_type!r} "
                 f"and its config has no standard field {e.field!r} to read it by (remote code is never run); "
                 "--exact needs a transformers that knows this type", config=f.config) from e
    return dataclasses.replace(arch, notes=(*arch.notes, generic_assumption(model_type))), tally


def _class_and_head(f: Fields, family: Family) -> tuple[str, Head]:
    architectures = f.raw("architectures")
    if family is GENERIC:
        head: Head = "conditional" if isinstance(f.raw("text_config"), Mapping) else "causal_lm"
        if isinstance(architectures, (list, tuple)) and architectures and isinstance(architectures[0], str):
            return architectures[0], head
        return family.default_class, head
    if architectures is not MISSING and architectures is not None:
        if not isinstance(architectures, (list, tuple)) or not all(isinstance(a, str) for a in architectures):
            raise f.error("architectures", architectures, "a list of class names")
        if architectures and architectures[0] in family.classes:
            return architectures[0], family.classes[architectures[0]]
    return family.default_class, family.classes[family.default_class]


def analyze(config: Mapping[str, Any]) -> Analysis:
    """Architecture, exact counts and the counted class of ``config`` in one pass.

    Raises:
        UnsupportedArchitectureError: no family knows ``model_type``.
        MalformedConfigError: a field we need has the wrong type or an impossible value.
    """
    f, model_type, family = _family(config)
    class_name, head = _class_and_head(f, family)
    if family is GENERIC and model_type not in known_model_types():
        arch, tally = _analyze_unrecorded(f, model_type, head)
    else:
        arch, tally = family.analyze(f, model_type, head)
    notes = arch.notes
    architectures = f.raw("architectures")
    if isinstance(architectures, (list, tuple)) and architectures and architectures[0] != class_name \
            and family is not GENERIC:
        notes = (
            *notes,
            f"architectures[0]={architectures[0]!r} has no counting rule here; counted {class_name} "
            "(its task head, if any, is not included)",
        )
    sdpa = family.supports_sdpa if family is not GENERIC else generic_supports_sdpa(model_type)
    # The eager softmax's dtype as recorded from the modeling file (scripts/build_generic_data.py) where a family
    # does not state it: llama4's eager_attention_forward runs softmax in the scores' dtype (modeling_llama4.py).
    native = family.native_softmax or generic_native_softmax(model_type)
    # The loss as the causal-LM class's forward computes it (recorded from its source for family and generic
    # types alike: musicgen's family class is the recorded one).
    arch = dataclasses.replace(arch, notes=notes, native_softmax=native, supports_sdpa=sdpa,
                               loss_upcast=computes_loss_upcast(model_type), **_dropouts(config, family))
    return Analysis(architecture=arch, counts=tally.counts(), class_name=class_name)


def model_class_name(config: Mapping[str, Any]) -> str:
    """The transformers class whose parameters :func:`parameter_counts` counts.

    ``config["architectures"][0]`` when it is a class this module knows how to count for the
    family, else the family's default class (``*ForCausalLM``, ``T5ForConditionalGeneration``,
    ``BertForMaskedLM``, ``Gemma3ForConditionalGeneration``).

    Args:
        config: a parsed config.json.

    Returns:
        A class name in the ``transformers`` namespace.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: ``model_type`` or ``architectures`` is missing or mistyped.

    Example:
        >>> model_class_name({"model_type": "llama"})
        'LlamaForCausalLM'
    """
    f, _, family = _family(config)
    return _class_and_head(f, family)[0]


def architecture_from_config(config: Mapping[str, Any]) -> Architecture:
    """The layer dimensions of a config, with transformers' defaults for absent fields.

    Args:
        config: a parsed config.json (for multimodal wrappers such as ``gemma3``, the wrapper with
            ``text_config``; the dimensions returned are the language model's).

    Returns:
        The :class:`~hf_gpu_estimator.spec.Architecture`.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: a field we need has the wrong type or an impossible value.

    Example:
        >>> a = architecture_from_config({"model_type": "mistral", "num_hidden_layers": 2})
        >>> a.num_key_value_heads, a.head_dim, a.layer_types
        (8, 128, ('sliding_attention', 'sliding_attention'))
    """
    return analyze(config).architecture


def _dropouts(config: Mapping[str, Any], family: Family) -> dict[str, float]:
    # The language model's sub-config of a wrapper (text_config), or a composite's decoder (musicgen).
    source = next((config[k] for k in ("text_config", "decoder") if isinstance(config.get(k), Mapping)), config)
    out = {}
    for name, (key, default) in zip(("embedding_dropout", "hidden_dropout", "attention_dropout"), family.dropouts):
        value = source.get(key, default) if key else default
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value < 1:
            raise MalformedConfigError("config.json", f"config.json: field {key!r} is {value!r}, expected a "
                                       "probability in [0, 1) (fix the value, or remove the field)", field=key)
        out[name] = float(value)
    return out


def parameter_counts(config: Mapping[str, Any]) -> ParameterCounts:
    """Exact parameter counts of ``model_class_name(config)`` built from ``config``.

    Equal to ``sum(p.numel() for p in model.parameters())`` (tied weights once), split by role
    (see the module docstring), with ``active`` the parameters one token uses.

    Args:
        config: a parsed config.json.

    Returns:
        The :class:`~hf_gpu_estimator.spec.ParameterCounts`.

    Raises:
        UnsupportedArchitectureError: ``model_type`` is not in :data:`SUPPORTED_MODEL_TYPES`.
        MalformedConfigError: a field we need has the wrong type or an impossible value.

    Example:
        >>> parameter_counts({"model_type": "gpt2"}).total  # gpt2 (124M)
        124439808
    """
    return analyze(config).counts
