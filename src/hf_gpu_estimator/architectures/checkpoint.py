"""What the checkpoint's tensor names and shapes say about the architecture (pure).

Two uses: cross-checking config.json against the weights it ships with (a contradiction in the
hidden size, the layer count or the expert count is a typed error naming both values), and, for the
generic family, replacing its llama-style guesses with the real linear layers of one block (peft
leaf names, shapes, gated or plain MLP).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping

from hf_gpu_estimator.errors import ConfigHeaderMismatchError
from hf_gpu_estimator.spec import Architecture, LinearShape, TensorInfo

#: The language model's decoder layers (not a vision tower's or an audio encoder's).
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|block|decoder\.layers)\.(\d+)\.")
_OTHER_TOWER = re.compile(r"vision|visual|audio|image|encoder\.|mm_projector|multi_modal|speech|mtp", re.IGNORECASE)
_EMBED = re.compile(r"(?:^|\.)(?:embed_tokens|wte|word_embeddings|tok_embeddings|embed_in)\.weight$")
#: A decoder layer's cross-attention with its norm (bart/marian ``encoder_attn`` and
#: ``encoder_attn_layer_norm``, prophetnet ``cross_attn`` and ``cross_attn_layer_norm``, bert
#: ``crossattention``), and an encoder stack that would feed it.
_CROSS_ATTENTION = re.compile(
    r"(?:^|\.)(?:encoder_attn|cross_attn|crossattention|cross_attention)(?:_layer_norm|_layernorm)?\.")
_ENCODER_STACK = re.compile(r"(?:^|\.)encoder\.")
_EXPERT_INDEX = re.compile(r"(?:^|\.)experts\.(\d+)\.")
_GATED_LEAVES = frozenset({"gate_proj", "w1", "w3", "gate_up_proj", "wi_0"})
_DOWN_LEAVES = frozenset({"down_proj", "w2", "fc2", "c_proj", "dense_4h_to_h", "wo"})


def _language_tensors(tensors: Iterable[TensorInfo]) -> list[TensorInfo]:
    return [t for t in tensors if not _OTHER_TOWER.search(t.name)]


def check_against_config(arch: Architecture, tensors: Iterable[TensorInfo], config: Mapping[str, object], *,
                         source: str) -> None:
    """Raise :class:`ConfigHeaderMismatchError` where config.json contradicts the weights.

    Checked only where the tensors are unambiguous: the token embedding's width (unquantized, 2-D)
    against ``hidden_size``; the number of decoder layer indices against ``num_hidden_layers``
    (multi-token-prediction layers that checkpoints ship beyond it, ``num_nextn_predict_layers``,
    are allowed); the number of per-expert indices against the expert count.
    """
    tensors = _language_tensors(tensors)
    # Factorized embeddings (ELECTRA/ALBERT ``embedding_size``, OPT ``word_embed_proj_dim``) are narrower
    # than the hidden size by design: no width check for them.
    factorized = any(isinstance(config.get(k), int) for k in ("embedding_size", "word_embed_proj_dim", "embedding_dim",
                                                               "input_embedding_size"))
    for t in tensors if not factorized else ():
        if _EMBED.search(t.name) and len(t.shape) == 2 and t.dtype in ("F32", "F16", "BF16"):
            if t.shape[1] != arch.hidden_size and t.shape[0] != arch.hidden_size:
                raise ConfigHeaderMismatchError(source, field="hidden_size", config_value=arch.hidden_size,
                                                header_value=t.shape[1], evidence=f"{t.name} is {list(t.shape)}")
            break
    indices = {int(m.group(1)) for t in tensors if (m := _LAYER.search(t.name))}
    if indices:
        found = max(indices) + 1
        extra = config.get("num_nextn_predict_layers", 0)
        extra = extra if isinstance(extra, int) and not isinstance(extra, bool) else 0
        if not arch.num_layers <= found <= arch.num_layers + extra:
            raise ConfigHeaderMismatchError(source, field="num_hidden_layers", config_value=arch.num_layers,
                                            header_value=found,
                                            evidence=f"decoder layers 0..{found - 1} in the weights")
    experts = {int(m.group(1)) for t in tensors if (m := _EXPERT_INDEX.search(t.name))}
    if experts and arch.num_experts and max(experts) + 1 != arch.num_experts:
        raise ConfigHeaderMismatchError(source, field="num_experts", config_value=arch.num_experts,
                                        header_value=max(experts) + 1,
                                        evidence=f"experts 0..{max(experts)} in the weights")


def refine_generic(arch: Architecture, tensors: Iterable[TensorInfo]) -> Architecture:
    """The generic family's architecture with one block's real linear layers from the headers.

    The first decoder layer's 2-D ``*.weight`` tensors become :class:`LinearShape` entries (peft
    leaf names, ``out x in`` shapes as ``nn.Linear`` stores them); a gate projection marks the MLP
    gated. Quantized (packed) checkpoints keep the config-derived shapes.
    """
    first: list[TensorInfo] = []
    for t in _language_tensors(tensors):
        m = _LAYER.search(t.name)
        if m and m.group(1) == "0" and t.name.endswith(".weight") and len(t.shape) == 2 \
                and t.dtype in ("F32", "F16", "BF16") and "norm" not in t.name and "experts" not in t.name:
            first.append(t)
    if not first:
        return arch
    linears = tuple(
        LinearShape(name=t.name.rsplit(".", 2)[-2], in_features=t.shape[1], out_features=t.shape[0]) for t in first
    )
    leaves = {lin.name for lin in linears}
    gated = bool(leaves & _GATED_LEAVES)
    down = next((lin for lin in linears if lin.name in _DOWN_LEAVES), None)
    inter = down.in_features if down is not None else arch.intermediate_size
    layers = tuple(
        dataclasses.replace(layer, ffn=dataclasses.replace(layer.ffn, gated=gated, intermediate=inter))
        if layer.ffn.kind == "dense" else layer
        for layer in arch.per_layer
    )
    notes = [*arch.notes, "generic family: linear layers of one block read from the safetensors headers"]
    unused = _unused_cross_attention(tensors)
    if unused:
        notes.append(f"{unused:,} cross-attention parameters with no encoder in the checkpoint: a causal-LM "
                     "forward never runs them (no gradient, no optimizer state)")
    return dataclasses.replace(arch, linears=linears, gated_mlp=gated, intermediate_size=inter, per_layer=layers,
                               unused_parameters=unused, notes=tuple(notes))


def _unused_cross_attention(tensors: Iterable[TensorInfo]) -> int:
    """Parameters of decoder cross-attention blocks when no encoder stack is in the checkpoint (a
    ``*ForCausalLM`` of an encoder-decoder family: its forward passes no encoder states, the blocks
    are skipped)."""
    tensors = list(tensors)
    if any(_ENCODER_STACK.search(t.name) for t in tensors):
        return 0
    return sum(t.numel for t in tensors if _CROSS_ATTENTION.search(t.name))
