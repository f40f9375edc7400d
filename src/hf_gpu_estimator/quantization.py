"""Quantization schemes: names, storage bits per weight and their sources."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from hf_gpu_estimator.errors import InvalidArgumentError, UnknownNameError


@dataclass(frozen=True, kw_only=True)
class GGUFType:
    """A llama.cpp block type: ``block_bytes`` per ``block_size`` weights (ggml type traits)."""

    name: str
    block_size: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.block_bytes / self.block_size


# ggml/src/ggml.c `type_traits` (blck_size, type_size) and ggml-common.h block structs.
GGUF_TYPES: Mapping[str, GGUFType] = {t.name: t for t in (
    GGUFType(name="F32", block_size=1, block_bytes=4),
    GGUFType(name="F16", block_size=1, block_bytes=2),
    GGUFType(name="BF16", block_size=1, block_bytes=2),
    GGUFType(name="Q4_0", block_size=32, block_bytes=18),
    GGUFType(name="Q4_1", block_size=32, block_bytes=20),
    GGUFType(name="Q5_0", block_size=32, block_bytes=22),
    GGUFType(name="Q5_1", block_size=32, block_bytes=24),
    GGUFType(name="Q8_0", block_size=32, block_bytes=34),
    GGUFType(name="Q2_K", block_size=256, block_bytes=84),
    GGUFType(name="Q3_K", block_size=256, block_bytes=110),
    GGUFType(name="Q4_K", block_size=256, block_bytes=144),
    GGUFType(name="Q5_K", block_size=256, block_bytes=176),
    GGUFType(name="Q6_K", block_size=256, block_bytes=210),
    GGUFType(name="Q8_K", block_size=256, block_bytes=292),
    GGUFType(name="IQ1_S", block_size=256, block_bytes=50),
    GGUFType(name="IQ2_XXS", block_size=256, block_bytes=66),
    GGUFType(name="IQ2_XS", block_size=256, block_bytes=74),
    GGUFType(name="IQ2_S", block_size=256, block_bytes=82),
    GGUFType(name="IQ3_XXS", block_size=256, block_bytes=98),
    GGUFType(name="IQ3_S", block_size=256, block_bytes=110),
    GGUFType(name="IQ4_NL", block_size=32, block_bytes=18),
    GGUFType(name="IQ4_XS", block_size=256, block_bytes=136),
)}  # fmt: skip

#: llama.cpp file types (llama_ftype) that mix block types: (base type, type for the
#: "more bits" tensors: attn_v/ffn_down in the first and last eighth and every third layer,
#: and output.weight). Source: llama.cpp src/llama-quant.cpp llama_tensor_get_type.
GGUF_MIXES: Mapping[str, tuple[str, str]] = {
    "Q2_K": ("Q2_K", "Q4_K"), "Q3_K_S": ("Q3_K", "Q3_K"), "Q3_K_M": ("Q3_K", "Q4_K"),
    "Q3_K_L": ("Q3_K", "Q5_K"), "Q4_K_S": ("Q4_K", "Q5_K"), "Q4_K_M": ("Q4_K", "Q6_K"),
    "Q5_K_S": ("Q5_K", "Q5_K"), "Q5_K_M": ("Q5_K", "Q6_K"), "Q6_K": ("Q6_K", "Q6_K"),
}  # fmt: skip

# Bits per weight of the quantized linear layers, plus the per-group scale overhead:
#  - bitsandbytes NF4/FP4: 4 bits + one absmax per 64 weights; with double quantization the
#    absmax is 8-bit with an fp32 second-level scale per 256 absmax (QLoRA paper, sec. 3:
#    32/64 = 0.5 bits -> 8/64 + 32/(64*256) = 0.127 bits).
#  - bitsandbytes LLM.int8: int8 weights + one fp32 scale per output row (SCB).
#  - GPTQ/AWQ 4-bit, group 128: int32-packed 4-bit weights + fp16 scale and packed 4-bit zero
#    per group -> 4 + 16/128 + 4/128 bits.
#  - FP8 (e4m3) per-tensor or per-block scales: 8 bits (+ negligible scales).
QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "nf4", "fp4", "fp8", "gptq-4bit", "gptq-8bit", "gptq-3bit",
                                  "gptq-2bit", "awq-4bit")


def normalize_quantization(value: object) -> str:
    """Canonical quantization name; GGUF as ``gguf:<TYPE>`` with the llama.cpp type name upper-cased."""
    if not isinstance(value, str):
        raise InvalidArgumentError("quantization", value, "a name such as none, nf4, int8, gptq-4bit, gguf:Q4_K_M")
    text = value.strip().lower().replace("_", "-")
    aliases = {"": "none", "bnb-4bit": "nf4", "4bit": "nf4", "bnb-8bit": "int8", "llm.int8": "int8", "8bit": "int8",
               "gptq": "gptq-4bit", "awq": "awq-4bit", "fp8-e4m3": "fp8"}
    text = aliases.get(text, text)
    if text.startswith("gguf"):
        kind = value.strip().split(":", 1)[1].upper() if ":" in value else ""
        if kind not in GGUF_TYPES and kind not in GGUF_MIXES:
            raise UnknownNameError("quantization", value, [f"gguf:{k}" for k in (*GGUF_MIXES, *GGUF_TYPES)])
        return f"gguf:{kind}"
    if text not in QUANTIZATIONS:
        raise UnknownNameError("quantization", value, [*QUANTIZATIONS, "gguf:<type>"])
    return text


def linear_bits_per_weight(quantization: str, *, double_quant: bool = True, group_size: int = 128) -> float:
    """Stored bits per weight of a quantized linear layer, scales included."""
    if quantization in ("nf4", "fp4"):
        return 4 + (8 / 64 + 32 / (64 * 256) if double_quant else 32 / 64)
    if quantization == "int8":
        return 8.0  # + one fp32 scale per row, added per layer by the weights model
    if quantization == "fp8":
        return 8.0
    if quantization.startswith(("gptq-", "awq-")):
        bits = int(quantization.split("-")[1].removesuffix("bit"))
        return bits + 16 / group_size + bits / group_size
    if quantization.startswith("gguf:"):
        kind = quantization.split(":", 1)[1]
        base = GGUF_MIXES.get(kind, (kind, kind))[0]
        return GGUF_TYPES[base].bits_per_weight
    raise InvalidArgumentError("quantization", quantization, "a quantized scheme")
