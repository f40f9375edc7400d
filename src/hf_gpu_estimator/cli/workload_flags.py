"""The workload flags shared by estimate, plan, measure and preflight, defined once.

Each flag's destination is the :func:`~hf_gpu_estimator.workload.make_workload` keyword of the
same name, so adding a workload option is one entry in :data:`WORKLOAD_FLAGS` (and the keyword in
``make_workload``); every command that takes a workload picks it up.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from hf_gpu_estimator.cli._common import finite_float, non_negative_int, positive_int, token_count
from hf_gpu_estimator.constants import LLAMACPP_CACHE_TYPES


def on_off(text: str) -> bool:
    """``on``/``off`` (also yes/no, true/false, 1/0) as a bool, for a flag whose default is on."""
    value = text.strip().lower()
    if value in ("on", "yes", "true", "1"):
        return True
    if value in ("off", "no", "false", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected on or off, got {text!r}")


def checkpointing(text: str) -> bool | str:
    """``--gradient-checkpointing [on|off|unsloth]``: on alone; ``unsloth`` (or ``offloaded``) is unsloth's
    offloaded variant, ``use_gradient_checkpointing="unsloth"`` (make_workload checks the framework)."""
    value = text.strip().lower()
    if value in ("unsloth", "offloaded"):
        return "unsloth"
    try:
        return on_off(value)
    except argparse.ArgumentTypeError:
        raise argparse.ArgumentTypeError(f"expected on, off or unsloth, got {text!r}") from None


@dataclass(frozen=True)
class Flag:
    """One ``--flag`` and its argparse options; ``dest`` is the make_workload keyword."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)
    #: Other spellings users of an engine type (vLLM's ``--tensor-parallel-size``/``-tp``).
    aliases: tuple[str, ...] = ()

    @property
    def dest(self) -> str:
        return self.name[2:].replace("-", "_")

    @property
    def default(self) -> Any:
        return self.options.get("default", False if self.options.get("action") == "store_true" else None)


WORKLOAD_FLAGS: tuple[Flag, ...] = (
    Flag("--task", {"help": "inference (default) or training (the default with --method lora or qlora)"}),
    Flag("--method", {"default": "full", "help": "full (default), lora or qlora"}),
    Flag("--batch-size", {"type": positive_int, "default": 1, "help": "sequences per device (default 1)"}),
    Flag("--seq-len", {"type": token_count,
                       "help": "tokens per sequence (training) or prompt tokens (inference); default 1024; "
                               "32k = 32768"}),
    Flag("--new-tokens", {"type": non_negative_int, "default": None,
                          "help": "tokens generated after the prompt (inference; default 256)"}),
    Flag("--dtype", {"help": "weight dtype: float32, float16, bfloat16 (default: the checkpoint's)"}),
    Flag("--precision", {"help": "training precision: 32-true, 16-mixed, bf16-mixed (default), 16-true, bf16-true"}),
    Flag("--optimizer", {"default": "adamw",
                         "help": "adamw (default), adamw-torch2.0 (torch <= 2.0's foreach step), adamw-8bit, "
                                 "paged-adamw-8bit, adamw-8bit-torchao, adafactor, sgd, sgd-momentum, lion"}),
    Flag("--gradient-checkpointing", {"nargs": "?", "const": True, "default": False, "type": checkpointing,
                                      "metavar": "unsloth",
                                      "help": "recompute each decoder layer in backward; 'unsloth' (with --framework "
                                              "unsloth): its offloaded variant, each layer's input kept in host memory"}),
    Flag("--gradient-accumulation-steps", {"type": positive_int, "default": 1}),
    Flag("--attn-implementation", {"default": "sdpa", "help": "eager, sdpa (default), flash_attention_2"}),
    Flag("--quantization", {"help": "none, int8, nf4, fp4, fp8, gptq-4bit, awq-4bit, gguf:Q4_K_M ..."}),
    Flag("--kv-cache-dtype", {"help": "KV cache dtype (default: the compute dtype); GGUF: f16, q8_0, q4_0 ..."}),
    Flag("--gpu-layers", {"type": non_negative_int, "help": "GGUF/llama.cpp: layers offloaded to the GPU (-ngl; default all)"}),
    Flag("--cache-type-k", {"type": str.lower, "choices": LLAMACPP_CACHE_TYPES,
                            "help": "llama.cpp: the K cache type (default: --kv-cache-dtype, else f16)"},
         aliases=("-ctk",)),
    Flag("--cache-type-v", {"type": str.lower, "choices": LLAMACPP_CACHE_TYPES,
                            "help": "llama.cpp: the V cache type; a quantized V needs flash attention (default: "
                                    "--kv-cache-dtype, else f16)"},
         aliases=("-ctv",)),
    Flag("--images", {"type": non_negative_int, "default": 0,
                      "help": "images per sequence (vision-language models: each adds the model's tokens per image)"}),
    Flag("--lora-rank", {"type": positive_int, "default": 16}),
    Flag("--lora-alpha", {"type": positive_int}),
    Flag("--lora-targets", {"help": "comma-separated module names, or all-linear (default q_proj,v_proj)"}),
    Flag("--num-gpus", {"type": positive_int, "help": "GPUs in all (default: tp x pp)"}),
    Flag("--strategy", {"help": "ddp, zero1, zero2, zero3, fsdp, fsdp-grad-op, fsdp-hybrid"}),
    Flag("--tp", {"type": positive_int, "default": 1, "help": "tensor-parallel degree"},
         aliases=("--tensor-parallel-size", "-tp")),
    Flag("--pp", {"type": positive_int, "default": 1, "help": "pipeline-parallel degree"},
         aliases=("--pipeline-parallel-size", "-pp")),
    Flag("--offload-optimizer", {"action": "store_true", "help": "ZeRO/FSDP optimizer offload to CPU"}),
    Flag("--offload-params", {"action": "store_true", "help": "ZeRO-3/FSDP parameter offload to CPU"}),
    # The training recipe: a framework profile's defaults, each overridable (frameworks.py, memory/recipe.py).
    Flag("--framework", {"default": "hf",
                         "help": "hf (default, transformers 5), hf-4.41 (transformers <= 4.41: generate keeps the legacy "
                                 "cache and the prompt's logits), trl, axolotl, unsloth, llama-factory, torchtune, litgpt, "
                                 "lit-gpt (its Oct 2023 release): what the framework allocates beyond the model"}),
    Flag("--loss", {"help": "hf, hf-fp32-logits (transformers 4.3x-4.4x; inference: every prompt position's logits), "
                            "chunked (LitGPT), chunked-fp32 (torchtune), cce (Cut Cross Entropy, unsloth), fast-ce "
                            "(unsloth without cut_cross_entropy); "
                            "default: the framework's"}),
    Flag("--lora-dropout", {"type": finite_float(0.0, inclusive=True),
                            "help": "LoRA dropout probability (default: the framework's; peft 0.0)"}),
    Flag("--lora-on-lm-head", {"action": "store_true", "help": "a LoRA adapter on the output head too"}),
    Flag("--double-quant", {"type": on_off, "default": True,
                            "help": "bitsandbytes 4-bit double quantization: on (default) or off"}),
    Flag("--kbit-fp32-casts", {"type": on_off,
                               "help": "peft prepare_model_for_kbit_training's fp32 casts: on or off (default: the "
                                       "framework's; trl and axolotl on)"}),
    Flag("--quantized-saves-input", {"type": on_off,
                                     "help": "the 4-bit matmul keeps its input for backward (bitsandbytes < 0.43.2): "
                                             "on or off (default: the framework's)"}),
    Flag("--optimizer-in-backward", {"action": "store_true",
                                     "help": "step each parameter as its gradient arrives (torchtune optimizer_in_bwd)"}),
    Flag("--activation-offloading", {"action": "store_true", "help": "saved activations offloaded to host memory"}),
    Flag("--torch-compile", {"action": "store_true", "help": "model and loss under torch.compile"}),
    Flag("--use-reentrant", {"type": on_off,
                             "help": "gradient checkpointing with torch.utils.checkpoint's reentrant variant: on or "
                                     "off (default: the framework's; hf off as in transformers 5, trl, axolotl and "
                                     "llama-factory on)"}),
    Flag("--head", {"default": "causal-lm",
                    "help": "causal-lm (default) or classification (AutoModelForSequenceClassification: a score "
                            "head of --num-labels outputs, no vocabulary logits)"}),
    Flag("--num-labels", {"type": positive_int, "help": "outputs of the classification head (default 2)"}),
    Flag("--reduce-bucket-size", {"type": positive_int,
                                  "help": "DeepSpeed ZeRO reduce_bucket_size, elements (default 5e8)"}),
    Flag("--allgather-bucket-size", {"type": positive_int,
                                     "help": "DeepSpeed ZeRO-1/2 allgather_bucket_size, elements (default 5e8)"}),
    Flag("--cuda-module-loading", {"default": "lazy",
                                   "help": "CUDA_MODULE_LOADING: lazy (default; PyTorch sets it) or eager (CUDA < 11.7 "
                                           "or EAGER: a CUDA context of over 1000 MB)"}),
    Flag("--prefetch-bucket-size", {"type": positive_int,
                                    "help": "DeepSpeed ZeRO-3 stage3_prefetch_bucket_size, elements (default 5e7)"}),
)


def add_workload_args(p: argparse.ArgumentParser) -> None:
    """Add every workload flag to ``p`` (one argument group, "workload")."""
    group = p.add_argument_group("workload")
    for flag in WORKLOAD_FLAGS:
        group.add_argument(flag.name, *flag.aliases, dest=flag.dest, **flag.options)


#: ``--dtype`` words of other tools that mean "the checkpoint's" (vLLM, transformers ``torch_dtype="auto"``).
_CHECKPOINT_DTYPE = ("auto",)


def normalize_workload_words(kwargs: dict[str, Any]) -> dict[str, Any]:
    """The words other tools use, as make_workload takes them: ``--dtype auto`` is the checkpoint's dtype;
    a bare GGUF type (``--quantization Q4_K_M``) is ``gguf:Q4_K_M``."""
    from hf_gpu_estimator.quantization import GGUF_FILE_TYPES, GGUF_TYPES

    out = dict(kwargs)
    if isinstance(out.get("dtype"), str) and out["dtype"].strip().lower() in _CHECKPOINT_DTYPE:
        out["dtype"] = None
    quant = out.get("quantization")
    if isinstance(quant, str) and "," not in quant and quant.strip().upper() in {**GGUF_FILE_TYPES, **GGUF_TYPES}:
        out["quantization"] = "gguf:" + quant.strip().upper()
    return out


def workload_kwargs(args: argparse.Namespace) -> dict[str, Any]:
    """The parsed workload flags as make_workload keywords."""
    return normalize_workload_words({flag.dest: getattr(args, flag.dest) for flag in WORKLOAD_FLAGS})


def explicit_workload_kwargs(args: argparse.Namespace, **defaults: Any) -> dict[str, Any]:
    """The workload flags whose value differs from their default (``defaults`` overrides a flag's own)."""
    return {flag.dest: getattr(args, flag.dest) for flag in WORKLOAD_FLAGS
            if getattr(args, flag.dest) != defaults.get(flag.dest, flag.default)}
