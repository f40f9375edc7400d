"""The unsloth profile's memory terms (frameworks.py ``unsloth``, memory/recipe.py ``fast_lora_layer``, ``loss_terms``
for ``cce`` and ``fast-ce``, ``loss_constant_bytes``; memory/model.py's offloaded checkpoint inputs), each against the
tensors unsloth 2024.12.4 / unsloth_zoo 2024.12.2 / cut_cross_entropy 24.12.3 allocate at Llama 3.1 8B's shapes, and
the whole estimate against the context lengths Unsloth's README (000252c) publishes per card."""

from __future__ import annotations

import argparse
import warnings

import pytest

from hf_gpu_estimator.cli.workload_flags import checkpointing
from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
from hf_gpu_estimator.memory.model import estimate_memory
from hf_gpu_estimator.memory.recipe import (
    CCE_ROW_FORWARD,
    CCE_ROW_SAVED,
    fast_lora_layer,
    loss_constant_bytes,
    loss_terms,
)
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

LLAMA_8B = "unsloth/Meta-Llama-3.1-8B-Instruct-bnb-4bit"  # H 4096, I 14336, 32 heads, 8 kv heads, head_dim 128
SEVEN = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
H, I, A, G, HD, V, L = 4096, 14336, 32, 8, 128, 128256, 32


@pytest.fixture(scope="module")
def llama():
    return lookup(LLAMA_8B)


def unsloth(**options):
    base = {"task": "training", "method": "qlora", "quantization": "nf4", "framework": "unsloth", "batch_size": 1,
            "seq_len": 4096, "precision": "bf16-mixed", "optimizer": "adamw-8bit", "lora_rank": 32,
            "lora_targets": SEVEN, "attn_implementation": "flash_attention_2", "gradient_checkpointing": "unsloth"}
    return make_workload(**{**base, **options})


def test_fast_lora_layer_saves_what_the_kernels_save(llama):
    """Per token, bf16: two Fast_RMS_Layernorm inputs and fp32 r; LoRA_QKV's X; flash-attn's q, k, v (kv heads),
    output and fp32 lse per head; LoRA_MLP's X, e and g. Nothing rank-r, no SwiGLU product, no RoPE copy."""
    layer = fast_lora_layer(llama.architecture, unsloth())
    norms = 2 * (2 * H + 4)
    attention = 2 * H + 2 * (A * HD + G * HD + G * HD + A * HD) + 4 * A
    mlp = 2 * H + 2 * 2 * I
    assert layer.saved == norms + attention + mlp == 110_728
    assert layer.checkpoint == 2 * H  # the layer input, saved by the first norm
    assert layer.largest == layer.saved - 2 * H  # what the recompute adds beside the reloaded input


def test_fast_lora_mlp_backward_holds_two_intermediate_wide_tensors(llama):
    """LoRA_MLP.backward: dY (hidden) and DW = matmul_lora(dY, downW.t()), whose ``out += (X @ A) @ (s * B)``
    allocates a second intermediate-wide tensor before the add; the SwiGLU backward then works in place."""
    assert fast_lora_layer(llama.architecture, unsloth()).backward_transient == 2 * H + 2 * 2 * I


def test_xformers_path_saves_k_and_v_at_every_query_head(llama):
    """Without flash-attn, LlamaAttention_fast_forward reshapes K and V to every query head before xformers."""
    flash = fast_lora_layer(llama.architecture, unsloth())
    xformers = fast_lora_layer(llama.architecture, unsloth(attn_implementation="sdpa"))
    assert xformers.saved - flash.saved == 2 * 2 * (A - G) * HD


@pytest.mark.parametrize("options", [{"lora_dropout": 0.05}, {"lora_targets": ["q_proj", "v_proj"]},
                                     {"method": "full", "quantization": "none", "gradient_checkpointing": True},
                                     {"framework": "hf", "gradient_checkpointing": True}],
                         ids=["dropout", "two-targets", "full", "hf"])
def test_fast_lora_layer_only_where_unsloth_patches_the_layer(llama, options):
    """patch_peft_model swaps the kernels in for dropout 0 and all of q/k/v, gate/up/down; else peft's modules."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # LoRA options given to a full finetune
        work = unsloth(**options)
    assert fast_lora_layer(llama.architecture, work) is None


def test_fast_lora_layer_leaves_other_architectures_to_transformers():
    gemma = lookup("google/gemma-3-12b-it").architecture  # GELU MLP, sliding windows
    assert fast_lora_layer(gemma, unsloth(method="lora", quantization="none")) is None


def test_offloaded_checkpointing_keeps_one_layer_input(llama):
    """Unsloth_Offloaded_Gradient_Checkpointer saves ``hidden_states.to("cpu")``: no layer input stays on the
    device through forward; backward brings one back (T x H x 2 B) for the layer it recomputes. Plain
    checkpointing (use_gradient_checkpointing=True, torch.utils.checkpoint) keeps all 32, and the embedding
    output."""
    T = 4096
    offloaded = estimate_memory(llama, unsloth())
    plain = estimate_memory(llama, unsloth(gradient_checkpointing=True))
    at = {m.phase: m.components.get("activations", 0) for m in offloaded.moments}
    plain_at = {m.phase: m.components.get("activations", 0) for m in plain.moments}
    assert at["backward (top layer)"] == T * 2 * H
    assert plain_at["backward (top layer)"] == T * 2 * H * L + T * 2 * H


def test_cce_loss_keeps_no_logits(llama):
    """Cut Cross Entropy: lse (fp32) and the int32 valid offsets saved; nonzero's int64 pairs and the fp32 negative
    dot while it runs; the head input's gradient ``de`` in backward. Per step: the fp32 mean logits and ``dc =
    zeros_like(c)``, the size of the head, allocated for a frozen head too."""
    arch = llama.architecture
    work = unsloth()
    assert work.loss == "cce"
    assert (CCE_ROW_SAVED, CCE_ROW_FORWARD) == (4 + 8, 16 + 4)
    assert loss_terms(arch, work) == (12, 12 + 20, 12 + 2 * H)
    assert loss_constant_bytes(arch, work) == (4 * V, 4 * V + 2 * V * H)
    assert loss_constant_bytes(arch, unsloth(loss="fast-ce")) == (0, 0)


def test_cce_head_gradient_is_in_the_loss_backward(llama):
    """From the loss forward to its backward: per token the transients give way to ``de``; per step ``dc``."""
    T = 4096
    at = {m.phase: m.components.get("transient", 0) for m in estimate_memory(llama, unsloth()).moments}
    assert at["backward (loss)"] - at["forward (loss)"] == T * (12 + 2 * H - 32) + 2 * V * H


@pytest.mark.parametrize(("precision", "upcast"), [("bf16-mixed", 4 * V), ("bf16-true", 0)])
def test_fast_ce_keeps_16_bit_logits_and_accelerates_fp32_copy(llama, precision, upcast):
    """fast_cross_entropy_loss saves the 16-bit logits and one fp32 log-sum-exp a row (two 65536-wide chunks for
    128,256) and writes the gradient into the logits; under autocast accelerate upcasts the returned logits."""
    work = unsloth(loss="fast-ce", precision=precision)
    assert loss_terms(llama.architecture, work) == (2 * V + 4, 2 * V + 4 + 4 + 4 * 2 + upcast, 2 * V + 4)


def test_unsloth_checkpointing_is_typed_and_framework_bound():
    assert unsloth().activation_offloading and unsloth().gradient_checkpointing
    plain = unsloth(gradient_checkpointing=True)  # use_gradient_checkpointing=True: torch.utils.checkpoint, reentrant
    assert not plain.activation_offloading and plain.use_reentrant
    with pytest.raises(ConflictingOptionsError) as info:
        unsloth(framework="trl")
    assert "gradient_checkpointing" in str(info.value)
    with pytest.raises(InvalidArgumentError):
        unsloth(gradient_checkpointing="sometimes")
    assert checkpointing("Unsloth") == "unsloth" and checkpointing("on") is True and checkpointing("off") is False
    with pytest.raises(argparse.ArgumentTypeError):
        checkpointing("sometimes")


#: Unsloth's README (000252c; unsloth.ai/blog/llama3-3): the longest context of Llama 3.1 8B and Llama 3.3 70B QLoRA
#: (rank 32, all seven projections, batch 1) per card with Unsloth + Cut Cross Entropy. The cells lie on one line per
#: model (8B: 4,718.9 tokens per GB; 70B: 2,415.1), a fit through their runs rather than a run per cell. Estimated device
#: total at Unsloth's length over the card's usable memory, measured: 8B 1.064 (8 GB), 0.991 (12), 0.962 (16), 0.926
#: (24), 0.904 (40), 0.961 (48), 0.889 (80); 70B 1.108 (48), 0.976 (80): within 12 % of the card on every cell.
README_CELLS = [(LLAMA_8B, "RTX-3070", 2972), (LLAMA_8B, "RTX-3060-12GB", 21848), (LLAMA_8B, "RTX-4060-Ti-16GB", 40724),
                (LLAMA_8B, "RTX-4090", 78475), (LLAMA_8B, "A100-40GB-SXM", 153977), (LLAMA_8B, "L40S", 191728),
                (LLAMA_8B, "A100-80GB-SXM", 342733), ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "L40S", 12106),
                ("unsloth/Llama-3.3-70B-Instruct-bnb-4bit", "A100-80GB-SXM", 89389)]


@pytest.mark.parametrize(("model", "gpu", "tokens"), README_CELLS, ids=[f"{m[8:20]}-{g}" for m, g, _ in README_CELLS])
def test_unsloth_readme_context_lengths_land_at_the_card(model, gpu, tokens):
    from hf_gpu_estimator import estimate

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        verdict = estimate(model, gpu=gpu, task="training", method="qlora", quantization="nf4", framework="unsloth",
                           seq_len=tokens, precision="bf16-mixed", optimizer="adamw-8bit", lora_rank=32, lora_alpha=32,
                           lora_targets=SEVEN, attn_implementation="flash_attention_2",
                           gradient_checkpointing="unsloth").verdict()
    assert 0.88 <= verdict.needs_bytes / verdict.usable_bytes <= 1.12
