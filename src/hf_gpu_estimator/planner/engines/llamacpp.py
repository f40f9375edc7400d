"""llama.cpp server: the buffers llama-server allocates for ``-c`` tokens shared by ``-np`` slots, with
``--n-gpu-layers`` layers on the GPU (the GGUF memory model of :mod:`hf_gpu_estimator.memory.llamacpp`).

llama-server allocates everything up front (src/llama-model.cpp load_tensors, src/llama-kv-cache.cpp,
src/llama-context.cpp): the offloaded layers' weights, the KV cache of ``-c`` cells (padded to 256)
in ``-ctk/-ctv`` (f16 by default; sliding-window layers keep ``n_swa x n_seq + n_ubatch`` cells), and
the compute buffer of one 512-token micro-batch. Each of the ``-np`` slots gets ``-c / -np`` tokens.
A transformers checkpoint is sized as ``convert_hf_to_gguf.py`` writes it in its own 16-bit type
(``--quantization int8`` as Q8_0); ``--quantization gguf:<TYPE>`` as ``llama-quantize`` writes it.
"""

from __future__ import annotations

from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.memory.llamacpp import (
    clip_compute_buffer,
    llamacpp_memory,
    parse_override_tensors,
    served_memory,
)
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.planner.engines._capacity import ServingCapacity, check_context
from hf_gpu_estimator.planner.engines.speculative import Speculative
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.verdict import Assumption
from hf_gpu_estimator.workload import Workload

#: The key of the line that says what stays in host memory (``-ngl`` below every layer).
HOST_MEMORY_KEY = "llama.cpp:host_memory"

GiB = 1 << 30
#: llama-server's ``-np`` when not given (one slot; builds from late 2025 pick 4 slots over a unified cache).
LLAMACPP_DEFAULT_PARALLEL = 1
#: torch dtypes and quantizations -> the GGUF type a transformers checkpoint is served in.
_GGUF_OF = {"bfloat16": "gguf:BF16", "float16": "gguf:F16", "float32": "gguf:F32", "int8": "gguf:Q8_0"}


def _gguf_quantization(spec: ModelSpec, workload: Workload) -> tuple[str | None, str | None]:
    """(the ``gguf:`` type to size the model in, or ``None`` for a GGUF file as it is; a note)."""
    quant = workload.quantization
    if quant.startswith("gguf:"):
        return quant, None
    if getattr(spec, "gguf_tensors", ()) and quant == "none":
        return None, None
    if quant == "none":
        dtype = plan_weights(spec, workload).compute_dtype
        target = _GGUF_OF.get(dtype, "gguf:F16")
        return target, f"served as a {target[5:]} GGUF (convert_hf_to_gguf.py of the {dtype} checkpoint)"
    if quant == "int8":
        return _GGUF_OF["int8"], "--quantization int8 served as a Q8_0 GGUF"
    raise ConflictingOptionsError("quantization", quant, "is not a llama.cpp format",
                                  fix="pass --quantization gguf:Q4_K_M (or another GGUF type), or another --engine")


def llamacpp_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *, ctx_size: int | None = None,
                      parallel: int = LLAMACPP_DEFAULT_PARALLEL, n_gpu_layers: int | None = None,
                      flash_attn: str | None = None, speculative: Speculative | None = None,
                      mmproj: bool = False, n_cpu_moe: int | None = None, cache_type_k: str | None = None,
                      cache_type_v: str | None = None,
                      override_tensors: str | tuple[str, ...] | None = None) -> ServingCapacity:
    """What llama-server ``-c ctx_size -np parallel -ngl n_gpu_layers -fa flash_attn`` holds on ``gpu``.

    ``flash_attn``: ``on``, ``off`` or ``auto`` (the default;
    :func:`~hf_gpu_estimator.memory.llamacpp.flash_attention_on`).
    Without flash attention the compute buffer holds the f32 attention scores of one micro-batch, and a
    quantized V cache is refused (llama.cpp: "V cache quantization requires flash_attn").

    ``cache_type_k`` / ``cache_type_v``: ``-ctk`` / ``-ctv`` (f16, bf16, f32, q8_0, q4_0, q4_1, iq4_nl,
    q5_0, q5_1); each defaults to the workload's ``cache_type_k`` / ``cache_type_v``, then its ``kv_cache_dtype``,
    else f16 (:func:`~hf_gpu_estimator.memory.llamacpp.served_memory`, the path ``hfge estimate`` takes too).

    With several GPUs (``tp x pp``) the buffers are split evenly by layers (``--split-mode layer``).

    ``speculative`` (method ``draft``: ``--model-draft``): llama-server loads the draft model once (all its
    layers on the GPU) and gives every slot a draft context of the slot's ``-c / -np`` cells in f16 with
    its own compute buffer (tools/server/server.cpp ``load_model``, ``init``: ``slot.ctx_dft``); the
    draft is sized in the target's GGUF type.

    ``n_cpu_moe``: ``--n-cpu-moe N``, the routed experts of the first N layers in host memory.

    ``override_tensors``: ``-ot PATTERN=BUFFER,...`` (one string or several, in order): a tensor whose name
    matches a pattern goes to that buffer (``CPU``: host memory; ``CUDA0`` ...: the GPU), the first match
    winning, before ``--n-cpu-moe``'s patterns (:func:`~hf_gpu_estimator.memory.llamacpp.parse_override_tensors`).

    ``mmproj``: a vision-language model served with ``--mmproj``: the vision tower and projector, which
    convert_hf_to_gguf.py writes to that separate file (f16 by default), are loaded on the GPU (tools/mtmd,
    offloaded unless ``--no-mmproj-offload``), beside the image encoder's compute buffer, reserved at start-up
    for one warm-up image with llama-server's ``-fa``
    (:func:`~hf_gpu_estimator.memory.llamacpp.clip_compute_buffer`).

    Raises:
        InvalidArgumentError: A bad ``-c``, ``-np`` or ``-ngl``, or a context beyond the model's limit.
        ConflictingOptionsError: A quantization llama.cpp does not serve (bitsandbytes, GPTQ ...).
    """
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with layer shapes for serving capacity")
    if isinstance(parallel, bool) or not isinstance(parallel, int) or parallel < 1:
        raise InvalidArgumentError("parallel", parallel, "an integer >= 1 (llama-server -np)")
    if n_gpu_layers is not None and (isinstance(n_gpu_layers, bool) or not isinstance(n_gpu_layers, int)):
        raise InvalidArgumentError("n_gpu_layers", n_gpu_layers, "an integer (-1 or more than the layers: all)")
    ngl = None if n_gpu_layers is None or n_gpu_layers < 0 else n_gpu_layers
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    ctx = ctx_size if ctx_size else max_pos
    check_context(spec, ctx)
    if parallel > ctx:
        raise InvalidArgumentError("parallel", parallel, f"at most -c {ctx} (each slot gets -c / -np tokens)")
    quant, note = _gguf_quantization(spec, workload)
    overrides = parse_override_tensors(override_tensors)
    m, fa_note = served_memory(spec, workload, n_ctx=ctx, n_parallel=parallel, n_gpu_layers=ngl, quantization=quant,
                               runtime=gpu.runtime, flash_attn=flash_attn or "auto", n_cpu_moe=n_cpu_moe or 0,
                               override_tensors=overrides, cache_type_k=cache_type_k, cache_type_v=cache_type_v)
    fa = m.flash_attention
    devices = workload.parallelism.tp * workload.parallelism.pp
    weights, kv, compute = m.weights_gpu // devices, m.kv_gpu // devices, m.compute_buffer
    draft_note = mmproj_note = None
    if mmproj:
        if not arch.vision_parameters:
            raise InvalidArgumentError("mmproj", mmproj, f"a vision-language model ({spec.id} has no vision tower)")
        weights += arch.vision_parameters * 2
        mmproj_note = (f"--mmproj: the vision tower and projector ({arch.vision_parameters:,} parameters) in f16, "
                       f"{arch.vision_parameters * 2 / GiB:.2f} GiB on the GPU")
        if arch.vision is None:
            mmproj_note += "; the image encoder's compute buffer is not modelled for this vision tower"
        else:
            clip = clip_compute_buffer(arch.vision, flash_attention=fa, out_hidden=arch.hidden_size)
            compute += clip.bytes
            mmproj_note += (f", and the image encoder's compute buffer, {clip.bytes / GiB:.2f} GiB with flash "
                            f"attention {'on' if fa else 'off'} ({clip.formula}; clip.cpp warmup / "
                            "alloc_compute_meta, checked against llama.cpp's logs in docs/serving.md)")
    if speculative is not None:
        if speculative.method != "draft" or speculative.draft is None:
            raise InvalidArgumentError("speculative_method", speculative.method,
                                       "draft for llama.cpp (llama-server --model-draft)")
        d = llamacpp_memory(speculative.draft, n_ctx=ctx // parallel, n_parallel=1, kv_type="f16",
                            quantization=quant, flash_attention=fa)
        weights += d.weights_gpu // devices
        kv += parallel * d.kv_gpu // devices
        compute += parallel * d.compute_buffer
        draft_note = (f"--model-draft {speculative.draft.id}: {d.weights_gpu / GiB:.2f} GiB of weights, and per slot a "
                      f"draft context of {ctx // parallel} f16 cells ({d.kv_gpu / GiB:.2f} GiB) with a "
                      f"{d.compute_buffer / GiB:.2f} GiB compute buffer (server.cpp slot.ctx_dft)")
    total = gpu.usable_memory_bytes
    context = overhead.runtime_context_bytes(gpu)
    free = total - context - weights - compute
    per_cell = kv / max(1, m.kv_cells)
    longest = min(max_pos, int(free // per_cell)) if per_cell else max_pos
    problem = None
    if weights + kv + compute > total - context:
        problem = (f"llama.cpp would not start: {weights / GiB:.1f} GiB of weights, {kv / GiB:.1f} GiB of KV cache "
                   f"({ctx} tokens) and a {compute / GiB:.2f} GiB compute buffer exceed {gpu.name}'s "
                   f"{(total - context) / GiB:.1f} GiB; lower -c, offload fewer layers (-ngl) or pick a smaller "
                   "quantization")
    assumptions = [
        (f"llama-server -c {ctx} -np {parallel} -ngl {m.n_gpu_layers}/{m.n_layer + 1} -ctk/-ctv {m.kv_type}: "
         f"{m.formula}; {ctx // parallel} tokens per slot (memory/llamacpp.py)"),
        Assumption(key=HOST_MEMORY_KEY, text=f"{m.weights_host / GiB:.2f} GiB of weights and {m.kv_host / GiB:.2f} "
                                             "GiB of KV cache stay in host memory"),
        fa_note,
    ]
    if devices > 1:
        assumptions.append(f"split by layers over {devices} GPUs (--split-mode layer), evenly")
    if n_cpu_moe:
        assumptions.append(f"--n-cpu-moe {n_cpu_moe}: the routed experts of the first {n_cpu_moe} layers stay in host "
                           "memory (common/arg.cpp: a CPU buffer override per layer)")
    if note:
        assumptions.append(note)
    assumptions += [n for n in (draft_note, mmproj_note) if n]
    return ServingCapacity(
        engine="llama.cpp", engine_version=None, gpu=gpu.name, tp=workload.parallelism.tp,
        pp=workload.parallelism.pp, gpu_memory_utilization=1.0, max_num_batched_tokens=min(2048, ctx),
        max_num_seqs=parallel, block_size=1, total_memory_bytes=total, weights_bytes=int(weights),
        profile_peak_bytes=int(weights + compute), non_torch_bytes=context, kv_pool_bytes=int(kv),
        kv_bytes_per_token=int(per_cell), num_blocks=m.kv_cells, kv_cache_tokens=ctx, max_model_len=ctx // parallel,
        max_concurrent_sequences=parallel if problem is None else 0, largest_max_model_len=max(0, longest),
        fits=problem is None, problem=problem, assumptions=tuple(assumptions),
    )  # fmt: skip
