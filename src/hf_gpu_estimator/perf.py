"""Speed: FLOPs per token and roofline estimates of prefill, decode and training on a GPU (pure arithmetic).

The model is a roofline: each phase takes the longer of its compute time (FLOPs over an
achievable share of the datasheet peak) and its memory time (bytes read over an achievable
share of the datasheet bandwidth), plus tensor-parallel all-reduce time over the GPU link.
Every efficiency factor is a named constant below with the measurement it comes from.

>>> from hf_gpu_estimator.sources.catalog import lookup
>>> from hf_gpu_estimator.workload import make_workload
>>> from hf_gpu_estimator.hardware import get_gpu
>>> speed = inference_speed(lookup("meta-llama/Llama-2-7b-hf"), make_workload(seq_len=512, new_tokens=128),
...                         get_gpu("RTX-4090"))
>>> speed.decode_bound
'memory'
>>> 50 < speed.decode_tokens_per_s < 70
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from hf_gpu_estimator.errors import InvalidArgumentError, MissingGPUDataError
from hf_gpu_estimator.hardware import GPU
from hf_gpu_estimator.memory.kv_cache import cached_tokens_per_layer, kv_cache_bytes
from hf_gpu_estimator.memory.terms import BYTES
from hf_gpu_estimator.memory.weights import plan_weights
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.workload import Workload

__all__ = [
    "DECODE_BANDWIDTH_EFFICIENCY",
    "INTERCONNECT_EFFICIENCY",
    "PREFILL_MFU",
    "TRAINING_MFU",
    "FlopsPerToken",
    "InferenceSpeed",
    "TrainingSpeed",
    "decode_step_seconds",
    "flops_per_token",
    "inference_speed",
    "training_speed",
]

#: Share of the datasheet memory bandwidth a decode step achieves (model bandwidth utilization,
#: MBU). vLLM 0.23 serving Llama-3.1-8B BF16 at concurrency 1 on an A100-40GB decodes ~75 tokens/s,
#: "roughly 77% of the GPU's memory-bandwidth ceiling"
#: (https://johnmusgrave.com/p/vllm-throughput-latency-sweep-on); llama.cpp F16 Llama-2-7B reaches
#: 81% on an RTX 4090 and 75% on an RTX 3090 (https://github.com/XiongjieDai/GPU-Benchmarks-on-LLM-Inference).
DECODE_BANDWIDTH_EFFICIENCY = 0.75

#: Share of the dense datasheet peak a prefill (large matmuls over the prompt) achieves (MFU).
#: llama.cpp F16 Llama-2-7B prompt processing (pp512) on an RTX 4090: 7349 tokens/s x 2 x 6.74e9
#: FLOP = 99 TFLOP/s of 165 (60%) (XiongjieDai/GPU-Benchmarks-on-LLM-Inference); optimized engines do
#: better at long prompts, so 0.5 leaves room for short ones.
PREFILL_MFU = 0.5

#: Model FLOPs utilization of training (6N-style model FLOPs over peak). Llama 3 405B pretraining on
#: H100 reached 38-43% BF16 MFU (380-430 TFLOP/s per GPU; "The Llama 3 Herd of Models",
#: arXiv:2407.21783, Table 4); PaLM 540B reported 46.2% (arXiv:2204.02311, Table 3).
TRAINING_MFU = 0.40

#: Share of the link bandwidth a ring all-reduce achieves (NCCL bus bandwidth vs link speed):
#: nccl-tests all_reduce_perf on 8x H100 NVLink reports ~360-480 GB/s bus bandwidth of the 450 GB/s
#: per-direction NVLink 4 figure; 0.7 is a round, conservative share.
INTERCONNECT_EFFICIENCY = 0.7

#: A collective's fixed cost per call (kernel launch and ring latency), per NCCL's ~5-10 us small-
#: message latency on NVLink.
ALLREDUCE_LATENCY_SECONDS = 8e-6

Bound = Literal["compute", "memory"]

_FLOPS_KEY = {"float32": "fp32", "float16": "fp16", "bfloat16": "bf16", "float8_e4m3fn": "fp8"}


@dataclass(frozen=True, kw_only=True)
class FlopsPerToken:
    """FLOPs one token costs, split into the dense matmuls and attention over the context.

    Attributes:
        matmul_params: Parameters one token multiplies (active experts only for MoE; the
            input embedding lookup is not a matmul, the LM head is).
        dense_flops: ``2 * matmul_params`` (one multiply-add per parameter).
        attention_flops: ``2 * 2 * layers * context * heads * head_dim`` (QK^T and AV), the
            sequence-length term of the PaLM (arXiv:2204.02311, Appendix B) and Chinchilla
            (arXiv:2203.15556, Appendix F) FLOP counts, with sliding-window layers capped at the window.
        context_tokens: The context length the attention term was computed at.
    """

    matmul_params: int
    dense_flops: float
    attention_flops: float
    context_tokens: int

    @property
    def forward_flops(self) -> float:
        """FLOPs of one forward pass per token."""
        return self.dense_flops + self.attention_flops

    def training_flops(self, *, method: str = "full", gradient_checkpointing: bool = False) -> float:
        """FLOPs per token of forward + backward (+ the recomputed forward under checkpointing).

        Full training: backward costs twice the forward (activation and weight gradients), so 3x.
        LoRA/QLoRA: the frozen base takes no weight gradients, so backward costs ~1x (2x total).
        Checkpointing recomputes each layer's forward once more.
        """
        factor = 3.0 if method == "full" else 2.0
        if gradient_checkpointing:
            factor += 1.0
        return factor * self.forward_flops


def _arch(spec: ModelSpec) -> Architecture:
    if spec.architecture is None:
        raise InvalidArgumentError("model", spec.id, "a model with layer dimensions (config.json) for speed estimates",
                                   hint="inspect the model from a repo or folder with config.json")
    return spec.architecture


def flops_per_token(spec: ModelSpec, *, context_tokens: int) -> FlopsPerToken:
    """FLOPs per token of ``spec`` at a context of ``context_tokens`` (6N-style, exact active parameters).

    Args:
        spec: The model.
        context_tokens: Keys each query attends to (training: the sequence length, as PaLM counts;
            decode: the tokens in the cache).
    """
    arch = _arch(spec)
    counts = spec.parameters
    matmul = counts.active - counts.embedding
    if arch.tie_word_embeddings and not counts.lm_head:
        matmul += arch.vocab_size * arch.hidden_size  # the tied head is a matmul with the embedding matrix
    qk_dim = (arch.qk_nope_head_dim or 0) + (arch.qk_rope_head_dim or 0) if arch.is_mla else arch.head_dim
    v_dim = arch.v_head_dim or arch.head_dim
    per_layer_context = cached_tokens_per_layer(arch, max(0, context_tokens))
    # 2 FLOPs per multiply-add, for QK^T (qk_dim) and for AV (v_dim), per head and key (recurrent
    # layers attend to no cache: 0 tokens).
    attention = 2.0 * arch.num_attention_heads * (qk_dim + v_dim) * sum(per_layer_context)
    return FlopsPerToken(matmul_params=int(matmul), dense_flops=2.0 * matmul, attention_flops=attention,
                         context_tokens=context_tokens)


def _peak_flops(gpu: GPU, dtype: str) -> float:
    key = _FLOPS_KEY.get(dtype, dtype)
    value = gpu.peak_flops.get(key)
    if value is None:
        raise MissingGPUDataError(gpu.name, f"peak_flops.{key}",
                                  fix=f"add peak_flops.{key} to a user GPU file (HFGE_GPUS_FILE), or pick another "
                                      "--dtype/--precision the GPU has a figure for")
    return float(value)


def _allreduce_seconds(nbytes: float, tp: int, gpu: GPU, calls: int) -> float:
    """Ring all-reduce of ``nbytes`` over ``tp`` GPUs: each sends 2(tp-1)/tp of the buffer."""
    if tp <= 1 or calls == 0:
        return 0.0
    if gpu.interconnect_bandwidth_bytes_per_s is None:
        raise MissingGPUDataError(gpu.name, "interconnect_bandwidth_bytes_per_s",
                                  fix="add interconnect_bandwidth_bytes_per_s to a user GPU file (HFGE_GPUS_FILE), "
                                      "or use --tp 1")
    ring = 2 * (tp - 1) / tp
    link = gpu.interconnect_bandwidth_bytes_per_s * INTERCONNECT_EFFICIENCY
    return calls * (nbytes * ring / link + ALLREDUCE_LATENCY_SECONDS)


def _expert_read_fraction(arch: Architecture, tokens: int) -> float:
    """Share of the routed experts' weights a step over ``tokens`` tokens reads.

    Each token picks ``k`` of ``E`` experts; with uniform routing an expert is untouched with
    probability (1 - k/E)^tokens.
    """
    if not arch.is_moe or arch.num_experts_per_tok <= 0:
        return 1.0
    return 1.0 - (1.0 - arch.num_experts_per_tok / arch.num_experts) ** max(1, tokens)


@dataclass(frozen=True, kw_only=True)
class InferenceSpeed:
    """Roofline speed of one inference workload on one GPU type (per replica of ``tp * pp`` GPUs).

    Attributes:
        gpu: The GPU's catalog name.
        batch_size: Sequences decoded together.
        prompt_tokens, new_tokens: Per sequence.
        prefill_seconds: Time of the prompt's forward pass (the whole batch).
        prefill_bound: What limits prefill.
        ttft_seconds: Time to first token: the prefill (the first token comes out of it).
        tpot_seconds: Time per output token of one decode step, at the mean context.
        decode_bound: What limits a decode step.
        decode_tokens_per_s: Tokens per second of the whole batch while decoding.
        e2e_seconds: ``ttft + (new_tokens - 1) * tpot``.
        decode_bytes_per_step: Bytes read from device memory per decode step per device.
        decode_flops_per_step: FLOPs per decode step per device.
        allreduce_seconds_per_step: Tensor-parallel communication per decode step.
        flops: FLOPs per token at the prompt length.
        assumptions: Constants and simplifications used.
    """

    gpu: str
    batch_size: int
    prompt_tokens: int
    new_tokens: int
    tp: int
    pp: int
    prefill_seconds: float
    prefill_bound: Bound
    ttft_seconds: float
    tpot_seconds: float
    decode_bound: Bound
    decode_tokens_per_s: float
    e2e_seconds: float
    decode_bytes_per_step: int
    decode_flops_per_step: float
    allreduce_seconds_per_step: float
    flops: FlopsPerToken
    assumptions: tuple[str, ...]

    @property
    def prefill_tokens_per_s(self) -> float:
        """Prompt tokens processed per second during prefill."""
        return self.batch_size * self.prompt_tokens / self.prefill_seconds if self.prefill_seconds else math.inf

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu, "batch_size": self.batch_size, "prompt_tokens": self.prompt_tokens,
            "new_tokens": self.new_tokens, "tp": self.tp, "pp": self.pp,
            "ttft_seconds": self.ttft_seconds, "prefill_bound": self.prefill_bound,
            "prefill_tokens_per_s": self.prefill_tokens_per_s,
            "tpot_seconds": self.tpot_seconds, "decode_bound": self.decode_bound,
            "decode_tokens_per_s": self.decode_tokens_per_s, "e2e_seconds": self.e2e_seconds,
            "decode_bytes_per_step": self.decode_bytes_per_step,
            "allreduce_seconds_per_step": self.allreduce_seconds_per_step,
            "forward_flops_per_token": self.flops.forward_flops,
            "assumptions": list(self.assumptions),
        }  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class _Step:
    seconds: float
    bound: Bound
    nbytes: int
    flops: float
    comm_seconds: float


def _compute_dtype(spec: ModelSpec, workload: Workload) -> str:
    plan = plan_weights(spec, workload)
    dtype = plan.compute_dtype
    if plan.quantization == "fp8":
        return "float8_e4m3fn"
    return dtype


def _step(spec: ModelSpec, workload: Workload, gpu: GPU, *, batch: int, query_tokens: int,
          context_tokens: int, mfu: float) -> _Step:
    """One forward over ``batch`` sequences of ``query_tokens`` new tokens attending to ``context_tokens``."""
    arch = _arch(spec)
    p = workload.parallelism
    tp, pp = p.tp, p.pp
    plan = plan_weights(spec, workload)
    dtype = _compute_dtype(spec, workload)
    c = BYTES[plan.compute_dtype]
    kv_dtype_bytes = BYTES[workload.kv_cache_dtype] if workload.kv_cache_dtype else c
    tokens = batch * query_tokens
    # Weights read once per step (all of them across the pp stages, which run one after another).
    weights = plan.weights_bytes
    if arch.is_moe:
        expert_params = spec.parameters.by_role.get("experts", 0)
        expert_bytes = weights * expert_params / max(1, plan.total_params)
        weights = weights - expert_bytes + expert_bytes * _expert_read_fraction(arch, tokens)
    # Every layer's cache (or recurrent state) is read once per decode step.
    kv_read = kv_cache_bytes(arch, batch_size=batch, tokens=context_tokens, dtype_bytes=kv_dtype_bytes)
    activations = 2 * tokens * arch.hidden_size * c * arch.num_layers  # residual stream in and out, per layer
    nbytes = (weights + kv_read + activations) / tp  # per device; pp stages run in sequence
    f = flops_per_token(spec, context_tokens=context_tokens)
    flops = tokens * f.forward_flops / tp
    memory_seconds = nbytes / (gpu.memory_bandwidth_bytes_per_s * DECODE_BANDWIDTH_EFFICIENCY)
    compute_seconds = flops / (_peak_flops(gpu, dtype) * mfu)
    # Megatron tensor parallel: one all-reduce after attention and one after the MLP, per layer.
    comm = _allreduce_seconds(tokens * arch.hidden_size * c, tp, gpu, calls=2 * arch.num_layers)
    bound: Bound = "compute" if compute_seconds >= memory_seconds else "memory"
    return _Step(seconds=max(compute_seconds, memory_seconds) + comm, bound=bound, nbytes=int(nbytes), flops=flops,
                 comm_seconds=comm)


def decode_step_seconds(spec: ModelSpec, workload: Workload, gpu: GPU, *, batch_size: int,
                        context_tokens: int) -> float:
    """Seconds of one decode step of ``batch_size`` sequences at ``context_tokens`` cached tokens."""
    return _step(spec, workload, gpu, batch=batch_size, query_tokens=1, context_tokens=context_tokens,
                 mfu=PREFILL_MFU).seconds


def prefill_seconds(spec: ModelSpec, workload: Workload, gpu: GPU, *, batch_size: int, prompt_tokens: int) -> float:
    """Seconds of the prefill of ``batch_size`` prompts of ``prompt_tokens`` tokens."""
    return _step(spec, workload, gpu, batch=batch_size, query_tokens=prompt_tokens,
                 context_tokens=max(1, prompt_tokens // 2), mfu=PREFILL_MFU).seconds


def inference_speed(spec: ModelSpec, workload: Workload, gpu: GPU, *, batch_size: int | None = None) -> InferenceSpeed:
    """Roofline TTFT, TPOT and tokens/s of ``workload`` on ``gpu``.

    Args:
        spec: The model.
        workload: An inference workload (``seq_len`` prompt tokens, ``new_tokens`` generated,
            ``tp``/``pp`` for multi-GPU).
        gpu: The GPU type (every device of the replica is one of these).
        batch_size: Sequences decoded together; default ``workload.batch_size``.

    Raises:
        MissingGPUDataError: The GPU entry lacks the peak FLOP/s of the compute dtype, or the link
            bandwidth when ``tp > 1``.
    """
    batch = workload.batch_size if batch_size is None else batch_size
    if isinstance(batch, bool) or not isinstance(batch, int) or batch < 1:
        raise InvalidArgumentError("batch_size", batch, "an integer >= 1")
    S, N = workload.seq_len, workload.new_tokens
    # Causal prefill: query i attends to i keys, S/2 on average.
    prefill = _step(spec, workload, gpu, batch=batch, query_tokens=S, context_tokens=max(1, S // 2), mfu=PREFILL_MFU)
    mean_context = S + max(N, 1) // 2
    decode = _step(spec, workload, gpu, batch=batch, query_tokens=1, context_tokens=mean_context, mfu=PREFILL_MFU)
    p = workload.parallelism
    assumptions = [
        f"decode reads the weights and the KV cache once per step at {DECODE_BANDWIDTH_EFFICIENCY:.0%} of the "
        "datasheet bandwidth (vLLM at batch 1 on A100: 77%)",
        f"prefill runs at {PREFILL_MFU:.0%} of the dense peak FLOP/s (MFU) when compute-bound",
        f"TPOT at the mean context {mean_context} tokens; TTFT = prefill of {S} tokens, no queueing",
    ]
    if p.tp > 1:
        assumptions.append(f"tensor parallel {p.tp}: 2 ring all-reduces per layer of batch x tokens x hidden, "
                           f"{INTERCONNECT_EFFICIENCY:.0%} of the link bandwidth")
    if p.pp > 1:
        assumptions.append(f"pipeline parallel {p.pp}: stages run one after another for a single batch (no latency gain)")
    arch = _arch(spec)
    if arch.is_moe:
        assumptions.append("MoE: a step reads the experts its tokens route to, uniform routing assumed")
    return InferenceSpeed(
        gpu=gpu.name, batch_size=batch, prompt_tokens=S, new_tokens=N, tp=p.tp, pp=p.pp,
        prefill_seconds=prefill.seconds, prefill_bound=prefill.bound, ttft_seconds=prefill.seconds,
        tpot_seconds=decode.seconds, decode_bound=decode.bound, decode_tokens_per_s=batch / decode.seconds,
        e2e_seconds=prefill.seconds + max(0, N - 1) * decode.seconds,
        decode_bytes_per_step=decode.nbytes, decode_flops_per_step=decode.flops,
        allreduce_seconds_per_step=decode.comm_seconds,
        flops=flops_per_token(spec, context_tokens=S), assumptions=tuple(assumptions),
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class TrainingSpeed:
    """Roofline speed of a training workload.

    Attributes:
        gpu: Catalog name.
        num_gpus: Devices in the job.
        tokens_per_step: ``batch * seq * dp * gradient_accumulation_steps``.
        model_flops_per_token: Forward + backward FLOPs per token (no recomputation): what MFU counts.
        hardware_flops_per_token: Including the recomputed forward under gradient checkpointing.
        step_seconds: One optimizer step.
        tokens_per_s: Across the whole job.
        allreduce_seconds_per_step: Tensor-parallel communication (data-parallel gradient
            all-reduce is assumed overlapped with backward).
        mfu: The MFU constant used.
        assumptions: Constants and simplifications used.
    """

    gpu: str
    num_gpus: int
    tokens_per_step: int
    model_flops_per_token: float
    hardware_flops_per_token: float
    step_seconds: float
    tokens_per_s: float
    allreduce_seconds_per_step: float
    mfu: float
    assumptions: tuple[str, ...]

    def seconds_for_tokens(self, tokens: int | float) -> float:
        """Wall time to train on ``tokens`` tokens."""
        if not isinstance(tokens, (int, float)) or isinstance(tokens, bool) or tokens <= 0:
            raise InvalidArgumentError("token_budget", tokens, "a positive number of tokens")
        return float(tokens) / self.tokens_per_s

    def to_dict(self) -> dict[str, object]:
        return {
            "gpu": self.gpu, "num_gpus": self.num_gpus, "tokens_per_step": self.tokens_per_step,
            "model_flops_per_token": self.model_flops_per_token,
            "hardware_flops_per_token": self.hardware_flops_per_token, "step_seconds": self.step_seconds,
            "tokens_per_s": self.tokens_per_s, "allreduce_seconds_per_step": self.allreduce_seconds_per_step,
            "mfu": self.mfu, "assumptions": list(self.assumptions),
        }  # fmt: skip


def training_speed(spec: ModelSpec, workload: Workload, gpu: GPU, *, mfu: float = TRAINING_MFU) -> TrainingSpeed:
    """Tokens/s and step time of a training workload on ``workload.parallelism.num_gpus`` GPUs of type ``gpu``.

    Raises:
        MissingGPUDataError: The GPU entry lacks the peak FLOP/s of the precision's compute dtype.
        InvalidArgumentError: ``workload`` is not a training workload or ``mfu`` is out of range.
    """
    if not workload.is_training:
        raise InvalidArgumentError("task", workload.task, "'training' for a training speed estimate")
    if not isinstance(mfu, (int, float)) or isinstance(mfu, bool) or not 0 < mfu <= 1:
        raise InvalidArgumentError("mfu", mfu, "a number in (0, 1]")
    arch = _arch(spec)
    p = workload.parallelism
    S = workload.seq_len
    f = flops_per_token(spec, context_tokens=S)
    model = f.training_flops(method=workload.method)
    hardware = f.training_flops(method=workload.method, gradient_checkpointing=workload.gradient_checkpointing)
    tokens_per_step = workload.batch_size * S * p.dp * workload.gradient_accumulation_steps
    peak = _peak_flops(gpu, workload.precision.compute_dtype)
    compute = tokens_per_step * hardware / (p.num_gpus * peak * mfu)
    c = BYTES[workload.precision.compute_dtype]
    micro_tokens = workload.batch_size * S
    # 2 all-reduces in forward and 2 in backward per layer (Megatron-LM, arXiv:2104.04473 sec. 3.3).
    calls = 4 * arch.num_layers * workload.gradient_accumulation_steps
    comm = _allreduce_seconds(micro_tokens * arch.hidden_size * c, p.tp, gpu, calls=calls)
    step = compute + comm
    assumptions = [
        f"training runs at {mfu:.0%} MFU of the {workload.precision.compute_dtype} dense peak "
        "(Llama 3 405B on H100: 38-43%)",
        f"FLOPs per token: {'3' if workload.method == 'full' else '2'}x forward"
        + (" + 1 recomputed forward (gradient checkpointing)" if workload.gradient_checkpointing else ""),
        "data-parallel gradient all-reduce and ZeRO/FSDP gathers overlap with compute",
    ]
    if p.offload_optimizer or p.offload_params:
        assumptions.append("CPU offload traffic is not modelled (it slows the step when PCIe is the bottleneck)")
    return TrainingSpeed(
        gpu=gpu.name, num_gpus=p.num_gpus, tokens_per_step=tokens_per_step, model_flops_per_token=model,
        hardware_flops_per_token=hardware, step_seconds=step, tokens_per_s=tokens_per_step / step,
        allreduce_seconds_per_step=comm, mfu=mfu, assumptions=tuple(assumptions),
    )  # fmt: skip
