"""Speculative decoding as the serving engines size it: what a draft model, an EAGLE head or MTP layers add.

A speculative setup adds the drafter's weights and, for every cached token, the drafter's own KV cache
(its attention layers keep the same tokens as the target's):

* ``draft``: a separate small model (vLLM ``--speculative-config '{"method": "draft_model", ...}'``,
  SGLang ``--speculative-algorithm STANDALONE``, llama.cpp ``--model-draft``): all its weights and
  every layer's cache.
* ``eagle``: an EAGLE-1 head (one or a few decoder layers and an ``fc`` of ``2 x hidden -> hidden``
  over the target's hidden states and token embeddings; vllm/model_executor/models/llama_eagle.py,
  sglang/srt/models/llama_eagle.py): the target's embedding and LM head are shared
  (vllm/v1/spec_decode/eagle.py ``load_model``).
* ``eagle3``: an EAGLE-3 head (llama_eagle3.py): its decoder layer reads ``2 x hidden`` (embeddings and
  the fused hidden states), an ``fc`` of ``3 x hidden -> hidden`` fuses three target layers, and it keeps
  its own LM head over ``draft_vocab_size`` tokens; the embedding is shared.
* ``mtp``: the target's own multi-token-prediction layers (DeepSeek-V3 ``num_nextn_predict_layers``,
  Qwen3-Next ``mtp_num_hidden_layers``; vllm deepseek_mtp.py): per layer one decoder layer like the
  target's last, ``eh_proj`` (``2 x hidden -> hidden``) and three norms; embedding and LM head shared.
* ``ngram``: prompt lookup, no weights and no cache.

The engines then differ in where that memory comes from (:mod:`.vllm`, :mod:`.sglang`, :mod:`.llamacpp`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.planner.engines._capacity import CacheGroup, KVLayout, kv_layout, weights_per_device
from hf_gpu_estimator.planner.engines._capacity import kv_dtype_bytes as target_kv_bytes
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

SpeculativeMethod = Literal["draft", "eagle", "eagle3", "mtp", "ngram"]
SPECULATIVE_METHODS: tuple[str, ...] = ("draft", "eagle", "eagle3", "mtp", "ngram")
#: Methods whose drafter is a checkpoint of its own (``--draft-model``).
NEEDS_DRAFT = frozenset({"draft", "eagle", "eagle3"})
#: The config fields that count a model's MTP layers.
_MTP_FIELDS = ("num_nextn_predict_layers", "mtp_num_hidden_layers")


@dataclass(frozen=True, kw_only=True)
class Speculative:
    """A speculative-decoding setup.

    Attributes:
        method: ``draft``, ``eagle``, ``eagle3``, ``mtp`` or ``ngram``.
        num_speculative_tokens: Tokens proposed per step (vLLM ``num_speculative_tokens``, SGLang
            ``--speculative-num-steps``, llama.cpp ``--draft-max``).
        draft: The draft model or head (``draft``, ``eagle``, ``eagle3``); ``None`` for ``mtp`` and ``ngram``.
    """

    method: SpeculativeMethod
    num_speculative_tokens: int = 1
    draft: ModelSpec | None = None

    def __post_init__(self) -> None:
        if self.method not in SPECULATIVE_METHODS:
            raise InvalidArgumentError("speculative_method", self.method, "one of " + ", ".join(SPECULATIVE_METHODS))
        n = self.num_speculative_tokens
        if isinstance(n, bool) or not isinstance(n, int) or not 1 <= n <= 64:
            raise InvalidArgumentError("num_speculative_tokens", n, "an integer from 1 to 64")
        if self.method in NEEDS_DRAFT and self.draft is None:
            raise InvalidArgumentError("draft_model", None, f"a draft checkpoint for --speculative-method {self.method} "
                                       "(--draft-model ID)")
        if self.method not in NEEDS_DRAFT and self.draft is not None:
            raise InvalidArgumentError("draft_model", self.draft.id, f"no draft checkpoint with --speculative-method "
                                       f"{self.method} (the MTP layers are the target's; n-gram drafts from the prompt)")


@dataclass(frozen=True, kw_only=True)
class DraftCost:
    """What the drafter holds on one device of the target's ``tp x pp`` split.

    Attributes:
        weights_bytes: The drafter's weights (shared embeddings and LM heads not counted again).
        layout: The drafter's cache layers (each keeps the same tokens as the target's).
        parameters: The drafter's own parameters (whole, before the split).
        note: How they were counted.
    """

    weights_bytes: int
    layout: KVLayout
    parameters: int
    note: str

    @property
    def kv_bytes_per_token(self) -> int:
        return self.layout.token_bytes


def mtp_layers(config: Mapping[str, Any]) -> int:
    """How many multi-token-prediction layers a config declares (0 when none)."""
    source = config.get("text_config") if isinstance(config.get("text_config"), Mapping) else config
    for name in _MTP_FIELDS:
        value = source.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return 0


def _layer_parameters(spec: ModelSpec) -> int:
    """Parameters of the target's last decoder layer: attention, norms and its feed-forward (a MoE layer's
    experts and router where the model has them), from the role totals of uniform layers."""
    arch, roles = spec.architecture, spec.parameters.by_role
    assert arch is not None
    layers = arch.num_layers
    n = roles.get("attention", 0) / layers + max(0, roles.get("norm", 0) - arch.hidden_size) / layers
    if arch.is_moe:
        moe_layers = len(arch.moe_layers) or max(1, layers - arch.num_dense_layers)
        n += (roles.get("experts", 0) + roles.get("router", 0)) / moe_layers
    else:
        n += roles.get("mlp", 0) / layers
    return int(n)


def _bytes_per_parameter(spec: ModelSpec, workload: Workload) -> float:
    """The weight bytes per parameter the target is served in (its quantization and dtype) on one device."""
    p = workload.parallelism
    per_device = spec.parameters.total / (p.tp * p.pp)
    return weights_per_device(spec, workload) / per_device if per_device else 2.0


def draft_cost(target: ModelSpec, speculative: Speculative, workload: Workload, *,
               kv_dtype_bytes: int | None = None) -> DraftCost:
    """The drafter's weights and cache layers per device (split over ``tp`` like the target; with pipeline
    parallelism the drafter sits on the last stage, so the split is over ``tp`` only)."""
    arch = target.architecture
    if arch is None:
        raise InvalidArgumentError("model", target.id, "a model with layer shapes for speculative decoding")
    tp = workload.parallelism.tp
    flat = workload.with_(parallelism=dataclasses.replace(workload.parallelism, pp=1, num_gpus=tp)) \
        if workload.parallelism.pp > 1 else workload
    method = speculative.method
    if method == "ngram":
        return DraftCost(weights_bytes=0, layout=KVLayout(groups=()), parameters=0,
                         note="n-gram drafts: no draft weights, no draft cache")
    if method == "mtp":
        n = mtp_layers(target.config)
        if not n:
            raise InvalidArgumentError("speculative_method", "mtp", f"a model with MTP layers ({target.id} declares "
                                       f"none: {' / '.join(_MTP_FIELDS)})")
        h = arch.hidden_size
        params = n * (_layer_parameters(target) + 2 * h * h + 3 * h)
        weights = int(params * _bytes_per_parameter(target, workload) / tp)
        full = kv_layout(target, flat, dtype_bytes=kv_dtype_bytes)
        last = max((g for g in full.groups if not g.is_state), key=lambda g: g.token_bytes, default=None)
        layout = KVLayout(groups=(CacheGroup(kind=last.kind, layers=n, token_bytes=last.token_bytes),) if last else ())
        return DraftCost(weights_bytes=weights, layout=layout, parameters=params,
                         note=(f"{n} MTP layer(s) of {params // n:,} parameters each (a decoder layer like the target's "
                               "last, eh_proj and three norms; embedding and LM head shared with the target, as "
                               "vllm/v1/spec_decode/eagle.py load_model shares them when equal: a drafter that keeps "
                               "its own adds 2 x vocab x hidden)"))
    draft = speculative.draft
    assert draft is not None and draft.architecture is not None
    d = draft.architecture
    # the engines load the drafter in the target's dtype and cache its tokens like the target's
    dtype = plan_weights(target, workload).compute_dtype
    layout = kv_layout(draft, flat, dtype_bytes=kv_dtype_bytes or target_kv_bytes(target, workload))
    plain = flat.with_(quantization="none", dtype=dtype) if not flat.quantization.startswith("gguf:") else flat
    if method == "draft":
        weights = weights_per_device(draft, plain)
        return DraftCost(weights_bytes=weights, layout=layout, parameters=draft.parameters.total,
                         note=f"draft model {draft.id}: {draft.parameters.total:,} parameters, {d.num_layers} layers")
    roles = draft.parameters.by_role
    h = d.hidden_size
    body = draft.parameters.total - roles.get("embedding", 0) - roles.get("lm_head", 0)
    if method == "eagle":
        params = body + 2 * h * h  # fc: [token embedding, target hidden state] -> hidden
        what = "its layers and fc (2 x hidden -> hidden); embedding and LM head shared with the target"
    else:
        q_out = d.num_attention_heads * d.head_dim
        kv_out = d.num_key_value_heads * d.head_dim
        config = draft.config
        draft_vocab = config.get("draft_vocab_size") if isinstance(config.get("draft_vocab_size"), int) else d.vocab_size
        # q/k/v read 2 x hidden; fc fuses three target layers; its own LM head over draft_vocab_size
        params = body + d.num_layers * h * (q_out + 2 * kv_out) + 3 * h * h + draft_vocab * h
        what = (f"its layers (q/k/v over 2 x hidden), fc (3 x hidden -> hidden) and its LM head over {draft_vocab:,} "
                "tokens; embedding shared with the target")
    return DraftCost(weights_bytes=int(params * BYTES[dtype] / tp), layout=layout, parameters=params,
                     note=f"{method.upper()} head {draft.id}: {params:,} parameters ({what}), {d.num_layers} layer(s)")


def merged_layout(target: KVLayout, draft: DraftCost) -> KVLayout:
    """The target's cache layers and the drafter's in one pool: vLLM V1 gives every attention layer of the
    worker, the drafter's included, a place in its KV cache config, layers of one kind and different sizes
    in one group (vllm/v1/core/kv_cache_utils.py ``_get_kv_cache_groups_uniform_type``; older releases grow
    the smaller pages' block size, ``unify_kv_cache_spec_page_size``): a drafter layer counts as its bytes
    per token, here in layers of the target's group of its kind (rounded up)."""
    groups = list(target.groups)
    for d in draft.layout.groups:
        twin = next((i for i, g in enumerate(groups) if g.kind == d.kind and g.span == d.span and not g.is_state
                     and g.token_bytes), None)
        if twin is None or d.is_state:
            groups.append(d)
            continue
        g = groups[twin]
        extra = d.layers if d.token_bytes == g.token_bytes else math.ceil(d.layers * d.token_bytes / g.token_bytes)
        groups[twin] = dataclasses.replace(g, layers=g.layers + extra)
    return KVLayout(groups=tuple(groups))


def speculative_note(speculative: Speculative, cost: DraftCost) -> str:
    return (f"speculative decoding ({speculative.method}, {speculative.num_speculative_tokens} token(s) per step): "
            f"{cost.note}; {cost.weights_bytes / (1 << 30):.2f} GiB of weights and {cost.kv_bytes_per_token:,} B of "
            "cache per token per device")


def draft_steps_headroom(max_num_reqs: int, speculative: Speculative) -> int:
    """SGLang's extra token slots of the shared pool with an EAGLE-style or standalone draft (model_runner.py
    ``init_memory_pool``: ``max_num_reqs x (steps x topk + draft tokens) + 100``), topk 1 and
    ``steps + 1`` draft tokens."""
    steps = speculative.num_speculative_tokens
    return max_num_reqs * (steps + steps + 1) + 100


def sglang_max_num_reqs(tokens: int, context_len: int) -> int:
    """SGLang's default request slots: ``min(max(tokens / context_len x 512, 2048), 4096)`` (model_runner.py)."""
    return min(max(int(tokens / max(1, context_len) * 512), 2048), 4096)


__all__ = ["SPECULATIVE_METHODS", "DraftCost", "Speculative", "draft_cost", "merged_layout", "mtp_layers",
           "speculative_note"]
