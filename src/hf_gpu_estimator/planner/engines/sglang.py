"""SGLang: the token pool its model runner sizes after loading the weights, by SGLang release.

SGLang (python/sglang/srt/model_executor/model_runner.py ``profile_max_num_token``, the same formula
in the 0.4.1.post7, 0.4.3.post2, 0.4.4.post1, 0.4.5, 0.4.6, 0.4.9.post2, 0.4.10, 0.5.3 and 0.5.10 wheels;
``model_runner_kv_cache_mixin.py`` in 0.5.10) reads the free device memory twice: once after
``init_torch_distributed`` (``pre``: the device total less the CUDA context and the communicators), once
after loading the weights (``post``), and keeps ``pre x (1 - mem_fraction_static)`` free for activations,
CUDA graphs and (with speculative decoding) the draft model::

    rest = post - pre x (1 - mem_fraction_static)      # = pre x mem_fraction_static - loaded
    max_total_num_tokens = rest // cell_size // page_size x page_size

``cell_size`` is one token's K and V over every attention layer of the device (MLA: ``kv_lora_rank +
qk_rope_head_dim`` per layer); ``loaded`` is what the load took: the weights and the rotary ``cos_sin_cache``
(``max_position x rotary_dim``, kept in fp32 on CUDA by ``RotaryEmbedding``, :func:`rotary_cache_bytes`). Memory
another process holds is not in ``pre``, so it is not kept free either.

The default ``--mem-fraction-static`` is a rule of ``python/sglang/srt/server_args.py`` that changed
between releases (:data:`SGLANG_VERSIONS`, read from each release's wheel on PyPI). Each rule works on
``gpu_mem``, the ``memory.total`` nvidia-smi reports in MiB (``get_nvgpu_memory_capacity``), which is
larger than the total torch reports (``usable_memory_bytes``) by :data:`NVIDIA_SMI_EXTRA_MIB`, and
``mem_fraction_static = (gpu_mem - reserved) / gpu_mem`` where the rule gives ``reserved``:

* ``0.4.1`` (0.4.1 to 0.4.5): by tensor-parallel size alone, 0.88 / 0.87 / 0.85 / 0.81 / 0.79 at tp 1 /
  2 / 4 / 8 / 16.
* ``0.4.6``: no reserve: the same fractions up to 80 GiB, ``gpu_mem - 13 GiB`` above.
* ``0.4.7``: the same fractions by ``tp x pp``; above 96 GiB ``min(f + 48 GiB (1 - f) / gpu_mem,
  (gpu_mem - 18 GiB) / gpu_mem)`` (20 GiB with speculative decoding), above 180,000 MiB 0.79;
  speculative decoding below 96 GiB multiplies the fraction by 0.95.
* ``0.4.8`` (0.4.8 to 0.5.2): a reserve by device class: 2.8 + (tp x pp) / 10 GiB below 35 GiB,
  9.5 + (tp x pp) / 2 below 90 GiB, 12 + (tp x pp) / 2 below 160 GiB, else 32 GiB; +2 GiB with
  speculative decoding (+6 GiB for a standalone draft model from 0.5.2).
* ``0.5.3`` (0.5.3 to 0.5.9): a reserve from the activation and CUDA-graph budgets: 512 MiB +
  1.5 MiB x max(chunked_prefill_size, 2048) + 2 MiB x cuda_graph_max_bs + (tp x pp) / 8 GiB, at
  least 10 GiB above 60 GiB; + 2 GiB for EAGLE-style drafts, + 6 GiB for a standalone draft model.
  ``chunked_prefill_size`` and ``cuda_graph_max_bs`` by device class (:func:`sglang_batch_defaults`).
* ``0.5.10``: as 0.5.3, with piecewise CUDA graphs on by default (8 MiB per captured token count up
  to ``chunked_prefill_size``; 1.5 GiB for MLA models) and + 4 GiB for EAGLE-style drafts.

From 0.4.10 a vision-language model's fraction is then scaled by ``0.95 x clamp(1 - 0.1 (L H^2 /
(24 x 1024^2) - 1), 0.8, 1.05)`` for a vision tower of ``L`` layers of width ``H``
(``adjust_mem_fraction_for_vlm``).

Checked against published start-up logs (tests/data/sglang_startup_logs.json, tests/test_planner_engines.py).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.planner.engines._capacity import (
    ServingCapacity,
    capacity_problem,
    check_context,
    check_fraction,
    check_tp,
    kv_layout,
    pool_capacity,
    weights_per_device,
)
from hf_gpu_estimator.planner.engines.speculative import (
    Speculative,
    draft_cost,
    draft_steps_headroom,
    sglang_max_num_reqs,
    speculative_note,
)
from hf_gpu_estimator.spec import ModelSpec
from hf_gpu_estimator.workload import Workload

GiB = 1 << 30
MiB = 1 << 20
#: SGLang's default page size: one token (server_args ``page_size``).
SGLANG_PAGE_SIZE = 1
#: nvidia-smi's ``memory.total`` less the total torch reports, in MiB: 357 on an RTX 4090 (24,564 MiB vs
#: 23.64 GiB), 469 on an H100 SXM (81,559 vs 79.19 GiB), 475 on an L4 (23,034 vs 22.03 GiB), 613 on an L40S
#: (46,068 vs 44.39 GiB), 615 on an H200 (the pairs and their sources are in hardware/gpus.json); the median.
#: SGLang's default fraction is computed from nvidia-smi's figure.
NVIDIA_SMI_EXTRA_MIB = 475
#: What ``init_torch_distributed`` takes with several GPUs (NCCL communicators, custom all-reduce buffers), as
#: SGLang logs it ("Init torch distributed ends. mem usage=X GB", rank 0): 0.13, 0.22, 0.29, 0.39 and 1.96 GiB
#: in the logs of tests/data/sglang_startup_logs.json ``distributed_init``; the median. One GPU: 0.
SGLANG_DIST_INIT_BYTES = int(0.29 * GiB)

Release = tuple[int, int, int]


@dataclass(frozen=True, kw_only=True)
class SglangVersion:
    """How a range of SGLang releases picks ``--mem-fraction-static``.

    Attributes:
        version: The first release of the range (what ``--sglang-version`` names it by).
        first, last: The releases read at each end of the range (the ones between are taken to match).
        source: What was read.
    """

    version: str
    first: Release
    last: Release
    source: str

    def covers(self, release: Release) -> bool:
        return self.first <= release <= self.last


def _wheel(versions: str, where: str = "_handle_gpu_memory_settings") -> str:
    return f"python/sglang/srt/server_args.py ``{where}`` in the sglang {versions} wheels on PyPI"


SGLANG_VERSIONS: dict[str, SglangVersion] = {
    "0.4.1": SglangVersion(version="0.4.1", first=(0, 4, 1), last=(0, 4, 5),
                           source=_wheel("0.4.1.post7, 0.4.3.post2, 0.4.4.post1 and 0.4.5", "__post_init__")),
    "0.4.6": SglangVersion(version="0.4.6", first=(0, 4, 6), last=(0, 4, 6), source=_wheel("0.4.6", "__post_init__")),
    "0.4.7": SglangVersion(version="0.4.7", first=(0, 4, 7), last=(0, 4, 7), source=_wheel("0.4.7", "__post_init__")),
    "0.4.8": SglangVersion(version="0.4.8", first=(0, 4, 8), last=(0, 5, 2),
                           source=_wheel("0.4.8, 0.4.10 and 0.5.2", "__post_init__`` / ``_handle_gpu_memory_settings")),
    "0.5.3": SglangVersion(version="0.5.3", first=(0, 5, 3), last=(0, 5, 9),
                           source=_wheel("0.5.3, 0.5.4, 0.5.5, 0.5.6, 0.5.8 and 0.5.9")),
    "0.5.10": SglangVersion(version="0.5.10", first=(0, 5, 10), last=(0, 5, 10), source=_wheel("0.5.10")),
}  # fmt: skip
#: The newest rule read (the default of ``--sglang-version``).
DEFAULT_SGLANG_VERSION = "0.5.10"
#: adjust_mem_fraction_for_vlm is in the 0.4.10 wheel and later, not in 0.4.8's (0.4.9 unread).
VLM_ADJUST_FROM: Release = (0, 4, 10)


def _release(version: str | None) -> Release:
    if version is None:
        return SGLANG_VERSIONS[DEFAULT_SGLANG_VERSION].first
    m = re.fullmatch(r"v?(\d+)\.(\d+)\.(\d+)(?:\.post\d+)?", str(version).strip())
    if m is None:
        raise InvalidArgumentError("sglang_version", version, "an SGLang release X.Y.Z (0.5.6, 0.5.4.post1)")
    return int(m[1]), int(m[2]), int(m[3])


def resolve_sglang_version(version: str | None) -> tuple[SglangVersion, Release]:
    """The rule for an SGLang release (``X.Y.Z``, ``.postN`` allowed; ``None``: the newest read).

    Raises:
        InvalidArgumentError: A release no rule covers.
    """
    release = _release(version)
    for rule in SGLANG_VERSIONS.values():
        if rule.covers(release):
            return rule, release
    ranges = ", ".join(f"{'.'.join(map(str, r.first))}" + (f" to {'.'.join(map(str, r.last))}" if r.last != r.first
                                                             else "") for r in SGLANG_VERSIONS.values())
    raise InvalidArgumentError("sglang_version", version, f"a modelled SGLang release: {ranges}")


def sglang_batch_defaults(gpu_mem_mib: float, tp: int, release: Release) -> tuple[int, int]:
    """``(chunked_prefill_size, cuda_graph_max_bs)`` SGLang picks by device memory from 0.5.3
    (server_args.py ``_handle_gpu_memory_settings``; CUDA devices)."""
    if gpu_mem_mib < 20 * 1024:
        return 2048, 8
    if gpu_mem_mib < 35 * 1024:  # A10, 4090, 5090: 16 graphs at tp < 4 in 0.5.3-0.5.4, 24 from 0.5.5
        return 2048, (24 if release >= (0, 5, 5) else 16) if tp < 4 else 80
    if gpu_mem_mib < 60 * 1024:
        return 4096, 32 if tp < 4 else 160
    if gpu_mem_mib < 160 * 1024:
        return 8192, 256 if tp < 4 else 512
    return 16384, 512


def _piecewise_token_counts(max_tokens: int) -> int:
    """How many token counts 0.5.10 captures piecewise CUDA graphs for (``_generate_piecewise_cuda_graph_tokens``)."""
    sizes = [*range(4, 33, 4), *range(48, 257, 16), *range(288, 513, 32), *range(576, 1025, 64),
             *range(1280, 4097, 256), *range(4608, max_tokens + 1, 512)]
    return sum(1 for s in sizes if s <= max_tokens)


#: The rules that pick the fraction by tensor-parallel size (and chunked_prefill_size 2048 below 25,000 MiB, else 8192).
OLD_RULES = ("0.4.1", "0.4.6", "0.4.7")


def nvidia_smi_memory_mib(gpu: GPU) -> float:
    """``gpu_mem`` of SGLang's rules: nvidia-smi's total in MiB, the reported total plus
    :data:`NVIDIA_SMI_EXTRA_MIB` on a CUDA device (the reported total elsewhere)."""
    return gpu.usable_memory_bytes / MiB + (NVIDIA_SMI_EXTRA_MIB if gpu.runtime == "cuda" else 0)


def sglang_init_bytes(gpu: GPU, tp: int = 1, pp: int = 1) -> int:
    """Device memory in use when SGLang takes ``pre`` (after ``init_torch_distributed``): the bare CUDA
    context (the catalog's own runtime context where an entry sets one) and, with several GPUs,
    :data:`SGLANG_DIST_INIT_BYTES`."""
    context = overhead.CUDA_CONTEXT_BARE_BYTES if gpu.context_bytes is None else gpu.context_bytes
    return context + (SGLANG_DIST_INIT_BYTES if tp * pp > 1 else 0)


def rotary_cache_bytes(spec: ModelSpec, workload: Workload, gpu: GPU) -> int:
    """SGLang's rotary ``cos_sin_cache``: the positions and rotary dimensions of vLLM's
    (:func:`hf_gpu_estimator.planner.engines.vllm.rotary_cache_bytes`: SGLang's layers/rotary_embedding keeps
    vLLM's ``get_rope`` caching and scaled lengths), in fp32 on CUDA: ``RotaryEmbedding.__init__`` casts the cache
    to the model dtype only off CUDA ("cache needs to be in FP32", layers/rotary_embedding/base.py in the 0.5.10
    wheel). Gemma 3's local and global layers both take an unscaled ("default") rope, two caches of
    ``max_position`` (models/gemma3_causal.py ``Gemma3Attention`` in the 0.5.10 wheel), where vLLM scales the
    global one."""
    from hf_gpu_estimator.planner.engines.vllm import LOCAL_ROPE_MODEL_TYPES
    from hf_gpu_estimator.planner.engines.vllm import rotary_cache_bytes as rotary_bytes

    dtype_bytes = 4 if gpu.runtime == "cuda" else int(BYTES[plan_weights(spec, workload).compute_dtype])
    arch = spec.architecture
    if arch is not None and arch.model_type in LOCAL_ROPE_MODEL_TYPES:
        return 2 * int(arch.max_position_embeddings or 0) * arch.head_dim * dtype_bytes
    return rotary_bytes(spec, dtype_bytes)


#: Speculative methods SGLang sizes as EAGLE-style drafts (a head or MTP layers) and as a standalone model.
STANDALONE_METHODS = frozenset({"draft"})


def default_mem_fraction_static(gpu: GPU, tp: int = 1, pp: int = 1, *, version: str | None = None,
                                spec: ModelSpec | None = None, speculative_method: str | None = None) -> float:
    """SGLang's default ``--mem-fraction-static`` on ``gpu`` (server_args.py ``_handle_gpu_memory_settings``).

    Args:
        gpu, tp, pp: The device and the parallel sizes.
        version: The SGLang release (``X.Y.Z``; default the newest read, :data:`DEFAULT_SGLANG_VERSION`).
        spec: The model, for the MLA and vision-language adjustments.
        speculative_method: ``draft`` (SGLang's STANDALONE), ``eagle``, ``eagle3`` or ``mtp`` (EAGLE-style),
            ``ngram`` (no draft weights), or ``None``.
    """
    rule, release = resolve_sglang_version(version)
    mem = nvidia_smi_memory_mib(gpu)
    n = tp * pp
    spec_algo = speculative_method not in (None, "ngram")
    standalone = speculative_method in STANDALONE_METHODS
    if rule.version in OLD_RULES:
        size = n if rule.version == "0.4.7" else tp
        steps = ((16, 0.79), (8, 0.81), (4, 0.85), (2, 0.87))
        by_size = next((f for limit, f in steps if size >= limit), 0.88)
        if rule.version == "0.4.1":
            fraction = by_size
        elif rule.version == "0.4.6":
            fraction = by_size if mem <= 81920 else (mem - 13 * 1024) / mem
        else:
            fraction = by_size if mem <= 81920 else 0.88
            if mem > 180_000:
                fraction = 0.79
            elif mem > 96 * 1024:
                reserve = (20 if spec_algo else 18) * 1024
                fraction = min(fraction + 48 * 1024 * (1 - fraction) / mem, (mem - reserve) / mem)
            elif spec_algo:
                fraction *= 0.95
    else:
        if rule.version == "0.4.8":
            if mem < 35 * 1024:
                reserved = (2.8 + n / 10) * 1024
            elif mem < 90 * 1024:
                reserved = (9.5 + n / 2) * 1024
            elif mem < 160 * 1024:
                reserved = (12 + n / 2) * 1024
            else:
                reserved = 32 * 1024
            if spec_algo:
                reserved += (6 if standalone and release >= (0, 5, 2) else 2) * 1024
        else:
            chunk, graphs = sglang_batch_defaults(mem, tp, release)
            reserved = 512 + max(chunk, 2048) * 1.5 + graphs * 2 + n / 8 * 1024
            if rule.version == "0.5.10":
                mla = spec is not None and spec.architecture is not None and spec.architecture.is_mla
                reserved += 1.5 * 1024 if mla else _piecewise_token_counts(chunk) * 8
            if mem > 60 * 1024:
                reserved = max(reserved, 10 * 1024)
            if spec_algo:
                reserved += (6 if standalone else 4 if rule.version == "0.5.10" else 2) * 1024
        fraction = round((mem - reserved) / mem, 3)
    if release >= VLM_ADJUST_FROM and spec is not None:
        fraction *= vlm_fraction_factor(spec.config)
    return round(fraction, 4)


def vlm_fraction_factor(config: Mapping[str, Any]) -> float:
    """``adjust_mem_fraction_for_vlm``: 0.95, scaled by the vision tower's ``layers x hidden^2`` against
    ViT-L/14's (24 x 1024^2), 10 % per doubling, clamped to [0.8, 1.05]; 1 without a ``vision_config``."""
    vision = config.get("vision_config")
    if not isinstance(vision, Mapping):
        return 1.0
    layers = vision.get("num_hidden_layers", 24)
    hidden = vision.get("hidden_size", 1024)
    if not all(isinstance(v, int) and not isinstance(v, bool) and v > 0 for v in (layers, hidden)):
        return 1.0
    ratio = layers * hidden**2 / (24 * 1024**2)
    return 0.95 * max(0.8, min(1.05, 1.0 - 0.1 * (ratio - 1.0)))


def sglang_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *, mem_fraction_static: float | None = None,
                    max_model_len: int | None = None, sglang_version: str | None = None,
                    speculative: Speculative | None = None) -> ServingCapacity:
    """The token pool SGLang would size for ``spec`` on ``gpu`` (per device of a ``tp x pp`` replica).

    With ``speculative`` (EAGLE, EAGLE-3, MTP as NEXTN, a standalone draft model; model_runner.py
    ``init_memory_pool``): the target's pool is profiled from its own layers, then target and drafter
    each get ``max_total_num_tokens`` plus ``max_num_reqs x (steps x topk + draft tokens) + 100`` slots;
    the drafter's weights and cache, and those extra slots, come out of the ``1 - mem_fraction_static``
    share the default fraction reserves more of (+2/4/6 GiB by release and method).

    Raises:
        InvalidArgumentError: A fraction outside (0, 1], an unknown release, a context beyond the
            model's limit, or a tensor-parallel degree that does not split the heads.
    """
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with config.json (layer shapes) for serving capacity")
    p = workload.parallelism
    check_tp(arch, p.tp)
    rule, release = resolve_sglang_version(sglang_version)
    fraction = (check_fraction("mem_fraction_static", mem_fraction_static) if mem_fraction_static is not None
                else default_mem_fraction_static(gpu, p.tp, p.pp, version=sglang_version, spec=spec,
                                                 speculative_method=speculative.method if speculative else None))
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    model_len = max_model_len if max_model_len is not None else max_pos
    check_context(spec, model_len)
    weights = weights_per_device(spec, workload)
    loaded = weights + rotary_cache_bytes(spec, workload, gpu)
    # pre: free after init_torch_distributed; the pool is what the load leaves of pre x fraction
    init = sglang_init_bytes(gpu, p.tp, p.pp)
    total = gpu.usable_memory_bytes
    pre = total - init
    pool = int(pre * fraction - loaded)
    # SGLang's default token pool keeps every token in every attention layer (sliding ones too); recurrent
    # layers take their state per sequence
    layout = kv_layout(spec, workload, keep_kv_shared=True).without_windows()
    blocks, kv_tokens, concurrent, longest = pool_capacity(layout, pool, block_size=SGLANG_PAGE_SIZE,
                                                           max_model_len=model_len, max_position=max_pos)
    problem = capacity_problem("SGLang", pool, loaded, pre, fraction, concurrent, model_len, kv_tokens)
    spec_notes: tuple[str, ...] = ()
    if speculative is not None and speculative.method != "ngram":
        drafter = draft_cost(spec, speculative, workload)
        extra_slots = draft_steps_headroom(sglang_max_num_reqs(kv_tokens, model_len), speculative)
        kv_tokens += extra_slots
        extra = drafter.weights_bytes + drafter.kv_bytes_per_token * kv_tokens + extra_slots * layout.token_bytes
        reserve = pre * (1 - fraction)
        spec_notes = (speculative_note(speculative, drafter) + f"; {extra_slots:,} extra token slots, "
                      f"{extra / GiB:.2f} GiB in all out of the {reserve / GiB:.2f} GiB the fraction keeps free",)
        if problem is None and extra > reserve:
            problem = (f"SGLang would run out of memory: the drafter's weights and cache need {extra / GiB:.1f} GiB of "
                       f"the {reserve / GiB:.1f} GiB --mem-fraction-static {fraction:g} keeps free (with activations "
                       "and CUDA graphs); lower --mem-fraction-static or use a smaller draft")
    smi = nvidia_smi_memory_mib(gpu)
    chunk = sglang_batch_defaults(smi, p.tp, release)[0] if rule.version not in OLD_RULES else (
        2048 if smi < 25_000 else 8192)
    given = "given" if mem_fraction_static is not None else (
        f"SGLang {'.'.join(map(str, release))} default ({rule.version} rule: {rule.source}; nvidia-smi's total "
        f"taken as the reported memory + {NVIDIA_SMI_EXTRA_MIB} MiB)")
    return ServingCapacity(
        engine="sglang", engine_version=".".join(map(str, release)), gpu=gpu.name, tp=p.tp, pp=p.pp,
        gpu_memory_utilization=fraction, max_num_batched_tokens=chunk, max_num_seqs=concurrent,
        block_size=SGLANG_PAGE_SIZE, total_memory_bytes=total, weights_bytes=int(weights),
        profile_peak_bytes=int(loaded), non_torch_bytes=int(init), kv_pool_bytes=max(0, pool),
        kv_bytes_per_token=layout.token_bytes, num_blocks=blocks, kv_cache_tokens=kv_tokens, max_model_len=model_len,
        max_concurrent_sequences=concurrent, largest_max_model_len=longest, fits=problem is None, problem=problem,
        assumptions=(f"SGLang token pool = {fraction:g} x ({total / GiB:.2f} GiB - {init / GiB:.2f} GiB CUDA context"
                     f"{' and communicators' if p.tp * p.pp > 1 else ''}) - {loaded / GiB:.2f} GiB weights and rotary "
                     f"cache (model_runner.py profile_max_num_token); --mem-fraction-static {given}",
                     f"{layout.describe()} per device; sliding-window layers keep every token (SGLang's default "
                     "pool; its SWA pool for some architectures is not modelled)", *spec_notes),
    )  # fmt: skip
