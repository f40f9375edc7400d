"""Live ``torch.nn.Module`` sources: exact counts from ``parameters()`` (torch imported lazily)."""

from __future__ import annotations

from collections import Counter

from hf_gpu_estimator.errors import MalformedConfigError, UnsupportedArchitectureError
from hf_gpu_estimator.sources.config import config_to_dict, quantization_from_config, stored_dtype_from_config
from hf_gpu_estimator.sources.headers import kept_fp32_counts, off_text_path, role_of
from hf_gpu_estimator.spec import ROLES, TORCH_TO_SAFETENSORS, ModelSpec, ParameterCounts, Provenance, TensorInfo


def is_module(obj: object) -> bool:
    """Duck-typed ``torch.nn.Module`` check that does not import torch."""
    return callable(getattr(obj, "named_parameters", None)) and callable(getattr(obj, "state_dict", None))


def spec_from_module(module: object, *, model_id: str | None = None) -> ModelSpec:
    """A ModelSpec of a live module: counts, dtypes and bytes of its parameters and persistent buffers.

    Parameters shared between modules (tied embeddings) count once, as ``parameters()`` yields
    them once. bitsandbytes 4-bit parameters count their logical size (``quant_state.shape``).

    Args:
        module: A ``torch.nn.Module``, e.g. a transformers model (its ``config`` supplies the architecture).
        model_id: Name for reports; default ``config._name_or_path`` or the class name.
    """
    from hf_gpu_estimator import architectures

    by_role: dict[str, int] = dict.fromkeys(ROLES, 0)
    bytes_by_dtype: Counter[str] = Counter()
    float_bytes: Counter[str] = Counter()
    tensors: list[TensorInfo] = []
    notes: list[str] = []
    packed = 0
    counted: list[tuple[str, int]] = []
    for name, p in module.named_parameters():  # type: ignore[attr-defined]
        dtype = _safetensors_dtype(p.dtype)
        numel = p.numel()
        quant_state = getattr(p, "quant_state", None)
        if quant_state is not None and getattr(quant_state, "shape", None) is not None:
            logical = 1
            for d in quant_state.shape:
                logical *= int(d)
            numel, packed = logical, packed + 1
        by_role[role_of(name)] += numel
        counted.append((name, numel))
        nbytes = p.numel() * p.element_size()
        bytes_by_dtype[dtype] += nbytes
        if p.is_floating_point():
            float_bytes[str(p.dtype).removeprefix("torch.")] += nbytes
        tensors.append(TensorInfo(name=name, dtype=dtype, shape=tuple(p.shape)))
    if packed:
        notes.append(f"logical parameter count of {packed} bitsandbytes 4-bit parameters from their quant_state.shape")
    persistent = set(module.state_dict(keep_vars=True))  # type: ignore[attr-defined]
    for name, b in module.named_buffers():  # type: ignore[attr-defined]
        if name in persistent:
            bytes_by_dtype[_safetensors_dtype(b.dtype)] += b.numel() * b.element_size()

    provenance: dict[str, Provenance] = {"parameters": "module"}
    raw_config = getattr(module, "config", None)
    config = config_to_dict(raw_config, source=type(module).__name__) if raw_config is not None else {}
    architecture = None
    if config.get("model_type"):
        try:
            architecture = architectures.architecture_from_config(config)
            provenance["architecture"] = "config"
        except UnsupportedArchitectureError:
            notes.append(f"model_type {config['model_type']!r} has no dimension model: layer dimensions unknown")
        except MalformedConfigError as e:  # a live model is what it is: counts stay exact
            notes.append(f"the analytic layer model rejects this config ({e}): layer dimensions unknown")
    total = sum(by_role.values())
    active = total
    if architecture is not None and architecture.is_moe and architecture.num_experts_per_tok:
        try:
            counts = architectures.parameter_counts(config)
        except UnsupportedArchitectureError:
            counts = None
        if counts is not None and counts.total == total:
            active = counts.active
    stored = None
    if float_bytes:
        stored = max(float_bytes, key=lambda d: float_bytes[d])
        provenance["stored_dtype"] = "module"
    elif config:
        stored = stored_dtype_from_config(config)
        provenance["stored_dtype"] = "config"
    if stored is None:
        stored, provenance["stored_dtype"] = "float32", "default"
    quantization = quantization_from_config(config) if config else None
    name = model_id or (config.get("_name_or_path") if isinstance(config.get("_name_or_path"), str) else None)
    return ModelSpec(
        id=name or type(module).__name__,
        architecture=architecture,
        parameters=ParameterCounts(total=total, by_role={r: n for r, n in by_role.items() if n}, active=active,
                                   off_text_path=off_text_path(counted), kept_fp32=kept_fp32_counts(counted, config)),
        stored_dtype=stored,
        checkpoint_bytes=sum(bytes_by_dtype.values()),
        checkpoint_bytes_by_dtype=dict(bytes_by_dtype),
        quantization=quantization,
        config=config,
        tensors=tuple(tensors),
        provenance=provenance,
        assumptions=tuple(notes),
    )


def _safetensors_dtype(dtype: object) -> str:
    name = str(dtype).removeprefix("torch.")
    return TORCH_TO_SAFETENSORS.get(name, name.upper())
