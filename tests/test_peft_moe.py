"""LoRA and bitsandbytes on transformers-5 MoE models: fused expert parameters as peft and transformers treat them.

References: peft 0.21.2 ``get_peft_model`` on the meta-device model (the parameter count, exact) and exact-mode
traces of the real peft forward and backward (the memory, tolerance below); bitsandbytes' ``nn.Linear``-only
replacement from transformers 5.25's ``integrations/bitsandbytes.py`` (bitsandbytes issue #1849).
"""

from __future__ import annotations

import warnings

import pytest

from hf_gpu_estimator import estimate
from hf_gpu_estimator.errors import ConflictingOptionsError
from hf_gpu_estimator.sources.catalog import lookup

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")
peft = pytest.importorskip("peft")

SMALL = dict(num_hidden_layers=3, hidden_size=256, intermediate_size=512, moe_intermediate_size=128,
             n_routed_experts=8, num_experts=8, num_local_experts=8, first_k_dense_replace=1, vocab_size=1000,
             layer_types=None, head_dim=32, num_attention_heads=8, num_key_value_heads=4)


def _small(model_type: str) -> dict:
    """SMALL's fields the type's config has (a stray first_k_dense_replace would make the generic reader take a
    dense first layer that OLMoE does not build)."""
    known = transformers.AutoConfig.for_model(model_type).to_dict()
    return {k: v for k, v in SMALL.items() if k in known}


def _config(model_type: str) -> dict:
    return transformers.AutoConfig.for_model(model_type, **_small(model_type)).to_dict()


def _peft_trainable(config: dict, targets: str | list[str]) -> int:
    cfg = transformers.AutoConfig.for_model(config["model_type"], **_small(config["model_type"]))
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # peft's rank_pattern notes and transformers' deprecations
        model = peft.get_peft_model(model, peft.LoraConfig(r=8, target_modules=targets))
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@pytest.mark.parametrize("model_type", ["qwen3_moe", "glm4_moe", "deepseek_v3", "mixtral", "olmoe", "qwen2_moe"])
@pytest.mark.parametrize("targets", ["all-linear", "q_proj,v_proj,gate_proj,up_proj,down_proj"])
def test_lora_parameters_match_peft(model_type: str, targets: str) -> None:
    """peft converts the transformers-4 expert names into targets on the fused stacks (gate_up_proj at rank 2r)
    and the router weight, and the dense and shared-expert MLPs lose theirs: the count is peft's, exactly."""
    config = _config(model_type)
    if model_type == "mixtral" and "gate_proj" in targets:
        targets = "q_proj,v_proj,w1,w2,w3"
    ours = estimate(config, task="training", method="lora", lora_rank=8, lora_targets=targets)
    theirs = _peft_trainable(config, "all-linear" if targets == "all-linear" else targets.split(","))
    assert ours.to_dict()["model"]["trainable_parameters"] == theirs


@pytest.mark.parametrize("targets", ["gate", "q_proj,gate"])
def test_router_alone_gets_its_adapter(targets: str) -> None:
    """The router's ``gate`` without any expert name still becomes peft's ``gate.weight`` parameter target."""
    config = _config("qwen3_moe")
    ours = estimate(config, task="training", method="lora", lora_rank=8, lora_targets=targets)
    assert ours.to_dict()["model"]["trainable_parameters"] == _peft_trainable(config, targets.split(","))


def test_half_a_fused_pair_is_refused_as_peft_refuses_it() -> None:
    with pytest.raises(ConflictingOptionsError, match="gate_up_proj"):
        estimate(_config("qwen3_moe"), task="training", method="lora", lora_targets="q_proj,gate_proj")


@pytest.mark.parametrize("ckpt", [False, True], ids=["saved", "checkpointed"])
def test_expert_stacks_against_the_trace(ckpt: bool) -> None:
    """Each MoE layer's W + B A (the whole stack, in the weight dtype) is kept for backward; with checkpointing one
    layer's is rebuilt. What all-linear adds over q_proj,v_proj, analytic against traced: within 10 %."""
    config = transformers.AutoConfig.for_model(
        "qwen3_moe", num_hidden_layers=2, hidden_size=512, intermediate_size=1024, moe_intermediate_size=512,
        num_experts=32, num_experts_per_tok=4, vocab_size=4096, head_dim=64, num_attention_heads=8,
        num_key_value_heads=4).to_dict()
    work = dict(task="training", method="lora", lora_rank=16, batch_size=2, seq_len=256, precision="bf16-true",
                gradient_checkpointing=ckpt)

    def added(mode: str) -> int:
        peaks = [estimate(config, mode=mode, lora_targets=t, **work).memory.allocated_peak_bytes
                 for t in ("all-linear", "q_proj,v_proj")]
        return peaks[0] - peaks[1]

    traced, ours = added("exact"), added("analytic")
    assert traced > 64 * 2**20  # the stacks dominate: 2 layers x 48 MiB without checkpointing
    assert ours == pytest.approx(traced, rel=0.10)


def test_bitsandbytes_leaves_fused_experts_unquantized() -> None:
    """QLoRA on Qwen3-30B-A3B through transformers: the 29.0e9 routed-expert parameters stay bf16 (bitsandbytes
    replaces nn.Linear only); a serving engine's loader quantizes them."""
    spec = lookup("Qwen/Qwen3-30B-A3B")
    experts = spec.parameters.by_role["experts"]
    est = estimate(spec, task="training", method="qlora", lora_targets="q_proj,v_proj", batch_size=1, seq_len=512)
    weights = est.memory.components["weights"]
    assert weights > experts * 2
    assert any("#1849" in t.formula for t in est.memory.terms if t.component == "weights")
    # Llama 4's experts are swapped for per-expert linears first (MODULES_TO_PATCH_FOR_QUANTIZATION)
    from hf_gpu_estimator.architectures.generic import bnb_unfuses_experts, fused_experts

    assert fused_experts("llama4_text") and bnb_unfuses_experts("llama4_text")
    from hf_gpu_estimator.planner.engines._capacity import weights_per_device
    from hf_gpu_estimator.workload import make_workload

    served = weights_per_device(spec, make_workload(quantization="nf4"))
    assert served < experts * 2 / 3


def test_dropout_on_converted_targets_is_refused_as_peft_refuses_it() -> None:
    """peft's ParamWrapper raises "does not work with lora_dropout != 0" on the expert and router parameters; LoRA
    on the attention alone keeps its dropout."""
    config = _config("qwen3_moe")
    with pytest.raises(ConflictingOptionsError, match="lora_dropout"):
        estimate(config, task="training", method="lora", lora_targets="all-linear", lora_dropout=0.05)
    estimate(config, task="training", method="lora", lora_targets="q_proj,v_proj", lora_dropout=0.05)


def test_frozen_experts_keep_no_matmul_inputs() -> None:
    """LoRA off the experts: their matmuls take no weight gradient, so neither the gathered input nor the down
    projection's input is saved. Analytic against traced at 2 x 2048 tokens: within 5 % (15 % high when counted)."""
    config = transformers.AutoConfig.for_model(
        "qwen3_moe", num_hidden_layers=2, hidden_size=512, intermediate_size=1024, moe_intermediate_size=512,
        num_experts=32, num_experts_per_tok=4, vocab_size=4096, head_dim=64, num_attention_heads=8,
        num_key_value_heads=4).to_dict()
    work = dict(task="training", method="lora", lora_rank=16, batch_size=2, seq_len=2048, precision="bf16-true",
                lora_targets="q_proj,v_proj")
    traced = estimate(config, mode="exact", **work).memory.allocated_peak_bytes
    ours = estimate(config, mode="analytic", **work).memory.allocated_peak_bytes
    assert ours == pytest.approx(traced, rel=0.05)


@pytest.mark.parametrize("targets", ["all-linear", "q_proj,gate_proj,up_proj,down_proj,gate"])
def test_a_live_converted_peft_model_keeps_its_expert_targets(targets: str) -> None:
    """After get_peft_model the expert and router names sit in target_parameters; the live-model reader maps them
    back, so the estimate counts the expert LoRA as peft does."""
    from hf_gpu_estimator.integrations._core import describe_model

    cfg = transformers.AutoConfig.for_model("qwen3_moe", **_small("qwen3_moe"))
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model = peft.get_peft_model(model, peft.LoraConfig(
            r=8, target_modules="all-linear" if targets == "all-linear" else targets.split(",")))
    facts = describe_model(model)
    est = estimate(facts.source, task="training", **facts.options)
    assert est.to_dict()["model"]["trainable_parameters"] == facts.trainable_parameters


def test_dequantized_weight_is_a_quantized_one() -> None:
    """The prefill's dequantized weight is the largest 4-bit linear: not Mixtral's 16-bit fused experts under
    transformers 5 (32 MiB, q_proj), the expert weight under transformers 4 where bitsandbytes quantized them."""
    spec = lookup("mistralai/Mixtral-8x7B-Instruct-v0.1")

    def dequant(framework: str) -> int:
        est = estimate(spec, quantization="nf4", seq_len=512, new_tokens=16, framework=framework)
        return next(t.bytes for t in est.memory.terms if t.name == "dequantized layer weight")

    assert dequant("hf") == 4096 * 4096 * 2 < dequant("hf-4.41")
