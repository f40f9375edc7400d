"""Write the generic family's data: transformers' ``attribute_map`` aliases and config defaults per model type.

The generic family reads any config.json through transformers' standard field names. Which name a
model type really uses (``n_embd`` for ``hidden_size``, ``d_model``, ``num_layers`` ...) and its
defaults for absent fields live in each ``configuration_<type>.py``; this script records them from
the installed transformers so the analytic path needs no transformers at run time.

Usage: .venv/bin/python scripts/build_generic_data.py   (rewrites src/hf_gpu_estimator/architectures/generic_data.json)
"""

from __future__ import annotations

import inspect
import json
import re
import sys
import warnings
from pathlib import Path
from typing import Any

OUT = Path(__file__).resolve().parents[1] / "src/hf_gpu_estimator/architectures/generic_data.json"

#: Standard fields whose defaults the generic family may need (scalars only).
FIELDS = (
    "hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
    "intermediate_size", "vocab_size", "tie_word_embeddings", "hidden_act", "max_position_embeddings",
    "sliding_window", "attention_chunk_size", "num_experts", "num_local_experts", "n_routed_experts",
    "num_experts_per_tok", "moe_intermediate_size", "shared_expert_intermediate_size", "n_shared_experts",
    "attention_bias", "mlp_bias", "kv_lora_rank", "q_lora_rank", "qk_rope_head_dim", "qk_nope_head_dim",
    "v_head_dim", "state_size", "ssm_state_size", "mamba_d_state", "conv_kernel", "mamba_d_conv", "expand",
    "mamba_expand", "mamba_n_heads", "mamba_d_head", "mamba_n_groups", "n_groups", "linear_num_key_heads",
    "linear_num_value_heads", "linear_key_head_dim", "linear_value_head_dim", "linear_conv_kernel_dim", "is_moe",
)  # fmt: skip


def meta_model(model_type: str) -> Any:
    """The causal-LM class at its default config cut to a few layers, on the meta device; None when the default
    config cannot be built."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from matrix.cut import default_cut_config
    from hf_gpu_estimator.runtime import build

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return build.build_meta_model(default_cut_config(model_type).config)
    except Exception:  # a default config transformers cannot build: no record (the patterns apply)  # noqa: BLE001
        return None


def persistent_buffers(model: Any) -> list[str]:
    """Name suffixes of the persistent buffers (state-dict tensors that are not parameters) of ``model``: what a
    checkpoint stores beside its parameters. The suffix is the part after the last layer index
    (``mlp.gate.e_score_correction_bias``), or the last two name parts outside layers."""
    out = set()
    for module_name, module in model.named_modules():
        skip = getattr(module, "_non_persistent_buffers_set", set())
        for buffer_name, b in module.named_buffers(recurse=False):
            if buffer_name in skip or b is None:
                continue
            parts = f"{module_name}.{buffer_name}".strip(".").split(".")
            index = max((i for i, p in enumerate(parts) if p.isdigit()), default=None)
            out.add(".".join(parts[index + 1:] if index is not None else parts[-2:]))
    return sorted(out)


def keep_in_fp32(model: Any) -> dict[str, list[str]]:
    """The module-name patterns a model (instance, or class where no instance is built) loads in float32 whatever
    the requested dtype, by requested dtype (``PreTrainedModel._get_dtype_plan``: ``_keep_in_fp32_modules_strict``
    for a bfloat16 or float16 load, plus ``_keep_in_fp32_modules`` for a float16 one; an instance holds them merged
    from its submodels at init)."""
    strict = {p for p in (getattr(model, "_keep_in_fp32_modules_strict", None) or ()) if p}
    fp16 = strict | {p for p in (getattr(model, "_keep_in_fp32_modules", None) or ()) if p}
    return {dtype: sorted(patterns) for dtype, patterns in (("bfloat16", strict), ("float16", fp16)) if patterns}


def uses_conv1d(model: Any) -> bool:
    """Whether ``model``'s projections are transformers' ``Conv1D`` (pytorch_utils.py: the weight stored
    ``in x out``, the transpose of ``nn.Linear``'s), as GPT-2 and GPT (openai-gpt) build them."""
    from transformers.pytorch_utils import Conv1D

    return any(isinstance(m, Conv1D) for m in model.modules())


def fused_experts(model: Any) -> list[str]:
    """Leaf names of the 3-D parameters the model's expert modules hold (transformers 5 stores a MoE layer's routed
    experts as one ``gate_up_proj`` / ``down_proj`` stack, ``Qwen3MoeExperts``): what bitsandbytes' ``nn.Linear``
    replacement leaves unquantized and what peft targets as parameters."""
    out = set()
    for _, module in model.named_modules():
        for name, param in module.named_parameters(recurse=False):
            if param.dim() == 3 and "Expert" in type(module).__name__:
                out.add(name)
    return sorted(out)


def bnb_unfuses_experts(model: Any) -> bool:
    """Whether transformers swaps the model's fused experts for per-expert ``nn.Linear`` modules before
    bitsandbytes quantizes (``quantizers/base.py`` ``MODULES_TO_PATCH_FOR_QUANTIZATION``: Llama 4's experts)."""
    from transformers.quantizers.base import MODULES_TO_PATCH_FOR_QUANTIZATION
    from transformers.utils.quantization_config import QuantizationMethod

    names = {type(m).__name__ for m in model.modules()}
    return any(cls in names and QuantizationMethod.BITS_AND_BYTES in entry["quantization_methods"]
               for cls, entry in MODULES_TO_PATCH_FOR_QUANTIZATION.items())


def peft_moe_conversion(model_type: str) -> str | None:
    """The transformers-4 layout peft maps a MoE type's LoRA targets from (``mixtral`` or ``qwen2_moe``): peft's
    ``convert_peft_config_for_transformers`` turns expert projection names into targets on the fused expert
    parameters (``utils/transformers_weight_conversion.py`` ``_MODEL_TO_CONVERSION_PATTERN``,
    ``_MOE_TARGET_MODULE_MAPPING``); None when peft is absent or leaves the type alone."""
    try:
        from peft.utils import transformers_weight_conversion as conv
    except ImportError:
        return None
    base = conv._MODEL_TO_CONVERSION_PATTERN.get(model_type)
    if base in conv._MOE_TARGET_MODULE_MAPPING and conv._MOE_FUSED_TARGETS.get(base):
        return str(base)
    return None


def peft_moe_tables() -> dict[str, object]:
    """peft's MoE target tables: per layout, each transformers-4 name and the parameter it now targets, and the
    names fused into one parameter (whose LoRA rank is multiplied by their number)."""
    try:
        import peft
        from peft.utils import transformers_weight_conversion as conv
    except ImportError:
        return {}
    return {"version": peft.__version__, "targets": conv._MOE_TARGET_MODULE_MAPPING,
            "fused": {k: {p: list(v) for p, v in d.items()} for k, d in conv._MOE_FUSED_TARGETS.items()}}


def layer_activation(model: Any) -> str | None:
    """The ``ACT2FN`` name of the one activation module class in ``model``'s first decoder layer (openai-gpt's
    MLP runs ``ACT_FNS[config.afn]``: gelu_new for "gelu", modeling_openai.py); None when there is none or more
    than one."""
    from transformers.activations import ACT2CLS

    names: dict[type, str] = {}
    for name, cls in ACT2CLS.items():
        names.setdefault(cls[0] if isinstance(cls, tuple) else cls, name)
    found = {names[type(m)] for n, m in model.named_modules() if _FIRST_LAYER.search(n) and type(m) in names}
    return found.pop() if len(found) == 1 else None


_FIRST_LAYER = re.compile(r"\.0\.")


def class_keep_in_fp32(model_type: str) -> dict[str, list[str]]:
    """:func:`keep_in_fp32` of a type with no causal-LM class (T5's ``wo``, BLIP-2's ``query_tokens``), read
    from its seq2seq-LM or base model class (not built: a composite model's submodels are not merged in)."""
    import transformers
    from transformers.models.auto.modeling_auto import MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES

    for mapping in (MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES, MODEL_MAPPING_NAMES):
        name = mapping.get(model_type)
        try:
            cls = getattr(transformers, name) if isinstance(name, str) else None
        except Exception:  # a model class that fails to import in this environment  # noqa: BLE001
            cls = None
        if cls is not None:
            return keep_in_fp32(cls)
    return {}


def eager_softmax_native(model_cls: type) -> bool | None:
    """Whether eager attention in the causal-LM class's modeling file runs softmax in the scores' dtype for a
    bfloat16 model: a ``softmax(`` call on attention scores without ``dtype=torch.float32`` (bart's
    ``nn.functional.softmax(attn_weights, dim=-1)``; xglm upcasts only float16 scores), in the file's
    ``eager_attention_forward`` where it has one. None when the file holds no softmax on attention scores."""
    try:
        source = inspect.getsource(inspect.getmodule(model_cls))
    except (OSError, TypeError):
        return None
    # The shared eager function where the file has one (other softmax calls serve routers or special layers).
    eager = re.search(r"^def eager_attention_forward\(.*?(?=^(def|class) )", source, re.MULTILINE | re.DOTALL)
    if eager:
        source = eager.group(0)
    if _QUERY_UPCAST.search(source):
        return False  # scores computed in fp32 (gptj, codegen, gpt_neo upcast query and key first)
    calls = []
    for line in source.splitlines():
        code = line.split("#", 1)[0].strip()
        match = _SOFTMAX.search(code)
        if match and not code.startswith(">>>") and _SCORES.search(match.group(1)):
            calls.append(code)
    if not calls:
        # A softmax module (cpmant's ``self.softmax = torch.nn.Softmax(dim=-1)``) runs in its input's dtype.
        return True if "nn.Softmax(" in source else None
    return any(not _UPCAST.search(call) for call in calls)


def eager_sinks(model_cls: type) -> tuple[bool, bool]:
    """(sinks, fp32 scores) of the eager attention in the causal-LM class's modeling file: whether its
    ``eager_attention_forward`` appends a learned sink column to the scores (``torch.cat([attn_weights, sinks],
    dim=-1)`` on every layer: gpt-oss, flint, hy_v4, deepseek_v4) and whether it computes the scores in fp32 from
    upcast queries and keys (flint: ``torch.matmul(query.float(), key_states.float().transpose(2, 3))``)."""
    try:
        source = inspect.getsource(inspect.getmodule(model_cls))
    except (OSError, TypeError):
        return False, False
    eager = re.search(r"^def eager_attention_forward\(.*?(?=^(def|class) )", source, re.MULTILINE | re.DOTALL)
    if not eager:
        return False, False
    body = eager.group(0)
    return bool(_SINK_COLUMN.search(body)), bool(_SCORES_FLOAT.search(body))


#: The sink column built at the function's top level, on every layer (mimo_v2_flash builds it under ``if
#: module.sinks is not None``, on its sliding layers only; inkling2 takes sinks as an optional argument).
_SINK_COLUMN = re.compile(r"^    sinks = module\.sinks\.reshape\(", re.MULTILINE)
_SCORES_FLOAT = re.compile(r"matmul\(\s*query\w*\.float\(\)")


def fp32_router(model_cls: type) -> bool:
    """Whether the modeling file's MoE router computes its logits in fp32 from an fp32 copy of its input
    (DeepseekV3TopkRouter-style ``F.linear(hidden_states.type(torch.float32), self.weight.type(torch.float32))``),
    so the routing weights the experts' outputs are multiplied by are fp32."""
    try:
        source = inspect.getsource(inspect.getmodule(model_cls))
    except (OSError, TypeError):
        return False
    return bool(_FP32_ROUTER.search(source))


_FP32_ROUTER = re.compile(r"F\.linear\(\s*hidden_states\.(?:type\(torch\.float32\)|float\(\)|to\(torch\.float32\))")


#: A softmax call and its first argument; attention-score names (not router or gate logits; openai-gpt's ``w``);
#: an fp32 upcast.
_SOFTMAX = re.compile(r"softmax\(\s*([A-Za-z_][A-Za-z_0-9.]*)")
_SCORES = re.compile(r"^(?!.*(router|routing|gate|expert|logits)).*(attn|attention|scores)|^w$", re.IGNORECASE)
#: Where the file's eager_attention_forward is not the text attention's, with the source.
_NATIVE_SOFTMAX = {
    "git": (True, "modeling_git.py GitSelfAttention.forward: softmax(attention_scores, dim=-1); the file's "
                  "eager_attention_forward serves the vision encoder"),
}

def loss_upcast(model_cls: type) -> bool | None:
    """Whether the causal-LM class's forward computes its loss through ``self.loss_function`` (transformers'
    ForCausalLMLoss upcasts the logits to fp32 first) or upcasts them itself: False where it calls
    ``CrossEntropyLoss()`` / ``cross_entropy(`` on the head's output as it is (modeling_bart.py
    ``BartForCausalLM.forward``: ``loss_fct(logits.view(-1, self.config.vocab_size), labels.view(-1))``). None when
    the forward holds neither (a loss of its own, or none)."""
    try:
        source = inspect.getsource(model_cls.forward)
    except (OSError, TypeError):
        return None
    # Code only: the docstring's examples (``>>>``, ``...``) and comments are not run.
    code = [line.split("#", 1)[0] for line in source.splitlines()
            if not line.strip().startswith((">>>", "..."))]
    if any("self.loss_function" in line or ("logits" in line and _UPCAST.search(line)) for line in code):
        return True
    return False if any(_CROSS_ENTROPY.search(line) for line in code) else None


_CROSS_ENTROPY = re.compile(r"CrossEntropyLoss\(|cross_entropy\(")

#: A causal-LM class that only warns when the config is not a decoder (RobertaForCausalLM.__init__).
_WARNS_NOT_DECODER = re.compile(r"if not config\.is_decoder:\s*\n\s*logger\.warning")
_QUERY_UPCAST = re.compile(r"(query|key)\w*\.to\(torch\.float32\)")
_UPCAST = re.compile(r"dtype=torch\.float(32)?\b|\.float\(\)")


def main() -> int:
    import torch
    import transformers
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    out: dict[str, dict[str, object]] = {}
    for model_type in sorted(CONFIG_MAPPING.keys()):
        try:
            cls = CONFIG_MAPPING[model_type]
        except Exception:  # a config class that fails to import in this environment
            continue
        entry: dict[str, object] = {"attribute_map": dict(getattr(cls, "attribute_map", {}) or {})}
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                cfg = cls()
            text = cfg.get_text_config() if hasattr(cfg, "get_text_config") else cfg
            defaults = {}
            for name in FIELDS:
                value = getattr(text, name, None)
                if isinstance(value, (bool, int, float, str)):
                    defaults[name] = value
            entry["defaults"] = defaults
            entry["text_model_type"] = getattr(text, "model_type", model_type)
        except Exception as e:  # configs that need arguments: aliases only
            entry["defaults"] = {}
            entry["error"] = type(e).__name__
        entry["causal_lm"] = model_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES
        if entry["causal_lm"]:
            try:  # PreTrainedModel._supports_sdpa: False makes transformers fall back to eager attention
                model_cls = getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type])
                entry["supports_sdpa"] = bool(getattr(model_cls, "_supports_sdpa", True))
                # Whether the class ties its output projection to the input embeddings at all
                # (tie_word_embeddings only acts through _tied_weights_keys; some classes declare none).
                entry["ties_lm_head"] = bool(getattr(model_cls, "_tied_weights_keys", None))
                # Whether generate can ask for the last position's logits only (prefill logits_to_keep=1);
                # without the argument the prefill computes logits for every prompt position.
                # A causal-LM class that reads config.is_decoder (the RoBERTa family, BigBird ...) runs its
                # layers bidirectionally without a cache unless the config sets it (modeling_roberta.py
                # RobertaModel.forward: use_cache = False, create_bidirectional_mask).
                if _WARNS_NOT_DECODER.search(inspect.getsource(model_cls)):
                    entry["reads_is_decoder"] = True
                # A wrapper's language model runs its own type's attention (moss_transcribe_diarize's qwen3).
                text_type = str(entry.get("text_model_type", model_type))
                text_cls = model_cls
                if text_type != model_type and text_type in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
                    text_cls = getattr(transformers, MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[text_type], model_cls)
                native = _NATIVE_SOFTMAX.get(model_type, (eager_softmax_native(text_cls), ""))[0]
                if text_cls is not model_cls:
                    # Built without attn_implementation (transformers' default), each sub-model takes its own
                    # default: the language model runs SDPA where its class supports it, whatever the wrapper's
                    # flag (got_ocr2's wrapper says False; its qwen2 language model runs SDPA, exact-mode trace).
                    entry["supports_sdpa"] = bool(getattr(text_cls, "_supports_sdpa", True))
                if native:
                    entry["native_softmax"] = True
                sinks, fp32_scores = eager_sinks(text_cls)
                if sinks:
                    entry["eager_sinks"] = True
                if fp32_scores:
                    entry["fp32_scores"] = True
                if fp32_router(text_cls):
                    entry["fp32_router"] = True
                if "logits_to_keep" not in inspect.signature(model_cls.forward).parameters:
                    entry["logits_to_keep"] = False
                # nn.CrossEntropyLoss on the 16-bit logits (no fp32 upcast): a smaller loss (Architecture.loss_upcast).
                if loss_upcast(model_cls) is False:
                    entry["loss_upcast"] = False
            except Exception:
                pass
            model = meta_model(model_type)
            entry["buffers"] = None if model is None else persistent_buffers(model)
            if model is not None:
                entry["keep_in_fp32"] = keep_in_fp32(model)
                # Conv1D projections: the checkpoint's linear shapes are stored transposed (generic.refine_generic).
                if uses_conv1d(model):
                    entry["conv1d"] = True
                experts = fused_experts(model)
                if experts:
                    entry["fused_experts"] = experts
                    if bnb_unfuses_experts(model):
                        entry["bnb_unfuses_experts"] = True
                    layout = peft_moe_conversion(model_type)
                    if layout:
                        entry["peft_moe"] = layout
                # The MLP's activation as built, for a config without a standard activation field (openai-gpt's
                # ``afn``); a config's own field wins.
                activation = layer_activation(model)
                if activation is not None and "hidden_act" not in entry.get("defaults", {}):
                    entry["activation"] = activation
        else:
            entry["keep_in_fp32"] = class_keep_in_fp32(model_type)
        out[model_type] = entry
    # Every model type transformers implements is recorded (a multimodal wrapper is read through its
    # text_config); the field aliases and defaults only for causal LMs and their text models.
    causal = {k for k, v in out.items() if v.get("causal_lm")}
    full = causal | {str(v["text_model_type"]) for k, v in out.items() if v.get("text_model_type")}
    out = {k: {kk: vv for kk, vv in v.items() if vv not in ({}, None) and kk != "causal_lm"
               and (k in full or kk in ("attribute_map", "text_model_type", "keep_in_fp32"))}
           for k, v in out.items()}
    data = {"transformers": transformers.__version__, "torch": torch.__version__.split("+")[0], "model_types": out,
            "peft_moe": peft_moe_tables()}
    OUT.write_text(json.dumps(data, sort_keys=True, separators=(",", ":")) + "\n")
    print(f"{len(out)} model types -> {OUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
