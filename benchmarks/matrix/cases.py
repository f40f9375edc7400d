"""The accuracy matrix: analytic estimates against exact-mode traces of transformers.

Each case is a small config of a real family (the same code paths as the full-size model, in
seconds on a CPU) and a workload. ``compare`` runs both sides; the test suite holds every case
within :data:`TOLERANCE` and ``benchmarks/accuracy_report.py`` writes docs/accuracy.md from it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

#: Relative error allowed between the analytic ``allocated_peak_bytes`` (without the cuBLAS
#: workspace, which traces on fake tensors cannot see) and the traced peak.
TOLERANCE = 0.05

_LLAMA = {"model_type": "llama", "hidden_size": 512, "intermediate_size": 1408, "num_hidden_layers": 4,
          "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 4096, "max_position_embeddings": 4096,
          "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
_QWEN2 = {"model_type": "qwen2", "hidden_size": 448, "intermediate_size": 1216, "num_hidden_layers": 4,
          "num_attention_heads": 7, "num_key_value_heads": 1, "vocab_size": 6144, "max_position_embeddings": 4096,
          "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
_GPT2 = {"model_type": "gpt2", "n_embd": 384, "n_layer": 4, "n_head": 6, "vocab_size": 4096, "n_positions": 1024,
         "torch_dtype": "float32"}
_MISTRAL = {"model_type": "mistral", "hidden_size": 512, "intermediate_size": 1792, "num_hidden_layers": 4,
            "num_attention_heads": 8, "num_key_value_heads": 2, "vocab_size": 4096, "sliding_window": 256,
            "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_MIXTRAL = {"model_type": "mixtral", "hidden_size": 384, "intermediate_size": 768, "num_hidden_layers": 3,
            "num_attention_heads": 6, "num_key_value_heads": 2, "num_local_experts": 4, "num_experts_per_tok": 2,
            "vocab_size": 4096, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_GEMMA2 = {"model_type": "gemma2", "hidden_size": 384, "intermediate_size": 1024, "num_hidden_layers": 4,
           "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 96, "vocab_size": 8192,
           "sliding_window": 256, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_QWEN3 = {"model_type": "qwen3", "hidden_size": 512, "intermediate_size": 1536, "num_hidden_layers": 4,
          "num_attention_heads": 8, "num_key_value_heads": 4, "head_dim": 64, "vocab_size": 4096,
          "max_position_embeddings": 4096, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}

# Recurrent, hybrid and MoE families: every layer kind of the full-size model present, a few layers,
# hidden 256 (the same code paths: transformers' torch fallbacks, which exact mode traces).
_MAMBA2 = {"model_type": "mamba2", "hidden_size": 256, "num_hidden_layers": 3, "num_heads": 8, "head_dim": 64,
           "expand": 2, "state_size": 64, "n_groups": 2, "conv_kernel": 4, "chunk_size": 256, "time_step_rank": 16,
           "vocab_size": 4096, "tie_word_embeddings": False, "torch_dtype": "bfloat16"}
_QWEN3_NEXT = {"model_type": "qwen3_next", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
               "layer_types": ["linear_attention"] * 3 + ["full_attention"], "num_attention_heads": 4,
               "num_key_value_heads": 2, "head_dim": 64, "linear_conv_kernel_dim": 4, "linear_key_head_dim": 32,
               "linear_value_head_dim": 32, "linear_num_key_heads": 4, "linear_num_value_heads": 8,
               "num_experts": 8, "num_experts_per_tok": 2, "moe_intermediate_size": 128,
               "shared_expert_intermediate_size": 128, "decoder_sparse_step": 1, "vocab_size": 4096,
               "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_JAMBA = {"model_type": "jamba", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 4,
          "num_attention_heads": 4, "num_key_value_heads": 2, "attn_layer_period": 4, "attn_layer_offset": 2,
          "expert_layer_period": 2, "expert_layer_offset": 1, "num_experts": 4, "num_experts_per_tok": 2,
          "mamba_d_state": 16, "mamba_d_conv": 4, "mamba_expand": 2, "mamba_dt_rank": 16, "use_mamba_kernels": False,
          "vocab_size": 4096, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_GRANITEMOEHYBRID = {
    "model_type": "granitemoehybrid", "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 4,
    "layer_types": ["mamba"] * 3 + ["attention"], "num_attention_heads": 4, "num_key_value_heads": 2,
    "num_local_experts": 4, "num_experts_per_tok": 2, "shared_intermediate_size": 512, "mamba_n_heads": 8,
    "mamba_d_head": 64, "mamba_n_groups": 1, "mamba_d_state": 64, "mamba_d_conv": 4, "mamba_expand": 2,
    "mamba_chunk_size": 256, "vocab_size": 4096, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_LFM2 = {"model_type": "lfm2", "hidden_size": 256, "intermediate_size": 1152, "num_hidden_layers": 4,
         "layer_types": ["conv", "conv", "full_attention", "conv"], "full_attn_idxs": [2], "num_attention_heads": 4,
         "num_key_value_heads": 2, "conv_L_cache": 3, "block_multiple_of": 256, "vocab_size": 4096,
         "max_position_embeddings": 4096, "tie_word_embeddings": True, "torch_dtype": "bfloat16"}
_GPT_OSS = {"model_type": "gpt_oss", "hidden_size": 256, "intermediate_size": 256, "num_hidden_layers": 2,
            "layer_types": ["sliding_attention", "full_attention"], "sliding_window": 128, "num_attention_heads": 4,
            "num_key_value_heads": 2, "head_dim": 64, "num_local_experts": 8, "num_experts_per_tok": 2,
            "vocab_size": 4096, "torch_dtype": "bfloat16"}
_LLAMA4_TEXT = {"model_type": "llama4_text", "hidden_size": 256, "intermediate_size": 256,
                "intermediate_size_mlp": 512, "num_hidden_layers": 4, "num_attention_heads": 4,
                "num_key_value_heads": 2, "head_dim": 64, "num_local_experts": 4, "num_experts_per_tok": 1,
                "moe_layers": [1, 3], "interleave_moe_layer_step": 2, "no_rope_layers": [1, 1, 1, 0],
                "layer_types": ["chunked_attention"] * 3 + ["full_attention"], "attention_chunk_size": 128,
                "vocab_size": 4096, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_DEEPSEEK_V3 = {"model_type": "deepseek_v3", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 3,
                "first_k_dense_replace": 1, "num_attention_heads": 4, "num_key_value_heads": 4,
                "q_lora_rank": 96, "kv_lora_rank": 64, "qk_rope_head_dim": 32, "qk_nope_head_dim": 32,
                "v_head_dim": 32, "head_dim": 32, "n_routed_experts": 8, "num_experts_per_tok": 2,
                "n_shared_experts": 1, "moe_intermediate_size": 128, "n_group": 2, "topk_group": 1,
                "vocab_size": 4096, "max_position_embeddings": 4096, "torch_dtype": "bfloat16"}
_RWKV = {"model_type": "rwkv", "hidden_size": 256, "attention_hidden_size": 256, "intermediate_size": 1024,
         "num_hidden_layers": 2, "vocab_size": 4096, "context_length": 1024, "tie_word_embeddings": False,
         "torch_dtype": "bfloat16"}

#: Real scale: https://huggingface.co/meta-llama/Llama-2-7b-hf/blob/main/config.json
_LLAMA2_7B = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
              "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "torch_dtype": "float16"}

FAMILIES: Mapping[str, Mapping[str, Any]] = {
    "llama": _LLAMA, "qwen2": _QWEN2, "gpt2": _GPT2, "mistral": _MISTRAL, "mixtral": _MIXTRAL,
    "gemma2": _GEMMA2, "qwen3": _QWEN3, "llama-2-7b": _LLAMA2_7B,
    "mamba2": _MAMBA2, "qwen3_next": _QWEN3_NEXT, "jamba": _JAMBA, "granitemoehybrid": _GRANITEMOEHYBRID,
    "lfm2": _LFM2, "gpt_oss": _GPT_OSS, "llama4_text": _LLAMA4_TEXT, "deepseek_v3": _DEEPSEEK_V3, "rwkv": _RWKV,
}  # fmt: skip

#: Families held on the workloads where their layers' activations dominate (inference prefill, a
#: 16-bit training step, mixed precision with checkpointing), not the full attention/precision grid,
#: with their (batch, sequence). Jamba's Mamba and RWKV-4 run a Python loop over the tokens in
#: transformers' torch fallback (seconds per hundred steps on fake tensors): the same tokens in
#: shorter sequences.
LAYER_KIND_FAMILIES: Mapping[str, tuple[int, int]] = {
    "mamba2": (2, 512), "qwen3_next": (2, 512), "jamba": (8, 128), "granitemoehybrid": (2, 512), "lfm2": (2, 512),
    "gpt_oss": (2, 512), "llama4_text": (2, 512), "deepseek_v3": (2, 512), "rwkv": (16, 64),
}  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class Case:
    family: str
    workload: Mapping[str, Any]
    known_gap: float | None = None  # measured error where the analytic model is known to miss, with a reason
    reason: str = ""

    @property
    def id(self) -> str:
        w = self.workload
        parts = [self.family, w.get("task", "inference")]
        for key in ("method", "precision", "attn_implementation", "optimizer"):
            if key in w:
                parts.append(str(w[key]))
        if w.get("gradient_checkpointing"):
            parts.append("ckpt")
        parts.append(f"b{w.get('batch_size', 1)}s{w.get('seq_len', 1024)}")
        return "-".join(parts)


def _cases() -> tuple[Case, ...]:
    cases: list[Case] = []
    for family in FAMILIES:
        if family == "llama-2-7b" or family in LAYER_KIND_FAMILIES:
            continue
        for attn in ("sdpa", "eager"):
            cases.append(Case(family=family, workload={"task": "inference", "batch_size": 2, "seq_len": 512,
                                                       "new_tokens": 32, "attn_implementation": attn}))
        for precision, optimizer, attn, ckpt in (
            ("bf16-true", "adamw", "sdpa", False),
            ("bf16-mixed", "adamw", "sdpa", False),
            ("32-true", "sgd", "eager", False),
            ("bf16-true", "adamw", "eager", True),
            ("bf16-mixed", "sgd", "sdpa", True),
        ):
            cases.append(Case(family=family, workload={
                "task": "training", "precision": precision, "optimizer": optimizer, "attn_implementation": attn,
                "gradient_checkpointing": ckpt, "batch_size": 2, "seq_len": 512}))
    cases.append(Case(family="llama", workload={"task": "training", "method": "lora", "precision": "bf16-mixed",
                                                "batch_size": 2, "seq_len": 512, "lora_targets": "all-linear"}))
    cases.append(Case(family="qwen2", workload={"task": "training", "method": "lora", "precision": "bf16-true",
                                                "batch_size": 2, "seq_len": 512, "gradient_checkpointing": True}))
    for family, (batch, seq) in LAYER_KIND_FAMILIES.items():
        shape = {"batch_size": batch, "seq_len": seq, "attn_implementation": "sdpa"}
        cases.append(Case(family=family, workload={"task": "inference", "new_tokens": 32, **shape}))
        cases.append(Case(family=family, workload={"task": "training", "precision": "bf16-true", "optimizer": "adamw",
                                                   **shape}))
        cases.append(Case(family=family, workload={"task": "training", "precision": "bf16-mixed", "optimizer": "adamw",
                                                   "gradient_checkpointing": True, **shape}))
    # Real scale (each trace a few seconds).
    cases.append(Case(family="llama-2-7b", workload={"task": "inference", "batch_size": 4, "seq_len": 2048,
                                                     "new_tokens": 64}))
    cases.append(Case(family="llama-2-7b", workload={"task": "training", "precision": "bf16-true",
                                                     "batch_size": 1, "seq_len": 1024}))
    cases.append(Case(family="llama-2-7b", workload={"task": "training", "method": "lora", "precision": "bf16-mixed",
                                                     "batch_size": 4, "seq_len": 1024,
                                                     "gradient_checkpointing": True}))
    return tuple(cases)


#: Cases the analytic model misses by more than TOLERANCE, with the error measured against the
#: trace when recorded and the reason. The test holds them within |gap| + 2 points.
KNOWN_GAPS: Mapping[str, tuple[float, str]] = {
    "gemma2-training-bf16-mixed-sdpa-sgd-ckpt-b2s512": (
        -0.053, "gemma2 under autocast with checkpointing: the softcapped logits' backward in mixed "
                "precision, about 9 MiB short"),
}


def _with_gaps(cases: tuple[Case, ...]) -> tuple[Case, ...]:
    out = []
    for case in cases:
        gap = KNOWN_GAPS.get(case.id)
        out.append(Case(family=case.family, workload=case.workload, known_gap=gap[0], reason=gap[1]) if gap else case)
    return tuple(out)


CASES: tuple[Case, ...] = _with_gaps(_cases())


@dataclass(frozen=True, kw_only=True)
class Comparison:
    case: Case
    analytic_bytes: int
    traced_bytes: int
    analytic_phase: str
    traced_phase: str
    traced_breakdown: Mapping[str, int] = field(default_factory=dict)

    @property
    def error(self) -> float:
        return self.analytic_bytes / self.traced_bytes - 1


def compare(case: Case) -> Comparison:
    """Analytic vs traced peak for one case (needs the torch extra)."""
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.runtime.trace import trace_workload
    from hf_gpu_estimator.workload import make_workload

    config = dict(FAMILIES[case.family])
    spec = inspect_model(config)
    workload = make_workload(**case.workload)
    analytic = estimate_memory(spec, workload)
    traced = trace_workload(config, workload)
    return Comparison(
        case=case, analytic_bytes=analytic.allocated_peak_bytes - analytic.components.get("workspace", 0),
        traced_bytes=traced.peak_bytes, analytic_phase=analytic.phase_at_peak, traced_phase=traced.phase_at_peak,
        traced_breakdown=dict(traced.breakdown_at_peak),
    )  # fmt: skip
