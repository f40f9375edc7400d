"""KV cache: bytes per token per layer, for transformers' DynamicCache and for paged serving."""

from __future__ import annotations

from hf_gpu_estimator.spec import Architecture


def kv_bytes_per_token_per_layer(arch: Architecture, dtype_bytes: int) -> int:
    """Bytes one token adds to one attention layer's cache.

    * MHA/GQA/MQA: keys and values, ``2 * num_key_value_heads * head_dim`` elements
      (``v_head_dim`` for values where it differs).
    * MLA (deepseek_v3): transformers >= 5 caches the compressed latent and the shared rotary key,
      ``kv_lora_rank + qk_rope_head_dim`` elements (modeling_deepseek_v3.DeepseekV3Attention: the
      cache is updated "while latent KV is still compressed"), as vLLM and SGLang do.
    """
    if arch.is_mla:
        return (int(arch.kv_lora_rank or 0) + int(arch.qk_rope_head_dim or 0)) * dtype_bytes
    v_dim = arch.v_head_dim or arch.head_dim
    return arch.num_key_value_heads * (arch.head_dim + v_dim) * dtype_bytes


def cached_tokens_per_layer(arch: Architecture, tokens: int, *, storage: bool = False) -> list[int]:
    """Tokens each layer's cache holds after ``tokens`` tokens.

    Sliding-window layers (``layer_types`` entries ``"sliding_attention"``) keep the last
    ``sliding_window - 1`` tokens (transformers cache_utils.DynamicSlidingWindowLayer). Right after a
    prefill longer than the window, the kept keys are a *view* of the full prefill tensor, so the
    storage still holds every prompt token until the first decode step: ``storage=True`` returns
    that.
    """
    types = arch.layer_types or ("full_attention",) * arch.num_layers
    window = arch.sliding_window
    out = []
    for kind in types:
        if kind == "sliding_attention" and window and not storage:
            out.append(min(tokens, window - 1))
        else:
            out.append(tokens)
    return out


def kv_cache_bytes(arch: Architecture, *, batch_size: int, tokens: int, dtype_bytes: int,
                   storage: bool = False, kv_heads_divisor: int = 1) -> int:
    """Bytes of the whole cache for ``batch_size`` sequences of ``tokens`` tokens.

    ``kv_heads_divisor`` is the tensor-parallel degree (heads are split; replicated when fewer
    KV heads than devices, as vLLM does).
    """
    per_token = kv_bytes_per_token_per_layer(arch, dtype_bytes)
    if kv_heads_divisor > 1 and not arch.is_mla:
        kept_heads = max(1, arch.num_key_value_heads // kv_heads_divisor)
        per_token = per_token * kept_heads // arch.num_key_value_heads
    attention_layers = cached_tokens_per_layer(arch, tokens, storage=storage)
    if not arch.is_decoder:
        return 0
    return batch_size * per_token * sum(attention_layers)
