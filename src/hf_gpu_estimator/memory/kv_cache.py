"""KV cache and recurrent state, per layer kind, for transformers' caches and for paged serving.

Each layer's mixer (``spec.Mixer``) says what it keeps: attention kinds a cache growing with the
sequence (keys and values, or MLA's latent), capped at the window for sliding and chunked layers;
linear-attention and SSM layers a fixed state per sequence. Sums run over ``layer_groups`` (distinct
layers with their counts), so a 100-layer uniform model costs one term.
"""

from __future__ import annotations

from hf_gpu_estimator.spec import STATE_KINDS, Architecture, Mixer

#: Recurrent states are fp32 whatever the model dtype: transformers 5 caches ``zeros_like`` of the final
#: state the scan returns (cache_utils.LinearAttentionLayer), and the scans compute in fp32
#: (modeling_mamba.py ``mamba_selective_scan`` promotes through the fp32 ``discrete_A``; modeling_mamba2.py
#: ``mamba2_chunk_scan`` and modeling_qwen3_next.py ``torch_chunk_gated_delta_rule`` cast to float32).
#: The convolution states keep the model dtype. Checked for mamba, mamba2, jamba, nemotron_h, qwen3_next
#: and lfm2 in bfloat16 by tests/test_architectures.py::test_recurrent_state_shapes_and_dtypes. RWKV-4
#: (``wkv``) keeps its numerator, denominator and maximum in fp32 and its token-shift states in the model
#: dtype (modeling_rwkv.py ``RwkvModel.forward``: ``dtype=inputs_embeds.dtype if i <= 1 else torch.float32``).
_STATE_FP32_KINDS = frozenset({"linear", "ssm", "wkv"})


def kv_bytes_per_token_per_layer(arch: Architecture, dtype_bytes: int) -> int:
    """Bytes one token adds to one attention layer's cache (the first attention layer's kind).

    * MHA/GQA/MQA: keys and values, ``2 * num_key_value_heads * head_dim`` elements
      (``v_head_dim`` for values where it differs).
    * MLA (deepseek): transformers >= 5 caches the compressed latent and the shared rotary key,
      ``kv_lora_rank + qk_rope_head_dim`` elements (modeling_deepseek_v3.DeepseekV3Attention: the
      cache is updated "while latent KV is still compressed"), as vLLM and SGLang do.
    """
    for layer, _ in arch.layer_groups:
        if layer.mixer.has_cache:
            return layer.mixer.cache_elements_per_token() * dtype_bytes
    return 0


def state_bytes_per_sequence(mixer: Mixer, dtype_bytes: int, *, state_dtype_bytes: int | None = None) -> int:
    """Bytes of a recurrent layer's state for one sequence (0 for attention kinds).

    ``state_dtype_bytes`` overrides the recurrent state's element size (transformers': fp32 for
    linear attention, the model dtype otherwise) for engines that keep it in another dtype.
    """
    if mixer.kind not in STATE_KINDS:
        return 0
    state = state_dtype_bytes or (4 if mixer.kind in _STATE_FP32_KINDS else dtype_bytes)
    return mixer.state_elements * state + mixer.conv_elements * dtype_bytes


def cached_tokens_per_layer(arch: Architecture, tokens: int, *, storage: bool = False) -> list[int]:
    """Tokens each layer's cache holds after ``tokens`` tokens (0 for recurrent layers).

    Sliding-window layers keep the last ``window - 1`` tokens (transformers
    cache_utils.DynamicSlidingWindowLayer), chunked layers likewise their chunk. Right after a
    prefill longer than the window, the kept keys are a *view* of the full prefill tensor, so the
    storage still holds every prompt token until the first decode step: ``storage=True`` returns that.
    """
    out = []
    for layer in arch.layers:
        m = layer.mixer
        if storage and m.has_cache:
            out.append(tokens)
        else:
            out.append(m.cached_tokens(tokens))
    return out


def layer_kv_bytes_per_token(mixer: Mixer, dtype_bytes: int, *, kv_heads_divisor: int = 1) -> int:
    """Bytes one token adds to one layer's cache on one device of a ``kv_heads_divisor``-way tensor split
    (0 for recurrent kinds)."""
    return _per_token_on_device(mixer, dtype_bytes, kv_heads_divisor)


def _per_token_on_device(mixer: Mixer, dtype_bytes: int, kv_heads_divisor: int) -> int:
    per_token = mixer.cache_elements_per_token() * dtype_bytes
    if kv_heads_divisor > 1 and mixer.kind != "mla" and mixer.kv_heads:
        # Heads are split across tensor-parallel ranks; replicated when fewer KV heads than ranks (vLLM).
        kept = max(1, mixer.kv_heads // kv_heads_divisor)
        per_token = per_token * kept // mixer.kv_heads
    return per_token


def kv_cache_bytes(arch: Architecture, *, batch_size: int, tokens: int, dtype_bytes: int,
                   storage: bool = False, kv_heads_divisor: int = 1) -> int:
    """Bytes of the whole cache (attention caches + recurrent states) for ``batch_size`` sequences
    of ``tokens`` tokens.

    ``kv_heads_divisor`` is the tensor-parallel degree (heads are split; replicated when fewer
    KV heads than devices, as vLLM does).
    """
    if not arch.is_decoder:
        return 0
    total = 0
    for layer, count in arch.layer_groups:
        for m in layer.mixers:  # falcon_h1 layers hold an attention cache and a Mamba2 state
            if m.has_cache:
                held = tokens if storage else m.cached_tokens(tokens)
                total += count * held * _per_token_on_device(m, dtype_bytes, kv_heads_divisor)
            else:
                total += count * state_bytes_per_sequence(m, dtype_bytes) // max(1, kv_heads_divisor)
    return batch_size * total


def kv_bytes_per_token(arch: Architecture, dtype_bytes: int, *, kv_heads_divisor: int = 1) -> int:
    """Bytes one more token of context costs across all layers, ignoring window caps (the paged
    pool's full-attention view; recurrent layers cost nothing per token)."""
    return sum(count * _per_token_on_device(m, dtype_bytes, kv_heads_divisor)
               for layer, count in arch.layer_groups for m in layer.mixers if m.has_cache)
