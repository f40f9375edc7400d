"""Prequantized checkpoint layouts, as (name, safetensors dtype, shape) lists: no torch, no data.

Each function rewrites an unquantized state dict's tensors the way a quantizer serializes them,
so header fixtures (scripts/make_hub_fixtures.py) and full-size headers in tests share one
definition per layout:

- GPTQ: auto-gptq ``QuantLinear`` (qweight [in*bits/32, out] I32, qzeros, scales F16, g_idx);
- AWQ: autoawq ``WQLinear_GEMM`` (qweight [in, out*bits/32] I32, qzeros, scales F16; no g_idx);
- bitsandbytes 4-bit: ``Params4bit`` serialization (packed U8, absmax, quant_map, quant_state);
- compressed-tensors FP8, "channel" strategy (RedHatAI/neuralmagic ``*-FP8``): weight F8_E4M3 and
  weight_scale [out, 1] in the checkpoint dtype;
- MXFP4 (gpt-oss): ``*_blocks`` U8 [E, rows, K/32, 16] (two e2m1 values per byte) and ``*_scales``
  U8 [E, rows, K/32] (one e8m0 exponent per 32 values), rows = the output features.
"""

from __future__ import annotations

Tensors = list[tuple[str, str, tuple[int, ...]]]
LINEARS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


def _decoder_linear(name: str) -> bool:
    leaf = name.rsplit(".", 2)
    return len(leaf) == 3 and leaf[1] in LINEARS and leaf[2] == "weight" and ".layers." in f".{name}"


def gptq(tensors: Tensors, bits: int, group: int) -> Tensors:
    out: Tensors = []
    for name, dtype, shape in tensors:
        if _decoder_linear(name):
            base = name[: -len(".weight")]
            out_f, in_f = shape
            out += [(f"{base}.qweight", "I32", (in_f * bits // 32, out_f)),
                    (f"{base}.qzeros", "I32", (in_f // group, out_f * bits // 32)),
                    (f"{base}.scales", "F16", (in_f // group, out_f)),
                    (f"{base}.g_idx", "I32", (in_f,))]  # fmt: skip
        else:
            out.append((name, "F16" if dtype in ("F32", "BF16") else dtype, shape))
    return out


def awq(tensors: Tensors, bits: int, group: int) -> Tensors:
    out: Tensors = []
    for name, dtype, shape in tensors:
        if _decoder_linear(name):
            base = name[: -len(".weight")]
            out_f, in_f = shape
            out += [(f"{base}.qweight", "I32", (in_f, out_f * bits // 32)),
                    (f"{base}.qzeros", "I32", (in_f // group, out_f * bits // 32)),
                    (f"{base}.scales", "F16", (in_f // group, out_f))]  # fmt: skip
        else:
            out.append((name, "F16" if dtype in ("F32", "BF16") else dtype, shape))
    return out


def bnb4(tensors: Tensors) -> Tensors:
    out: Tensors = []
    for name, dtype, shape in tensors:
        if _decoder_linear(name):
            n = shape[0] * shape[1]
            out += [(name, "U8", (n // 2, 1)), (f"{name}.absmax", "F32", (n // 64,)),
                    (f"{name}.quant_map", "F32", (16,)),
                    (f"{name}.quant_state.bitsandbytes__nf4", "U8", (96,))]  # fmt: skip
        else:
            out.append((name, dtype, shape))
    return out


def fp8_channel(tensors: Tensors) -> Tensors:
    out: Tensors = []
    for name, dtype, shape in tensors:
        if _decoder_linear(name):
            out += [(name, "F8_E4M3", shape), (f"{name[: -len('.weight')]}.weight_scale", dtype, (shape[0], 1))]
        else:
            out.append((name, dtype, shape))
    return out


def mxfp4(tensors: Tensors) -> Tensors:
    """gpt-oss experts: ``gate_up_proj`` [E, H, 2I] and ``down_proj`` [E, I, H] (transformers' layout)."""
    out: Tensors = []
    for name, dtype, shape in tensors:
        if name.endswith((".experts.gate_up_proj", ".experts.down_proj")):
            experts, k, rows = shape
            out += [(f"{name}_blocks", "U8", (experts, rows, k // 32, 16)),
                    (f"{name}_scales", "U8", (experts, rows, k // 32))]  # fmt: skip
        else:
            out.append((name, dtype, shape))
    return out
