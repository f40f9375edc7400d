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

from hf_gpu_estimator.architectures.generic import uses_conv1d
from hf_gpu_estimator.errors import ConfigHeaderMismatchError
from hf_gpu_estimator.spec import Architecture, LinearShape, TensorInfo

#: The language model's decoder layers (not a vision tower's or an audio encoder's).
_LAYER = re.compile(r"(?:^|\.)(?:layers|h|blocks|block|decoder\.layers)\.(\d+)\.")
_OTHER_TOWER = re.compile(r"vision|visual|audio|image|encoder\.|mm_projector|multi_modal|speech|mtp", re.IGNORECASE)
_EMBED = re.compile(r"(?:^|\.)(?:embed_tokens|wte|word_embeddings|tok_embeddings|embed_in)\.weight$")
_FIRST_K_PROJ = re.compile(
    r"(?:^|\.)(?:layers|h|blocks|block|decoder\.layers)\.0\.(?:self_attn|attention|attn)\.k_proj\.weight$")
_EXPERT_INDEX = re.compile(r"(?:^|\.)experts\.(\d+)\.")
_GATED_LEAVES = frozenset({"gate_proj", "w1", "w3", "gate_up_proj", "wi_0"})
_FFN_MODULE = re.compile(r"\.(mlp|ffn|feed_forward|ff)\.")
_DOWN_LEAVES = frozenset({"down_proj", "w2", "fc2", "c_proj", "dense_4h_to_h", "wo"})
_UP_LEAVES = frozenset({"up_proj", "fc1", "c_fc", "dense_h_to_4h", "w1", "wi"})


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
        # Models of weight stacks called several times (hrm_text) count layer calls in num_hidden_layers
        # and index each stack's layers from 0: the checkpoint holds num_layers_per_stack of them.
        per_stack = config.get("num_layers_per_stack")
        if isinstance(per_stack, int) and not isinstance(per_stack, bool) and found == per_stack:
            found = arch.stored_layers
        if not arch.stored_layers <= found <= arch.stored_layers + extra:
            raise ConfigHeaderMismatchError(source, field="num_hidden_layers", config_value=arch.stored_layers,
                                            header_value=found,
                                            evidence=f"decoder layers 0..{found - 1} in the weights")
    _check_kv_heads(arch, tensors, source=source)
    experts = {int(m.group(1)) for t in tensors if (m := _EXPERT_INDEX.search(t.name))}
    if experts and arch.num_experts and max(experts) + 1 != arch.num_experts:
        raise ConfigHeaderMismatchError(source, field="num_experts", config_value=arch.num_experts,
                                        header_value=max(experts) + 1,
                                        evidence=f"experts 0..{max(experts)} in the weights")


def _check_kv_heads(arch: Architecture, tensors: list[TensorInfo], *, source: str) -> None:
    """The first layer's unquantized ``k_proj`` must be ``num_key_value_heads x head_dim`` rows wide.

    Only for a first layer of plain attention (``full``/``sliding``/``chunked``) whose ``k_proj`` reads
    the hidden state (``[kv_heads * head_dim, hidden_size]``, as ``nn.Linear`` stores it): a config that
    claims more KV heads than the weights hold would size the KV cache for heads that do not exist.
    """
    if not arch.layers or arch.layers[0].mixer.kind not in ("full", "sliding", "chunked"):
        return
    mixer = arch.layers[0].mixer
    for t in tensors:
        if _FIRST_K_PROJ.search(t.name) and len(t.shape) == 2 and t.dtype in ("F32", "F16", "BF16") \
                and t.shape[1] == arch.hidden_size:
            if t.shape[0] != mixer.kv_heads * mixer.head_dim and mixer.head_dim and t.shape[0] % mixer.head_dim == 0:
                raise ConfigHeaderMismatchError(source, field="num_key_value_heads", config_value=mixer.kv_heads,
                                                header_value=t.shape[0] // mixer.head_dim,
                                                evidence=f"{t.name} is {list(t.shape)}, {mixer.head_dim} per head")
            return


def refine_generic(arch: Architecture, tensors: Iterable[TensorInfo]) -> Architecture:
    """The generic family's architecture with one block's real linear layers from the headers.

    The first decoder layer's 2-D ``*.weight`` tensors become :class:`LinearShape` entries (peft
    leaf names, ``out x in`` shapes as ``nn.Linear`` stores them, ``in x out`` as ``Conv1D`` does); a gate
    projection marks the MLP gated. Quantized (packed) checkpoints keep the config-derived shapes.
    """
    first: list[TensorInfo] = []
    for t in _language_tensors(tensors):
        m = _LAYER.search(t.name)
        if m and m.group(1) == "0" and t.name.endswith(".weight") and len(t.shape) == 2 \
                and t.dtype in ("F32", "F16", "BF16") and "norm" not in t.name and "experts" not in t.name:
            first.append(t)
    if not first:
        return arch
    # transformers' Conv1D (GPT's projections, pytorch_utils.py) stores its weight ``in x out``.
    conv1d = uses_conv1d(arch.model_type)
    linears = tuple(
        LinearShape(name=t.name.rsplit(".", 2)[-2], in_features=t.shape[0 if conv1d else 1],
                    out_features=t.shape[1 if conv1d else 0]) for t in first
    )
    leaves = {lin.name for lin in linears}
    gated = bool(leaves & _GATED_LEAVES)
    # The feed-forward's down projection; a leaf name the attention shares (GPT's ``attn.c_proj`` beside
    # ``mlp.c_proj``) is taken from the feed-forward module.
    downs = [(t.name, lin) for t, lin in zip(first, linears) if lin.name in _DOWN_LEAVES]
    down = next((lin for name, lin in downs if _FFN_MODULE.search(name)), downs[0][1] if downs else None)
    inter = down.in_features if down is not None else arch.intermediate_size
    if not gated and down is not None and any(lin.name in _UP_LEAVES and lin.in_features == arch.hidden_size
                                              and lin.out_features == 2 * inter for lin in linears):
        # One projection to twice the down projection's input: a fused gate/up split in two (moshi's fc1,
        # MoshiGatingMLP.forward: ``act(x[..., 0, :]) * x[..., 1, :]``).
        gated = True
    layers = tuple(
        dataclasses.replace(layer, ffn=dataclasses.replace(layer.ffn, gated=gated, intermediate=inter))
        if layer.ffn.kind == "dense" else layer
        for layer in arch.per_layer
    )
    note = "generic family: linear layers of one block read from the safetensors headers"
    return dataclasses.replace(arch, linears=linears, gated_mlp=gated, intermediate_size=inter, per_layer=layers,
                               notes=(*arch.notes, note))
