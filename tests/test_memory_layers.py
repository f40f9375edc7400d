"""Memory per layer kind: caches and states, images, the generic family's estimate."""

from __future__ import annotations

import dataclasses

import pytest

from hf_gpu_estimator import estimate
from hf_gpu_estimator.architectures import architecture_from_config
from hf_gpu_estimator.errors import ConflictingOptionsError, MalformedConfigError
from hf_gpu_estimator.memory.activations import inference_layer_transient
from hf_gpu_estimator.memory.kv_cache import kv_cache_bytes, state_bytes_per_sequence
from hf_gpu_estimator.workload import make_workload

_QWEN3_NEXT = {"model_type": "qwen3_next", "hidden_size": 128, "num_hidden_layers": 4, "num_attention_heads": 4,
               "num_key_value_heads": 2, "head_dim": 32, "intermediate_size": 256, "vocab_size": 512,
               "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 64,
               "shared_expert_intermediate_size": 64, "linear_num_key_heads": 2, "linear_num_value_heads": 4,
               "linear_key_head_dim": 16, "linear_value_head_dim": 16, "linear_conv_kernel_dim": 4}


def test_recurrent_state_does_not_grow_with_the_sequence() -> None:
    arch = architecture_from_config(_QWEN3_NEXT)
    assert set(arch.mixer_kinds) == {"linear", "full"}
    short = kv_cache_bytes(arch, batch_size=1, tokens=100, dtype_bytes=2)
    long = kv_cache_bytes(arch, batch_size=1, tokens=200, dtype_bytes=2)
    attention = [layer for layer in arch.layers if layer.mixer.has_cache]
    per_token = sum(layer.mixer.cache_elements_per_token() * 2 for layer in attention)
    # Only the attention layers grow: 100 more tokens cost exactly 100 x their per-token bytes.
    assert long - short == 100 * per_token
    states = sum(state_bytes_per_sequence(layer.mixer, 2) for layer in arch.layers if not layer.mixer.has_cache)
    assert short == 100 * per_token + states
    assert kv_cache_bytes(arch, batch_size=3, tokens=100, dtype_bytes=2) == 3 * short


def test_sliding_layers_are_capped_at_the_window() -> None:
    arch = architecture_from_config({"model_type": "mistral", "num_hidden_layers": 2, "sliding_window": 64})
    assert kv_cache_bytes(arch, batch_size=1, tokens=1000, dtype_bytes=2) == \
        kv_cache_bytes(arch, batch_size=1, tokens=63, dtype_bytes=2)


def test_generic_family_estimates_and_says_so() -> None:
    est = estimate({"model_type": "gpt_neo", "hidden_size": 64, "num_layers": 2, "num_heads": 4, "vocab_size": 100,
                    "attention_types": [[["global", "local"], 1]]}, seq_len=64, new_tokens=8)
    assert est.memory.components["kv_cache"] > 0
    assert any("generic family" in a for a in est.spec.assumptions)


def test_images_join_the_sequence() -> None:
    config = {"model_type": "gemma3", "text_config": {"num_hidden_layers": 2}}
    plain = estimate(config, seq_len=512, new_tokens=0)
    longer = estimate(config, seq_len=1024, new_tokens=0)
    with_images = estimate(config, seq_len=512, new_tokens=0, images=2)  # 2 x 256 tokens per image
    assert with_images.memory.allocated_peak_bytes == longer.memory.allocated_peak_bytes
    assert with_images.memory.allocated_peak_bytes > plain.memory.allocated_peak_bytes
    assert "image" in with_images.memory.assumptions[0]


def test_images_need_a_vision_model() -> None:
    with pytest.raises(ConflictingOptionsError, match="images"):
        estimate({"model_type": "llama", "num_hidden_layers": 2}, images=1)


@pytest.mark.parametrize("task", ["inference", "training"])
def test_every_layer_kind_estimates(task: str) -> None:
    configs = [
        _QWEN3_NEXT,
        {"model_type": "mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100, "state_size": 8},
        {"model_type": "falcon_mamba", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 100, "state_size": 8},
    ]
    for config in configs:
        est = estimate(config, task=task, seq_len=128, new_tokens=8)
        assert est.memory.allocated_peak_bytes > 0


def _header(config: dict) -> tuple:
    """A meta-device header of ``config`` as the Hub would serve it (names, BF16, shapes)."""
    import torch
    import transformers

    from hf_gpu_estimator.spec import TensorInfo

    cfg = transformers.AutoConfig.for_model(**config)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    return tuple(TensorInfo(name=n, dtype="BF16", shape=tuple(p.shape)) for n, p in model.named_parameters())


_OPT = {"model_type": "opt", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "ffn_dim": 128,
        "vocab_size": 100, "max_position_embeddings": 64}


def test_generic_family_is_exact_from_headers() -> None:
    from hf_gpu_estimator.sources.headers import build_spec

    tensors = _header(_OPT)
    spec = build_spec(model_id="opt-tiny", config=_OPT, tensors=tensors)
    assert spec.architecture is not None and spec.architecture.derivation == "generic"
    assert spec.parameters.total == sum(t.numel for t in tensors)
    # The real linears of one block replace the llama-style guess (OPT: q/k/v/out_proj, fc1/fc2, plain MLP).
    names = {lin.name for lin in spec.architecture.linears}
    assert {"fc1", "fc2", "out_proj"} <= names and not spec.architecture.gated_mlp


@pytest.mark.parametrize(("change", "field"), [({"hidden_size": 128, "num_attention_heads": 4}, "hidden_size"),
                                               ({"num_hidden_layers": 3}, "num_hidden_layers")])
def test_config_contradicting_its_headers_is_a_typed_error(change: dict, field: str) -> None:
    from hf_gpu_estimator.errors import ConfigHeaderMismatchError
    from hf_gpu_estimator.sources.headers import build_spec

    tensors = _header(_OPT)
    with pytest.raises(ConfigHeaderMismatchError, match=field) as info:
        build_spec(model_id="opt-tiny", config={**_OPT, **change}, tensors=tensors)
    assert info.value.field == field and "\n" not in str(info.value)


def test_inspect_shows_the_layer_mix_of_a_hybrid() -> None:
    from hf_gpu_estimator.report import render_spec
    from hf_gpu_estimator.sources import inspect_model

    text = render_spec(inspect_model(_QWEN3_NEXT))
    assert "4 (3 linear + 1 full)" in text


def test_lora_on_a_hybrid_counts_each_linear_in_the_layers_that_hold_it() -> None:
    from hf_gpu_estimator.memory.weights import lora_parameters
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.workload import make_workload

    spec = inspect_model(_QWEN3_NEXT)  # 3 gated-DeltaNet layers + 1 full-attention layer
    arch = spec.architecture
    rank = 8
    q = next(lin for lin in arch.linears if lin.name == "q_proj")
    qkvz = next(lin for lin in arch.linears if lin.name == "in_proj_qkvz")
    assert lora_parameters(spec, make_workload(task="training", method="lora", lora_rank=rank,
                                               lora_targets="q_proj")) == rank * (q.in_features + q.out_features) * 1
    assert lora_parameters(spec, make_workload(task="training", method="lora", lora_rank=rank,
                                               lora_targets="in_proj_qkvz")) == \
        rank * (qkvz.in_features + qkvz.out_features) * 3


def test_towers_a_text_step_does_not_reach_get_no_gradient() -> None:
    """AdamW creates state only for parameters with a gradient; a text-only step runs no vision tower
    (coverage traces of gemma3, got_ocr2, phi4_multimodal: gradients and states of the language model only)."""
    from hf_gpu_estimator.architectures import parameter_counts

    config = {"model_type": "gemma3", "text_config": {"num_hidden_layers": 2}}
    counts = parameter_counts(config)
    vision = counts.off_text_path["vision"]
    assert vision == architecture_from_config(config).vision_parameters > 0
    run = {"task": "training", "seq_len": 64, "precision": "bf16-true"}
    text = estimate(config, **run)
    assert text.memory.components["gradients"] == 2 * (counts.total - vision)
    assert text.memory.components["optimizer_states"] == 4 * (counts.total - vision)
    assert any("frozen by absence" in a for a in text.memory.assumptions)
    with_images = estimate(config, images=1, **run)  # the vision tower runs, and trains
    assert with_images.memory.components["optimizer_states"] == 4 * counts.total
    mllama = parameter_counts({"model_type": "mllama"}).off_text_path
    assert set(mllama) == {"vision", "cross_attention"}


def test_a_forward_without_logits_to_keep_computes_every_prompt_position() -> None:
    # WhisperForCausalLM.forward has no logits_to_keep: the prefill makes [batch, prompt, vocab] logits.
    config = {"model_type": "whisper", "d_model": 64, "decoder_layers": 2, "decoder_attention_heads": 4,
              "vocab_size": 1000, "decoder_ffn_dim": 128}
    arch = architecture_from_config(config)
    assert not arch.last_logits_only and architecture_from_config({"model_type": "llama"}).last_logits_only
    est = estimate(config, seq_len=128, new_tokens=1)
    assert est.memory.components["transient"] >= 128 * 1000 * 2


def test_stacked_codebook_heads_hold_every_position_twice() -> None:
    # MusicgenForCausalLM.forward: no logits_to_keep, torch.stack of one head's logits per codebook (each head's
    # output and the stack alive together at the prefill's peak).
    config = {"model_type": "musicgen", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "ffn_dim": 128, "vocab_size": 1000, "num_codebooks": 4}
    arch = architecture_from_config(config)
    assert arch.logit_heads == 4 and not arch.last_logits_only and arch.norms_per_layer == 2
    est = estimate(config, seq_len=128, new_tokens=1, batch_size=2, dtype="bfloat16")
    assert est.memory.components["transient"] >= 2 * 4 * 1000 * 2 * 128 * 2


def test_block_sparse_attention_above_its_threshold_writes_no_cache() -> None:
    # BigBirdModel.forward: block-sparse above (5 + 2 x num_random_blocks) x block_size tokens, never writing the
    # cache; full attention (and a filled cache) up to it.
    config = {"model_type": "big_bird", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "intermediate_size": 128, "vocab_size": 1000, "attention_type": "block_sparse", "block_size": 16,
              "num_random_blocks": 1, "max_position_embeddings": 4096}
    mixer = architecture_from_config(config).layers[0].mixer
    assert (mixer.block_size, mixer.random_blocks) == (16, 1)
    assert not mixer.block_sparse_at(112) and mixer.block_sparse_at(113)
    long = estimate(config, seq_len=1024, new_tokens=2, batch_size=2, dtype="bfloat16")
    short = estimate(config, seq_len=112, new_tokens=2, batch_size=2, dtype="bfloat16")
    assert long.memory.components["kv_cache"] < short.memory.components["kv_cache"]
    pegasus = architecture_from_config({**config, "model_type": "bigbird_pegasus", "is_encoder_decoder": True,
                                        "d_model": 64, "decoder_layers": 2, "decoder_attention_heads": 4})
    assert not pegasus.layers[0].mixer.block_size  # its causal LM is the decoder, which attends in full


def test_looped_experts_hold_one_experts_tokens() -> None:
    # DbrxExperts.forward runs the hit experts one by one: its prefill holds one expert's share of the tokens,
    # where grouped_mm holds every routed copy.
    config = {"model_type": "dbrx", "d_model": 256, "n_layers": 2, "n_heads": 4, "vocab_size": 1000,
              "attn_config": {"kv_n_heads": 1}, "ffn_config": {"ffn_hidden_size": 1024, "moe_num_experts": 8,
                                                              "moe_top_k": 4}}
    arch = architecture_from_config(config)
    assert arch.layers[0].ffn.looped_experts
    grouped = dataclasses.replace(arch, per_layer=tuple(
        dataclasses.replace(layer, ffn=dataclasses.replace(layer.ffn, looped_experts=False)) for layer in arch.layers))
    kwargs = {"compute_bytes": 2, "attn": "sdpa", "seq_len": 1024, "query_len": 1024}
    assert inference_layer_transient(arch, **kwargs) < inference_layer_transient(grouped, **kwargs)
def test_soft_capped_logits_of_every_prompt_position_are_upcast() -> None:
    # xLSTMForCausalLM.forward: no logits_to_keep, ``lm_head(...).float()`` then ``cap * tanh(logits / cap)``.
    config = {"model_type": "xlstm", "hidden_size": 64, "num_hidden_layers": 1, "num_heads": 2, "vocab_size": 1000}
    arch = architecture_from_config(config)
    assert not arch.last_logits_only and arch.final_logit_softcapping == 30.0
    est = estimate(config, seq_len=128, new_tokens=1, batch_size=2)
    assert est.memory.components["transient"] >= 2 * 128 * 1000 * 3 * 4
def test_a_loss_on_16_bit_logits_keeps_16_bit_log_probabilities() -> None:
    # BartForCausalLM.forward calls nn.CrossEntropyLoss() on the head's 16-bit output (no ForCausalLMLoss
    # upcast): 16-bit log-probabilities, and under autocast nll_loss's fp32 copy of them (exact-mode traces,
    # docs/coverage-long.md); without autocast everything stays 16-bit. Per token: (saved, during, backward).
    from hf_gpu_estimator.memory.activations import loss_bytes

    config = {"model_type": "bart", "d_model": 64, "decoder_layers": 2, "encoder_layers": 2,
              "decoder_attention_heads": 4, "encoder_attention_heads": 4, "vocab_size": 5000}
    arch = architecture_from_config(config)
    assert not arch.loss_upcast and architecture_from_config({"model_type": "llama"}).loss_upcast
    V = 5000
    mixed = make_workload(task="training", precision="bf16-mixed")
    assert loss_bytes(arch, mixed) == (6 * V, 8 * V, 10 * V)
    assert loss_bytes(arch, make_workload(task="training", precision="bf16-true")) == (2 * V, 4 * V, 6 * V)
    assert loss_bytes(arch, make_workload(task="training", precision="32-true")) == \
        loss_bytes(dataclasses.replace(arch, loss_upcast=True), make_workload(task="training", precision="32-true"))
    assert loss_bytes(dataclasses.replace(arch, loss_upcast=True), mixed) == (4 * V, 10 * V, 12 * V)


def test_layer_calls_under_no_grad_save_nothing() -> None:
    # HrmTextModel.forward runs the L stack's earliest iterations of each H cycle under torch.no_grad(): with
    # H_cycles 2, L_cycles 3 and L_bp_cycles [2] (padded to [1, 2]), 3 of the 6 L-stack calls and both H-stack
    # calls keep tensors for backward (exact-mode trace, docs/coverage-long.md).
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.sources import inspect_model

    config = {"model_type": "hrm_text", "hidden_size": 64, "num_layers_per_stack": 2, "num_hidden_layers": 16,
              "num_attention_heads": 4, "head_dim": 16, "intermediate_size": 128, "vocab_size": 512}
    spec = inspect_model(config)
    arch = spec.architecture
    assert (arch.num_layers, arch.grad_layers, arch.norm_weight) == (16, 10, False)
    work = make_workload(task="training", batch_size=1, seq_len=64, precision="bf16-mixed")

    def saved(a: object) -> int:
        m = estimate_memory(dataclasses.replace(spec, architecture=a), work)
        return next(t.bytes for t in m.terms if t.name == "decoder layers (saved for backward)")

    assert saved(arch) * 16 == pytest.approx(saved(dataclasses.replace(arch, grad_layers=0)) * 10, rel=1e-6)
def test_the_inference_mlp_peak_holds_the_layer_input_the_loop_keeps() -> None:
    # Exact-mode trace of llama at 4 x 2048 tokens (sdpa, docs/coverage-long.md): at layer 1's MLP the embeddings,
    # layer 0's output (the loop's ``hidden_states``), the residual and the normed input are alive beside gate,
    # up and their product. Per token, beside the embeddings: 3 hidden-wide and 3 MLP-wide tensors.
    from hf_gpu_estimator.memory.activations import inference_layer_transient

    dims = {"hidden_size": 256, "intermediate_size": 1024, "num_attention_heads": 4, "vocab_size": 512}

    def peak(config: dict) -> float:
        arch = architecture_from_config(config)
        return inference_layer_transient(arch, compute_bytes=2, attn="sdpa", seq_len=2048, query_len=2048)

    llama = peak({"model_type": "llama", "num_hidden_layers": 2, **dims})
    assert llama == 2 * (3 * 256 + 3 * 1024)
    # One layer: its input is the embeddings themselves.
    assert peak({"model_type": "llama", "num_hidden_layers": 1, **dims}) == llama - 2 * 256
    # Post-norm olmo2: the MLP reads the residual itself; GPT-2 keeps attn_output bound as well.
    assert peak({"model_type": "olmo2", "num_hidden_layers": 2, **dims}) == llama - 2 * 256
    gpt2 = peak({"model_type": "gpt2", "n_embd": 256, "n_layer": 2, "n_head": 4, "n_inner": 1024, "vocab_size": 512})
    assert gpt2 == 2 * (4 * 256 + 4 * 1024)  # gelu_new holds four MLP-wide tensors


def test_a_projection_to_twice_the_down_input_is_a_fused_gated_mlp() -> None:
    # MoshiGatingMLP: fc1 (hidden -> 2 x intermediate), split by a view into gate and up.
    from hf_gpu_estimator.architectures.checkpoint import refine_generic
    from hf_gpu_estimator.memory.activations import fused_gate_up
    from hf_gpu_estimator.spec import TensorInfo

    arch = architecture_from_config({"model_type": "moshi", "hidden_size": 64, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "vocab_size": 100, "hidden_act": "silu",
                                     "ffn_dim": 256})
    tensors = [TensorInfo(name="model.layers.0.mlp.fc1.weight", dtype="BF16", shape=(256, 64)),
               TensorInfo(name="model.layers.0.mlp.fc2.weight", dtype="BF16", shape=(64, 128))]
    refined = refine_generic(arch, tensors)
    assert refined.gated_mlp and refined.intermediate_size == 128 and fused_gate_up(refined)


def test_the_indexer_copies_broadcast_keys_only_for_several_requests() -> None:
    # DeepseekV32Indexer.forward: torch.matmul(q [b, s, heads, dim], k [b, 1, dim, t]) views the expanded keys as
    # one batch dimension when b == 1 (exact-mode trace of axk2 at 1 x 8192: scores only); b > 1 copies them.
    arch = architecture_from_config({"model_type": "deepseek_v32", "hidden_size": 256, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "vocab_size": 1000, "index_n_heads": 4,
                                     "index_head_dim": 128, "q_lora_rank": 64, "kv_lora_rank": 32})
    assert arch.indexer_heads == 4
    kwargs = {"compute_bytes": 2, "attn": "sdpa", "seq_len": 8192, "query_len": 8192}
    one = inference_layer_transient(arch, batch_size=1, **kwargs)
    four = inference_layer_transient(arch, batch_size=4, **kwargs)
    assert one == 2 * 2 * 256 + 8 * 4 * 8192
    assert four == 2 * 2 * 256 + (4 * 128 + 4 * 4) * 8192


_DEEPSEEK_V4 = {"model_type": "deepseek_v4", "hidden_size": 256, "num_hidden_layers": 3, "num_attention_heads": 4,
                "num_key_value_heads": 1, "head_dim": 64, "vocab_size": 1000, "index_n_heads": 4,
                "index_head_dim": 32, "q_lora_rank": 64,
                "layer_types": ["heavily_compressed_attention", "compressed_sparse_attention", "sliding_attention"]}


def test_compressed_attention_adds_its_entries_to_the_keys() -> None:
    # DeepseekV4Attention.forward concatenates the compressor's entries to the keys (rates: configuration_deepseek_v4
    # default_compress_rates, or compress_rates); its fp32 sinks promote the eager scores to fp32.
    arch = architecture_from_config(_DEEPSEEK_V4)
    assert (arch.compressed_key_rate, arch.indexer_key_stride, arch.fp32_sinks) == (4, 4, True)
    assert architecture_from_config({**_DEEPSEEK_V4, "compress_rates": {"compressed_sparse_attention": 8}}
                                    ).compressed_key_rate == 8
    plain = dataclasses.replace(arch, compressed_key_rate=0)
    kwargs = {"compute_bytes": 2, "attn": "eager", "seq_len": 4096, "query_len": 4096, "batch_size": 1}
    # 1024 more keys per query: 12 bytes per score (two 16-bit, two fp32), the concatenated mask and the block bias.
    assert inference_layer_transient(arch, **kwargs) - inference_layer_transient(plain, **kwargs) == \
        4 * 1024 * (2 * 2 + 2 * 4) + 2 * (4096 + 1024 + 1024 + 1)


def test_malformed_compress_rates_name_the_field() -> None:
    with pytest.raises(MalformedConfigError, match="compress_rates.compressed_sparse_attention"):
        architecture_from_config({**_DEEPSEEK_V4, "compress_rates": {"compressed_sparse_attention": 0}})
    with pytest.raises(MalformedConfigError, match="compress_rates"):
        architecture_from_config({**_DEEPSEEK_V4, "compress_rates": [4, 128]})


def test_a_boolean_sdpa_mask_is_converted_to_an_additive_one() -> None:
    # A sliding mask the keys outgrow reaches SDPA: the memory-efficient kernel takes where(logical_not(mask), -inf,
    # 0) in the query dtype, the negated copy and the additive one per query and key (exact-mode trace of
    # modernbert-decoder at 1 x 8192). While the keys fit the window, transformers drops the mask: nothing.
    config = {"model_type": "mistral", "hidden_size": 128, "intermediate_size": 64, "num_hidden_layers": 2,
              "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 1000}
    kwargs = {"compute_bytes": 2, "attn": "sdpa", "seq_len": 4096, "query_len": 4096, "batch_size": 1}
    masked = inference_layer_transient(architecture_from_config({**config, "sliding_window": 64}), **kwargs)
    fits = inference_layer_transient(architecture_from_config({**config, "sliding_window": 8192}), **kwargs)
    # residual, normed input and queries (the keys and values are the cache's), then 1 + 2 bytes per key
    assert masked == 2 * 2 * 128 + 2 * 128 + (1 + 2) * 4096
    assert fits < masked


def test_a_family_keeps_the_recorded_softmax_dtype() -> None:
    # modeling_llama4.py eager_attention_forward runs softmax in the scores' dtype (recorded from the modeling file):
    # the llama4 family module does not say so itself.
    arch = architecture_from_config({"model_type": "llama4_text", "hidden_size": 256, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 64,
                                     "intermediate_size": 256, "intermediate_size_mlp": 512, "vocab_size": 1000})
    assert arch.native_softmax


def test_zamba2_mamba2_blocks_are_state_space_layers() -> None:
    # configuration_zamba2.py names its Mamba2 blocks "linear_attention" and their fields n_mamba_heads,
    # mamba_headdim, chunk_size: read as a Mamba2 mixer, not a generic linear one.
    arch = architecture_from_config({"model_type": "zamba2", "hidden_size": 256, "num_hidden_layers": 2,
                                     "num_attention_heads": 4, "attention_head_dim": 64, "vocab_size": 1000,
                                     "mamba_d_state": 16, "mamba_expand": 2, "n_mamba_heads": 4, "mamba_headdim": 128,
                                     "chunk_size": 128, "layers_block_type": ["linear_attention", "hybrid"]})
    mamba = arch.layers[0].mixer
    assert (mamba.kind, mamba.heads, mamba.head_dim, mamba.inner, mamba.chunk) == ("ssm", 4, 128, 512, 128)
    assert mamba.state_elements == 4 * 128 * 16
