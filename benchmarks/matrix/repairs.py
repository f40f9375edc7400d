"""The recorded repairs of default configs that transformers cannot build or run as they are.

Each entry names its source: a real checkpoint's config.json, or transformers' own error. The cut
(:mod:`matrix.cut`) applies them and records every change in the cut config's ``changes``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

#: Types whose layer pattern needs more than its first occurrence, with why: keep this many layers.
MIN_LAYERS_BY_TYPE: Mapping[str, tuple[int, str]] = {
    "zamba": (11, "its shared attention block is tied across hybrid layers (attn_layer_offset 4, "
                  "attn_layer_period 6): transformers needs two of them"),
    # DoryConfig.to_dict writes each decoder layer as two blocks (attention, then "mlp") and doubles the
    # layer counts; from_dict halves them again, so the cut must keep whole pairs: 8 blocks = 4 layers,
    # one input, two recurrent and one output layer (see TYPE_SETTINGS), the fourth full attention.
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

#: Fields some default configs leave unset although the model cannot be built without them; each
#: is filled as transformers' own configs derive it when given (e.g. LlamaConfig: head_dim =
#: hidden_size // num_attention_heads, num_key_value_heads = num_attention_heads). Recorded in the changes.
DERIVED_DEFAULTS = (
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
LAYER_PATTERNS: Mapping[str, Mapping[str, tuple[Callable[[int], Any], str]]] = {
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
TYPE_SETTINGS: Mapping[str, Mapping[str, Any]] = {
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

def repair(model_type: str, text: dict[str, Any], changes: dict[str, str], prefix: str) -> None:
    for name, derive in DERIVED_DEFAULTS:
        if name in text and text[name] is None:
            try:
                text[name] = derive(text)
            except (KeyError, TypeError, ZeroDivisionError):
                continue
            changes[prefix + name] = f"None → {text[name]} (unset in the default config)"
    for name, value in TYPE_SETTINGS.get(model_type, {}).items():
        *parents, leaf = name.split(".")  # a dotted name sets a field of a nested config (dbrx's attn_config)
        target = text
        for parent in parents:
            target = target[parent]
        if target.get(leaf) != value:
            changes[prefix + name] = f"{target.get(leaf)!r} → {value!r} (required to build or generate)"
            target[leaf] = value


#: Per-type keyword arguments to ``AutoConfig.for_model`` where transformers' own validation rejects the default
#: config (so it cannot be repaired after construction), each with why; recorded in the cut's changes.
CONFIG_OVERRIDES: Mapping[str, tuple[Mapping[str, Any], str]] = {
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


def override_changes(config: Any, overrides: Mapping[str, Any], why: str, prefix: str = "") -> dict[str, str]:
    """``"old → new (why)"`` per overridden field, the old value being the field's class default."""
    import dataclasses

    changes: dict[str, str] = {}
    for name, value in overrides.items():
        if isinstance(value, Mapping):
            changes.update(override_changes(getattr(config, name), value, why, f"{prefix}{name}."))
            continue
        default = next((f.default for f in dataclasses.fields(config) if f.name == name), None)
        changes[prefix + name] = f"{default!r} → {value!r} ({why})"
    return changes
