"""What every serving engine answers: the KV pool on one device, the tokens it holds, the sequences
it serves at a context length, and whether the engine would start at all."""

from __future__ import annotations

import math
from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory.kv_cache import kv_bytes_per_token_per_layer
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.workload import Workload

#: Engines the planner models (``--engine``).
ENGINES: tuple[str, ...] = ("vllm", "sglang", "llama.cpp", "transformers")
#: Engines with no backend for a runtime: vLLM's and SGLang's GPU backends are CUDA, ROCm and others,
#: not Metal (docs.vllm.ai installation: Apple silicon is a CPU-only build).
_NO_BACKEND: dict[str, tuple[str, ...]] = {"metal": ("vllm", "sglang")}


def unsupported_engine(engine: str, gpu: GPU) -> str | None:
    """One line when ``engine`` does not run on ``gpu``'s runtime (vLLM on an Apple GPU), else ``None``."""
    if engine not in _NO_BACKEND.get(gpu.runtime, ()):
        return None
    return (f"{engine} does not run on {gpu.name} ({gpu.runtime}: no {engine} GPU backend), so no {engine} KV pool; "
            "on Apple GPUs serve with llama.cpp (--engine llama.cpp), MLX, or transformers on MPS "
            "(--engine transformers)")


@dataclass(frozen=True, kw_only=True)
class ServingCapacity:
    """The KV-cache pool a serving engine would allocate on each device, and what it holds.

    Attributes:
        engine: ``vllm``, ``sglang``, ``llama.cpp`` or ``transformers``.
        engine_version: The engine version whose sizing rule was applied (``None``: not versioned).
        gpu: Catalog name.
        tp, pp: Parallel degrees of one replica.
        gpu_memory_utilization: The engine's share of device memory (vLLM ``--gpu-memory-utilization``,
            SGLang ``--mem-fraction-static``; 1.0 for engines without one).
        max_num_batched_tokens, max_num_seqs: Scheduler budgets (vLLM's profile run is sized by them).
        block_size: Tokens per KV block (page).
        total_memory_bytes: What the driver reports as total (``torch.cuda.mem_get_info()[1]``).
        weights_bytes: Weights per device.
        profile_peak_bytes: Torch's peak during the engine's profile run (weights + activations + sampler);
            for engines without a profile run, the weights and the compute buffers.
        non_torch_bytes: Memory outside torch's allocator counted against the pool (engine-dependent).
        kv_pool_bytes: The pool (0 when negative).
        kv_bytes_per_token: One token's KV bytes on one device (all its full-attention and sliding layers).
        num_blocks: Blocks in the pool.
        kv_cache_tokens: Tokens the pool holds ("GPU KV cache size: N tokens" in vLLM's log).
        max_model_len: The context length sequences are sized for.
        max_concurrent_sequences: Sequences of ``max_model_len`` tokens the pool holds at once.
        largest_max_model_len: The longest context one sequence can have (capped at the model's limit).
        fits: Whether the engine would start (the weights fit and one ``max_model_len`` sequence fits).
        problem: Why it would not start, in one line (``None`` when it would).
        assumptions: Simplifications.
    """

    engine: str = "vllm"
    engine_version: str | None = None
    gpu: str
    tp: int
    pp: int
    gpu_memory_utilization: float
    max_num_batched_tokens: int
    max_num_seqs: int
    block_size: int
    total_memory_bytes: int
    weights_bytes: int
    profile_peak_bytes: int
    non_torch_bytes: int
    kv_pool_bytes: int
    kv_bytes_per_token: int
    num_blocks: int
    kv_cache_tokens: int
    max_model_len: int
    max_concurrent_sequences: int
    largest_max_model_len: int
    fits: bool
    problem: str | None = None
    assumptions: tuple[str, ...]

    @property
    def would_start(self) -> bool:
        return self.fits

    def to_dict(self) -> dict[str, object]:
        return {
            "engine": self.engine, "engine_version": self.engine_version,
            "kv_cache_tokens": self.kv_cache_tokens, "max_concurrent_sequences": self.max_concurrent_sequences,
            "max_model_len": self.max_model_len, "largest_max_model_len": self.largest_max_model_len,
            "num_blocks": self.num_blocks, "block_size": self.block_size, "kv_pool_bytes": self.kv_pool_bytes,
            "kv_bytes_per_token": self.kv_bytes_per_token, "weights_bytes": self.weights_bytes,
            "profile_peak_bytes": self.profile_peak_bytes, "non_torch_bytes": self.non_torch_bytes,
            "total_memory_bytes": self.total_memory_bytes, "gpu_memory_utilization": self.gpu_memory_utilization,
            "max_num_batched_tokens": self.max_num_batched_tokens, "max_num_seqs": self.max_num_seqs,
            "tp": self.tp, "pp": self.pp, "fits": self.fits, "would_start": self.fits, "problem": self.problem,
        }  # fmt: skip


def check_fraction(field: str, value: object) -> float:
    """A memory share in (0, 1] (vLLM ``--gpu-memory-utilization``, SGLang ``--mem-fraction-static``)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= 1:
        raise InvalidArgumentError(field, value, "a number in (0, 1], e.g. 0.9")
    return float(value)


def check_tp(arch: Architecture, tp: int) -> None:
    """vLLM and SGLang split heads across tensor-parallel ranks: the attention heads must divide by ``tp``,
    and the KV heads must divide by ``tp`` or ``tp`` by them (then each rank keeps a replica);
    vllm/config ModelConfig.verify_with_parallel_config, get_num_kv_heads."""
    if tp == 1 or arch.is_mla:
        return
    kv = arch.num_key_value_heads
    if arch.num_attention_heads % tp or (kv % tp and tp % kv):
        accepted = [t for t in (1, 2, 4, 8, 16) if arch.num_attention_heads % t == 0 and (kv % t == 0 or t % kv == 0)]
        raise InvalidArgumentError(
            "tp", tp, f"a degree that divides the {arch.num_attention_heads} attention heads and the {kv} KV heads "
            f"(or a multiple of the KV heads): {', '.join(map(str, accepted))}")


def check_context(spec: ModelSpec, max_model_len: int) -> None:
    """A context longer than the model's ``max_position_embeddings`` is refused (vLLM raises unless
    ``VLLM_ALLOW_LONG_MAX_MODEL_LEN=1``); a RoPE scaling factor in the config extends the limit."""
    arch = spec.architecture
    if isinstance(max_model_len, bool) or not isinstance(max_model_len, int) or max_model_len < 1:
        raise InvalidArgumentError("max_model_len", max_model_len, "an integer >= 1")
    limit = arch.max_position_embeddings if arch is not None else None
    if limit and max_model_len > limit:
        factor = math.ceil(max_model_len / limit)
        raise InvalidArgumentError(
            "max_model_len", max_model_len, f"at most {limit}, the model's max_position_embeddings",
            hint=f"a RoPE scaling factor of {factor} would allow it, e.g. vLLM --hf-overrides "
                 f"'{{\"rope_scaling\": {{\"rope_type\": \"yarn\", \"factor\": {factor}.0, "
                 f"\"original_max_position_embeddings\": {limit}}}}}' --max-model-len {max_model_len}")


def weights_per_device(spec: ModelSpec, workload: Workload) -> int:
    """Weight bytes one device of the workload's split holds (the memory model's ``weights`` component)."""
    from hf_gpu_estimator.memory import estimate_memory

    probe = workload.with_(batch_size=1, seq_len=1, new_tokens=0)
    return int(estimate_memory(spec, probe, detail=False).components.get("weights", 0))


def kv_dtype_bytes(spec: ModelSpec, workload: Workload) -> int:
    """Bytes per cached element: ``--kv-cache-dtype`` when set, else the compute dtype."""
    name = workload.kv_cache_dtype or plan_weights(spec, workload).compute_dtype
    return int(BYTES[name])


@dataclass(frozen=True, kw_only=True)
class KVLayout:
    """The cache layers one device holds, grouped as vLLM's hybrid allocator groups them.

    ``full_layers`` keep every token; ``sliding_layers`` keep at most ``window`` tokens (plus one block
    in flight). ``per_layer_token_bytes`` is one token in one layer on this device.
    """

    full_layers: int
    sliding_layers: int
    window: int | None
    per_layer_token_bytes: int

    @property
    def token_bytes(self) -> int:
        """Bytes one token adds across every cache layer (sliding layers while under their window)."""
        return self.per_layer_token_bytes * (self.full_layers + self.sliding_layers)

    def sequence_bytes(self, tokens: int, block_size: int) -> int:
        """Bytes one sequence of ``tokens`` tokens takes, whole blocks per layer."""
        blocks = math.ceil(tokens / block_size)
        sliding_blocks = blocks if not self.window else min(blocks, math.ceil(self.window / block_size) + 1)
        page = self.per_layer_token_bytes * block_size
        return page * (self.full_layers * blocks + self.sliding_layers * sliding_blocks)


def kv_layout(spec: ModelSpec, workload: Workload, *, dtype_bytes: int | None = None) -> KVLayout:
    """Per-device KV layout: layers split by ``pp``, KV heads by ``tp`` (replicated below one head per rank)."""
    arch = spec.architecture
    if arch is None or not arch.is_decoder:
        return KVLayout(full_layers=0, sliding_layers=0, window=None, per_layer_token_bytes=0)
    p = workload.parallelism
    c = dtype_bytes if dtype_bytes is not None else kv_dtype_bytes(spec, workload)
    per_layer = kv_bytes_per_token_per_layer(arch, c)
    if p.tp > 1 and not arch.is_mla:  # heads split; replicated when fewer KV heads than devices
        per_layer = per_layer * max(1, arch.num_key_value_heads // p.tp) // arch.num_key_value_heads
    layers = math.ceil(arch.num_layers / p.pp)
    sliding = math.ceil(arch.sliding_layers / p.pp) if arch.sliding_window else 0
    return KVLayout(full_layers=layers - sliding, sliding_layers=sliding, window=arch.sliding_window,
                    per_layer_token_bytes=per_layer)


def pool_capacity(layout: KVLayout, pool_bytes: int, *, block_size: int, max_model_len: int,
                  max_position: int) -> tuple[int, int, int, int]:
    """``(num_blocks, kv_cache_tokens, max_concurrent_sequences, largest_max_model_len)`` of a pool.

    Blocks are sized over every cache layer of the device (vLLM V1 KVCacheConfig: one tensor per
    layer, ``num_blocks = pool // (page_size * layers)``). With sliding-window layers (vLLM's hybrid
    allocator) a sequence needs full blocks only in the full-attention layers; its sliding layers
    stop at the window, so more sequences fit than ``kv_cache_tokens / max_model_len``.
    """
    pool = max(0, pool_bytes)
    page_all_layers = layout.token_bytes * block_size
    if page_all_layers == 0:
        return 0, 0, 0, 0
    blocks = pool // page_all_layers
    tokens = blocks * block_size
    per_seq = layout.sequence_bytes(max_model_len, block_size)
    concurrent = min(pool // per_seq, 1 << 31) if per_seq else 0
    if layout.sliding_layers and layout.full_layers and layout.window:
        # one long sequence: its sliding layers stop at the window, the full layers take the rest
        page = layout.per_layer_token_bytes * block_size
        sliding = page * layout.sliding_layers * (math.ceil(layout.window / block_size) + 1)
        longest = max(0, pool - sliding) // (page * layout.full_layers) * block_size
    else:
        longest = tokens
    return int(blocks), int(tokens), int(concurrent), int(min(longest, max_position))


def capacity_problem(engine: str, pool_bytes: int, weights_bytes: int, total_bytes: float, share: float,
                     concurrent: int, max_model_len: int, kv_tokens: int) -> str | None:
    """One line saying why the engine would refuse to start, or ``None``."""
    gib = 1 << 30
    if pool_bytes <= 0:
        return (f"{engine} would not start: no memory left for the KV cache ({weights_bytes / gib:.1f} GiB of weights "
                f"and the profile run exceed {share:g} x {total_bytes / gib:.1f} GiB); use more GPUs (--tp), a "
                "quantization, or a larger GPU")
    if concurrent < 1:
        return (f"{engine} would not start: the KV pool holds {kv_tokens} tokens, fewer than one {max_model_len}-token "
                f"sequence; lower --max-model-len to {kv_tokens} or less, or add GPUs")
    return None
