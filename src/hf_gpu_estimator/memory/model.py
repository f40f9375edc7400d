"""The timeline: memory at each moment of a step, per device, and the peak."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from hf_gpu_estimator.errors import ConflictingOptionsError
from hf_gpu_estimator.frameworks import FP32_LOGITS_4_41, TORCHTUNE_OUTPUT_CHUNKS, framework_profile
from hf_gpu_estimator.memory import overhead
from hf_gpu_estimator.memory.activations import (
    decoder_layer_activations,
    effective_attention,
    first_adapted_layer,
    inference_layer_transient,
    layers_holding,
    norm_bytes,
    sdpa_gets_mask,
)
from hf_gpu_estimator.memory.kv_cache import kv_cache_bytes
from hf_gpu_estimator.memory.recipe import (
    dequantized_bytes,
    fast_lora_layer,
    head_adapter_bytes,
    loss_constant_bytes,
    loss_terms,
    output_width,
    own_layer_saved,
    previous_output_bytes,
    recipe_layer_saved,
)
from hf_gpu_estimator.memory.terms import BYTES, COMPONENTS, MemoryEstimate, Moment, Term
from hf_gpu_estimator.memory.weights import (
    WeightPlan,
    bnb_keeps_experts,
    expert_lora,
    lora_module_targets,
    peft_expert_targets,
    plan_weights,
    step_inputs,
)
from hf_gpu_estimator.memory.zero import REDUCE_BUCKET_DEFAULT, zero_buffers
from hf_gpu_estimator.spec import Architecture, ModelSpec
from hf_gpu_estimator.verdict import CONTEXT_KEY, RATIO_KEY, Assumption
from hf_gpu_estimator.workload import Workload

#: Relative uncertainty of the activation terms against traces of transformers (tests hold the
#: point value within 5 %); widened for what traces cannot see (kernel workspaces, fragmentation).
ACTIVATION_RANGE = (0.95, 1.10)


@dataclass(frozen=True, kw_only=True)
class _Sharding:
    weights: float = 1.0
    grads: float = 1.0
    optimizer: float = 1.0
    activations: float = 1.0
    layers: float = 1.0  # share of layers on the busiest device (pipeline parallel)


def _sharding(workload: Workload) -> tuple[_Sharding, list[str]]:
    p = workload.parallelism
    notes: list[str] = []
    tp, pp, dp = p.tp, p.pp, p.dp
    weights = grads = opt = 1.0
    if p.strategy in ("zero1",):
        opt = 1 / dp
    elif p.strategy in ("zero2", "fsdp-grad-op"):
        opt = grads = 1 / dp
    elif p.strategy in ("zero3", "fsdp"):
        opt = grads = weights = 1 / dp
    elif p.strategy == "fsdp-hybrid":
        # HYBRID_SHARD: full sharding inside a node (8 GPUs), replication across nodes.
        shard = min(dp, 8)
        opt = grads = weights = 1 / shard
        notes.append(f"fsdp-hybrid: sharded over {shard} GPUs of a node, replicated across nodes")
    if p.offload_optimizer:
        opt = 0.0
    if p.offload_params:
        weights = 0.0 if p.strategy in ("zero3", "fsdp") else weights
    # Tensor parallel splits the block matrices, embeddings (vocab-parallel) and the attention/MLP
    # activations; pipeline parallel gives each stage 1/pp of the layers.
    return _Sharding(weights=weights / (tp * pp), grads=grads / (tp * pp), optimizer=opt / (tp * pp),
                     activations=1 / tp, layers=1 / pp), notes


def estimate_memory(spec: ModelSpec, workload: Workload, *, detail: bool = True) -> MemoryEstimate:
    """Per-device memory of ``workload`` on the model ``spec`` (pure arithmetic).

    ``detail=False`` skips the per-term formulas and assumption texts (same numbers): the
    planner's searches call it thousands of times.
    """
    from hf_gpu_estimator.memory.llamacpp import is_llamacpp, llamacpp_estimate

    if is_llamacpp(spec, workload.quantization):
        return llamacpp_estimate(spec, workload, detail=detail)
    given = next((n for n in ("cache_type_k", "cache_type_v") if getattr(workload, n) is not None), None)
    if given is not None:
        raise ConflictingOptionsError(given, getattr(workload, given), f"is a llama.cpp cache type ({spec.id} is not "
                                      "served by llama.cpp)", fix="use it with a GGUF model or --quantization "
                                      "gguf:<TYPE>, or pass --kv-cache-dtype")
    if workload.kv_cache_dtype is not None and workload.kv_cache_dtype not in BYTES:
        raise ConflictingOptionsError("kv_cache_dtype", workload.kv_cache_dtype, "is a llama.cpp cache type",
                                      fix="use it with a GGUF model or --quantization gguf:<TYPE>, or pick fp8/float16")
    arch = spec.architecture
    if arch is None:
        return _weights_only(spec, workload)
    tp = workload.parallelism.tp
    if tp > 1 and (arch.num_attention_heads % tp or (arch.num_key_value_heads % tp and tp % arch.num_key_value_heads)):
        raise ConflictingOptionsError(
            "tp", tp, f"does not divide the {arch.num_attention_heads} attention heads / "
                      f"{arch.num_key_value_heads} KV heads of {spec.id}",
            fix=f"use a --tp that divides {arch.num_attention_heads} (and the KV heads, or a multiple of them)")
    if workload.parallelism.pp > arch.num_layers:
        raise ConflictingOptionsError("pp", workload.parallelism.pp, f"exceeds the {arch.num_layers} layers of {spec.id}",
                                      fix=f"use --pp <= {arch.num_layers}")
    if workload.head == "classification":
        spec, arch = _with_classification_head(spec, arch, workload)
    if workload.images:
        return _with_images(spec, arch, workload, detail=detail)
    return _estimate(spec, arch, workload, step_inputs(workload), detail=detail)


def _with_classification_head(spec: ModelSpec, arch: Architecture,
                              workload: Workload) -> tuple[ModelSpec, Architecture]:
    """The model as ``AutoModelForSequenceClassification`` builds it (transformers 5
    ``GenericForSequenceClassification``): the decoder, and a ``score`` linear of hidden x num_labels, untied, in
    place of the LM head. Its logits are [batch, seq, num_labels]; the loss reads one pooled row per sequence
    (memory/recipe.py ``loss_terms``)."""
    if not workload.is_training:
        raise ConflictingOptionsError("head", workload.head, "is estimated for training",
                                      fix="drop --head classification for inference, or pass --task training")
    counts = spec.parameters
    score = arch.hidden_size * workload.num_labels
    by_role = dict(counts.by_role)
    old = by_role.get("lm_head", 0)
    by_role["lm_head"] = score
    parameters = dataclasses.replace(counts, total=counts.total - old + score, by_role=by_role,
                                     active=counts.active - old + score)
    arch = dataclasses.replace(arch, tie_word_embeddings=False)
    return dataclasses.replace(spec, parameters=parameters, architecture=arch), arch


def _estimate(spec: ModelSpec, arch: Architecture, workload: Workload, inputs: frozenset[str], *,
              detail: bool) -> MemoryEstimate:
    plan = plan_weights(spec, workload, inputs=inputs)
    if workload.is_training:
        return _training(spec, arch, plan, workload, detail=detail)
    return _inference(spec, arch, plan, workload, detail=detail)


def _with_images(spec: ModelSpec, arch: Architecture, workload: Workload, *, detail: bool) -> MemoryEstimate:
    """Images join the sequence as ``tokens_per_image`` placeholder tokens each (the processor expands
    the image token; the vision tower's outputs replace their embeddings), so the language model sees a
    longer sequence. The vision tower's weights are in the counts (role 'other'), and in training it gets
    gradients and optimizer states."""
    if not arch.tokens_per_image:
        raise ConflictingOptionsError("images", workload.images, f"needs a vision-language model; {spec.id} has no "
                                      "vision tower (or no known tokens per image)", fix="drop --images")
    extra = workload.images * arch.tokens_per_image
    notes = [f"{workload.images} image(s) x {arch.tokens_per_image} tokens per image = {extra:,} tokens added to each "
             f"sequence ({workload.seq_len:,} -> {workload.seq_len + extra:,}); the vision tower's own activations "
             "while it encodes the images are not modelled"]
    if arch.cross_tokens_per_image:
        source = workload.images * arch.cross_tokens_per_image
        layers = tuple(dataclasses.replace(layer, mixer=dataclasses.replace(layer.mixer, source_tokens=source))
                       if layer.mixer.kind == "cross" else layer for layer in arch.layers)
        arch = dataclasses.replace(arch, per_layer=layers)
        spec = dataclasses.replace(spec, architecture=arch)
        cross = sum(1 for layer in layers if layer.mixer.kind == "cross")
        notes.append(f"the {cross} cross-attention layers cache keys/values of {source:,} vision tokens per sequence "
                     f"({workload.images} x {arch.cross_tokens_per_image:,}); their attention activations are "
                     "modelled as self-attention over the text")
    result = _estimate(spec, arch, workload.with_(images=0, seq_len=workload.seq_len + extra), step_inputs(workload),
                       detail=detail)
    if not detail:
        return result
    return dataclasses.replace(result, assumptions=(*notes, *result.assumptions))


def _scan_notes(arch: Architecture) -> list[str]:
    """Which implementation of a recurrent scan the activation terms follow, where transformers may run another."""
    if any(m.scan == "kda" for layer, _ in arch.layer_groups for m in layer.mixers):
        # transformers' use_kernel_func_from_hub_with_fallback("chunk_kda", "fla") (modeling_kimi_linear.py): a hub
        # kernel when requested, else the fla package when installed, else the torch function.
        return ["KDA layers: transformers' torch chunked scan (chunk_kimi_delta_attention: fp32 chunk x chunk x "
                "head_dim decay tensors per head), what runs without the fla package; with fla installed "
                "transformers calls fla's chunk_kda kernel instead, which is not modelled"]
    return []


def _finish(moments: list[Moment], terms: list[Term], workload: Workload, assumptions: list[str],
            *, activation_bytes_at_peak: int, host_offload_bytes: int = 0, decode_kv_bytes: int = 0,
            detail: bool = True) -> MemoryEstimate:
    peak = max(moments, key=lambda m: m.total_bytes)
    allocated = peak.total_bytes
    low = allocated - int(activation_bytes_at_peak * (1 - ACTIVATION_RANGE[0]))
    high = allocated + int(activation_bytes_at_peak * (ACTIVATION_RANGE[1] - 1))
    task = workload.task
    reserved = overhead.reserved_bytes(allocated, task, decode_kv_bytes=decode_kv_bytes)
    context = overhead.cuda_context_bytes(workload.cuda_module_loading)
    if workload.parallelism.num_gpus > 1:
        context += overhead.NCCL_BYTES
    if detail:
        _overhead_notes(assumptions, workload, task, context, decode_kv_bytes)
    components = {name: int(peak.components.get(name, 0)) for name in COMPONENTS}
    return MemoryEstimate(
        allocated_peak_bytes=allocated, reserved_peak_bytes=reserved, device_total_bytes=reserved + context,
        allocated_low_bytes=low, allocated_high_bytes=high, components=components, phase_at_peak=peak.phase,
        moments=tuple(moments), terms=tuple(terms), num_devices=workload.parallelism.num_gpus,
        cuda_context_bytes=context, allocator_overhead_bytes=reserved - allocated,
        host_offload_bytes=host_offload_bytes, assumptions=tuple(assumptions),
    )  # fmt: skip


def _overhead_notes(assumptions: list[str], workload: Workload, task: str, context: int, decode_kv_bytes: int) -> None:
    if workload.parallelism.num_gpus > 1:
        assumptions.append(f"NCCL buffers: {overhead.NCCL_BYTES >> 20} MiB per process (NCCL_BUFFSIZE default)")
    assumptions.append(Assumption(key=RATIO_KEY, text=
        f"reserved = allocated x {overhead.RESERVED_RATIO[task]} (caching-allocator rounding and fragmentation, "
        f"typical range {overhead.RESERVED_RATIO_RANGE[task][0]}-{overhead.RESERVED_RATIO_RANGE[task][1]})"
        + (f" + {overhead.DECODE_FRAGMENTATION} x the final KV cache (blocks freed as decode grows the cache, "
           f"measured {overhead.DECODE_FRAGMENTATION_RANGE[0]}-{overhead.DECODE_FRAGMENTATION_RANGE[1]})"
           if decode_kv_bytes else "")
    ))
    low, high = overhead.cuda_context_range_bytes(workload.cuda_module_loading)
    assumptions.append(Assumption(key=CONTEXT_KEY, text=
        f"device total = reserved + CUDA context {context >> 20} MiB (range {low >> 20}-{high >> 20} MiB"
        + (", eager module loading: every kernel loaded at init, pytorch/pytorch#107667)"
           if workload.cuda_module_loading == "eager" else ")")
    ))


def _weights_only(spec: ModelSpec, workload: Workload) -> MemoryEstimate:
    if workload.is_training:
        raise ConflictingOptionsError("task", workload.task, f"needs layer shapes, and {spec.id!r} has no config.json",
                                      fix="inspect the model from a repo or folder with config.json")
    plan = plan_weights(spec, workload)  # the checkpoint's quantized storage as stored, when it has one
    nbytes = plan.weights_bytes
    terms = [Term(component="weights", name="weights", bytes=nbytes, formula=plan.formula)]
    moment = Moment(phase="load", components={"weights": nbytes, "workspace": overhead.CUBLAS_WORKSPACE_BYTES})
    return _finish([moment], terms, workload,
                   ["no config.json: only the weights are estimated (no KV cache or activations)"],
                   activation_bytes_at_peak=0)


def _workspace(workload: Workload) -> int:
    return overhead.CUBLAS_WORKSPACE_BYTES


def _sdpa_mask_patterns(arch: Architecture, seq_len: int) -> int:
    """Distinct boolean masks an SDPA prefill of ``seq_len`` tokens builds: a causal mask is skipped for
    ``is_causal``, a sliding or chunked one only while the prompt fits in its window
    (masking_utils ``sdpa_mask``, see :func:`activations.sdpa_gets_mask`)."""
    return len({(m.kind, m.window, m.chunk) for layer, _ in arch.layer_groups for m in layer.mixers
                if sdpa_gets_mask(m, seq_len)})


def _mask_patterns(arch: Architecture) -> int:
    """Distinct attention masks an eager forward builds: causal, sliding-window, chunked."""
    kinds = {"full" if m.kind in ("full", "mla") else m.kind for layer, _ in arch.layer_groups for m in layer.mixers
             if m.kind in ("full", "mla", "sliding", "chunked")}
    return max(1, len(kinds))


def _inference(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload, *,
               detail: bool = True) -> MemoryEstimate:
    shard, notes = _sharding(workload)
    p = workload.parallelism
    assumptions = list(notes)
    B, S, N = workload.batch_size, workload.seq_len, workload.new_tokens
    c = BYTES[plan.compute_dtype]
    kv_dtype_bytes = BYTES[workload.kv_cache_dtype] if workload.kv_cache_dtype else c
    attn = effective_attention(arch, workload, plan.compute_dtype)
    if attn != workload.attn_implementation:
        assumptions.append(f"{arch.model_type} does not support {workload.attn_implementation}: transformers runs {attn}")
    W = int(plan.weights_bytes * shard.weights)
    ws = _workspace(workload)
    layers_here = max(1, round(arch.num_layers * shard.layers))
    layer_share = layers_here / arch.num_layers

    def kv(tokens: int, *, storage: bool = False) -> int:
        return int(kv_cache_bytes(arch, batch_size=B, tokens=tokens, dtype_bytes=kv_dtype_bytes, storage=storage,
                                  kv_heads_divisor=p.tp) * layer_share)

    # Prefill: every layer's cache holds the prompt (sliding layers keep a view of the full prompt
    # until the first decode step); the largest transient is inside the last layer.
    # Block-sparse attention never writes to the cache (modeling_big_bird.py BigBirdModel.forward): a block-sparse
    # prompt leaves it empty, and the decode steps (full attention, one token) fill it from there.
    prompt = 0 if _prefill_writes_no_cache(arch, S) else S
    kv_prefill = kv(prompt, storage=True)
    layer_transient = int(B * S * inference_layer_transient(arch, compute_bytes=c, attn=attn, seq_len=S, query_len=S,
                                                         batch_size=B, float16=plan.compute_dtype == "float16")
                          * shard.activations)
    # 4-D additive mask built once per forward, one per masking pattern (transformers builds a causal
    # and a sliding-window mask when both layer kinds are present; masking_utils create_masks_for_generate).
    mask = B * S * S * c * _mask_patterns(arch) if attn == "eager" else 0
    if arch.bidirectional:
        # Bidirectional without padding: create_bidirectional_mask returns no mask (masking_utils.py
        # allow_is_bidirectional_skip; exact-mode traces of camembert at 4 x 2048 tokens hold none).
        mask = 0
    elif attn == "sdpa":
        # SDPA gets boolean masks (1 byte per element) where a pattern cannot be skipped: alive for the
        # whole forward (exact-mode trace of a llama4_text config: the chunked mask at the MoE peak).
        mask = B * S * S * _sdpa_mask_patterns(arch, S)
    hidden = B * S * c * arch.hidden_size  # embeddings / residual stream kept across layers
    # Only the last position's logits (generate passes logits_to_keep=1), then an fp32 copy; a forward
    # without logits_to_keep computes them for every prompt position first. Stacked heads (one per codebook) hold
    # each head's output and the stack together (exact-mode trace of musicgen at 4 x 2048 tokens, sdpa: the
    # prefill peaks at torch.stack, 4 heads' outputs and the stacked copy beside the cache).
    heads = arch.logit_heads
    stacked = 2 if heads > 1 else 1
    logits = B * heads * arch.vocab_size * ((c if arch.last_logits_only else stacked * S * c) + 4)
    step_logits = B * heads * arch.vocab_size * (stacked * c + 4)  # a decode step's one position
    prefill_logits = logits
    if not arch.last_logits_only and arch.final_logit_softcapping:
        # Every prompt position's logits upcast, then soft-capped (xLSTMForCausalLM.forward: ``lm_head(...).float()``,
        # then ``cap * tanh(logits / cap)``): three fp32 copies alive at the tanh. Exact-mode trace of xlstm at
        # 4 x 2048 tokens: 4,796 MiB of activations at the prefill peak, 4,716 MiB of them these logits.
        prefill_logits = B * S * arch.vocab_size * 3 * 4
    every_logits = _every_position_logits(arch, workload, c)
    kept_logits = 0  # the prompt's logits as generate's ``outputs`` holds them (legacy generate only)
    if every_logits is not None:
        # transformers <= 4.41 (loss kind hf-fp32-logits): no logits_to_keep, so the head runs on every prompt
        # position; where the model's forward upcasts (FP32_LOGITS_4_41) its 16-bit output and the fp32 copy are
        # alive together at ``logits.float()`` (Qwen2 speed benchmark at transformers 4.38.2, A100: Qwen2-7B at
        # 30720 tokens allocates 42.62 GiB where Qwen2.5-7B at 4.46 allocates 19.97).
        prefill_logits = logits = B * S * arch.vocab_size * every_logits
        kept_logits = B * S * arch.vocab_size * (4 if every_logits > c else c)
    dequant = _dequant_transient(spec, arch, plan, workload)
    prefill = Moment(phase="prefill", components={
        "weights": W, "kv_cache": kv_prefill, "activations": hidden,
        "transient": max(layer_transient + mask + dequant, prefill_logits), "workspace": ws})
    # Decode: the last step, with the cache at S + N - 1 tokens growing to S + N; DynamicCache.update
    # concatenates (old and new tensors of one layer alive together).
    total = S + max(N, 1)
    cached = prompt + max(N, 1)  # what the cache holds at the end of generation
    kv_decode = kv(cached - 1)
    per_layer_kv = kv(cached) // max(1, layers_here)
    legacy = framework_profile(workload.framework).legacy_generate_cache
    if legacy:
        # The legacy tuple keeps every layer's old tensors while the step concatenates new ones (frameworks.py
        # legacy_generate_cache): the whole old cache beside the whole new one at the end of the step.
        per_layer_kv = kv(cached)

    def step_transient(tokens: int) -> int:
        return int(B * inference_layer_transient(arch, compute_bytes=c, attn=attn, seq_len=tokens, query_len=1,
                                                 batch_size=B))

    decode = Moment(phase="decode", components={
        "weights": W, "kv_cache": kv_decode + per_layer_kv, "activations": B * c * arch.hidden_size,
        "transient": step_transient(total) + step_logits + dequant, "workspace": ws})
    moments = [prefill] + ([decode] if N > 0 else [])
    if legacy and N > 1:
        # The first decode step under legacy generate: the prompt's cache and its one-token-longer copy, and the
        # prefill's ``outputs`` with the prompt's logits, still referenced until this forward returns.
        moments.append(Moment(phase="decode", note="first step: the prompt's outputs still referenced", components={
            "weights": W, "kv_cache": kv(prompt) + kv(prompt + 1), "activations": B * c * arch.hidden_size,
            "transient": step_transient(S + 1) + step_logits + kept_logits + dequant, "workspace": ws}))
    terms: list[Term] = []
    if detail:
        terms = [
            Term(component="weights", name="weights", bytes=W, formula=plan.formula + _shard_note(shard.weights)),
            Term(component="kv_cache", name="kv_cache (end of generation)", bytes=kv(cached),
                 formula=_kv_formula(arch, B, cached, kv_dtype_bytes)),
            Term(component="transient", name="prefill layer peak", bytes=layer_transient,
                 formula=f"batch {B} x {S} tokens x per-token layer peak ({attn})", low=int(layer_transient * 0.9),
                 high=int(layer_transient * 1.2)),
            Term(component="transient", name="prompt logits" + (" + their fp32 copy" if every_logits > c else "")
                 if every_logits is not None else "last-position logits + fp32 copy" if arch.last_logits_only
                 else "prompt logits + fp32 copy of the last", bytes=logits,
                 formula=f"{B} x {S} tokens x vocab {arch.vocab_size} x {every_logits} B (transformers <= 4.41)"
                 if every_logits is not None else (f"{B} x {heads} heads x " if heads > 1 else f"{B} x ")
                 + f"vocab {arch.vocab_size} x ({c if arch.last_logits_only else f'{S} x {c}' + (' x 2' if heads > 1 else '')} + 4) B"),
            Term(component="workspace", name="cuBLAS workspace", bytes=ws,
                 formula="32 MiB cuBLAS + 1 MiB cuBLASLt per stream (Hopper+), via the caching allocator"),
        ]
        if mask and attn == "eager":
            terms.append(Term(component="transient", name="eager 4-D attention mask", bytes=mask,
                              formula=f"{_mask_patterns(arch)} x {B} x {S} x {S} x {c} B"))
        elif mask:
            terms.append(Term(component="transient", name="SDPA boolean attention masks", bytes=mask,
                              formula=f"{_sdpa_mask_patterns(arch, S)} x {B} x {S} x {S} x 1 B"))
        if dequant:
            terms.append(Term(component="transient", name="dequantized layer weight", bytes=dequant,
                              formula="largest quantized linear dequantized to the compute dtype"))
        if legacy or every_logits is not None:
            assumptions.append(f"inference follows transformers generate at {workload.framework} "
                               f"({framework_profile(workload.framework).release}): every prompt position's logits"
                               + (", the legacy cache tuple kept while each step concatenates a new cache" if legacy
                                  else "") + ", greedy decode")
        else:
            assumptions.append("inference follows transformers generate: prefill with logits_to_keep=1, greedy decode, "
                               "DynamicCache")
        if arch.is_mla:
            assumptions.append("MLA: the cache holds the compressed latent (kv_lora_rank + qk_rope_head_dim per token)")
        assumptions.extend(_scan_notes(arch))
        if plan.quantization.startswith("gguf:"):
            assumptions.append("GGUF runs in llama.cpp, not PyTorch: 'allocated' means llama.cpp's buffers; the KV "
                               "cache is sized for seq_len + new_tokens as llama.cpp's n_ctx")
    peak_activation = max(m.components.get("transient", 0) for m in moments)
    return _finish(moments, terms, workload, assumptions, activation_bytes_at_peak=peak_activation,
                   decode_kv_bytes=kv(cached) if N > 1 else 0, detail=detail)


def _every_position_logits(arch: Architecture, workload: Workload, compute_bytes: int) -> int | None:
    """Bytes per prompt position and vocabulary entry of the prefill's logits when the forward computes them for
    every position (a framework profile with ``legacy_generate_cache``, transformers <= 4.41: no ``logits_to_keep``):
    the compute dtype, plus the fp32 copy where the model type's forward upcast (FP32_LOGITS_4_41). ``None``:
    transformers 5's last position only (memory/model.py ``_inference`` handles the types without
    ``logits_to_keep``). The training loss kind plays no part: generate never computes a loss."""
    if not framework_profile(workload.framework).legacy_generate_cache or arch.logit_heads > 1:
        return None
    c = compute_bytes
    return c + (4 if arch.model_type in FP32_LOGITS_4_41 and c < 4 else 0)


def _prefill_writes_no_cache(arch: Architecture, tokens: int) -> bool:
    """Whether every attention layer runs block-sparse over a ``tokens``-token prompt (spec.Mixer.block_sparse_at)."""
    mixers = [m for layer, _ in arch.layer_groups for m in layer.mixers if m.has_cache]
    return bool(mixers) and all(m.block_sparse_at(tokens) for m in mixers)


def _dequant_transient(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload) -> int:
    """bitsandbytes/GPTQ kernels on the prefill path dequantize one linear's weight at a time: the largest quantized
    one (not the routed experts where bitsandbytes leaves them in 16 bits, memory/weights.py bnb_keeps_experts)."""
    if plan.quantization not in ("nf4", "fp4", "int8") or not arch.linears:
        return 0
    kept = bnb_keeps_experts(spec, workload.with_(quantization=plan.quantization))
    largest = max((lin.in_features * lin.out_features for lin in arch.linears if not (kept and lin.count > 1)),
                  default=0)
    return largest * BYTES[plan.compute_dtype]


def _kv_formula(arch: Architecture, batch: int, tokens: int, dtype_bytes: int) -> str:
    if arch.is_mla:
        return (f"{batch} x {tokens} tokens x {arch.num_layers} layers x (kv_lora_rank {arch.kv_lora_rank} + "
                f"rope {arch.qk_rope_head_dim}) x {dtype_bytes} B")
    sliding = f", {arch.sliding_layers} sliding layers capped at {arch.sliding_window}" if arch.sliding_layers else ""
    return (f"{batch} x {tokens} tokens x {arch.num_layers} layers x 2 x {arch.num_key_value_heads} kv heads x "
            f"{arch.head_dim} x {dtype_bytes} B{sliding}")


def _shard_note(factor: float) -> str:
    return "" if factor == 1 else f" / {round(1 / factor) if factor else 'offloaded'} (sharded)"


def _training(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload, *,
              detail: bool = True) -> MemoryEstimate:
    shard, notes = _sharding(workload)
    assumptions = list(notes)
    p = workload.parallelism
    B, S = workload.batch_size, workload.seq_len
    T = B * S
    precision = workload.precision
    c = BYTES[precision.compute_dtype]
    attn = effective_attention(arch, workload)
    if attn != workload.attn_implementation:
        assumptions.append(f"{arch.model_type} does not support {workload.attn_implementation}: transformers runs {attn}")
    layers_here = arch.num_layers * shard.layers
    micro_in_flight = 1.0
    if p.pp > 1:
        # 1F1B: the first stage holds pp micro-batches of activations for its L/pp layers.
        micro_in_flight = min(p.pp, workload.gradient_accumulation_steps) if workload.gradient_accumulation_steps > 1 else 1
        assumptions.append(f"pipeline 1F1B: first stage keeps {micro_in_flight:g} micro-batches in flight")

    recipe_weights, recipe_notes = _recipe_weights(spec, arch, plan, workload)
    profile = framework_profile(workload.framework)
    if detail and profile.name != "hf":
        assumptions.append(f"framework {profile.name} ({profile.release}): {profile.source}")
        assumptions.extend(profile.notes)
    whole_state = _replicated_quant_state_bytes(plan, workload)
    W = int((plan.weights_bytes + plan.adapter_bytes + recipe_weights) * shard.weights
            + whole_state * (1 - shard.weights))
    assumptions += recipe_notes
    if profile.single_op_gelu and arch.hidden_act in ("gelu_new", "gelu_fast"):
        arch = dataclasses.replace(arch, hidden_act="gelu_pytorch_tanh")
        assumptions.append(f"{workload.framework} runs its own model: its tanh GELU is one op (saves only its input)")
    trainable = plan.trainable_params
    tb = plan.trainable_bytes_per_param
    # Only parameters the step reaches get a gradient (a tower the inputs do not feed runs no module).
    G = int(plan.updated_params * tb * shard.grads)
    offloaded_grads = 0
    if p.offload_optimizer and p.strategy in ("zero2", "zero3", "fsdp", "fsdp-grad-op", "fsdp-hybrid") and G:
        # The optimizer steps on the CPU, so gradients leave the GPU as they are reduced: DeepSpeed keeps one
        # reduce bucket (reduce_bucket_size default 5e8 elements, deepspeed/runtime/zero/config.py); FSDP's CPU
        # offload moves each unit's gradient shard to the host after its reduce-scatter (one layer's worth).
        bucket = int((workload.reduce_bucket_size or REDUCE_BUCKET_DEFAULT) * tb) if p.strategy.startswith("zero") \
            else int(G / max(1, arch.num_layers))
        offloaded_grads, G = G, min(G, bucket)
    S_opt, opt_formula, opt_temp = _optimizer_bytes(spec, arch, plan, workload)
    S_opt = int(S_opt * shard.optimizer)
    paged = 0
    if workload.optimizer.paged:
        # bitsandbytes paged optimizers allocate their states with cudaMallocManaged (unified memory), outside
        # PyTorch's caching allocator: not in max_memory_allocated, and paged to host memory under pressure.
        paged, S_opt = S_opt, 0
    opt_temp = int(opt_temp * shard.optimizer)
    host = offloaded_grads
    if p.offload_optimizer:
        host += int(_optimizer_bytes(spec, arch, plan, workload)[0] / max(1, p.dp))

    layer = decoder_layer_activations(arch, workload, seq_len=S)
    fast_layer = fast_lora_layer(arch, workload)
    if fast_layer is not None:
        layer = fast_layer
        if detail:
            assumptions.append(f"{profile.name}'s fast LoRA kernels (LoRA_QKV, LoRA_W, LoRA_MLP, fast RMSNorm and RoPE): "
                               f"{fast_layer.saved:,.0f} B/token saved per decoder layer (memory/recipe.py "
                               "fast_lora_layer)")
    elif detail and profile.fast_lora_layer and workload.method != "full":
        assumptions.append(f"{profile.name}: its fast LoRA kernels need LoRA on q, k, v, o, gate, up and down without "
                           "dropout on a llama-style layer; the decoder layers are taken as transformers' with peft")
    ckpt = workload.gradient_checkpointing
    act_share = 1.0 if ckpt else shard.activations
    per_layer_saved = layer.checkpoint if ckpt else layer.saved + layer.training_cache
    own_layer = own_layer_saved(arch, workload)
    if own_layer is not None:
        per_layer_saved = own_layer
        if detail:
            assumptions.append(f"{profile.name}'s own decoder layer{' compiled per layer' if workload.torch_compile else ''}: "
                               f"{own_layer:,.0f} B/token saved (traced, memory/recipe.py own_layer_saved)")
    elif detail and workload.torch_compile and not ckpt:
        assumptions.append("torch.compile: the decoder layers' saved tensors are the eager ones (the compiled graph's "
                           "are traced for torchtune's own llama-style layer in a full finetune only)")
    # The recipe's own saved tensors (memory/recipe.py): with checkpointing only the fp32 layer input of
    # the k-bit recipe stays per layer; the rest is rebuilt with the recomputed layer.
    extra = recipe_layer_saved(arch, workload)
    if detail and profile.fused_qkv_model and attn == "eager":
        assumptions.append(f"{profile.name}'s own model with eager attention (softcapping, sliding window): its saved "
                           "tensors are taken as transformers' eager forward's (unverified; own_model_layer_saved "
                           "itemizes the SDPA path only)")
    per_layer_saved += extra.kbit_casts if ckpt else extra.total
    recomputed_extra = extra.dropout + extra.quantized_inputs + extra.own_model if ckpt else 0.0
    A_layer = int(T * per_layer_saved * micro_in_flight * act_share)  # one layer's saved tensors
    # Layer calls under torch.no_grad() keep nothing for backward (Architecture.grad_layers).
    saving_layers = layers_here * (arch.grad_layers / arch.num_layers if arch.grad_layers else 1.0)
    below = 0
    if workload.method != "full" and not ckpt and layers_here == arch.num_layers and not arch.grad_layers:
        # Layers below the first one with an adapter keep nothing for backward (activations.first_adapted_layer).
        targets = expert_lora(arch, workload)
        below = first_adapted_layer(arch, lora_module_targets(arch, workload),
                                    experts=targets is not None and bool(targets.params))
        if below and detail:
            assumptions.append(f"the first {below} decoder layer(s) hold no adapter and nothing below them needs a "
                               "gradient: they save nothing for backward (no gradient checkpointing, so no "
                               "enable_input_require_grads)")
        saving_layers = max(0, layers_here - below) * 1.0
    A_layers = int(A_layer * saving_layers)
    if workload.activation_offloading:
        # torchtune OffloadActivations (training/_activation_offloading.py, v0.5.0): every saved tensor of at least
        # min_offload_size=1024 B is copied to host memory as forward saves it, and its device copy is kept only
        # while it is among the last max_fwd_stash_size=5 saved; the output head is exempt (a NoOpManager hook).
        # At the loss the stash holds the final norm's saved tensors and at most one layer's worth.
        A_layers = min(A_layers, A_layer)
    # The layer checkpointing recomputes at the backward peak: the largest one (hybrids differ by layer).
    largest_layer = int(T * (layer.largest + recomputed_extra) * shard.activations)
    loss_saved, loss_during, loss_backward = loss_terms(arch, workload)
    head_saved, head_transient = head_adapter_bytes(arch, workload)
    loss_during += head_saved + head_transient
    loss_backward += head_saved
    r = 4 if (precision.mixed and workload.method == "full") else c
    final_norm = norm_bytes(arch.hidden_size, r, rms=arch.norm == "rmsnorm") + c * arch.hidden_size
    if fast_layer is not None:
        final_norm = 2 * c * arch.hidden_size + 4  # fast_rms_layernorm: its input and fp32 r saved, its output
    loss_forward_fixed, loss_backward_fixed = loss_constant_bytes(arch, workload)
    head = int(T * (final_norm + loss_during) * shard.activations) + loss_forward_fixed
    head_backward = int(T * (final_norm + loss_backward) * shard.activations) + loss_backward_fixed
    if detail and loss_backward_fixed:
        assumptions.append(f"Cut Cross Entropy's backward allocates a gradient the size of the output head "
                           f"({loss_backward_fixed / 2**30:.2f} GiB with its fp32 mean logits) even for a frozen head "
                           "(cut_cross_entropy cce_backward_kernel: dc = zeros_like(c))")
    embeddings = T * r * arch.hidden_size  # the embedding output stays alive (read by layer 0's norm)
    if arch.embedding_dropout:
        embeddings += T * arch.hidden_size  # dropout's bool mask
    if workload.activation_offloading or below:
        embeddings = 0  # saved by layer 0, so offloaded with it (above), or not saved: layer 0 needs no gradient
    layer_bw = int(T * layer.backward_transient * shard.activations)

    # Under autocast every fp32 weight a matmul reads is cast once and the 16-bit copy cached until
    # autocast exits; F.linear also saves it for backward (without checkpointing), so the copies
    # live until each layer's backward. With checkpointing they die at autocast exit and each
    # recomputed layer casts its own again.
    counts = spec.parameters.by_role
    # Routed experts run through grouped_mm, which autocast does not cast: no copies for them.
    layer_linear = sum(counts.get(k, 0) for k in ("attention", "mlp", "router")) / arch.num_layers
    if arch.is_moe and arch.shared_expert_intermediate_size:
        layer_linear += 3 * arch.hidden_size * arch.shared_expert_intermediate_size * (
            len(arch.moe_layers) or arch.num_layers) / arch.num_layers
    head_linear = counts.get("lm_head", 0) or (counts.get("embedding", 0) if arch.tie_word_embeddings else 0)
    copies_layer = copies_head = 0
    if precision.mixed and workload.method == "full":
        copies_layer = int(layer_linear * c * shard.weights * arch.num_layers / max(1, layers_here)) \
            if layers_here else 0
        copies_head = int(head_linear * c * shard.weights)
    copies_all = int(copies_layer * layers_here) + copies_head

    # Gradients appear as backward walks down: lm_head (and a tied embedding) first, each layer's
    # as its backward ends, untied embeddings last.
    trainable_full = workload.method == "full"
    tied = arch.tie_word_embeddings
    G_head = int(((counts.get("lm_head", 0) + (counts.get("embedding", 0) if tied else 0)) if trainable_full else 0)
                 * tb * shard.grads)
    G_emb = int((counts.get("embedding", 0) if trainable_full and not tied else 0) * tb * shard.grads)
    G_head, G_emb = min(G_head, G), min(G_emb, G)
    G_layer = max(0, int((G - G_head - G_emb) / max(1, layers_here))) if layers_here else 0
    # torchtune's chunked head (TransformerDecoder.chunked_output, v0.5.0) runs the head once per chunk: the loss
    # backward first turns every chunk into its gradient (one chunk more at a time), then each chunk's head
    # backward gives a whole weight gradient that is summed with the ones before; traced (torch's MemTracker, real
    # tensors, tests/test_memory_recipe.py) the second sum peaks with three weight gradients and six of the eight
    # chunk gradients: 3 x (head gradient - one chunk) above the loss backward's own peak when the head trains.
    head_grad_sum = 0
    if workload.loss == "chunked-fp32" and G_head:
        chunk_bytes = T * c * arch.vocab_size / TORCHTUNE_OUTPUT_CHUNKS * shard.activations
        head_grad_sum = int(max(0.0, 3 * (G_head - chunk_bytes)))
    G_res = G if workload.gradient_accumulation_steps > 1 else 0
    # torch.utils.checkpoint's reentrant variant (CheckpointFunction.backward, torch 2.x) runs the whole layer
    # again, its output included, and holds that output while torch.autograd.backward runs through the layer;
    # the non-reentrant variant stops recomputing once every saved tensor is back (early_stop) and the
    # layer's last op (the residual add) saves nothing. Traced: one layer output, T x hidden in the residual
    # stream's dtype, above non-reentrant at the step-1 backward (tests/test_memory_recipe.py).
    stream = 4 if workload.method == "qlora" and workload.kbit_fp32_casts else r
    reentrant = int(T * stream * arch.hidden_size * shard.activations) if ckpt and workload.use_reentrant else 0
    # FSDP1 reshards a frozen unit after its backward through a multi-grad hook on the unit's inputs
    # (_register_post_backward_reshard_only_hook, torch 2.1+ _runtime_utils.py) and removes the hook only at the
    # end of the backward (_finalize_params). Under reentrant checkpointing around the unit (transformers calls
    # checkpoint(decoder_layer.__call__, ...)) those inputs are the recompute's detached leaves: the hook's closure
    # holds their AccumulateGrad nodes, which hold the leaves, so every layer's input and the gradient backward
    # accumulates in it stay allocated until the backward ends (reproduced with torch.autograd.graph
    # register_multi_grad_hook on torch 2.13, tests/test_memory_model.py). At the first layer: all L inputs and
    # L - 1 input gradients.
    held_inputs = held_grads = 0
    if _fsdp_holds_checkpoint_inputs(workload):
        held_inputs = A_layers - A_layer
        held_grads = int(T * stream * arch.hidden_size * shard.activations * max(0.0, saving_layers - 1))
    recompute = largest_layer + layer_bw + copies_layer + reentrant if ckpt else layer_bw
    live_copies = 0 if ckpt else copies_all
    dequant = _dequant_transient(spec, arch, plan, workload)
    # Lightning's fp16 4-bit state: each dequantized weight exists in fp16 and in the compute dtype; the
    # output head is the largest (memory/recipe.py dequantized_bytes).
    dequant_head = max(dequant, dequantized_bytes(arch, workload, head=True))
    dequant = max(dequant, dequantized_bytes(arch, workload, head=False))
    dequant_head = max(dequant_head, dequant)
    # The previous micro-batch's logits (and the 4-bit inputs its graph holds) until the new head has run.
    previous = int(T * previous_output_bytes(arch, workload, extra.quantized_inputs * layers_here)
                   * shard.activations)
    ws = _workspace(workload)
    stacks_saved, stacks_layer, stacks_grad = _expert_stacks(spec, arch, plan, workload, layers_here)
    if stacks_saved:
        A_layers += 0 if ckpt else stacks_saved
        A_layer += 0 if ckpt else stacks_layer
        recompute += stacks_grad + (stacks_layer if ckpt else 0)

    # DistributedDataParallel's reducer allocates flat bucket tensors holding a copy of every
    # gradient at construction (gradient_as_bucket_view=False by default): resident throughout.
    bucket = int(trainable * tb) if p.strategy == "ddp" else 0

    if workload.optimizer_in_backward:
        # Each parameter is stepped by its own optimizer in a post-accumulate-grad hook and its gradient freed
        # (torchtune optimizer_in_bwd): at most one layer's gradients are alive, and no separate step; a step
        # that allocates per parameter still does so, the largest parameter's with its own gradient alive.
        opt_temp = int(_per_parameter_step_bytes(spec, arch, plan, workload) * shard.optimizer)

    gathered = _fsdp_gathered_bytes(spec, arch, plan, workload, recipe_weights)
    zero = zero_buffers(workload, param_bytes=c)

    def moment(phase: str, *, weights: int, grads: int, acts: int, transient: int) -> Moment:
        if phase != "optimizer step":
            weights += gathered + zero.gathered
        grads += zero.resident + (zero.backward if phase.startswith("backward") else 0)
        if workload.optimizer_in_backward:
            grads = min(grads, max(G_layer, G_head, G_emb))
        return Moment(phase=phase, components={
            "weights": weights, "optimizer_states": S_opt, "gradients": grads + bucket, "activations": acts,
            "transient": transient, "workspace": ws})

    load = _load_moment(spec, arch, plan, workload, int((plan.weights_bytes + recipe_weights) * shard.weights
                                                        + whole_state * (1 - shard.weights)))
    moments = [
        moment("forward (loss)", weights=W + copies_all, grads=G_res, acts=A_layers + embeddings,
               transient=head + dequant_head),
        moment("backward (loss)", weights=W + live_copies, grads=G_res, acts=A_layers + embeddings,
               transient=head_backward + dequant_head + head_grad_sum),
        moment("backward (top layer)", weights=W + (live_copies - copies_head if not ckpt else 0),
               grads=max(G_res, G_head + G_layer), acts=A_layers + embeddings, transient=recompute + dequant),
        moment("backward (first layer)", weights=W + (copies_layer if not ckpt else 0),
               grads=max(G_res, G - G_emb - G_layer), acts=A_layer + held_inputs + held_grads + embeddings,
               transient=recompute + dequant),
        moment("optimizer step", weights=W, grads=G, acts=0, transient=opt_temp),
    ]
    if previous:
        # The new head runs while the old output is still bound: its logits so far (all chunks) and the
        # head's dequantized weight, beside the previous micro-batch's leftovers.
        head_forward = int(T * (final_norm + BYTES[plan.compute_dtype] * output_width(arch, workload) + head_saved
                                + head_transient) * shard.activations)
        moments.insert(0, moment("forward (head, previous micro-batch held)", weights=W + copies_all, grads=G_res,
                                 acts=A_layers + embeddings + previous, transient=head_forward + dequant_head))
    terms: list[Term] = []
    if detail:
        terms = [
            Term(component="weights", name="weights", bytes=W, formula=plan.formula + _shard_note(shard.weights)),
            Term(component="gradients", name="gradients", bytes=G,
                 formula=f"{plan.updated_params:,} trainable with a gradient x {tb} B ({plan.trainable_dtype})" + _shard_note(shard.grads)),
            Term(component="optimizer_states", name="optimizer states", bytes=S_opt, formula=opt_formula),
            Term(component="activations", name="decoder layers (saved for backward)", bytes=A_layers,
                 formula=(f"{B} x {S} tokens x {saving_layers:g} layers x {per_layer_saved:,.0f} B/token"
                          + (" (checkpointed layer inputs)" if workload.gradient_checkpointing else "")
                          + (f", of which {extra.own_model:+,.0f} B/token the framework's own model code (fused "
                             "QKV attention, LoRAQKVLinear)" if extra.own_model and not ckpt else "")),
                 low=int(A_layers * ACTIVATION_RANGE[0]), high=int(A_layers * ACTIVATION_RANGE[1])),
            Term(component="transient", name="logits + fp32 loss", bytes=head,
                 formula=f"{T} tokens x ({loss_during:,.0f} B logits/loss + {final_norm:,.0f} B final norm)"
                         + (f" + {loss_forward_fixed:,} B per step" if loss_forward_fixed else "")),
            Term(component="workspace", name="cuBLAS workspace", bytes=ws,
                 formula="32 MiB cuBLAS + 1 MiB cuBLASLt per stream (Hopper+), via the caching allocator"),
        ]
        if previous:
            terms.append(Term(component="activations", name="previous micro-batch's output held", bytes=previous,
                              formula=f"{T} tokens x {previous / max(1, T):,.0f} B: its logits"
                                      + (" and its 4-bit layers' saved inputs"
                                         if previous > T * c * output_width(arch, workload) else "")
                                      + " until the next forward returns (LitGPT fit)"))
        if copies_all:
            terms.append(Term(component="weights", name="autocast 16-bit weight copies", bytes=copies_all,
                              formula="linear weights x 2 B, cached by autocast (and saved by F.linear until backward "
                                      "without checkpointing)"))
        if stacks_saved:
            targets = peft_expert_targets(spec, workload)
            names = ", ".join(sorted(targets.params)) if targets else ""
            terms.append(Term(component="activations", name="peft expert stacks (W + B A) saved for backward",
                              bytes=0 if ckpt else stacks_saved,
                              formula=f"{stacks_layer:,} B per MoE layer ({names}: every expert's weight plus its "
                                      "LoRA delta, materialized by peft's ParamWrapper parametrization and saved by "
                                      "the experts' matmuls)" + (" x the MoE layers" if not ckpt else
                                      ": one layer's, rebuilt by the checkpointed recompute")))
            assumptions.append(
                f"peft's MoE target conversion (peft >= 0.20 under transformers 5) puts LoRA on the fused expert "
                f"parameters ({names}): each MoE layer's forward builds W + B A for the whole stack in the weight "
                "dtype (peft 0.21 _LoraFactorsProxy, one baddbmm; peft 0.20 also holds the delta) and keeps it for "
                "backward, which adds its gradient")
        if layer.training_cache and not ckpt:
            terms.append(Term(component="activations", name="DynamicCache built by the training forward",
                              bytes=int(T * layer.training_cache * saving_layers),
                              formula="use_cache=True (config default): k/v copies not otherwise saved"))
        terms.extend(zero.terms)
        if whole_state and shard.weights < 1:
            terms.append(Term(component="weights", name="bitsandbytes 4-bit quant state, on every GPU",
                              bytes=int(whole_state * (1 - shard.weights)),
                              formula=f"{plan.quantized_params:,} 4-bit weights x {plan.quantized_bits - 4:.3f} bits "
                                      "(absmax and nested constants) held whole, not sharded: the part of it the "
                                      "weights term shards"))
            assumptions.append("bitsandbytes 4-bit under FSDP/ZeRO-3: transformers (4.4x, _load_state_dict_into_meta"
                               "_model) quantizes each weight on the GPU and moves only Params4bit.data to the CPU "
                               "(or meta), so its quant_state stays on every GPU; FSDP and ZeRO-3 shard parameters "
                               "and the quant state is an attribute, not a parameter (read from transformers 4.40-4.5x "
                               "and measured on fms-acceleration's 4.48 runs; transformers 5's loader unverified)")
        if gathered:
            if p.strategy == "zero3" and not p.offload_params:
                formula = ("1 decoder layer gathered + the output head: DeepSpeed ZeRO-3 keeps a module's gathered "
                           "parameters while they are used again within stage3_max_reuse_distance (1e9 elements; "
                           "partitioned_param_coordinator.py __params_to_release): a layer from its (recomputed) "
                           "forward to its backward, the head from the loss to its backward")
            elif _fsdp_layer_units(workload) == 1:
                formula = ("1 decoder layer unsharded (peft's fsdp_auto_wrap_policy puts each LoRA Linear in a unit "
                           "of its own, so BACKWARD_PRE prefetches a LoRA unit, not the previous layer) + the root "
                           "unit (embeddings, head), kept unsharded from forward to backward (torch FSDP1 "
                           "_post_forward_reshard)")
            else:
                formula = ("2 decoder layers unsharded (the current unit and the one BACKWARD_PRE prefetches) + the "
                           "root unit (embeddings, head), kept unsharded from forward to backward (torch FSDP1 "
                           "_post_forward_reshard)")
            if precision.mixed:
                formula += f"; in {plan.compute_dtype} (FSDP MixedPrecision param_dtype: _full_param_padded)"
            terms.append(Term(component="weights", name="FSDP all-gathered units", bytes=gathered, formula=formula))
        if held_grads:
            terms.append(Term(component="activations", name="FSDP-held checkpoint inputs and their gradients",
                              bytes=held_inputs + held_grads,
                              formula=f"at the first layer's backward: {saving_layers:g} checkpointed layer inputs "
                                      f"and {max(0.0, saving_layers - 1):g} input gradients ({T} tokens x "
                                      f"{arch.hidden_size} x {stream} B each), kept by FSDP's reshard-only "
                                      "multi-grad hooks on the reentrant recompute's inputs until the backward ends"))
        if paged:
            assumptions.append(f"{workload.optimizer.name}: its {paged / 2**30:.2f} GiB of states live in CUDA unified "
                               "memory (cudaMallocManaged), outside torch's allocator; they use free device memory and "
                               "page to host memory when it runs out")
        if opt_temp:
            formula = "foreach AdamW: sqrt(exp_avg_sq) for every parameter (torch.optim.adam)"
            if workload.optimizer.foreach_intermediates == 2:
                formula = ("foreach AdamW of torch <= 2.0: sqrt(exp_avg_sq) and denom = sqrt + eps for every "
                           "parameter, alive together (torch 2.0.1 torch/optim/adamw.py _multi_tensor_adamw)")
            if workload.optimizer.step_bytes_per_element:
                formula = (f"one parameter's step at a time: {workload.optimizer.step_bytes_per_element:g} B x the "
                           f"largest parameter ({workload.optimizer.name})")
            terms.append(Term(component="transient", name="optimizer step temporaries", bytes=opt_temp,
                              formula=formula))
        if bucket:
            terms.append(Term(component="gradients", name="DDP gradient buckets", bytes=bucket,
                              formula="DistributedDataParallel(gradient_as_bucket_view=False) keeps a flat copy"))
            assumptions.append("DDP default gradient_as_bucket_view=False: the reducer's buckets copy every gradient")
        if precision.name == "16-mixed":
            assumptions.append("16-mixed: torch.amp.GradScaler scales the loss, unscales the gradients in place "
                               "(_amp_foreach_non_finite_check_and_unscale_) and keeps only 0-dim scale, growth and "
                               "found-inf tensors: no per-parameter buffer beyond bf16-mixed "
                               "(torch/amp/grad_scaler.py)")
        assumptions.append(f"training step: loss = model(input_ids, labels=input_ids).loss; backward; "
                           f"{workload.optimizer.name}.step(); zero_grad(set_to_none=True); steady state (step >= 2)")
        assumptions.extend(_scan_notes(arch))
        if plan.quantization in ("nf4", "fp4"):
            assumptions.append("QLoRA: bitsandbytes 4-bit base " + (
                "with double quantization (absmax 8-bit per 64 weights)" if workload.double_quant
                else "without double quantization (fp32 absmax per 64 weights)")
                + ("; its matmul keeps its input for backward (bitsandbytes < 0.43.2)"
                   if workload.quantized_saves_input else ""))
        if plan.unreached_params:
            parts = ", ".join(f"{_INPUT_WORDS.get(k, k)} {n:,}" for k, n in sorted(plan.unreached.items()))
            assumptions.append(
                f"{plan.unreached_params:,} parameters are frozen by absence ({parts}): the step's inputs do not "
                "reach them, so their modules do not run and they get no gradient, and no optimizer state (torch "
                "optimizers create state only for parameters with a gradient); their weights still count")
    act_at_peak = A_layers + head
    # Step 1: no optimizer state until the first optimizer.step() creates it.
    first = max([m.total_bytes - S_opt for m in moments[:-1]] + [moments[-1].total_bytes])
    if load.total_bytes > max(m.total_bytes for m in moments) and detail:
        assumptions.append(f"the peak is at load ({load.components['transient'] / 2**30:.2f} GiB of load-time "
                           "tensors over the weights); the caching allocator keeps it reserved for the run")
    result = _finish([load, *moments], terms, workload, assumptions, activation_bytes_at_peak=act_at_peak,
                     host_offload_bytes=host, detail=detail)
    return dataclasses.replace(result, first_step_allocated_bytes=max(first, load.total_bytes))


def _expert_stacks(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload,
                   layers_here: int) -> tuple[int, int, int]:
    """(saved by every MoE layer, one layer's stacks, what a layer's backward adds above them) in bytes for LoRA on fused
    expert parameters (:func:`~hf_gpu_estimator.memory.weights.peft_expert_targets`): peft's parametrization
    rebuilds each targeted stack as ``W + B A`` in W's dtype at every forward, the experts' matmuls keep it for
    backward, and backward forms its full gradient before reducing it onto ``A`` and ``B``."""
    targets = peft_expert_targets(spec, workload)
    if targets is None or not targets.stack_elements:
        return 0, 0, 0
    dtype = plan.weight_dtype
    if workload.method == "qlora" and bnb_keeps_experts(spec, workload.with_(quantization=plan.quantization)) \
            and workload.kbit_fp32_casts:
        dtype = "float32"  # prepare_model_for_kbit_training casts the unquantized experts to fp32
    b = BYTES[dtype]
    layer = targets.stack_elements * b
    # Backward meets the stacks in reverse forward order (down_proj, then gate_up_proj); each one's gradient sits
    # beside the stacks not yet done, and a stack is freed once its factors' gradients are taken from it.
    alive, above = layer, 0
    for lin in reversed([x for x in arch.linears if x.count > 1 and x.name in targets.params]):
        stack = lin.count * lin.in_features * lin.out_features * b
        above = max(above, alive + stack - layer)
        alive -= stack
    moe_here = targets.moe_layers * layers_here // max(1, arch.num_layers)
    return layer * moe_here, layer, above


def _fsdp_gathered_bytes(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload,
                         recipe_weights: int) -> int:
    """Unsharded parameters FSDP (FULL_SHARD, one unit per decoder layer) holds during forward and backward,
    beside the shards: the unit running and the next one (``BackwardPrefetch.BACKWARD_PRE``, accelerate's
    default), and the root unit (embeddings, final norm, head), which torch FSDP1 does not reshard after forward
    ("do not free the root's parameters in the post-forward", torch/distributed/fsdp/_runtime_utils.py). With
    CPU offload of parameters the same units are gathered onto the GPU (one GPU included); DeepSpeed ZeRO-3 with
    its parameters offloaded is estimated with the same two units (its prefetch and live-parameter buckets are
    not modelled). DeepSpeed ZeRO-3 with its parameters on the GPU holds one decoder layer and the output head
    gathered (a parameter stays gathered while it is used again within ``stage3_max_reuse_distance``, default
    1e9 elements, DeepSpeed 0.14 partitioned_param_coordinator.py ``__params_to_release``; its prefetch bucket
    counts only when its size is given, memory/zero.py).

    Under a mixed precision the units are gathered in the compute dtype: accelerate's
    ``FullyShardedDataParallelPlugin.set_mixed_precision`` (v1.0.1) and Lightning's ``FSDPPrecision`` pass
    ``MixedPrecision(param_dtype=bf16)`` for bf16 mixed precision, and torch FSDP1 allocates the unsharded
    ``_full_param_padded`` in that dtype (``_flat_param.py``); DeepSpeed's bf16 mode holds its parameters in bf16.
    A bitsandbytes 4-bit weight is gathered as its packed data (its quant state is not a parameter)."""
    p = workload.parallelism
    offloaded = p.offload_params and p.strategy in ("fsdp", "zero3")
    if p.strategy not in ("fsdp", "fsdp-hybrid", "zero3") or (p.dp < 2 and not offloaded):
        return 0
    counts = spec.parameters.by_role
    float_bytes = BYTES[plan.compute_dtype] if workload.precision.mixed else BYTES[plan.weight_dtype]
    others = plan.total_params - plan.quantized_params
    quantized = plan.weights_bytes - others * BYTES[plan.weight_dtype] - _replicated_quant_state_bytes(plan, workload)
    total = quantized + others * float_bytes + plan.adapter_params * float_bytes
    if not workload.precision.mixed:
        total += recipe_weights
    embeddings = (counts.get("embedding", 0) + counts.get("lm_head", 0)) * float_bytes
    layer_bytes = max(0.0, (total - embeddings) / max(1, arch.num_layers))
    if p.strategy == "zero3" and not offloaded:
        head = counts.get("lm_head", 0) or (counts.get("embedding", 0) if arch.tie_word_embeddings else 0)
        return int(layer_bytes + head * float_bytes)
    root_bytes = embeddings + counts.get("norm", 0) / max(1, arch.num_layers) * float_bytes
    return int(_fsdp_layer_units(workload) * max(0.0, (total - root_bytes) / max(1, arch.num_layers)) + root_bytes)


def _fsdp_layer_units(workload: Workload) -> int:
    """Decoder-layer units FSDP holds unsharded at once: the running one and the one ``BACKWARD_PRE`` prefetches,
    the unit before it in post-forward order (torch FSDP1 ``_exec_order_utils.get_handle_to_backward_prefetch``,
    read in torch 2.13). With LoRA under transformers' Trainer, peft's ``fsdp_auto_wrap_policy`` (applied by
    ``Trainer._fsdp_qlora_plugin_updates``, and by peft's examples/sft/train.py) wraps every trainable leaf (each
    ``lora_A``/``lora_B`` Linear) in a unit of its own: those run inside the layer, so the unit before a layer in
    post-forward order is its own last LoRA unit, and the previous layer is not prefetched."""
    if workload.method in ("lora", "qlora") and workload.framework in _TRANSFORMERS_TRAINER \
            and workload.parallelism.strategy in ("fsdp", "fsdp-hybrid"):
        return 1
    return 2


def _fsdp_holds_checkpoint_inputs(workload: Workload) -> bool:
    """Whether FSDP1 keeps every checkpointed layer's input and input gradient until the backward ends: frozen
    decoder-layer units (LoRA under peft's ``fsdp_auto_wrap_policy``, :func:`_fsdp_layer_units`) with
    transformers' reentrant checkpointing around each unit (see the comment in ``_training``)."""
    return (_fsdp_layer_units(workload) == 1 and workload.gradient_checkpointing and workload.use_reentrant
            and workload.parallelism.dp > 1)


#: Frameworks that load with transformers' ``from_pretrained`` and train with its Trainer (accelerate's FSDP
#: plugin); torchtune quantizes with torchao's NF4Tensor, whose scalers FSDP2 shards with the data, and LitGPT
#: wraps its own blocks with Fabric.
_TRANSFORMERS_TRAINER = frozenset({"hf", "trl", "axolotl", "llama-factory", "unsloth"})


def _replicated_quant_state_bytes(plan: WeightPlan, workload: Workload) -> int:
    """Bytes of the bitsandbytes 4-bit quant state (absmax per 64 weights, nested constants) that every GPU holds
    whole when FSDP or ZeRO-3 shards (or offloads) the weights: transformers (4.40 - 4.5x,
    ``modeling_utils._load_state_dict_into_meta_model``) quantizes each weight on the GPU and then moves only
    ``Params4bit.data`` to the CPU or the meta device ("we need to quantize the parameter on the GPU and then cast
    it to CPU"), keeping ``quant_state`` in the parameter's ``__dict__`` on the GPU; FSDP flattens and DeepSpeed
    partitions parameters only. Measured: fms-acceleration's 2-GPU QLoRA FSDP runs (refs/a100_80gb.csv at 24bdadb,
    mem_torch_mem_alloc_in_bytes, allocated when training ends) hold 17.94 GiB (Llama-2-70B), 11.86 GiB (Mixtral)
    and 2.09 GiB (Mistral-7B): weights, LoRA states and workspace come to 17.86, 11.88 and 2.11 GiB with the state
    whole (17.35, 11.54 and 2.06 with it sharded)."""
    if plan.quantization not in ("nf4", "fp4") or workload.framework not in _TRANSFORMERS_TRAINER \
            or workload.parallelism.strategy not in ("fsdp", "fsdp-hybrid", "zero3"):
        return 0
    return int(plan.quantized_params * (plan.quantized_bits - 4) / 8)


def _load_moment(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload, weights: int) -> Moment:
    """The model on the device after loading, with the largest tensor the load path holds beside it.

    * A QLoRA base quantized at load (transformers' bitsandbytes integration, ``Params4bit`` moved to the
      device): each linear weight arrives in 16 bits and is quantized on the GPU, one at a time.
    * The k-bit recipe's fp32 casts (``param.data = param.data.to(float32)``): the largest non-quantized
      tensor (the embedding) exists in 16 and 32 bits while it is cast.
    Other loads (transformers 5 materializes each parameter in place) add nothing beyond the weights.
    """
    transient = 0
    if workload.method == "qlora" and arch.linears:
        transient = max(lin.in_features * lin.out_features for lin in arch.linears) * BYTES[plan.compute_dtype]
    if workload.method == "qlora" and workload.kbit_fp32_casts and BYTES[plan.weight_dtype] < 4:
        transient = max(transient, arch.vocab_size * arch.hidden_size * BYTES[plan.weight_dtype])
    return Moment(phase="load", components={"weights": weights, "transient": transient})


def _recipe_weights(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload) -> tuple[int, list[str]]:
    """Bytes the recipe adds to (or takes from) the planned weights, and what it assumed.

    * The k-bit recipe (peft ``prepare_model_for_kbit_training``, v0.13.0 src/peft/utils/other.py) casts
      every 16-bit parameter that is not ``Params4bit`` to fp32: embeddings, norms, the head.
    * A quantized head (Fabric's BitsandbytesPrecision converts every nn.Linear) stores it at 4 bits.
    """
    notes: list[str] = []
    if workload.method == "full":
        return 0, notes
    wbytes = BYTES[plan.weight_dtype]
    head = spec.parameters.by_role.get("lm_head", 0)
    extra = 0
    if arch.tie_word_embeddings and not head and framework_profile(workload.framework).unties_head:
        head = arch.vocab_size * arch.hidden_size
        extra += head * wbytes
        notes.append(f"{workload.framework}: the output head is a copy of the tied embeddings ({head:,} params)")
    if workload.method != "qlora":
        return extra, notes
    if workload.quantize_lm_head and head:
        extra -= int(head * (wbytes - plan.quantized_bits / 8))
        notes.append(f"{workload.framework}: the output head is a 4-bit layer too ({head:,} params)")
    if workload.kbit_fp32_casts and wbytes < 4:
        rest = plan.total_params - plan.quantized_params - (head if workload.quantize_lm_head else 0)
        extra += rest * (4 - wbytes)
        notes.append(f"prepare_model_for_kbit_training: {rest:,} non-4-bit params (embeddings, norms, head) cast to "
                     "fp32")
    return extra, notes


#: How an assumption names the parameters each input reaches (ParameterCounts.off_text_path keys).
_INPUT_WORDS = {"vision": "vision tower and projector, no images given", "audio": "audio tower and projector, "
                "no audio given", "cross_attention": "cross-attention without the states it reads"}


def _optimizer_bytes(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload) -> tuple[int, str, int]:
    """(state bytes, formula, step temporaries) for the trainable parameters, whole model."""
    opt = workload.optimizer
    n = plan.updated_params
    tb = plan.trainable_bytes_per_param
    if opt.factored:
        # Adafactor: row and column second moments for each matrix, full for vectors.
        matrices = _matrix_shapes(spec, arch, plan, workload)
        factored = sum(rows + cols for rows, cols in matrices)
        vectors = max(0, n - sum(rows * cols for rows, cols in matrices))
        nbytes = (factored + vectors) * tb
        largest = max((rows * cols for rows, cols in matrices), default=0)
        return nbytes, f"Adafactor: rows + cols per matrix + vectors, x {tb} B", 3 * largest * 4
    if opt.state_bytes_per_param is not None:
        nbytes = int(n * opt.state_bytes_per_param)
        return nbytes, f"{n:,} x {opt.state_bytes_per_param:.3f} B ({opt.source})", \
            _per_parameter_step_bytes(spec, arch, plan, workload)
    nbytes = int(n * opt.state_tensors * tb)
    temp = int(n * tb * opt.foreach_intermediates)
    return nbytes, f"{n:,} x {opt.state_tensors:g} states x {tb} B ({opt.source})", temp


def _per_parameter_step_bytes(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload) -> int:
    """Temporaries of an optimizer that steps one parameter at a time: its bytes per element of the largest."""
    per_element = workload.optimizer.step_bytes_per_element
    if not per_element:
        return 0
    largest = max((rows * cols for rows, cols in _matrix_shapes(spec, arch, plan, workload)), default=0)
    return int(per_element * largest)


def _matrix_shapes(spec: ModelSpec, arch: Architecture, plan: WeightPlan, workload: Workload) -> list[tuple[int, int]]:
    if workload.method != "full":
        shapes = []
        targets = lora_module_targets(arch, workload)
        for lin in arch.linears:
            if lin.count == 1 and ("all-linear" in targets or lin.name in targets):
                shapes += [(workload.lora_rank, lin.in_features), (lin.out_features, workload.lora_rank)] \
                    * layers_holding(arch, lin)
        return shapes
    shapes = [(lin.out_features, lin.in_features) for lin in arch.linears
              for _ in range(lin.count * layers_holding(arch, lin))]
    shapes.append((arch.vocab_size, arch.hidden_size))
    if not arch.tie_word_embeddings:
        shapes.append((arch.vocab_size, arch.hidden_size))
    return shapes
