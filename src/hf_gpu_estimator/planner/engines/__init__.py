"""Serving engines: the KV cache each engine would allocate on a device, and what it holds.

Every engine answers with a :class:`ServingCapacity`: KV tokens, the sequences it serves at once at a
context length, and ``problem`` (one line) when it would not start. ``vllm`` (by version), ``sglang``,
``llama.cpp`` (llama-server) and ``transformers`` (``generate`` with a static batch).
"""

from __future__ import annotations

from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory.overhead import device_total_on
from hf_gpu_estimator.planner.engines._capacity import ENGINES, ServingCapacity, check_context, unsupported_engine
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

__all__ = ["ENGINES", "ServingCapacity", "default_engine", "engine_capacity", "unsupported_engine"]

_SETTINGS = {
    "vllm": {"gpu_memory_utilization", "max_model_len", "max_num_batched_tokens", "max_num_seqs", "block_size",
             "vllm_version", "speculative"},
    "sglang": {"mem_fraction_static", "max_model_len", "sglang_version", "speculative"},
    "llama.cpp": {"ctx_size", "parallel", "n_gpu_layers", "flash_attn", "speculative", "mmproj", "n_cpu_moe",
                  "cache_type_k", "cache_type_v", "override_tensors"},
    "transformers": {"max_model_len"},
}


def _transformers_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *,
                           max_model_len: int | None = None) -> ServingCapacity:
    """``model.generate`` with a static batch: the largest batch whose DynamicCache of ``max_model_len``
    tokens fits (the fit search of :mod:`hf_gpu_estimator.planner.fits`)."""
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.planner.fits import max_batch_size

    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with layer shapes for serving capacity")
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    length = max_model_len if max_model_len is not None else workload.seq_len + workload.new_tokens
    check_context(spec, length)
    new = min(workload.new_tokens, max(0, length - 1))
    w = workload.with_(seq_len=length - new, new_tokens=new)
    batch = max_batch_size(spec, w, gpu)
    est = estimate_memory(spec, w.with_(batch_size=max(1, batch)))
    kv = est.components.get("kv_cache", 0)
    per_token = kv // max(1, max(1, batch) * length)
    problem = None if batch >= 1 else (
        f"transformers would not run: one {length}-token sequence needs "
        f"{device_total_on(est, gpu) / (1 << 30):.1f} GiB on {gpu.name}; shorten the context, quantize, or add GPUs")
    return ServingCapacity(
        engine="transformers", engine_version=None, gpu=gpu.name, tp=w.parallelism.tp, pp=w.parallelism.pp,
        gpu_memory_utilization=1.0, max_num_batched_tokens=length * max(1, batch), max_num_seqs=batch,
        block_size=1, total_memory_bytes=gpu.usable_memory_bytes, weights_bytes=est.components.get("weights", 0),
        profile_peak_bytes=est.allocated_peak_bytes, non_torch_bytes=device_total_on(est, gpu) - est.reserved_peak_bytes,
        kv_pool_bytes=kv if batch else 0, kv_bytes_per_token=int(per_token), num_blocks=batch * length,
        kv_cache_tokens=batch * length, max_model_len=length, max_concurrent_sequences=batch,
        largest_max_model_len=min(max_pos, length) if batch else 0, fits=problem is None, problem=problem,
        assumptions=("transformers generate: a static batch, DynamicCache grown per step; the largest batch whose "
                     "estimated device total fits with the planner's margin",),
    )  # fmt: skip


def default_engine(spec: ModelSpec, workload: Workload) -> str:
    """The engine a plan sizes when none is named: llama.cpp for a GGUF model (``gguf:`` quantization),
    vLLM otherwise."""
    from hf_gpu_estimator.memory.llamacpp import is_llamacpp

    return "llama.cpp" if is_llamacpp(spec, workload.quantization) else "vllm"


def engine_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *, engine: str = "vllm",
                    **settings: Any) -> ServingCapacity:
    """Dispatch to one engine's capacity model; ``settings`` are that engine's flags (``None`` values ignored).

    Raises:
        InvalidArgumentError: An unknown engine, a setting the engine does not take, or an engine
            with no backend for the device (vLLM or SGLang on an Apple GPU).
    """
    if engine not in ENGINES:
        raise InvalidArgumentError("engine", engine, "one of " + ", ".join(ENGINES))
    if unsupported_engine(engine, gpu):
        raise InvalidArgumentError("engine", engine, f"llama.cpp or transformers on {gpu.name} ({gpu.runtime})")
    p = workload.parallelism
    if gpu.mig_parent is not None and p.tp * p.pp > 1:
        # MIG devices have no peer-to-peer path and a process sees one of them (NVIDIA MIG user guide): the
        # engines' tensor- and pipeline-parallel communicators cannot span slices.
        raise InvalidArgumentError("num_gpus", p.tp * p.pp, f"1 on {gpu.name}: a MIG slice runs one process with no "
                                   "peer-to-peer link, so tp/pp cannot span slices (pick a larger profile or the "
                                   f"whole {gpu.mig_parent})")
    given = {k: v for k, v in settings.items() if v is not None}
    unknown = sorted(set(given) - _SETTINGS[engine])
    if unknown:
        raise InvalidArgumentError(unknown[0], given[unknown[0]],
                                   f"a setting of {engine}: " + ", ".join(sorted(_SETTINGS[engine])))
    if engine == "vllm":
        from hf_gpu_estimator.planner.engines.vllm import serving_capacity

        return serving_capacity(spec, workload, gpu, **given)
    if engine == "sglang":
        from hf_gpu_estimator.planner.engines.sglang import sglang_capacity

        return sglang_capacity(spec, workload, gpu, **given)
    if engine == "llama.cpp":
        from hf_gpu_estimator.planner.engines.llamacpp import llamacpp_capacity

        return llamacpp_capacity(spec, workload, gpu, **given)
    return _transformers_capacity(spec, workload, gpu, **given)
