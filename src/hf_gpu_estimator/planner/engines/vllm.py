"""vLLM: the KV-cache pool its worker sizes after the profile run, by vLLM version, and what the pool holds.

vLLM sizes the pool once at start-up (vllm/v1/worker/gpu_worker.py ``determine_available_memory``;
vllm/worker/worker.py ``determine_num_available_blocks`` in the V0 engine)::

    pool = total_memory * gpu_memory_utilization - (weights + activation peak of the profile run + non-torch)

The profile run is one forward of ``max_num_batched_tokens`` dummy tokens through vLLM's own layers
(no attention score matrix: with no attention metadata the attention kernels are skipped, and vLLM's
paged kernels never build one) and a dummy sampler pass over ``min(max_num_seqs, tokens)`` rows of
logits. The pool is then cut into blocks of ``block_size`` tokens over every cache layer of the
device; with sliding-window layers the hybrid allocator caps their blocks at the window.

Modelled versions (``--vllm-version``):

* ``0.6`` (the V0 engine before vLLM PR #12126): non-torch memory is everything outside torch's
  allocator (CUDA context, cuBLAS, NCCL): 1.79 GiB per rank at tp=1 and 3.58 GiB at tp=2 on an
  H100 in the log of vLLM PR #10511; profile tokens ``max(max_model_len, 2048)`` without chunked
  prefill, 512 with it (on above 32,768 tokens of context); the V0 sampler keeps sorted copies of the logits
  (39 bytes per logit); the eager forward keeps two hidden-size tensors in its residual stream
  (:func:`profile_activation_bytes`).
* ``0.7`` (V0 after PR #12126): the memory snapshot is taken after the CUDA context exists, so
  only the non-torch *increase* during the profile run counts (0.16 GiB at tp=1 in that PR's log;
  NCCL buffers on top for tp > 1); 2048 profile tokens with chunked prefill.
* ``0.8`` (0.8 and 0.9, the V1 engine): as 0.7 for non-torch memory; scheduler budgets from
  ``EngineArgs.get_batch_defaults`` (:func:`vllm_batch_defaults`); the dummy sampler pass of the
  profile run is the V0 sampler (vLLM PR #13594: sorted copies of the logits, 39 bytes per logit);
  a model mixing full and sliding-window layers keeps every token in every layer.
* ``0.10`` (0.10 to 0.16): as 0.8, with the hybrid KV cache manager: sliding-window and chunked
  layers keep their window (plus the tokens of one scheduler step and a block), Mamba and
  linear-attention layers one page of state per sequence, layers grouped by kind
  (:func:`hybrid_pool`).
* ``0.17``: as 0.10, with the sampler pass of the profile run holding 15 bytes per logit (fitted, see
  :data:`V1_SAMPLER_BYTES_PER_LOGIT`): the activation reservation fell ~60 % between 0.16 and 0.17 for
  Qwen3-14B (5.64 -> 2.23 GiB, llm-d planner's version sweep); non-torch 0.13 GiB.
* ``0.18`` (0.18 and 0.19, the default): as 0.17, non-torch memory as measured on H100 logs of 0.19
  (0.25 GiB on one GPU, 2.07 / 2.13 GiB per rank at tp=2 / 4, 0.07 GiB on a pipeline stage that does
  not sample); checked on the llm-d planner's 74 runs (benchmarks/llmd_vllm.py).
* ``0.20`` (0.20 and 0.21): as 0.18, with vLLM's CUDA-graph estimate counted before the pool is sized
  (VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS on by default from v0.20.0, vllm/envs.py; its log says "default
  since v0.21.0") as :func:`cuda_graph_estimate_bytes` computes it from the capture sizes, heads, MLP width
  and layers, and ``--gpu-memory-utilization`` 0.92 by default (vllm/config/cache.py from v0.20.0).
* ``0.21`` (0.20.1 to 0.21): as 0.20, the logged KV cache size in tokens ``int(max_concurrency x max_model_len)``
  (:func:`hybrid_pool`).
* ``0.22`` (0.22, 0.23), ``0.24``, ``0.25``, ``0.26``, ``0.27``, ``0.28``: as 0.21, but a model on the V2 model
  runner counts no CUDA-graph memory (its ``profile_cudagraph_memory`` returns 0 up to v0.28.0): dense
  unquantized Qwen3 from 0.22; Llama, Mistral, Qwen3, DeepSeek-V2, Qwen2-MoE, GraniteMoE at 0.24; every
  dense non-hybrid model from 0.25 (:meth:`VllmVersion.uses_v2_runner`). The V2 runner's dummy sampler pass
  holds the logits and their fp32 copy up to 0.26, the logits alone from 0.27
  (:func:`v2_sampler_bytes_per_logit`). From 0.28 GPUs of 160 GiB or more get 16384 batched tokens. GGUF
  has no in-tree support from 0.24 (the vllm-gguf-plugin serves it). From 0.26 a hybrid model gets prefix caching
  by default, its states 2 pages per request (Mamba "align" mode; :attr:`VllmVersion.hybrid_prefix_caching`).
* ``0.29`` (0.29 to 0.32): every model on the V2 runner, which estimates its CUDA graphs again (modelled
  with the V1 runner's figure, unverified).
* ``0.33``: as 0.29, the dummy sampler also running a warm-up pass through the whole sampling pipeline
  (modelled with the V1 runner's sampler figure).
* ``0.34``: as 0.33, with the extensible KV cache, sized from the memory free after warm-up and CUDA-graph capture
  (vllm/v1/worker/extensible_kv_cache.py ``measure_kv_cache_bytes``, :func:`extensible_pool_bytes`),
  ``--gpu-memory-utilization`` 1.0 when not given. Unverified against a log of 0.34.

Only the V1 runner's CUDA-graph estimate has been compared with logs: vLLM 0.19's logged estimates on H100s
and one vLLM 0.21 log on an RTX A5000 (0.52 GiB logged, 0.68 modelled: the per-size figure is fitted on H100s).
FlashAttention's split-KV accumulators are counted on Hopper only, where vLLM runs FlashAttention 3
(:data:`FA3_GPU_PREFIXES`).

Weights are what vLLM loads: the checkpoint's tensors, the rotary cos/sin caches
(:func:`rotary_cache_bytes`) and the kernel padding of MXFP4 experts (:func:`kernel_padding_bytes`),
per pipeline stage (:func:`stage_weights`); every rank sizes its own pool and the engine keeps the
fewest blocks.

Up to 0.19 CUDA graphs are captured after the pool is sized and live in the ``1 - gpu_memory_utilization``
headroom (the 0.19 log: "CUDA graph memory profiling will be enabled by default",
VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0 at v0.19.0).

The published start-up logs each version is checked against are in
``tests/data/vllm_startup_logs.json`` with their sources and each row's error in
``tests/test_planner_engines.py``; the published start-up refusals in ``tests/data/vllm_startup_errors.json``
(``tests/test_planner_engines_vllm_errors.py``).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Literal

from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.memory.kv_cache import state_bytes_per_sequence
from hf_gpu_estimator.planner.engines._capacity import (
    KVLayout,
    ServingCapacity,
    capacity_problem,
    check_context,
    check_fraction,
    check_tp,
    kv_layout,
    largest_length,
    pool_capacity,
    weights_per_device,
)
from hf_gpu_estimator.planner.engines.speculative import Speculative, draft_cost, merged_layout, speculative_note
from hf_gpu_estimator.spec import Architecture, Mixer, ModelSpec
from hf_gpu_estimator.workload import Workload

#: vLLM's default ``gpu_memory_utilization`` (vllm/config CacheConfig; ``--gpu-memory-utilization``).
DEFAULT_GPU_MEMORY_UTILIZATION = 0.9
#: vLLM's default KV block size on CUDA: 16 tokens (CacheConfig.block_size).
VLLM_BLOCK_SIZE = 16
GiB = 1 << 30


@dataclass(frozen=True, kw_only=True)
class VllmVersion:
    """How one vLLM release sizes its KV pool.

    Attributes:
        version: ``X.Y`` of the first release the rule applies to.
        engine: ``v0`` (LLMEngine) or ``v1`` (EngineCore).
        releases: The ``X.Y`` releases the rule covers (what ``--vllm-version`` accepts).
        non_torch_tp1_bytes: Non-torch memory counted against the pool on a single GPU.
        non_torch_multi_gpu_bytes: What communicators (NCCL, custom all-reduce) add per rank with several GPUs.
        sampler_bytes_per_logit: Bytes per logit the dummy sampler pass holds at its peak.
        source: Where the rule and its constants come from.
        hybrid_allocator: Whether sliding-window, chunked and recurrent layers get their own KV cache
            groups (:func:`hybrid_pool`); without it a model mixing kinds keeps every token in every layer.
    """

    version: str
    engine: Literal["v0", "v1"]
    releases: tuple[str, ...]
    non_torch_tp1_bytes: int
    non_torch_multi_gpu_bytes: int
    sampler_bytes_per_logit: int
    source: str
    hybrid_allocator: bool = False
    #: Non-torch memory of a pipeline stage that does not sample (pp > 1, tp = 1); ``None``: the single-GPU figure.
    non_torch_no_sampler_bytes: int | None = None
    #: What communicators add per rank by tensor-parallel degree (the largest degree listed applies above it);
    #: empty: ``non_torch_multi_gpu_bytes`` for every degree.
    non_torch_tp_bytes: tuple[tuple[int, int], ...] = ()
    #: Whether vLLM's CUDA-graph estimate (:func:`cuda_graph_estimate_bytes`) is counted against the pool;
    #: False: graphs are captured afterwards, in the ``1 - gpu_memory_utilization`` headroom.
    cuda_graphs_profiled: bool = False
    #: ``max_num_batched_tokens`` of ``vllm serve`` on a GPU of 160 GiB or more (B200, B300); ``None``: as an H100.
    large_gpu_batched_tokens: int | None = None
    #: Whether the pool is an extensible KV cache sized from the memory free after warm-up and CUDA-graph capture
    #: (:func:`extensible_pool_bytes`), not from the profile run's estimate.
    extensible_kv_cache: bool = False
    #: Which models run on the V2 model runner by default (vllm/config/vllm.py ``use_v2_model_runner``):
    #: ``none``; ``listed`` (the architectures in ``v2_architectures``, dense and unquantized in 0.22-0.23);
    #: ``dense`` (every dense, non-hybrid model, and the listed MoE architectures); ``all``.
    v2_runner: Literal["none", "listed", "listed-unquantized", "dense", "all"] = "none"
    v2_architectures: frozenset[str] = frozenset()
    #: Whether the V2 runner's ``profile_cudagraph_memory`` measures anything (0.22-0.28: ``return 0``).
    v2_counts_cuda_graphs: bool = False
    #: What the V2 runner's dummy sampler pass holds (:func:`v2_sampler_bytes_per_logit`): ``logits_fp32`` (the
    #: logits and their fp32 copy, 0.22-0.26), ``logits`` (the logits alone, 0.27-0.32), ``v1`` (the whole sampling
    #: pipeline, modelled with the V1 runner's figure, from 0.33).
    v2_sampler: Literal["v1", "logits_fp32", "logits"] = "v1"

    def uses_v2_runner(self, spec: ModelSpec, *, hybrid: bool) -> bool:
        """Whether ``spec`` runs on the V2 model runner by default on CUDA (unsupported features not modelled)."""
        arch = spec.architecture
        names = spec.config.get("architectures") or ()
        listed = any(name in self.v2_architectures for name in names)
        moe = arch is not None and arch.is_moe
        if self.v2_runner == "all":
            return True
        if self.v2_runner == "dense":
            return listed or (not moe and not hybrid)
        if self.v2_runner == "listed-unquantized":
            return listed and not moe and spec.quantization is None
        return self.v2_runner == "listed" and listed
    #: Whether a MoE model's fused-MoE caches stay allocated through the sampler pass
    #: (:func:`profile_activation_bytes`).
    moe_cache_kept: bool = False
    #: ``--gpu-memory-utilization`` when not given.
    default_gpu_memory_utilization: float = 0.9
    #: Non-torch memory logged on a GPU class, by catalog-name prefix: (prefix, single GPU, added per rank with
    #: several GPUs); a GPU the rule has no log for takes ``non_torch_other_gpu`` (when set) with NCCL's buffers.
    non_torch_by_gpu: tuple[tuple[str, int, int], ...] = ()
    non_torch_other_gpu: int | None = None
    #: V0's ``max_num_batched_tokens`` with chunked prefill, which ``EngineArgs`` turns on above 32,768 tokens of
    #: context (vllm/config.py SchedulerConfig: 512 at v0.6.4.post1, 2048 at v0.7.2).
    v0_chunked_prefill_tokens: int = 512
    #: Whether the logged "GPU KV cache size" is ``int(max_concurrency x max_model_len)`` (v0.21.0 on,
    #: :func:`hybrid_pool`) rather than ``num_blocks // groups x block_size``.
    kv_tokens_from_concurrency: bool = False
    #: Whether vLLM itself serves GGUF checkpoints (vllm/model_executor/layers/quantization/gguf.py); from v0.24.0
    #: the file and the ``gguf`` method are gone from the release and the vllm-gguf-plugin serves them.
    gguf_in_tree: bool = True
    #: Whether a hybrid model (attention beside Mamba / linear-attention layers) gets prefix caching by default
    #: (vllm/config/model.py ``is_prefix_caching_supported``: False for "hybrid" up to v0.25.1, True from v0.26.0),
    #: which keeps its states in Mamba "align" mode, 2 + speculative pages per request (:func:`hybrid_pool`).
    hybrid_prefix_caching: bool = False
    #: Whether :data:`MAMBA_PREFIX_CACHING_ARCHITECTURES` run Mamba "all" mode under prefix caching
    #: (vllm/model_executor/models/config.py ``MambaModelConfig`` at v0.26.0-v0.27.x; "align" for every model
    #: from v0.28.0).
    mamba_all_mode: bool = False

    def non_torch_bytes(self, tp: int, pp: int, *, samples: bool = True, gpu: str | None = None) -> int:
        """Non-torch memory per rank: the single-GPU figure, plus communicator buffers with more than one GPU.

        ``samples``: whether the rank runs the sampler (the last pipeline stage); the others, where the rule
        measured them, count less. ``gpu``: the catalog name, for a rule whose figure depends on the GPU class.
        """
        if self.non_torch_other_gpu is not None and gpu is not None:
            base, comm = next(((one, many) for prefix, one, many in self.non_torch_by_gpu if gpu.startswith(prefix)),
                              (self.non_torch_other_gpu, overhead.NCCL_BYTES))
            return base + (comm if tp * pp > 1 else 0)
        if self.non_torch_tp_bytes:
            base = self.non_torch_tp1_bytes if samples or self.non_torch_no_sampler_bytes is None \
                else self.non_torch_no_sampler_bytes
            comm = 0
            for degree, extra in self.non_torch_tp_bytes:
                if tp >= degree:
                    comm = extra
            return base + (comm if tp > 1 else 0)
        return self.non_torch_tp1_bytes + (self.non_torch_multi_gpu_bytes if tp * pp > 1 else 0)


#: V0 sampler peak per logit, fitted on the activation peak logged in vLLM PR #10511 (Llama-3-8B,
#: 256 rows: 1.26 GiB) and checked on vLLM issue #13882 (Qwen2.5-7B, 256 rows: 1.42 GiB logged,
#: 1.40 GiB modelled). It matches the tensors the V0 top-p/top-k sampler keeps together: logits in
#: the model dtype (2) and fp32 (4), temperature-scaled logits (4), sorted logits (4) and int64 sort
#: indices (8), softmax over the sorted logits (4) and its cumsum (4), the mask (1), probabilities
#: (4) and log-probabilities (4).
V0_SAMPLER_BYTES_PER_LOGIT = 39
#: V1 sampler peak per logit from 0.17, over ``max_num_seqs`` rows of the full vocabulary (gathered
#: across tensor-parallel ranks): FITTED on one run, Llama-3.1-8B bf16 tp=1 on vLLM 0.19 / H100 (llm-d
#: planner data, benchmarks/llmd/: 1.89 GiB = 64 MiB hidden states + 1024 x 128256 x 14.96 B). Held out:
#: the other sampler-bound runs of that set (14.45 B for gpt-oss-20b to 15.0 B for Llama-3.3-70B) and
#: Qwen3-14B on 0.17 and 0.18 (version-sweep: 2.23 GiB, 14.85 B). Consistent with the model-dtype
#: logits (2 B), their fp32 copy (4 B), two fp32 working tensors of the top-k/top-p sampling path and a
#: byte mask (unverified against vLLM's sampler code).
V1_SAMPLER_BYTES_PER_LOGIT = 15
#: Non-torch memory per rank on vLLM 0.18-0.19 on an H100, from the logs of the llm-d planner's runs
#: (benchmarks/llmd/results_raw.csv, "non-torch forward increase memory"): 0.25 GiB on one GPU
#: (Llama-3.1-8B; 0.24-0.27 over the other 30 single-GPU runs; 0.13 on 0.17 in the Qwen3-14B version
#: sweep), 0.07 GiB on the first stage of a pipeline (which does not sample; pp=2 and 4), and with
#: tensor parallelism 2.07 GiB at tp=2 and 2.13 GiB at tp=4 (Llama-3.1-8B; held out: 2.06-2.11 and
#: 2.13-2.21 over the other tp runs): communicator buffers (NCCL, custom all-reduce).
V018_NON_TORCH_BYTES = int(0.25 * GiB)
V018_NON_TORCH_NO_SAMPLER_BYTES = int(0.07 * GiB)
V018_NON_TORCH_TP_BYTES = ((2, int((2.07 - 0.25) * GiB)), (4, int((2.13 - 0.25) * GiB)))
#: FlashAttention's split-KV limit under CUDA graphs (vllm/config/attention.py
#: ``flash_attn_max_num_splits_for_cuda_graph`` = 32 at v0.20.0): a FULL graph of ``T`` tokens pre-allocates
#: fp32 accumulators for 32 splits (``out_accum`` and ``softmax_lse_accum``).
FA_MAX_NUM_SPLITS_FOR_CUDA_GRAPH = 32
#: GPUs (catalog-name prefixes) of compute capability 9.x, where vLLM runs FlashAttention 3: only there does its
#: FlashAttention metadata builder pre-allocate the split-KV accumulators of FULL graphs
#: (vllm/v1/attention/backends/flash_attn.py, v0.19.0 to v0.34.0: ``aot_schedule = get_flash_attn_version() == 3``,
#: ``max_num_splits`` set to the CUDA-graph limit only ``if self.use_full_cuda_graph and self.aot_schedule``;
#: vllm/v1/attention/backends/fa_utils.py ``get_flash_attn_version``: FA3 on capability 9, FA4 on 10, else FA2). On
#: FA2 (Ampere, Ada) ``num_splits`` is 0, FlashAttention's own heuristic, and the first FULL capture runs with
#: ``max_num_batched_tokens // size`` tokens per sequence (gpu_model_runner.py ``profile_seq_lens``): one KV block,
#: one split, no accumulators.
FA3_GPU_PREFIXES = ("H100", "H200", "H20", "GH200")
#: Model types whose attention vLLM 0.19 ran on TRITON_ATTN on an H100 (no split-KV accumulators in its FULL
#: graphs, 4-8 MiB first capture): gemma-3 ("Using TRITON_ATTN attention backend", llm-d planner's logs);
#: attention with sinks (gpt-oss: FLASH_ATTN, 8 MiB first FULL capture).
NO_SPLIT_KV_MODEL_TYPES = frozenset({"gemma3", "gemma3_text", "gpt_oss"})
#: Model types whose capture sizes go to 1024, not 512 (vllm/model_executor/models/config.py at v0.20.0,
#: GptOssForCausalLMConfig: "Increase the max capture size from 512 to 1024 for performance").
CAPTURE_1024_MODEL_TYPES = frozenset({"gpt_oss"})
#: The PIECEWISE first capture at ``T`` tokens: a base plus ``5 x T x`` the MLP width per rank in the model
#: dtype (the gate/up output, its activation and inductor's buffers held in the graph pool and the
#: warm-up). FITTED on the 0.19 logs of the llm-d planner's runs (DEBUG "Estimated PIECEWISE CUDA graph
#: memory: X MiB first-capture"): Llama-3.1-8B 138 MiB (modelled 138), Qwen2.5-7B 160 (161), phi-2 100 (113),
#: gemma-2-27b 212 (248), fp32 Llama-3.1-8B 224 (204), tp=4 84 (86); unverified against vLLM's code.
PIECEWISE_FIRST_BASE_BYTES = 68 << 20
PIECEWISE_FIRST_MLP_FACTOR = 5
#: What each further capture size adds, FULL and PIECEWISE together (half each), per decoder layer of the rank: FITTED on
#: the same logs' "(51-1) x N MiB per-graph" (vLLM measures it in 2 MiB steps): 12 MiB for 32-layer models
#: (Llama-3.1-8B, Mistral, gemma-7b 28 layers), 28-34 MiB for 80-layer 70B models at tp 2 and 4, 18 for
#: gemma-2-27b (46); MoE models 14-20 (Qwen3-30B-A3B 48 layers 20, DeepSeek-V2-Lite 27 layers 18: above this).
PER_GRAPH_BYTES_PER_LAYER = int(0.375 * (1 << 20))


def cudagraph_capture_sizes(arch: Architecture, *, max_num_seqs: int, max_num_batched_tokens: int,
                            speculative_tokens: int = 0) -> list[int]:
    """The batch sizes vLLM captures by default (vllm/config/vllm.py ``_set_cudagraph_sizes`` at v0.20.0 to
    v0.33.0): 1, 2, 4, multiples of 8 below 256 and of 16 from 256, up to ``min(2 x max_num_seqs x (1 +
    speculative tokens), 512)`` (1024 for gpt-oss) and no more than ``max_num_batched_tokens``."""
    cap = 1024 if arch.model_type in CAPTURE_1024_MODEL_TYPES else min(2 * max_num_seqs * (1 + speculative_tokens), 512)
    cap = min(cap, max_num_batched_tokens)
    sizes = [1, 2, 4, *range(8, 256, 8), *range(256, cap + 1, 16)]
    return [s for s in sizes if s <= cap]


def cuda_graph_estimate_bytes(arch: Architecture, *, tp: int, layers: int, act_bytes: int,
                              max_num_seqs: int, max_num_batched_tokens: int,
                              flash_attn_3: bool = True) -> tuple[int, str]:
    """``(bytes, formula)``: the CUDA-graph memory vLLM's V1 model runner estimates before sizing the pool.

    vllm/v1/worker/gpu_model_runner.py ``profile_cudagraph_memory`` (v0.19.0 to v0.33.0) captures, per mode
    (PIECEWISE and FULL by default), the two largest sizes into a throwaway pool and counts
    ``max(first captures) + sum((n - 1) x second capture)``; FULL graphs (uniform decode) take the sizes up to
    ``max_num_seqs``. On FlashAttention 3 (``flash_attn_3``: Hopper, :data:`FA3_GPU_PREFIXES`) the FULL first capture
    holds FlashAttention's split-KV accumulators at its largest size ``T`` (:data:`FA_MAX_NUM_SPLITS_FOR_CUDA_GRAPH` x
    ``T`` x heads per rank x (value head dim + 1) fp32 values: 258 MiB for Llama-3.1-8B, 260 logged); elsewhere none.
    The PIECEWISE first
    capture and the per-size increase are fitted (:data:`PIECEWISE_FIRST_MLP_FACTOR`,
    :data:`PER_GRAPH_BYTES_PER_LAYER`).
    """
    sizes = cudagraph_capture_sizes(arch, max_num_seqs=max_num_seqs, max_num_batched_tokens=max_num_batched_tokens)
    if not sizes:
        return 0, "no CUDA graphs captured"
    # FULL graphs are uniform decode batches: the capture sizes up to max_num_seqs (vllm/v1/cudagraph_dispatcher.py)
    full = [s for s in sizes if s <= max_num_seqs]
    heads = max(1, arch.num_attention_heads // tp)
    v_dim = int(arch.kv_lora_rank or 0) if arch.is_mla else arch.head_dim
    split_kv = flash_attn_3 and act_bytes == 2 and arch.model_type not in NO_SPLIT_KV_MODEL_TYPES
    full_first = FA_MAX_NUM_SPLITS_FOR_CUDA_GRAPH * full[-1] * heads * (v_dim + 1) * 4 if split_kv and full else 0
    mlp = arch.num_experts_per_tok * arch.moe_intermediate_size if arch.is_moe else arch.intermediate_size
    piecewise_first = PIECEWISE_FIRST_BASE_BYTES + PIECEWISE_FIRST_MLP_FACTOR * sizes[-1] * (mlp // tp) * act_bytes
    per_size = PER_GRAPH_BYTES_PER_LAYER * layers // 2  # per mode
    further = len(sizes) - 1 + max(0, len(full) - 1)
    total = max(full_first, piecewise_first) + further * per_size
    return total, (f"PIECEWISE {len(sizes)} sizes up to {sizes[-1]}, FULL {len(full)} up to "
                   f"{full[-1] if full else 0}: max(FULL first {full_first / (1 << 20):.0f} MiB, PIECEWISE first "
                   f"{piecewise_first / (1 << 20):.0f} MiB) + {further} x {per_size / (1 << 20):.2f} MiB")


VLLM_VERSIONS: dict[str, VllmVersion] = {
    "0.6": VllmVersion(
        version="0.6", engine="v0", releases=("0.6",),
        non_torch_tp1_bytes=int(1.79 * GiB), non_torch_multi_gpu_bytes=int(1.79 * GiB),
        sampler_bytes_per_logit=V0_SAMPLER_BYTES_PER_LOGIT,
        # vllm/worker/worker.py determine_num_available_blocks from 0.6.4 (PR #9352) counts the device's used
        # memory less torch's allocations: the CUDA context, and on the H100 of PR #10511 (0.6.5) what loading and
        # profiling added outside torch (1.79 GiB; 3.58 GiB per rank at tp=2). Other GPUs: the bare CUDA context
        # (memory/overhead.py CUDA_CONTEXT_BARE_BYTES, 0.39 GiB), as 0.6.4.post1 logs 0.44 GiB on an RTX A6000
        # (https://github.com/vllm-project/vllm/issues/10360), plus NCCL's buffers per rank with several GPUs.
        non_torch_by_gpu=(("H100", int(1.79 * GiB), int(1.79 * GiB)),),
        non_torch_other_gpu=overhead.CUDA_CONTEXT_BARE_BYTES,
        source="vllm/worker/worker.py determine_num_available_blocks; non-torch 1.79 GiB (tp=1) and 3.58 GiB "
               "(tp=2) per rank on an H100 in https://github.com/vllm-project/vllm/pull/10511; on other GPUs the "
               "bare CUDA context (0.44 GiB logged on an RTX A6000, "
               "https://github.com/vllm-project/vllm/issues/10360)"),
    "0.7": VllmVersion(
        version="0.7", engine="v0", releases=("0.7",),
        non_torch_tp1_bytes=int(0.16 * GiB), non_torch_multi_gpu_bytes=overhead.NCCL_BYTES,
        sampler_bytes_per_logit=V0_SAMPLER_BYTES_PER_LOGIT, v0_chunked_prefill_tokens=2048,
        source="vllm/worker/worker.py after https://github.com/vllm-project/vllm/pull/12126 (only the non-torch "
               "increase during profiling counts: 0.16 GiB at tp=1 in that PR's log); 2048 batched tokens with "
               "chunked prefill (vllm/config.py SchedulerConfig at v0.7.2)"),
    "0.8": VllmVersion(
        version="0.8", engine="v1", releases=("0.8", "0.9"),
        non_torch_tp1_bytes=int(0.16 * GiB), non_torch_multi_gpu_bytes=overhead.NCCL_BYTES,
        sampler_bytes_per_logit=V0_SAMPLER_BYTES_PER_LOGIT,
        source="vllm/v1/worker/gpu_worker.py determine_available_memory (the V1 engine, default from 0.8); "
               "non-torch increase 0.16 GiB at tp=1 as in https://github.com/vllm-project/vllm/pull/12126; the "
               "V0 sampler in the profile run (https://github.com/vllm-project/vllm/pull/13594); "
               "models mixing full and sliding-window layers treated as full attention "
               "(https://github.com/vllm-project/vllm/pull/14097)"),
    "0.10": VllmVersion(
        version="0.10", engine="v1", releases=("0.10", "0.11", "0.12", "0.13", "0.14", "0.15", "0.16"),
        non_torch_tp1_bytes=int(0.16 * GiB), non_torch_multi_gpu_bytes=overhead.NCCL_BYTES,
        sampler_bytes_per_logit=V0_SAMPLER_BYTES_PER_LOGIT, hybrid_allocator=True,
        source="vllm/v1/worker/gpu_worker.py determine_available_memory, the sampler pass holding sorted "
               "copies of the logits (39 B per logit, checked on the v0.15 Qwen3-14B pool of issue 13: -0.2 %); "
               "hybrid KV cache manager (vllm/v1/core/kv_cache_utils.py, RFC "
               "https://github.com/vllm-project/vllm/issues/11382)"),
    "0.17": VllmVersion(
        version="0.17", engine="v1", releases=("0.17",),
        non_torch_tp1_bytes=int(0.13 * GiB), non_torch_multi_gpu_bytes=overhead.NCCL_BYTES,
        sampler_bytes_per_logit=V1_SAMPLER_BYTES_PER_LOGIT, hybrid_allocator=True,
        source="vllm/v1/worker/gpu_worker.py determine_available_memory; the sampler pass's peak fell ~60 % from "
               "0.16 to 0.17 (Qwen3-14B on an H100: 5.64 -> 2.23 GiB, non-torch 0.13 GiB, llm-d planner "
               "version sweep); hybrid KV cache manager (vllm/v1/core/kv_cache_utils.py); CUDA graph memory "
               "captured after the pool is sized"),
    "0.18": VllmVersion(
        version="0.18", engine="v1", releases=("0.18", "0.19"),
        non_torch_tp1_bytes=V018_NON_TORCH_BYTES, non_torch_multi_gpu_bytes=V018_NON_TORCH_TP_BYTES[0][1],
        non_torch_no_sampler_bytes=V018_NON_TORCH_NO_SAMPLER_BYTES, non_torch_tp_bytes=V018_NON_TORCH_TP_BYTES,
        sampler_bytes_per_logit=V1_SAMPLER_BYTES_PER_LOGIT, hybrid_allocator=True, moe_cache_kept=True,
        source="vllm/v1/worker/gpu_worker.py determine_available_memory at v0.19.0 (its log: CUDA graph memory "
               "estimated but not profiled by default, VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=0); non-torch "
               "0.25 GiB on one H100, 2.07/2.13 GiB per rank at tp=2/4 (llm-d planner's 74 v0.19.0 runs, "
               "benchmarks/llmd/; 0.13 -> 0.25 GiB between 0.17 and 0.18 in its version sweep)"),
}  # fmt: skip
VLLM_VERSIONS["0.20"] = dataclasses.replace(
    VLLM_VERSIONS["0.18"], version="0.20", releases=("0.20",),
    cuda_graphs_profiled=True, default_gpu_memory_utilization=0.92,
    source="as 0.18, with vLLM's CUDA-graph estimate counted before the pool is sized "
           "(vllm/envs.py VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS default '1' from v0.20.0, '0' at v0.19.0; "
           "vllm/v1/worker/gpu_worker.py determine_available_memory subtracts cudagraph_memory_estimate; its log "
           "line says 'default since v0.21.0') and --gpu-memory-utilization 0.92 by default (vllm/config/cache.py "
           "at v0.20.0; 0.9 at v0.19.0); non-torch memory and the sampler carried over from 0.19 (unverified on "
           "these releases)")
VLLM_VERSIONS["0.21"] = dataclasses.replace(
    VLLM_VERSIONS["0.20"], version="0.21", releases=("0.21",), kv_tokens_from_concurrency=True,
    source=VLLM_VERSIONS["0.20"].source + "; from v0.20.1 the logged KV cache size in tokens is max_concurrency x "
           "max_model_len (vllm/v1/core/kv_cache_utils.py _report_kv_cache_config at v0.20.2-v0.23.0, "
           "get_kv_cache_capacity from v0.24.0), not num_blocks // groups x block_size")
_V2_NOTE = ("; models on the V2 model runner (vllm/config/vllm.py use_v2_model_runner) count no CUDA-graph memory: "
            "its profile_cudagraph_memory returns 0 up to v0.28.0 (vllm/v1/worker/gpu/model_runner.py; "
            "https://github.com/vllm-project/vllm/pull/49233), and their dummy sampler pass holds the logits and their "
            "fp32 copy, not the V1 sampler's pipeline (vllm/v1/worker/gpu/sample/sampler.py up to v0.26.x; "
            "unverified against a log)")
VLLM_VERSIONS["0.22"] = dataclasses.replace(
    VLLM_VERSIONS["0.21"], version="0.22", releases=("0.22", "0.23"),
    v2_runner="listed-unquantized", v2_architectures=frozenset({"Qwen3ForCausalLM"}), v2_sampler="logits_fp32",
    source=VLLM_VERSIONS["0.21"].source + _V2_NOTE + ": at v0.22.0-v0.23.0 dense unquantized Qwen3ForCausalLM")
VLLM_VERSIONS["0.24"] = dataclasses.replace(
    VLLM_VERSIONS["0.21"], version="0.24", releases=("0.24",), v2_runner="listed", gguf_in_tree=False,
    v2_sampler="logits_fp32",
    v2_architectures=frozenset({"Qwen3ForCausalLM", "DeepseekV2ForCausalLM", "Qwen2MoeForCausalLM",
                                "GraniteMoeForCausalLM", "LlamaForCausalLM", "MistralForCausalLM"}),
    source=VLLM_VERSIONS["0.21"].source + _V2_NOTE + ": at v0.24.0 Qwen3, Llama, Mistral, DeepSeek-V2, Qwen2-MoE, "
           "GraniteMoE")
_V2_MOE = frozenset({"DeepseekV2ForCausalLM", "Qwen2MoeForCausalLM", "GraniteMoeForCausalLM"})
VLLM_VERSIONS["0.25"] = dataclasses.replace(
    VLLM_VERSIONS["0.21"], version="0.25", releases=("0.25",), v2_runner="dense", gguf_in_tree=False,
    v2_sampler="logits_fp32",
    v2_architectures=_V2_MOE,
    source=VLLM_VERSIONS["0.21"].source + _V2_NOTE + ": from v0.25.0 every dense model that is not hybrid, and "
           "the DeepSeek-V2, Qwen2-MoE and GraniteMoE architectures")
_PREFIX_NOTE = ("; hybrid models get prefix caching by default from v0.26.0 (vllm/config/model.py "
                "is_prefix_caching_supported), their states in Mamba 'align' mode (2 + speculative pages per request, "
                "vllm/v1/kv_cache_interface.py MambaSpec.max_memory_usage_bytes; 'all' mode for models with "
                "SupportsMambaPrefixCaching at v0.26.0-v0.27.x, vllm/model_executor/models/config.py MambaModelConfig)")
VLLM_VERSIONS["0.26"] = dataclasses.replace(
    VLLM_VERSIONS["0.25"], version="0.26", releases=("0.26",), hybrid_prefix_caching=True, mamba_all_mode=True,
    source=VLLM_VERSIONS["0.25"].source + _PREFIX_NOTE)
VLLM_VERSIONS["0.27"] = dataclasses.replace(
    VLLM_VERSIONS["0.26"], version="0.27", releases=("0.27",), v2_sampler="logits",
    source=VLLM_VERSIONS["0.26"].source + "; the V2 runner's dummy sampler pass holds the logits alone "
           "(apply_sampling_params returns before the fp32 copy when no request needs logits processing, "
           "vllm/v1/worker/gpu/sample/sampler.py _requires_logits_processing from v0.27.0)")
VLLM_VERSIONS["0.28"] = dataclasses.replace(
    VLLM_VERSIONS["0.27"], version="0.28", releases=("0.28",), large_gpu_batched_tokens=16384, mamba_all_mode=False,
    source=VLLM_VERSIONS["0.27"].source + "; 16384 batched tokens on GPUs of 160 GiB or more "
           "(vllm/engine/arg_utils.py get_batch_defaults at v0.28.0); Mamba 'align' mode for every hybrid model "
           "under prefix caching (MambaModelConfig at v0.28.0)")
VLLM_VERSIONS["0.29"] = dataclasses.replace(
    VLLM_VERSIONS["0.28"], version="0.29", releases=("0.29", "0.30", "0.31", "0.32"), v2_runner="all",
    v2_counts_cuda_graphs=True,
    source=VLLM_VERSIONS["0.21"].source + "; from v0.29.0 the V2 model runner is the default for every model and "
           "estimates its CUDA graphs (vllm/v1/worker/gpu/cudagraph_utils.py profile_cudagraph_memory: PIECEWISE "
           "graphs captured in full, FULL extrapolated from two; modelled with the V1 runner's figure, "
           "unverified); 16384 batched tokens on GPUs of 160 GiB or more (v0.28.0)" + _PREFIX_NOTE + "; the dummy "
           "sampler pass holds the logits alone (vllm/v1/worker/gpu/sample/sampler.py, v0.27.0 to v0.32.x)")
VLLM_VERSIONS["0.33"] = dataclasses.replace(
    VLLM_VERSIONS["0.29"], version="0.33", releases=("0.33",), v2_sampler="v1",
    source=VLLM_VERSIONS["0.29"].source.rsplit("; the dummy sampler pass", 1)[0] + "; from v0.33.0 the dummy "
           "sampler runs a second pass with SamplingParams.for_sampler_warmup() (top-k, top-p, penalties, logprobs: "
           "vllm/v1/worker/gpu/model_runner.py _dummy_sampler_run), modelled with the V1 runner's figure (unverified)")
VLLM_VERSIONS["0.34"] = dataclasses.replace(
    VLLM_VERSIONS["0.33"], version="0.34", releases=("0.34",), extensible_kv_cache=True,
    default_gpu_memory_utilization=1.0,
    source="the extensible KV cache, on by default on CUDA from v0.34.0 (vllm/config/cache.py "
           "enable_extensible_kv_cache; resolved_gpu_memory_utilization 1.0 when unset): the pool is sized from the "
           "memory free after warm-up and CUDA-graph capture, less max(1 GiB, 0.75 x the activation peak) and the "
           "peak itself (vllm/v1/worker/extensible_kv_cache.py measure_kv_cache_bytes, KV_CACHE_MARGIN_FLOOR_BYTES, "
           "KV_CACHE_MARGIN_FRACTION); CUDA graphs as captured (modelled with the V1 runner's estimate); the CUDA "
           "context before vLLM's first snapshot 0.51 GiB on one GPU, 1.53 GiB per rank with several (vLLM 0.19 "
           "H100 logs, llm-d planner); unverified against a log of 0.34" + _PREFIX_NOTE)
#: What the device holds before vLLM's first memory snapshot, per rank (CUDA context; with several GPUs the
#: distributed init too): "init" used memory of the llm-d planner's vLLM 0.19 H100 logs, 0.51 GiB on all 44
#: single-GPU runs, 1.43-2.07 GiB per rank with tp or pp > 1 (1.53 the most common).
V034_INIT_USED_BYTES = int(0.51 * GiB)
V034_INIT_USED_MULTI_GPU_BYTES = int(1.53 * GiB)
#: vllm/v1/worker/extensible_kv_cache.py at v0.34.0: KV_CACHE_MARGIN_FLOOR_BYTES (CUDA) and KV_CACHE_MARGIN_FRACTION.
EXTENSIBLE_MARGIN_FLOOR_BYTES = 1 << 30
EXTENSIBLE_MARGIN_FRACTION = 0.75


def extensible_pool_bytes(*, total: int, utilization: float, used: int, peak: int, multi_gpu: bool) -> int:
    """The KV cache vLLM 0.34's extensible cache commits (``measure_kv_cache_bytes``): the budget
    ``total x utilization`` less what the engine holds (``used``: weights, non-torch memory, CUDA graphs), capped by
    the device's headroom less a margin of ``max(1 GiB, 0.75 x peak)``, then less the activation ``peak`` itself."""
    headroom = total - (V034_INIT_USED_MULTI_GPU_BYTES if multi_gpu else V034_INIT_USED_BYTES) - used
    margin = max(EXTENSIBLE_MARGIN_FLOOR_BYTES, int(peak * EXTENSIBLE_MARGIN_FRACTION))
    return min(int(total * utilization) - used, headroom - margin) - peak


#: The newest rule checked against logs (the default of ``--vllm-version``).
DEFAULT_VLLM_VERSION = "0.18"


#: ``X.Y`` series whose later patch releases (``X.Y.1`` on) follow another rule: v0.20.1 logs the KV cache size in
#: tokens as 0.21 does (``int(max_concurrency x max_model_len)``: 619,479 = int(423 / 179 x 262,144) tokens in a
#: v0.20.1 start-up log, club-3090 issue #91; vllm/v1/core/kv_cache_utils.py at v0.20.2), v0.20.0 as 0.19.
PATCH_RULES = {"0.20": "0.21"}


def resolve_vllm_version(version: str | None) -> VllmVersion:
    """The sizing rule for ``version`` (``X.Y`` or ``X.Y.Z``; ``None``: the newest modelled).

    Raises:
        InvalidArgumentError: A version no rule covers.
    """
    if version is None:
        return VLLM_VERSIONS[DEFAULT_VLLM_VERSION]
    text = str(version).strip().lstrip("v")
    parts = text.split(".")
    short = ".".join(parts[:2])
    for rule in VLLM_VERSIONS.values():
        if short in rule.releases and all(p.isdigit() for p in parts) and len(parts) in (2, 3):
            if short in PATCH_RULES and len(parts) == 3 and int(parts[2]) >= 1:
                # The logged KV token count changed in a patch release (PATCH_RULES).
                return VLLM_VERSIONS[PATCH_RULES[short]]
            return rule
    accepted = ", ".join(r for rule in VLLM_VERSIONS.values() for r in rule.releases)
    raise InvalidArgumentError("vllm_version", version, f"a modelled vLLM release: {accepted}")


def vllm_batch_defaults(gpu: GPU, version: str | None = None, *, max_model_len: int | None = None) -> tuple[int, int]:
    """vLLM's default ``(max_num_batched_tokens, max_num_seqs)`` for ``vllm serve`` on ``gpu``.

    V1 (``EngineArgs.get_batch_defaults``, vllm/engine/arg_utils.py): GPUs with >= 70 GiB whose name
    does not contain "a100" (H100, H200, MI300X ...) get 8192 tokens / 1024 sequences for the
    OpenAI server (16384 for the offline ``LLM`` class); others 2048 / 256 (a larger budget lowered
    A100 throughput, vLLM PR #17885); from 0.28 GPUs of 160 GiB or more (B200, B300) 16384 / 1024. V0 without chunked prefill: ``max(max_model_len, 2048)`` tokens
    and 256 sequences (SchedulerConfig); with chunked prefill (on by default above 32K context) 512 on 0.6, 2048
    on 0.7 (:attr:`VllmVersion.v0_chunked_prefill_tokens`).
    """
    rule = resolve_vllm_version(version)
    if rule.engine == "v0":
        if max_model_len is not None and max_model_len > 32768:
            return rule.v0_chunked_prefill_tokens, 256
        return max(max_model_len or 2048, 2048), 256
    if rule.large_gpu_batched_tokens and gpu.usable_memory_bytes >= 160 * GiB:
        return rule.large_gpu_batched_tokens, 1024
    if gpu.usable_memory_bytes >= 70 * GiB and "a100" not in gpu.name.lower():
        return 8192, 1024
    return 2048, 256


def v2_sampler_bytes_per_logit(mode: str, *, act_bytes: int, tp: int) -> float:
    """Bytes per logit the V2 model runner's dummy sampler pass holds at its peak (vllm/v1/worker/gpu/model_runner.py
    ``_dummy_sampler_run``, vllm/v1/worker/gpu/sample/sampler.py).

    Its dummy batch keeps the default sampling state (top-k = vocabulary, top-p = 1, no penalties; sample/states.py),
    so the pass holds the logits in the model dtype, from v0.22.0 to v0.26.x their fp32 copy too
    (``apply_sampling_params`` copies unconditionally; from v0.27.0 it returns early when no request needs logits
    processing); the Gumbel-max sampling keeps two values per 1024-logit block. With tensor parallelism the
    logits gather holds the rank's shard, the gathered tensor and its reordered copy at once
    (vllm/distributed/device_communicators/base_device_communicator.py ``all_gather``): ``2 + 1/tp`` logits.
    From v0.33.0 a second pass with ``SamplingParams.for_sampler_warmup()`` runs the whole pipeline (``v1``, not
    handled here). Unverified against a start-up log of a model on the V2 runner.
    """
    gathered = act_bytes * (2 + 1 / tp) if tp > 1 else act_bytes
    held = act_bytes + (4 if mode == "logits_fp32" else 0)
    return max(gathered, held)


def profile_activation_bytes(arch: Architecture, tokens: int, rows: int, *, act_bytes: int, tp: int,
                             sampler_bytes_per_logit: float, moe_cache_kept: bool = False,
                             residual_copies: int = 3) -> int:
    """Torch's activation peak of vLLM's profile run on one rank: a forward of ``tokens`` tokens through
    vLLM's layers, then the dummy sampler over ``rows`` logits rows; the larger of the two.

    Forward (vllm/model_executor/models/llama.py and layers/fused_moe): the residual stream
    (``residual_copies * tokens * hidden``) plus the larger of the attention block
    (fused qkv, attention output, o_proj output) and the MLP (fused gate_up, activation output,
    down_proj output; gate_up stays referenced until the MLP returns) or the fused-MoE intermediate
    caches (``tokens * top_k * (3 * moe_intermediate / tp + hidden)``). No attention scores: the
    attention kernels are skipped without metadata in the profile run. The V0 engine runs the model eagerly,
    where ``RMSNorm.forward_cuda`` normalizes in place (``fused_add_rms_norm`` on the input and the residual,
    vllm/model_executor/layers/layernorm.py at v0.7.2): two hidden-size tensors (``residual_copies=2``; vLLM
    0.6.4 logs of Llama-3.1-8B on an RTX 3090, vLLM issue #10517: the peak grows 110.7 KB per batched token,
    2.07 GiB at 20,000 tokens and 2.99 at 29,000, i.e. 2 x hidden + 3 x intermediate + hidden bf16 values).
    The V1 engine runs the ``torch.compile``-d model, modelled with three (the layer input, the residual and
    the normed input: fitted on the llm-d vLLM 0.19 runs, whose forward-bound first pipeline stages it
    matches to 0.29 % of the pool against 0.39 % with two; unverified against the compiled graph).

    Sampler: the forward's ``tokens x hidden`` output, still referenced, and ``rows`` logits rows of the
    whole vocabulary (gathered over tensor-parallel ranks, so the same on every rank: Llama-3.1-8B logs
    1.89 GiB at tp=1, 2 and 4 on vLLM 0.19) at ``sampler_bytes_per_logit``; none on a pipeline stage
    that does not sample (``rows=0``). With ``moe_cache_kept`` (0.18 and later) a MoE model's fused-MoE
    caches of the forward (the gate/up output and the down output, ``tokens * top_k * (2 * moe_intermediate
    / tp + hidden)``) are still allocated during the sampler pass: on the llm-d vLLM 0.19 logs this
    accounts for the MoE runs' activation peaks above the sampler's (Qwen3-30B-A3B 2.68 GiB logged, 2.64
    modelled; Qwen1.5-MoE-A2.7B 2.47 / 2.50; DeepSeek-V2-Lite 1.93 / 1.94; Mixtral-8x7B tp=2 1.21 / 1.08),
    which dense models of the same vocabulary do not show (unverified against vLLM's code).
    """
    h = arch.hidden_size
    q_dim = arch.num_attention_heads * arch.head_dim // tp
    kv_dim = max(1, arch.num_key_value_heads // tp) * arch.head_dim if not arch.is_mla else (
        int(arch.kv_lora_rank or 0) + int(arch.qk_rope_head_dim or 0))
    attention = q_dim + 2 * kv_dim + q_dim + h
    if arch.is_moe:
        mlp = arch.num_experts_per_tok * (3 * arch.moe_intermediate_size // tp + h)
        if arch.num_dense_layers or (arch.moe_layers and len(arch.moe_layers) < arch.num_layers):
            # A dense layer anywhere (DeepSeek's leading ones, Llama-4 Maverick's interleaved ones): its MLP too.
            mlp = max(mlp, (3 if arch.gated_mlp else 2) * arch.intermediate_size // tp + h)
    else:
        mlp = (3 if arch.gated_mlp else 2) * arch.intermediate_size // tp + h
    forward = tokens * act_bytes * (residual_copies * h + max(attention, mlp))
    sampler = tokens * act_bytes * h + rows * arch.vocab_size * sampler_bytes_per_logit
    if moe_cache_kept and arch.is_moe:
        sampler += tokens * act_bytes * arch.num_experts_per_tok * (2 * arch.moe_intermediate_size // tp + h)
    if rows == 0:
        sampler = 0
    return int(max(forward, sampler))


def encoder_output_bytes(arch: Architecture, budget_tokens: int, *, act_bytes: int) -> tuple[int, int]:
    """``(bytes, images)``: the dummy encoder outputs of a vision-language model that vLLM V1's profile run
    keeps in its encoder cache through the language model's dummy forward and the sampler
    (vllm/v1/worker/gpu_model_runner.py ``profile_run``: ``self.encoder_cache["tmp"]``, cleared afterwards).
    It runs as many images of the largest feature size as the encoder budget (``max_num_batched_tokens``
    or one image's features, the larger; "Encoder cache will be initialized with a budget of 8192 tokens,
    and profiled with 32 image items" for gemma-3 in the llm-d logs), each ``tokens_per_image`` embeddings of
    the language model's width. The largest feature size is the processor's; ``tokens_per_image`` stands for
    it (exact for fixed-size encoders such as gemma-3's 256, the reference image's count for dynamic
    resolution). None for models without a vision tower or whose images go through cross-attention."""
    per_image = arch.tokens_per_image
    if not arch.vision_parameters or per_image <= 0 or arch.cross_tokens_per_image:
        return 0, 0
    images = max(1, budget_tokens // per_image)
    return images * per_image * arch.hidden_size * act_bytes, images


#: Architectures whose temporal (SSM) state dtype vLLM takes from the config's ``mamba_ssm_dtype`` when
#: ``--mamba-ssm-cache-dtype`` is "auto" (vllm/model_executor/models/config.py
#: ``Qwen3_5ForConditionalGenerationConfig``, v0.19.0 to v0.34.0; Qwen3.5/3.6 checkpoints say float32).
SSM_DTYPE_FROM_CONFIG = frozenset({"Qwen3_5ForConditionalGeneration", "Qwen3_5MoeForConditionalGeneration"})


def ssm_state_dtype_bytes(spec: ModelSpec, act_bytes: int) -> int:
    """Bytes per element of vLLM's temporal (SSM) state: the model dtype ("auto"), or the config's
    ``mamba_ssm_dtype`` for the architectures in :data:`SSM_DTYPE_FROM_CONFIG`."""
    if not SSM_DTYPE_FROM_CONFIG.intersection(spec.config.get("architectures") or ()):
        return act_bytes
    text = spec.config.get("text_config") if isinstance(spec.config.get("text_config"), dict) else spec.config
    name = text.get("mamba_ssm_dtype")
    return int(BYTES[name]) if isinstance(name, str) and name in BYTES else act_bytes


def vllm_state_bytes(mixer: Mixer, *, conv_bytes: int, ssm_bytes: int, speculative_tokens: int = 0) -> int:
    """One sequence's Mamba / gated-DeltaNet state as vLLM allocates it (whole device): the convolution state
    keeps ``conv_kernel - 1 + speculative_tokens`` rows of the conv channels in the model dtype, the temporal
    state ``state_elements`` in the SSM dtype (vllm/model_executor/layers/mamba/mamba_utils.py
    ``MambaStateShapeCalculator.mamba1/mamba2/gated_delta_net_state_shape``, ``MambaStateDtypeCalculator``,
    v0.19.0 to v0.34.0). Other recurrent kinds keep :func:`state_bytes_per_sequence`'s layout in the model dtype."""
    if mixer.kind not in ("linear", "ssm") or mixer.conv_kernel < 2:
        return state_bytes_per_sequence(mixer, conv_bytes, state_dtype_bytes=ssm_bytes)
    channels = mixer.conv_elements // mixer.conv_kernel
    return channels * (mixer.conv_kernel - 1 + speculative_tokens) * conv_bytes + mixer.state_elements * ssm_bytes


#: Architectures vLLM 0.26-0.27 runs in Mamba "all" mode under prefix caching (``SupportsMambaPrefixCaching`` in
#: vllm/model_executor/models/{mamba,mamba2,jamba,nemotron_h,zamba2,granitemoehybrid,falcon_h1}.py at v0.26.0): a state
#: page per block of the sequence, blocks aligned to the Mamba chunk size (not modelled: :func:`serving_capacity` takes
#: "align" mode's pages and says so).
MAMBA_PREFIX_CACHING_ARCHITECTURES = frozenset({
    "MambaForCausalLM", "Mamba2ForCausalLM", "JambaForCausalLM", "NemotronHForCausalLM", "Zamba2ForCausalLM",
    "GraniteMoeHybridForCausalLM", "FalconH1ForCausalLM"})


#: vLLM rounds an attention block grown to hold a Mamba state page to a multiple of this many tokens
#: (vllm/model_executor/models/config.py HybridAttentionMambaModelConfig: kernel block alignment).
KERNEL_BLOCK_ALIGNMENT = 16


@dataclass(frozen=True, kw_only=True)
class HybridPool:
    """What vLLM V1's hybrid KV cache manager makes of a pool (vllm/v1/core/kv_cache_utils.py).

    Layers of one kind form KV cache groups of ``group_size`` layers (the fewest layers of any kind,
    or the most when no kind has 25 % more than another); the pool is cut into ``group_size``
    tensors of ``num_blocks`` pages, each page shared by one layer of every group. A sequence takes
    blocks in every group by its kind (:meth:`CacheGroup.blocks`); a Mamba/linear-attention layer one
    page of state, the attention block grown until its page holds that state.
    """

    block_size: int
    page_bytes: int
    group_size: int
    num_groups: int
    num_blocks: int
    kv_cache_tokens: int
    max_concurrent_sequences: int
    largest_max_model_len: int
    #: ``num_blocks`` over the blocks of one ``max_model_len`` sequence, as vLLM logs it
    #: ("Maximum concurrency ... 58.11x").
    max_concurrency: float = 0.0


def hybrid_pool(layout: KVLayout, pool_bytes: int, *, block_size: int, max_model_len: int, max_position: int,
                max_num_batched_tokens: int, state_blocks: int = 1,
                tokens_from_concurrency: bool = False) -> HybridPool:
    """vLLM V1's KV cache groups over ``layout`` and what a pool of ``pool_bytes`` holds
    (``get_kv_cache_config``: ``_get_kv_cache_groups_uniform_page_size``, ``get_max_concurrency_for_kv_cache_config``,
    ``_report_kv_cache_config``).

    ``state_blocks``: the pages one request takes in a Mamba/linear-attention group (vllm/v1/kv_cache_interface.py
    ``MambaSpec.max_memory_usage_bytes``: 1 + the speculative tokens, 2 + them with prefix caching in Mamba "align"
    mode). ``tokens_from_concurrency``: "GPU KV cache size" is ``int(max_concurrency x max_model_len)``
    (vllm/v1/core/kv_cache_utils.py ``_report_kv_cache_config`` from v0.20.1, ``get_kv_cache_capacity`` from
    v0.24.0) rather than ``num_blocks // groups x block_size`` (v0.20.0 and before)."""
    attention = [g for g in layout.groups if not g.is_state and g.layers]
    states = [g for g in layout.groups if g.is_state and g.layers]
    if not attention and not states:
        return HybridPool(block_size=block_size, page_bytes=0, group_size=0, num_groups=0, num_blocks=0,
                          kv_cache_tokens=0, max_concurrent_sequences=0, largest_max_model_len=0)
    state_bytes = max((g.state_bytes for g in states), default=0)
    token_bytes = max((g.token_bytes for g in attention), default=0)
    if attention:
        if state_bytes > token_bytes * block_size:
            block_size = KERNEL_BLOCK_ALIGNMENT * math.ceil(state_bytes / (KERNEL_BLOCK_ALIGNMENT * token_bytes))
        page = token_bytes * block_size
    else:  # only recurrent layers: vLLM makes one block hold a whole sequence
        block_size, page = max_model_len, state_bytes
    counts = [g.layers for g in attention + states]
    group_size = max(counts) if max(counts) < 1.25 * min(counts) else min(counts)
    per_kind = [(g, math.ceil(g.layers / group_size)) for g in attention + states]
    num_groups = sum(n for _, n in per_kind)
    num_blocks = max(0, pool_bytes) // (page * group_size) if page else 0

    def blocks_per_sequence(tokens: int) -> int:
        return sum(n * (state_blocks if g.is_state else g.blocks(tokens, block_size, in_flight=max_num_batched_tokens))
                   for g, n in per_kind)

    per_seq = blocks_per_sequence(max_model_len)
    longest = largest_length(lambda n: blocks_per_sequence(n) <= num_blocks, max_position, block_size)
    kv_tokens = (int(num_blocks / per_seq * max_model_len) if per_seq else 0) if tokens_from_concurrency \
        else num_blocks // num_groups * block_size
    return HybridPool(block_size=block_size, page_bytes=page, group_size=group_size, num_groups=num_groups,
                      num_blocks=num_blocks, kv_cache_tokens=kv_tokens,
                      max_concurrent_sequences=num_blocks // per_seq if per_seq else 0,
                      largest_max_model_len=longest, max_concurrency=num_blocks / per_seq if per_seq else 0.0)


#: vLLM pads the vocabulary of its embedding and LM head to a multiple of this before splitting it over
#: tensor-parallel ranks (vllm/model_executor/layers/vocab_parallel_embedding.py DEFAULT_VOCAB_PADDING_SIZE).
VOCAB_PADDING = 64


def check_vocab_split(arch: Architecture, tp: int) -> None:
    """vLLM splits the padded vocabulary evenly over the tensor-parallel ranks and asserts it divides:
    Qwen3-14B at tp=5 fails with "151936 is not divisible by 5" (llm-d planner's vLLM 0.19 log)."""
    padded = -(-arch.vocab_size // VOCAB_PADDING) * VOCAB_PADDING
    if tp > 1 and padded % tp:
        accepted = [t for t in (1, 2, 4, 8, 16) if padded % t == 0]
        raise InvalidArgumentError(
            "tp", tp, f"a degree that divides the vocabulary padded to {VOCAB_PADDING} ({padded} for "
            f"{arch.vocab_size}): {', '.join(map(str, accepted))}")


def pipeline_layers(num_layers: int, pp: int) -> list[int]:
    """Layers per pipeline stage as vLLM splits them (vllm/distributed/utils.py ``get_pp_indices``): an
    even share, the remainder to the stages before the last, from the second-to-last backwards."""
    parts = [num_layers // pp] * pp
    for i in range(2, num_layers % pp + 2):
        parts[-i] += 1
    return parts


#: Model types whose sliding-window layers get a rotary embedding of their own, unscaled (vLLM's gemma3.py:
#: ``rope_local_base_freq`` on sliding layers, ``rope_scaling`` on the others).
LOCAL_ROPE_MODEL_TYPES = frozenset({"gemma3", "gemma3_text"})


def rotary_cache_bytes(spec: ModelSpec, act_bytes: int) -> int:
    """vLLM's RotaryEmbedding ``cos_sin_cache`` buffers (vllm/model_executor/layers/rotary_embedding,
    ``get_rope``, one per distinct configuration): ``positions x rotary_dim`` in the model dtype, counted
    in "Model loading took". Positions: ``max_position_embeddings``, times the factor for ``linear`` and
    ``dynamic`` scaling, ``original_max_position_embeddings x factor`` for ``yarn``. On the llm-d vLLM
    0.19 logs: Llama-3.1-8B 0.03 GiB (14.99 logged, 14.96 of parameters), gemma-3-4b 0.06 + 0.5 GiB
    (local and 8x linear-scaled global rope: 8.58 logged, 8.01 of parameters)."""
    arch = spec.architecture
    if arch is None:
        return 0
    config = spec.config.get("text_config") if isinstance(spec.config.get("text_config"), dict) else spec.config
    scaling = config.get("rope_scaling") if isinstance(config.get("rope_scaling"), dict) else {}
    partial = config.get("partial_rotary_factor")
    rotary_dim = int(arch.qk_rope_head_dim or 0) if arch.is_mla else int(arch.head_dim * (
        float(partial) if isinstance(partial, (int, float)) and not isinstance(partial, bool) else 1.0))
    positions = int(arch.max_position_embeddings or 0)
    kind = scaling.get("rope_type") or scaling.get("type")
    factor = scaling.get("factor")
    if isinstance(factor, (int, float)) and not isinstance(factor, bool):
        if kind in ("linear", "dynamic"):
            positions = int(positions * factor)
        elif kind == "yarn":
            positions = int(int(scaling.get("original_max_position_embeddings") or positions) * factor)
    caches = positions
    if arch.model_type in LOCAL_ROPE_MODEL_TYPES and kind:
        caches += int(arch.max_position_embeddings or 0)
    return caches * rotary_dim * act_bytes


#: MXFP4 bytes per expert weight: 4-bit values plus one 8-bit scale per 32 (the checkpoint's layout).
MXFP4_BYTES_PER_WEIGHT = 0.5 + 1 / 32


def kernel_padding_bytes(spec: ModelSpec, workload: Workload) -> int:
    """Bytes per rank vLLM adds to quantized MoE experts for its kernels: MXFP4 experts (gpt-oss) on CUDA
    are created with the hidden size rounded up to 256 and the per-rank intermediate size to 128
    (vllm/model_executor/layers/quantization/mxfp4.py ``Mxfp4MoEMethod.create_weights``, as in the
    releases read; the v0.19.0 file unverified). gpt-oss-20b: 13.64 GiB logged at tp=1 (12.82 GiB of
    checkpoint tensors; +0.86 GiB modelled), 7.01 GiB at tp=2 (+0.65 GiB modelled, 0.59 logged)."""
    arch = spec.architecture
    q = spec.quantization
    if arch is None or q is None or q.method != "mxfp4" or not arch.is_moe:
        return 0
    if workload.quantization not in ("none", "mxfp4"):
        return 0
    tp = workload.parallelism.tp
    hidden, inter = arch.hidden_size, arch.moe_intermediate_size // tp
    padded_hidden, padded_inter = -(-hidden // 256) * 256, -(-inter // 128) * 128
    moe_layers = len(arch.moe_layers) if arch.moe_layers else arch.num_layers - arch.num_dense_layers
    extra = 3 * (padded_hidden * padded_inter - hidden * inter) * arch.num_experts * moe_layers
    return int(extra * MXFP4_BYTES_PER_WEIGHT)


#: The ggml types vLLM's GGUF linear and embedding methods run (vllm/model_executor/layers/quantization/gguf.py
#: at v0.19.0: UNQUANTIZED_TYPES | DEQUANT_TYPES); another type raises "Unsupported GGUF quantization type".
VLLM_GGUF_TYPES = frozenset({"F32", "F16", "BF16", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q8_1", "Q2_K", "Q3_K",
                             "Q4_K", "Q5_K", "Q6_K", "IQ1_M", "IQ1_S", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ3_XXS",
                             "IQ3_S", "IQ4_XS", "IQ4_NL"})
#: GGUF tensors vLLM loads into one merged layer (QKVParallelLinear, MergedColumnParallelLinear).
_GGUF_MERGED = (("attn_q", "attn_k", "attn_v"), ("ffn_gate", "ffn_up"))


def is_gguf(spec: ModelSpec, workload: Workload) -> bool:
    """A GGUF file, or a transformers model sized as ``llama-quantize`` writes it (``--quantization gguf:TYPE``)."""
    return bool(getattr(spec, "gguf_tensors", ())) or workload.quantization.startswith("gguf:")


def gguf_weight_bytes(spec: ModelSpec, workload: Workload) -> tuple[int, int]:
    """(bytes of the model's tensors as vLLM holds a GGUF checkpoint, of which merged-layer padding), whole model.

    vLLM 0.19 keeps GGUF weights in their ggml blocks (GGUFLinearMethod, GGUFEmbeddingMethod: a uint8
    ``qweight`` per layer, dequantized inside its kernels), so the weights are the file's tensors. A merged
    layer whose shards differ in type (Q4_K_M's Q4_K q/k with a Q6_K v) is one dense tensor: the shards
    stacked and each row padded to the widest shard's row (``GGUFLinearMethod._create_padded_weight_param``).

    Raises:
        ConflictingOptionsError: A tensor type vLLM's GGUF kernels do not run (TQ1_0, TQ2_0, MXFP4 ...).
    """
    from hf_gpu_estimator.memory.llamacpp import gguf_tensors_of

    quant = workload.quantization if workload.quantization.startswith("gguf:") else None
    tensors = gguf_tensors_of(spec, quant)
    bad = sorted({t.type for t in tensors if t.type not in VLLM_GGUF_TYPES})
    if bad:
        raise ConflictingOptionsError("quantization", workload.quantization if quant else spec.id,
                                      f"holds {', '.join(bad)} tensors, which vLLM's GGUF kernels do not run "
                                      "(vllm/model_executor/layers/quantization/gguf.py: 'Unsupported GGUF "
                                      "quantization type')", fix="pick a K- or I-quant GGUF, or --engine llama.cpp")
    total = sum(t.nbytes for t in tensors)
    by_name = {t.name: t for t in tensors}
    padding = 0
    for t in tensors:
        for group in _GGUF_MERGED:
            if t.layer is None or f".{group[0]}.weight" not in t.name or len(t.shape) != 2:
                continue
            shards = [by_name.get(t.name.replace(f".{group[0]}.", f".{g}.")) for g in group]
            if any(x is None or len(x.shape) != 2 for x in shards):
                continue
            row = max(x.nbytes // x.shape[1] for x in shards if x is not None)
            padding += sum(x.shape[1] * row - x.nbytes for x in shards if x is not None)
    return total + padding, padding


def stage_weights(spec: ModelSpec, workload: Workload, *, act_bytes: int) -> tuple[int, int]:
    """Weight bytes per rank on the first and the last pipeline stage (equal without pipeline parallelism).

    The decoder layers split as :func:`pipeline_layers`; the first stage holds the (vocab-parallel)
    embedding, the last the LM head (its own copy when the embeddings are tied); both the rotary cache
    (:func:`rotary_cache_bytes`); the layers their kernel padding (:func:`kernel_padding_bytes`).
    """
    arch = spec.architecture
    p = workload.parallelism
    if is_gguf(spec, workload):
        whole = gguf_weight_bytes(spec, workload)[0] // p.tp
    else:
        whole = weights_per_device(spec, workload.with_(parallelism=dataclasses.replace(p, pp=1, num_gpus=p.tp)))
    rope = rotary_cache_bytes(spec, act_bytes)
    whole += kernel_padding_bytes(spec, workload)  # per expert layer: split with the layers below
    if p.pp == 1 or arch is None:
        return whole + rope, whole + rope
    embed = spec.parameters.embedding * act_bytes // p.tp
    untied_head = spec.parameters.lm_head * act_bytes // p.tp
    head = untied_head if untied_head else embed
    layers = max(0, whole - embed - untied_head)
    parts = pipeline_layers(arch.num_layers, p.pp)
    return (layers * parts[0] // arch.num_layers + embed + rope, layers * parts[-1] // arch.num_layers + head + rope)


def serving_capacity(spec: ModelSpec, workload: Workload, gpu: GPU, *,
                     gpu_memory_utilization: float | None = None,
                     max_model_len: int | None = None, max_num_batched_tokens: int | None = None,
                     max_num_seqs: int | None = None, block_size: int = VLLM_BLOCK_SIZE,
                     vllm_version: str | None = None, speculative: Speculative | None = None) -> ServingCapacity:
    """The KV pool vLLM would size for ``spec`` on ``gpu`` (per device of a ``tp x pp`` replica).

    Args:
        spec: The model.
        workload: Inference workload: dtype, quantization, kv_cache_dtype, tp, pp.
        gpu: The GPU type.
        gpu_memory_utilization: vLLM's ``--gpu-memory-utilization`` (0 to 1].
        max_model_len: vLLM's ``--max-model-len``; default the model's ``max_position_embeddings``.
        max_num_batched_tokens, max_num_seqs: default :func:`vllm_batch_defaults`.
        block_size: Tokens per KV block.
        vllm_version: ``X.Y``; default the newest modelled (:data:`DEFAULT_VLLM_VERSION`).
        speculative: A draft model, EAGLE head or MTP layers (:mod:`.speculative`): the drafter is loaded
            with the target ("Model loading took" counts it; on the last pipeline stage) and its attention
            layers take their place in the same KV cache config, so every token costs both.

    Raises:
        InvalidArgumentError: A utilisation outside (0, 1], an unknown version, a context longer than
            the model supports, or a tensor-parallel degree that does not split the heads.
    """
    rule = resolve_vllm_version(vllm_version)
    utilization = check_fraction("gpu_memory_utilization", rule.default_gpu_memory_utilization
                                 if gpu_memory_utilization is None else gpu_memory_utilization)
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("model", spec.id, "a model with config.json (layer shapes) for serving capacity")
    p = workload.parallelism
    check_tp(arch, p.tp)
    check_vocab_split(arch, p.tp)
    max_pos = arch.max_position_embeddings or (workload.seq_len + workload.new_tokens)
    model_len = max_model_len if max_model_len is not None else max_pos
    check_context(spec, model_len)
    default_tokens, default_seqs = vllm_batch_defaults(gpu, rule.version, max_model_len=model_len)
    tokens = max_num_batched_tokens or default_tokens
    seqs = max_num_seqs or default_seqs
    act_bytes = int(BYTES[plan_weights(spec, workload).compute_dtype])
    first_weights, last_weights = stage_weights(spec, workload, act_bytes=act_bytes)
    total = gpu.usable_memory_bytes
    # Mamba and linear-attention states as vLLM lays them out: conv rows kernel - 1 + speculative tokens in the
    # model dtype, the temporal state in the model dtype (mamba_ssm_cache_dtype "auto") or the config's
    # mamba_ssm_dtype (Qwen3.5); each request holds 1 + speculative tokens pages of it, 2 + them where the release
    # turns prefix caching on for hybrid models (Mamba "align" mode)
    spec_tokens = speculative.num_speculative_tokens if speculative is not None else 0
    ssm_bytes = ssm_state_dtype_bytes(spec, act_bytes)
    layout = kv_layout(spec, workload, state_bytes=lambda m: vllm_state_bytes(
        m, conv_bytes=act_bytes, ssm_bytes=ssm_bytes, speculative_tokens=spec_tokens))
    drafter = draft_cost(spec, speculative, workload) if speculative is not None else None
    if drafter is not None:
        layout = merged_layout(layout, drafter)
        last_weights += drafter.weights_bytes
        first_weights += drafter.weights_bytes if p.pp == 1 else 0
    mixed = len({g.kind for g in layout.groups}) > 1

    # not for MXFP4 experts (gpt-oss), whose kernels keep no such caches: 2.87 GiB logged at tp=2, the sampler's figure
    moe_cache_kept = rule.moe_cache_kept and not (spec.quantization is not None and spec.quantization.method == "mxfp4")

    # V1 keeps the dummy encoder outputs of a vision-language model through the profile run (first stage only)
    encoder, images = encoder_output_bytes(arch, tokens, act_bytes=act_bytes) if rule.engine == "v1" else (0, 0)

    stages = pipeline_layers(arch.num_layers, p.pp)
    v2_runner = rule.uses_v2_runner(spec, hybrid=any(g.is_state for g in layout.groups))
    # attention beside the states ("hybrid"; attention-free models get no prefix caching)
    prefix_cached = rule.hybrid_prefix_caching and any(g.is_state for g in layout.groups) and any(
        not g.is_state for g in layout.groups)
    state_blocks = (2 if prefix_cached else 1) + spec_tokens
    flash_attn_3 = gpu.name.startswith(FA3_GPU_PREFIXES)
    v2_sampler = rule.v2_sampler if v2_runner else "v1"
    sampler_bytes = rule.sampler_bytes_per_logit if v2_sampler == "v1" else v2_sampler_bytes_per_logit(
        v2_sampler, act_bytes=act_bytes, tp=p.tp)

    def graph_bytes(first: bool) -> int:
        """vLLM's CUDA-graph estimate on the first or last pipeline stage (0 where it is not counted)."""
        if rule.extensible_kv_cache:  # measured after capture: the graphs as captured
            pass
        elif not rule.cuda_graphs_profiled or (v2_runner and not rule.v2_counts_cuda_graphs):
            return 0
        return cuda_graph_estimate_bytes(arch, tp=p.tp, layers=stages[0] if first else stages[-1],
                                         act_bytes=act_bytes, max_num_seqs=seqs, max_num_batched_tokens=tokens,
                                         flash_attn_3=flash_attn_3)[0]

    def rank(weights: int, samples: bool, first: bool = True) -> tuple[int, int, int, tuple[int, int, int, int, float]]:
        """(activations, non-torch, pool, (blocks, tokens, concurrent, longest, concurrency)) of one rank."""
        activations = profile_activation_bytes(arch, tokens, min(seqs, tokens) if samples else 0, act_bytes=act_bytes,
                                               tp=p.tp, sampler_bytes_per_logit=sampler_bytes,
                                               moe_cache_kept=moe_cache_kept,
                                               residual_copies=2 if rule.engine == "v0" else 3)
        activations += encoder if first else 0
        non_torch = rule.non_torch_bytes(p.tp, p.pp, samples=samples, gpu=gpu.name)
        graphs = graph_bytes(first)
        if rule.extensible_kv_cache:
            pool = extensible_pool_bytes(total=total, utilization=utilization, used=weights + non_torch + graphs,
                                         peak=activations, multi_gpu=p.tp * p.pp > 1)
        else:
            pool = int(total * utilization - weights - activations - non_torch - graphs)
        if rule.hybrid_allocator:
            h = hybrid_pool(layout, pool, block_size=block_size, max_model_len=model_len, max_position=max_pos,
                            max_num_batched_tokens=tokens, state_blocks=state_blocks,
                            tokens_from_concurrency=rule.kv_tokens_from_concurrency)
            return activations, non_torch, pool, (h.num_blocks, h.kv_cache_tokens, h.max_concurrent_sequences,
                                                  h.largest_max_model_len, h.max_concurrency)
        used = layout.without_windows() if mixed else layout
        got = pool_capacity(used, pool, block_size=block_size, max_model_len=model_len, max_position=max_pos,
                            in_flight=tokens)
        per_seq = used.sequence_bytes(model_len, block_size, in_flight=tokens)
        return activations, non_torch, pool, (*got, max(0, pool) / per_seq if per_seq else 0.0)

    # vLLM logs rank 0's memory; every rank sizes its own pool and the engine keeps the fewest blocks
    # (the first pipeline stage holds the embedding, the last the LM head and the sampler).
    activations, non_torch, pool, first = rank(first_weights, samples=p.pp == 1)
    weights = first_weights
    blocks, kv_tokens, concurrent, longest, concurrency = first
    smallest_pool = pool
    if p.pp > 1:
        *_, last_pool, last = rank(last_weights, samples=True, first=False)
        smallest_pool = min(pool, last_pool)
        if last[0] < blocks:
            blocks, kv_tokens, concurrent, longest, concurrency = last
    if rule.hybrid_allocator:
        hybrid = hybrid_pool(layout, pool, block_size=block_size, max_model_len=model_len, max_position=max_pos,
                             max_num_batched_tokens=tokens, state_blocks=state_blocks,
                             tokens_from_concurrency=rule.kv_tokens_from_concurrency)
        block_size = hybrid.block_size
        paging = (f"hybrid KV cache manager: {layout.describe()} per device in {hybrid.num_groups} groups of "
                  f"{hybrid.group_size} layers, blocks of {block_size} tokens; sliding layers hold the window - 1 "
                  f"+ {tokens} batched tokens + 1 block, recurrent layers {state_blocks} page(s) per sequence")
        if prefix_cached:
            all_mode = rule.mamba_all_mode and MAMBA_PREFIX_CACHING_ARCHITECTURES.intersection(
                spec.config.get("architectures") or ())
            paging += (f"; vLLM {rule.version} turns prefix caching on for hybrid models (is_prefix_caching_supported "
                       "from v0.26.0): " + ("this architecture runs Mamba 'all' mode, a state page per block of the "
                       "sequence with blocks aligned to the Mamba chunk size, not modelled: 'align' mode's 2 pages "
                       "taken, so the concurrency is overstated (--no-enable-prefix-caching gives 1)" if all_mode else
                       "Mamba 'align' mode keeps 2 state pages per request"))
    else:
        paging = (f"KV blocks of {block_size} tokens over every cache layer ({layout.describe()})"
                  + ("; no hybrid allocator before vLLM 0.10: sliding and chunked layers keep every token"
                     if mixed and layout.windowed else ""))
    if p.pp > 1:
        paging += (f"; pipeline of {p.pp} stages: memory figures are rank 0's (embedding, no sampler), blocks the "
                   f"fewest over the first and last stage (last: {last_weights / GiB:.2f} GiB of weights, LM head "
                   "and sampler)")
    problem = capacity_problem("vLLM", smallest_pool, weights, total, utilization, concurrent, model_len, kv_tokens,
                               longest=longest)
    assumptions = (
        f"vLLM {rule.version} rule ({rule.engine.upper()} engine, releases {rule.releases[0]}-{rule.releases[-1]}): "
        + (f"KV pool = min({utilization:g} x {total / GiB:.2f} GiB - held, free after capture - max(1 GiB, 0.75 x "
           f"peak)) - peak, held = weights + non-torch {non_torch / GiB:.2f} GiB + CUDA graphs "
           f"{graph_bytes(True) / GiB:.2f} GiB, peak = the profile activations ({tokens} batched tokens, "
           f"{min(seqs, tokens)} sampler rows)" if rule.extensible_kv_cache else
           f"KV pool = {utilization:g} x {total / GiB:.2f} GiB - weights - profile activations ({tokens} batched "
           f"tokens, {min(seqs, tokens)} sampler rows) - non-torch {non_torch / GiB:.2f} GiB"
           + (f" - CUDA graphs {graph_bytes(True) / GiB:.2f} GiB" if graph_bytes(True) else ""))
        + f" ({rule.source})",
        paging,
        ("CUDA graphs: vLLM's estimate counted in the pool (gpu_model_runner.py profile_cudagraph_memory), "
         + cuda_graph_estimate_bytes(arch, tp=p.tp, layers=stages[0], act_bytes=act_bytes, max_num_seqs=seqs,
                                     max_num_batched_tokens=tokens, flash_attn_3=flash_attn_3)[1]
         + "; FlashAttention 3's split-KV accumulators (Hopper only) from vLLM's code, the rest fitted on vLLM 0.19 "
           "H100 logs")
        if graph_bytes(True) else ("CUDA graphs: not counted in the pool: the V2 model runner's "
                                   "profile_cudagraph_memory returns 0 in this release (captured in the "
                                   "1 - gpu_memory_utilization headroom)") if rule.cuda_graphs_profiled else "CUDA graphs are captured after the pool is sized (inside the 1 - gpu_memory_utilization headroom)",
    ) + ((f"GGUF ({workload.quantization if workload.quantization.startswith('gguf:') else 'the file'}): vLLM keeps the "
          "ggml blocks (GGUFLinearMethod, dequantized in its kernels), so the weights are the file's tensors split "
          f"over tp, plus {gguf_weight_bytes(spec, workload)[1] / GiB:.2f} GiB of padding where a merged q/k/v or "
          "gate/up layer mixes types (vllm/model_executor/layers/quantization/gguf.py at v0.19.0; unverified against "
          "a vLLM GGUF start-up log)" + ("" if rule.gguf_in_tree else
          f"; vLLM {rule.version} has no GGUF support of its own (gguf.py and the 'gguf' quantization method are gone "
          "from v0.24.0, deprecated in https://github.com/vllm-project/vllm/issues/39583): it needs the "
          "vllm-gguf-plugin, whose layout is taken to be the in-tree one (unverified)"),)
         if is_gguf(spec, workload) else ()) + ((speculative_note(speculative, drafter) + "; the drafter's dummy run and the rejection sampler's in the "
          "profile run are not modelled",) if speculative is not None and drafter is not None else ()) + ((
          f"vision encoder: the profile run keeps the dummy outputs of {images} image(s) x {arch.tokens_per_image} "
          f"tokens x {arch.hidden_size} ({encoder / GiB:.3f} GiB) in the encoder cache through the forward and the "
          "sampler (gpu_model_runner.py profile_run); the vision tower's own forward peak is not modelled",)
         if encoder else ())
    return ServingCapacity(
        engine="vllm", engine_version=rule.version, gpu=gpu.name, tp=p.tp, pp=p.pp,
        gpu_memory_utilization=utilization, max_num_batched_tokens=tokens, max_num_seqs=seqs,
        block_size=block_size, total_memory_bytes=total, weights_bytes=int(weights),
        profile_peak_bytes=int(weights + activations), non_torch_bytes=int(non_torch), kv_pool_bytes=max(0, pool),
        kv_bytes_per_token=layout.token_bytes, num_blocks=blocks, kv_cache_tokens=kv_tokens, max_model_len=model_len,
        max_concurrent_sequences=concurrent, largest_max_model_len=longest, fits=problem is None, problem=problem,
        assumptions=assumptions, max_concurrency=concurrency, cuda_graph_bytes=graph_bytes(True) if graph_bytes(True) else None,
    )  # fmt: skip
