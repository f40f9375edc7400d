"""What every serving engine answers: the KV pool on one device, the tokens it holds, the sequences
it serves at a context length, and whether the engine would start at all."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory.kv_cache import layer_kv_bytes_per_token, state_bytes_per_sequence
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.spec import STATE_KINDS, Architecture, Mixer, ModelSpec
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
    #: Sequences of ``max_model_len`` tokens the pool holds, unrounded, as vLLM logs it ("Maximum concurrency
    #: for 8,192 tokens per request: 58.11x"); ``None`` where the engine does not say.
    max_concurrency: float | None = None
    #: CUDA-graph memory the engine counts against the pool (vLLM from 0.21); ``None``: not counted.
    cuda_graph_bytes: int | None = None

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
            "max_concurrency": self.max_concurrency, "cuda_graph_bytes": self.cuda_graph_bytes,
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

    probe = workload.with_(batch_size=1, seq_len=1, new_tokens=0, weights_loader="engine")
    return int(estimate_memory(spec, probe, detail=False).components.get("weights", 0))


def kv_dtype_bytes(spec: ModelSpec, workload: Workload) -> int:
    """Bytes per cached element: ``--kv-cache-dtype`` when set, else the compute dtype."""
    name = workload.kv_cache_dtype or plan_weights(spec, workload).compute_dtype
    return int(BYTES[name])


@dataclass(frozen=True, kw_only=True)
class CacheGroup:
    """Layers of one device whose cache grows alike: same mixer kind, span and bytes per token.

    Attributes:
        kind: The mixer kind (``full``, ``sliding``, ``chunked``, ``mla``, ``cross``, ``linear``, ``ssm``).
        layers: How many such layers the device holds.
        token_bytes: One token in one layer on this device (0 for recurrent kinds).
        span: The tokens a sliding (window) or chunked (chunk) layer attends to; ``None``: every token.
        state_bytes: One sequence's recurrent state in one layer on this device (``linear``, ``ssm``).
    """

    kind: str
    layers: int
    token_bytes: int
    span: int | None = None
    state_bytes: int = 0

    @property
    def is_state(self) -> bool:
        return self.kind in STATE_KINDS

    def blocks(self, tokens: int, block_size: int, *, in_flight: int = 0) -> int:
        """Blocks one sequence of ``tokens`` tokens takes in one layer of this group, the most a paged
        engine ever holds for it (vLLM kv_cache_interface ``max_memory_usage_bytes``): every token for
        full attention; for a sliding layer the window - 1 plus the ``in_flight`` tokens of one
        scheduler step, plus a block because the window need not start on a block boundary; for a
        chunked layer the chunk plus the tokens in flight; one page of state for a recurrent layer."""
        if self.is_state:
            return 1
        if self.span is None:
            return math.ceil(tokens / block_size)
        if self.kind == "sliding":
            return math.ceil(min(tokens, self.span - 1 + in_flight) / block_size) + 1
        return math.ceil(min(tokens, self.span + in_flight) / block_size)


@dataclass(frozen=True, kw_only=True)
class KVLayout:
    """The cache layers one device holds, one :class:`CacheGroup` per kind (sizes from memory/kv_cache.py)."""

    groups: tuple[CacheGroup, ...]

    @property
    def token_bytes(self) -> int:
        """Bytes one token adds across every attention layer of the device (window caps ignored)."""
        return sum(g.layers * g.token_bytes for g in self.groups)

    @property
    def state_bytes(self) -> int:
        """Bytes of one sequence's recurrent state across the device's recurrent layers."""
        return sum(g.layers * g.state_bytes for g in self.groups)

    @property
    def layers(self) -> int:
        return sum(g.layers for g in self.groups)

    @property
    def windowed(self) -> bool:
        return any(g.span is not None for g in self.groups)

    def without_windows(self) -> KVLayout:
        """The layout of an engine that keeps every token in sliding and chunked layers too."""
        return KVLayout(groups=tuple(replace(g, kind="full", span=None) if g.span is not None else g
                                     for g in self.groups))

    def sequence_bytes(self, tokens: int, block_size: int, *, in_flight: int = 0, state_page: int | None = None) -> int:
        """Bytes one sequence of ``tokens`` tokens takes at most, whole blocks per layer; a recurrent layer
        takes its state, or ``state_page`` where the engine pads states to a common page (vLLM)."""
        total = 0
        for g in self.groups:
            if g.is_state:
                total += g.layers * (state_page if state_page is not None else g.state_bytes)
            else:
                total += g.layers * g.blocks(tokens, block_size, in_flight=in_flight) * g.token_bytes * block_size
        return total

    def describe(self) -> str:
        """``"40 full, 8 sliding (window 4096), 36 linear (2.1 MiB state per sequence)"``."""
        parts = []
        for g in self.groups:
            text = f"{g.layers} {g.kind}"
            if g.span is not None:
                text += f" ({'window' if g.kind == 'sliding' else 'chunk'} {g.span})"
            if g.is_state:
                text += f" ({g.state_bytes / (1 << 20):.2f} MiB state per sequence)"
            parts.append(text)
        return ", ".join(parts) or "no cache layers"


def kv_layout(spec: ModelSpec, workload: Workload, *, dtype_bytes: int | None = None,
              state_bytes: Callable[[Mixer], int] | None = None, keep_kv_shared: bool = False) -> KVLayout:
    """Per-device cache layout: layers split by ``pp``, KV heads by ``tp`` (replicated below one head per
    rank, MLA's latent never split), recurrent states split by ``tp``; bytes from memory/kv_cache.py.

    ``state_bytes``: one sequence's state of a recurrent mixer as the engine lays it out (whole device, split by
    ``tp`` here), in place of transformers' layout. ``keep_kv_shared``: layers that read an earlier layer's cache
    (gemma3n, gemma4) keep a cache of their own, as SGLang's token pool does (a cell over every layer,
    model_runner.py ``num_effective_layers``; gemma3n_causal.py only skips writing it); vLLM gives them none.
    """
    arch = spec.architecture
    if arch is None or not arch.is_decoder:
        return KVLayout(groups=())
    p = workload.parallelism
    c = dtype_bytes if dtype_bytes is not None else kv_dtype_bytes(spec, workload)
    counts: dict[tuple[str, int | None, int, int], int] = {}
    for layer, count in arch.layer_groups:
        m = layer.mixer
        if m.kv_shared and keep_kv_shared:
            m = replace(m, kv_shared=False)
        elif m.kv_shared:
            # It reads an earlier layer's cache and has none: vLLM V1 gives it no KV cache spec, so it joins
            # no KV cache group (gpu_model_runner.py get_kv_cache_spec skips kv_sharing_target_layer_name).
            continue
        span = m.window if m.kind == "sliding" else m.chunk if m.kind == "chunked" else None
        key = (m.kind, span, layer_kv_bytes_per_token(m, c, kv_heads_divisor=p.tp),
               (state_bytes(m) if state_bytes is not None and m.kind in STATE_KINDS
                else state_bytes_per_sequence(m, c)) // p.tp)
        counts[key] = counts.get(key, 0) + count
    groups = tuple(CacheGroup(kind=kind, layers=math.ceil(n / p.pp), token_bytes=token, span=span, state_bytes=state)
                   for (kind, span, token, state), n in counts.items())
    return KVLayout(groups=groups)


def longest_sequence(layout: KVLayout, pool_bytes: int, *, block_size: int, max_position: int,
                     in_flight: int = 0, state_page: int | None = None) -> int:
    """The longest sequence (tokens, a multiple of ``block_size``, at most ``max_position``) one pool holds."""

    def fits(n: int) -> bool:
        return layout.sequence_bytes(n, block_size, in_flight=in_flight, state_page=state_page) <= pool_bytes

    return largest_length(fits, max_position, block_size)


def largest_length(fits: Callable[[int], bool], max_position: int, block_size: int) -> int:
    """The largest length in ``[1, max_position]`` for which the monotone ``fits`` holds (0: none),
    rounded down to whole blocks when over one block."""
    if not fits(1):
        return 0
    if fits(max_position):
        return max_position
    low, high = 1, max_position  # fits(low), not fits(high)
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (mid, high) if fits(mid) else (low, mid)
    return low // block_size * block_size or low


def pool_capacity(layout: KVLayout, pool_bytes: int, *, block_size: int, max_model_len: int,
                  max_position: int, in_flight: int = 0) -> tuple[int, int, int, int]:
    """``(num_blocks, kv_cache_tokens, max_concurrent_sequences, largest_max_model_len)`` of a pool whose
    blocks span every cache layer (one page per layer), as SGLang's token pool and vLLM without the
    hybrid allocator size it. Recurrent states take their own bytes per sequence.
    """
    pool = max(0, pool_bytes)
    page_all_layers = layout.token_bytes * block_size
    per_seq = layout.sequence_bytes(max_model_len, block_size, in_flight=in_flight)
    if per_seq == 0:
        return 0, 0, 0, 0
    concurrent = min(pool // per_seq, 1 << 31)
    if page_all_layers:
        blocks = pool // page_all_layers
        tokens = blocks * block_size
    else:  # only recurrent layers: a sequence's state is its block
        blocks, tokens = concurrent, concurrent * max_model_len
    longest = longest_sequence(layout, pool, block_size=block_size, max_position=max_position, in_flight=in_flight)
    return int(blocks), int(tokens), int(concurrent), int(longest)


def capacity_problem(engine: str, pool_bytes: int, weights_bytes: int, total_bytes: float, share: float,
                     concurrent: int, max_model_len: int, kv_tokens: int, longest: int | None = None) -> str | None:
    """One line saying why the engine would refuse to start, or ``None``. ``longest``: the longest sequence the
    pool holds, suggested in place of ``kv_tokens`` (a hybrid pool's tokens are not all one sequence's: recurrent
    state pages and sliding windows take their share)."""
    gib = 1 << 30
    if pool_bytes <= 0:
        return (f"{engine} would not start: no memory left for the KV cache ({weights_bytes / gib:.1f} GiB of weights "
                f"and the profile run exceed {share:g} x {total_bytes / gib:.1f} GiB); use more GPUs (--tp), a "
                "quantization, or a larger GPU")
    if concurrent < 1:
        return (f"{engine} would not start: the KV pool holds {kv_tokens} tokens, fewer than one {max_model_len}-token "
                f"sequence; lower --max-model-len to {kv_tokens if longest is None else longest} or less, or add GPUs")
    return None
