"""Tests for architectures/: exact counts against transformers models built on meta."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError
from hf_gpu_estimator.architectures import (
    SUPPORTED_MODEL_TYPES,
    architecture_from_config,
    model_class_name,
    parameter_counts,
)
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


def _role_of(name: str) -> str:
    """Classify a transformers parameter name into ROLES, the way parameter_counts documents it."""
    if any(k in name for k in ("vision_tower", "multi_modal_projector", "pooler", "seq_relationship")):
        return "other"
    if any(k in name for k in ("norm", "ln_", "LayerNorm", "layer_norm")):
        return "norm"
    if "shared_expert_gate" in name or name.endswith("mlp.gate.weight"):
        return "router"
    if "experts" in name or "shared_expert." in name:
        return "experts"
    if any(k in name for k in ("embed", "wte", "wpe", "shared.weight")):
        return "embedding"
    if name.startswith(("lm_head", "cls.predictions")):
        return "lm_head"
    if any(k in name for k in ("attn", "attention", "Attention")):
        return "attention"
    if any(k in name for k in ("mlp", "DenseReluDense", "intermediate", "output.dense")):
        return "mlp"
    raise AssertionError(f"unclassified parameter {name}")


def _meta_roles(model: Any) -> dict[str, int]:
    roles = dict.fromkeys(ROLES, 0)
    for name, p in model.named_parameters():  # de-duplicates tied parameters, as parameters() does
        roles[_role_of(name)] += p.numel()
    return roles


def _case_configs() -> list[Any]:
    return [pytest.param(c, id=i) for i, c in SMALL_CASES] + [
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


@pytest.mark.parametrize("config", _case_configs())
def test_architecture_matches_meta_model(config: dict[str, Any]) -> None:
    """Layer count, linears and layer types agree with the built model."""
    model = _meta_model(config)
    arch = architecture_from_config(config)
    cfg = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
    assert len(arch.layer_types) == arch.num_layers
    if hasattr(cfg, "layer_types") and cfg.layer_types is not None and arch.model_type not in ("mistral",):
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
            shapes = {tuple(p.shape) for n, p in params.items() if n.endswith("experts." + linear.name)}
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
    covered = {c["model_type"] for _, c in SMALL_CASES}
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
