"""Tests for architectures/: exact counts against transformers models built on meta."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hf_gpu_estimator.architectures import (
    SUPPORTED_MODEL_TYPES,
    architecture_from_config,
    model_class_name,
    parameter_counts,
)
from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError
from hf_gpu_estimator.spec import ROLES

CONFIGS = Path(__file__).parent / "configs"

# Tiny dimensions shared by the small cases: fast to build, still exercise every code path.
_TINY = {"hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 3, "num_attention_heads": 4,
         "vocab_size": 211, "max_position_embeddings": 128}  # fmt: skip


def _tiny(model_type: str, **over: Any) -> dict[str, Any]:
    return {"model_type": model_type, **_TINY, **over}


def _real(name: str) -> dict[str, Any]:
    """A real checkpoint's config.json (architecture fields only), kept in tests/configs/."""
    return json.loads((CONFIGS / f"{name}.json").read_text())


_MOE_TINY = {"num_experts_per_tok": 2, "moe_intermediate_size": 24}
#: A two-layer CLIP/SigLIP vision tower.
_VIT_TINY = {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2,
             "image_size": 56, "patch_size": 14}

# (id, config) — small configs exercise options; real ones pin published checkpoints.
SMALL_CASES: list[tuple[str, dict[str, Any]]] = [
    ("llama-tiny", _tiny("llama", num_key_value_heads=2)),
    ("llama-tiny-bias-tied", _tiny("llama", attention_bias=True, mlp_bias=True, tie_word_embeddings=True,
                                   head_dim=8)),
    ("llama-base-model", _tiny("llama", architectures=["LlamaModel"])),
    ("mistral-tiny", _tiny("mistral", num_key_value_heads=2, sliding_window=None)),
    ("mistral-tiny-defaults", _tiny("mistral", head_dim=32)),
    ("mixtral-tiny", _tiny("mixtral", num_key_value_heads=2, num_local_experts=4, num_experts_per_tok=2)),
    ("qwen2-tiny-sliding", _tiny("qwen2", num_key_value_heads=2, use_sliding_window=True, max_window_layers=1,
                                 tie_word_embeddings=True)),
    ("qwen2_moe-tiny", _tiny("qwen2_moe", num_key_value_heads=2, num_experts=6, shared_expert_intermediate_size=40,
                             decoder_sparse_step=2, mlp_only_layers=[2], num_hidden_layers=4, **_MOE_TINY)),
    ("qwen2_moe-tiny-nobias", _tiny("qwen2_moe", qkv_bias=False, num_experts=3, **_MOE_TINY)),
    ("qwen3-tiny", _tiny("qwen3", num_key_value_heads=2, head_dim=24, attention_bias=True)),
    ("qwen3-tiny-default-head-dim", _tiny("qwen3", tie_word_embeddings=True)),
    ("qwen3_moe-tiny", _tiny("qwen3_moe", num_key_value_heads=2, head_dim=16, num_experts=5, mlp_only_layers=[0],
                             **_MOE_TINY)),
    ("gemma-tiny", _tiny("gemma", num_key_value_heads=1, head_dim=16)),
    ("gemma2-tiny", _tiny("gemma2", num_key_value_heads=2, head_dim=16, tie_word_embeddings=False)),
    ("gemma3_text-tiny", _tiny("gemma3_text", num_key_value_heads=2, head_dim=16, num_hidden_layers=7)),
    ("gemma3-tiny-vision", {"model_type": "gemma3",
                            "text_config": _tiny("gemma3_text", num_key_value_heads=2, head_dim=16),
                            "vision_config": {"hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2,
                                              "num_attention_heads": 2, "image_size": 56, "patch_size": 14,
                                              "vision_use_head": False},
                            "mm_tokens_per_image": 4}),
    ("gemma3-tiny-untied-head", {"model_type": "gemma3", "tie_word_embeddings": False,
                                 "text_config": _tiny("gemma3_text", head_dim=16),
                                 "vision_config": {"hidden_size": 32, "intermediate_size": 48,
                                                   "num_hidden_layers": 1, "num_attention_heads": 2,
                                                   "image_size": 28, "patch_size": 14},
                                 "mm_tokens_per_image": 4}),
    ("phi-tiny", _tiny("phi", partial_rotary_factor=0.5)),
    ("phi-tiny-qk-ln-tied", _tiny("phi", qk_layernorm=True, tie_word_embeddings=True, num_key_value_heads=2)),
    ("phi3-tiny", _tiny("phi3", num_key_value_heads=2, sliding_window=64, pad_token_id=None)),
    ("gpt2-tiny", {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64,
                   "vocab_size": 211}),
    ("gpt2-tiny-cross-untied", {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": 80,
                                "vocab_size": 211, "add_cross_attention": True, "tie_word_embeddings": False}),
    ("gpt_neox-tiny", _tiny("gpt_neox", use_parallel_residual=False, attention_bias=False)),
    ("gpt_neox-tiny-tied", _tiny("gpt_neox", tie_word_embeddings=True)),
    ("falcon-tiny-mq", _tiny("falcon", bias=True)),
    ("falcon-tiny-new-arch", _tiny("falcon", new_decoder_architecture=True, num_kv_heads=2, ffn_hidden_size=100,
                                   tie_word_embeddings=False)),
    ("falcon-tiny-sequential", _tiny("falcon", multi_query=False, parallel_attn=False, n_embed=32)),
    ("falcon-tiny-1ln", _tiny("falcon", new_decoder_architecture=True, num_ln_in_parallel_attn=1)),
    ("bert-tiny", _tiny("bert")),
    ("bert-tiny-untied", _tiny("bert", tie_word_embeddings=False, type_vocab_size=3)),
    ("bert-tiny-model", _tiny("bert", architectures=["BertModel"])),
    ("bert-tiny-pretraining", _tiny("bert", architectures=["BertForPreTraining"])),
    ("bert-tiny-decoder-cross", _tiny("bert", architectures=["BertLMHeadModel"], is_decoder=True,
                                      add_cross_attention=True)),
    ("t5-tiny", {"model_type": "t5", "d_model": 32, "d_kv": 8, "d_ff": 48, "num_layers": 2, "num_heads": 4,
                 "vocab_size": 211}),
    ("t5-tiny-gated-untied", {"model_type": "t5", "d_model": 32, "d_kv": 4, "d_ff": 48, "num_layers": 2,
                              "num_decoder_layers": 3, "num_heads": 2, "vocab_size": 211,
                              "feed_forward_proj": "gated-gelu", "tie_word_embeddings": False,
                              "relative_attention_num_buckets": 8}),
    ("t5-tiny-encoder", {"model_type": "t5", "d_model": 32, "d_ff": 48, "num_layers": 2, "num_heads": 2,
                         "vocab_size": 211, "architectures": ["T5EncoderModel"]}),
    ("deepseek_v3-tiny", _tiny("deepseek_v3", num_hidden_layers=4, n_routed_experts=6, n_shared_experts=2,
                               first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16, qk_rope_head_dim=8,
                               qk_nope_head_dim=8, v_head_dim=12, n_group=2, topk_group=1, **_MOE_TINY)),
    ("deepseek_v3-tiny-no-q-lora", _tiny("deepseek_v3", n_routed_experts=4, n_shared_experts=1, q_lora_rank=None,
                                         first_k_dense_replace=0, kv_lora_rank=16, qk_rope_head_dim=8,
                                         qk_nope_head_dim=8, v_head_dim=8, n_group=1, topk_group=1,
                                         attention_bias=True, **_MOE_TINY)),
    ("olmo-tiny", _tiny("olmo", num_key_value_heads=2)),
    ("olmo2-tiny", _tiny("olmo2", num_key_value_heads=2)),
    ("starcoder2-tiny", _tiny("starcoder2", num_key_value_heads=2)),
    ("starcoder2-tiny-nobias", _tiny("starcoder2", use_bias=False, tie_word_embeddings=False)),
    ("cohere-tiny", _tiny("cohere", num_key_value_heads=2)),
    ("cohere-tiny-qk-norm", _tiny("cohere", use_qk_norm=True, num_key_value_heads=2)),
    ("granite-tiny", _tiny("granite", mlp_bias=True, attention_bias=True)),
    ("smollm3-tiny-sliding", _tiny("smollm3", pad_token_id=None, num_hidden_layers=4, num_key_value_heads=2,
                                   use_sliding_window=True, sliding_window=32)),
    ("smollm3-tiny-untied", _tiny("smollm3", pad_token_id=None, tie_word_embeddings=False, mlp_bias=True,
                                  no_rope_layers=[1, 0, 1])),
    ("olmo3-tiny", _tiny("olmo3", pad_token_id=None, num_hidden_layers=5, num_key_value_heads=2)),
    ("ernie4_5-tiny", _tiny("ernie4_5", pad_token_id=None, head_dim=16, use_bias=True)),
    ("ernie4_5_moe-tiny", _tiny("ernie4_5_moe", pad_token_id=None, num_hidden_layers=4, num_key_value_heads=2,
                                use_bias=True, moe_num_experts=5, moe_k=2, moe_intermediate_size=24,
                                moe_layer_end_index=2)),
    ("ernie4_5_moe-tiny-interval", _tiny("ernie4_5_moe", pad_token_id=None, tie_word_embeddings=False,
                                         moe_num_experts=4, moe_k=2, moe_intermediate_size=24, moe_layer_interval=2,
                                         moe_layer_start_index=0, moe_num_shared_experts=0)),
    ("phimoe-tiny", _tiny("phimoe", pad_token_id=None, num_key_value_heads=2, attention_bias=True, lm_head_bias=True,
                          num_local_experts=4, sliding_window=32)),
    ("gpt_oss-tiny", _tiny("gpt_oss", num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2)),
    ("gpt_oss-tiny-nobias-tied", _tiny("gpt_oss", intermediate_size=48, head_dim=8, num_local_experts=3,
                                       num_experts_per_tok=1, attention_bias=False, tie_word_embeddings=True,
                                       sliding_window=16, layer_types=["full_attention", "sliding_attention",
                                                                       "sliding_attention"])),
    ("llama4_text-tiny", _tiny("llama4_text", num_hidden_layers=4, intermediate_size=48, intermediate_size_mlp=80,
                               num_key_value_heads=2, head_dim=16, num_local_experts=4, num_experts_per_tok=2,
                               interleave_moe_layer_step=2, attention_chunk_size=32)),
    ("llama4_text-tiny-all-moe-tied", _tiny("llama4_text", intermediate_size=48, intermediate_size_mlp=80,
                                            head_dim=16, num_local_experts=3, tie_word_embeddings=True,
                                            attention_bias=True, attention_chunk_size=None)),
    ("llama4-tiny-vision", {"model_type": "llama4",
                            "text_config": _tiny("llama4_text", num_hidden_layers=4, intermediate_size=48,
                                                 intermediate_size_mlp=80, num_key_value_heads=2, head_dim=16,
                                                 num_local_experts=4, num_experts_per_tok=2,
                                                 interleave_moe_layer_step=2),
                            "vision_config": {"hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 2,
                                              "num_attention_heads": 2, "image_size": 56, "patch_size": 14,
                                              "vision_output_dim": 48, "projector_input_dim": 24,
                                              "projector_output_dim": 24}}),
    ("deepseek_v2-tiny-mlp-bias", _tiny("deepseek_v2", n_routed_experts=6, n_shared_experts=2,
                                        first_k_dense_replace=1, q_lora_rank=24, kv_lora_rank=16, qk_rope_head_dim=8,
                                        qk_nope_head_dim=8, v_head_dim=12, mlp_bias=True, **_MOE_TINY)),
    ("deepseek_v2-tiny-no-q-lora", _tiny("deepseek_v2", num_hidden_layers=2, n_routed_experts=4, q_lora_rank=None,
                                         kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=8, v_head_dim=8,
                                         attention_bias=True, moe_intermediate_size=24, num_experts_per_tok=1)),
    ("glm4_moe-tiny", _tiny("glm4_moe", num_key_value_heads=2, n_routed_experts=6, n_shared_experts=2,
                            first_k_dense_replace=1, attention_bias=True, use_qk_norm=True, head_dim=24, **_MOE_TINY)),
    ("glm4_moe-tiny-all-moe-tied", _tiny("glm4_moe", num_hidden_layers=2, n_routed_experts=4, first_k_dense_replace=0,
                                         num_experts_per_tok=1, moe_intermediate_size=24, tie_word_embeddings=True)),
    ("gpt_bigcode-tiny-mqa", {"model_type": "gpt_bigcode", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_positions": 64,
                              "vocab_size": 211}),
    ("gpt_bigcode-tiny-mha-cross-untied", {"model_type": "gpt_bigcode", "n_embd": 64, "n_layer": 2, "n_head": 4,
                                           "n_inner": 80, "vocab_size": 211, "multi_query": False,
                                           "add_cross_attention": True, "tie_word_embeddings": False}),
    ("mistral3-tiny", {"model_type": "mistral3",
                       "text_config": _tiny("mistral", num_key_value_heads=2, head_dim=16),
                       "vision_config": {"model_type": "pixtral", "hidden_size": 32, "intermediate_size": 48,
                                         "num_hidden_layers": 2, "num_attention_heads": 2, "image_size": 56,
                                         "patch_size": 14, "head_dim": 16}}),
    ("mistral3-tiny-untied-bias-2-features", {"model_type": "mistral3", "tie_word_embeddings": False,
                                              "multimodal_projector_bias": True, "vision_feature_layer": [-1, -2],
                                              "text_config": _tiny("mistral", num_key_value_heads=2),
                                              "vision_config": {"model_type": "pixtral", "hidden_size": 32,
                                                                "intermediate_size": 48, "num_hidden_layers": 1,
                                                                "num_attention_heads": 2, "image_size": 56,
                                                                "patch_size": 14, "head_dim": 16}}),
    ("llava-tiny-clip-tied-by-text", {"model_type": "llava", "multimodal_projector_bias": False,
                                      "text_config": _tiny("llama", num_key_value_heads=2, tie_word_embeddings=True),
                                      "vision_config": {**_VIT_TINY, "model_type": "clip_vision_model"}}),
    ("llava-tiny-siglip-qwen2", {"model_type": "llava", "vision_feature_select_strategy": "full",
                                 "text_config": _tiny("qwen2", num_key_value_heads=2),
                                 "vision_config": {**_VIT_TINY, "model_type": "siglip_vision_model",
                                                   "vision_use_head": False}}),
    ("llava_next-tiny-clip", {"model_type": "llava_next", "text_config": _tiny("mistral", head_dim=16),
                              "vision_config": {**_VIT_TINY, "model_type": "clip_vision_model"}}),
    # granite-vision's shape: a granite language model, SigLIP read at several layers, its own pinpoints.
    ("llava_next-tiny-siglip-granite", {"model_type": "llava_next", "tie_word_embeddings": True,
                                        "vision_feature_layer": [-2, -1], "vision_feature_select_strategy": "full",
                                        "image_grid_pinpoints": [[56, 56], [56, 112], [112, 112]],
                                        "text_config": _tiny("granite", num_key_value_heads=2),
                                        "vision_config": {**_VIT_TINY, "model_type": "siglip_vision_model"}}),
    ("qwen2_5_vl-tiny", {"model_type": "qwen2_5_vl", "text_config": _tiny("qwen2_5_vl_text", num_key_value_heads=2),
                         "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                                           "out_hidden_size": 64, "fullatt_block_indexes": [1]}}),
    ("qwen2_5_vl-tiny-flat", {**_tiny("qwen2_5_vl", num_key_value_heads=2),
                              "vision_config": {"depth": 1, "hidden_size": 32, "intermediate_size": 40,
                                                "num_heads": 2, "out_hidden_size": 64}}),
    ("qwen3_vl-tiny", {"model_type": "qwen3_vl", "text_config": _tiny("qwen3_vl_text", num_key_value_heads=2,
                                                                        head_dim=16),
                       "vision_config": {"depth": 3, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                                         "out_hidden_size": 64, "deepstack_visual_indexes": [0, 2],
                                         "num_position_embeddings": 64}}),
    ("qwen3_vl_moe-tiny", {"model_type": "qwen3_vl_moe",
                           "text_config": _tiny("qwen3_vl_moe_text", num_key_value_heads=2, head_dim=16, num_experts=6,
                                                mlp_only_layers=[1], decoder_sparse_step=1, **_MOE_TINY),
                           "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                                             "out_hidden_size": 64, "deepstack_visual_indexes": [1],
                                             "num_position_embeddings": 64}}),
    ("mllama-tiny", {"model_type": "mllama",
                     "text_config": _tiny("mllama_text_model", num_key_value_heads=2, num_hidden_layers=4,
                                          cross_attention_layers=[1, 3], pad_token_id=None),
                     "vision_config": {"hidden_size": 32, "intermediate_size": 40, "num_hidden_layers": 2,
                                       "num_global_layers": 1, "attention_heads": 2, "image_size": 28,
                                       "patch_size": 14, "vision_output_dim": 64, "intermediate_layers_indices": [0]}}),
]  # fmt: skip

#: Families whose transformers modules store routed experts as (num_experts, in_features, out_features).
EXPERTS_IN_OUT = {"gpt_oss", "llama4"}
#: DBRX (modeling_dbrx.py DbrxExpertGLU) stores w1, v1 and w2 as one 2-D (experts x ffn_hidden_size, d_model)
#: parameter each, under ``experts.mlp.``.
EXPERTS_FLAT = {"dbrx"}
# Recurrent and hybrid families (architectures/recurrent.py and their family modules).
_SSM_TINY = {"hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 211}
HYBRID_CASES: list[tuple[str, dict[str, Any]]] = [
    ("mamba-tiny", {"model_type": "mamba", **_SSM_TINY}),
    ("mamba-tiny-bias-untied", {"model_type": "mamba", **_SSM_TINY, "use_bias": True, "use_conv_bias": False,
                                "time_step_rank": 7, "tie_word_embeddings": False}),
    ("mamba2-tiny", {"model_type": "mamba2", **_SSM_TINY, "num_heads": 8, "head_dim": 16, "n_groups": 2,
                     "state_size": 16}),
    ("mamba2-tiny-bias-tied", {"model_type": "mamba2", **_SSM_TINY, "num_heads": 8, "head_dim": 16, "n_groups": 2,
                               "state_size": 16, "use_bias": True, "use_conv_bias": False,
                               "tie_word_embeddings": True}),
    ("qwen3_next-tiny", _tiny("qwen3_next", num_hidden_layers=5, num_key_value_heads=2, head_dim=16,
                              linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
                              linear_value_head_dim=12, num_experts=6, shared_expert_intermediate_size=40,
                              mlp_only_layers=[1], **_MOE_TINY)),
    ("qwen3_next-tiny-dense-types", _tiny("qwen3_next", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                          linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=8,
                                          linear_value_head_dim=8, num_experts=0, attention_bias=True,
                                          tie_word_embeddings=True,
                                          layer_types=["linear_attention", "full_attention", "full_attention",
                                                       "linear_attention"])),
    # Qwen3.5 (modeling_qwen3_5.py / modeling_qwen3_5_moe.py): the split in_proj_qkv/z/b/a projections, a dense
    # or every-layer MoE text model, and the wrappers with Qwen3-VL's vision model without deepstack mergers.
    ("qwen3_5_text-tiny", _tiny("qwen3_5_text", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
                                linear_value_head_dim=12)),
    ("qwen3_5_moe_text-tiny", _tiny("qwen3_5_moe_text", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                    linear_num_key_heads=2, linear_num_value_heads=2, linear_key_head_dim=8,
                                    linear_value_head_dim=8, num_experts=6, shared_expert_intermediate_size=40,
                                    tie_word_embeddings=True, **_MOE_TINY)),
    ("qwen3_5-tiny", {"model_type": "qwen3_5",
                      "text_config": _tiny("qwen3_5_text", num_hidden_layers=4, num_key_value_heads=2, head_dim=16,
                                           linear_num_key_heads=2, linear_num_value_heads=4, linear_key_head_dim=8,
                                           linear_value_head_dim=12, full_attention_interval=2),
                      "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                                        "out_hidden_size": 64, "deepstack_visual_indexes": [0],
                                        "num_position_embeddings": 64}}),
    ("qwen3_5_moe-tiny", {"model_type": "qwen3_5_moe",
                          "text_config": _tiny("qwen3_5_moe_text", num_hidden_layers=4, num_key_value_heads=2,
                                               head_dim=16, linear_num_key_heads=2, linear_num_value_heads=4,
                                               linear_key_head_dim=8, linear_value_head_dim=8, num_experts=6,
                                               shared_expert_intermediate_size=40, **_MOE_TINY),
                          "vision_config": {"depth": 2, "hidden_size": 32, "intermediate_size": 40, "num_heads": 2,
                                            "out_hidden_size": 64, "num_position_embeddings": 64}}),
    # A Kimi-Linear checkpoint's config.json style: linear_attn_config (1-indexed MLA/KDA layer lists),
    # first_k_dense_replace read from the keyword arguments, the attribute-mapped MoE names.
    ("kimi_linear-tiny", _tiny("kimi_linear", num_hidden_layers=4, num_key_value_heads=4, kv_lora_rank=16,
                               qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=12, num_experts=6,
                               num_experts_per_token=2, num_shared_experts=2, moe_intermediate_size=24,
                               first_k_dense_replace=2, pad_token_id=0, bos_token_id=1, eos_token_id=2,
                               linear_attn_config={"head_dim": 8, "num_heads": 3, "short_conv_kernel_size": 3,
                                                   "full_attn_layers": [2, 4], "kda_layers": [1, 3]})),
    ("kimi_linear-tiny-q-lora-default-types", _tiny("kimi_linear", num_hidden_layers=5, q_lora_rank=12,
                                                    kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16,
                                                    v_head_dim=16, num_experts=4, num_experts_per_token=2,
                                                    moe_intermediate_size=24, linear_num_heads=2, linear_head_dim=8,
                                                    attention_bias=True, pad_token_id=0, bos_token_id=1,
                                                    eos_token_id=2,
                                                    mlp_layer_types=["sparse", "dense", "sparse", "dense", "sparse"])),
    ("bailing_hybrid-tiny", _tiny("bailing_hybrid", num_hidden_layers=4, layer_group_size=2, head_dim=8,
                                  kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16, v_head_dim=16,
                                  num_experts=8, n_group=2, topk_group=1, num_experts_per_token=2,
                                  moe_intermediate_size=24, first_k_dense_replace=1, pad_token_id=0,
                                  eos_token_id=2)),
    ("bailing_hybrid-tiny-saved-config", _tiny("bailing_hybrid", num_hidden_layers=3, head_dim=8,
                                               linear_head_dim=12, linear_num_heads=2, linear_conv_kernel_dim=3,
                                               kv_lora_rank=16, qk_rope_head_dim=8, qk_nope_head_dim=16,
                                               v_head_dim=16, q_lora_rank=10, num_experts=8, n_group=2,
                                               topk_group=1, num_experts_per_token=2, moe_intermediate_size=24,
                                               pad_token_id=0, eos_token_id=2,
                                               layer_types=["linear_attention", "full_attention",
                                                            "linear_attention"])),
    ("jamba-tiny", _tiny("jamba", num_hidden_layers=5, num_key_value_heads=2, num_experts=4, attn_layer_period=3,
                         attn_layer_offset=1, mamba_d_state=8, num_experts_per_tok=2)),
    ("jamba-tiny-dense-tied", _tiny("jamba", num_key_value_heads=2, num_experts=1, mamba_dt_rank=5,
                                    mamba_proj_bias=True, tie_word_embeddings=True)),
    ("granitemoehybrid-tiny", _tiny("granitemoehybrid", num_key_value_heads=2, num_local_experts=4,
                                    shared_intermediate_size=40, layer_types=["mamba", "attention", "mamba"],
                                    mamba_n_heads=8, mamba_n_groups=2, mamba_d_state=16)),
    ("granitemoehybrid-tiny-dense", _tiny("granitemoehybrid", num_hidden_layers=2, num_local_experts=0,
                                          shared_intermediate_size=40, mamba_n_heads=8, mamba_d_state=16,
                                          layer_types=["full_attention", "linear_attention"], attention_bias=True,
                                          mamba_proj_bias=True, tie_word_embeddings=True)),
    ("bamba-tiny", _tiny("bamba", num_key_value_heads=2, attn_layer_indices=[1], mamba_n_heads=8, mamba_n_groups=2,
                         mamba_d_state=16)),
    ("bamba-tiny-options", _tiny("bamba", num_hidden_layers=2, num_key_value_heads=4, attn_layer_indices=[0],
                                 mamba_n_heads=16, mamba_d_head=8, mamba_d_state=16, mamba_proj_bias=True,
                                 mamba_conv_bias=False, attention_bias=True, mlp_bias=True,
                                 tie_word_embeddings=True)),
    ("rwkv-tiny", {"model_type": "rwkv", "hidden_size": 64, "num_hidden_layers": 3, "vocab_size": 211,
                   "context_length": 128}),
    ("rwkv-tiny-widths", {"model_type": "rwkv", "hidden_size": 64, "num_hidden_layers": 2, "vocab_size": 211,
                          "attention_hidden_size": 48, "intermediate_size": 80, "tie_word_embeddings": True}),
    ("xlstm-tiny", {"model_type": "xlstm", "hidden_size": 64, "num_hidden_layers": 2, "num_heads": 4,
                    "vocab_size": 211}),
    ("xlstm-tiny-fused", {"model_type": "xlstm", "hidden_size": 64, "num_hidden_layers": 2, "num_heads": 2,
                          "vocab_size": 211, "weight_mode": "fused", "use_bias": True, "qk_dim_factor": 0.25,
                          "ffn_proj_factor": 1.3, "ffn_round_up_to_multiple_of": 16, "tie_word_embeddings": True}),
    ("falcon_h1-tiny", _tiny("falcon_h1", num_hidden_layers=2, num_key_value_heads=2, mamba_d_ssm=96,
                             mamba_n_heads=6, mamba_n_groups=2, mamba_d_state=16)),
    ("falcon_h1-tiny-options", _tiny("falcon_h1", num_hidden_layers=2, num_key_value_heads=2, head_dim=8,
                                     mamba_d_ssm=None, mamba_n_heads=8, mamba_d_state=16, mamba_rms_norm=True,
                                     projectors_bias=True, mlp_bias=True, attention_bias=True,
                                     tie_word_embeddings=True)),
    ("nemotron_h-tiny-pattern", _tiny("nemotron_h", num_key_value_heads=2, head_dim=16,
                                      hybrid_override_pattern="M-*EM", mamba_num_heads=8, mamba_head_dim=8,
                                      n_groups=2, ssm_state_size=16, n_routed_experts=4, moe_intermediate_size=24,
                                      moe_shared_expert_intermediate_size=40)),
    ("nemotron_h-tiny-latent", _tiny("nemotron_h", num_key_value_heads=4, layers_block_type=["mamba", "attention",
                                     "moe"], mamba_num_heads=8, mamba_head_dim=8, mamba_n_groups=2,
                                     ssm_state_size=16, n_routed_experts=4, moe_intermediate_size=24,
                                     moe_shared_expert_intermediate_size=40, moe_latent_size=32, mlp_bias=True,
                                     use_bias=True, tie_word_embeddings=True)),
    ("gemma3n_text-tiny", _tiny("gemma3n_text", num_hidden_layers=7, num_key_value_heads=2, head_dim=16,
                                vocab_size_per_layer_input=150, hidden_size_per_layer_input=8, laurel_rank=4,
                                num_kv_shared_layers=2)),
    ("gemma3n_text-tiny-widths", _tiny("gemma3n_text", intermediate_size=[96, 80, 64], num_key_value_heads=2,
                                       head_dim=16, vocab_size_per_layer_input=150, hidden_size_per_layer_input=8,
                                       laurel_rank=4, num_kv_shared_layers=0, altup_num_inputs=3,
                                       tie_word_embeddings=False, attention_bias=True)),
    # o_proj's bias is hidden_size wide, not heads x head_dim (they differ here: 4 x 8 != 64).
    ("gemma3n_text-tiny-narrow-heads", _tiny("gemma3n_text", num_hidden_layers=7, num_key_value_heads=2, head_dim=8,
                                             vocab_size_per_layer_input=150, hidden_size_per_layer_input=8,
                                             laurel_rank=4, num_kv_shared_layers=2, attention_bias=True)),
    # Gemma 4: full layers of another head_dim, per-layer inputs, KV-shared layers with a double-wide MLP.
    ("gemma4_text-tiny", _tiny("gemma4_text", num_hidden_layers=8, num_key_value_heads=2, head_dim=16,
                               global_head_dim=32, layer_types=(["sliding_attention"] * 3 + ["full_attention"]) * 2,
                               vocab_size_per_layer_input=150, hidden_size_per_layer_input=8, num_kv_shared_layers=3,
                               use_double_wide_mlp=True, sliding_window=16)),
    # keys as values on full layers (no v_proj, num_global_key_value_heads), MoE beside the dense MLP, untied.
    ("gemma4_text-tiny-moe", _tiny("gemma4_text", num_hidden_layers=6, num_key_value_heads=2, head_dim=16,
                                   global_head_dim=32, attention_k_eq_v=True, num_global_key_value_heads=1,
                                   hidden_size_per_layer_input=0, enable_moe_block=True, num_experts=4, top_k_experts=2,
                                   moe_intermediate_size=24, tie_word_embeddings=False, attention_bias=True)),
    # a config.json saved by transformers 5.25: per_layer_config (string keys) and global_head_dim null.
    ("gemma4_text-tiny-per-layer-config", _tiny(
        "gemma4_text", num_hidden_layers=4, num_key_value_heads=2, head_dim=16, global_head_dim=None,
        layer_types=["sliding_attention", "full_attention"] * 2, hidden_size_per_layer_input=0,
        per_layer_config={"1": {"head_dim": 32, "num_key_value_heads": 1}, "3": {"head_dim": 32,
                                                                                 "num_key_value_heads": 1}})),
    # the multimodal wrapper with its vision and audio towers.
    ("gemma4-tiny", {"model_type": "gemma4", "text_config": _tiny(
        "gemma4_text", num_hidden_layers=6, num_key_value_heads=2, head_dim=16, global_head_dim=32,
        layer_types=["sliding_attention", "sliding_attention", "full_attention"] * 2, vocab_size_per_layer_input=150, hidden_size_per_layer_input=8, num_kv_shared_layers=2),
        "vision_config": {"model_type": "gemma4_vision", "hidden_size": 32, "intermediate_size": 48,
                          "num_hidden_layers": 2, "num_attention_heads": 2, "num_key_value_heads": 2, "head_dim": 16,
                          "position_embedding_size": 64, "use_clipped_linears": True, "standardize": True},
        "audio_config": {"model_type": "gemma4_audio", "hidden_size": 32, "num_hidden_layers": 2,
                         "num_attention_heads": 2, "subsampling_conv_channels": [16, 8], "output_proj_dims": 24}}),
    ("lfm2-tiny", _tiny("lfm2", num_key_value_heads=2, full_attn_idxs=[1], block_multiple_of=16)),
    ("hrm_text-tiny", _tiny("hrm_text", num_hidden_layers=2, H_cycles=2, L_cycles=2)),
    ("hrm_text-tiny-split", _tiny("hrm_text", num_hidden_layers=12, num_layers_per_stack=2, H_cycles=2, L_cycles=2,
                                  head_dim=8, attention_bias=True, mlp_bias=True, tie_word_embeddings=True)),
    ("lfm2-tiny-types", _tiny("lfm2", num_hidden_layers=2, num_key_value_heads=2, layer_types=["conv",
                              "full_attention"], block_auto_adjust_ff_dim=False, conv_bias=True,
                              tie_word_embeddings=False)),
    # Dory: one input, two looped recurrent and one output layer; config.json's (attention, "mlp") pairs with
    # every layer count doubled (DoryConfig.to_dict), and the plain form with a third loop and "last_loop" caches.
    ("dory-tiny-paired", _tiny("dory", num_hidden_layers=8, num_key_value_heads=2, head_dim=16,
                               layer_types=["sliding_attention", "mlp"] * 3 + ["full_attention", "mlp"],
                               n_input_layers=2, n_recurrent_layers=4, n_output_layers=2)),
    ("dory-tiny-plain", _tiny("dory", num_hidden_layers=4, num_key_value_heads=2, head_dim=16, n_input_layers=1,
                              n_output_layers=1, n_recurrent_loops=3, recurrent_kv_cache_mode="last_loop",
                              tie_word_embeddings=True, attention_bias=True)),
    ("lfm2_moe-tiny", _tiny("lfm2_moe", num_hidden_layers=3, num_key_value_heads=2, num_dense_layers=1,
                            layer_types=["conv", "full_attention", "conv"], num_experts=4, **_MOE_TINY)),
    ("lfm2_moe-tiny-untied", _tiny("lfm2_moe", num_hidden_layers=2, num_key_value_heads=2, num_dense_layers=0,
                                   layer_types=["full_attention", "conv"], num_experts=4, use_expert_bias=False,
                                   conv_bias=True, tie_word_embeddings=False, **_MOE_TINY)),
    ("dots1-tiny", _tiny("dots1", num_key_value_heads=2, first_k_dense_replace=1, n_routed_experts=4,
                         n_shared_experts=2, max_window_layers=2, sliding_window=16, **_MOE_TINY)),
    ("dots1-tiny-all-moe", _tiny("dots1", num_hidden_layers=2, num_key_value_heads=4, n_routed_experts=4, n_shared_experts=1,
                                 attention_bias=True, tie_word_embeddings=True, **_MOE_TINY)),
    ("dbrx-tiny", {"model_type": "dbrx", "d_model": 64, "n_heads": 4, "n_layers": 2, "vocab_size": 100,
                   "max_seq_len": 64, "attn_config": {"kv_n_heads": 2, "clip_qkv": 8, "rope_theta": 10000},
                   "ffn_config": {"ffn_hidden_size": 48, "moe_num_experts": 4, "moe_top_k": 2}}),
]  # fmt: skip

REAL_CASES = sorted(p.stem for p in CONFIGS.glob("*.json"))


# --------------------------------------------------------------------------------------------
# The referee: transformers on the meta device.
# --------------------------------------------------------------------------------------------


def _meta_model(config: dict[str, Any]) -> Any:
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    cfg = transformers.CONFIG_MAPPING[config["model_type"]](**kwargs)
    with torch.device("meta"):
        return getattr(transformers, model_class_name(config))(cfg)


def _role_of(name: str, moe: bool = False) -> str:
    """Classify a transformers parameter name into ROLES, the way parameter_counts documents it."""
    name = name.replace(".norm_attn_norm.", ".")  # DBRX's container of its attention and block norms
    if any(k in name for k in ("vision_tower", "multi_modal_projector", "pooler", "seq_relationship",
                               "vision_model", "model.visual.", "image_newline", "audio_tower", "embed_vision",
                               "embed_audio")):
        return "other"
    if any(k in name for k in ("norm", "ln_", "LayerNorm", "layer_norm", ".ln1.", ".ln2.", ".pre_ln.")):
        return "norm"
    if any(k in name for k in ("altup", "laurel", "per_layer_input_gate", "per_layer_projection",
                               "per_layer_model_projection")):  # gemma3n's extra streams and inputs
        return "other"
    if ".lambda_" in name:  # dory's residual interpolation rates
        return "other"
    if ("shared_expert_gate" in name
            or name.endswith(("mlp.gate.weight", "router.weight", "mixer.gate.weight", "feed_forward.gate.weight"))
            or ".router." in name or "e_score_correction_bias" in name):
        return "router"
    if "experts" in name or "shared_expert." in name or "latent_proj" in name or (moe and "shared_mlp" in name):
        return "experts"
    # Hybrids: nemotron_h's MLP blocks are "mixer"s; Mamba/DeltaNet/short-conv mixers count as attention.
    if any(k in name for k in ("mixer.up_proj", "mixer.down_proj", "feed_forward", "shared_mlp", ".ffn.")):
        return "mlp"
    if any(k in name for k in ("mixer.", "mamba.", "conv.", "mlstm_layer.")):
        return "attention"
    if name.endswith("z_L_init"):  # hrm_text's initial low-level state
        return "other"
    if any(k in name for k in ("embed", "wte", "wpe", "shared.weight")):
        return "embedding"
    if name.startswith(("lm_head", "cls.predictions", "language_model.lm_head")) or name == "head.weight":
        return "lm_head"
    if any(k in name for k in ("attn", "attention", "Attention")):
        return "attention"
    if any(k in name for k in ("mlp", "DenseReluDense", "intermediate", "output.dense", "feed_forward")):
        return "mlp"
    if any(k in name for k in (".fc1.", ".fc2.")):  # musicgen's plain MLP
        return "mlp"
    raise AssertionError(f"unclassified parameter {name}")


def _meta_roles(model: Any) -> dict[str, int]:
    roles = dict.fromkeys(ROLES, 0)
    moe = any("experts" in name for name, _ in model.named_parameters())
    for name, p in model.named_parameters():  # de-duplicates tied parameters, as parameters() does
        roles[_role_of(name, moe)] += p.numel()
    return roles


def _case_configs() -> list[Any]:
    return [pytest.param(c, id=i) for i, c in SMALL_CASES + HYBRID_CASES] + [
        pytest.param(_real(n), id=n) for n in REAL_CASES
    ]


@pytest.mark.parametrize("config", _case_configs())
def test_counts_match_meta_model(config: dict[str, Any]) -> None:
    model = _meta_model(config)
    ours = parameter_counts(config)
    assert ours.total == sum(p.numel() for p in model.parameters())
    assert dict(ours.by_role) == _meta_roles(model)
    assert sum(ours.by_role.values()) == ours.total
    arch = architecture_from_config(config)
    if not arch.is_moe:
        assert ours.active == ours.total
    else:
        assert 0 < ours.active < ours.total


_MUSICGEN_TINY = {"hidden_size": 64, "ffn_dim": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
                  "vocab_size": 211, "num_codebooks": 3, "max_position_embeddings": 128}

# Composite configs whose causal-LM class runs on a sub-config (musicgen's decoder): the referee is the
# runner's meta build, which hands the class that sub-config as AutoModelForCausalLM.from_config does.
COMPOSITE_CASES: list[tuple[str, dict[str, Any]]] = [
    ("musicgen-tiny", {"model_type": "musicgen", "decoder": {"model_type": "musicgen_decoder", **_MUSICGEN_TINY}}),
    ("musicgen_melody-tiny", {"model_type": "musicgen_melody",
                              "decoder": {"model_type": "musicgen_melody_decoder", **_MUSICGEN_TINY}}),
]


@pytest.mark.parametrize("config", [pytest.param(c, id=i) for i, c in COMPOSITE_CASES])
def test_composite_counts_match_meta_model(config: dict[str, Any]) -> None:
    pytest.importorskip("torch")
    from hf_gpu_estimator.runtime import build

    model = build.build_meta_model(config)
    ours = parameter_counts(config)
    assert ours.total == sum(p.numel() for p in model.parameters())
    assert dict(ours.by_role) == _meta_roles(model)
    arch = architecture_from_config(config)
    assert arch.num_layers == len(model.model.decoder.layers)
    modules = dict(model.named_modules())
    for linear in arch.linears:
        assert any(n.endswith("." + linear.name) and _features(m) == (linear.in_features, linear.out_features,
                                                                      linear.bias) for n, m in modules.items()), linear


@pytest.mark.parametrize("config", _case_configs())
def test_architecture_matches_meta_model(config: dict[str, Any]) -> None:
    """Layer count, linears and layer types agree with the built model."""
    model = _meta_model(config)
    arch = architecture_from_config(config)
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    assert len(arch.layer_types) == arch.num_layers
    if arch.weight_layers:  # decoder layers with their own weights (dory's layers, hrm_text's two stacks)
        blocks = [m for n, m in model.named_modules() if n.rsplit(".", 1)[-1].isdigit() and ".layers." in f".{n}"]
        assert arch.stored_layers == len(blocks)
    if hasattr(cfg, "layer_types") and cfg.layer_types is not None and arch.model_type not in ("mistral",) \
            and not arch.weight_layers:  # a looped model's layers are its runs (test_looped_layers)
        assert tuple(cfg.layer_types) == arch.layer_types
    # Module leaf names, and the names of fused 3-D expert parameters (experts.gate_up_proj).
    leaves = {part for n, _ in model.named_parameters() for part in n.split(".")[-2:]}
    for linear in arch.linears:
        assert linear.name in leaves, f"{linear.name} is not a module in {type(model).__name__}"
    modules = dict(model.named_modules())
    params = dict(model.named_parameters())
    for linear in arch.linears:
        if linear.count != 1:
            # transformers 5 stores routed experts as (num_experts, out_features, in_features).
            shapes = {tuple(p.shape) for n, p in params.items()
                      if n.endswith(("experts." + linear.name, "experts.mlp." + linear.name))}
            if arch.family in EXPERTS_FLAT:
                assert shapes == {(linear.count * arch.moe_intermediate_size, arch.hidden_size)}, linear
            elif arch.family in EXPERTS_IN_OUT:
                assert shapes == {(linear.count, linear.in_features, linear.out_features)}, linear
            else:
                assert shapes == {(linear.count, linear.out_features, linear.in_features)}, linear
            continue
        # Find one nn.Linear (or GPT-2's Conv1D) with this leaf name and these features.
        found = any(
            n.endswith("." + linear.name)
            and _features(m) == (linear.in_features, linear.out_features, linear.bias)
            for n, m in modules.items()
        )
        assert found, linear


def _features(module: Any) -> tuple[int, int, bool] | None:
    weight = getattr(module, "weight", None)
    if weight is None or weight.dim() != 2:
        return None
    bias = getattr(module, "bias", None) is not None
    if type(module).__name__ == "Conv1D":  # GPT-2 stores (in, out)
        return weight.shape[0], weight.shape[1], bias
    return weight.shape[1], weight.shape[0], bias


# --------------------------------------------------------------------------------------------
# Published counts.
# --------------------------------------------------------------------------------------------

PUBLISHED_EXACT = [
    # peft's print_trainable_parameters on meta-llama/Llama-2-7b-hf, quoted in
    # https://lightning.ai/pages/community/lora-insights/ ("... 6,738,415,616 trainable parameters").
    ("llama-2-7b", 6_738_415_616),
    # "Naming convention and parameter count" table, https://huggingface.co/EleutherAI/pythia-1b
    ("pythia-1b", 1_011_781_632),
    # openai-community/gpt2 "124M", https://huggingface.co/openai-community/gpt2 (safetensors: 124,439,808)
    ("gpt2", 124_439_808),
]


@pytest.mark.parametrize(("name", "expected"), PUBLISHED_EXACT, ids=[n for n, _ in PUBLISHED_EXACT])
def test_published_exact_counts(name: str, expected: int) -> None:
    assert parameter_counts(_real(name)).total == expected


PUBLISHED_ROUNDED = [
    # https://mistral.ai/news/mixtral-of-experts/: "46.7B total parameters but only uses 12.9B per token"
    ("mixtral-8x7b-v0.1", 46.7, 12.9),
    # https://huggingface.co/Qwen/Qwen3-30B-A3B: "30.5B in total and 3.3B activated"
    ("qwen3-30b-a3b", 30.5, 3.3),
    # https://qwenlm.github.io/blog/qwen-moe/: "14.3B parameters in total and 2.7B activated"
    ("qwen1.5-moe-a2.7b", 14.3, 2.7),
    # https://huggingface.co/deepseek-ai/DeepSeek-V3: "671B total parameters with 37B activated"
    # (the 685B on the Hub adds the 14B MTP module, which transformers does not build).
    ("deepseek-v3", 671.0, 37.0),
]


def test_qwen3_next_80b_header_count() -> None:
    # Qwen3-Next-80B-A3B: "80B total, 3B activated" (https://huggingface.co/Qwen/Qwen3-Next-80B-A3B-Instruct);
    # 79,674,391,296 is the sum of the safetensors header shapes of the same architecture (Qwen/Qwen3-Coder-Next)
    # less the MTP tensors transformers does not build, with 3,874,929,408 used per token.
    counts = parameter_counts(_real("qwen3-next-80b-a3b"))
    assert (counts.total, counts.active) == (79_674_391_296, 3_874_929_408)
    arch = architecture_from_config(_real("qwen3-next-80b-a3b"))
    assert arch.layer_types[:4] == ("linear_attention",) * 3 + ("full_attention",)
    assert arch.attention_layers == 12 and arch.mixer_kinds == ("linear", "full")
    deltanet = arch.layers[0].mixer
    assert deltanet.state_elements == 32 * 128 * 128 and deltanet.conv_elements == (2 * 16 * 128 + 32 * 128) * 4


@pytest.mark.parametrize(("name", "total_b", "active_b"), PUBLISHED_ROUNDED, ids=[n for n, *_ in PUBLISHED_ROUNDED])
def test_published_moe_counts(name: str, total_b: float, active_b: float) -> None:
    counts = parameter_counts(_real(name))
    assert round(counts.total / 1e9, 1) == pytest.approx(total_b, abs=0.05)
    assert abs(counts.active / 1e9 - active_b) < 0.6


# --------------------------------------------------------------------------------------------
# Dimensions and defaults.
# --------------------------------------------------------------------------------------------


def test_llama_defaults_are_llama_2_7b() -> None:
    arch = architecture_from_config({"model_type": "llama"})
    assert (arch.num_layers, arch.hidden_size, arch.num_key_value_heads, arch.head_dim) == (32, 4096, 32, 128)
    assert not arch.tie_word_embeddings
    assert [x.name for x in arch.linears] == ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj",
                                              "down_proj"]  # fmt: skip


def test_sliding_windows() -> None:
    mistral = architecture_from_config(_real("mistral-7b-v0.1"))
    assert mistral.sliding_layers == 32 and mistral.sliding_window == 4096
    assert architecture_from_config(_tiny("mistral", sliding_window=None)).sliding_layers == 0
    gemma2 = architecture_from_config(_real("gemma-2-9b"))
    assert gemma2.layer_types[:2] == ("sliding_attention", "full_attention") and gemma2.sliding_layers == 21
    assert (gemma2.attn_logit_softcapping, gemma2.final_logit_softcapping) == (50.0, 30.0)
    gemma3 = architecture_from_config(_real("gemma-3-1b"))
    assert gemma3.layer_types[5] == "full_attention" and gemma3.sliding_layers == 22
    assert gemma3.sliding_window == 512
    qwen2 = architecture_from_config(_tiny("qwen2", use_sliding_window=True, max_window_layers=1))
    assert qwen2.layer_types == ("full_attention", "sliding_attention", "sliding_attention")
    assert architecture_from_config(_real("qwen2.5-0.5b")).sliding_window is None
    given = _tiny("gemma3_text", layer_types=["full_attention"] * 3)
    assert architecture_from_config(given).sliding_layers == 0


def test_moe_and_mla_fields() -> None:
    ds = architecture_from_config(_real("deepseek-v3"))
    assert (ds.num_experts, ds.num_experts_per_tok, ds.num_shared_experts, ds.num_dense_layers) == (256, 8, 1, 3)
    assert ds.moe_layers == tuple(range(3, 61)) and ds.is_mla
    assert (ds.q_lora_rank, ds.kv_lora_rank, ds.qk_rope_head_dim, ds.v_head_dim) == (1536, 512, 64, 128)
    assert architecture_from_config(_tiny("deepseek_v3", q_lora_rank=None)).q_lora_rank is None
    qmoe = architecture_from_config(SMALL_CASES[[i for i, _ in SMALL_CASES].index("qwen2_moe-tiny")][1])
    assert qmoe.moe_layers == (1, 3) and qmoe.shared_expert_intermediate_size == 40
    experts = [x for x in qmoe.linears if x.count > 1]
    assert {x.count for x in experts} == {6}
    q3 = architecture_from_config(_real("qwen3-30b-a3b"))
    assert (q3.head_dim, q3.num_experts, q3.moe_intermediate_size, len(q3.moe_layers)) == (128, 128, 768, 48)


def test_new_family_layers() -> None:
    """Per-layer mixers and FFNs of the families with mixed layers."""
    oss = architecture_from_config(_tiny("gpt_oss", head_dim=16, num_local_experts=4, num_experts_per_tok=2))
    assert [(x.mixer.kind, x.mixer.window, x.mixer.sinks, x.ffn.kind) for x in oss.layers] == [
        ("sliding", 128, True, "moe"), ("full", None, True, "moe"), ("sliding", 128, True, "moe")]
    l4 = architecture_from_config(_tiny("llama4_text", num_hidden_layers=8, head_dim=16, num_local_experts=4,
                                        interleave_moe_layer_step=2))
    assert [x.mixer.kind for x in l4.layers] == ["chunked"] * 3 + ["full"] + ["chunked"] * 3 + ["full"]
    assert {x.mixer.chunk for x in l4.layers if x.mixer.kind == "chunked"} == {8192}
    assert [x.ffn.kind for x in l4.layers] == ["dense", "moe"] * 4
    assert l4.layers[1].ffn.shared == l4.moe_intermediate_size
    smol = architecture_from_config(_tiny("smollm3", num_hidden_layers=8, use_sliding_window=True, sliding_window=64))
    assert smol.layer_types == ("full_attention",) * 3 + ("sliding_attention",) + ("full_attention",) * 3 + (
        "sliding_attention",)
    olmo = architecture_from_config(_tiny("olmo3", num_hidden_layers=8))
    assert olmo.sliding_layers == 6 and olmo.sliding_window == 4096
    ernie = architecture_from_config(_tiny("ernie4_5_moe", num_hidden_layers=6, moe_layer_interval=2))
    assert ernie.moe_layers == (1, 3, 5) and ernie.num_shared_experts == 2
    v2 = architecture_from_config({"model_type": "deepseek_v2"})
    assert v2.is_mla and v2.num_experts_per_tok == 0 and any("null" in n for n in v2.notes)
    assert architecture_from_config({"model_type": "gpt_bigcode"}).num_key_value_heads == 1


def test_looped_layers() -> None:
    """Dory's layers in the order a forward runs them: the recurrent section once per loop, each run with its
    own cache under "per_loop", only the last loop's under "last_loop"; weights once per distinct layer."""
    paired = dict(SMALL_CASES + HYBRID_CASES)["dory-tiny-paired"]
    arch = architecture_from_config(paired)
    assert (arch.num_layers, arch.stored_layers) == (6, 4)
    assert [x.mixer.kind for x in arch.layers] == ["sliding"] * 5 + ["full"]
    assert not any(x.mixer.kv_shared for x in arch.layers)
    plain = architecture_from_config(dict(SMALL_CASES + HYBRID_CASES)["dory-tiny-plain"])
    assert (plain.num_layers, plain.stored_layers) == (8, 4)
    assert [x.mixer.kv_shared for x in plain.layers] == [False] + [True] * 4 + [False] * 3


def _granite_vision() -> dict[str, Any]:
    from hf_gpu_estimator.sources.catalog import catalog_entry

    entry = catalog_entry("ibm-granite/granite-vision-3.3-2b")
    assert entry is not None
    return entry["config"]


def test_llava_next_counts_the_vision_tower() -> None:
    """granite-vision-3.3-2b as vLLM holds it (5.54 GiB logged in the llm-d run): the granite language model,
    the 27-layer SigLIP tower with its pooling head, the projector over four feature layers and image_newline."""
    counts = parameter_counts(_granite_vision())
    assert counts.total == 2_975_396_928 and counts.by_role["other"] == 441_863_232
    assert counts.total * 2 / 2**30 == pytest.approx(5.54, abs=0.005)
    assert counts.off_text_path == {"vision": 441_863_232}


def test_images() -> None:
    """Vision parameters and tokens per image of the vision-language wrappers."""
    gemma3 = architecture_from_config(_real("gemma-3-4b"))
    assert gemma3.tokens_per_image == 256 and gemma3.vision_parameters == parameter_counts(_real("gemma-3-4b")).by_role[
        "other"]
    # llava: 24 x 24 patches of the 336-pixel CLIP view; llava_next adds the 672 x 672 grid's 48 x 48 features
    # and 48 newlines (LlavaNextProcessor._get_number_of_features gives 2928 for a 1024 x 1024 image).
    expected = {"mistral3": 37 * 38, "qwen2_5_vl": 37 * 37, "qwen3_vl": 32 * 32, "qwen3_vl_moe": 32 * 32, "mllama": 1,
                "llama4": 256, "llava": 24 * 24, "llava_next": 48 * 48 + 48 + 24 * 24}
    for model_type, tokens in expected.items():
        arch = architecture_from_config({"model_type": model_type})
        assert arch.tokens_per_image == tokens, model_type
        assert arch.vision_parameters == parameter_counts({"model_type": model_type}).by_role["other"] > 0
    # granite-vision-3.3-2b: SigLIP at 384 pixels (27 x 27 patches, no class token), best pinpoint 768 x 768.
    granite = architecture_from_config(_granite_vision())
    assert granite.tokens_per_image == 54 * 54 + 54 + 27 * 27
    mllama = architecture_from_config({"model_type": "mllama"})
    assert [i for i, x in enumerate(mllama.layers) if x.mixer.kind == "cross"] == [3, 8, 13, 18, 23, 28, 33, 38]
    assert mllama.cross_tokens_per_image == 4 * ((448 // 14) ** 2 + 1)


def test_cross_attention_cache_holds_the_image_tokens() -> None:
    """mllama's cross-attention layers cache the vision tokens of the images, not the text; without
    images transformers skips them (no cache, no activations)."""
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.memory.kv_cache import kv_cache_bytes
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.workload import make_workload

    arch = architecture_from_config({"model_type": "mllama"})
    per_token = 2 * 8 * 128 * 2  # keys + values, 8 KV heads of 128, bf16
    assert kv_cache_bytes(arch, batch_size=1, tokens=100, dtype_bytes=2) == 32 * 100 * per_token
    spec = inspect_model({"model_type": "mllama"})
    run = {"task": "inference", "batch_size": 1, "seq_len": 100, "new_tokens": 1, "dtype": "bfloat16"}
    base = estimate_memory(spec, make_workload(**run))
    two = estimate_memory(spec, make_workload(**run, images=2))
    cross = 8 * 2 * arch.cross_tokens_per_image * per_token  # 8 layers x 2 images x 4,100 tokens
    self_attn = 32 * 2 * per_token  # the two <|image|> tokens in the text
    # The component also holds the cache's growth copies at decode (memory/model.py), hence not equal.
    assert cross + self_attn <= two.components["kv_cache"] - base.components["kv_cache"] <= 1.02 * (cross + self_attn)
    assert any("cross-attention layers cache" in a for a in two.assumptions)


def test_family_flags() -> None:
    falcon = architecture_from_config(_real("falcon-7b"))
    assert falcon.num_key_value_heads == 1 and falcon.parallel_attention and falcon.norm == "layernorm"
    assert architecture_from_config(_real("falcon-40b")).num_key_value_heads == 8
    neox = architecture_from_config(_tiny("gpt_neox", use_parallel_residual=False))
    assert not neox.parallel_attention and not neox.gated_mlp
    phi = architecture_from_config(_real("phi-2"))
    assert phi.parallel_attention and phi.attention_bias
    t5 = architecture_from_config(_real("flan-t5-base"))
    assert t5.is_encoder_decoder and t5.num_decoder_layers == 12 and t5.gated_mlp and t5.hidden_act == "gelu_new"
    assert t5.tie_word_embeddings  # transformers 5 forces it (configuration_t5.py)
    bert = architecture_from_config(_real("bert-base-uncased"))
    assert not bert.is_decoder and not bert.is_encoder_decoder
    gpt2 = architecture_from_config(_real("gpt2"))
    assert gpt2.intermediate_size == 3072 and gpt2.linears[0].name == "c_attn"
    gemma3 = architecture_from_config(_real("gemma-3-4b"))
    assert gemma3.hidden_size == 2560 and gemma3.notes and "vision" in gemma3.notes[0]


def test_model_class_name() -> None:
    assert model_class_name({"model_type": "t5"}) == "T5ForConditionalGeneration"
    assert model_class_name({"model_type": "bert"}) == "BertForMaskedLM"
    assert model_class_name({"model_type": "gpt2"}) == "GPT2LMHeadModel"
    assert model_class_name({"model_type": "llama", "architectures": ["LlamaModel"]}) == "LlamaModel"
    unknown_head = {"model_type": "llama", "architectures": ["LlamaForSequenceClassification"]}
    assert model_class_name(unknown_head) == "LlamaForCausalLM"
    assert "LlamaForSequenceClassification" in architecture_from_config(unknown_head).notes[-1]


def test_every_supported_type_has_a_small_case() -> None:
    covered = {c["model_type"] for _, c in SMALL_CASES + HYBRID_CASES + COMPOSITE_CASES}
    assert covered == set(SUPPORTED_MODEL_TYPES)


# --------------------------------------------------------------------------------------------
# Errors.
# --------------------------------------------------------------------------------------------


def test_model_type_transformers_does_not_know() -> None:
    with pytest.raises(UnsupportedArchitectureError, match="'chatglm'.*--exact needs a transformers") as info:
        parameter_counts({"model_type": "chatglm", "hidden_size": 64})
    assert "llama" in info.value.supported
    assert "\n" not in str(info.value)


def test_generic_family_reads_standard_fields_and_aliases() -> None:
    # A model type with no family module: dimensions through transformers' attribute_map aliases.
    arch = architecture_from_config({"model_type": "gpt_neo", "hidden_size": 64, "num_layers": 2, "num_heads": 4,
                                     "vocab_size": 100, "attention_types": [[["global", "local"], 1]]})
    assert (arch.derivation, arch.hidden_size, arch.num_layers, arch.num_attention_heads) == ("generic", 64, 2, 4)
    assert arch.notes and "generic" in arch.notes[0]


def test_generic_family_attention_free_state_space_model() -> None:
    arch = architecture_from_config({"model_type": "falcon_mamba", "hidden_size": 64, "num_hidden_layers": 2,
                                     "state_size": 8, "expand": 2, "conv_kernel": 4, "vocab_size": 100})
    assert arch.mixer_kinds == ("ssm",)
    assert arch.layers[0].mixer.state_elements == 128 * 8


@pytest.mark.parametrize(
    ("config", "field"),
    [
        pytest.param({"hidden_size": 4096}, "model_type", id="missing-model-type"),
        pytest.param({"model_type": 3}, "model_type", id="model-type-not-str"),
        pytest.param({"model_type": "llama", "hidden_size": "abc"}, "hidden_size", id="str-int"),
        pytest.param({"model_type": "llama", "num_hidden_layers": True}, "num_hidden_layers", id="bool-int"),
        pytest.param({"model_type": "llama", "hidden_size": 4096.0}, "hidden_size", id="float-int"),
        pytest.param({"model_type": "llama", "hidden_size": 0}, "hidden_size", id="zero"),
        pytest.param({"model_type": "llama", "vocab_size": None}, "vocab_size", id="null-required"),
        pytest.param({"model_type": "llama", "tie_word_embeddings": "yes"}, "tie_word_embeddings", id="str-bool"),
        pytest.param({"model_type": "gpt2", "n_embd": "768"}, "n_embd", id="gpt2-alias"),
        pytest.param({"model_type": "gemma2", "layer_types": ["full_attention"]}, "layer_types", id="layer-types"),
        pytest.param({"model_type": "qwen2_moe", "mlp_only_layers": "0"}, "mlp_only_layers", id="int-list"),
        pytest.param({"model_type": "mixtral", "num_experts_per_tok": 9}, "num_experts_per_tok", id="top-k"),
        pytest.param({"model_type": "t5", "feed_forward_proj": "a-b"}, "feed_forward_proj", id="t5-proj"),
        pytest.param({"model_type": "gemma3", "text_config": {"hidden_size": "x"}}, "text_config.hidden_size",
                     id="nested"),
        pytest.param({"model_type": "llama", "architectures": "LlamaForCausalLM"}, "architectures",
                     id="architectures-str"),
        pytest.param({"model_type": "kimi_linear", "num_hidden_layers": 3,
                      "linear_attn_config": {"full_attn_layers": [3], "kda_layers": [1]}},
                     "linear_attn_config.full_attn_layers", id="kimi-layer-lists"),
        pytest.param({"model_type": "kimi_linear", "mlp_layer_types": ["dense", "moe"]}, "mlp_layer_types",
                     id="kimi-mlp-types"),
        pytest.param({"model_type": "bailing_hybrid", "num_experts_per_token": 600}, "num_experts_per_token",
                     id="bailing-top-k"),
        pytest.param({"model_type": "gemma4_text", "num_hidden_layers": 6, "num_kv_shared_layers": 2},
                     "num_kv_shared_layers", id="gemma4-no-full-producer"),
        pytest.param({"model_type": "gemma4", "text_config": {"per_layer_config": {"99": {"head_dim": 8}}}},
                     "text_config.per_layer_config", id="gemma4-layer-index"),
        pytest.param({"model_type": "gemma4", "audio_config": {"subsampling_conv_channels": [128]}},
                     "audio_config.subsampling_conv_channels", id="gemma4-audio-channels"),
        pytest.param({"model_type": "qwen3_5_moe", "text_config": {"num_experts": 0}}, "text_config.num_experts",
                     id="qwen3_5-moe-no-experts"),
        pytest.param({"model_type": "qwen3_5_text", "linear_num_key_heads": 3}, "linear_num_value_heads",
                     id="qwen3_5-linear-heads"),
        pytest.param({"model_type": "qwen3_5", "vision_config": {"depth": "27"}}, "vision_config.depth",
                     id="qwen3_5-vision-depth"),
        pytest.param({"model_type": "qwen3_5_moe_text", "layer_types": ["linear_attention"]}, "layer_types",
                     id="qwen3_5-layer-types"),
    ],
)  # fmt: skip
def test_malformed_config(config: dict[str, Any], field: str) -> None:
    with pytest.raises(MalformedConfigError) as info:
        parameter_counts(config)
    assert info.value.field == field
    assert field in str(info.value)


def test_not_a_mapping() -> None:
    with pytest.raises(MalformedConfigError):
        parameter_counts(["llama"])  # type: ignore[arg-type]


def test_import_is_torch_free() -> None:
    code = (
        "import sys, hf_gpu_estimator.architectures as a;"
        "a.parameter_counts({'model_type': 'deepseek_v3'});"
        "assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


_STATE_CASES = ["mamba-tiny", "mamba2-tiny", "qwen3_next-tiny", "jamba-tiny", "nemotron_h-tiny-pattern", "lfm2-tiny",
                "falcon_h1-tiny", "granitemoehybrid-tiny", "bamba-tiny", "kimi_linear-tiny", "bailing_hybrid-tiny"]


@pytest.mark.parametrize("case", _STATE_CASES)
def test_recurrent_state_shapes_and_dtypes(case: str) -> None:
    """The conv and recurrent states transformers caches after a bf16 prefill match each Mixer's elements
    and the dtypes memory/kv_cache.py uses (conv: model dtype; recurrent: fp32)."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from hf_gpu_estimator.memory.kv_cache import state_bytes_per_sequence

    config = dict(HYBRID_CASES)[case] if case in dict(HYBRID_CASES) else dict(SMALL_CASES)[case]
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    torch.manual_seed(0)
    model = getattr(transformers, model_class_name(config))(transformers.CONFIG_MAPPING[config["model_type"]](**kwargs))
    model = model.to(torch.bfloat16).eval()
    with torch.no_grad():
        cache = model(torch.randint(0, 200, (1, 9)), use_cache=True).past_key_values
    arch = architecture_from_config(config)
    checked = 0
    for i, layer in enumerate(arch.layers):
        for mixer in layer.mixers:
            if mixer.kind not in ("ssm", "linear", "conv"):
                continue
            held = cache.layers[i]
            conv = held.conv_states[0]
            assert conv.dtype == torch.bfloat16 and conv.numel() == mixer.conv_elements
            recurrent = held.recurrent_states.get(0)
            n = 0 if recurrent is None else recurrent.numel()
            assert n == mixer.state_elements
            if recurrent is not None:
                assert recurrent.dtype == torch.float32
            nbytes = conv.numel() * 2 + n * 4
            assert state_bytes_per_sequence(mixer, 2) == nbytes
            checked += 1
    assert checked


def test_rwkv_state_shapes_and_dtypes() -> None:
    """RWKV's state (five (batch, hidden, layers) tensors, not a Cache) matches the wkv Mixer's elements and
    the dtypes memory/kv_cache.py uses: token-shift states in the model dtype, WKV states in fp32."""
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    from hf_gpu_estimator.memory.kv_cache import state_bytes_per_sequence

    config = dict(HYBRID_CASES)["rwkv-tiny"]
    kwargs = {k: v for k, v in config.items() if k != "model_type"}
    torch.manual_seed(0)
    model = transformers.RwkvForCausalLM(transformers.RwkvConfig(**kwargs)).to(torch.bfloat16).eval()
    with torch.no_grad():
        state = model(torch.randint(0, 200, (1, 9)), use_cache=True).state
    arch = architecture_from_config(config)
    layers = arch.num_layers
    mixer = arch.layers[0].mixer
    assert [s.dtype for s in state] == [torch.bfloat16] * 2 + [torch.float32] * 3
    assert sum(s.numel() for s in state[:2]) == layers * mixer.conv_elements
    assert sum(s.numel() for s in state[2:]) == layers * mixer.state_elements
    assert sum(s.numel() * s.element_size() for s in state) == layers * state_bytes_per_sequence(mixer, 2)


def test_gemma4_layers_and_cache() -> None:
    """Gemma 4: full layers take global_head_dim (and num_global_key_value_heads only with attention_k_eq_v);
    the KV-shared layers keep no cache; with use_double_wide_mlp their MLP is twice as wide
    (configuration_gemma4.py Gemma4TextConfig.__post_init__ / kv_sharing_modes, modeling_gemma4.py)."""
    from hf_gpu_estimator.memory.kv_cache import kv_cache_bytes

    cases = dict(HYBRID_CASES)
    a = architecture_from_config(cases["gemma4_text-tiny"])
    assert [(m.mixer.kind, m.mixer.head_dim, m.mixer.kv_heads, m.mixer.kv_shared, m.ffn.intermediate)
            for m in a.layers] == [("sliding", 16, 2, False, 96)] * 3 + [("full", 32, 2, False, 96)] + [
        ("sliding", 16, 2, False, 96)] + [("sliding", 16, 2, True, 192)] * 2 + [("full", 32, 2, True, 192)]
    # 4 sliding layers of 2 x 16 and one full layer of 2 x 32 keep 10 tokens (keys + values, bf16).
    assert kv_cache_bytes(a, batch_size=1, tokens=10, dtype_bytes=2) == 10 * 2 * 2 * (4 * 2 * 16 + 2 * 32)
    m = architecture_from_config(cases["gemma4_text-tiny-moe"])
    assert {(x.mixer.kind, x.mixer.head_dim, x.mixer.kv_heads) for x in m.layers} == {
        ("sliding", 16, 2), ("full", 32, 1)}
    assert m.is_moe and (m.num_experts, m.num_experts_per_tok) == (4, 2)
    w = architecture_from_config(cases["gemma4-tiny"])
    assert w.model_type == "gemma4" and w.tokens_per_image == 280 and w.vision_parameters > 0
    assert parameter_counts(cases["gemma4-tiny"]).off_text_path.keys() == {"vision", "audio"}


def test_kv_sharing_and_parallel_mixers_in_the_cache() -> None:
    """gemma3n's KV-shared layers keep no cache; falcon_h1 layers keep an attention cache and a Mamba2 state."""
    from hf_gpu_estimator.memory.kv_cache import kv_cache_bytes, state_bytes_per_sequence

    g = architecture_from_config(dict(HYBRID_CASES)["gemma3n_text-tiny"])
    assert [m.mixer.kv_shared for m in g.layers] == [False] * 5 + [True] * 2
    kv = 2 * 2 * 16 * 2  # keys + values, 2 KV heads of 16, bf16
    # 5 producing layers: index 4 is full attention (100 tokens), the others slide over 512 (all 100 kept).
    assert kv_cache_bytes(g, batch_size=1, tokens=100, dtype_bytes=2) == 5 * 100 * kv
    h = architecture_from_config(dict(HYBRID_CASES)["falcon_h1-tiny"])
    layer = h.layers[0]
    assert layer.mixer.kind == "full" and layer.parallel is not None and layer.parallel.kind == "ssm"
    per_layer = 10 * layer.mixer.cache_elements_per_token() * 2 + state_bytes_per_sequence(layer.parallel, 2)
    assert kv_cache_bytes(h, batch_size=1, tokens=10, dtype_bytes=2) == 2 * per_layer
