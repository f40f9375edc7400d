"""Recurrent token mixers' activations, one entry per kind: what training saves, the backward's buffers and the
prefill's peak, per token (memory/activations.py asks the table; attention kinds live there).

Kinds (``Mixer.kind``, Mamba split by its heads): ``conv`` (LFM2's short convolution), ``wkv`` (RWKV-4),
``linear`` (gated DeltaNet), ``kda`` (``linear`` with Kimi delta attention's scan), ``mamba2`` (``ssm`` with heads: Mamba2's SSD) and ``mamba`` (``ssm`` without:
Mamba's selective scan). Each follows transformers' torch fallback path (what runs without the CUDA kernels,
and what exact mode traces); the sources are in :func:`recurrent_saved_bytes`, :func:`recurrent_backward_bytes`
and :func:`recurrent_inference_bytes`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from hf_gpu_estimator.spec import Mixer

#: Chunk lengths of the chunked scans transformers' torch fallbacks run: modeling_qwen3_next.py
#: ``torch_chunk_gated_delta_rule`` chunk_size=64; modeling_mamba2.py ``torch_forward`` uses
#: config.chunk_size (256 by default). A mixer's ``chunk`` overrides them.
DELTANET_CHUNK = 64
MAMBA2_CHUNK = 256
#: ``chunk x chunk x head_dim`` fp32 tensors per head (:func:`_kda_pairwise`) a KDA layer's backward holds beyond
#: its saved set: the gradients of the pairwise decay (accumulated over the chunk loop) and of ``k_beta * key``,
#: and ``mul``'s gradient toward ``k_beta`` before its sum. Exact-mode traces: kimi_linear's cut default config at
#: 2 x 2048 tokens holds 12,786 MiB of temporaries at its peak (3.1 such tensors); two KDA layers of 8 heads x 128
#: and one MLA layer (hidden 512, bf16-mixed, 2 x 1024 tokens): the whole estimate +1.9 % (kimi_linear) and +2.3 %
#: (bailing_hybrid) of the traced peak, +1.7 % and +2.0 % with checkpointing, prefill +0.1 % and +0.3 %; kimi_linear
#: at 2 x 512 tokens without autocast: bf16-true +1.9 % (+1.9 % with checkpointing), 32-true +2.4 % (+2.1 %).
KDA_BACKWARD_PAIRWISE = 3
#: Linear layers reading a KDA layer's input (modeling_kimi_linear.py ``KimiLinearDeltaAttention``: q/k/v_proj,
#: forget_gate.f_a_proj, b_proj, g_a_proj; modeling_bailing_hybrid.py: q/k/v_proj, forget_gate.f_proj, b_proj,
#: g_proj): under autocast each saves its own 16-bit cast of the fp32 input.
KDA_INPUT_READERS = 6


def _chunking(chunk: int, seq_len: int | None) -> tuple[float, float]:
    """(padded tokens per token, 1 / tokens per sequence) of a chunked scan: transformers pads the
    sequence to a multiple of the chunk (``pad_tensor_by_size`` / ``F.pad``). Unknown length: no padding,
    one sequence of unbounded length."""
    if not seq_len:
        return 1.0, 0.0
    return -(-seq_len // chunk) * chunk / seq_len, 1 / seq_len


@dataclass(frozen=True)
class _Scan:
    """A chunked scan's widths per token: the mixer's inner stream, heads, convolution channels, the chunk,
    the padded tokens per token and 1 / tokens per sequence (:func:`_chunking`)."""

    inner: int
    heads: int
    channels: int
    chunk: int
    padded: float
    per_seq: float

    @classmethod
    def of(cls, mixer: Mixer, hidden: int, seq_len: int | None, default_chunk: int) -> _Scan:
        chunk = mixer.chunk or default_chunk
        padded, per_seq = _chunking(chunk, seq_len)
        return cls(inner=mixer.inner or hidden, heads=mixer.heads or 1,
                   channels=mixer.conv_elements // (mixer.conv_kernel or 4), chunk=chunk, padded=padded,
                   per_seq=per_seq)

    def keys(self, mixer: Mixer) -> int:
        """Gated DeltaNet's q/k width after repeat to the value heads."""
        return self.heads * (mixer.state_elements // max(1, self.heads * (mixer.value_dim or 1)))


@dataclass(frozen=True)
class StateMixerMemory:
    """One recurrent kind's per-token bytes.

    Attributes:
        saved: ``(mixer, compute_bytes, hidden, seq_len, autocast) -> (saved for backward, forward transient)``.
        backward: ``(mixer, seq_len, autocast) -> buffers alive in its backward beyond the saved set``.
        prefill: ``(mixer, compute_bytes, hidden, seq_len) -> peak under no_grad``; ``None``: what training saves.
    """

    saved: Callable[[Mixer, int, int, int | None, bool], tuple[float, float]]
    backward: Callable[[Mixer, int | None, bool], float]
    prefill: Callable[[Mixer, int, int, int], float] | None = None


def _none(mixer: Mixer, seq_len: int | None, autocast: bool) -> float:
    return 0.0


def _conv_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    inner = mixer.inner or hidden
    return c * 6 * inner, c * 2 * inner


def _wkv_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    inner = mixer.inner or hidden
    # Time mix: 4 of the hidden width (the caller counts one), 4 of the mixer width, the loop's fp32
    # tensors; channel mix: 5 of the hidden width (the caller counts one, as its linears' input).
    # The bf16 key stays alive through the loop (its fp32 copies are what is saved).
    return c * 3 * hidden + c * 4 * inner + 4 * 12 * inner + c * 4 * hidden, c * inner


def _wkv_prefill(mixer: Mixer, c: int, hidden: int, seq_len: int) -> float:
    # Key, value, receptance and the output buffer alive through the token loop (modeling_rwkv.py).
    return 4 * c * (mixer.inner or hidden)


def _deltanet_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    g = _Scan.of(mixer, hidden, seq_len, DELTANET_CHUNK)
    inner, heads, chunk, padded, keys = g.inner, g.heads, g.chunk, g.padded, g.keys(mixer)
    scores = heads * chunk
    saved = c * (2 * g.channels + heads) + 4 * 9 * heads + 4 * 2 * keys
    if autocast:
        # The matmuls save 16-bit copies of their fp32 operands (seven key-wide, two score-wide and
        # the loop's intra-chunk slice, v_new and states), the fp32 ones are saved by the products.
        saved += (padded * (4 * 4 * keys + c * 7 * keys + 4 * 2 * scores + c * 3 * scores)
                  + 4 * inner * (2 * padded + 4) + c * inner * (padded + 2)
                  + (4 + 2 * c) * mixer.state_elements * padded / chunk)
    else:
        saved += (padded * (4 * 6 * keys + 4 * 5 * scores) + 4 * inner * (3 * padded + 3) + c * 3 * inner
                  + 4 * mixer.state_elements * padded / chunk)
    return saved, 4 * 2 * scores


def _deltanet_prefill(mixer: Mixer, c: int, hidden: int, seq_len: int) -> float:
    g = _Scan.of(mixer, hidden, seq_len, DELTANET_CHUNK)
    return (c * (2 * g.channels + 2 * g.inner + 5 * g.heads) + g.padded * (4 * 3 * g.heads * g.chunk
            + 4 * 4 * g.inner + 4 * 6 * g.keys(mixer)) + 4 * 2 * mixer.state_elements * g.per_seq)


def _mamba2_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    g = _Scan.of(mixer, hidden, seq_len, MAMBA2_CHUNK)
    inner, heads, channels, chunk, padded = g.inner, g.heads, g.channels, g.chunk, g.padded
    d_state = mixer.state_elements // max(1, inner)
    # The convolution keeps the in_proj output (gate, x/B/C, dt) as its input; under autocast it casts
    # ``.to(conv weight dtype)`` (fp32) back to 16 bits and keeps that x/B/C copy instead. softplus is
    # an fp32 autocast op. The einsums save 16-bit copies of their fp32 operands under autocast.
    conv_in = channels if autocast else inner + channels + heads
    e = c if autocast else 4
    saved = (c * (conv_in + channels + inner) + (4 if autocast else c) * 2 * heads + 4 * 4 * heads
             + 4 * inner * (6 + padded) + 4 * heads * d_state * padded + 4 * heads * chunk * padded
             + e * padded * (4 * heads * d_state + 2 * heads * chunk + 3 * inner)
             + e * mixer.state_elements * (2 * padded / chunk + g.per_seq))
    return saved, 4 * 2 * heads * chunk


def _mamba2_backward(mixer: Mixer, seq_len: int | None, autocast: bool) -> float:
    padded, _ = _chunking(mixer.chunk or MAMBA2_CHUNK, seq_len)
    return (2 if autocast else 1) * 4 * mixer.heads * (mixer.chunk or MAMBA2_CHUNK) * padded


def _mamba2_prefill(mixer: Mixer, c: int, hidden: int, seq_len: int) -> float:
    g = _Scan.of(mixer, hidden, seq_len, MAMBA2_CHUNK)
    inner, heads, chunk, padded = g.inner, g.heads, g.chunk, g.padded
    d_state = mixer.state_elements // max(1, inner)
    # At the last sum, or earlier at the einsum of the chunks' new states, where the chunk states and their
    # einsum copy, four heads x d_state tensors (B_decay's einsum copy included) and four inner-wide ones are
    # alive beside the chunk x chunk matrices (exact-mode traces of nemotron_h at 4 x 2048 tokens, 128 heads
    # of 64, d_state 128: the peak is there at chunk 64, both moments hold the same at its chunk of 128).
    at_end = padded * (4 * 7 * inner + 4 * 3 * heads * d_state) + 4 * mixer.state_elements * (
        padded / chunk + 2 * g.per_seq)
    at_states = padded * (4 * 4 * inner + 4 * 4 * heads * d_state) + 4 * mixer.state_elements * (
        2 * padded / chunk + 2 * g.per_seq)
    return (c * (inner + 2 * g.channels + heads) + padded * 4 * 3 * heads * chunk + max(at_end, at_states)
            + 4 * 4 * heads)


def _kda_pairwise(mixer: Mixer, seq_len: int | None) -> float:
    """Bytes per token of one fp32 ``(chunk, chunk, head_dim)`` tensor per head (``chunk_kimi_delta_attention``'s
    per-channel pairwise decay, and each product with it), over the padded sequence."""
    chunk = mixer.chunk or DELTANET_CHUNK
    padded, _ = _chunking(chunk, seq_len)
    return 4 * chunk * mixer.inner * padded


def _kda_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    """What a KDA layer saves for backward per token beyond its input (modeling_kimi_linear.py
    ``KimiLinearDeltaAttention.forward`` and ``chunk_kimi_delta_attention``, transformers 5.25), by autograd's
    rules for each op: the convolution's input cast and its output (saved by silu); the forget gate's
    f_b_proj input, exp, ``1 + exp`` and softplus outputs and the ``g > 20`` mask (Kimi's written-out softplus;
    Ling's bounded sigmoid gate saves one fp32 key-wide tensor, the mask and the low-rank inputs fewer, counted
    as Kimi's: under 1 % of the layer); beta; q and k in fp32
    before their L2 norm; per padded token the value, key and ``k_beta`` read by the ``beta`` products, the
    scaled query and the three decay exponentials the chunk loop reads; three ``chunk x chunk x head_dim``
    tensors per head (the pairwise decay, ``k_beta * key`` and the loop's ``query * key``, saved by the
    products with the decay); the UT loop's row and block clones (``sum(i + i^2)`` over the chunk per chunk);
    the matmuls' operands (under autocast 16-bit copies: the UT matrix twice, ``v_beta``, the decayed
    ``k_beta``, ``k_cumdecay``, the decayed query, the intra-chunk attention, ``v_new`` and the decayed key);
    each chunk's fp32 state (and its two 16-bit casts under autocast); the gated RMSNorm's four fp32 tensors,
    g_b_proj's input and o_proj's input. Itemized by reading the code; the totals are checked against
    exact-mode traces of kimi_linear and bailing_hybrid at 2 x 2048 tokens (docs/coverage-long.md: -2.8 % and
    -4.4 %, the peak inside the last KDA layer's backward). The forward transient: the pairwise decay's
    difference and its masked copy, before exp.
    """
    chunk = mixer.chunk or DELTANET_CHUNK
    padded, _ = _chunking(chunk, seq_len)
    h, d, w = mixer.heads, mixer.head_dim, mixer.inner
    e = c if autocast else 4  # a matmul's saved copy of an fp32 operand: its 16-bit cast under autocast
    per_token = c * 6 * w + c * d + 13 * w + c * h + 8 * w + 16 * w + c * d + c * w
    scan = (4 * 7 * w + 4 * h + (6 * e if autocast else 4 * 6) * w
            + h * (2 * c * chunk + c * chunk if autocast else 2 * 4 * chunk)
            + 4 * h * ((chunk - 1) * (2 * chunk - 1) / 6 + (chunk - 1) / 2))
    states = (4 + (2 * c if autocast else 0)) * h * d * d / chunk
    return per_token + padded * (scan + states) + 3 * _kda_pairwise(mixer, seq_len), _kda_pairwise(mixer, seq_len)


def _kda_backward(mixer: Mixer, seq_len: int | None, autocast: bool) -> float:
    return KDA_BACKWARD_PAIRWISE * _kda_pairwise(mixer, seq_len)


def _kda_prefill(mixer: Mixer, c: int, hidden: int, seq_len: int) -> float:
    # chunk_kimi_delta_attention at ``k_beta * key * decay_mask`` (modeling_kimi_linear.py): the convolution's
    # output (q, k, v views) and beta in the compute dtype, the forget gate's fp32 output; per padded token in
    # fp32 the normalized query and key, value, cumulated decay, beta, ``v_beta`` and ``k_beta``, and three
    # ``chunk x chunk x head_dim`` tensors per head (the pairwise decay, ``k_beta * key`` and the product
    # being written). Exact-mode traces of kimi_linear at 4 x 2048 tokens: 25,831 MiB of activations at the
    # prefill peak, inside the fourth KDA layer.
    padded, _ = _chunking(mixer.chunk or DELTANET_CHUNK, seq_len)
    inner, heads = mixer.inner, mixer.heads
    return c * (3 * inner + heads) + 4 * inner + padded * (4 * 6 * inner + 4 * heads) + 3 * _kda_pairwise(mixer, seq_len)


def _mamba_saved(mixer: Mixer, c: int, hidden: int, seq_len: int | None, autocast: bool) -> tuple[float, float]:
    inner = mixer.inner or hidden
    d_state = mixer.state_elements // max(1, inner)
    # Mamba1 (``mamba_selective_scan``'s token loop): three inner x d_state fp32 tensors per token (the
    # discretized A saved by exp, discrete_B saved by ``* x``, every step's state saved by the next step)
    # and the 16-bit copy of each state the matmul with C reads; inner-wide: the in_proj output (x and the
    # gate, the convolution's input), the convolution's output, x_proj's input, dt before and after
    # softplus, the D skip's and the gate's 16-bit factors, out_proj's input, and x and the skip's sum
    # in fp32.
    saved = c * 9 * inner + 4 * 2 * inner + (12 + c) * inner * d_state
    return saved, 4 * 2 * inner * d_state


def _mamba_backward(mixer: Mixer, seq_len: int | None, autocast: bool) -> float:
    return 15 * mixer.state_elements


def _mamba_prefill(mixer: Mixer, c: int, hidden: int, seq_len: int) -> float:
    # At the D skip's sum after the loop: discrete A, discrete B and B x u (fp32, inner x d_state), the
    # in_proj output, conv output, its contiguous copy, dt, the stacked outputs, x and the sum in fp32.
    return 12 * mixer.state_elements + 6 * c * (mixer.inner or hidden) + 4 * 2 * (mixer.inner or hidden)


#: Recurrent kind -> its memory terms.
STATE_MIXERS: Mapping[str, StateMixerMemory] = {
    "conv": StateMixerMemory(saved=_conv_saved, backward=_none),
    "wkv": StateMixerMemory(saved=_wkv_saved, backward=_none, prefill=_wkv_prefill),
    "linear": StateMixerMemory(saved=_deltanet_saved, backward=_none, prefill=_deltanet_prefill),
    "kda": StateMixerMemory(saved=_kda_saved, backward=_kda_backward, prefill=_kda_prefill),
    "mamba2": StateMixerMemory(saved=_mamba2_saved, backward=_mamba2_backward, prefill=_mamba2_prefill),
    "mamba": StateMixerMemory(saved=_mamba_saved, backward=_mamba_backward, prefill=_mamba_prefill),
}


def state_kind(mixer: Mixer) -> str:
    """The :data:`STATE_MIXERS` key of a recurrent mixer (``ssm`` is Mamba2 with heads, Mamba without)."""
    if mixer.kind == "ssm":
        return "mamba2" if mixer.heads else "mamba"
    if mixer.kind == "linear" and mixer.scan == "kda":
        return "kda"
    return mixer.kind


def recurrent_saved_bytes(mixer: Mixer, *, compute_bytes: int, hidden: int, seq_len: int | None = None,
                          autocast: bool = False) -> tuple[float, float]:
    """(saved for backward, forward transient) per token of a linear-attention, SSM or short-conv mixer
    in training, following transformers' torch fallback paths (what runs without the CUDA kernels, and
    what exact mode traces). The layer input saved by its in_proj is counted by the caller. ``seq_len``
    (tokens per sequence) sizes the chunked scans' padding; ``autocast``: mixed precision, where the
    scans' matmuls save 16-bit copies of their fp32 operands (itemized under the tracer's CUDA autocast).

    * Gated DeltaNet (modeling_qwen3_next.py ``Qwen3NextGatedDeltaNet.forward`` and
      ``torch_chunk_gated_delta_rule``), itemized from the tensors autograd saves on a qwen3_next config:
      in the compute dtype the concatenated q/k/v (the convolution's input) and the convolution's output,
      beta, and three value-wide tensors of the gated RMSNorm and out_proj; in fp32, per token, q and k
      before their L2 norm, then six key-wide tensors (the padded key and query, ``k_beta``, ``k_cumdecay``
      and the decayed query and key the chunk loop reads), six value-wide ones (the padded value,
      ``new_values``, the loop's ``v_new``, and the gated norm's input, gate and ``silu(gate)``), five
      ``chunk``-wide matrices per head (the pairwise decay, ``k_beta @ key^T`` and ``query @ key^T`` saved
      by their masking products, the UT system saved by ``solve_triangular``, the masked intra-chunk
      attention the loop reads), and one state per head per chunk.
    * Mamba2 (modeling_mamba2.py ``Mamba2Mixer.forward`` with ``mamba2_chunk_scan`` and
      ``MambaRMSNormGated``; bamba, falcon_h1, granitemoehybrid, nemotron_h and zamba2 copy them),
      itemized the same way on a mamba2 config: the in_proj output (held by the convolution as its input),
      the convolution's output, dt twice (softplus, clamp) and out_proj's input in the compute dtype; in
      fp32 the upcast x, six inner-wide tensors (x padded for the D skip, x copied by two einsums,
      ``C_times_states`` saved by the decay product; the gated norm's gate, input and product are five
      with its normalized output), B and C expanded to the heads (five ``heads x d_state`` copies: two
      einsums for G, ``B * decay``, the einsums of the states and of C against them), three ``chunk x
      chunk`` matrices per head (``exp(segment_sum)``, G, and G masked), and the chunk states twice.
    * Mamba (modeling_mamba.py / modeling_jamba.py ``mamba_selective_scan``, a loop over the tokens),
      itemized on a jamba config: the discretized ``A`` and ``B`` and every step's state are saved at
      ``inner x d_state`` per token in fp32 (``B x u`` is not saved), each state's 16-bit copy too.
    * Short conv (LFM2): B, C, x, B*x, the conv output and out_proj's input, in the compute dtype.
    * RWKV-4 time mix (modeling_rwkv.py ``rwkv_linear_attention_cpu``, a Python loop over the tokens):
      the shifted input and the three token-mixed inputs of key/value/receptance, the value, the
      receptance's sigmoid, the output and its gated product in the compute dtype; each step saves
      twelve fp32 ``inner``-wide tensors (the fp32 key, key + time_first, both exponentials of the
      output and of the state update, numerator, denominator, the decayed maximum and the new
      numerator, denominator and maximum states). The channel mix shifts its input the same way: the
      shifted input, its second token-mixed input, the receptance's sigmoid and the value output.
    """
    return STATE_MIXERS[state_kind(mixer)].saved(mixer, compute_bytes, hidden, seq_len, autocast)


def recurrent_backward_bytes(mixer: Mixer, *, seq_len: int | None = None, autocast: bool = False) -> float:
    """Gradient buffers per token alive while a recurrent mixer's backward runs, beyond its saved tensors.

    Mamba's token loop (no heads): each step's gradient of a slice of the discretized A and of ``B x u``
    is materialized full-size by ``select_backward`` and summed, so several ``inner x d_state`` fp32
    tensors are alive while the saved states are freed step by step. Measured on the jamba accuracy
    config (d_state 16, 8 x 128 tokens), one layer's backward run alone: 122,686 bytes per token above
    its saved set under autocast, 124,700 in bf16: 15 bytes per ``inner x d_state`` element.
    Mamba2's chunked scan (``mamba2_chunk_scan``): the backward peaks at the ``chunk x chunk`` matrices'
    gradients. Measured on the mamba2 accuracy config (8 heads, chunk 256, 2 x 512 tokens), one layer's
    backward run alone: 15,961 bytes per token above its saved set under autocast (the 16-bit gradient
    of the masked scores, its fp32 copy and the two fp32 gradients of its factors, while the tensors
    already consumed are freed: about two fp32 score matrices per head), 8,441 in bf16 (about one).
    Other kinds: not measured apart from their layer's other buffers (0).
    """
    return STATE_MIXERS[state_kind(mixer)].backward(mixer, seq_len, autocast)


def recurrent_inference_bytes(mixer: Mixer, *, compute_bytes: int, hidden: int, seq_len: int) -> float:
    """Peak per-token bytes inside a recurrent mixer's prefill under ``torch.no_grad``.

    Mamba's token loop holds three ``inner x d_state`` fp32 tensors per token at once (the discretized A
    and B, B x u), itemized from the live tensors at the traced peak of a jamba config. The chunked scans pad the
    sequence to a multiple of their chunk, so a short prompt pays for a whole chunk, and keep every local
    alive to the end (itemized from the live tensors at the traced peak):

    * Mamba2 (``mamba2_chunk_scan``, peak at its last sum): the in_proj output and the convolution's
      output in the compute dtype; in fp32 the three ``chunk x chunk`` matrices per head, seven
      inner-wide tensors (the D skip, padded x, the diagonal and off-diagonal outputs, the states read
      by C, their sum and its contiguous copy), three ``heads x d_state`` ones (padded B and C, B times
      the decay) and the chunk states.
    * Gated DeltaNet (``torch_chunk_gated_delta_rule``, peak in the chunk loop): the in_proj outputs, the
      convolution's output and the copied gate z in the compute dtype; in fp32 three ``chunk``-wide
      matrices per head (the pairwise decay, the UT system, the intra-chunk attention), four value-wide
      tensors (the padded value, ``v_beta``, ``new_values``, the output buffer) and six key-wide ones
      (``k_beta``, its decayed copy, ``k_cumdecay``, the decayed query and key, one more copy of them).
    * Short convolutions: what training saves. RWKV-4's token loop: its four mixer-wide tensors (the
      loop's per-token tensors are one token wide).
    """
    entry = STATE_MIXERS[state_kind(mixer)]
    if entry.prefill is None:
        return entry.saved(mixer, compute_bytes, hidden, seq_len, False)[0]
    return entry.prefill(mixer, compute_bytes, hidden, seq_len)
