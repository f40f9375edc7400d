"""Drive a workload's phases on a built model: generate-like inference and the training step."""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Protocol

from hf_gpu_estimator.errors import TraceError
from hf_gpu_estimator.runtime.dtypes import torch_dtype
from hf_gpu_estimator.runtime.optimizers import make_optimizer
from hf_gpu_estimator.runtime.quirks import CODEBOOK_TYPES, FULL_SEQUENCE_STEPS, model_type_of
from hf_gpu_estimator.workload import Workload

if TYPE_CHECKING:
    import torch


class PhaseHooks(Protocol):
    """How a caller observes the phases the runner drives."""

    def phase(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Wrap one phase (``"prefill"``, ``"decode"``, ``"forward@1"`` ...)."""

    def setup(self, name: str) -> contextlib.AbstractContextManager[None]:
        """Wrap work that prepares a phase but is not one (its peak must not count)."""



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
    codebook for the audio decoders of :data:`CODEBOOK_TYPES` ([batch x num_codebooks, seq])."""
    rows = batch * int(model.config.num_codebooks) if model_type_of(model) in CODEBOOK_TYPES else batch
    return random_ids(vocab_size(model), rows, seq, device)


def labels_for(model: Any, ids: Any, batch: int) -> Any:
    """The training labels for ``ids`` (the same tokens, as ``labels=input_ids`` for a causal LM): the
    codebook decoders take them as [batch, seq, num_codebooks]."""
    if model_type_of(model) in CODEBOOK_TYPES:
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
        self.full_sequence = model_type_of(model) in FULL_SEQUENCE_STEPS

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
