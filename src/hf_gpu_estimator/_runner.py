"""Build a transformers model from a config and drive a workload's phases (shared by trace and measure).

Both the exact-mode tracer (:mod:`hf_gpu_estimator.trace`, fake tensors) and the measurement
runner (:mod:`hf_gpu_estimator.measure`, a real device) build the model and run the phases
through this module, so the two see the same code path: the same model class, the same
generate-like inference loop and the same training step. The caller observes the phases
through a :class:`PhaseHooks` object.

torch and transformers are imported inside the functions: ``import hf_gpu_estimator`` must
not import them.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from hf_gpu_estimator.errors import MissingDependencyError, TraceError, UnknownModelTypeError
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    import torch

#: Optimizers the runner builds (the workload's name → how). Others (8-bit, paged, lion) need
#: bitsandbytes or extra packages; the analytic model covers them.
SUPPORTED_OPTIMIZERS: tuple[str, ...] = ("adamw", "adam", "sgd", "sgd-momentum", "adafactor")

#: Learning rate of every optimizer the runner builds: its value changes no memory.
_LR = 1e-5

#: Standard deviation of the random weights in measure mode (GPT-2/Llama initializer_range).
RANDOM_INIT_STD = 0.02

QLORA_FALLBACK = "qlora base traced as bf16; 4-bit weights from the analytic model"


class PhaseHooks(Protocol):
    """How a caller observes the phases the runner drives."""

    def phase(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Wrap one phase (``"prefill"``, ``"decode"``, ``"forward@1"`` ...)."""

    def setup(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Wrap work that prepares a phase but is not one (its peak must not count)."""


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


def torch_dtype(name: str) -> torch.dtype:
    """The torch dtype for a canonical dtype name ('bfloat16' → torch.bfloat16)."""
    import torch

    dtype = getattr(torch, name, None)
    if not isinstance(dtype, torch.dtype):
        raise TraceError(f"unknown torch dtype {name!r}")
    return dtype


def weight_dtype(config: Mapping[str, Any], workload: Workload) -> str:
    """The dtype the model's weights are built in.

    Inference: ``workload.dtype``, else the config's ``dtype``/``torch_dtype``, else float32
    (what ``from_config`` gives without a dtype). Training: the precision's parameter dtype
    (Lightning: ``bf16-mixed`` keeps float32 weights, ``bf16-true`` bfloat16 ones); the frozen
    base of LoRA takes ``workload.dtype`` when given.
    """
    from hf_gpu_estimator.workload import normalize_dtype

    if workload.is_training:
        if workload.method != "full":
            # The frozen base of LoRA is loaded in the compute dtype (from_pretrained(dtype=bf16)),
            # as the analytic model assumes (memory/weights.py plan_weights).
            return workload.dtype or workload.precision.compute_dtype
        return workload.precision.param_dtype
    if workload.dtype is not None:
        return workload.dtype
    stored = config.get("dtype") or config.get("torch_dtype")
    if stored is None or stored == "auto":
        return "float32"
    return normalize_dtype("config dtype", stored)


def compute_dtype(workload: Workload, weights: str) -> str:
    """The dtype activations are computed in: the precision's for training, the weights' otherwise."""
    return workload.precision.compute_dtype if workload.is_training else weights


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
    import torch
    import transformers

    base = build_base_model(config, workload, device=device, init=init, fake_mode=fake_mode)
    with fake_mode if fake_mode is not None else contextlib.nullcontext():
        apply_method(base, workload)
    del torch, transformers
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
        # the runner routes SDPA to it (see trace._sdpa_backend).
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
        fallbacks.extend(_adapt_built(model, cfg.model_type, dtype_name))
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


# Per-type adaptations: each acts only on the model types it names (the ``model_type`` of the config the
# built class runs on), with the reason; every other type takes the common path unchanged.

#: Types transformers builds with some weights in float32 whatever dtype is asked for: cast as
#: ``model.to(dtype)`` does (what Lightning's ``*-true`` precisions do to the module, and what a user
#: must do to run them in half precision). XLNet creates its attention weights with
#: ``torch.FloatTensor`` (modeling_xlnet.py ``XLNetRelativeAttention.__init__``), which ignores the
#: default dtype; ``from_pretrained(dtype=bfloat16)`` keeps them float32 too (the loader casts to the
#: built parameter's dtype), and the first einsum then fails on mixed bfloat16/float32 operands.
_CAST_TO_WEIGHT_DTYPE = ("xlnet",)

#: Types that run one language adapter per input and raise without one chosen ("Input language unknown.
#: Please call `XmodPreTrainedModel.set_default_language()`"): the config's first language is set. Every
#: adapter has the same shape, so the memory does not depend on which.
_DEFAULT_LANGUAGE_TYPES = ("xmod",)

#: Audio decoders whose token ids hold one row per codebook: ``input_ids`` [batch x num_codebooks, seq]
#: and ``labels`` [batch, seq, num_codebooks] (MusicgenForCausalLM.forward's documented shapes).
_CODEBOOK_TYPES = ("musicgen_decoder", "musicgen_melody_decoder")

def _model_type(model: Any) -> str:
    return str(getattr(getattr(model, "config", None), "model_type", ""))


def _adapt_built(model: Any, model_type: str, dtype_name: str) -> list[str]:
    """The per-type adaptations of a freshly built model (see above); returns what was done."""
    done: list[str] = []
    if model_type in _CAST_TO_WEIGHT_DTYPE:
        dtype = torch_dtype(dtype_name)
        if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
            cast_floating_(model, dtype)
            done.append(f"{model_type}: transformers builds some weights in float32 whatever the dtype; "
                        f"cast to {dtype_name} as model.to({dtype_name}) does")
    if model_type in _DEFAULT_LANGUAGE_TYPES and getattr(model.config, "default_language", None) is None:
        language = next(iter(model.config.languages))
        model.set_default_language(language)
        done.append(f"{model_type}: no default_language in the config: runs the {language} adapter "
                    "(set_default_language); every language adapter has the same shape")
    return done


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


def apply_method(built: BuiltModel, workload: Workload) -> None:
    """Freeze the base and add LoRA adapters (peft) for ``lora``/``qlora``; no-op for ``full``."""
    if not workload.is_training or workload.method == "full":
        return
    try:
        import peft
    except ImportError as e:
        raise MissingDependencyError("peft", "peft", "tracing LoRA") from e
    targets: str | list[str] = list(workload.lora_targets)
    if targets == ["all-linear"]:
        targets = "all-linear"
    if workload.lora_on_lm_head:
        targets = [*([] if targets == "all-linear" else targets), "lm_head"] if targets != "all-linear" else targets
    if workload.method == "qlora":
        _qlora_recipe(built.model, workload)
    lora = peft.LoraConfig(
        r=workload.lora_rank,
        lora_alpha=workload.lora_alpha,
        target_modules=targets,
        lora_dropout=workload.lora_dropout,
        task_type=None if workload.head == "classification" else "CAUSAL_LM",
    )
    try:
        built.model = peft.get_peft_model(built.model, lora)
    except ValueError as e:
        raise TraceError(f"peft could not add LoRA to {workload.lora_targets}: {e}") from e
    if workload.head == "classification":
        # peft's SEQ_CLS task trains the new ``score`` head in full (modules_to_save: a trainable deep copy, which
        # fake parameters cannot take): the head itself is made trainable instead, one hidden x num_labels
        # weight less than peft holds.
        built.model.get_base_model().score.weight.requires_grad_(True)
    if not workload.precision.mixed:
        # Lightning's *-true precisions cast the whole module (adapters included) to the
        # parameter dtype; under mixed precision peft keeps the adapters in float32.
        cast_floating_(built.model, torch_dtype(workload.precision.param_dtype))


def _qlora_recipe(model: Any, workload: Workload) -> None:
    """The QLoRA recipe on the bf16 stand-in of a bitsandbytes 4-bit base (its linears are traced in bf16, the
    analytic model gives their 4-bit bytes): the k-bit recipe's fp32 casts, and bitsandbytes' autograd.

    * ``kbit_fp32_casts`` (peft ``prepare_model_for_kbit_training``, v0.13.0 src/peft/utils/other.py): every
      16-bit parameter that is not ``Params4bit`` becomes fp32: all but the linears bitsandbytes quantizes
      (transformers keeps the output head unquantized).
    * The quantized linears run :class:`_MatMul4BitStandIn`, which keeps what bitsandbytes' ``MatMul4Bit``
      keeps for backward: the packed weight, and before bitsandbytes 0.43.2 the input as well
      (``ctx.tensors = (A, B)``; commit 9e753741 made it ``(None, B)``).
    """
    import torch

    head = model.get_output_embeddings()
    quantized = [m for m in model.modules() if isinstance(m, torch.nn.Linear) and m is not head]
    if workload.kbit_fp32_casts:
        skip = {id(m) for m in quantized}
        for sub in model.modules():
            if id(sub) not in skip and not list(sub.children()) and sub._parameters:
                cast_floating_(sub, torch.float32)
    compute = torch_dtype(workload.precision.compute_dtype)
    for linear in quantized:
        linear.forward = _quantized_forward(linear, compute, keep_input=workload.quantized_saves_input)


def _quantized_forward(linear: Any, compute: Any, *, keep_input: bool) -> Callable[[Any], Any]:
    def forward(x: Any) -> Any:
        # bitsandbytes Linear4bit.forward: the input is cast to the compute dtype, the output back to the input's.
        out = _MatMul4BitStandIn.apply(x.to(compute), linear.weight, linear.bias, keep_input)
        return out.to(x.dtype)

    return forward


def _matmul_4bit_stand_in() -> Any:
    import torch

    class MatMul4BitStandIn(torch.autograd.Function):
        """bitsandbytes ``MatMul4Bit`` (bitsandbytes/autograd/_functions.py) on a 16-bit weight: forward
        ``linear(A, dequantize(B))``; ``ctx.tensors`` holds B, and A before 0.43.2; backward ``grad @ B``."""

        @staticmethod
        def forward(ctx: Any, A: Any, B: Any, bias: Any, keep_input: bool) -> Any:
            ctx.tensors = (A if keep_input else None, B)
            return torch.nn.functional.linear(A, B, bias)

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            _, B = ctx.tensors
            return grad @ B.to(grad.dtype), None, None, None

    return MatMul4BitStandIn


class _LazyFunction:
    def __init__(self, make: Callable[[], Any]):
        self._make = make
        self._cls: Any = None

    def apply(self, *args: Any) -> Any:
        if self._cls is None:
            self._cls = self._make()
        return self._cls.apply(*args)


_MatMul4BitStandIn = _LazyFunction(_matmul_4bit_stand_in)


def cast_floating_(module: Any, dtype: torch.dtype) -> None:
    """Cast ``module``'s floating parameters and buffers to ``dtype`` in place, like ``module.to(dtype)``.

    ``Module.to`` goes through ``Module._apply``, which swaps every FakeTensor parameter with
    ``torch.utils.swap_tensors`` (even one already in ``dtype``), and a swap refuses a tensor
    with a weakref: the fake-tensor converter memo, MemTracker or autograd may hold one, so
    ``.to`` fails on fake tensors with "_apply(): Couldn't swap ...". Here only tensors whose
    dtype differs are replaced, by new Parameters (tied parameters stay tied), and nothing
    is swapped. On real tensors the result equals ``module.to(dtype)``.
    """
    import torch

    cast: dict[int, tuple[Any, Any]] = {}  # id → (original, cast); the original kept alive so ids stay unique

    def converted(t: Any, make: Callable[[Any], Any]) -> Any:
        hit = cast.get(id(t))
        if hit is None:
            with torch.no_grad():
                hit = cast[id(t)] = (t, make(t))
        return hit[1]

    for sub in module.modules():
        for name, param in list(sub._parameters.items()):
            if param is not None and param.is_floating_point() and param.dtype != dtype:
                sub._parameters[name] = converted(
                    param, lambda p: torch.nn.Parameter(p.to(dtype), requires_grad=p.requires_grad))
        for name, buf in list(sub._buffers.items()):
            if buf is not None and buf.is_floating_point() and buf.dtype != dtype:
                sub._buffers[name] = converted(buf, lambda b: b.to(dtype))


def make_optimizer(params: list[Any], workload: Workload) -> Any:
    """The torch optimizer for ``workload.optimizer`` over ``params``.

    AdamW/Adam use ``foreach=True`` explicitly: PyTorch's default on CUDA, while on fake or CPU
    tensors the automatic choice falls back to the per-parameter loop, whose temporaries differ.

    Raises:
        TraceError: the optimizer needs a package the runner does not use (bitsandbytes, lion).
    """
    import torch

    name = workload.optimizer.name
    if name == "adamw":
        return torch.optim.AdamW(params, lr=_LR, foreach=True)
    if name == "adam":
        return torch.optim.Adam(params, lr=_LR, foreach=True)
    if name == "sgd":
        return torch.optim.SGD(params, lr=_LR, momentum=0.0, foreach=True)
    if name == "sgd-momentum":
        return torch.optim.SGD(params, lr=_LR, momentum=0.9, foreach=True)
    if name == "adafactor":
        from transformers.optimization import Adafactor

        # Trainer's defaults for optim="adafactor" (scale_parameter=False, relative_step=False).
        return Adafactor(params, lr=_LR, scale_parameter=False, relative_step=False, warmup_init=False)
    raise TraceError(
        f"optimizer {name!r} is not run in exact mode/measure (needs bitsandbytes or an extra package); "
        f"supported: {', '.join(SUPPORTED_OPTIMIZERS)}; the analytic estimate covers it"
    )


def new_cache(model: Any) -> Any:
    """The cache ``generate`` builds by default: ``DynamicCache(config=<text config>)``."""
    from transformers import DynamicCache

    config = model.config
    get_text = getattr(config, "get_text_config", None)
    text_config = get_text(decoder=True) if get_text is not None else config
    decoder_layers = getattr(text_config, "decoder_layers", None)
    if isinstance(decoder_layers, int) and decoder_layers != getattr(text_config, "num_hidden_layers", None):
        # The decoder half of an encoder-decoder config used as a causal LM (BartForCausalLM ...):
        # num_hidden_layers names the encoder's stack, so a cache sized by it is too short. A cache
        # without config grows one full-attention layer per decoder layer (these have no sliding).
        return DynamicCache()
    try:
        return DynamicCache(config=text_config)
    except TypeError:  # pragma: no cover - older DynamicCache without config
        return DynamicCache()


def _greedy_next(logits: Any) -> Any:
    # generate: outputs.logits[:, -1].to(copy=True, dtype=float32), then argmax for greedy.
    import torch

    next_logits = logits[:, -1, :].to(copy=True, dtype=torch.float32)
    return torch.argmax(next_logits, dim=-1, keepdim=True)


def random_ids(vocab_size: int, batch: int, seq: int, device: Any) -> Any:
    """Token ids (int64, like a tokenizer's) of shape [batch, seq]."""
    import torch

    return torch.randint(0, vocab_size, (batch, seq), device=device, dtype=torch.long)


def input_ids(model: Any, batch: int, seq: int, device: Any) -> Any:
    """The model's token ids for ``batch`` sequences of ``seq`` tokens: [batch, seq], or one row per
    codebook for the audio decoders of :data:`_CODEBOOK_TYPES` ([batch x num_codebooks, seq])."""
    rows = batch * int(model.config.num_codebooks) if _model_type(model) in _CODEBOOK_TYPES else batch
    return random_ids(vocab_size(model), rows, seq, device)


def labels_for(model: Any, ids: Any, batch: int) -> Any:
    """The training labels for ``ids`` (the same tokens, as ``labels=input_ids`` for a causal LM): the
    codebook decoders take them as [batch, seq, num_codebooks]."""
    if _model_type(model) in _CODEBOOK_TYPES:
        return ids.view(batch, -1, ids.shape[-1]).transpose(1, 2)
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    if type(base).__name__.endswith("ForSequenceClassification"):
        # One class id per sequence (ForSequenceClassificationLoss: single_label_classification).
        return random_ids(int(model.config.num_labels), batch, 1, ids.device).view(batch)
    return ids


def vocab_size(model: Any) -> int:
    config = model.config
    get_text = getattr(config, "get_text_config", None)
    text_config = get_text(decoder=True) if get_text is not None else config
    return int(text_config.vocab_size)


def run_inference(
    model: Any,
    workload: Workload,
    hooks: PhaseHooks,
    *,
    device: Any,
    real_decode: bool,
    on_decode_step: Callable[[int], None] | None = None,
) -> Any:
    """Greedy generation as ``model.generate`` runs it: prefill, then one token per step.

    Each forward passes ``use_cache=True``, ``logits_to_keep=1`` (generate sets it when the
    model supports it) and a ``DynamicCache(config=...)`` (generate's default cache; models that
    keep their own state, such as RWKV, get theirs back as generate passes it), and takes
    ``logits[:, -1].to(copy=True, dtype=float32)`` then argmax, as generate's greedy loop does.

    Returns the cache (for its size).

    Phases:
        ``"prefill"``: the forward over the ``seq_len`` prompt tokens (cache filled to seq_len).
        ``"decode"``: with ``real_decode`` (measure), all ``new_tokens - 1`` decode steps that
            follow the prefill (the prefill itself yields the first new token). Without it
            (trace), the *last* decode step only, the one with the largest cache: under
            ``hooks.setup("decode_cache")`` the cache is filled by one prefill of
            ``seq_len + new_tokens - 2`` tokens, whose outputs are dropped, then one
            ``[batch, 1]`` step runs under ``hooks.phase("decode")``, growing the cache to
            ``seq_len + new_tokens - 1`` entries. That is the step generate runs to produce
            token ``new_tokens``; the cache's memory equals the one real decoding builds.

    Types of :data:`FULL_SEQUENCE_STEPS` are given the whole sequence at every step through
    their ``prepare_inputs_for_generation``, as their generate does.
    """
    import torch

    model.eval()
    step = _Stepper(model)
    batch, seq, new = workload.batch_size, workload.seq_len, workload.new_tokens
    with torch.no_grad():
        ids = input_ids(model, batch, seq, device)
        cache = step.new_cache()
        with hooks.phase("prefill"):
            token, cache = step(ids, cache)
        if not step.full_sequence:
            del ids
        if new <= 1:
            return cache
        if real_decode:
            with hooks.phase("decode"):
                for i in range(new - 1):
                    if step.full_sequence:
                        ids = torch.cat([ids, token], dim=1)
                    token, cache = step(ids if step.full_sequence else token, cache)
                    if on_decode_step is not None:
                        on_decode_step(i)
            return cache
        del cache, token
        with hooks.setup("decode_cache"):
            ids = input_ids(model, batch, seq + new - 2, device)
            token, cache = step(ids, step.new_cache())
            if step.full_sequence:
                ids = torch.cat([ids, token], dim=1)
            else:
                del ids
        with hooks.phase("decode"):
            token, cache = step(ids if step.full_sequence else token, cache)
    return cache


#: Types whose ``generate`` feeds the whole sequence at every step, through the class's own
#: ``prepare_inputs_for_generation``, with why. Only these are stepped that way; every other type gets
#: the new token alone, as transformers' default ``prepare_inputs_for_generation`` slices it.
FULL_SEQUENCE_STEPS: Mapping[str, str] = {
    # XLMWithLMHeadModel.prepare_inputs_for_generation appends a mask token to the whole sequence and
    # XLMModel.forward drops the positions its cache holds ("do not recompute cached elements"): given
    # the new token alone it slices the input to a negative length.
    "xlm": "XLM's generate passes the whole sequence plus a mask token; its forward skips the cached part",
    # CpmAntForCausalLM.prepare_inputs_for_generation passes generate's full input_ids on ("forward slices off
    # the cached prefix itself, so it needs the full input_ids").
    "cpmant": "CPM-Ant's generate passes the whole sequence; its forward slices off the cached prefix",
}


#: Output fields that carry a model's own decoding state, when it does not take a DynamicCache
#: (transformers' ``_supports_default_dynamic_cache``: rwkv ``state``, xlstm ``cache_params``,
#: xlnet ``mems``, reformer ``past_buckets_states``, minimax's own cache).
_STATE_FIELDS = ("cache", "past_key_values", "state", "cache_params", "mems", "past_buckets_states")


class _Stepper:
    """One greedy generation step as ``generate`` runs it, for the model's cache convention."""

    def __init__(self, model: Any) -> None:
        self.model = model
        forward = getattr(model, "forward", None)
        try:
            self.params = set(inspect.signature(forward).parameters) if forward is not None else set()
        except (TypeError, ValueError):
            self.params = set()
        self.key = "cache" if "cache" in self.params else "past_key_values"
        # generate passes logits_to_keep=1 when the forward accepts it.
        self.extra = {"logits_to_keep": 1} if "logits_to_keep" in self.params else {}
        supports = getattr(model, "_supports_default_dynamic_cache", None)
        self.own_state = callable(supports) and not supports()
        self.full_sequence = _model_type(model) in FULL_SEQUENCE_STEPS

    def new_cache(self) -> Any:
        return None if self.own_state else new_cache(self.model)

    def __call__(self, ids: Any, cache: Any) -> tuple[Any, Any]:
        kwargs: dict[str, Any] = {"use_cache": True, **self.extra}
        if cache is not None:
            kwargs[self.state_key if self.own_state else self.key] = cache
        if self.full_sequence:
            kwargs = self.model.prepare_inputs_for_generation(ids, **kwargs)
            out = self.model(**kwargs)
        else:
            out = self.model(input_ids=ids, **kwargs)
        if self.own_state:
            cache = next((getattr(out, f) for f in _STATE_FIELDS if getattr(out, f, None) is not None), None)
        token = _greedy_next(out.logits)
        del out
        return token, cache

    @property
    def state_key(self) -> str:
        return next((f for f in _STATE_FIELDS if f in self.params), self.key)


def prepare_training(
    model: Any, workload: Workload, *, checkpoint_context_fn: Callable[[], Any] | None = None
) -> tuple[Any, list[Any]]:
    """``model.train()``, gradient checkpointing, and the optimizer over the trainable params.

    Gradient checkpointing: ``model.gradient_checkpointing_enable()`` with transformers'
    defaults: in transformers 5, ``{"use_reentrant": False}``, and it calls
    ``enable_input_require_grads()`` for input_ids models (as Trainer/peft do for LoRA).
    ``checkpoint_context_fn`` is passed to ``torch.utils.checkpoint`` as ``context_fn`` (the
    tracer re-enters its torch-function mode during recomputation, which the autograd engine
    does not propagate); it changes no memory.
    """
    model.train()
    if workload.gradient_checkpointing and workload.use_reentrant:
        _reentrant_checkpointing(model, checkpoint_context_fn)
    elif workload.gradient_checkpointing:
        # transformers >= 5.2x renamed it activation_checkpointing_enable (old name deprecated).
        enable = getattr(model, "activation_checkpointing_enable", None)
        if enable is not None and checkpoint_context_fn is not None:
            enable({"use_reentrant": False, "context_fn": checkpoint_context_fn})
        elif enable is not None:
            enable()
        elif checkpoint_context_fn is not None:
            model.gradient_checkpointing_enable(
                gradient_checkpointing_kwargs={"use_reentrant": False, "context_fn": checkpoint_context_fn}
            )
        else:
            model.gradient_checkpointing_enable()
        if workload.method != "full" and hasattr(model, "enable_input_require_grads"):
            model.enable_input_require_grads()
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise TraceError("the model has no trainable parameters for this workload")
    return make_optimizer(params, workload), params


def _reentrant_checkpointing(model: Any, context_fn: Callable[[], Any] | None) -> None:
    """Checkpoint every decoder layer with ``torch.utils.checkpoint(use_reentrant=True)``, as transformers
    4.35-4.4x ``gradient_checkpointing_enable()`` did by default, and make the embedding output require a
    gradient (``enable_input_require_grads``: the reentrant variant passes gradients only to inputs that
    require one). The reentrant variant takes no ``context_fn``: the recompute (the layer run again with
    gradients enabled, inside backward) enters ``context_fn``'s recompute context itself."""
    import torch
    from torch.utils.checkpoint import checkpoint

    def checkpointed(function: Callable[..., Any], *args: Any) -> Any:
        def layer(*inputs: Any) -> Any:
            recompute = (context_fn()[1] if context_fn is not None and torch.is_grad_enabled()
                         else contextlib.nullcontext())
            with recompute:
                return function(*inputs)

        return checkpoint(layer, *args, use_reentrant=True)

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    base._set_gradient_checkpointing(enable=True, gradient_checkpointing_func=checkpointed)
    model.enable_input_require_grads()


def run_training(
    model: Any,
    optimizer: Any,
    workload: Workload,
    hooks: PhaseHooks,
    *,
    device: Any,
    steps: int = 2,
    on_micro_step: Callable[[], None] | None = None,
    amp_context: Callable[[], contextlib.AbstractContextManager[Any]] | None = None,
) -> Any:
    """``steps`` optimizer steps, as Lightning's automatic optimization runs them.

    Each micro-step: forward + loss under ``torch.autocast(device_type, compute_dtype)`` when the
    precision is mixed (Lightning wraps exactly forward and loss), loss =
    ``model(input_ids=ids, labels=ids).loss`` (transformers upcasts the logits to float32 in its
    loss), ``loss.backward()`` outside autocast. After ``gradient_accumulation_steps``
    micro-steps: ``optimizer.step()`` then ``optimizer.zero_grad(set_to_none=True)``.

    Phases: ``"forward@{step}"``, ``"backward@{step}"``, ``"optimizer_step@{step}"`` for steps
    1..``steps``; with accumulation, ``"forward@{step}.{micro}"`` and ``"backward@{step}.{micro}"``.

    ``amp_context`` replaces ``torch.autocast`` around forward+loss (the tracer's emulation of
    CUDA autocast on CPU-only torch builds).

    Returns:
        The last loss tensor (detached).
    """
    import torch

    device_type = torch.device(device).type
    autocast = workload.precision.mixed
    amp_dtype = torch_dtype(workload.precision.compute_dtype)
    accumulation = workload.gradient_accumulation_steps
    ids = input_ids(model, workload.batch_size, workload.seq_len, device)
    labels = labels_for(model, ids, workload.batch_size)
    loss_value = None
    for step in range(1, steps + 1):
        for micro in range(1, accumulation + 1):
            suffix = f"@{step}" if accumulation == 1 else f"@{step}.{micro}"
            if on_micro_step is not None:
                on_micro_step()
            with hooks.phase("forward" + suffix):
                if not autocast:
                    ctx: contextlib.AbstractContextManager[Any] = contextlib.nullcontext()
                elif amp_context is not None:
                    ctx = amp_context()
                else:
                    ctx = torch.autocast(device_type, dtype=amp_dtype)
                with ctx:
                    loss = model(input_ids=ids, labels=labels).loss
                if accumulation > 1:
                    loss = loss / accumulation
            with hooks.phase("backward" + suffix):
                loss.backward()
            loss_value = loss.detach()
            del loss
        with hooks.phase(f"optimizer_step@{step}"):
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return loss_value


def reset_model(model: Any, workload: Workload) -> None:
    """Undo what a training run changed, so a cached base model can be traced again."""
    if workload.gradient_checkpointing:
        disable = getattr(model, "activation_checkpointing_disable", None) or model.gradient_checkpointing_disable
        disable()
        if hasattr(model, "disable_input_require_grads"):
            try:
                model.disable_input_require_grads()
            except AttributeError:  # the hook was never registered
                pass
    for p in model.parameters():
        p.grad = None
    model.eval()
