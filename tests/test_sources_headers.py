"""Header tensors -> exact parameter counts, with each correction reported."""

from __future__ import annotations

import json

import pytest

from hf_gpu_estimator.sources.headers import build_spec, count_parameters, off_text_path, role_of
from hf_gpu_estimator.spec import QuantizationConfig, TensorInfo


def T(name: str, dtype: str, *shape: int) -> TensorInfo:
    return TensorInfo(name=name, dtype=dtype, shape=shape)


@pytest.mark.parametrize(
    ("name", "role"),
    [("model.embed_tokens.weight", "embedding"), ("transformer.wte.weight", "embedding"), ("wpe.weight", "embedding"),
     ("model.layers.0.self_attn.q_proj.weight", "attention"), ("h.0.attn.c_attn.bias", "attention"),
     ("model.layers.0.post_attention_layernorm.weight", "norm"), ("h.0.ln_1.weight", "norm"),
     ("model.layers.0.self_attn.q_norm.weight", "norm"), ("model.layers.0.mlp.gate_proj.weight", "mlp"),
     ("model.layers.0.mlp.experts.3.up_proj.weight", "experts"), ("model.layers.0.mlp.gate.weight", "router"),
     ("model.layers.0.block_sparse_moe.gate.weight", "router"), ("model.layers.0.mlp.shared_expert.up_proj.weight", "experts"),
     ("lm_head.weight", "lm_head"), ("model.norm.weight", "norm"), ("score.weight", "other")],
)  # fmt: skip
def test_role_of(name, role):
    assert role_of(name) == role


def test_plain_counts_and_bytes():
    counts = count_parameters([T("model.embed_tokens.weight", "BF16", 10, 4), T("model.norm.weight", "F32", 4)])
    assert counts.parameters.total == 44
    assert counts.parameters.by_role == {"embedding": 40, "norm": 4}
    assert counts.checkpoint_bytes == 96 and counts.checkpoint_bytes_by_dtype == {"BF16": 80, "F32": 16}
    assert counts.dominant_float_dtype == "bfloat16" and counts.assumptions == ()


def test_tied_lm_head_counted_once_only_when_tied():
    tensors = [T("model.embed_tokens.weight", "BF16", 10, 4), T("lm_head.weight", "BF16", 10, 4)]
    tied = count_parameters(tensors, config={"tie_word_embeddings": True})
    assert tied.parameters.total == 40 and "counted once" in tied.assumptions[0]
    assert tied.checkpoint_bytes == 160  # both copies are on disk
    assert count_parameters(tensors, config={"tie_word_embeddings": False}).parameters.total == 80


def test_awq_layout_and_aux_tensors():
    # AWQ packs along the output dim: qweight [in, out*bits/32]; scales [in/group, out].
    tensors = [T("model.layers.0.mlp.up_proj.qweight", "I32", 64, 16), T("model.layers.0.mlp.up_proj.qzeros", "I32", 2, 16),
               T("model.layers.0.mlp.up_proj.scales", "F16", 2, 128)]  # fmt: skip
    counts = count_parameters(tensors, quantization=QuantizationConfig(method="awq", bits=4, group_size=32))
    assert counts.parameters.total == 64 * 128 and counts.parameters.by_role == {"mlp": 64 * 128}


def test_packed_without_config_assumes_4bit():
    counts = count_parameters([T("a.mlp.up_proj.qweight", "I32", 8, 64)])
    assert counts.parameters.total == 8 * 64 * 8
    assert any("assumed 4-bit" in a for a in counts.assumptions)


def test_fp8_int8_and_mxfp4_side_tensors():
    tensors = [
        T("l.self_attn.q_proj.weight", "F8_E4M3", 64, 64), T("l.self_attn.q_proj.weight_scale_inv", "F32", 1, 1),
        T("l.self_attn.q_proj.input_scale", "F32"), T("l.mlp.up_proj.weight", "I8", 32, 64), T("l.mlp.up_proj.SCB", "F32", 32),
        T("l.mlp.up_proj.weight_format", "U8"), T("l.mlp.experts.down_proj_blocks", "U8", 4, 8, 2, 16),
        T("l.mlp.experts.down_proj_scales", "U8", 4, 8, 2),
    ]  # fmt: skip
    counts = count_parameters(tensors)
    assert counts.parameters.by_role == {"attention": 4096, "mlp": 2048, "experts": 4 * 8 * 2 * 32}
    assert any("MXFP4" in a for a in counts.assumptions)
    assert any("5 quantization scale" in a for a in counts.assumptions)


def test_moe_active_counts_routed_experts_top_k():
    from hf_gpu_estimator.architectures import architecture_from_config

    arch = architecture_from_config({"model_type": "mixtral", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,
                                     "num_attention_heads": 2, "num_key_value_heads": 1, "vocab_size": 10,
                                     "num_local_experts": 4, "num_experts_per_tok": 2})  # fmt: skip
    tensors = [T(f"model.layers.0.block_sparse_moe.experts.{e}.w1.weight", "BF16", 16, 8) for e in range(4)]
    tensors.append(T("model.layers.0.block_sparse_moe.gate.weight", "BF16", 4, 8))
    counts = count_parameters(tensors, architecture=arch)
    assert counts.parameters.total == 4 * 128 + 32
    assert counts.parameters.active == 2 * 128 + 32


def test_build_spec_notes_a_mismatch_with_the_config_formula():
    config = json.loads('{"model_type": "llama", "hidden_size": 8, "intermediate_size": 16, "num_hidden_layers": 1,'
                        ' "num_attention_heads": 2, "vocab_size": 10, "torch_dtype": "bfloat16"}')  # fmt: skip
    spec = build_spec(model_id="x", config=config, tensors=(T("model.embed_tokens.weight", "BF16", 10, 8),))
    assert spec.parameters.total == 80 and spec.provenance["parameters"] == "header"
    assert any("config.json's formula gives" in a for a in spec.assumptions)


def test_build_spec_header_only_without_config():
    spec = build_spec(model_id="f", config=None, tensors=(T("w", "F16", 2, 2),))
    assert spec.architecture is None and spec.stored_dtype == "float16" and spec.provenance["stored_dtype"] == "header"


def test_off_text_path_towers_projectors_and_cross_attention():
    # got_ocr2-style vision tower + projector; moss-style audio tower + projector (no vision beside it).
    vision = off_text_path([("model.vision_tower.layers.0.attn.qkv.weight", 30), ("model.multi_modal_projector.w", 5),
                            ("model.language_model.layers.0.self_attn.q_proj.weight", 100)])
    assert vision == {"vision": 35}
    assert off_text_path([("model.audio_tower.layers.0.fc1.weight", 7), ("model.multi_modal_projector.linear_1.weight", 3),
                          ("model.language_model.embed_tokens.weight", 50)]) == {"audio": 10}
    # A *ForCausalLM of an encoder-decoder model: the decoder's cross-attention has no encoder to read.
    decoder = [("model.decoder.layers.0.self_attn.q_proj.weight", 16), ("model.decoder.layers.0.encoder_attn.q_proj.weight", 16),
               ("model.decoder.layers.0.encoder_attn_layer_norm.weight", 4), ("model.decoder.layers.0.fc1.weight", 64)]
    assert off_text_path(decoder) == {"cross_attention": 20}
    # The whole encoder-decoder model holds the encoder: its cross-attention runs.
    assert off_text_path([*decoder, ("model.encoder.layers.0.self_attn.q_proj.weight", 16)]) == {}
    # mllama: a layer whose only attention is cross-attention is skipped whole; blt's cross_attn_layers run.
    mllama = [("model.layers.3.cross_attn.q_proj.weight", 16), ("model.layers.3.cross_attn_attn_gate", 1),
              ("model.layers.3.mlp.up_proj.weight", 64), ("model.layers.3.post_attention_layernorm.weight", 4),
              ("model.layers.4.self_attn.q_proj.weight", 16), ("model.layers.4.mlp.up_proj.weight", 64)]
    assert off_text_path(mllama) == {"cross_attention": 85}
    assert off_text_path([("model.local_decoder.cross_attn_layers.0.q_proj.weight", 16)]) == {}


def test_header_counts_carry_the_off_text_path():
    tensors = [TensorInfo(name="model.vision_tower.patch_embed.weight", dtype="BF16", shape=(8, 4)),
               TensorInfo(name="model.language_model.embed_tokens.weight", dtype="BF16", shape=(10, 4))]
    assert count_parameters(tensors).parameters.off_text_path == {"vision": 32}


def test_persistent_buffers_are_recorded_per_type():
    # deepseek_v3 registers the router's e_score_correction_bias as a buffer; laguna makes it a parameter.
    name = "model.layers.0.mlp.gate.e_score_correction_bias"
    tensors = [TensorInfo(name=name, dtype="F32", shape=(256,)),
               TensorInfo(name="model.embed_tokens.weight", dtype="BF16", shape=(10, 4))]
    assert count_parameters(tensors, config={"model_type": "deepseek_v3"}).parameters.total == 40
    assert count_parameters(tensors, config={"model_type": "laguna"}).parameters.total == 296
    assert count_parameters(tensors).parameters.total == 40  # no recorded type: the name patterns


def test_modules_kept_in_float32_are_counted_per_requested_dtype():
    # transformers 5.25: DeepseekV3PreTrainedModel._keep_in_fp32_modules_strict = ["e_score_correction_bias",
    # "gate.weight"] (bf16 and fp16 loads); GptOssPreTrainedModel._keep_in_fp32_modules holds its norms (fp16 only).
    router = TensorInfo(name="model.layers.3.mlp.gate.weight", dtype="BF16", shape=(256, 64))
    gate_proj = TensorInfo(name="model.layers.3.mlp.experts.0.gate_proj.weight", dtype="BF16", shape=(32, 64))
    kept = count_parameters([router, gate_proj], config={"model_type": "deepseek_v3"}).parameters.kept_fp32
    assert kept == {"bfloat16": 256 * 64, "float16": 256 * 64}
    norm = TensorInfo(name="model.layers.0.input_layernorm.weight", dtype="BF16", shape=(64,))
    kept = count_parameters([norm, gate_proj], config={"model_type": "gpt_oss"}).parameters.kept_fp32
    assert kept == {"float16": 64}
    assert count_parameters([norm, gate_proj], config={"model_type": "llama"}).parameters.kept_fp32 == {}
    # Types without a causal-LM class too: T5PreTrainedModel._keep_in_fp32_modules = ["wo"] (fp16 loads).
    wo = TensorInfo(name="encoder.block.0.layer.1.DenseReluDense.wo.weight", dtype="F32", shape=(64, 256))
    wi = TensorInfo(name="encoder.block.0.layer.1.DenseReluDense.wi.weight", dtype="F32", shape=(256, 64))
    assert count_parameters([wo, wi], config={"model_type": "t5"}).parameters.kept_fp32 == {"float16": 64 * 256}


def test_kept_float32_modules_add_their_bytes_where_from_pretrained_loads_the_model():
    from hf_gpu_estimator.memory.weights import plan_weights
    from hf_gpu_estimator.workload import make_workload

    config = {"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100,
              "n_routed_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": 0, "q_lora_rank": None,
              "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 16,
              "torch_dtype": "bfloat16"}
    pytest.importorskip("transformers")
    from hf_gpu_estimator.runtime.build import build_meta_model  # the real tensor names

    model = build_meta_model(config)
    tensors = tuple(TensorInfo(name=n, dtype="BF16", shape=tuple(p.shape)) for n, p in model.state_dict().items())
    spec = build_spec(model_id="tiny-dsv3", config=config, tensors=tensors)
    kept = spec.parameters.kept_fp32["bfloat16"]
    assert kept == 4 * 64  # the one layer's router weight
    inference = plan_weights(spec, make_workload(task="inference", dtype="bfloat16"))
    assert inference.weights_bytes == spec.parameters.total * 2 + kept * 2
    lora = plan_weights(spec, make_workload(task="training", method="lora", precision="bf16-true"))
    assert lora.weights_bytes == spec.parameters.total * 2 + kept * 2
    full = plan_weights(spec, make_workload(task="training", method="full", precision="bf16-true"))
    assert full.weights_bytes == spec.parameters.total * 2


def test_kept_float32_modules_unknown_without_tensor_names_are_said():
    from hf_gpu_estimator.sources import inspect_model

    config = {"model_type": "deepseek_v3", "hidden_size": 64, "intermediate_size": 128, "moe_intermediate_size": 32,
              "num_hidden_layers": 1, "num_attention_heads": 4, "num_key_value_heads": 4, "vocab_size": 100,
              "n_routed_experts": 4, "num_experts_per_tok": 2, "first_k_dense_replace": 0, "q_lora_rank": None,
              "kv_lora_rank": 16, "qk_nope_head_dim": 8, "qk_rope_head_dim": 8, "v_head_dim": 16}
    spec = inspect_model(config)
    assert spec.parameters.kept_fp32 == {}
    assert any("gate.weight" in a and "float32" in a for a in spec.assumptions)
    llama = inspect_model({"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 1,
                           "num_attention_heads": 4, "vocab_size": 100})
    assert not any("_keep_in_fp32_modules" in a for a in llama.assumptions)
