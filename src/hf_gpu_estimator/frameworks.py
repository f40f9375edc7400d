"""Fine-tuning frameworks as profiles: what each allocates beyond the model, at a named release.

A profile is data: the loss implementation, whether its 4-bit layers keep their input for backward,
whether the output head is quantized, the fp32 casts of the k-bit recipe, its LoRA defaults. The
estimator reads the workload's resolved fields (``Workload.loss``, ``quantized_saves_input`` ...);
``make_workload(framework=...)`` fills the ones the caller leaves out from the profile. What the framework's
own model code and loop do (``fused_qkv_model``, ``keeps_previous_output``, ``fp16_quant_state``,
``compiles_loss``, ``own_decoder_layer``, ``fast_lora_layer``) has no flag: memory/ reads it from the profile. The default,
``hf``, is transformers 5 + peft + bitsandbytes as released today, which is what the trace referee runs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

#: How the output head and the loss hold the logits, per token (see memory/recipe.py ``loss_terms``):
#: ``hf``: 16-bit logits kept by the model output, an fp32 upcast, fp32 log_softmax saved (transformers 5
#: ``ForCausalLMLoss``); ``hf-fp32-logits``: transformers 4.3x-4.45, ``logits = logits.float()`` kept by the
#: output plus the contiguous shifted copy; ``hf-shifted-copy``: transformers 4.46-4.48 ``ForCausalLMLoss``,
#: 16-bit logits kept by the output, the fp32 upcast and its contiguous shifted copy inside the loss;
#: ``chunked``: the head runs in token chunks whose 16-bit outputs and log_softmax stay 16-bit (LitGPT
#: ``chunked_cross_entropy``); ``chunked-fp32``: 16-bit chunks, each
#: upcast to fp32 in the loss, fp32 log_softmax saved per chunk (torchtune ``CEWithChunkedOutputLoss``);
#: ``cce``: Apple's Cut Cross Entropy, the head and the loss in one kernel that never writes the logits
#: (unsloth_zoo ``fused_linear_cross_entropy``); ``fast-ce``: 16-bit logits whose Triton cross entropy keeps
#: them for backward and writes their gradient in place (unsloth ``fast_cross_entropy_loss``).
LossKind = Literal["hf", "hf-fp32-logits", "hf-shifted-copy", "chunked", "chunked-fp32", "cce", "fast-ce"]
LOSS_KINDS: tuple[str, ...] = ("hf", "hf-fp32-logits", "hf-shifted-copy", "chunked", "chunked-fp32", "cce", "fast-ce")


@dataclass(frozen=True, kw_only=True)
class FrameworkProfile:
    """What one framework allocates beyond the model's own tensors, at ``release``."""

    name: str
    release: str
    source: str
    loss: LossKind = "hf"
    #: bitsandbytes' MatMul4Bit kept its input ``A`` in ``ctx.tensors`` until 0.43.2 (commit 9e753741,
    #: "fix QLoRA mem bug: delete useless buffered activation", bitsandbytes/autograd/_functions.py).
    quantized_saves_input: bool = False
    #: The output head is a 4-bit layer too (Fabric's BitsandbytesPrecision converts every nn.Linear).
    quantize_lm_head: bool = False
    #: peft ``prepare_model_for_kbit_training`` (src/peft/utils/other.py, v0.13.0): every parameter that is
    #: not Params4bit and is 16-bit is cast to fp32 (embeddings, norms, the head), and gradient
    #: checkpointing is enabled unless the caller says otherwise.
    kbit_fp32_casts: bool = False
    #: Default LoRA dropout of the framework's LoRA config (peft LoraConfig: 0.0).
    lora_dropout: float = 0.0
    #: The framework runs its own model code whose tanh-GELU is one ATen op saving only its input, where
    #: transformers' ``gelu_new`` is written out in Python (LitGPT litgpt/model.py: ``F.gelu(x,
    #: approximate=config.gelu_approximate)``).
    single_op_gelu: bool = False
    #: The output head is its own weight even where the checkpoint ties it to the embeddings (LitGPT copies
    #: ``lm_head`` from ``wte`` at conversion; ``train.tie_embeddings`` defaults to null, config_hub YAMLs).
    unties_head: bool = False
    #: Gradient checkpointing through torch.utils.checkpoint's reentrant variant (memory/model.py: the
    #: recomputed layer's output stays alive through the layer's backward). transformers 5
    #: ``activation_checkpointing_enable`` defaults to ``{"use_reentrant": False}`` (modeling_utils.py);
    #: transformers 4.35-4.4x ``gradient_checkpointing_enable`` defaulted to ``{"use_reentrant": True}``.
    use_reentrant: bool = False
    #: ``generate`` keeps the previous step alive through the next forward (transformers <= 4.41
    #: ``generation/utils.py`` ``greedy_search``/``_sample``: ``outputs`` is rebound only when the next forward
    #: returns, and ``model_kwargs["past_key_values"]`` holds the legacy cache tuple, whose tensors
    #: ``DynamicCache.from_legacy_cache(...).update`` concatenates into new ones layer by layer): the whole old cache
    #: and the whole new one are alive at the end of every decode step, and the prompt's logits through the first
    #: one (transformers#30536, which dropped both for 4.42: a ``DynamicCache`` passed in, ``del outputs``). The
    #: prefill's forward has no ``logits_to_keep`` either: every prompt position's logits (memory/model.py).
    legacy_generate_cache: bool = False
    #: The framework's own decoder with one fused QKV linear (LitGPT litgpt/model.py ``CausalSelfAttention``,
    #: litgpt/lora.py ``LoRAQKVLinear``): what its attention and LoRA save differs from the transformers
    #: forward memory/activations.py follows (memory/recipe.py ``own_model_layer_saved``).
    fused_qkv_model: bool = False
    #: The training loop keeps the previous micro-batch's output (LitGPT ``fit``: ``logits = model(...)``
    #: rebinds the name only after the next forward returns), and with it every tensor the old graph's
    #: nodes still hold (memory/recipe.py ``previous_step_bytes``).
    keeps_previous_output: bool = False
    #: The 4-bit weights are quantized from an fp16 copy, so they dequantize to fp16 and are then cast to
    #: the compute dtype (Lightning ``BitsandbytesPrecision``: ``weight.to(dtype=torch.half)`` before
    #: ``quantize_4bit``, whose ``QuantState.dtype`` ``dequantize_4bit`` allocates).
    fp16_quant_state: bool = False
    #: With ``torch_compile`` the loss is compiled on its own and the model's head stays eager (torchtune
    #: ``training.compile_loss`` / ``compile_model``, training/_compile.py at v0.5.0; a chunked loss in every
    #: recipe, a whole loss in the LoRA recipes only): inductor fuses the upcast, log_softmax and nll into one
    #: reduction (memory/recipe.py ``loss_terms``).
    compiles_loss: bool = False
    #: The framework builds its own decoder layer for llama-style models, whose saved tensors were traced eager
    #: and under its per-layer compile (memory/recipe.py ``own_layer_saved``).
    own_decoder_layer: bool = False
    #: LoRA on llama-style layers through the framework's own autograd functions (unsloth
    #: unsloth/kernels/fast_lora.py ``LoRA_MLP``, ``LoRA_QKV``, ``LoRA_W``; rms_layernorm.py, rope_embedding.py):
    #: what one decoder layer saves for backward and allocates in it (memory/recipe.py ``fast_lora_layer``).
    fast_lora_layer: bool = False
    #: ``gradient_checkpointing="unsloth"`` is accepted: each checkpointed layer input is copied to host memory
    #: in forward and brought back for the recompute (unsloth_zoo ``Unsloth_Offloaded_Gradient_Checkpointer``).
    offloaded_checkpointing: bool = False
    notes: tuple[str, ...] = ()


_PEFT_KBIT = ("QLoRA through peft.prepare_model_for_kbit_training: non-4-bit parameters (embeddings, norms, head) "
              "cast to fp32")

_LITGPT = FrameworkProfile(
    name="litgpt", release="LitGPT 0.4 (config_hub at 00af8b0d), lightning 2.3/2.4 dev, bitsandbytes==0.42.0 pinned",
    source="https://github.com/Lightning-AI/litgpt/blob/00af8b0d/litgpt/finetune/lora.py (fit: "
           "lm_head_chunk_size=128, chunked_cross_entropy, logits rebound after the next forward); "
           "litgpt/model.py, litgpt/lora.py at 43c44323 (fused QKV, LoRAQKVLinear); Lightning "
           "src/lightning/fabric/plugins/precision/bitsandbytes.py at 438f29f07a (fp16 quant_state); "
           "bitsandbytes 0.42.0 bitsandbytes/autograd/_functions.py (MatMul4Bit ctx.tensors)",
    loss="chunked", quantized_saves_input=True, quantize_lm_head=True, lora_dropout=0.05, single_op_gelu=True,
    unties_head=True, fused_qkv_model=True, keeps_previous_output=True, fp16_quant_state=True)

#: The 2023 package (lit_gpt, before the litgpt rename): the same model code and 4-bit path; its
#: finetune/lora.py draws random micro-batches and forces the longest sample into iteration 0.
_LIT_GPT_2023 = dataclasses.replace(
    _LITGPT, name="lit-gpt",
    release="lit-gpt 8641822 (Oct 2023), lightning 71aed751, bitsandbytes 0.41.1",
    source="https://github.com/Lightning-AI/litgpt/blob/8641822/finetune/lora.py (get_batch: random micro-batches "
           "padded to their own longest sample, the longest training sample forced into iteration 0; "
           "lm_head_chunk_size=128, chunked_cross_entropy); lit_gpt/model.py, lit_gpt/lora.py at 8641822; "
           "Lightning src/lightning/fabric/plugins/precision/bitsandbytes.py at 71aed751 (fp16 quant_state); "
           "bitsandbytes 0.41.1 (18e827d6) MatMul4Bit ctx.tensors",
    keeps_previous_output=False,
    notes=("lit-gpt's finetune/lora.py runs the longest sample first (iteration 0) and shorter random micro-batches "
           "after it, so no full-length micro-batch is held from before the peak",))

#: Model types whose causal-LM ``forward`` returns every position's logits upcast to fp32 at transformers 4.41.2
#: (``logits = logits.float()`` after the head; ``grep`` of ``models/*/modeling_*.py`` in the v4.41.2 wheel, jamba
#: left out: its ``num_logits_to_keep`` keeps the last position). The other types return them in the compute dtype.
FP32_LOGITS_4_41: frozenset[str] = frozenset({
    "cohere", "gemma", "idefics2", "jetmoe", "llama", "mistral", "mixtral", "olmo", "paligemma", "phi", "phi3",
    "qwen2", "qwen2_moe", "recurrent_gemma", "starcoder2"})

FRAMEWORKS: Mapping[str, FrameworkProfile] = {
    "hf": FrameworkProfile(
        name="hf", release="transformers 5.x, peft 0.20+ on MoE types (its expert target conversion; 0.13+ otherwise), bitsandbytes >= 0.43.2",
        source="https://github.com/huggingface/transformers/blob/main/src/transformers/loss/loss_utils.py; "
               "https://github.com/bitsandbytes-foundation/bitsandbytes/blob/0.45.0/"
               "bitsandbytes/autograd/_functions.py"),
    "hf-4.41": FrameworkProfile(
        name="hf-4.41", release="transformers 4.41 and earlier 4.x releases, bitsandbytes < 0.43.2",
        source="https://github.com/huggingface/transformers/blob/v4.41.2/src/transformers/generation/utils.py "
               "(greedy_search / _sample: outputs and the legacy cache tuple alive through the next forward); "
               "src/transformers/models/llama/modeling_llama.py at v4.41.2 (DynamicCache.from_legacy_cache, "
               "logits = logits.float() over every position, no num_logits_to_keep); "
               "src/transformers/models/mixtral/modeling_mixtral.py at v4.41.2 (experts as nn.Linear w1/w2/w3, which "
               "bitsandbytes replaces); transformers#30536, #31292; bitsandbytes 0.43.1 MatMul4Bit ctx.tensors",
        loss="hf-fp32-logits", quantized_saves_input=True, use_reentrant=True, legacy_generate_cache=True,
        notes=("transformers <= 4.41: generate computes every prompt position's logits (upcast to fp32 where the "
               "model's forward does) and keeps the old cache beside the new one while each step concatenates",)),
    "trl": FrameworkProfile(
        name="trl", release="trl 0.13 (SFTTrainer) on transformers, peft 0.13, bitsandbytes >= 0.43.2",
        source="https://github.com/huggingface/trl/blob/v0.13.0/trl/trainer/sft_trainer.py (_prepare_peft_model: "
               "prepare_model_for_kbit_training for a k-bit model unless it is sharded: FSDP / ZeRO-3); trl 0.13 "
               "needs transformers >= 4.46, whose gradient_checkpointing_enable defaults to use_reentrant=True",
        kbit_fp32_casts=True, use_reentrant=True, notes=(_PEFT_KBIT,)),
    "axolotl": FrameworkProfile(
        name="axolotl", release="axolotl 0.5.0 (transformers + peft + bitsandbytes)",
        source="https://github.com/axolotl-ai-cloud/axolotl/blob/v0.5.0/src/axolotl/utils/models.py "
               "(ModelLoader.prepare_model: prepare_model_for_kbit_training for 4/8-bit lora/qlora, skipped for "
               "FSDP QLoRA and ZeRO-3); src/axolotl/utils/config/__init__.py normalize_config: "
               "gradient_checkpointing_kwargs = {'use_reentrant': True} when the config sets none",
        kbit_fp32_casts=True, use_reentrant=True, notes=(_PEFT_KBIT,)),
    "llama-factory": FrameworkProfile(
        name="llama-factory", release="LLaMA-Factory (transformers + peft + bitsandbytes)",
        source="https://github.com/hiyouga/LLaMA-Factory (estimated as the hf stack; its own k-bit preparation "
               "is unverified); src/llamafactory/model/model_utils/checkpointing.py checkpoints with "
               "use_reentrant=True unless use_reentrant_gc is false",
        use_reentrant=True,
        notes=("LLaMA-Factory is estimated as the hf stack (its k-bit preparation is unverified)",)),
    "unsloth": FrameworkProfile(
        name="unsloth", release="unsloth 2024.12.4 (4aa34a0a, 2024-12-10), unsloth_zoo 2024.12.2 (b09a9432), "
                                "cut_cross_entropy 24.12",
        source="https://github.com/unslothai/unsloth/blob/4aa34a0afa/unsloth/models/llama.py "
               "(CausalLM_fast_forward: fused_linear_cross_entropy when cut_cross_entropy is installed, else "
               "fast_cross_entropy_loss on 16-bit logits; LlamaModel_fast_forward: Unsloth_Offloaded_Gradient_"
               "Checkpointer for use_gradient_checkpointing='unsloth', torch.utils.checkpoint(use_reentrant=True) "
               "for True); unsloth/kernels/fast_lora.py, rms_layernorm.py, rope_embedding.py at 4aa34a0afa; "
               "https://github.com/unslothai/unsloth-zoo/blob/b09a9432/unsloth_zoo/gradient_checkpointing.py, "
               "unsloth_zoo/loss_utils.py; cut_cross_entropy 24.12.3 cce.py, cce_backward.py",
        loss="cce", use_reentrant=True, fast_lora_layer=True, offloaded_checkpointing=True,
        notes=("unsloth: Cut Cross Entropy needs torch >= 2.4, triton >= 3 and compute capability >= 7.5 "
               "(unsloth_zoo loss_utils HAS_CUT_CROSS_ENTROPY); elsewhere pass --loss fast-ce",)),
    "torchtune": FrameworkProfile(
        name="torchtune", release="torchtune 0.5.0",
        source="https://github.com/pytorch/torchtune/blob/v0.5.0/torchtune/modules/loss/ce_chunked_output_loss.py; "
               "torchtune/training/_compile.py (compile_loss, per-layer compile_model); "
               "QLoRA through torchao NF4 (linear_nf4 keeps only the weight for backward)",
        loss="chunked-fp32", compiles_loss=True, own_decoder_layer=True),
    "litgpt": _LITGPT,
    "lit-gpt": _LIT_GPT_2023,
}  # fmt: skip

#: Tokens per output-head chunk, by loss kind: LitGPT ``lm_head_chunk_size=128``; torchtune
#: ``CEWithChunkedOutputLoss(num_output_chunks=8)`` splits the sequence in 8.
LITGPT_HEAD_CHUNK_TOKENS = 128
TORCHTUNE_OUTPUT_CHUNKS = 8


def framework_profile(name: str) -> FrameworkProfile:
    """The profile called ``name`` (case-insensitive; ``transformers`` is ``hf``)."""
    from hf_gpu_estimator.errors import InvalidArgumentError, UnknownNameError

    if not isinstance(name, str):
        raise InvalidArgumentError("framework", name, "one of " + ", ".join(FRAMEWORKS))
    key = name.strip().lower().replace("_", "-")
    key = {"transformers": "hf", "huggingface": "hf", "llamafactory": "llama-factory"}.get(key, key)
    if key not in FRAMEWORKS:
        raise UnknownNameError("framework", name, list(FRAMEWORKS))
    return FRAMEWORKS[key]
