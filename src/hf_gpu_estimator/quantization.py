"""Quantization schemes: names, storage bits per weight and their sources."""

from __future__ import annotations

import math

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from hf_gpu_estimator.errors import InvalidArgumentError, UnknownNameError

if TYPE_CHECKING:
    from hf_gpu_estimator.spec import ModelSpec


@dataclass(frozen=True, kw_only=True)
class GGUFType:
    """A ggml tensor type: ``block_bytes`` per ``block_size`` weights, and its id in GGUF files."""

    name: str
    id: int
    block_size: int
    block_bytes: int

    @property
    def bits_per_weight(self) -> float:
        return 8 * self.block_bytes / self.block_size

    def row_bytes(self, elements: int) -> int:
        """Bytes of ``elements`` weights (a multiple of ``block_size``), as ggml_row_size computes them."""
        return elements // self.block_size * self.block_bytes


# ggml type ids: ggml-org/llama.cpp ggml/include/ggml.h `enum ggml_type` (4, 5, 31-33, 36-38 removed).
# (blck_size, type_size): ggml/src/ggml.c `type_traits`, from the block structs in ggml/src/ggml-common.h
# (e.g. block_q4_K = 2 fp16 + 12 scale bytes + 128 nibble bytes = 144 per QK_K = 256 weights).
GGUF_TYPES: Mapping[str, GGUFType] = {t.name: t for t in (
    GGUFType(name="F32", id=0, block_size=1, block_bytes=4),
    GGUFType(name="F16", id=1, block_size=1, block_bytes=2),
    GGUFType(name="Q4_0", id=2, block_size=32, block_bytes=18),
    GGUFType(name="Q4_1", id=3, block_size=32, block_bytes=20),
    GGUFType(name="Q5_0", id=6, block_size=32, block_bytes=22),
    GGUFType(name="Q5_1", id=7, block_size=32, block_bytes=24),
    GGUFType(name="Q8_0", id=8, block_size=32, block_bytes=34),
    GGUFType(name="Q8_1", id=9, block_size=32, block_bytes=36),
    GGUFType(name="Q2_K", id=10, block_size=256, block_bytes=84),
    GGUFType(name="Q3_K", id=11, block_size=256, block_bytes=110),
    GGUFType(name="Q4_K", id=12, block_size=256, block_bytes=144),
    GGUFType(name="Q5_K", id=13, block_size=256, block_bytes=176),
    GGUFType(name="Q6_K", id=14, block_size=256, block_bytes=210),
    GGUFType(name="Q8_K", id=15, block_size=256, block_bytes=292),
    GGUFType(name="IQ2_XXS", id=16, block_size=256, block_bytes=66),
    GGUFType(name="IQ2_XS", id=17, block_size=256, block_bytes=74),
    GGUFType(name="IQ3_XXS", id=18, block_size=256, block_bytes=98),
    GGUFType(name="IQ1_S", id=19, block_size=256, block_bytes=50),
    GGUFType(name="IQ4_NL", id=20, block_size=32, block_bytes=18),
    GGUFType(name="IQ3_S", id=21, block_size=256, block_bytes=110),
    GGUFType(name="IQ2_S", id=22, block_size=256, block_bytes=82),
    GGUFType(name="IQ4_XS", id=23, block_size=256, block_bytes=136),
    GGUFType(name="I8", id=24, block_size=1, block_bytes=1),
    GGUFType(name="I16", id=25, block_size=1, block_bytes=2),
    GGUFType(name="I32", id=26, block_size=1, block_bytes=4),
    GGUFType(name="I64", id=27, block_size=1, block_bytes=8),
    GGUFType(name="F64", id=28, block_size=1, block_bytes=8),
    GGUFType(name="IQ1_M", id=29, block_size=256, block_bytes=56),
    GGUFType(name="BF16", id=30, block_size=1, block_bytes=2),
    GGUFType(name="TQ1_0", id=34, block_size=256, block_bytes=54),
    GGUFType(name="TQ2_0", id=35, block_size=256, block_bytes=66),
    GGUFType(name="MXFP4", id=39, block_size=32, block_bytes=17),
    GGUFType(name="NVFP4", id=40, block_size=64, block_bytes=36),
)}  # fmt: skip
GGUF_TYPES_BY_ID: Mapping[int, GGUFType] = {t.id: t for t in GGUF_TYPES.values()}


@dataclass(frozen=True, kw_only=True)
class GGUFFileType:
    """A llama.cpp file type (``llama_ftype``): the default tensor type of ``llama-quantize TYPE``."""

    name: str
    id: int  # general.file_type
    default: str  # llama_ftype_get_default_type


# src/llama.h `enum llama_ftype` and src/llama-quant.cpp llama_ftype_get_default_type.
GGUF_FILE_TYPES: Mapping[str, GGUFFileType] = {f.name: f for f in (
    GGUFFileType(name="F32", id=0, default="F32"),
    GGUFFileType(name="F16", id=1, default="F16"),
    GGUFFileType(name="Q4_0", id=2, default="Q4_0"),
    GGUFFileType(name="Q4_1", id=3, default="Q4_1"),
    GGUFFileType(name="Q8_0", id=7, default="Q8_0"),
    GGUFFileType(name="Q5_0", id=8, default="Q5_0"),
    GGUFFileType(name="Q5_1", id=9, default="Q5_1"),
    GGUFFileType(name="Q2_K", id=10, default="Q2_K"),
    GGUFFileType(name="Q3_K_S", id=11, default="Q3_K"),
    GGUFFileType(name="Q3_K_M", id=12, default="Q3_K"),
    GGUFFileType(name="Q3_K_L", id=13, default="Q3_K"),
    GGUFFileType(name="Q4_K_S", id=14, default="Q4_K"),
    GGUFFileType(name="Q4_K_M", id=15, default="Q4_K"),
    GGUFFileType(name="Q5_K_S", id=16, default="Q5_K"),
    GGUFFileType(name="Q5_K_M", id=17, default="Q5_K"),
    GGUFFileType(name="Q6_K", id=18, default="Q6_K"),
    GGUFFileType(name="IQ2_XXS", id=19, default="IQ2_XXS"),
    GGUFFileType(name="IQ2_XS", id=20, default="IQ2_XS"),
    GGUFFileType(name="Q2_K_S", id=21, default="Q2_K"),
    GGUFFileType(name="IQ3_XS", id=22, default="IQ3_S"),
    GGUFFileType(name="IQ3_XXS", id=23, default="IQ3_XXS"),
    GGUFFileType(name="IQ1_S", id=24, default="IQ1_S"),
    GGUFFileType(name="IQ4_NL", id=25, default="IQ4_NL"),
    GGUFFileType(name="IQ3_S", id=26, default="IQ3_S"),
    GGUFFileType(name="IQ3_M", id=27, default="IQ3_S"),
    GGUFFileType(name="IQ2_S", id=28, default="IQ2_XS"),
    GGUFFileType(name="IQ2_M", id=29, default="IQ2_S"),
    GGUFFileType(name="IQ4_XS", id=30, default="IQ4_XS"),
    GGUFFileType(name="IQ1_M", id=31, default="IQ1_M"),
    GGUFFileType(name="BF16", id=32, default="BF16"),
    GGUFFileType(name="TQ1_0", id=36, default="TQ1_0"),
    GGUFFileType(name="TQ2_0", id=37, default="TQ2_0"),
    GGUFFileType(name="MXFP4_MOE", id=38, default="MXFP4"),
)}  # fmt: skip
GGUF_FILE_TYPES_BY_ID: Mapping[int, GGUFFileType] = {f.id: f for f in GGUF_FILE_TYPES.values()}

#: Names llama-quantize also accepts (tools/quantize/quantize.cpp QUANT_OPTIONS: Q3_K, Q4_K and Q5_K
#: are the _M mixes) and common spellings of the float types.
GGUF_ALIASES: Mapping[str, str] = {
    "Q3_K": "Q3_K_M", "Q4_K": "Q4_K_M", "Q5_K": "Q5_K_M", "FP16": "F16", "FP32": "F32", "FLOAT16": "F16",
    "FLOAT32": "F32", "BFLOAT16": "BF16", "MXFP4": "MXFP4_MOE",
}  # fmt: skip


def normalize_gguf_type(value: str) -> str:
    """The canonical llama.cpp file-type (or plain ggml type) name for ``value``, case-insensitive.

    Raises:
        UnknownNameError: not a llama.cpp type name; suggests close ones.
    """
    key = value.strip().upper().replace("-", "_")
    key = GGUF_ALIASES.get(key, key)
    if key in GGUF_FILE_TYPES or key in GGUF_TYPES:
        return key
    raise UnknownNameError("quantization", f"gguf:{value}", [f"gguf:{k}" for k in (*GGUF_FILE_TYPES, *GGUF_TYPES)])


# Bits per weight of the quantized linear layers, plus the per-group scale overhead:
#  - bitsandbytes NF4/FP4: 4 bits + one absmax per 64 weights; with double quantization the
#    absmax is 8-bit with an fp32 second-level scale per 256 absmax (QLoRA paper, sec. 3:
#    32/64 = 0.5 bits -> 8/64 + 32/(64*256) = 0.127 bits).
#  - bitsandbytes LLM.int8: int8 weights + one fp32 scale per output row (SCB).
#  - GPTQ/AWQ 4-bit, group 128: int32-packed 4-bit weights + fp16 scale and packed 4-bit zero
#    per group -> 4 + 16/128 + 4/128 bits.
#  - FP8 (e4m3): 8 bits + one float32 scale per block (FineGrainedFP8 weight_block_size, 128x128:
#    32/16384 bits) or per output channel (compressed-tensors "channel" strategy: the scale's bits
#    over the row length; read exactly from the header when there is one).
#  - MXFP4 (OCP Microscaling spec v1.0): 32 fp4 (e2m1) values share one 8-bit (e8m0) scale:
#    4 + 8/32 = 4.25 bits (gpt-oss *_blocks U8 two values per byte + *_scales U8).
#  - W4A16 (compressed-tensors pack-quantized int4): int32-packed 4-bit + a 16-bit scale per group,
#    as GPTQ without zero points (symmetric): 4 + 16/group bits.
#  - W8A8 (compressed-tensors int-quantized int8): int8 + one scale per output row.
#  - dequantized: a prequantized checkpoint expanded to the compute dtype on load (transformers
#    Mxfp4Config(dequantize=True), chosen automatically where the MXFP4 kernels do not run).
QUANTIZATIONS: tuple[str, ...] = ("none", "int8", "nf4", "fp4", "fp8", "gptq-4bit", "gptq-8bit", "gptq-3bit",
                                  "gptq-2bit", "awq-4bit", "mxfp4", "w4a16", "w8a8", "dequantized")


def normalize_quantization(value: object) -> str:
    """Canonical quantization name; GGUF as ``gguf:<TYPE>`` with the llama.cpp type name upper-cased."""
    if not isinstance(value, str):
        raise InvalidArgumentError("quantization", value, "a name such as none, nf4, int8, gptq-4bit, gguf:Q4_K_M")
    text = value.strip().lower().replace("_", "-")
    aliases = {"": "none", "bnb-4bit": "nf4", "4bit": "nf4", "bnb-8bit": "int8", "llm.int8": "int8", "8bit": "int8",
               "gptq": "gptq-4bit", "awq": "awq-4bit", "fp8-e4m3": "fp8"}
    text = aliases.get(text, text)
    if text.startswith("gguf"):
        kind = value.strip().split(":", 1)[1] if ":" in value else ""
        return f"gguf:{normalize_gguf_type(kind)}"
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
        return 8.0 + (32 / group_size if group_size > 128 else 0.0)  # block scales; per-channel: negligible
    if quantization == "mxfp4":
        return 4 + 8 / 32
    if quantization == "w4a16":
        return 4 + 16 / group_size
    if quantization == "w8a8":
        return 8.0
    if quantization.startswith(("gptq-", "awq-")):
        bits = int(quantization.split("-")[1].removesuffix("bit"))
        return bits + 16 / group_size + bits / group_size
    if quantization.startswith("gguf:"):
        kind = quantization.split(":", 1)[1]
        base = GGUF_FILE_TYPES[kind].default if kind in GGUF_FILE_TYPES else kind
        return GGUF_TYPES[base].bits_per_weight
    raise InvalidArgumentError("quantization", quantization, "a quantized scheme")


# --- llama.cpp's per-tensor mixes ----------------------------------------------------------------


@dataclass(frozen=True, kw_only=True)
class GGUFTensor:
    """One tensor of a GGUF file: ggml dims (``shape[0]`` is the row length), type and data offset."""

    name: str
    shape: tuple[int, ...]
    type: str  # a GGUF_TYPES name
    offset: int = 0

    @property
    def numel(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n

    @property
    def nbytes(self) -> int:
        rows = self.numel // self.shape[0] if self.shape and self.shape[0] else 0
        return rows * GGUF_TYPES[self.type].row_bytes(self.shape[0]) if self.shape else GGUF_TYPES[self.type].block_bytes

    @property
    def layer(self) -> int | None:
        """The block index of ``blk.N.*`` tensors, else ``None``."""
        if not self.name.startswith("blk."):
            return None
        head = self.name[4:].split(".", 1)[0]
        return int(head) if head.isascii() and head.isdigit() else None


@dataclass(frozen=True, kw_only=True)
class MixModel:
    """What llama_tensor_get_type reads from the model: hparams and the arch."""

    arch: str
    n_layer: int
    n_head: int
    n_head_kv: int
    n_expert: int = 0
    is_70b: bool = False  # llama.cpp's LLM_TYPE_70B (80 layers, n_embd 8192)
    #: The checkpoint's expert matrices are MXFP4 (gpt-oss): convert_hf_to_gguf.py writes them as MXFP4
    #: (GptOssModel.repack_mxfp4) and the published quantized files keep them so (see gguf_tensor_types).
    experts_mxfp4: bool = False

    @property
    def n_gqa(self) -> int:
        return self.n_head // self.n_head_kv if self.n_head_kv else 0


#: Types whose ftypes need an importance matrix (llama-quant.cpp tensor_requires_imatrix); published
#: files of these types are made with one.
_IMATRIX_FTYPES = ("IQ1_S", "IQ1_M", "IQ2_XXS", "IQ2_XS", "IQ2_S", "IQ2_M", "IQ3_XXS", "Q2_K_S")
_FALLBACK = {"IQ1_S": "IQ4_NL", "IQ1_M": "IQ4_NL", "IQ2_XXS": "IQ4_NL", "IQ2_XS": "IQ4_NL", "IQ2_S": "IQ4_NL",
             "IQ3_XXS": "IQ4_NL", "IQ3_S": "IQ4_NL", "IQ4_XS": "IQ4_NL", "Q2_K": "Q4_0", "Q3_K": "Q4_0",
             "TQ1_0": "Q4_0", "TQ2_0": "Q4_0", "Q4_K": "Q5_0", "Q5_K": "Q5_1", "Q6_K": "Q8_0"}  # fmt: skip
_NOT_QUANTIZED = ("_norm.weight", "ffn_gate_inp.weight", "ssm_conv1d", "altup", "laurel", "per_layer_model_proj",
                  "attn_rel_b.weight", "position_embd", "token_types", "time_mix_", "shortconv.conv.weight")


def _allows_quantization(name: str, n_dims: int) -> bool:
    # llama-quant.cpp tensor_allows_quantization: 2-D/3-D weights, not norms, the MoE router or tiny tensors.
    return n_dims >= 2 and name.endswith("weight") and not any(part in name for part in _NOT_QUANTIZED)


def _category(name: str) -> str:
    # llama-quant.cpp tensor_get_category (substring tests, in its order).
    if name == "output.weight":
        return "output"
    if name in ("token_embd.weight", "per_layer_token_embd.weight"):
        return "token_embd"
    for key, category in (("attn_qkv.weight", "attn_qkv"), ("attn_kv_b.weight", "attn_kv_b"),
                          ("attn_v.weight", "attn_v"), ("attn_k.weight", "attn_k"), ("attn_q.weight", "attn_q"),
                          ("attn_output.weight", "attn_output"), ("ffn_up", "ffn_up"), ("ffn_gate", "ffn_gate"),
                          ("ffn_down", "ffn_down")):  # fmt: skip
        if key in name:
            return category
    return "other"


def gguf_tensor_types(ftype: str, tensors: list[tuple[str, tuple[int, ...]]], model: MixModel, *,
                      imatrix: bool | None = None) -> list[str]:
    """The ggml type ``llama-quantize <ftype>`` gives each tensor (name, ggml dims), in llama.cpp's order.

    A transcription of src/llama-quant.cpp (llama_tensor_get_type, llama_tensor_get_type_impl,
    tensor_type_fallback) without user overrides. ``tensors`` must be in the loader's order
    (llama_model_loader's weights_map: by block index, then by name); 1-D tensors keep F32.
    ``imatrix`` defaults to True for the types that require one (IQ1/IQ2/IQ3_XXS, Q2_K_S).
    """
    if ftype in GGUF_TYPES and ftype not in GGUF_FILE_TYPES:  # a plain type: every weight matrix in it
        return [ftype if _allows_quantization(n, len(s)) else "F32" for n, s in tensors]
    ft = GGUF_FILE_TYPES[ftype]
    default = ft.default
    quantized = GGUF_TYPES[default].block_size > 1
    has_imatrix = ftype in _IMATRIX_FTYPES if imatrix is None else imatrix
    names = [n for n, _ in tensors]
    tied = "output.weight" not in names
    n_attention_wv = sum(1 for n in names if _category(n) in ("attn_v", "attn_qkv", "attn_kv_b"))
    n_layer = model.n_layer
    counters = {"wv": 0, "ffn_down": 0, "ffn_gate": 0, "ffn_up": 0}
    result: list[str] = []
    for name, shape in tensors:
        if not _allows_quantization(name, len(shape)):
            result.append("F32")
            continue
        new = default
        if model.experts_mxfp4 and len(shape) > 2 and shape[2] > 1 and _category(name).startswith("ffn_"):
            # MXFP4 experts stay MXFP4 in every published gpt-oss GGUF: bartowski/openai_gpt-oss-20b-GGUF
            # (llama.cpp b6096, README: "All quants keep the feed forward networks at mxfp4"; MXFP4 12.1 GB,
            # Q6_K 12.04 GB) and unsloth/gpt-oss-120b-GGUF (Q2_K to Q8_0 within 58.3-59.0 GB). llama-quantize's
            # own rule would requantize them: llama_tensor_get_type at 007dbbf3 reads no source type, so the
            # publishers keep them with --tensor-type overrides.
            result.append("MXFP4")
            continue
        if quantized:
            new = _mix_type(ftype, default, name, shape, _category(name), model, tied=tied, has_imatrix=has_imatrix,
                            n_attention_wv=n_attention_wv, counters=counters, n_layer=n_layer)
            block = GGUF_TYPES[new].block_size
            if shape[0] % block:
                new = _FALLBACK.get(new, "F16")
                if shape[0] % GGUF_TYPES[new].block_size:
                    new = "F16"
        result.append(new)
    return result


def _use_more_bits(i: int, n: int) -> bool:
    return i < n // 8 or i >= 7 * n // 8 or (i - n // 8) % 3 == 2


def _mix_type(ftype: str, new: str, name: str, shape: tuple[int, ...], cat: str, m: MixModel, *, tied: bool,
              has_imatrix: bool, n_attention_wv: int, counters: dict[str, int], n_layer: int) -> str:
    """llama_tensor_get_type_impl, branch for branch (arch-specific Falcon rules left out)."""
    iq_low = ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M")

    def layer_of(counter: str) -> int:
        if m.n_expert > 1:
            head = name[4:].split(".", 1)[0] if name.startswith("blk.") else ""
            return int(head) if head.isascii() and head.isdigit() else counters[counter]
        return counters[counter]

    if cat == "output" or (tied and cat == "token_embd"):
        if ftype == "MXFP4_MOE" or shape[0] % GGUF_TYPES[new].block_size:
            return "Q8_0"
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ3_XXS", "IQ1_S", "IQ2_S", "IQ2_M", "IQ1_M"):
            return "Q5_K"
        return "Q6_K" if new != "Q8_0" else new
    if ftype == "MXFP4_MOE":
        return "MXFP4" if len(shape) > 2 and shape[2] > 1 else "Q8_0"
    if cat == "token_embd":
        if ftype in ("IQ2_XXS", "IQ2_XS", "IQ1_S", "IQ1_M"):
            return "Q2_K"
        if ftype in ("IQ2_S", "IQ2_M", "IQ3_XXS"):
            return "IQ3_S"
        if ftype in ("TQ1_0", "TQ2_0"):
            return "Q4_K"
        return new
    if cat == "attn_qkv":
        # A fused QKV (GPT-NeoX, Phi-3, Falcon ...) as the name-based llama-quant.cpp treats it, the rule the
        # published GGUF files were made with: its own branch (Q3_K_M, Q3_K_L, IQ3_M -> Q4_K; Q4_K_M -> Q5_K;
        # Q5_K_M -> Q6_K; the IQ1/IQ2 ftypes and Q2_K keep the default), after the attn_v branch, which matches
        # only "attn_v.weight". llama.cpp's tensor_category refactor (src/llama-quant.cpp at 007dbbf3:
        # category_is_attn_v) sends ATTENTION_QKV through the attn_v branch instead (Q2_K -> Q3_K), leaving its
        # own branch unreachable; that rule puts GPT-NeoX Q2_K files ~6 % over the published ones.
        if ftype in iq_low:
            return new
        return {"Q3_K_M": "Q4_K", "Q3_K_L": "Q4_K", "IQ3_M": "Q4_K", "Q4_K_M": "Q5_K", "Q5_K_M": "Q6_K"}.get(ftype, new)
    if ftype in iq_low:
        if cat in ("attn_v", "attn_kv_b"):
            if m.n_gqa >= 4 or m.n_expert >= 4:
                new = "Q4_K"
            else:
                new = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            counters["wv"] += 1
        elif m.n_expert == 8 and cat == "attn_k":
            new = "Q4_K"
        elif cat == "ffn_down":
            if counters["ffn_down"] < n_layer // 8:
                new = "IQ3_S" if ftype in ("IQ2_S", "IQ2_M") else "Q2_K"
            counters["ffn_down"] += 1
        elif cat == "attn_output":
            if m.n_expert == 8:
                new = "Q5_K"
            elif ftype in ("IQ1_S", "IQ1_M"):
                new = "IQ2_XXS"
            elif ftype in ("IQ2_S", "IQ2_M"):
                new = "IQ3_S"
        return new
    if cat in ("attn_v", "attn_kv_b"):
        i = counters["wv"]
        if ftype == "Q2_K":
            new = "Q4_K" if m.n_gqa >= 4 else "Q3_K"
        elif ftype == "Q2_K_S" and m.n_gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_XXS":
            new = "Q4_K" if m.n_gqa >= 4 else ("IQ3_S" if not has_imatrix else "IQ3_XXS")
        elif ftype in ("IQ3_XS", "IQ3_S") and m.n_gqa >= 4:
            new = "Q4_K"
        elif ftype == "IQ3_M":
            new = "Q4_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < 2 else "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype in ("IQ4_NL", "IQ4_XS") and m.n_gqa >= 4:
            new = "Q5_K"
        elif ftype in ("Q4_K_M", "Q5_K_M") and _use_more_bits(i, n_attention_wv):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < 4:
            new = "Q5_K"
        if m.is_70b and new in ("Q3_K", "Q4_K"):
            new = "Q5_K"
        if m.n_expert == 8:
            new = "Q8_0"
        counters["wv"] += 1
        return new
    if cat == "attn_k":
        if m.n_expert == 8:
            return "Q8_0"
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "attn_q":
        if ftype == "IQ3_XS":
            return "IQ3_XXS"
        if ftype == "IQ3_XXS":
            return "IQ2_S"
        return new
    if cat == "ffn_down":
        i = layer_of("ffn_down")
        n = n_layer
        if ftype == "Q2_K":
            new = "Q3_K"
        elif ftype == "Q2_K_S":
            if i < n // 8:
                new = "Q4_K"
        elif ftype == "IQ3_XXS" and not has_imatrix:
            new = "Q4_K" if i < n // 8 else "Q3_K"
        elif ftype == "Q3_K_M":
            new = "Q5_K" if i < n // 16 else "Q4_K"  # non-Falcon: use_more_bits || arch != FALCON
        elif ftype == "IQ3_M" and (i < n // 8 or (m.n_expert == 8 and _use_more_bits(i, n))):
            new = "Q4_K"
        elif ftype == "Q3_K_L":
            new = "Q5_K"
        elif ftype == "Q4_K_M":
            if _use_more_bits(i, n):
                new = "Q6_K"
        elif i < n // 8 and ftype in ("IQ4_NL", "IQ4_XS") and not has_imatrix:
            new = "Q5_K"
        elif ftype == "Q5_K_M" and _use_more_bits(i, n):
            new = "Q6_K"
        elif ftype == "Q4_K_S" and i < n // 8:
            new = "Q5_K"
        elif ftype in ("Q4_0", "Q5_0") and has_imatrix and i < n // 8:
            new = "Q4_1" if ftype == "Q4_0" else "Q5_1"
        counters["ffn_down"] += 1
        return new
    if cat == "attn_output":
        if m.n_expert == 8:
            if ftype in ("Q2_K", "IQ3_XS", "IQ3_XXS", "Q3_K_S", "Q3_K_M", "IQ4_NL", "Q4_K_S", "Q4_K_M", "IQ3_S",
                         "IQ3_M", "IQ4_XS"):
                new = "Q5_K"
        else:
            new = {"Q2_K": "Q3_K", "IQ3_XXS": "IQ3_S", "Q3_K_M": "Q4_K", "Q3_K_L": "Q5_K", "IQ3_M": "Q4_K"}.get(ftype, new)
        return new
    if cat in ("ffn_gate", "ffn_up"):
        i = layer_of(cat)
        if ftype == "IQ3_XS" and n_layer // 8 <= i < 7 * n_layer // 8:
            new = "IQ3_XXS"
        counters[cat] += 1
        return new
    return new


#: transformers linear names -> GGUF tensor names (llama.cpp gguf-py/gguf/tensor_mapping.py).
_GGUF_NAMES = {
    "q_proj": "attn_q", "k_proj": "attn_k", "v_proj": "attn_v", "o_proj": "attn_output", "dense": "attn_output",
    "qkv_proj": "attn_qkv", "c_attn": "attn_qkv", "query_key_value": "attn_qkv", "Wqkv": "attn_qkv",
    "gate_proj": "ffn_gate", "up_proj": "ffn_up", "down_proj": "ffn_down", "w1": "ffn_gate", "w3": "ffn_up",
    "w2": "ffn_down", "fc1": "ffn_up", "fc2": "ffn_down", "c_fc": "ffn_up", "c_proj": "ffn_down",
    "dense_h_to_4h": "ffn_up", "dense_4h_to_h": "ffn_down", "gate_up_proj": "ffn_gate_up",
    "q_a_proj": "attn_q_a", "q_b_proj": "attn_q_b", "kv_a_proj_with_mqa": "attn_kv_a_mqa", "kv_b_proj": "attn_kv_b",
}  # fmt: skip


def gguf_layout(spec: ModelSpec) -> list[tuple[str, tuple[int, ...]]]:
    """The tensors convert_hf_to_gguf.py would write for ``spec`` (names and ggml dims), in loader order.

    Built from the architecture's linears (fused gate_up split in two, experts as 3-D ``*_exps``), the
    embedding and output matrices, and the remaining parameters as 1-D F32 tensors (norms, biases); a
    vision-language model's vision tower and projector go to the ``--mmproj`` file instead.
    """
    from hf_gpu_estimator.errors import ConflictingOptionsError

    arch = spec.architecture
    if arch is None or not arch.linears:
        raise ConflictingOptionsError("quantization", "gguf", f"needs the layer shapes of {spec.id!r}",
                                      fix="inspect a model with a config.json")
    counts = spec.parameters
    tensors: list[tuple[str, tuple[int, ...]]] = []
    hidden = arch.hidden_size
    tensors.append(("output_norm.weight", (hidden,)))
    if counts.lm_head:
        tensors.append(("output.weight", (hidden, counts.lm_head // hidden)))
    tensors.append(("token_embd.weight", (hidden, max(1, counts.embedding // hidden))))
    matrices = sum(math.prod(t[1]) for t in tensors)  # output_norm too, so the remainder does not count it again
    moe_layers = set(arch.moe_layers) if arch.moe_layers else (set(range(arch.num_layers)) if arch.is_moe else set())
    for layer in range(arch.num_layers):
        block: list[tuple[str, tuple[int, ...]]] = []
        for lin in arch.linears:
            base = _GGUF_NAMES.get(lin.name, lin.name)
            experts = lin.count > 1
            if experts and layer not in moe_layers:
                continue
            dims: tuple[int, ...] = (lin.in_features, lin.out_features) + ((lin.count,) if experts else ())
            suffix = "_exps" if experts else ""
            if base == "ffn_gate_up":
                half = (lin.in_features, lin.out_features // 2) + ((lin.count,) if experts else ())
                block += [(f"ffn_gate{suffix}.weight", half), (f"ffn_up{suffix}.weight", half)]
            else:
                block.append((f"{base}{suffix}.weight", dims))
        for name, dims in sorted(block):
            tensors.append((f"blk.{layer}.{name}", dims))
            n = 1
            for d in dims:
                n *= d
            matrices += n
    # convert_hf_to_gguf.py writes a vision tower and its projector to the separate --mmproj file, not here
    rest = counts.total - arch.vision_parameters - matrices
    if rest > 0:
        tensors.append(("blk.norms_and_biases", (rest,)))  # 1-D: stays F32
    # llama_model_loader's weights_map order: block index (-1 outside blocks), then name.
    return sorted(tensors, key=lambda t: (_layer_key(t[0]), t[0]))


def _layer_key(name: str) -> int:
    if name.startswith("blk."):
        head = name[4:].split(".", 1)[0]
        if head.isascii() and head.isdigit():
            return int(head)
    return -1


def mix_model(spec: ModelSpec) -> MixModel:
    """What llama_tensor_get_type reads from ``spec`` (its architecture must be known)."""
    arch = spec.architecture
    if arch is None:
        raise InvalidArgumentError("quantization", spec.id, "a model with layer shapes")
    q = spec.quantization
    return MixModel(arch=arch.model_type, n_layer=arch.num_layers, n_head=arch.num_attention_heads,
                    n_head_kv=arch.num_key_value_heads, n_expert=arch.num_experts,
                    is_70b=arch.num_layers == 80 and arch.hidden_size == 8192,
                    experts_mxfp4=q is not None and q.method.lower() == "mxfp4")


def gguf_scheme_bytes(spec: ModelSpec, ftype: str) -> tuple[int, dict[str, int]]:
    """Bytes of ``spec`` as a ``llama-quantize <ftype>`` file (tensor data) and the bytes per ggml type."""
    layout = gguf_layout(spec)
    arch = spec.architecture
    if arch is None:  # gguf_layout raised already; kept for the type checker
        raise InvalidArgumentError("quantization", ftype, "a model with layer shapes")
    types = gguf_tensor_types(ftype, layout, mix_model(spec))
    by_type: dict[str, int] = {}
    total = 0
    for (name, dims), kind in zip(layout, types):
        nbytes = GGUFTensor(name=name, shape=dims, type=kind).nbytes
        by_type[kind] = by_type.get(kind, 0) + nbytes
        total += nbytes
    return total, by_type
