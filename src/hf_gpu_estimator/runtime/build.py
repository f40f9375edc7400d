"""Build the transformers model for a config on a device, meta or fake tensors (never remote code)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.errors import MissingDependencyError, TraceError, UnknownModelTypeError
from hf_gpu_estimator.runtime.dtypes import torch_dtype, weight_dtype
from hf_gpu_estimator.runtime.quirks import adapt_built
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    import torch


#: Standard deviation of the random weights in measure mode (GPT-2/Llama initializer_range).
RANDOM_INIT_STD = 0.02

QLORA_FALLBACK = "qlora base traced as bf16; 4-bit weights from the analytic model"


@dataclass(kw_only=True)
class BuiltModel:
    """A model ready to run, with what the build had to approximate."""

    model: Any  # torch.nn.Module (a peft PeftModel for LoRA)
    weight_dtype: str
    fallbacks: list[str] = field(default_factory=list)


def require_torch_stack(feature: str) -> None:
    """Raise :class:`MissingDependencyError` unless torch and transformers import."""
    for package in ("torch", "transformers"):
        try:
            __import__(package)
        except ImportError as e:
            raise MissingDependencyError(package, "torch", feature) from e


def make_config(config: Mapping[str, Any]) -> Any:
    """A transformers ``PretrainedConfig`` from a config.json mapping (never remote code)."""
    import transformers

    model_type = config.get("model_type")
    if not isinstance(model_type, str) or not model_type:
        raise TraceError("config has no 'model_type': exact mode needs a transformers config.json")
    values = {k: v for k, v in config.items() if k != "model_type" and not k.startswith("_")}
    # Values that describe the checkpoint, not the architecture: quantization is applied by
    # the workload, remote code is never run, and the dtype is chosen by weight_dtype().
    for key in ("quantization_config", "auto_map", "dtype", "torch_dtype"):
        values.pop(key, None)
    if not knows_model_type(model_type):
        raise UnknownModelTypeError(model_type, transformers.__version__)
    try:
        cfg = transformers.AutoConfig.for_model(model_type, **values)
    except Exception as e:  # config classes validate with their own error types (huggingface_hub's strict dataclasses)
        raise TraceError(f"transformers {transformers.__version__} could not build a {model_type!r} config from "
                         f"config.json: {type(e).__name__}: {e}") from e
    architectures = config.get("architectures")
    if isinstance(architectures, list) and architectures and isinstance(architectures[0], str):
        cfg.architectures = [architectures[0]]
    return cfg


def knows_model_type(model_type: str) -> bool:
    """Whether the installed transformers implements ``model_type`` (its ``CONFIG_MAPPING_NAMES``)."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING_NAMES

    return model_type in CONFIG_MAPPING_NAMES


#: The auto mappings tried after the causal-LM one, for types without a ``*ForCausalLM`` class:
#: vision-language wrappers (``*ForConditionalGeneration``) take input_ids alone and generate text.
_WRAPPER_MAPPINGS = ("MODEL_FOR_IMAGE_TEXT_TO_TEXT_MAPPING_NAMES", "MODEL_FOR_MULTIMODAL_LM_MAPPING_NAMES")


def model_class(cfg: Any) -> Any:
    """The transformers class exact mode builds for ``cfg`` (never remote code).

    In order: the causal-LM class of ``cfg.model_type`` (``AutoModelForCausalLM``), then the
    config's ``architectures[0]`` when transformers itself defines that class for this config
    type (multimodal ``*ForConditionalGeneration`` wrappers), then the image-text-to-text and
    multimodal-LM auto classes.

    Raises:
        TraceError: transformers knows the model type but has no generating class for it.
    """
    import transformers
    from transformers.models.auto import modeling_auto

    model_type = cfg.model_type
    # (class name, whether transformers' auto mappings pair it with this model type)
    candidates: list[tuple[str, bool]] = []
    causal = modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES.get(model_type)
    if causal:
        candidates.append((causal, True))
    for name in getattr(cfg, "architectures", None) or ():
        if isinstance(name, str):
            candidates.append((name, False))
    for mapping in _WRAPPER_MAPPINGS:
        name = getattr(modeling_auto, mapping, {}).get(model_type)
        if name:
            candidates.append((name, True))
    for name, mapped in dict.fromkeys(candidates):
        cls = getattr(transformers, name, None) if name.isidentifier() else None
        config_class = getattr(cls, "config_class", None)
        # Only transformers' own classes; an architectures entry only when it is defined for this
        # config type (one naming another type's class, or a remote-code class, is never used).
        if isinstance(cls, type) and hasattr(cls, "_from_config") and (
            mapped or config_class is None or isinstance(cfg, config_class)
        ):
            return cls
    raise TraceError(
        f"transformers {transformers.__version__} has no text-generating class for model_type {model_type!r} "
        f"(tried: {', '.join(dict.fromkeys(n for n, _ in candidates)) or 'no *ForCausalLM / *ForConditionalGeneration class'})"
    )


@contextlib.contextmanager
def _skip_init() -> Iterator[None]:
    """Skip weight initialization: it dominates build time on 7B models and memory ignores it."""
    try:
        from transformers.initialization import no_init_weights  # transformers >= 5
    except ImportError:  # pragma: no cover - older transformers
        from transformers.modeling_utils import no_init_weights  # type: ignore[attr-defined,no-redef]
    with no_init_weights():
        yield


def build_model(
    config: Mapping[str, Any],
    workload: Workload,
    *,
    device: str | torch.device,
    init: str = "skip",
    fake_mode: Any = None,
) -> BuiltModel:
    """Build the transformers causal-LM for ``config`` as ``workload`` runs it.

    Args:
        config: a config.json mapping with ``model_type``.
        workload: the run; decides the weight dtype, attention implementation and LoRA.
        device: where the tensors live ("cuda", "cpu"; fake in trace mode).
        init: "skip" (no initializer runs: values are garbage, memory is the same),
            "random" (skip, then fill every floating parameter with N(0, 0.02) on the device,
            so measure mode computes on finite numbers) or "default" (transformers' own
            initializers, for the naive benchmark).
        fake_mode: a ``FakeTensorMode`` to build under (trace), or None (measure).

    Raises:
        TraceError: unknown architecture, or a build failure.
    """
    from hf_gpu_estimator.runtime.methods import apply_method  # methods builds on this module

    base = build_base_model(config, workload, device=device, init=init, fake_mode=fake_mode)
    with fake_mode if fake_mode is not None else contextlib.nullcontext():
        apply_method(base, workload)
    return base


def classification_class(cfg: Any, num_labels: int) -> Any:
    """``AutoModelForSequenceClassification``'s class for ``cfg``, with ``cfg.num_labels`` set; a config with no
    ``pad_token_id`` gets 0, since the class refuses a batch above 1 without one (it pools each sequence's last
    non-pad token; the traced ids are random, so which token is pooled does not change the memory).

    Raises:
        TraceError: transformers has no sequence-classification class for this model type.
    """
    import transformers
    from transformers.models.auto import modeling_auto

    name = modeling_auto.MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES.get(cfg.model_type)
    cls = getattr(transformers, name, None) if name else None
    if cls is None:
        raise TraceError(f"transformers {transformers.__version__} has no sequence-classification class for "
                         f"model_type {cfg.model_type!r}")
    cfg.num_labels = num_labels
    if getattr(cfg, "pad_token_id", None) is None:
        cfg.pad_token_id = 0
    return cls


def build_base_model(
    config: Mapping[str, Any],
    workload: Workload,
    *,
    device: str | torch.device,
    init: str = "skip",
    fake_mode: Any = None,
) -> BuiltModel:
    """The plain transformers model (no LoRA), see :func:`build_model`."""
    import torch
    import transformers

    cfg = make_config(config)
    cls = model_class(cfg) if workload.head != "classification" else classification_class(cfg, workload.num_labels)
    fallbacks: list[str] = []
    dtype_name = weight_dtype(config, workload)
    if workload.method == "qlora":
        # bitsandbytes 4-bit layers run neither on CPU nor on fake tensors: the frozen base is
        # traced in bf16 and the analytic model supplies the 4-bit weight bytes.
        dtype_name = "bfloat16"
        fallbacks.append(QLORA_FALLBACK)
    attn = workload.attn_implementation
    if attn == "flash_attention_2":
        # The flash-attn package is CUDA-only and absent on fake tensors. SDPA's flash backend
        # runs the same FlashAttention-2 kernels with the same memory (output + fp32 logsumexp);
        # the runner routes SDPA to it (see runtime/trace/cuda.py _sdpa_backend).
        attn = "sdpa"
        fallbacks.append("flash_attention_2 traced as sdpa with the flash backend (same kernels)")
    contexts: list[contextlib.AbstractContextManager[Any]] = []
    if fake_mode is not None:
        contexts.append(fake_mode)
    contexts.append(torch.device(device))
    if init in ("skip", "random"):
        contexts.append(_skip_init())
    try:
        with contextlib.ExitStack() as stack:
            for ctx in contexts:
                stack.enter_context(ctx)
            # "sdpa" is transformers' default: pass None so that, like from_pretrained without
            # the argument, a model class without SDPA support (gemma2) falls back to eager.
            model = instantiate(
                cls, cfg, attn_implementation=None if attn == "sdpa" else attn, dtype=torch_dtype(dtype_name)
            )
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError) as e:
        raise TraceError(f"could not build {cls.__name__} ({cfg.model_type!r}) from its config: "
                         f"{type(e).__name__}: {e}") from e
    with fake_mode if fake_mode is not None else contextlib.nullcontext():
        fallbacks.extend(adapt_built(model, cfg.model_type, dtype_name))
    if init in ("skip", "random"):
        # transformers 5 ties input/output embeddings inside its init path, which no_init_weights
        # skips: tie explicitly, or a tied model is traced with a second (untied) lm_head.
        with contextlib.ExitStack() as stack:
            if fake_mode is not None:
                stack.enter_context(fake_mode)
            model.tie_weights()
    used = getattr(model.config, "_attn_implementation", attn)
    if used != attn:
        fallbacks.append(f"{cfg.model_type} has no {attn} attention in transformers {transformers.__version__}: "
                         f"runs {used} (transformers' own default)")
    if init == "random":
        with torch.no_grad():
            for p in model.parameters():
                if p.is_floating_point():
                    p.normal_(0.0, RANDOM_INIT_STD)
    return BuiltModel(model=model, weight_dtype=dtype_name, fallbacks=fallbacks)


def instantiate(cls: Any, cfg: Any, **kwargs: Any) -> Any:
    """``cls._from_config(cfg, **kwargs)`` as ``AutoModelForCausalLM.from_config`` calls it: a text-only
    class (llama4's ``Llama4ForCausalLM``) of a composite config gets the config's text part
    (transformers ``auto_factory._BaseAutoModelClass.from_config``)."""
    sub_configs = getattr(cfg, "sub_configs", None) or {}
    config_class = getattr(cls, "config_class", None)
    text_class = sub_configs.get("text_config")
    if text_class is not None and config_class == text_class:
        cfg = cfg.get_text_config()
    elif config_class is not None and not isinstance(cfg, config_class):
        # A decoder class of a composite config under another name (musicgen's ``decoder``).
        name = next((k for k, c in sub_configs.items() if c == config_class), None)
        if name is not None and getattr(cfg, name, None) is not None:
            cfg = getattr(cfg, name)
    return cls._from_config(cfg, **kwargs)


def build_meta_model(config: Mapping[str, Any]) -> Any:
    """The transformers model for ``config`` on the meta device (shapes only, no memory), tied as loaded.

    ``sum(p.numel() for p in model.parameters())`` of it is the exact parameter count (a tied
    embedding and head are one parameter, counted once).

    Raises:
        UnknownModelTypeError: transformers does not implement the model type.
        TraceError: no generating class, or the build failed.
    """
    import torch

    cfg = make_config(config)
    cls = model_class(cfg)
    dtype = config.get("dtype") or config.get("torch_dtype")
    try:
        with torch.device("meta"), _skip_init():
            model = instantiate(cls, cfg, dtype=torch_dtype(dtype) if isinstance(dtype, str) and dtype != "auto"
                                else None)
        model.tie_weights()
    except (ValueError, TypeError, AttributeError, KeyError, IndexError, NotImplementedError, RuntimeError) as e:
        raise TraceError(f"could not build {cls.__name__} ({cfg.model_type!r}) on the meta device: "
                         f"{type(e).__name__}: {e}") from e
    return model
