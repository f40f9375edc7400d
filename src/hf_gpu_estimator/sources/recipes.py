"""Training config files as input: axolotl and LLaMA-Factory YAML, torchtune recipe configs, LitGPT configs,
TRL / TrainingArguments JSON, accelerate configs and DeepSpeed JSON, read into the estimator's options.

Parsing is pure (:func:`parse_recipe` takes the loaded mapping); :func:`read_recipe` reads a file. Every
key is accounted for: ``understood`` (it sets an option), ``no_effect`` (known to the format, no memory
effect: learning rate, logging ...), or ``unknown`` (reported to the user). Key names follow each project's
documented config at the release the framework profile names (frameworks.py).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError, MalformedConfigError, MissingDependencyError

Options = dict[str, Any]


@dataclass(frozen=True, kw_only=True)
class RecipeConfig:
    """What a config file says about the run."""

    kind: str  # axolotl, llama-factory, torchtune, litgpt, trl, hf, accelerate, deepspeed
    model: str | None
    options: Mapping[str, Any]  # estimate() keywords
    understood: tuple[str, ...] = ()
    no_effect: tuple[str, ...] = ()
    unknown: tuple[str, ...] = ()
    notes: tuple[str, ...] = field(default=())


def _flatten(data: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            out.update(_flatten(value, name + "."))
        else:
            out[name] = value
    return out


def _truthy(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().lower() in ("true", "yes", "1", "auto", "on")
    return bool(value)


def _precision(bf16: Any, fp16: Any) -> str | None:
    """HF Trainer's ``bf16``/``fp16`` flags run the step under autocast: the estimator's ``*-mixed`` (a
    LoRA/QLoRA base in the compute dtype, fp32 adapters as peft makes them)."""
    if _truthy(bf16):
        return "bf16-mixed"
    if _truthy(fp16):
        return "16-mixed"
    return None


#: Optimizer names of HF TrainingArguments ``optim`` and axolotl ``optimizer`` the estimator knows.
_HF_OPTIM = {"adamw_torch": "adamw", "adamw_torch_fused": "adamw-fused", "adamw_hf": "adamw",
             "adamw_apex_fused": "adamw",
             "adamw_8bit": "adamw-8bit", "adamw_bnb_8bit": "adamw-8bit", "paged_adamw_8bit": "paged-adamw-8bit",
             "paged_adamw_32bit": "paged-adamw", "adafactor": "adafactor", "sgd": "sgd", "lion_32bit": "lion",
             "adam": "adam", "adamw": "adamw"}

#: Keys of the formats that do not change memory (schedules, logging, data paths, hub pushes ...).
_NO_EFFECT = re.compile(
    r"(^|\.)(learning_rate|lr|lr_scheduler.*|lr_scheduler_type|warmup.*|weight_decay|num_epochs|num_train_epochs|"
    r"epochs|max_steps|save_.*|eval_.*|evaluation_strategy|logging_.*|log_.*|output_dir|out_dir|seed|"
    r"dataset.*|datasets|data|data\..*|val_set_size|val_split_fraction|wandb_.*|report_to|hub_.*|push_to_hub|"
    r"run_name|resume_.*|special_tokens.*|tokenizer.*|chat_template|template|prompt_style|train_on_inputs|"
    r"group_by_length|adam_beta.*|adam_epsilon|betas|eps|max_grad_norm|max_norm|min_lr|gradient_clipping|"
    r"strict|debug|profiler.*|metric_logger.*|logger_name|device|shuffle|num_workers|dataloader_.*|do_train|"
    r"do_eval|overwrite_output_dir|plot_loss|preprocessing_num_workers|overwrite_cache|stage|"
    r"checkpointer.*|init_args.*|optimizer\.init_args.*|optimizer\.lr|optimizer\.fused|loss_scale.*|"
    r"initial_scale_power|hysteresis|min_loss_scale|steps_per_print|wall_clock_breakdown|"
    r"compute_environment|machine_rank|main_training_function|rdzv_backend|same_network|tpu_.*|"
    r"main_process_.*|num_machines|use_cpu|downcast_bf16|enable_cpu_affinity|"
    r"fsdp_config\.fsdp_(backward_prefetch|forward_prefetch|state_dict_type|use_orig_params|"
    r"sync_module_states|cpu_ram_efficient_loading|auto_wrap_policy|transformer_layer_cls_to_wrap|version)|"
    r"zero3_init_flag|zero3_save_16bit_model|deepspeed_multinode_launcher|strict_loading|"
    r"trust_remote_code|is_llama_derived_model|model_type|tokenizer_type|bf16\.enabled_auto|"
    r"flash_attn_cross_entropy|flash_attn_rms_norm|flash_attn_fuse_qkv|flash_attn_fuse_mlp|"
    r"load_best_model_at_end|metric_for_best_model|early_stopping_patience|local_rank|xformers_attention|"
    r"ddp_timeout|gradient_checkpointing_kwargs.*|torch_dtype|dtype_auto|cutoff|"
    r"lora_fan_in_fan_out|peft_use_dora|peft_use_rslora|use_rslora|lora_modules_to_save|max_new_tokens|"
    r"interval|max_iters|initial_validation|final_validation|tie_embeddings|global_batch_size|"
    r"max_tokens|num_nodes|mask_prompt|ignore_index|download_dir|access_token|"
    r"clip_grad_norm|output_dir|log_every_n_steps|log_peak_memory_stats|resume_from_checkpoint|"
    r"epochs|save_adapter_weights_only|lr_scheduler\..*|profiler|metric_logger|num_warmup_steps|"
    r"train_batch_size|pad_to_sequence_len|tf32|lr_warmup_steps|max_steps_per_epoch|_component_|path|"
    r"stage3_gather_16bit_weights_on_model_save|fused)$"
)


def parse_recipe(data: Mapping[str, Any], *, name: str = "config") -> RecipeConfig:
    """Read one loaded config mapping; the format is recognised from its keys.

    Raises:
        MalformedConfigError: ``data`` is not a mapping, or no format matches.
    """
    if not isinstance(data, Mapping):
        raise MalformedConfigError(name, f"{name}: a training config must be a mapping of keys to values")
    flat = _flatten(data)
    kind = _detect(data)
    if kind is None:
        raise MalformedConfigError(
            name, f"{name}: not a config this reads: axolotl or LLaMA-Factory YAML, a torchtune recipe config, a "
                  "LitGPT config, TRL/TrainingArguments JSON, an accelerate config or DeepSpeed JSON")
    if kind == "accelerate":
        model, options, used, notes = _accelerate(data, flat, source=Path(name))
    else:
        model, options, used, notes = _PARSERS[kind](data, flat)
    no_effect = sorted(k for k in flat if k not in used and _NO_EFFECT.search(k))
    unknown = sorted(k for k in flat if k not in used and k not in no_effect)
    return RecipeConfig(kind=kind, model=model, options=options, understood=tuple(sorted(used)),
                        no_effect=tuple(no_effect), unknown=tuple(unknown), notes=tuple(notes))


def _detect(data: Mapping[str, Any]) -> str | None:
    keys = set(data)
    if "zero_optimization" in keys or "train_micro_batch_size_per_gpu" in keys:
        return "deepspeed"
    if "distributed_type" in keys or "compute_environment" in keys:
        return "accelerate"
    if isinstance(data.get("model"), Mapping) and "_component_" in data["model"]:
        return "torchtune"
    if "checkpoint_dir" in keys or (isinstance(data.get("train"), Mapping) and "micro_batch_size" in data["train"]):
        return "litgpt"
    if "finetuning_type" in keys or ("model_name_or_path" in keys and "cutoff_len" in keys):
        return "llama-factory"
    if "base_model" in keys:
        return "axolotl"
    if keys & {"per_device_train_batch_size", "model_name_or_path", "max_seq_length", "max_length"}:
        return "trl" if keys & {"max_seq_length", "max_length", "packing", "use_peft", "dataset_text_field"} else "hf"
    return None


class _Reader:
    """Takes keys from a flattened config, remembering which it used."""

    def __init__(self, flat: Mapping[str, Any]):
        self.flat = flat
        self.used: set[str] = set()

    def get(self, *keys: str) -> Any:
        for key in keys:
            if key in self.flat and self.flat[key] is not None:
                self.used.add(key)
                return self.flat[key]
            if key in self.flat:
                self.used.add(key)
        return None


def _targets(value: Any) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        names = [t.strip() for t in value.split(",") if t.strip()]
    else:
        names = [str(t) for t in value]
    if any(t in ("all", "all-linear", "all_linear") for t in names):
        return ("all-linear",)
    return tuple(names) or None


def _set(options: Options, key: str, value: Any) -> None:
    if value is not None:
        options[key] = value


def _set_flag(options: Options, key: str, value: Any) -> None:
    """A yes/no option, when the config gives one (YAML booleans, "true"/"auto" strings)."""
    if value is not None:
        options[key] = _truthy(value)


def _separate_files(r: _Reader, notes: list[str], packing_key: str, packed_to: str) -> None:
    if r.get(packing_key) is not None:
        notes.append(f"{packing_key}: sequences packed to {packed_to} (the estimate uses {packed_to} tokens)")
    if r.get("deepspeed"):
        notes.append("deepspeed config is a separate file: pass it with another --config")


def _hf_common(r: _Reader, options: Options) -> None:
    """TrainingArguments keys shared by HF Trainer, TRL, axolotl and LLaMA-Factory."""
    _set(options, "batch_size", r.get("per_device_train_batch_size", "micro_batch_size"))
    _set(options, "gradient_accumulation_steps", r.get("gradient_accumulation_steps"))
    _set_flag(options, "gradient_checkpointing", r.get("gradient_checkpointing"))
    _set_flag(options, "use_reentrant", r.get("gradient_checkpointing_kwargs.use_reentrant"))
    precision = _precision(r.get("bf16"), r.get("fp16"))
    _set(options, "precision", precision)
    optim = r.get("optim", "optimizer")
    if optim is not None:
        options["optimizer"] = _HF_OPTIM.get(str(optim).lower(), str(optim))
    attn = r.get("attn_implementation")
    if attn is not None:
        options["attn_implementation"] = str(attn)


def _lora(r: _Reader, options: Options, *, rank: str, alpha: str, dropout: str, targets: str) -> None:
    _set(options, "lora_rank", r.get(rank))
    _set(options, "lora_alpha", r.get(alpha))
    _set(options, "lora_dropout", r.get(dropout))
    _set(options, "lora_targets", _targets(r.get(targets)))


def _axolotl(data: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str | None, Options, set[str], list[str]]:
    r = _Reader(flat)
    options: Options = {"task": "training", "framework": "axolotl"}
    model = r.get("base_model")
    adapter = r.get("adapter")
    four, eight = _truthy(r.get("load_in_4bit")), _truthy(r.get("load_in_8bit"))
    if adapter in ("qlora",) or (adapter == "lora" and four):
        options["method"], options["quantization"] = "qlora", "nf4"
    elif adapter == "lora":
        options["method"] = "lora"
        if eight:
            options["quantization"] = "int8"
    _hf_common(r, options)
    _set(options, "seq_len", r.get("sequence_len"))
    _lora(r, options, rank="lora_r", alpha="lora_alpha", dropout="lora_dropout", targets="lora_target_modules")
    if _truthy(r.get("lora_target_linear")):
        options["lora_targets"] = ("all-linear",)
    modules_to_save = r.get("lora_modules_to_save")
    if modules_to_save and "lm_head" in modules_to_save:
        options["lora_on_lm_head"] = True  # trained in full: a superset of an adapter, noted
    if _truthy(r.get("flash_attention")):
        options["attn_implementation"] = "flash_attention_2"
    elif _truthy(r.get("sdp_attention")):
        options["attn_implementation"] = "sdpa"
    _set_flag(options, "double_quant", r.get("bnb_config_kwargs.bnb_4bit_use_double_quant"))
    # axolotl loads the model through the auto class its config names (type_of_model / model_type).
    auto_class = r.get("type_of_model", "model_type")
    if isinstance(auto_class, str) and auto_class.endswith("ForSequenceClassification"):
        options["head"] = "classification"
        _set(options, "num_labels", r.get("num_labels"))
    notes: list[str] = []
    _separate_files(r, notes, "sample_packing", "sequence_len")
    if r.get("fsdp") or r.get("fsdp_config"):
        notes.append("fsdp settings: pass --num-gpus and --strategy fsdp (sharding across GPUs)")
    return model, options, r.used, notes


def _llama_factory(data: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str | None, Options, set[str], list[str]]:
    r = _Reader(flat)
    options: Options = {"task": "training", "framework": "llama-factory"}
    model = r.get("model_name_or_path")
    kind = r.get("finetuning_type") or "lora"
    bits = r.get("quantization_bit")
    method = r.get("quantization_method")
    if kind == "lora":
        options["method"] = "qlora" if bits == 4 and method in (None, "bitsandbytes", "bnb") else "lora"
        if options["method"] == "qlora":
            options["quantization"] = "nf4"
    elif kind == "full":
        options["method"] = "full"
    _hf_common(r, options)
    _set(options, "seq_len", r.get("cutoff_len"))
    _lora(r, options, rank="lora_rank", alpha="lora_alpha", dropout="lora_dropout", targets="lora_target")
    if "lora_targets" not in options and kind == "lora":
        options["lora_targets"] = ("all-linear",)  # LLaMA-Factory's default lora_target is "all"
    _set_flag(options, "double_quant", r.get("double_quantization"))
    fa = r.get("flash_attn")
    if fa is not None:
        options["attn_implementation"] = {"fa2": "flash_attention_2", "sdpa": "sdpa", "disabled": "eager"}.get(
            str(fa), "sdpa")
    # LLaMA-Factory's own checkpointing (model_utils/checkpointing.py) is reentrant unless use_reentrant_gc: false.
    _set_flag(options, "use_reentrant", r.get("use_reentrant_gc"))
    disable = r.get("disable_gradient_checkpointing")
    # LLaMA-Factory checkpoints unless told not to (model_args.disable_gradient_checkpointing, default False).
    options.setdefault("gradient_checkpointing", not _truthy(disable))
    notes: list[str] = []
    _separate_files(r, notes, "packing", "cutoff_len")
    return model, options, r.used, notes


#: torchtune model builders by name fragment -> Hub ids in the bundled catalog.
_TORCHTUNE_MODELS = {
    "llama3_1_8b": "meta-llama/Llama-3.1-8B", "llama3_1_70b": "meta-llama/Llama-3.1-70B",
    "llama3_1_405b": "meta-llama/Llama-3.1-405B", "llama3_2_1b": "meta-llama/Llama-3.2-1B",
    "llama3_2_3b": "meta-llama/Llama-3.2-3B", "llama3_3_70b": "meta-llama/Llama-3.3-70B-Instruct",
    "llama3_8b": "meta-llama/Meta-Llama-3-8B", "llama3_70b": "meta-llama/Meta-Llama-3-70B",
    "llama2_7b": "meta-llama/Llama-2-7b-hf", "llama2_13b": "meta-llama/Llama-2-13b-hf",
    "llama2_70b": "meta-llama/Llama-2-70b-hf", "mistral_7b": "mistralai/Mistral-7B-v0.1",
    "gemma_2b": "google/gemma-2b", "gemma_7b": "google/gemma-7b", "qwen2_5_0_5b": "Qwen/Qwen2.5-0.5B",
    "qwen2_5_1_5b": "Qwen/Qwen2.5-1.5B", "qwen2_5_3b": "Qwen/Qwen2.5-3B", "qwen2_5_7b": "Qwen/Qwen2.5-7B",
    "qwen2_5_14b": "Qwen/Qwen2.5-14B", "qwen2_5_32b": "Qwen/Qwen2.5-32B", "qwen2_5_72b": "Qwen/Qwen2.5-72B",
    "phi3_mini": "microsoft/Phi-3-mini-4k-instruct", "qwen3_8b": "Qwen/Qwen3-8B", "qwen3_4b": "Qwen/Qwen3-4B",
}  # fmt: skip
_TORCHTUNE_ATTN = {"q_proj": "q_proj", "k_proj": "k_proj", "v_proj": "v_proj", "output_proj": "o_proj"}
_TORCHTUNE_OPTIM = {"torch.optim.AdamW": "adamw", "torch.optim.Adam": "adam", "torch.optim.SGD": "sgd",
                    "bitsandbytes.optim.PagedAdamW8bit": "paged-adamw-8bit", "bitsandbytes.optim.PagedAdamW":
                    "paged-adamw", "bitsandbytes.optim.AdamW8bit": "adamw-8bit",
                    "torchao.prototype.low_bit_optim.AdamW8bit": "adamw-8bit-torchao"}  # fmt: skip


def _torchtune(data: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str | None, Options, set[str], list[str]]:
    r = _Reader(flat)
    options: Options = {"task": "training", "framework": "torchtune"}
    notes: list[str] = []
    model_cfg = data["model"]
    r.used.update(k for k in flat if k.startswith("model."))
    builder = str(model_cfg["_component_"]).rsplit(".", 1)[-1]
    base = re.sub(r"^(q?lora_)", "", builder)
    model = _TORCHTUNE_MODELS.get(base)
    if model is None:
        notes.append(f"torchtune builder {builder!r} has no Hub id here: give the model on the command line")
    options["method"] = "qlora" if builder.startswith("qlora_") else "lora" if builder.startswith("lora_") else "full"
    if options["method"] == "qlora":
        # torchao NF4 (torchao/dtypes/nf4tensor.py to_nf4): 64-weight blocks whose scalers are quantized again in
        # blocks of 256, as bitsandbytes' double quantization; linear_nf4 keeps only the weight for backward.
        options["quantization"], options["double_quant"] = "nf4", True
    if options["method"] != "full":
        attn = [_TORCHTUNE_ATTN.get(m, m) for m in model_cfg.get("lora_attn_modules", ())]
        mlp = ["gate_proj", "up_proj", "down_proj"] if model_cfg.get("apply_lora_to_mlp") else []
        if attn or mlp:
            options["lora_targets"] = tuple(attn + mlp)
        _set(options, "lora_rank", model_cfg.get("lora_rank"))
        _set(options, "lora_alpha", model_cfg.get("lora_alpha"))
        _set(options, "lora_dropout", model_cfg.get("lora_dropout"))
        if model_cfg.get("apply_lora_to_output"):
            options["lora_on_lm_head"] = True
    _set(options, "batch_size", r.get("batch_size"))
    _set(options, "seq_len", r.get("tokenizer.max_seq_len", "dataset.max_seq_len"))
    _set(options, "gradient_accumulation_steps", r.get("gradient_accumulation_steps"))
    dtype = r.get("dtype")
    if dtype is not None:
        options["precision"] = {"bf16": "bf16-true", "fp32": "32-true", "fp16": "16-true"}.get(str(dtype), str(dtype))
    for key, option in (("enable_activation_checkpointing", "gradient_checkpointing"),
                        ("enable_activation_offloading", "activation_offloading"),
                        ("optimizer_in_bwd", "optimizer_in_backward"), ("compile", "torch_compile")):
        _set_flag(options, option, r.get(key))
    optim = r.get("optimizer._component_")
    if optim is not None:
        options["optimizer"] = _TORCHTUNE_OPTIM.get(optim, optim)
        if options["optimizer"] == "adamw" and _truthy(r.get("optimizer.fused")):
            options["optimizer"] = "adamw-fused"
    loss = r.get("loss._component_")
    if loss is not None:
        options["loss"] = "chunked-fp32" if "Chunked" in loss else "hf"
    if options.get("seq_len") is None:
        notes.append("tokenizer.max_seq_len is null: give --seq-len (the longest sample or the packed length)")
    if r.get("dataset.packed") is not None:
        notes.append("dataset.packed: sequences packed to tokenizer.max_seq_len")
    return model, options, r.used, notes


#: LitGPT LoRA switches -> the transformers module names of the same layers (llama-style names).
_LITGPT_LORA = {"lora_query": ("q_proj",), "lora_key": ("k_proj",), "lora_value": ("v_proj",),
                "lora_projection": ("o_proj",), "lora_mlp": ("gate_proj", "up_proj", "down_proj")}


def _litgpt(data: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str | None, Options, set[str], list[str]]:
    r = _Reader(flat)
    options: Options = {"task": "training", "framework": "litgpt"}
    checkpoint = r.get("checkpoint_dir")
    model = None
    if checkpoint:
        parts = Path(str(checkpoint)).parts
        model = "/".join(parts[-2:]) if len(parts) >= 2 else str(checkpoint)
    quantize = r.get("quantize")
    lora = any(k.startswith("lora_") for k in flat)
    options["method"] = "qlora" if quantize and str(quantize).startswith("bnb.nf4") or \
        (quantize and str(quantize).startswith("bnb.fp4")) else "lora" if lora else "full"
    if options["method"] == "qlora":
        options["quantization"] = "fp4" if "fp4" in str(quantize) else "nf4"
        options["double_quant"] = str(quantize).endswith("-dq")
    _set(options, "precision", r.get("precision"))
    if lora:
        _set(options, "lora_rank", r.get("lora_r"))
        _set(options, "lora_alpha", r.get("lora_alpha"))
        _set(options, "lora_dropout", r.get("lora_dropout"))
        targets: list[str] = []
        for key, names in _LITGPT_LORA.items():
            if _truthy(r.get(key)):
                targets += names
        if targets:
            options["lora_targets"] = tuple(targets)
        if _truthy(r.get("lora_head")):
            options["lora_on_lm_head"] = True
    micro = r.get("train.micro_batch_size")
    _set(options, "batch_size", micro)
    _set(options, "seq_len", r.get("train.max_seq_length"))
    devices = r.get("devices")
    global_batch = r.get("train.global_batch_size")
    if isinstance(global_batch, int) and isinstance(micro, int) and micro > 0:
        # litgpt/args.py TrainArgs.gradient_accumulation_iters: global_batch_size // (devices * micro_batch_size)
        per_step = micro * (devices if isinstance(devices, int) and devices > 0 else 1)
        options["gradient_accumulation_steps"] = max(1, global_batch // per_step)
    if isinstance(devices, int) and devices > 1:
        # LitGPT's multi-device finetuning wraps FSDP with activation checkpointing per block (finetune/lora.py).
        options.update(num_gpus=devices, strategy="fsdp", gradient_checkpointing=True)
    optim = r.get("optimizer.class_path")
    if optim is not None:
        options["optimizer"] = _TORCHTUNE_OPTIM.get(optim, optim)
    elif isinstance(data.get("optimizer"), str):
        r.used.add("optimizer")
        options["optimizer"] = str(data["optimizer"]).lower()
    if options["method"] == "qlora" and options.get("optimizer", "adamw") == "adamw":
        # litgpt/utils.py instantiate_bnb_optimizer (00af8b0d): a quantized run steps with bnb.optim.PagedAdamW.
        options["optimizer"] = "paged-adamw"
    notes = ["LitGPT LoRA switches mapped to transformers module names (q_proj, k_proj, v_proj, o_proj, the MLP)"]
    return model, options, r.used, notes


def _trl(data: Mapping[str, Any], flat: Mapping[str, Any], *, framework: str) -> tuple[str | None, Options, set[str],
                                                                                       list[str]]:
    r = _Reader(flat)
    options: Options = {"task": "training", "framework": framework}
    model = r.get("model_name_or_path")
    peft = _truthy(r.get("use_peft"))
    four, eight = _truthy(r.get("load_in_4bit")), _truthy(r.get("load_in_8bit"))
    if four:
        options["method"], options["quantization"], peft = "qlora", "nf4", True
    elif peft:
        options["method"] = "lora"
        if eight:
            options["quantization"] = "int8"
    else:
        options["method"] = "full"
    _hf_common(r, options)
    _set(options, "seq_len", r.get("max_seq_length", "max_length"))
    _lora(r, options, rank="lora_r", alpha="lora_alpha", dropout="lora_dropout", targets="lora_target_modules")
    _set_flag(options, "double_quant", r.get("use_bnb_nested_quant"))
    notes: list[str] = []
    _separate_files(r, notes, "packing", "max_seq_length")
    return model, options, r.used, notes


#: The accelerate-config keys integrations._core.accelerate_config_options reads.
_ACCELERATE_KEYS = re.compile(r"^(distributed_type|num_processes|mixed_precision|deepspeed_config\.(zero_stage|"
                              r"offload_optimizer_device|offload_param_device|gradient_accumulation_steps|"
                              r"deepspeed_config_file)|fsdp_config\.fsdp_(version|reshard_after_forward|"
                              r"sharding_strategy|offload_params|activation_checkpointing))$")


Parsed = tuple[str | None, Options, set[str], list[str]]  # model, options, keys used, notes


def _accelerate(data: Mapping[str, Any], flat: Mapping[str, Any], *, source: Path) -> Parsed:
    from hf_gpu_estimator.integrations._core import accelerate_config_options

    options, notes = accelerate_config_options(data, source=source)
    return None, options, {k for k in flat if _ACCELERATE_KEYS.match(k)}, notes


def _deepspeed(data: Mapping[str, Any], flat: Mapping[str, Any]) -> tuple[str | None, Options, set[str], list[str]]:
    from hf_gpu_estimator.integrations._core import deepspeed_options

    r = _Reader(flat)
    # A DeepSpeed JSON does not say how many GPUs run it: the strategy is read as for several, and the count
    # comes from the launcher's config or --num-gpus.
    options, notes = deepspeed_options(data, num_gpus=2)
    options.pop("num_gpus", None)
    for key in ("zero_optimization.stage", "zero_optimization.offload_optimizer.device",
                "zero_optimization.offload_param.device",
                "zero_optimization.offload_optimizer.pin_memory", "zero_optimization.offload_param.pin_memory"):
        r.get(key)
    mb = r.get("train_micro_batch_size_per_gpu")
    if isinstance(mb, int):
        options["batch_size"] = mb
    ga = r.get("gradient_accumulation_steps")
    if isinstance(ga, int):
        options["gradient_accumulation_steps"] = ga
    if _truthy(r.get("bf16.enabled")):
        options["precision"] = "bf16-mixed"
    elif _truthy(r.get("fp16.enabled")):
        options["precision"] = "16-mixed"
    for key in ("reduce_bucket_size", "allgather_bucket_size", "stage3_prefetch_bucket_size"):
        r.get(f"zero_optimization.{key}")  # read by deepspeed_options
    buffers = [key for key in ("stage3_param_persistence_threshold", "stage3_max_live_parameters",
                               "stage3_max_reuse_distance", "sub_group_size", "overlap_comm", "contiguous_gradients")
               if r.get(f"zero_optimization.{key}") is not None or f"zero_optimization.{key}" in r.used]
    if buffers:
        notes.append(f"DeepSpeed buffer settings read but not modelled: {', '.join(buffers)}")
    return None, options, r.used, notes


_PARSERS: dict[str, Callable[[Mapping[str, Any], Mapping[str, Any]], Parsed]] = {
    "axolotl": _axolotl, "llama-factory": _llama_factory, "torchtune": _torchtune, "litgpt": _litgpt,
    "trl": lambda d, f: _trl(d, f, framework="trl"), "hf": lambda d, f: _trl(d, f, framework="hf"),
    "deepspeed": _deepspeed,
}  # fmt: skip


def load_config_file(path: str | Path) -> Any:
    """Load a YAML (needs pyyaml, the ``yaml`` extra) or JSON file."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as e:
        raise InvalidArgumentError("config", str(path), "a readable YAML or JSON file", hint=e.strerror) from e
    if p.suffix.lower() == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as e:
            raise MalformedConfigError(str(path), f"{path}: not valid JSON ({e.msg} at line {e.lineno})") from e
    try:
        import yaml
    except ImportError as e:
        raise MissingDependencyError("pyyaml", "yaml", "reading a YAML training config") from e
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as e:
        raise MalformedConfigError(str(path), f"{path}: not valid YAML ({e})") from e


def read_recipe(path: str | Path) -> RecipeConfig:
    """Read one config file (see :func:`parse_recipe`)."""
    return parse_recipe(load_config_file(path), name=str(path))


def merge_recipes(recipes: Iterable[RecipeConfig]) -> RecipeConfig:
    """Several files of one run (a TRL JSON with an accelerate config and a DeepSpeed JSON): options merged in
    order, a later file's value winning; the model from the first file that names one."""
    items = list(recipes)
    if not items:
        raise InvalidArgumentError("config", [], "at least one file")
    options: Options = {}
    model = None
    for item in items:
        options.update(item.options)
        model = model or item.model
    kinds = "+".join(item.kind for item in items)
    return RecipeConfig(kind=kinds, model=model, options=options,
                        understood=tuple(k for i in items for k in i.understood),
                        no_effect=tuple(k for i in items for k in i.no_effect),
                        unknown=tuple(k for i in items for k in i.unknown),
                        notes=tuple(n for i in items for n in i.notes))
