"""Memory as llama.cpp allocates it: model buffers per device, the KV cache, the compute buffer.

Pure arithmetic on a ModelSpec. What llama.cpp does (ggml-org/llama.cpp, src/llama-model.cpp
load_tensors, src/llama-kv-cache.cpp, src/llama-context.cpp):

* ``-ngl N`` offloads the last N of the ``n_layer + 1`` layers, the output layer (output_norm,
  output.weight) counting as the top one: ``i_gpu_start = max(n_layer + 1 - N, 0)``. The input
  layer (token_embd) always stays in host memory. A model without output.weight reads the
  embedding matrix again as its output (TENSOR_DUPLICATED), so that copy sits with the output layer.
* The KV cache holds ``n_ctx`` cells (padded to 256) for every layer, K of ``n_head_kv * head_dim``
  values in ``-ctk``'s type and V in ``-ctv``'s (f16 by default; ggml's block sizes, ggml/src/ggml.c
  type_traits: q8_0 34, q5_1 24, q5_0 22, q4_1 20, q4_0 and iq4_nl 18 bytes per 32 values); a layer's
  cache lives with the layer. A quantized V cache needs flash attention (src/llama-context.cpp:
  "V cache quantization requires flash_attn"); a quantized K cache does not. Sliding-window layers
  keep ``min(n_ctx, n_swa * n_seq + n_ubatch)`` cells. MLA (deepseek2) caches the compressed latent.
* The compute buffer is reserved for the worst micro-batch (``n_ubatch`` = 512 tokens, all output):
  the logits ``n_ubatch x n_vocab`` f32 and the normalized hidden state it is computed from, a layer's
  working set with the attention masks, or, without flash attention, the ``n_ubatch x n_kv x n_head`` f32
  attention scores of the first layer above the blocks ggml-alloc placed before them (:func:`score_values`),
  whichever is largest.
  A layer left in host memory (``-ngl`` below the layer count, ``--n-cpu-moe``, ``-ot ...=CPU``) still runs
  its matrix products on the GPU for a micro-batch of 32 tokens or more, with its weights and KV cache copied
  into the compute buffer one at a time (:func:`staged_copy_bytes`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import LLAMACPP_CACHE_TYPES
from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError
from hf_gpu_estimator.quantization import GGUF_TYPES, GGUFTensor, gguf_layout, gguf_tensor_types, mix_model
from hf_gpu_estimator.spec import ModelSpec

if TYPE_CHECKING:
    from hf_gpu_estimator.memory.terms import MemoryEstimate
    from hf_gpu_estimator.spec import Architecture, VisionTower
    from hf_gpu_estimator.workload import Workload

#: -ctk/-ctv types (common/arg.cpp kv_cache_types) -> ggml type names.
KV_TYPES = {name: name.upper() for name in LLAMACPP_CACHE_TYPES}
#: llama_context_default_params: n_ubatch 512; the KV cache size is padded to 256 cells.
N_UBATCH = 512
KV_PAD = 256
#: ggml-cuda ``ggml_backend_cuda_device_offload_op``: an op whose weight is in host memory runs on the GPU once its
#: batch (``ggml_nrows``, ``ne[1]`` of a MUL_MAT, ``ne[2]`` of a MUL_MAT_ID) reaches 32 rows; GET_ROWS never does.
#: The HIP build (ROCm) is the same code.
OFFLOAD_MIN_BATCH = 32


@dataclass(frozen=True, kw_only=True)
class LlamaCppMemory:
    """llama.cpp's buffers for one model and context, in bytes."""

    weights_gpu: int
    weights_host: int
    kv_gpu: int
    kv_host: int
    compute_buffer: int  # on the GPU
    n_gpu_layers: int  # of n_layer + 1
    n_layer: int
    kv_cells: int
    kv_type: str
    flash_attention: bool
    formula: str

    @property
    def kv(self) -> int:
        return self.kv_gpu + self.kv_host

    @property
    def total(self) -> int:
        """GPU bytes: model buffer + KV buffer + compute buffer."""
        return self.weights_gpu + self.kv_gpu + self.compute_buffer


def gguf_tensors_of(spec: ModelSpec, quantization: str | None) -> tuple[GGUFTensor, ...]:
    """The spec's GGUF tensors; for a transformers model, the tensors ``llama-quantize`` would write."""
    own = getattr(spec, "gguf_tensors", ())
    if own and (quantization is None or quantization == "none"):
        return tuple(own)
    if quantization is None or not quantization.startswith("gguf:"):
        raise InvalidArgumentError("quantization", quantization, "gguf:<TYPE> for a model that is not a GGUF file")
    if own:
        layout = [(t.name, t.shape) for t in own]
    else:
        layout = gguf_layout(spec)
    arch = spec.architecture
    if arch is None:
        raise ConflictingOptionsError("quantization", quantization, f"needs the layer shapes of {spec.id!r}",
                                      fix="inspect a model with a config.json")
    types = gguf_tensor_types(quantization.split(":", 1)[1], layout, mix_model(spec))
    return tuple(GGUFTensor(name=n, shape=s, type=t) for (n, s), t in zip(layout, types))


def llamacpp_memory(spec: ModelSpec, *, n_ctx: int, n_parallel: int = 1, n_gpu_layers: int | None = None,
                    kv_type: str = "f16", quantization: str | None = None, flash_attention: bool = True,
                    n_ubatch: int = N_UBATCH, n_cpu_moe: int = 0, kv_type_v: str | None = None,
                    override_tensors: tuple[TensorOverride, ...] = (), n_outputs: int | None = None) -> LlamaCppMemory:
    """llama.cpp's device and host buffers for ``spec`` served with ``-c n_ctx -np n_parallel -ngl N -ctk/-ctv``.

    Args:
        n_ctx: total context (``-c``), shared by the ``n_parallel`` slots.
        n_gpu_layers: ``-ngl``; ``None`` offloads everything (``n_layer + 1`` with the output layer).
        kv_type: ``-ctk``: f16 (default), q8_0, q4_0 ... (and ``-ctv`` unless ``kv_type_v`` is given).
        kv_type_v: ``-ctv``; ``None``: ``kv_type``.
        quantization: ``gguf:<TYPE>`` to size a transformers model as ``llama-quantize`` would write it.
        flash_attention: ``-fa`` (llama.cpp's default ``auto`` turns it on where the backend supports it).
        n_cpu_moe: ``--n-cpu-moe N``: the routed experts of the first N layers stay in host memory (common/arg.cpp
            adds a CPU buffer override for ``blk.<i>.ffn_(up|down|gate|gate_up)_(ch|)exps`` per layer; ``--cpu-moe``
            is every layer).
        override_tensors: ``-ot PATTERN=BUFFER,...`` (:func:`parse_override_tensors`): the first pattern that a
            tensor's name matches (``std::regex_search``) puts it in that buffer, ahead of the layer's own
            device; the ``--n-cpu-moe`` patterns come after them, as llama.cpp appends each flag's overrides
            in turn (the -ot flags first here, as the launch line writes them).
        n_outputs: the logits rows the worst-case graph is reserved with: ``None`` for ``n_ubatch`` (every
            token of the micro-batch, ``graph_reserve(n_tokens, n_seqs, n_tokens)`` in llama.cpp releases
            before PR #23861 and in tools that ask for every logit); llama-server from PR #23861 ("llama: limit
            max outputs of llama_context", merged 2026-05-29) reserves one row per sequence (``-np``).
    """
    arch = spec.architecture
    if arch is None:
        raise ConflictingOptionsError("model", spec.id, "has no layer dimensions in its GGUF metadata",
                                      fix="use a GGUF of a supported architecture")
    for name, value in (("n_ctx", n_ctx), ("n_parallel", n_parallel), ("n_ubatch", n_ubatch)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InvalidArgumentError(name, value, "an integer >= 1")
    key = kv_cache_type("cache_type_k", kv_type)
    key_v = kv_cache_type("cache_type_v", kv_type_v) if kv_type_v is not None else key
    kv, kv_v = GGUF_TYPES[KV_TYPES[key]], GGUF_TYPES[KV_TYPES[key_v]]
    label = key if key_v == key else f"{key}/{key_v}"
    n_layer = arch.num_layers
    if n_gpu_layers is None:
        n_gpu_layers = n_layer + 1
    if isinstance(n_gpu_layers, bool) or not isinstance(n_gpu_layers, int) or n_gpu_layers < 0:
        raise InvalidArgumentError("gpu_layers", n_gpu_layers, "an integer >= 0")
    ngl = min(n_gpu_layers, n_layer + 1)
    first_gpu = n_layer + 1 - ngl

    def on_gpu(layer: int) -> bool:
        return layer >= first_gpu

    if isinstance(n_cpu_moe, bool) or not isinstance(n_cpu_moe, int) or n_cpu_moe < 0:
        raise InvalidArgumentError("n_cpu_moe", n_cpu_moe, "an integer >= 0 (llama.cpp --n-cpu-moe)")

    tensors = gguf_tensors_of(spec, quantization)
    weights_gpu = weights_host = 0
    names = {t.name for t in tensors}
    host_weights: dict[int, list[GGUFTensor]] = {}  # per block, the matrices left in host memory
    for t in tensors:
        if t.name.startswith("token_embd"):
            layer = -1  # the input layer: always host
        elif t.layer is not None:
            layer = t.layer
        elif t.name.startswith("output") or t.name.startswith("blk."):
            layer = n_layer
        else:
            layer = -1
        override = next((o for o in override_tensors if o.regex.search(t.name)), None)
        if override is not None:
            gpu_tensor = not override.host
        elif layer < n_cpu_moe and _EXPERTS.search(t.name) is not None:
            gpu_tensor = False
        else:
            gpu_tensor = layer >= 0 and on_gpu(layer)
        if gpu_tensor:
            weights_gpu += t.nbytes
        else:
            weights_host += t.nbytes
            if t.layer is not None and len(t.shape) >= 2:
                host_weights.setdefault(t.layer, []).append(t)
    if "output.weight" not in names:
        embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
        if embd is not None:
            weights_gpu += embd.nbytes if on_gpu(n_layer) else 0
            weights_host += embd.nbytes if not on_gpu(n_layer) else 0

    cells = -(-n_ctx // KV_PAD) * KV_PAD
    tokens = min(n_ubatch, n_ctx)
    kv_gpu = kv_host = 0
    kv_host_layer: dict[int, int] = {}
    sliding = set(i for i, t in enumerate(arch.layer_types) if t == "sliding_attention")
    for layer in range(n_layer):
        n = cells
        if layer in sliding and arch.sliding_window:
            n = min(cells, -(-(arch.sliding_window * n_parallel + n_ubatch) // KV_PAD) * KV_PAD)
        if arch.is_mla:
            k_row = (arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0)
            v_row = arch.kv_lora_rank or 0
        else:
            k_row = arch.num_key_value_heads * arch.head_dim
            v_row = arch.num_key_value_heads * (arch.v_head_dim or arch.head_dim)
        for name, t, row in (("cache_type_k", kv, k_row), ("cache_type_v", kv_v, v_row)):
            if row % t.block_size:
                raise ConflictingOptionsError(name, t.name.lower(), f"needs cache rows divisible by {t.block_size} "
                                              f"({spec.id}: {row})", fix="use f16")
        nbytes = n * (kv.row_bytes(k_row) + kv_v.row_bytes(v_row))
        if on_gpu(layer):
            kv_gpu += nbytes
        else:
            kv_host += nbytes
            kv_host_layer[layer] = nbytes

    compute = staged = 0
    outputs = tokens if n_outputs is None else max(1, min(n_outputs, tokens))
    # -ngl 0 still computes on the GPU for a micro-batch of OFFLOAD_MIN_BATCH tokens or more (op offload; logs:
    # ROCm/ROCm issue #5104, Qwen3-14B Q8_0 "offloaded 0/41 layers", "ROCm0 compute buffer size = 1094.99 MiB")
    if ngl > 0 or tokens >= OFFLOAD_MIN_BATCH:
        logits = outputs * (arch.vocab_size + arch.hidden_size) * 4
        heads = arch.num_attention_heads
        swa_cells = min(cells, -(-((arch.sliding_window or 0) * n_parallel + n_ubatch) // KV_PAD) * KV_PAD)
        masks = mask_bytes(arch, tokens, cells, swa_cells, flash_attention)
        scores = 0 if flash_attention else tokens * 4 * score_values(arch, cells, fused_qkv(tensors)) + masks
        layers = tokens * 4 * layer_peak_values(arch) + masks
        staged = staged_copy_bytes(arch, host_weights, kv_host_layer) if tokens >= OFFLOAD_MIN_BATCH else 0
        # the output layer in host memory (-ngl 0): its matrix is staged beside the logits when the output
        # product has OFFLOAD_MIN_BATCH rows or more (its batch is the output rows)
        head = 0
        if not on_gpu(n_layer) and outputs >= OFFLOAD_MIN_BATCH:
            head = next((t.nbytes for t in tensors if t.name == "output.weight"), 0) or next(
                (t.nbytes for t in tensors if t.name == "token_embd.weight"), 0)
        compute = max(logits + head, max(scores, layers) + staged)
        staged = max(staged, head)
    formula = (f"-ngl {ngl}/{n_layer + 1} (token_embd on host), KV {cells} cells x {n_layer} layers in {label}, "
               f"compute buffer for a {tokens}-token micro-batch: the largest of the logits of {outputs} output "
               "row(s), the layers' working set with the attention masks"
               + ("" if flash_attention else ", the attention scores")
               + (f", beside {staged:,} B of host layers' weights / KV cache staged on the GPU" if staged else ""))
    return LlamaCppMemory(weights_gpu=weights_gpu, weights_host=weights_host, kv_gpu=kv_gpu, kv_host=kv_host,
                          compute_buffer=compute, n_gpu_layers=ngl, n_layer=n_layer, kv_cells=cells, kv_type=label,
                          flash_attention=flash_attention, formula=formula)  # fmt: skip


def staged_copy_bytes(arch: Architecture, host_weights: dict[int, list[GGUFTensor]],
                      kv_host_layer: dict[int, int]) -> int:
    """The bytes a host-resident layer stages in the GPU's compute buffer at partial offload (or with experts kept
    in host memory), the largest over the host layers.

    What llama.cpp does (ggml/src/ggml-backend.cpp ``ggml_backend_sched``, op offload on by default): an op whose
    weight sits in a host buffer is assigned to the GPU when the backend's ``offload_op`` accepts it
    (:data:`OFFLOAD_MIN_BATCH`), and the ops around it follow it there; the scheduler copies every input held by
    another backend into the GPU's compute buffer at the start of the split that reads it, and starts a new split
    at each op whose weight is elsewhere ("by starting a new split, the memory of the previously offloaded weights
    can be reused"). So one layer's copies are staged one at a time in graph order: the attention input
    projections, the layer's whole K and V cache (the views FLASH_ATTN_EXT / the KQ product read, ``n_kv`` cells
    in the cache type), the attention output projection, then the FFN matrices (routed experts whole: MUL_MAT_ID
    takes the full expert tensor).

    ggml-alloc places each copy best-fit in a freed block. A gated FFN (and a MoE layer) frees its gate and up
    activations before the down projection's copy is needed, so every copy finds a hole and only the largest one
    stays on top of the working set; a plain MLP (GPT-NeoX, Falcon, StarCoder2) keeps its up activation alive
    until the down projection, so each copy larger than every earlier one of the layer is placed past them all
    and they add up. This reading of the allocator is checked against gpustack/gguf-parser-go's measured
    partial-offload buffers (``benchmarks/llamacpp_compute_buffers.py``), not derived node by node.
    """

    def rank(t: GGUFTensor) -> int:
        name = t.name.split(".", 2)[-1]
        if name.startswith("attn_output"):
            return 2
        if name.startswith("attn_"):
            return 0
        if name.startswith("ffn_down"):
            return 4
        return 3

    layers = arch.layers
    worst = 0
    for layer in set(host_weights) | set(kv_host_layer):
        items = [(rank(t), t.name, t.nbytes) for t in host_weights.get(layer, ())]
        if kv_host_layer.get(layer):
            items.append((1, "", kv_host_layer[layer]))
        sizes = [n for _, _, n in sorted(items)]
        ffn = layers[layer].ffn if layer < len(layers) else None
        if ffn is None or ffn.kind == "moe" or ffn.gated:
            staged = max(sizes, default=0)
        else:
            staged = top = 0
            for n in sizes:
                if n > top:
                    staged, top = staged + n, n
        worst = max(worst, staged)
    return worst


def layer_peak_values(arch: Architecture) -> int:
    """Values per token of the micro-batch that one decoder layer holds at its peak in ggml's graph allocator
    (ggml-alloc frees a tensor after its last use and computes norms, activations and rope in place), the
    largest over the layers: the residual stream (``hidden``) beside

    * attention (src/llama-graph.cpp ``build_attn`` with flash attention): q, k and v, then the attention
      output (``heads x v_head_dim``) beside them, or the normalized input while q, k and v are computed;
    * a gated FFN (``build_ffn``, ``LLM_FFN_PAR``): up, gate and their GLU product (3 x intermediate);
      a plain one: up, its activation computed in place, beside the normalized input or the down
      projection's output (intermediate + hidden);
    * routed experts (``build_moe_ffn``, which runs the ``top_k`` experts ``ggml_top_k`` picks for each token
      through ``ggml_mul_mat_id``, llama4 included): up, gate and their product (3 x intermediate x top_k), or
      that product beside the experts' outputs and their router-weighted copy (2 x hidden x top_k); shared
      experts as a gated FFN beside the routed result;
    * with parallel attention (falcon, GPT-NeoX, phi-2: attention and FFN read the same input), the attention
      output held while the FFN runs (+ hidden).

    Recurrent mixers (Mamba, RWKV, linear attention) are sized by their projections only (their scan's
    temporaries are not modelled). Qwen3-VL's deepstack input adds ``hidden`` per deepstack layer.
    """
    hidden = arch.hidden_size
    peak = 0
    for layer in arch.layers:
        m, f = layer.mixer, layer.ffn
        if m.kind in ("full", "sliding", "chunked", "cross"):
            q, kv = m.heads * m.head_dim, m.kv_heads * m.head_dim
            v = m.kv_heads * m.value_dim
            out = m.heads * m.value_dim
            attn = q + kv + v + max(hidden, out)
        elif m.kind == "mla":
            q = m.heads * (m.head_dim or 0)
            attn = q + m.kv_lora_rank + m.rope_dim + max(hidden, m.heads * m.value_dim)
        else:
            attn = hidden + 2 * (m.inner or hidden)
        if f.kind == "moe":
            routed = f.intermediate * f.top_k
            ffn = max(3 * routed, routed + 2 * hidden * f.top_k)
            if f.shared:
                ffn = max(ffn, hidden + 3 * f.shared)
        elif f.kind == "dense":
            ffn = 3 * f.intermediate if f.gated else f.intermediate + hidden
        else:
            ffn = 0
        if arch.parallel_attention:
            ffn += hidden
        peak = max(peak, hidden + max(attn, ffn))
    # Qwen3-VL: build_inp_embd (src/llama-graph.cpp) makes the input n_embd_inp = hidden x (1 + deepstack) wide
    # and the first layers add its deepstack slices, so the extra rows are alive at the early layers' peak
    return peak + hidden * arch.deepstack_layers


def score_values(arch: Architecture, cells: int, fused: bool) -> int:
    """Values per token of the micro-batch in the compute buffer at the attention scores of the first layer,
    without flash attention, the masks aside.

    What llama.cpp does (src/llama.cpp ``llm_build_kqv`` at b4418-b4897, src/llama-graph.cpp ``build_attn_mha``
    since; ggml/src/ggml-alloc.c ``ggml_gallocr``/``ggml_dyn_tallocr``; ggml/src/ggml-backend.cpp
    ``ggml_backend_sched``): the scores ``kq = k x q`` are f32 ``n_kv x n_tokens x n_head``, the softmax runs in
    place, and ``v x kq`` (the attention output) fits a block freed earlier. ggml-alloc places a block no free
    hole fits at the top of the buffer, above every block still alive, so the scores of the first layer sit above:

    * the token embeddings, copied from the host ``get_rows`` into the GPU's buffer at the start of the split
      (``hidden``; the scheduler's copy of a split input), with the positions and the masks;
    * the normalized layer input (``hidden``), alive until the last q/k/v projection reads it;
    * the q projection (``heads x head_dim``), freed once rope has written the rotated q beside it (rope on a
      reshaped view does not run in place in ggml-alloc), or, with a fused ``attn_qkv`` (GPT-NeoX, Phi-3),
      the whole q/k/v product (``q + 2 x kv``), freed after its three copies; k and v fit that hole;
    * the rotated q (``heads x head_dim``), which the scores read.

    Later layers find the embeddings' block free, so the first layer's scores are the largest. Checked against
    llama.cpp's logs of b4418-b4897 and of llama-cpp-python and ollama builds of 2024-2025
    (``benchmarks/llamacpp_fa_off.py``). Later builds' ``build_attn`` (src/llama-graph.cpp) expands q, then v,
    then k (for rope fusion), and builds the same non-flash ops in ``build_attn_mha``: k and v are freed at the
    cache stores before the scores, so the stack below them is the same (unverified against a log of theirs)."""
    q = arch.num_attention_heads * arch.head_dim
    kv = arch.num_key_value_heads * arch.head_dim
    proj = q + 2 * kv if fused else q
    return cells * arch.num_attention_heads + 2 * arch.hidden_size + proj + q


def fused_qkv(tensors: tuple[GGUFTensor, ...]) -> bool:
    """Whether the layers project q, k and v with one ``attn_qkv`` matrix (GPT-NeoX, Phi-3, Falcon ...)."""
    return any(t.name.endswith(".attn_qkv.weight") for t in tensors)


def mask_bytes(arch: Architecture, tokens: int, cells: int, swa_cells: int, flash_attention: bool) -> int:
    """The attention masks the graph keeps for every layer (src/llama-graph.cpp ``build_attn_inp_kv``): an f32
    ``n_kv x n_tokens`` mask per cache (the sliding-window cache its own, ``n_kv`` its cells) and, with flash
    attention, its f16 copy (``ggml_cast(..., GGML_TYPE_F16)``)."""
    per_value = 4 + (2 if flash_attention else 0)
    kinds = {layer.mixer.kind for layer in arch.layers}
    full = cells if kinds & {"full", "mla", "chunked"} else 0
    swa = swa_cells if "sliding" in kinds else 0
    return (full + swa) * tokens * per_value


#: clip.cpp ``load_hparams``: the warm-up image of the dynamic-resolution encoders, in merged tokens per side
#: (``set_warmup_n_tokens``: 46 x 46 for Qwen2-VL, Qwen2.5-VL and Qwen3-VL, 16 x 16 for Pixtral, "avoid OOM on
#: warmup"); the others warm up at their image_size. The logs agree: 1472 x 1472 for Qwen3-VL (patch 16,
#: ggml-org/llama.cpp#18181), 448 x 448 for Mistral-Small-3.2 (patch 14, ggml-org/llama.cpp#16842).
CLIP_WARMUP_TOKENS_PER_SIDE = {"qwen2.5vl": 46, "qwen3vl": 46, "pixtral": 16}


@dataclass(frozen=True, kw_only=True)
class ClipBuffer:
    """The compute buffer llama.cpp's clip reserves on the GPU for ``--mmproj`` (its warm-up graph)."""

    bytes: int
    image_side: int  # the warm-up image, pixels per side
    positions: int  # the ViT's sequence: patches (+ a class token)
    flash_attention: bool
    formula: str


def clip_compute_buffer(vision: VisionTower, *, flash_attention: bool, out_hidden: int) -> ClipBuffer:
    """The GPU compute buffer of llama.cpp's image encoder: ``clip_model_loader::warmup`` builds the graph of one
    image (:data:`CLIP_WARMUP_TOKENS_PER_SIDE`, else image_size pixels a side) and ``ggml_backend_sched_reserve``
    sizes the buffer from it (``alloc_compute_meta``); llama-server passes its ``-fa`` to the clip
    (``mparams.flash_attn_type``; ``auto`` turns flash attention on where the backend runs it).

    The largest moment of one ViT layer, f32 over ``n`` positions (``A = n x hidden x 4`` bytes), as ggml's
    allocator keeps tensors until their last use (clip.cpp ``build_vit`` / ``build_attn`` / ``build_ffn``):

    * without flash attention, the attention scores ``heads x n^2 x 4`` beside six A-sized tensors (the
      residual, Q, K, V, V made contiguous, the attention output); with it, five (K and V cast to f16);
    * the MLP: up (and gate and their product, for a gated MLP) ``n x intermediate x 4`` each, beside the
      residual, the normalized input and the down projection's output (3 A);
    * Qwen2.5-VL's window-attention mask, an input ``n x n`` f32 kept for every windowed layer, or its f16 copy
      with flash attention (the f32 input is freed once cast); Qwen3-VL's deepstack layers' outputs (A each),
      held to the end because the deepstack mergers hang off the final concatenation and ggml schedules them
      after the last layer;
    * or the projector's output (tokens x the language model's width, deepstack features included) beside
      its inputs, when larger.

    Checked against the buffers llama.cpp logs (docs/serving.md, tests/test_llamacpp_clip.py).
    """
    per_side = CLIP_WARMUP_TOKENS_PER_SIDE.get(vision.projector)
    side = per_side * vision.patch * vision.merge if per_side else vision.image
    patches = (side // vision.patch) ** 2
    n = patches + (1 if vision.class_token else 0)
    a = n * vision.hidden * 4
    if flash_attention:
        attention = 5 * a
    else:
        attention = vision.heads * n * n * 4 + 6 * a
    mlp = (3 if vision.gated else 1) * n * vision.intermediate * 4 + 3 * a
    mask = n * n * (2 if flash_attention else 4) if vision.window_attention else 0
    held = vision.deepstack * a
    tokens = patches // (vision.merge * vision.merge)
    output = 2 * tokens * out_hidden * (1 + vision.deepstack) * 4
    total = max(mask + held + max(attention, mlp), output)
    parts = ["f32 attention scores heads x n^2 + 6 A" if not flash_attention else "5 A (flash attention)",
             f"MLP {'3' if vision.gated else '1'} x n x intermediate + 3 A"]
    extra = (" + window mask n^2" if mask else "") + (f" + {vision.deepstack} deepstack A" if held else "")
    formula = (f"clip warm-up image {side} x {side}: n = {n} positions, A = n x {vision.hidden} x 4 B; "
               f"max({', '.join(parts)}){extra}")
    return ClipBuffer(bytes=total, image_side=side, positions=n, flash_attention=flash_attention, formula=formula)


def cache_types(workload: Workload, cache_type_k: str | None = None,
                cache_type_v: str | None = None) -> tuple[str, str]:
    """``-ctk`` and ``-ctv`` for ``workload``: the ones given, else the workload's ``cache_type_k/v``, else its
    ``kv_cache_dtype`` (both), else f16 (llama.cpp's default)."""
    base = kv_cache_type("kv_cache_dtype", workload.kv_cache_dtype or "f16")
    k = cache_type_k if cache_type_k is not None else workload.cache_type_k
    v = cache_type_v if cache_type_v is not None else workload.cache_type_v
    return (kv_cache_type("cache_type_k", k) if k is not None else base,
            kv_cache_type("cache_type_v", v) if v is not None else base)


def served_memory(spec: ModelSpec, workload: Workload, *, n_ctx: int, n_parallel: int, n_gpu_layers: int | None,
                  quantization: str | None, runtime: str = "cuda", flash_attn: str = "auto", n_cpu_moe: int = 0,
                  override_tensors: tuple[TensorOverride, ...] = (), cache_type_k: str | None = None,
                  cache_type_v: str | None = None) -> tuple[LlamaCppMemory, str]:
    """llama.cpp's buffers as ``hfge estimate`` and ``hfge plan`` both size them: the K/V cache types
    (:func:`cache_types`), ``-fa`` as llama.cpp decides it for the backend (:func:`flash_attention_on`), the
    quantized-V check, then :func:`llamacpp_memory` with one logits row per slot reserved, as llama-server
    does from llama.cpp PR #23861 (gguf-parser-go's measured sweep: ``benchmarks/llamacpp_compute_buffers.py``).
    Returns the buffers and the line that says how ``-fa`` was decided."""
    kv_k, kv_v = cache_types(workload, cache_type_k, cache_type_v)
    fa, fa_note = flash_attention_on(spec, mode=flash_attn, runtime=runtime, kv_type_k=kv_k, kv_type_v=kv_v)
    check_v_cache(fa, kv_v, fa_note)
    m = llamacpp_memory(spec, n_ctx=n_ctx, n_parallel=n_parallel, n_gpu_layers=n_gpu_layers, kv_type=kv_k,
                        quantization=quantization, flash_attention=fa, n_cpu_moe=n_cpu_moe, kv_type_v=kv_v,
                        override_tensors=override_tensors, n_outputs=n_parallel)
    return m, fa_note


def kv_cache_type(field: str, value: str) -> str:
    """A ``-ctk``/``-ctv`` name (common/arg.cpp kv_cache_types), lower-cased; torch's 16/32-bit names accepted."""
    key = _TORCH_KV.get(str(value), str(value)).strip().lower()
    if key not in KV_TYPES:
        raise InvalidArgumentError(field, value, ", ".join(KV_TYPES))
    return key


def check_v_cache(flash_attention: bool, kv_type_v: str, fa_note: str) -> None:
    """llama.cpp refuses a quantized V cache without flash attention (src/llama-context.cpp: "V cache
    quantization requires flash_attn"); a quantized K cache runs either way."""
    if not flash_attention and kv_type_v not in ("f16", "bf16", "f32"):
        raise ConflictingOptionsError("cache_type_v", kv_type_v, "needs flash attention in llama.cpp (a quantized V "
                                      f"cache); {fa_note}", fix="pass -fa on, or an f16 V cache (-ctv f16)")


#: The routed-expert tensors --cpu-moe / --n-cpu-moe keep in host memory (common/common.h LLM_FFN_EXPS_REGEX).
_EXPERTS = re.compile(r"\.ffn_(up|down|gate|gate_up)_(ch|)exps")

#: ``-ot`` buffer type names (common/arg.cpp ``--override-tensor`` looks the name up among the buffer types of
#: the devices llama.cpp loaded: ``CPU``, ``CUDA0``, ``ROCm0``, ``Vulkan0``, ``Metal``, ``SYCL0`` ..., and a
#: device's pinned host buffer ``CUDA_Host``); a host buffer keeps the tensor in host memory.
_BUFFER_TYPE = re.compile(
    r"^(?:(?P<host>CPU(?:_\w+)?|\w+_Host)|(?:CUDA|ROCm|Vulkan|SYCL|MUSA|CANN|OpenCL|RPC)\w*|Metal|BLAS)$",
    re.IGNORECASE)


@dataclass(frozen=True, kw_only=True)
class TensorOverride:
    """One ``-ot PATTERN=BUFFER`` entry: tensors whose name matches ``pattern`` go to ``buffer``."""

    pattern: str
    buffer: str

    @property
    def regex(self) -> re.Pattern[str]:
        return re.compile(self.pattern)

    @property
    def host(self) -> bool:
        match = _BUFFER_TYPE.match(self.buffer)
        return bool(match and match.group("host"))

    def __str__(self) -> str:
        return f"{self.pattern}={self.buffer}"


def parse_override_tensors(values: str | tuple[str, ...] | list[str] | None) -> tuple[TensorOverride, ...]:
    """``-ot`` values (each ``PATTERN=BUFFER[,PATTERN=BUFFER...]``, common/arg.cpp ``--override-tensor``) in order.

    The pattern is llama.cpp's ``std::regex`` (ECMAScript), read here with Python's ``re``: the two agree on the
    patterns people write (``\\.ffn_.*_exps\\.=CPU``, ``blk\\.(1[0-9])\\.=CUDA0``); a pattern that uses a
    syntax only one of them has (lookbehind, named groups) is read as Python reads it.

    Raises:
        InvalidArgumentError: An entry without ``=``, an unknown buffer type, or a pattern that does not compile.
    """
    if values is None:
        return ()
    items = [values] if isinstance(values, str) else list(values)
    out: list[TensorOverride] = []
    for value in items:
        for entry in str(value).split(","):
            pattern, sep, buffer = entry.partition("=")
            if not sep or not pattern or not buffer:
                raise InvalidArgumentError("override_tensor", entry, "PATTERN=BUFFER, e.g. '\\.ffn_.*_exps\\.=CPU'")
            if not _BUFFER_TYPE.match(buffer):
                raise InvalidArgumentError("override_tensor", entry, "a buffer type llama.cpp lists: CPU, CUDA0, "
                                           "ROCm0, Vulkan0, Metal, SYCL0 ... (CUDA_Host: pinned host memory)")
            try:
                re.compile(pattern)
            except re.error as e:
                raise InvalidArgumentError("override_tensor", entry, f"a valid regular expression ({e})") from e
            out.append(TensorOverride(pattern=pattern, buffer=buffer))
    return tuple(out)

#: ``-fa`` values (common/arg.cpp: on, off, auto; ``auto`` is the default).
FLASH_ATTN_MODES = ("on", "off", "auto")
#: Head sizes ggml's CUDA/HIP backend runs flash attention for with equal K and V head sizes, and the
#: (K, V) pairs it runs only with the grouped-query path (ggml/src/ggml-cuda/fattn.cu
#: ``ggml_cuda_get_best_fattn_kernel``, ggml-org/llama.cpp commit 00a2d609).
CUDA_FA_HEAD_SIZES = frozenset({40, 64, 72, 80, 96, 112, 128, 256})
CUDA_FA_GQA_HEAD_SIZES = {(192, 128): 8, (320, 256): 32, (512, 512): 1, (576, 512): 1}
#: Cache types that kernel takes (f32, f16, q4_0, q8_0, bf16; q4_1/q5_0/q5_1 only in GGML_CUDA_FA_ALL_QUANTS
#: builds), K and V of one type or q8_0 K with q4_0 V.
CUDA_FA_KV_TYPES = frozenset({"f32", "f16", "q4_0", "q8_0", "bf16"})


def flash_attention_on(spec: ModelSpec, *, mode: str = "auto", runtime: str = "cuda", kv_type_k: str = "f16",
                       kv_type_v: str | None = None) -> tuple[bool, str]:
    """Whether llama.cpp runs flash attention for ``-fa mode``, and why.

    ``auto`` (src/llama-context.cpp): llama.cpp reserves a graph and turns flash attention off when a
    layer's FLASH_ATTN_EXT op would run on another device than that layer's KV cache, i.e. when the
    GPU backend does not support it. For CUDA and ROCm that is ggml-cuda's rule: the head sizes of
    :data:`CUDA_FA_HEAD_SIZES` (K and V equal), MLA's 576/512 and the listed grouped pairs, and the
    cache types of :data:`CUDA_FA_KV_TYPES`. Other backends (Metal, Vulkan, CPU) are taken to support it
    (unverified).

    Raises:
        InvalidArgumentError: A mode other than on, off, auto.
    """
    key = str(mode).strip().lower()
    if key not in FLASH_ATTN_MODES:
        raise InvalidArgumentError("flash_attn", mode, "on, off or auto (llama.cpp -fa)")
    if key != "auto":
        return key == "on", f"-fa {key}"
    arch = spec.architecture
    if arch is None or runtime not in ("cuda", "rocm"):
        return True, f"-fa auto: on ({runtime} backend, support assumed)"
    v_type = kv_type_v or kv_type_k
    if arch.is_mla:
        k_dim, v_dim = (arch.kv_lora_rank or 0) + (arch.qk_rope_head_dim or 0), arch.kv_lora_rank or 0
    else:
        k_dim, v_dim = arch.head_dim, arch.v_head_dim or arch.head_dim
    gqa = arch.num_attention_heads // max(1, arch.num_key_value_heads) if not arch.is_mla else arch.num_attention_heads
    if k_dim in CUDA_FA_HEAD_SIZES:
        sizes_ok = v_dim == k_dim
    else:
        need = CUDA_FA_GQA_HEAD_SIZES.get((k_dim, v_dim))
        sizes_ok = need is not None and gqa >= 2 and gqa % need == 0
    pair_ok = kv_type_k == v_type or (kv_type_k, v_type) == ("q8_0", "q4_0")
    types_ok = {kv_type_k, v_type} <= CUDA_FA_KV_TYPES and pair_ok
    if sizes_ok and types_ok:
        return True, (f"-fa auto: on (ggml-cuda runs flash attention for head size {k_dim}/{v_dim}, "
                      f"{kv_type_k}/{v_type} cache)")
    why = f"head size {k_dim}/{v_dim}" if not sizes_ok else f"a {kv_type_k}/{v_type} cache"
    return False, f"-fa auto: off (ggml-cuda has no flash-attention kernel for {why}, so llama.cpp turns it off)"


def is_llamacpp(spec: ModelSpec, quantization: str) -> bool:
    """Whether the model runs in llama.cpp: a GGUF file, or ``--quantization gguf:<TYPE>``."""
    return bool(getattr(spec, "gguf_tensors", ())) or quantization.startswith("gguf:")


_TORCH_KV = {"float16": "f16", "bfloat16": "bf16", "float32": "f32"}


def llamacpp_estimate(spec: ModelSpec, workload: Workload, *, detail: bool = True) -> MemoryEstimate:
    """The estimate of an inference workload served by llama.cpp (``estimate`` of a GGUF model).

    ``batch_size`` sequences become ``-np`` parallel slots sharing ``-c = batch x (seq_len + new_tokens)``;
    ``gpu_layers`` is ``-ngl``; ``cache_type_k`` / ``cache_type_v`` are ``-ctk`` / ``-ctv`` (each defaults to
    ``kv_cache_dtype``, else f16); ``-fa auto`` on CUDA. The buffers come from :func:`served_memory`, as
    ``hfge plan --engine llama.cpp`` sizes them.
    """
    from hf_gpu_estimator.memory import overhead
    from hf_gpu_estimator.memory.terms import COMPONENTS, MemoryEstimate, Moment, Term

    if workload.is_training:
        raise ConflictingOptionsError("task", workload.task, f"{spec.id!r} is a GGUF model (llama.cpp, inference only)",
                                      fix="estimate inference, or train from the transformers checkpoint")
    if workload.parallelism.num_gpus > 1:
        raise ConflictingOptionsError("num_gpus", workload.parallelism.num_gpus, "is not modelled for llama.cpp yet",
                                      fix="estimate one GPU (llama.cpp splits layers across GPUs with -ts)")
    quant = workload.quantization if workload.quantization.startswith("gguf:") else None
    n_ctx = workload.batch_size * (workload.seq_len + workload.new_tokens)
    m, fa_note = served_memory(spec, workload, n_ctx=n_ctx, n_parallel=workload.batch_size,
                               n_gpu_layers=workload.gpu_layers, quantization=quant)
    components = dict.fromkeys(COMPONENTS, 0)
    components.update(weights=m.weights_gpu, kv_cache=m.kv_gpu, transient=m.compute_buffer)
    moment = Moment(phase="llama.cpp buffers", components=components)
    context = overhead.CUDA_CONTEXT_BYTES
    terms: tuple[Term, ...] = ()
    assumptions: tuple[str, ...] = ()
    if detail:
        terms = (
            Term(component="weights", name="model buffer (GPU)", bytes=m.weights_gpu,
                 formula=f"GGUF tensors of the {m.n_gpu_layers} offloaded layers (of {m.n_layer + 1}); "
                         f"{m.weights_host:,} B stay in host memory"),
            Term(component="kv_cache", name="KV buffer (GPU)", bytes=m.kv_gpu,
                 formula=f"{m.kv_cells} cells x offloaded layers x (K + V) in {m.kv_type}"),
            Term(component="transient", name="compute buffer", bytes=m.compute_buffer,
                 formula="n_ubatch 512 x (n_vocab + n_embd) x 4 B (logits), or the f32 attention scores without "
                         "flash attention", low=int(m.compute_buffer * 0.95), high=int(m.compute_buffer * 1.25)),
        )  # fmt: skip
        assumptions = (
            "served by llama.cpp: 'allocated' is the sum of its CUDA buffers (model, KV, compute), as its log prints "
            "them; reserved = allocated (ggml allocates its buffers once)",
            f"llama.cpp -c {n_ctx} -np {workload.batch_size} -ngl {m.n_gpu_layers} -ctk/-ctv {m.kv_type}, "
            f"{fa_note} on CUDA, n_ubatch 512; token_embd stays in host memory",
            f"device total = allocated + CUDA context {context >> 20} MiB; cuBLAS/MMQ pool temporaries not counted",
        )  # fmt: skip
    allocated = moment.total_bytes
    return MemoryEstimate(
        allocated_peak_bytes=allocated, reserved_peak_bytes=allocated, device_total_bytes=allocated + context,
        allocated_low_bytes=allocated - m.compute_buffer // 20, allocated_high_bytes=allocated + m.compute_buffer // 4,
        components=components, phase_at_peak=moment.phase, moments=(moment,), terms=terms, num_devices=1,
        cuda_context_bytes=context, allocator_overhead_bytes=0, host_offload_bytes=m.weights_host + m.kv_host,
        assumptions=assumptions,
    )  # fmt: skip
