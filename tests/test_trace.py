"""Exact mode (runtime/trace/) on tiny configs: invariants that hold for the real implementation."""

from __future__ import annotations

import math

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_gpu_estimator.errors import TraceError  # noqa: E402
from hf_gpu_estimator.runtime.trace import trace_workload  # noqa: E402
from hf_gpu_estimator.workload import make_workload  # noqa: E402

_DECODER = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=512, max_position_embeddings=1024)
CONFIGS = {
    "llama": dict(model_type="llama", **_DECODER),
    "qwen2": dict(model_type="qwen2", **_DECODER),
    "mistral": dict(model_type="mistral", sliding_window=64, **_DECODER),
    "mixtral": dict(model_type="mixtral", num_local_experts=4, num_experts_per_tok=2, **_DECODER),
    "gemma2": dict(model_type="gemma2", head_dim=16, query_pre_attn_scalar=16, sliding_window=64,
                   attn_logit_softcapping=50.0, final_logit_softcapping=30.0, **_DECODER),
    "gpt2": dict(model_type="gpt2", n_embd=64, n_layer=2, n_head=4, n_positions=1024, vocab_size=512),
}
INFERENCE = dict(task="inference", batch_size=2, seq_len=128, new_tokens=8, dtype="bfloat16")
TRAINING = dict(task="training", batch_size=2, seq_len=128, precision="bf16-true")


def _rounded_param_bytes(config: dict, dtype_bytes: int) -> int:
    """Parameter bytes as the CUDA allocator holds them: each tensor rounded up to 512 bytes."""
    from hf_gpu_estimator.runtime.build import make_config
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        model = AutoModelForCausalLM.from_config(make_config(config))
    return sum(math.ceil(p.numel() * dtype_bytes / 512) * 512 for p in model.parameters())


@pytest.mark.parametrize("name", list(CONFIGS), ids=list(CONFIGS))
def test_training_peak_exceeds_inference_peak(name: str) -> None:
    inference = trace_workload(CONFIGS[name], make_workload(**INFERENCE))
    training = trace_workload(CONFIGS[name], make_workload(**TRAINING))
    assert set(inference.phase_peaks) == {"prefill", "decode"}
    assert {"forward@1", "backward@1", "optimizer_step@1", "forward@2", "backward@2", "optimizer_step@2"} <= set(
        training.phase_peaks
    )
    assert training.peak_bytes > inference.peak_bytes
    assert inference.peak_bytes == max(inference.phase_peaks.values())
    assert training.peak_bytes == max(training.phase_peaks.values())
    assert sum(training.breakdown_at_peak.values()) == training.peak_bytes
    # Step 2 runs with the AdamW states resident: 2 states of the bf16 parameters' size.
    assert training.phase_peaks["forward@2"] > training.phase_peaks["forward@1"]
    assert training.optimizer_state_bytes == pytest.approx(2 * training.breakdown_at_peak["params"], rel=0.01)


@pytest.mark.parametrize("name", ["llama", "gpt2", "gemma2"])
def test_param_bytes_equal_count_times_dtype(name: str) -> None:
    result = trace_workload(CONFIGS[name], make_workload(**INFERENCE))
    assert result.breakdown_at_peak["params"] == _rounded_param_bytes(CONFIGS[name], 2)
    mixed = trace_workload(CONFIGS[name], make_workload(**{**TRAINING, "precision": "bf16-mixed"}))
    assert mixed.weight_dtype == "float32"
    assert mixed.breakdown_at_peak["params"] == _rounded_param_bytes(CONFIGS[name], 4)


def _activation_peak(result) -> int:  # type: ignore[no-untyped-def]
    return max(v for k, v in result.phase_peaks.items() if k.startswith(("forward", "backward")))


@pytest.mark.parametrize("name", ["llama", "gpt2"])
def test_checkpointing_lowers_peak(name: str) -> None:
    kw = {**TRAINING, "batch_size": 4, "seq_len": 256}
    plain = trace_workload(CONFIGS[name], make_workload(**kw))
    checkpointed = trace_workload(CONFIGS[name], make_workload(**kw, gradient_checkpointing=True))
    assert _activation_peak(checkpointed) < _activation_peak(plain)
    assert checkpointed.phase_peaks["forward@1"] < plain.phase_peaks["forward@1"]


@pytest.mark.parametrize("name", ["mistral", "gpt2"])
def test_eager_attention_at_least_sdpa(name: str) -> None:
    kw = {**TRAINING, "seq_len": 256}
    sdpa = trace_workload(CONFIGS[name], make_workload(**kw))
    eager = trace_workload(CONFIGS[name], make_workload(**kw, attn_implementation="eager"))
    assert eager.peak_bytes >= sdpa.peak_bytes
    # The scores [batch, heads, seq, seq] are materialized by eager only.
    assert eager.phase_peaks["forward@1"] > sdpa.phase_peaks["forward@1"]
    assert eager.attention_backends == {}
    assert sdpa.attention_backends


def test_sdpa_takes_cuda_kernels() -> None:
    bf16 = trace_workload(CONFIGS["llama"], make_workload(**TRAINING))
    assert set(bf16.attention_backends) == {"flash"}
    fp32 = trace_workload(CONFIGS["llama"], make_workload(**{**TRAINING, "precision": "32-true"}))
    # float32 rules flash out; GQA without a mask (enable_gqa) rules memory-efficient out: math.
    assert set(fp32.attention_backends) == {"math"}
    mha = dict(CONFIGS["llama"], num_key_value_heads=4)
    assert set(trace_workload(mha, make_workload(**{**TRAINING, "precision": "32-true"})).attention_backends) == {
        "efficient"
    }


def test_mixed_precision_keeps_fp32_weights_and_upcasts_logits() -> None:
    config = dict(CONFIGS["llama"], vocab_size=4096)
    true = trace_workload(config, make_workload(**TRAINING))
    mixed = trace_workload(config, make_workload(**{**TRAINING, "precision": "bf16-mixed"}))
    assert mixed.breakdown_at_peak["params"] == pytest.approx(2 * true.breakdown_at_peak["params"], rel=0.02)
    assert mixed.peak_bytes > true.peak_bytes
    # The loss upcasts logits to float32: the forward holds at least batch*seq*vocab*(2+4) bytes.
    logits_bytes = 2 * 128 * 4096 * (2 + 4)
    assert true.phase_peaks["forward@1"] - true.breakdown_at_peak["params"] > logits_bytes


def test_decode_cache_counts_all_tokens() -> None:
    short = trace_workload(CONFIGS["llama"], make_workload(**{**INFERENCE, "new_tokens": 2}))
    long = trace_workload(CONFIGS["llama"], make_workload(**{**INFERENCE, "new_tokens": 65}))
    # K and V, 2 layers, 2 KV heads of 16 dims, bf16: 512 bytes per token per sequence.
    per_token = 2 * 2 * 2 * 16 * 2 * INFERENCE["batch_size"]
    assert long.kv_cache_bytes - short.kv_cache_bytes == pytest.approx(63 * per_token, rel=0.05)
    assert long.phase_peaks["decode"] > short.phase_peaks["decode"]


def test_lora_trains_few_parameters() -> None:
    lora = trace_workload(CONFIGS["llama"], make_workload(**TRAINING, method="lora", lora_rank=4))
    full = trace_workload(CONFIGS["llama"], make_workload(**TRAINING))
    assert 0 < lora.trainable_parameters < full.trainable_parameters / 5
    assert lora.optimizer_state_bytes < full.optimizer_state_bytes / 5
    assert lora.peak_bytes < full.peak_bytes


def test_qlora_falls_back_to_bf16_base() -> None:
    result = trace_workload(CONFIGS["llama"], make_workload(**TRAINING, method="qlora"))
    assert any("qlora" in f for f in result.fallbacks)
    assert result.weight_dtype == "bfloat16"


def test_optimizers() -> None:
    sgd = trace_workload(CONFIGS["llama"], make_workload(**TRAINING, optimizer="sgd"))
    assert sgd.optimizer_state_bytes == 0
    adafactor = trace_workload(CONFIGS["llama"], make_workload(**TRAINING, optimizer="adafactor"))
    adamw = trace_workload(CONFIGS["llama"], make_workload(**TRAINING))
    assert 0 < adafactor.optimizer_state_bytes < adamw.optimizer_state_bytes
    with pytest.raises(TraceError, match="adamw-8bit"):
        trace_workload(CONFIGS["llama"], make_workload(**TRAINING, optimizer="adamw-8bit"))


def test_gradient_accumulation_phases() -> None:
    result = trace_workload(CONFIGS["llama"], make_workload(**TRAINING, gradient_accumulation_steps=2))
    assert {"forward@1.1", "forward@1.2", "backward@2.2", "optimizer_step@2"} <= set(result.phase_peaks)


def test_unknown_architecture_raises() -> None:
    with pytest.raises(TraceError, match="no-such-model"):
        trace_workload({"model_type": "no-such-model", "hidden_size": 8}, make_workload(**INFERENCE))
    with pytest.raises(TraceError, match="model_type"):
        trace_workload({"hidden_size": 8}, make_workload(**INFERENCE))


def test_result_is_json_serializable() -> None:
    import json

    result = trace_workload(CONFIGS["mixtral"], make_workload(**INFERENCE))
    data = json.loads(json.dumps(result.to_dict()))
    assert data["peak_bytes"] == result.peak_bytes
    assert data["top_holders"]


def test_dropout_saves_a_bool_mask_as_on_cuda() -> None:
    """CPU's F.dropout saves an fp32 noise tensor; CUDA's fused native_dropout a bool mask (exact mode follows CUDA)."""
    from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics

    saved: list[torch.dtype] = []
    x = torch.ones(8, 64, requires_grad=True)
    with torch.autograd.graph.saved_tensors_hooks(lambda t: saved.append(t.dtype) or t, lambda t: t), CudaSemantics():
        torch.nn.functional.dropout(x * 1.0, 0.1, training=True)
        torch.nn.functional.dropout(x * 1.0, 0.1, training=False)
    assert saved == [torch.bool]


def test_cross_entropy_under_autocast_runs_as_cuda_does() -> None:
    """CUDA autocast has no entry for cross_entropy_loss: its composite runs log_softmax in the input's dtype and
    nll_loss (autocast's fp32 list) on an fp32 copy, which nll's backward keeps (exact mode follows CUDA)."""
    from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics

    saved: list[torch.dtype] = []  # of the [tokens, vocab] tensors (nll also keeps a 0-dim total weight)
    logits = torch.randn(8, 32, requires_grad=True)
    target = torch.randint(0, 32, (8,))
    semantics = CudaSemantics()
    with torch.autograd.graph.saved_tensors_hooks(lambda t: (t.dim() == 2 and saved.append(t.dtype)) or t,
                                                  lambda t: t), semantics, semantics.autocast(torch.bfloat16, cache=False):
        loss = torch.nn.CrossEntropyLoss()(logits.to(torch.bfloat16), target)
    assert loss.dtype == torch.float32
    assert sorted(str(d) for d in saved) == ["torch.bfloat16", "torch.float32"]
    reference = torch.nn.functional.cross_entropy(logits.to(torch.bfloat16).float(), target)
    assert loss.item() == pytest.approx(reference.item(), abs=0.05)


def test_deepcopy_of_a_fake_constant() -> None:
    """torch's Tensor.__deepcopy__ fails on a fake tensor made from real data (a CPU constant behind a meta
    storage); under exact mode it is a fresh fake clone (dory deep-copies its looped section's cache layers)."""
    import copy

    from torch._subclasses.fake_tensor import FakeTensorMode

    from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics

    with FakeTensorMode(), CudaSemantics():
        t = torch.tensor([3, 4], dtype=torch.long)
        memo: dict[int, object] = {}
        out = copy.deepcopy(t, memo)
        assert out is not t and out.shape == t.shape and out.dtype == t.dtype
        assert copy.deepcopy(t, memo) is out
        empty = torch.empty(4, 5)
        assert copy.deepcopy(empty).shape == (4, 5)  # the ordinary path, unchanged


# Real-values fallback: a data-dependent operator (.item(), nonzero) has no answer on fake tensors.
_JETMOE = dict(model_type="jetmoe", hidden_size=64, num_hidden_layers=2, num_key_value_heads=4, kv_channels=16,
               intermediate_size=128, num_local_experts=4, num_experts_per_tok=2, vocab_size=512)
_SMALL = dict(batch_size=1, seq_len=32)


@pytest.mark.parametrize("options", [dict(task="inference", new_tokens=4, dtype="bfloat16"),
                                     dict(task="training", precision="bf16-true")], ids=["inference", "training"])
def test_data_dependent_model_traced_with_real_values(options: dict) -> None:
    """JetMoE's router calls .tolist() on its expert counts: the fake run fails, the real-values run answers."""
    from hf_gpu_estimator.runtime.trace import trace_once

    workload = make_workload(**_SMALL, **options)
    with pytest.raises(TraceError, match="DataDependentOutputException"):
        trace_once(_JETMOE, workload, init="skip", use_cache=False, real_values=False)
    result = trace_workload(_JETMOE, workload)
    assert any("real values (_local_scalar_dense" in f and "seed 0" in f for f in result.fallbacks)
    assert result.breakdown_at_peak["params"] == _rounded_param_bytes(_JETMOE, 2)
    assert sum(result.breakdown_at_peak.values()) == result.peak_bytes
    # Seeded: a re-trace routes the same tokens to the same experts.
    assert trace_workload(_JETMOE, workload).peak_bytes == result.peak_bytes


@pytest.mark.parametrize("options", [dict(task="inference", new_tokens=4, dtype="bfloat16"),
                                     dict(task="training", precision="bf16-true")], ids=["inference", "training"])
def test_real_values_keep_the_fake_accounting(options: dict) -> None:
    """On a model without data-dependent operators the real twins change no recorded figure."""
    from hf_gpu_estimator.runtime.trace import trace_once

    workload = make_workload(**_SMALL, **options)
    fake = trace_once(CONFIGS["mixtral"], workload, init="skip", use_cache=False, real_values=False)
    real = trace_once(CONFIGS["mixtral"], workload, init="skip", use_cache=False, real_values=True)
    for name in ("peak_bytes", "phase_at_peak", "phase_peaks", "breakdown_at_peak", "kv_cache_bytes",
                 "optimizer_state_bytes", "attention_backends"):
        assert getattr(real, name) == getattr(fake, name), name


def test_real_values_refused_past_the_host_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    from hf_gpu_estimator.runtime.trace import real_values

    monkeypatch.setattr(real_values, "REAL_VALUES_MAX_BYTES", 1 << 10)
    with pytest.raises(TraceError, match="needs real values .* do not fit"):
        trace_workload(_JETMOE, make_workload(**_SMALL, task="inference", new_tokens=4, dtype="bfloat16"))


def test_xlm_decodes_with_the_whole_sequence() -> None:
    """XLM's generate feeds the whole sequence each step (its forward drops the cached positions); its
    length check (.item()) takes the real-values retry."""
    config = dict(model_type="xlm", emb_dim=64, n_layers=2, n_heads=4, vocab_size=512, max_position_embeddings=256)
    result = trace_workload(config, make_workload(**_SMALL, task="inference", new_tokens=4, dtype="bfloat16"))
    assert set(result.phase_peaks) == {"prefill", "decode"}
    assert any("real values" in f for f in result.fallbacks)


_DBRX = dict(model_type="dbrx", d_model=64, n_heads=4, n_layers=2, max_seq_len=256, vocab_size=512,
             attn_config=dict(kv_n_heads=2, rope_theta=500000, clip_qkv=8),
             ffn_config=dict(ffn_hidden_size=128, moe_num_experts=4, moe_top_k=2))


def test_no_grad_views_of_parameters_as_module_inputs() -> None:
    """DBRX's experts loop (nonzero, so real values) slices each expert's weights and passes the slices to a
    submodule; in the no-grad inference forward the slices require a gradient but have no autograd node, which
    torch's ModTracker cannot hook ("Expected gradient function to be set"): they are left out of its hook."""
    result = trace_workload(_DBRX, make_workload(**_SMALL, task="inference", new_tokens=4, dtype="bfloat16"))
    assert set(result.phase_peaks) == {"prefill", "decode"}
    assert any("real values (" in f and "nonzero" in f for f in result.fallbacks)
    assert result.breakdown_at_peak["params"] == _rounded_param_bytes(_DBRX, 2)


def test_real_twin_of_flash_attention_with_dropout() -> None:
    """X-MOD's language adapters pick rows by a boolean mask (real values); in training its attention keeps
    dropout 0.1, and CUDA's flash kernel takes dropout where the CPU flash kernel refuses it: the twin of the
    flash output comes from the math kernel."""
    from hf_gpu_estimator.runtime.trace import trace_once

    config = dict(model_type="xmod", hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                  intermediate_size=128, vocab_size=512, max_position_embeddings=256, is_decoder=True,
                  attention_probs_dropout_prob=0.1)
    workload = make_workload(**_SMALL, task="training", precision="bf16-true")
    with pytest.raises(TraceError, match="DataDependent|DynamicOutputShape"):
        trace_once(config, workload, init="skip", use_cache=False, real_values=False)
    result = trace_workload(config, workload)
    assert result.attention_backends.get("flash"), result.attention_backends
    assert any("real values (" in f for f in result.fallbacks)
