"""The coverage matrix: every causal-LM type of the installed transformers, analytic vs traced.

Each model type is taken at its default configuration (``AutoConfig.for_model(model_type)``),
cut to a few decoder layers with every distinct layer kind kept (:func:`cut_config`), and
traced once in exact mode for :data:`WORKLOADS` by ``benchmarks/coverage_traces.py``. The
traces are committed as data (:data:`DATA_PATH`), keyed by the torch and transformers versions
and a hash of the cut config, so ``tests/test_coverage.py`` recomputes only the analytic side.

The cutting helpers take a transformers config object but never import torch; the rest of the
module is plain data and arithmetic.
"""

from __future__ import annotations

import functools
import gzip
import hashlib
import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from hf_gpu_estimator.spec import TensorInfo

#: Where the traces live (repository checkout; the data is not shipped in the wheel).
DATA_PATH = Path(__file__).resolve().parents[2] / "tests" / "data" / "coverage_traces.json"

#: The fixed workloads, as :func:`hf_gpu_estimator.workload.make_workload` keywords.
WORKLOADS: Mapping[str, Mapping[str, Any]] = {
    "inference": {"task": "inference", "batch_size": 1, "seq_len": 128, "new_tokens": 16, "dtype": "bfloat16",
                  "attn_implementation": "sdpa"},
    "training": {"task": "training", "batch_size": 1, "seq_len": 128, "precision": "bf16-true",
                 "optimizer": "adamw", "gradient_checkpointing": False, "attn_implementation": "sdpa"},
}  # fmt: skip

#: The version of what the tracer records (runner, tracer, cut): part of each entry's key, raised when a
#: change alters a recorded figure, so older entries read as stale and are re-traced.
TRACER_VERSION = 1

#: Relative error allowed between the analytic ``allocated_peak_bytes`` (without the cuBLAS
#: workspace, which a trace on fake tensors cannot see) and the traced peak (issue 11).
TOLERANCE: Mapping[str, float] = {"inference": 0.10, "training": 0.15}

#: The fewest decoder layers a cut config keeps (two: layer-to-layer effects stay visible).
MIN_LAYERS = 2

#: A per-layer list with more distinct values than this describes layers one by one (indices,
#: per-layer objects), not a pattern of layer kinds to keep.
MAX_KINDS = 6

#: Types whose layer pattern needs more than its first occurrence, with why: keep this many layers.
MIN_LAYERS_BY_TYPE: Mapping[str, tuple[int, str]] = {
    "zamba": (11, "its shared attention block is tied across hybrid layers (attn_layer_offset 4, "
                  "attn_layer_period 6): transformers needs two of them"),
    # DoryConfig.to_dict writes each decoder layer as two blocks (attention, then "mlp") and doubles the
    # layer counts; from_dict halves them again, so the cut must keep whole pairs: 8 blocks = 4 layers,
    # one input, two recurrent and one output layer (see _TYPE_SETTINGS), the fourth full attention.
    "dory": (8, ("config.json lists each decoder layer as two blocks (attention, mlp): keep whole pairs, "
                 "4 decoder layers with the first full-attention one")),
}

#: Types whose layer-count field is derived from the real count, with why: the field holding the real count,
#: and how the derived field follows from it (the cut sets the real count and recomputes the derived one).
DERIVED_LAYER_COUNTS: Mapping[str, tuple[str, Callable[[Mapping[str, Any], int], int], str]] = {
    "hrm_text": ("num_layers_per_stack", lambda c, n: n * c["H_cycles"] * (c["L_cycles"] + 1),
                 "HrmTextConfig.__post_init__ sets num_hidden_layers = num_layers_per_stack x H_cycles x "
                 "(L_cycles + 1), one cache slot per attention call of its recurrence; each of its two stacks "
                 "builds num_layers_per_stack layers"),
}

#: Per-layer list fields that hold layer *indices* (not one entry per layer).
INDEX_LIST_FIELDS = ("mlp_only_layers", "full_attn_idxs", "cross_attention_layers", "hybrid_layer_ids",
                     "moe_layers_indices", "attn_layer_indices", "global_attn_layers", "no_rope_layers_indices")

#: Fields that say "the first N layers are different" (dense before MoE): keep N + 1 layers.
LEADING_FIELDS = ("first_k_dense_replace", "num_dense_layers", "moe_layer_start_index")

#: Fields that give a period of a layer pattern (every N-th layer is different): keep N layers.
PERIOD_FIELDS = ("decoder_sparse_step", "moe_layer_interval", "interleave_moe_layer_step", "no_rope_layer_interval",
                 "sliding_window_pattern", "_sliding_window_pattern", "global_attn_every_n_layers",
                 "attn_layer_period", "expert_layer_period", "full_attn_interval", "moe_layer_freq")

#: Offsets that go with a period field: keep offset + 1 layers.
OFFSET_FIELDS = ("attn_layer_offset", "expert_layer_offset")

#: Fields that say "the last N layers are different" (gemma3n's KV-sharing layers): keep the first of
#: them, and the cut config has that one layer of the kind.
TRAILING_FIELDS = ("num_kv_shared_layers",)

#: Derived per-layer properties that are recomputed from the layer count (gemma4 marks the last layer
#: of each attention type ``store``): not kinds to keep by prefix.
IGNORED_PROPERTIES = ("kv_sharing_modes",)

#: Repeating patterns given once (``recurrent_gemma``'s ``block_types``): keep one full cycle.
PATTERN_FIELDS = ("block_types", "hybrid_override_pattern_cycle")

#: Names of the decoder-layer count, in the order they are looked up (after the attribute_map).
_LAYER_FIELDS = ("num_hidden_layers", "n_layer", "num_layers", "n_layers", "decoder_layers")

#: Encoder-decoder configs count the stacks apart (num_hidden_layers maps to one of them): cut both.
_PAIRED_LAYER_FIELDS = ("encoder_layers", "decoder_layers", "num_decoder_layers")

#: Second names of the decoder-layer count kept beside it: cut with it. xLSTMConfig fills ``num_blocks``
#: from ``num_hidden_layers``, builds its blocks from ``num_blocks`` and sizes its cache from
#: ``num_hidden_layers`` (configuration_xlstm.py, modeling_xlstm.py), so cutting one alone leaves blocks
#: without a cache entry (``KeyError: 2`` in the trace).
_ALIAS_LAYER_FIELDS = ("num_blocks",)

#: Sub-configs holding the language model of a wrapper, in the order they are looked up.
_TEXT_CONFIGS = ("text_config", "decoder", "decoder_config", "language_config", "llm_config")


@dataclass(frozen=True, kw_only=True)
class CutConfig:
    """A default config cut to a few layers, and what the cut changed."""

    model_type: str
    config: Mapping[str, Any]  # the cut config.json mapping
    layers: tuple[int, int]  # (default, kept) decoder layers
    changes: Mapping[str, str]  # dotted field → "old → new" (lists summarized)

    @property
    def config_hash(self) -> str:
        settings = WORKLOAD_SETTINGS.get(self.model_type)
        # The per-workload settings are part of what was traced (absent for most types: their hash is the
        # config's alone).
        return config_hash({**self.config, "_workload_settings": settings} if settings else self.config)

    def workload_config(self, workload: str) -> dict[str, Any]:
        """The config traced for ``workload`` (a key of :data:`WORKLOADS`): the cut config with the
        type's :data:`WORKLOAD_SETTINGS` for that workload."""
        return {**self.config, **WORKLOAD_SETTINGS.get(self.model_type, {}).get(workload, {})}


def config_hash(config: Mapping[str, Any]) -> str:
    """A short stable hash of a config mapping (sorted JSON, sha256)."""
    text = json.dumps(config, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _layer_field(config: Mapping[str, Any], attribute_map: Mapping[str, str]) -> str | None:
    mapped = attribute_map.get("num_hidden_layers")
    for name in (mapped, *_LAYER_FIELDS):
        if name and isinstance(config.get(name), int) and not isinstance(config.get(name), bool):
            return name
    return None


def _summary(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return f"[{len(value)} entries]"
    return repr(value)


def _kinds_prefix(values: list[Any], multiple: int) -> int:
    """Smallest number of layers whose entries hold every distinct value of ``values``."""
    wanted = {json.dumps(v, sort_keys=True, default=str) for v in values}
    seen: set[str] = set()
    for i, v in enumerate(values):
        seen.add(json.dumps(v, sort_keys=True, default=str))
        if seen == wanted:
            return i // multiple + 1
    return len(values) // multiple


def _index_lists(text: Mapping[str, Any], num_layers: int) -> list[str]:
    """Fields listing layer indices: the known names, and any ``*layers``/``*idxs``/``*ids``/``*indices``
    field holding strictly increasing ints below the layer count (llama4's ``moe_layers``)."""
    out = []
    for name, value in text.items():
        if not isinstance(value, list) or not all(isinstance(i, int) and not isinstance(i, bool) for i in value):
            continue
        increasing = all(a < b for a, b in zip(value, value[1:])) and all(0 <= i < num_layers for i in value)
        named = name.endswith(("layers", "idxs", "ids", "indices", "indexes"))
        if name in INDEX_LIST_FIELDS or (named and increasing and len(value) > 1):
            out.append(name)
    return out


def layers_to_keep(text: Mapping[str, Any], num_layers: int, per_layer: Mapping[str, list[Any]]) -> int:
    """How many leading layers keep every distinct layer kind of a decoder config.

    Args:
        text: the decoder's config mapping (top level or a wrapper's text config).
        num_layers: its layer count.
        per_layer: lists with one entry per layer (config fields and the config object's
            derived per-layer properties such as Jamba's ``layers_block_type``).
    """
    keep = MIN_LAYERS
    for values in per_layer.values():
        distinct = {json.dumps(v, sort_keys=True, default=str) for v in values}
        if len(distinct) > MAX_KINDS:
            continue  # one value per layer (indices, per-layer objects): not a pattern of kinds
        multiple = len(values) // num_layers
        keep = max(keep, _kinds_prefix(list(values), multiple))
    for name in _index_lists(text, num_layers):
        indices = text[name]
        if indices:
            first = min(indices)
            # Keep the first listed layer and one that is not listed.
            first_unlisted = next((i for i in range(num_layers) if i not in set(indices)), 0)
            keep = max(keep, first + 1, first_unlisted + 1)
    for name in LEADING_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            keep = max(keep, value + 1)
    for name in PERIOD_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 1:
            keep = max(keep, value)
    for name in OFFSET_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            keep = max(keep, value + 1)
    for name in PATTERN_FIELDS:
        value = text.get(name)
        if isinstance(value, (list, tuple)) and value:
            keep = max(keep, len(value))
    for name in TRAILING_FIELDS:
        value = text.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and 0 < value < num_layers:
            keep = max(keep, num_layers - value + 1)
    return min(keep, num_layers)


def cut_config(config: Any) -> CutConfig:
    """Cut a transformers config object to a few decoder layers, every layer kind kept.

    The decoder is the top-level config or a wrapper's text config (``text_config`` ...).
    Fields with one entry per layer (``layer_types``, ``layers_block_type``, ``mlp_layer_types``,
    per-layer head counts ...) are cut to match; index lists (``mlp_only_layers`` ...) drop the
    indices past the cut. Vision and audio towers are kept whole (a text workload never runs
    them; their weights count as they are).

    Args:
        config: a ``transformers.PretrainedConfig``.

    Returns:
        The cut config mapping (``config.to_dict()`` with the changes), and the changes.
    """
    full = config.to_dict()
    model_type = str(full.get("model_type") or getattr(config, "model_type", ""))
    text_key = next((k for k in _TEXT_CONFIGS if isinstance(full.get(k), dict)), None)
    text_obj = getattr(config, text_key, None) if text_key else config
    if text_key is not None and not hasattr(text_obj, "to_dict"):
        text_obj = None
    text = dict(full[text_key]) if text_key else dict(full)
    attribute_map = dict(getattr(type(text_obj), "attribute_map", {}) or {}) if text_obj is not None else {}
    field_name = _layer_field(text, attribute_map)
    changes: dict[str, str] = {}
    prefix = f"{text_key}." if text_key else ""
    if field_name is None:
        return CutConfig(model_type=model_type, config=full, layers=(0, 0), changes={})
    derived_count = DERIVED_LAYER_COUNTS.get(model_type)
    derived_field = None
    if derived_count is not None and isinstance(text.get(derived_count[0]), int):
        derived_field, field_name = field_name, derived_count[0]
    num_layers = int(text[field_name])
    patterned: dict[str, str] = {}
    for name, (pattern, what) in _LAYER_PATTERNS.get(model_type, {}).items():
        patterned[prefix + name] = f"{_summary(text.get(name))} → {what} (a real checkpoint's layer pattern)"
        text[name] = pattern(num_layers)
    per_layer: dict[str, list[Any]] = {}
    indexed = _index_lists(text, num_layers)
    for name, value in text.items():
        if name in indexed or name in PATTERN_FIELDS or not isinstance(value, list) or not value:
            continue
        if len(value) % num_layers == 0 and len(value) >= num_layers:
            per_layer[name] = value
    derived: dict[str, list[Any]] = {}
    if text_obj is not None:
        for name in dir(type(text_obj)):
            if name.startswith("_") or name in per_layer or name in IGNORED_PROPERTIES \
                    or not isinstance(getattr(type(text_obj), name, None), property):
                continue
            try:
                value = getattr(text_obj, name)
            except Exception:  # a property that needs fields this config lacks  # noqa: BLE001
                continue
            if isinstance(value, (list, tuple)) and len(value) == num_layers and num_layers > 1:
                derived[name] = list(value)
    keep = layers_to_keep(text, num_layers, {**per_layer, **derived})
    if model_type in MIN_LAYERS_BY_TYPE:
        keep = min(num_layers, max(keep, MIN_LAYERS_BY_TYPE[model_type][0]))
    for name in _PAIRED_LAYER_FIELDS + _ALIAS_LAYER_FIELDS:
        value = text.get(name)
        if name != field_name and isinstance(value, int) and not isinstance(value, bool) and value > keep:
            text[name] = keep
            changes[prefix + name] = f"{value} → {keep}"
    if keep < num_layers:
        text[field_name] = keep
        changes[prefix + field_name] = f"{num_layers} → {keep}"
        if derived_field is not None and derived_count is not None:
            value, text[derived_field] = text[derived_field], derived_count[1](text, keep)
            changes[prefix + derived_field] = f"{value} → {text[derived_field]}"
        for name in TRAILING_FIELDS:
            value = text.get(name)
            if isinstance(value, int) and not isinstance(value, bool) and 0 < value <= num_layers:
                text[name] = keep - (num_layers - value)  # all layers shared (an assistant model) stays all
                changes[prefix + name] = f"{value} → {text[name]}"
        for name, value in per_layer.items():
            multiple = len(value) // num_layers
            text[name] = value[: keep * multiple]
            changes[prefix + name] = f"{_summary(value)} → first {keep * multiple}"
        for name, value in text.items():
            # Per-layer overrides keyed by layer index (gemma4's per_layer_config).
            if isinstance(value, dict) and value and all(str(k).isdigit() for k in value):
                kept_keys = {k: v for k, v in value.items() if int(k) < keep}
                if len(kept_keys) != len(value):
                    text[name] = kept_keys
                    changes[prefix + name] = f"layers {sorted(int(k) for k in value)} → {sorted(int(k) for k in kept_keys)}"
        for name in _index_lists(text, num_layers):
            indices = text[name]
            if indices:
                kept = [i for i in indices if i < keep]
                if kept != indices:
                    text[name] = kept
                    changes[prefix + name] = f"{indices} → {kept}"
    for name, note in patterned.items():
        changes[name] = f"{note}, then {changes[name]}" if name in changes else note
    _repair(model_type, text, changes, prefix)
    top = full if text_key else text  # CutConfig.workload_config sets them on the top-level config
    for workload, settings in WORKLOAD_SETTINGS.get(model_type, {}).items():
        for name, value in settings.items():
            changes[f"{workload}: {name}"] = f"{top.get(name)!r} → {value!r} (this workload only)"
    out = dict(full)
    if text_key:
        out[text_key] = text
    else:
        out = text
    return CutConfig(model_type=model_type, config=out, layers=(num_layers, keep), changes=changes)


#: Fields some default configs leave unset although the model cannot be built without them; each
#: is filled as transformers' own configs derive it when given (e.g. LlamaConfig: head_dim =
#: hidden_size // num_attention_heads, num_key_value_heads = num_attention_heads). Recorded in the changes.
_DERIVED_DEFAULTS = (
    ("head_dim", lambda c: c["hidden_size"] // c["num_attention_heads"]),
    ("num_key_value_heads", lambda c: c["num_attention_heads"]),
)

#: Qwen4-Exp's default layers are linear or "indexed_attention" (full attention behind a QSA token indexer), and
#: the indexer's five sizes default to None, so transformers cannot build the default config's attention layers.
#: The sizes are those of the released Qwen4-Exp text config (4 index query heads and 1 key head of 128, a budget
#: of 2048 tokens in blocks of 4), and with them its partial_rotary_factor 0.25: transformers' validate_architecture
#: requires the rotary part of a 256-wide attention head (256 x 1.0 at the default rope) to fit the 128-wide index
#: head. Unverified against Qwen/Qwen4-Exp's own config.json: the values as third-party loaders of the checkpoint
#: give them (a moespresso loader test's qwen4_exp_text config); vLLM's Qwen4-Exp serving notes give the compress
#: ratio 4.
_QWEN4_EXP_QSA: Mapping[str, Any] = {
    "indexer_n_heads": 4, "indexer_kv_heads": 1, "indexer_head_dim": 128, "indexer_budget": 2048,
    "indexer_compress_ratio": 4,
    "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default", "partial_rotary_factor": 0.25},
}

#: LFM2-8B-A1B's layer_types (https://huggingface.co/LiquidAI/LFM2-8B-A1B/blob/main/config.json).
_LFM2_8B_A1B_LAYERS = (
    "conv", "conv", "full_attention", "conv", "conv", "conv", "full_attention", "conv", "conv", "conv",
    "full_attention", "conv", "conv", "conv", "full_attention", "conv", "conv", "conv", "full_attention",
    "conv", "conv", "full_attention", "conv", "conv")

#: Per-type layer patterns set before the cut (field → a function of the default layer count, and what it
#: sets), each with its source, where the default config's pattern cannot run: lfm2_moe's is unset; bamba's and
#: granitemoehybrid's have Mamba layers only, so transformers' cache holds no attention layer and
#: ``Cache.get_seq_length`` raises ("can only be called on Attention layers"). The real checkpoints interleave
#: attention layers, and the cut keeps the first of them.
_LAYER_PATTERNS: Mapping[str, Mapping[str, tuple[Callable[[int], Any], str]]] = {
    # Lfm2MoeConfig, unlike Lfm2Config, derives no layer_types; past LFM2-8B-A1B's 24 layers (the default has
    # 32), where the cut never reaches, conv.
    "lfm2_moe": {"layer_types": (lambda n: [*_LFM2_8B_A1B_LAYERS[:n], *["conv"] * (n - len(_LFM2_8B_A1B_LAYERS))],
                                 "LFM2-8B-A1B's layer_types")},
    # ibm-ai-platform/Bamba-9B (32 layers, the default's shape) has attention at layers 9, 18 and 27:
    # "attn_layer_indices": [9, 18, 27] in its config.json (https://huggingface.co/ibm-ai-platform/Bamba-9B).
    "bamba": {"attn_layer_indices": (lambda n: [i for i in (9, 18, 27) if i < n], "[9, 18, 27]")},
    # ibm-granite/granite-4.0-h-tiny (40 layers) has attention at layers 5, 15, 25 and 35, Mamba elsewhere
    # ("layer_types" in its config.json, https://huggingface.co/ibm-granite/granite-4.0-h-tiny; the GGUF's
    # head_count_kv is 0 for layers 0-4, https://ollama.com/library/granite4:tiny-h): every tenth from 5.
    "granitemoehybrid": {"layer_types": (
        lambda n: ["full_attention" if i % 10 == 5 else "linear_attention" for i in range(n)],
        "full_attention at every tenth layer from 5, linear_attention (Mamba) elsewhere")},
}

#: Per-type settings for one workload only, where the default config runs one workload and not the other,
#: each with its source (part of the entry's config hash).
WORKLOAD_SETTINGS: Mapping[str, Mapping[str, Mapping[str, Any]]] = {
    # xLSTMConfig's default mode "inference" runs the inference kernels, which backward cannot go through
    # ("expected scalar type float32 but found bfloat16" in bf16), and with use_cache=True the training
    # forward copies each layer's new state in place into the cache tensors it saved for backward
    # (modeling_xlstm.py xLSTMModel.forward: cache.rnn_state[...].copy_; "modified by an inplace operation").
    # Training needs mode "train" (xLSTMBackend: the chunkwise native-autograd kernel) and no cache; mode
    # "train" cannot generate (it needs the sequence length to be a multiple of chunk_size), so inference
    # keeps the default.
    "xlstm": {"training": {"mode": "train", "use_cache": False}},
}

#: Per-type settings without which the default config cannot be built or generate text, each with its source.
_TYPE_SETTINGS: Mapping[str, Mapping[str, Any]] = {
    # transformers' own error: "If you want to use `ReformerModelWithLMHead` make sure that `is_decoder=True`".
    "reformer": {"is_decoder": True},
    # The default leaves top-k unset beside its 64 routed experts (DeepSeek-V2-Lite's shape) and gives
    # the experts a width of 1407, whose bf16 rows grouped_mm rejects (16-byte strides); DeepSeek-V2-Lite's
    # config.json routes 6 per token to experts 1408 wide:
    # https://huggingface.co/deepseek-ai/DeepSeek-V2-Lite/blob/main/config.json
    "deepseek_v2": {"num_experts_per_tok": 6, "moe_intermediate_size": 1408},
    "qwen4_exp": _QWEN4_EXP_QSA,
    "qwen4_exp_text": _QWEN4_EXP_QSA,
    # Dory's cut (MIN_LAYERS_BY_TYPE) keeps 4 decoder layers; DoryConfig.validate_architecture requires
    # n_input + n_recurrent + n_output = num_hidden_layers, all written doubled in config.json (one attention and
    # one mlp block per layer). The default splits 36 layers 8 / 20 / 8; the cut keeps one input, two recurrent
    # (run n_recurrent_loops = 2 times) and one output layer, so every section stays.
    "dory": {"n_input_layers": 2, "n_recurrent_layers": 4, "n_output_layers": 2},
    # DbrxAttention reads attn_config.rope_theta, which DbrxAttentionConfig does not define (the rotary
    # embedding itself reads rope_parameters), and clamps q/k/v with clip_qkv, whose default None makes
    # clamp(min=None, max=None) raise; DBRX's config.json sets 500000 and 8:
    # https://huggingface.co/databricks/dbrx-base/blob/main/config.json
    "dbrx": {"attn_config.rope_theta": 500000, "attn_config.clip_qkv": 8},
    # The default leaves the expert counts unset (torch.empty(None, ...) in Dots1Experts and a None
    # shared-expert width); dots.llm1 routes 6 of 128 experts per token beside 2 shared experts:
    # https://huggingface.co/rednote-hilab/dots.llm1.base/blob/main/config.json
    "dots1": {"n_routed_experts": 128, "n_shared_experts": 2, "num_experts_per_tok": 6},
    # The rotary embedding keys rope_parameters by layer type and the default's is empty; North-Micro's
    # config.json gives its full-attention layers no rotary embedding (null; NoPE):
    # https://huggingface.co/CohereLabs/North-Micro-Vision-Instruct/blob/main/config.json (text_config)
    "cohere_compass_text": {"rope_parameters": {"full_attention": None}},
}

def _repair(model_type: str, text: dict[str, Any], changes: dict[str, str], prefix: str) -> None:
    for name, derive in _DERIVED_DEFAULTS:
        if name in text and text[name] is None:
            try:
                text[name] = derive(text)
            except (KeyError, TypeError, ZeroDivisionError):
                continue
            changes[prefix + name] = f"None → {text[name]} (unset in the default config)"
    for name, value in _TYPE_SETTINGS.get(model_type, {}).items():
        *parents, leaf = name.split(".")  # a dotted name sets a field of a nested config (dbrx's attn_config)
        target = text
        for parent in parents:
            target = target[parent]
        if target.get(leaf) != value:
            changes[prefix + name] = f"{target.get(leaf)!r} → {value!r} (required to build or generate)"
            target[leaf] = value


#: Per-type keyword arguments to ``AutoConfig.for_model`` where transformers' own validation rejects the default
#: config (so it cannot be repaired after construction), each with why; recorded in the cut's changes.
_CONFIG_OVERRIDES: Mapping[str, tuple[Mapping[str, Any], str]] = {
    # Gemma4AssistantConfig's default text config is gemma4_text's default, with per-layer inputs (256 wide, over a
    # 262144-token vocabulary), which its own validate_architecture forbids ("hidden_size_per_layer_input must be 0",
    # then the same for vocab_size_per_layer_input): the values are the only ones the validator accepts.
    "gemma4_assistant": ({"text_config": {"hidden_size_per_layer_input": 0, "vocab_size_per_layer_input": 0}},
                         "Gemma4AssistantConfig.validate_architecture requires it"),
    # Kolibri1_1's indexer picks tokens with torch.unique (aten._unique2, data-dependent shapes), so the trace takes
    # the real-values retry; its default 5-layer cut holds 5.43 B parameters (384 routed experts of 3 x 2560 x 512
    # in three MoE layers, a 128,000-token embedding and head): 10.1 GiB of bf16 host copies for inference and
    # 40.4 GiB for training, past constants.REAL_VALUES_MAX_BYTES. Fewer experts and a smaller vocabulary keep
    # every layer kind (MoE, dense, sliding, indexed and KV-sharing layers) and bring the copies under the limit.
    "kolibri1_1": ({"num_local_experts": 16, "vocab_size": 32000},
                   "real-values host copies of the default cut exceed constants.REAL_VALUES_MAX_BYTES"),
}


def _override_changes(config: Any, overrides: Mapping[str, Any], why: str, prefix: str = "") -> dict[str, str]:
    """``"old → new (why)"`` per overridden field, the old value being the field's class default."""
    import dataclasses

    changes: dict[str, str] = {}
    for name, value in overrides.items():
        if isinstance(value, Mapping):
            changes.update(_override_changes(getattr(config, name), value, why, f"{prefix}{name}."))
            continue
        default = next((f.default for f in dataclasses.fields(config) if f.name == name), None)
        changes[prefix + name] = f"{default!r} → {value!r} ({why})"
    return changes


def default_cut_config(model_type: str) -> CutConfig:
    """``AutoConfig.for_model(model_type)`` cut by :func:`cut_config` (needs transformers).

    Where transformers rejects the default config itself, the per-type :data:`_CONFIG_OVERRIDES` are passed to
    ``for_model`` and recorded in the changes.
    """
    import transformers

    overrides, why = _CONFIG_OVERRIDES.get(model_type, ({}, ""))
    config = transformers.AutoConfig.for_model(model_type, **overrides)
    cut = cut_config(config)
    if not overrides:
        return cut
    return replace(cut, changes={**_override_changes(config, overrides, why), **cut.changes})


def load_data(path: Path = DATA_PATH) -> dict[str, Any]:
    """The committed traces: ``{"versions": ..., "workloads": ..., "entries": {model_type: {...}}}``."""
    if not path.exists():
        return {"entries": {}}
    return json.loads(path.read_text())


#: Share of all causal-LM types that must be within tolerance (exact counts, both workloads).
#: Issue 11's target; measured 191 of 200 (0.955, transformers 5.25.0) with the family modules, the generic family and the
#: checkpoint headers of tests/data/coverage_headers.json.gz; the rest are listed with their error and
#: reason in docs/coverage.md.
MIN_COVERAGE = 0.90

#: Types the analytic side estimates but misses (parameter count or a tolerance), with the reason.
#: Types it cannot estimate yet, or that exact mode could not trace, are listed with their error
#: automatically (see :func:`rows`).
KNOWN_GAPS: Mapping[str, str] = {
    "ergo": (
        "ErgoPreTrainedModel._keep_in_fp32_modules_strict keeps embed_tokens, the norms and the residual gates in "
        "float32 whatever the load dtype (the 262,144 x 8,192 embedding: 8.0 GiB, not 4.0 GiB), which the generic "
        "family does not model (weights -4,120 MiB); and ErgoLinearWithFP32Output computes the vocabulary logits "
        "as F.linear(x.float(), weight.float()) off CUDA, a float32 copy of lm_head (8.0 GiB) that the fake-tensor "
        "trace records at the prefill peak, where a CUDA device in inference takes torch.mm(..., out_dtype=float32) "
        "without the copy (modeling_ergo.py, transformers 5.25.0)"
    ),
}


#: Qwen4-Exp (and its text model): the parameter figures are those of the meta-device model of the cut config.
_QWEN4_EXP_GAP = (
    "its QSA indexer picks each query's tokens with nonzero over the attention mask, in a Python loop over batch "
    "and query (data-dependent shapes), so the trace takes the real-values retry, which needs host copies of the "
    "4-layer cut's 7.65 B parameters: every layer is MoE with 512 routed experts (3 x 2048 x 512 each, 6.44 B in "
    "the 4 layers) and the 248,320-token embedding and head hold 1.02 B; 14.3 GiB in bfloat16 for inference and "
    "57 GiB for training, past the 8 GiB limit (constants.REAL_VALUES_MAX_BYTES). The smallest cut that keeps "
    "both layer kinds (one linear_attention and one indexed_attention layer) still has 4.34 B parameters (8.1 GiB "
    "for inference, 32.3 GiB for training). The default config also leaves the indexer sizes unset (repaired from "
    "the released config)"
)

#: Why exact mode cannot trace a type at its default config, where transformers' error alone does not
#: say it plainly (the recorded error follows in the table).
TRACE_GAPS: Mapping[str, str] = {
    "longcat_flash": "a data-dependent output shape (nonzero in the router): the real-values retry needs "
                     "host copies of its 54.4 B parameters after the cut (512 experts per MoE layer), 101 GiB "
                     "in bfloat16, past the 8 GiB limit (constants.REAL_VALUES_MAX_BYTES)",
    "reformer": "inference in bfloat16: the axial position embeddings are float32 parameters "
                "(AxialPositionEmbeddings builds them with dtype=torch.float32), so the hidden states become "
                "float32 and the LSH attention's decode step (einsum with the cached states and bfloat16 "
                "weights) fails; training: axial_pos_shape (64, 64) must multiply to the sequence length "
                "(128), and a shape of 128 positions would fail inference, which needs at least 144",
    "gemma4_unified_assistant": "a draft model: its forward takes the main model's input embeddings and shared "
                                "KV states (shared_kv_states) and raises without them; alone it has no memory "
                                "of its own to trace, and with them the figure is the main model's",
    "gemma3n": "its vision tower (TimmWrapperModel) needs timm, and timm needs torchvision, which has no "
               "build for the CPU-only torch 2.13 the traces are recorded with",
    "git": "training: transformers' GitForCausalLM loss always drops the image_patch_tokens (197 at the default "
           "config) in front of the logits, so text-only training fails in transformers itself",
    "blt": "transformers' BltModel builds DynamicCache(config=BltConfig) whenever use_cache (the config's default) "
           "and BltConfig has no num_hidden_layers: forward, forward with labels and generate all fail in "
           "transformers itself (with use_cache=False it runs)",
    "qwen4_exp": _QWEN4_EXP_GAP,
    "qwen4_exp_text": _QWEN4_EXP_GAP,
    "gemma4_assistant": "a draft model that runs on the main model's shared KV states and input embeddings "
                        "(its forward rejects input ids alone); the default config also fails transformers' own "
                        "validation (per-layer inputs, repaired to 0)",
}


@dataclass(frozen=True, kw_only=True)
class Row:
    """One model type of the coverage matrix: traced vs analytic."""

    model_type: str
    status: str  # one of STATUSES
    family: str | None = None  # the family module that registers the type (or the analytic family's name)
    generic: bool = False
    layers: tuple[int, int] = (0, 0)
    kinds: tuple[str, ...] = ()  # the analytic layer kinds: mixer kinds, then "moe" when an FFN is MoE
    traced_parameters: int | None = None
    analytic_parameters: int | None = None
    traced_bytes: Mapping[str, int] = field(default_factory=dict)
    analytic_bytes: Mapping[str, int] = field(default_factory=dict)
    reason: str = ""

    @property
    def errors(self) -> dict[str, float]:
        """analytic / traced − 1 per workload (traced and estimated only)."""
        return {w: self.analytic_bytes[w] / t - 1 for w, t in self.traced_bytes.items()
                if t and w in self.analytic_bytes}  # fmt: skip

    @property
    def exact_count(self) -> bool:
        return self.traced_parameters is not None and self.traced_parameters == self.analytic_parameters

    @property
    def within(self) -> bool:
        return self.status == "within"


#: Row statuses, best first.
STATUSES = ("within", "outside", "not estimated", "not traced", "stale")


def _first_line(text: str, limit: int = 160) -> str:
    line = " ".join(str(text).split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def compare_entry(model_type: str, entry: Mapping[str, Any]) -> Row:
    """The analytic side of one recorded type against its traces (pure: no torch)."""
    from hf_gpu_estimator.errors import EstimatorError, UnsupportedArchitectureError
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.workload import make_workload

    traces = entry.get("traces") or {}
    row = Row(model_type=model_type, status="outside", layers=tuple(entry.get("layers") or (0, 0)),
              traced_parameters=entry.get("parameters"),
              traced_bytes={w: int(traces[w]["peak_bytes"]) for w in WORKLOADS if w in traces})
    config = entry.get("config")
    if not config:
        why = TRACE_GAPS.get(model_type)
        error = entry.get("error", "no config")
        return replace(row, status="not traced", reason=_first_line(f"{why} ({error})" if why else error, 200))
    problems: list[str] = []
    buckets: dict[str, dict[str, int]] = {}
    try:
        tensors = header_tensors(model_type, entry)
        if tensors is None:
            spec = inspect_model(dict(config))
        else:
            from hf_gpu_estimator.sources.headers import build_spec

            spec = build_spec(model_id=model_type, config=dict(config), tensors=tensors)
    except (EstimatorError, ValueError, KeyError, TypeError) as e:
        problems.append("no analytic family" if isinstance(e, UnsupportedArchitectureError)
                        else f"{type(e).__name__}: {e}")
    else:
        arch = spec.architecture
        kinds: tuple[str, ...] = ()
        if arch is not None:
            kinds = tuple(arch.mixer_kinds) + (("moe",) if any(l.ffn.kind == "moe" for l, _ in arch.layer_groups) else ())
        row = replace(row, family=family_module(model_type) or (arch.family if arch is not None else None),
                      analytic_parameters=spec.parameters.total,
                      kinds=kinds,
                      generic=getattr(arch, "derivation", "family") == "generic")
        if arch is None:
            problems.append("no layer model (weights only)")
        analytic: dict[str, int] = {}
        for w, options in WORKLOADS.items():
            if arch is None:
                break
            try:
                m = estimate_memory(spec, make_workload(**options), detail=False)
            except (EstimatorError, ValueError, KeyError, TypeError) as e:
                problems.append(f"{w}: {type(e).__name__}: {e}")
                continue
            analytic[w] = m.allocated_peak_bytes - m.components.get("workspace", 0)
            buckets[w] = _analytic_buckets(m.components)
        row = replace(row, analytic_bytes=analytic)
    if len(row.traced_bytes) < len(WORKLOADS):
        missing = entry.get("errors") or {"trace": entry.get("error", "")}
        error = "; ".join(f"{k}: {v}" for k, v in missing.items())
        why = TRACE_GAPS.get(model_type)
        return replace(row, status="not traced", reason=_first_line(f"{why} ({error})" if why else error, 200))
    if problems:
        return replace(row, status="not estimated", reason=_first_line("; ".join(problems)))
    within = row.exact_count and all(abs(e) <= TOLERANCE[w] for w, e in row.errors.items())
    if within:
        return replace(row, status="within")
    reason = KNOWN_GAPS.get(model_type) or diagnose(row, entry, spec.parameters.by_role, buckets)
    return replace(row, status="outside", reason=reason)


HEADERS_PATH = DATA_PATH.with_name("coverage_headers.json.gz")


@functools.lru_cache(maxsize=1)
def load_headers() -> Mapping[str, Any]:
    """The recorded checkpoint headers by model type (``benchmarks/coverage_headers.py``)."""
    if not HEADERS_PATH.exists():
        return {}
    with gzip.open(HEADERS_PATH, "rt", encoding="utf-8") as f:
        return json.load(f).get("entries", {})


def header_tensors(model_type: str, entry: Mapping[str, Any]) -> tuple[TensorInfo, ...] | None:
    """The recorded checkpoint header of ``model_type`` (what the Hub would serve), when it matches the
    traced config; ``None`` otherwise (the analytic side then reads config.json alone)."""
    recorded = load_headers().get(model_type)
    if not recorded or recorded.get("config_hash") != entry.get("config_hash"):
        return None
    return tuple(TensorInfo(name=n, dtype=d, shape=tuple(shape)) for n, d, shape in recorded["tensors"])


def family_module(model_type: str) -> str | None:
    """The family module (``llama_like`` ...) that registers ``model_type``, or None (generic family)."""
    from hf_gpu_estimator.architectures import families

    by_module = getattr(families, "model_types_by_module", None)
    if by_module is None:
        return None
    for module, types in by_module().items():
        if model_type in types:
            return module.rsplit(".", 1)[-1]
    return None


#: Memory buckets a trace and an analytic estimate both have (trace categories → analytic components).
_TRACE_BUCKETS = {"params": "weights", "buffers": "weights", "grads": "gradients", "optimizer": "optimizer states"}
_ANALYTIC_BUCKETS = {"weights": "weights", "gradients": "gradients", "optimizer_states": "optimizer states",
                     "workspace": None}


def _analytic_buckets(components: Mapping[str, int]) -> dict[str, int]:
    out: dict[str, int] = {}
    for name, nbytes in components.items():
        bucket = _ANALYTIC_BUCKETS.get(name, "activations and cache")
        if bucket is not None:
            out[bucket] = out.get(bucket, 0) + int(nbytes)
    return out


def _bytes(n: int) -> str:
    return f"{n / (1 << 20):+,.0f} MiB" if abs(n) >= 1 << 20 else f"{n / 1024:+,.0f} KiB"


def diagnose(row: Row, entry: Mapping[str, Any], analytic_roles: Mapping[str, int],
             analytic_buckets: Mapping[str, Mapping[str, int]]) -> str:
    """Where an estimated type misses, from the recorded data: the parameter count by tensor-name
    role (analytic − traced) and, per workload outside tolerance, the memory bucket differences at
    the peak (largest first)."""
    parts: list[str] = []
    if not row.exact_count and row.traced_parameters is not None and row.analytic_parameters is not None:
        traced_roles = entry.get("parameters_by_role") or {}
        diffs = {r: analytic_roles.get(r, 0) - traced_roles.get(r, 0) for r in {*analytic_roles, *traced_roles}}
        by_role = ", ".join(f"{r} {d:+,}" for r, d in sorted(diffs.items(), key=lambda x: (-abs(x[1]), x[0])) if d)
        parts.append(f"parameters {row.analytic_parameters - row.traced_parameters:+,}"
                     + (f" ({by_role})" if by_role and traced_roles else ""))
    traces = entry.get("traces") or {}
    for w, err in row.errors.items():
        if abs(err) <= TOLERANCE[w]:
            continue
        traced: dict[str, int] = {}
        for category, nbytes in (traces.get(w, {}).get("breakdown_at_peak") or {}).items():
            bucket = _TRACE_BUCKETS.get(category, "activations and cache")
            traced[bucket] = traced.get(bucket, 0) + int(nbytes)
        analytic = analytic_buckets.get(w, {})
        diffs = {b: analytic.get(b, 0) - traced.get(b, 0) for b in {*traced, *analytic}}
        big = [f"{b} {_bytes(d)}" for b, d in sorted(diffs.items(), key=lambda x: (-abs(x[1]), x[0]))
               if abs(d) >= 0.01 * row.traced_bytes[w]]
        parts.append(f"{w} {err * 100:+.1f}%" + (f" ({', '.join(big)})" if big else ""))
    return "; ".join(parts)


def rows(data: Mapping[str, Any] | None = None, *, stale: Mapping[str, str] | None = None) -> list[Row]:
    """Every recorded type compared (``stale``: model_type → why its entry is not trusted)."""
    data = load_data() if data is None else data
    out = []
    for model_type, entry in sorted(data.get("entries", {}).items()):
        if stale and model_type in stale:
            out.append(Row(model_type=model_type, status="stale", reason=stale[model_type]))
        else:
            out.append(compare_entry(model_type, entry))
    return out


def stale_entries(data: Mapping[str, Any]) -> dict[str, str]:
    """model_type → why its entry cannot be trusted under the installed torch/transformers (needs them).

    An entry is stale when it was traced with other torch or transformers versions, or when the
    cut default config of the installed transformers hashes differently; a causal-LM type with
    no entry at all is reported too.
    """
    import torch
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    out: dict[str, str] = {}
    entries = data.get("entries", {})
    for model_type in sorted(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        entry = entries.get(model_type)
        if entry is None:
            out[model_type] = "no trace recorded"
            continue
        if (entry.get("torch"), entry.get("transformers")) != (torch.__version__, transformers.__version__):
            out[model_type] = (f"traced with torch {entry.get('torch')}, transformers {entry.get('transformers')}; "
                               f"installed: {torch.__version__}, {transformers.__version__}")
            continue
        if entry.get("tracer") != TRACER_VERSION:
            out[model_type] = f"traced by tracer version {entry.get('tracer')}; current: {TRACER_VERSION}"
            continue
        if entry.get("status") == "pending":
            out[model_type] = "trace in progress or interrupted"
            continue
        if entry.get("config_hash") is None:
            continue  # the default config itself failed to build: recorded as not traced
        try:
            current = default_cut_config(model_type).config_hash
        except Exception as e:  # noqa: BLE001 - the config failing to build now is a change too
            current = f"error {type(e).__name__}"
        if current != entry.get("config_hash"):
            out[model_type] = f"cut config changed (hash {entry.get('config_hash')} → {current})"
    return out


@dataclass(frozen=True, kw_only=True)
class Summary:
    types: int
    traced: int
    estimated: int
    exact_counts: int
    within: int
    count_only: int = 0  # outside only by the parameter count (memory within tolerance)

    @property
    def coverage(self) -> float:
        return self.within / self.types if self.types else 0.0


def summarize(table: list[Row], *, types: int | None = None) -> Summary:
    return Summary(
        types=types if types is not None else len(table),
        traced=sum(1 for r in table if len(r.traced_bytes) == len(WORKLOADS)),
        estimated=sum(1 for r in table if len(r.analytic_bytes) == len(WORKLOADS)),
        exact_counts=sum(1 for r in table if r.exact_count),
        within=sum(1 for r in table if r.within),
        count_only=sum(1 for r in table if r.status == "outside" and not r.exact_count
                       and all(abs(e) <= TOLERANCE[w] for w, e in r.errors.items())),
    )


def by_kind(table: list[Row]) -> dict[str, list[Row]]:
    """Estimated and traced types grouped by layer kind (a type under each of its kinds)."""
    out: dict[str, list[Row]] = {}
    for r in table:
        if r.status in ("within", "outside"):
            for kind in r.kinds:
                out.setdefault(kind, []).append(r)
    return dict(sorted(out.items()))


def _pct(x: float | None) -> str:
    return "" if x is None else f"{x * 100:+.1f}%"


def render_markdown(table: list[Row], summary: Summary, versions: Mapping[str, str]) -> str:
    """docs/coverage.md: the figures, then one row per model type."""
    w = list(WORKLOADS)
    lines = [
        "# Coverage",
        "",
        "Generated by `benchmarks/coverage_report.py` from `tests/data/coverage_traces.json` "
        "(traced by `benchmarks/coverage_traces.py`); do not edit by hand.",
        "",
        f"Every causal-LM model type of transformers {versions.get('transformers', '?')} "
        "(`MODEL_FOR_CAUSAL_LM_MAPPING_NAMES`), each at its default config (`AutoConfig.for_model`) cut to a few "
        "decoder layers with every layer kind kept, traced in exact mode (torch "
        f"{versions.get('torch', '?')}, fake tensors) and estimated analytically on the same config and the safetensors header its checkpoint would carry (tensor names, shapes; recorded by `benchmarks/coverage_headers.py`), as an estimate of a Hub repo reads them. "
        "Workloads: " + "; ".join(f"{k}: " + ", ".join(f"{a}={b}" for a, b in v.items() if a != "task")
                                   for k, v in WORKLOADS.items()) + ". "
        "Error = analytic / traced − 1 on the peak allocated bytes (without the cuBLAS workspace, which a "
        "trace cannot see). Tolerance: " + ", ".join(f"{k} ±{v * 100:.0f}%" for k, v in TOLERANCE.items())
        + ", with exact parameter counts (`sum(p.numel())` of the model built on the meta device).",
        "",
        f"**{summary.within} of {summary.types} types within tolerance ({summary.coverage * 100:.1f}%)**; "
        f"traced: {summary.traced}; estimated analytically: {summary.estimated}; exact parameter counts: "
        f"{summary.exact_counts}; outside only by the parameter count (memory within tolerance): {summary.count_only}.",
    ]
    kinds = by_kind(table)
    if kinds:
        lines += ["", "By layer kind (types whose analytic description contains the kind; a type counts under "
                  "each of its kinds). The memory error columns take only the types whose parameter count is "
                  "exact, so they measure the memory model of the kind, not the counting:", "",
                  "| kind | types estimated | within tolerance | exact counts | "
                  + " | ".join(f"median \\|{k} error\\| | worst {k}" for k in w) + " |",
                  "|---|---:|---:|---:|" + "---:|---:|" * len(w)]
        for kind, group in kinds.items():
            exact = [r for r in group if r.exact_count]
            cells = []
            for k in w:
                errs = sorted((r.errors[k] for r in exact if k in r.errors), key=abs)
                cells += [f"{abs(errs[len(errs) // 2]) * 100:.1f}%" if errs else "", _pct(errs[-1]) if errs else ""]
            lines.append(f"| {kind} | {len(group)} | {sum(r.within for r in group)} | {len(exact)} | "
                         + " | ".join(cells) + " |")
    lines += ["", "| model type | layers (default → cut) | family | kinds | parameters | "
              + " | ".join(f"{k} error" for k in w) + " | status | reason |",
              "|---|---|---|---|---:|" + "---:|" * len(w) + "---|---|"]
    for r in table:
        family = "generic" if r.generic else (r.family or "")
        params = "" if r.traced_parameters is None else f"{r.traced_parameters:,}"
        if r.traced_parameters is not None and r.analytic_parameters is not None and not r.exact_count:
            params += f" (analytic {r.analytic_parameters - r.traced_parameters:+,})"
        errs = r.errors
        cells = [_pct(errs.get(k)) for k in w]
        layers = f"{r.layers[0]} → {r.layers[1]}" if r.layers[0] else ""
        reason = r.reason.replace("|", "\\|")
        lines.append(f"| {r.model_type} | {layers} | {family} | {', '.join(r.kinds)} | {params} | " + " | ".join(cells)
                     + f" | {r.status} | {reason} |")
    return "\n".join(lines) + "\n"


#: The generated page (repository checkout).
DOC_PATH = Path(__file__).resolve().parents[2] / "docs" / "coverage.md"


def current_table(data: Mapping[str, Any] | None = None) -> tuple[list[Row], Summary]:
    """Every causal-LM type of the installed transformers compared, stale entries marked (needs torch)."""
    data = load_data() if data is None else data
    stale = stale_entries(data)
    table = rows(data, stale=stale)
    known = {r.model_type for r in table}
    table += [Row(model_type=t, status="stale", reason=stale[t]) for t in sorted(set(stale) - known)]
    table.sort(key=lambda r: r.model_type)
    return table, summarize(table, types=len(known | set(stale)))


def build_markdown(table: list[Row], summary: Summary) -> str:
    """docs/coverage.md for the installed torch/transformers."""
    import torch
    import transformers

    return render_markdown(table, summary, {"torch": torch.__version__, "transformers": transformers.__version__})
