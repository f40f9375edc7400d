"""GGUF: the header parser (pure, over a byte reader), local files, Hub files by range requests.

A GGUF file starts with ``GGUF``, a version (2 or 3), the tensor and metadata counts, the metadata
key/value pairs, then one info per tensor (name, dims, ggml type, data offset); tensor data follows,
aligned. Layout: ggml-org/llama.cpp ``ggml/src/gguf.cpp`` (gguf_init_from_file_impl) and
``docs``/gguf.md in ggml-org/ggml. Only the header is read: bytes are fetched in growing windows, and
fixed-size arrays (token scores, token types) are skipped without being fetched or materialized.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from hf_gpu_estimator import errors
from hf_gpu_estimator.architectures._fields import Fields
from hf_gpu_estimator.constants import MAX_INT, MAX_LAYERS
from hf_gpu_estimator.errors import excerpt
from hf_gpu_estimator.quantization import (
    GGUF_FILE_TYPES_BY_ID,
    GGUF_TYPES,
    GGUF_TYPES_BY_ID,
    GGUFTensor,
    normalize_gguf_type,
)
from hf_gpu_estimator.spec import Architecture, LinearShape, ModelSpec, ParameterCounts, QuantizationConfig

MAGIC = b"GGUF"
VERSIONS = (2, 3)
DEFAULT_ALIGNMENT = 32
#: Hard caps (a real file is far below each): what a hostile header can make us walk or keep.
MAX_TENSORS = 1 << 16  # DeepSeek-V3 has 1,025 tensors per file
MAX_KV = 1 << 14
MAX_STRING_BYTES = 16 << 20  # chat templates reach ~100 KB
MAX_ARRAY_ELEMENTS = 1 << 22  # tokenizer merges: ~300 k; vocabularies: ~260 k (bounds the walk to seconds)
MAX_HEADER_BYTES = 512 << 20
MAX_DIMS = 4  # GGML_MAX_DIMS
MAX_NAME_BYTES = 1024  # GGML_MAX_NAME is 64
#: Arrays up to this many elements are kept as values; longer ones only as their length.
KEEP_ARRAY_ELEMENTS = 4096
#: First window and largest window fetched at once (the window doubles while the header goes on).
FIRST_READ_BYTES = 1 << 20
MAX_READ_BYTES = 16 << 20

_SCALARS: Mapping[int, tuple[str, int]] = {
    0: ("<B", 1), 1: ("<b", 1), 2: ("<H", 2), 3: ("<h", 2), 4: ("<I", 4), 5: ("<i", 4), 6: ("<f", 4),
    7: ("<?", 1), 10: ("<Q", 8), 11: ("<q", 8), 12: ("<d", 8),
}  # fmt: skip
_STRING, _ARRAY = 8, 9
_SPLIT = re.compile(r"^(?P<prefix>.*)-(?P<no>\d{5})-of-(?P<count>\d{5})\.gguf$")


@dataclass(frozen=True, kw_only=True)
class GGUFArray:
    """A metadata array: its element type and length; ``values`` only when short."""

    type: int
    length: int
    values: tuple[object, ...] | None = None


@dataclass(frozen=True, kw_only=True)
class GGUFHeader:
    """A parsed GGUF header."""

    version: int
    metadata: Mapping[str, object]
    tensors: tuple[GGUFTensor, ...]
    alignment: int
    header_bytes: int  # where tensor data starts
    file_bytes: int | None = None


Fetch = Callable[[int, int], bytes]  # (offset, length) -> up to length bytes from offset


class _Reader:
    """Sequential reads over a Fetch, through a window that grows while the header goes on."""

    def __init__(self, fetch: Fetch, source: str, file_bytes: int | None):
        self.fetch = fetch
        self.source = source
        self.file_bytes = file_bytes
        self.pos = 0
        self.start = 0
        self.buf = b""
        self.chunk = FIRST_READ_BYTES

    def fail(self, message: str) -> errors.MalformedGGUFError:
        return errors.MalformedGGUFError(self.source, message)

    def take(self, n: int, what: str) -> bytes:
        end = self.pos + n
        if end > MAX_HEADER_BYTES:
            raise self.fail(f"{what} ends past {MAX_HEADER_BYTES >> 20} MiB: not a GGUF header this tool reads")
        if self.file_bytes is not None and end > self.file_bytes:
            raise self.fail(f"truncated: {what} at byte {self.pos:,} runs past the end of the file ({self.file_bytes:,} bytes)")
        if not (self.start <= self.pos and end <= self.start + len(self.buf)):
            self._fill(n, what)
        offset = self.pos - self.start
        self.pos = end
        return self.buf[offset : offset + n]

    def _fill(self, n: int, what: str) -> None:
        keep = self.buf[self.pos - self.start :] if self.start <= self.pos < self.start + len(self.buf) else b""
        want = max(n - len(keep), self.chunk)
        if self.file_bytes is not None:
            want = min(want, self.file_bytes - self.pos - len(keep))
        data = self.fetch(self.pos + len(keep), want) if want > 0 else b""
        self.chunk = min(self.chunk * 2, MAX_READ_BYTES)
        self.start, self.buf = self.pos, keep + data
        if len(self.buf) < n:
            raise self.fail(f"truncated: {what} at byte {self.pos:,} needs {n:,} bytes, the file ends after {len(self.buf):,}")

    def skip(self, n: int, what: str) -> None:
        end = self.pos + n
        if end > MAX_HEADER_BYTES or (self.file_bytes is not None and end > self.file_bytes):
            raise self.fail(f"truncated: {what} at byte {self.pos:,} ({n:,} bytes) runs past the end of the file")
        self.pos = end

    def scalar(self, kind: int, what: str) -> object:
        fmt, size = _SCALARS[kind]
        value = struct.unpack(fmt, self.take(size, what))[0]
        if kind == 7 and self.buf[self.pos - 1 - self.start] not in (0, 1):
            raise self.fail(f"{what}: a bool must be 0 or 1")
        return value

    def u32(self, what: str) -> int:
        return struct.unpack("<I", self.take(4, what))[0]

    def u64(self, what: str) -> int:
        return struct.unpack("<Q", self.take(8, what))[0]

    def string(self, what: str, *, limit: int = MAX_STRING_BYTES, keep: bool = True) -> str:
        n = self.u64(f"length of {what}")
        if n > limit:
            raise self.fail(f"{what} announces {n:,} bytes (limit {limit:,})")
        if not keep:
            self.skip(n, what)  # tokenizer strings: walked, never decoded or kept
            return ""
        raw = self.take(n, what)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise self.fail(f"{what} is not UTF-8 ({e.reason} at byte {e.start})") from e


def parse_gguf_header(fetch: Fetch, *, source: str, file_bytes: int | None = None) -> GGUFHeader:
    """Parse a GGUF header from ``fetch(offset, length)``.

    Raises:
        MalformedGGUFError: bad magic or version, impossible counts, oversized strings or arrays,
            unknown value or tensor types, truncation, tensors outside the file; one line, naming ``source``.
    """
    r = _Reader(fetch, source, file_bytes)
    magic = r.take(4, "magic")
    if magic != MAGIC:
        raise r.fail(f"not a GGUF file (starts with {magic!r}, expected {MAGIC!r})")
    version = r.u32("version")
    if version not in VERSIONS:
        hint = " (a big-endian file)" if version.to_bytes(4, "little") in (b"\0\0\0\2", b"\0\0\0\3") else ""
        raise r.fail(f"GGUF version {version} is not supported{hint}; expected 2 or 3 (re-convert with llama.cpp)")
    n_tensors = r.u64("tensor count")
    n_kv = r.u64("metadata count")
    if n_tensors > MAX_TENSORS:
        raise r.fail(f"announces {n_tensors:,} tensors (limit {MAX_TENSORS:,})")
    if n_kv > MAX_KV:
        raise r.fail(f"announces {n_kv:,} metadata entries (limit {MAX_KV:,})")
    metadata: dict[str, object] = {}
    for i in range(n_kv):
        key = r.string(f"metadata key #{i}", limit=MAX_NAME_BYTES * 64)
        if key in metadata:
            raise r.fail(f"metadata key {key!r} appears twice")
        kind = r.u32(f"type of {key!r}")
        metadata[key] = _value(r, kind, key)
    alignment = metadata.get("general.alignment", DEFAULT_ALIGNMENT)
    if not isinstance(alignment, int) or isinstance(alignment, bool) or alignment <= 0 or alignment & (alignment - 1):
        raise r.fail(f"general.alignment={alignment!r} is not a power of two")
    infos: list[tuple[str, tuple[int, ...], str, int]] = []
    names: set[str] = set()
    for i in range(n_tensors):
        name = r.string(f"name of tensor #{i}", limit=MAX_NAME_BYTES)
        if name in names:
            raise r.fail(f"tensor {name!r} appears twice")
        names.add(name)
        n_dims = r.u32(f"dims of {name!r}")
        if not 1 <= n_dims <= MAX_DIMS:
            raise r.fail(f"tensor {name!r} has {n_dims} dimensions (1 to {MAX_DIMS})")
        dims = tuple(r.u64(f"dim of {name!r}") for _ in range(n_dims))
        type_id = r.u32(f"type of {name!r}")
        ggml = GGUF_TYPES_BY_ID.get(type_id)
        if ggml is None:
            raise r.fail(f"tensor {name!r} has unknown ggml type {type_id} (known: {sorted(GGUF_TYPES_BY_ID)}); "
                         "a newer llama.cpp type this tool does not know")  # fmt: skip
        if any(d <= 0 or d >= 1 << 62 for d in dims) or dims[0] % ggml.block_size:
            raise r.fail(f"tensor {name!r} has impossible dims {list(dims)} for type {ggml.name} "
                         f"(block size {ggml.block_size})")  # fmt: skip
        offset = r.u64(f"offset of {name!r}")
        if offset % alignment:
            raise r.fail(f"tensor {name!r} data offset {offset:,} is not aligned to {alignment}")
        infos.append((name, dims, ggml.name, offset))
    header_bytes = -(-r.pos // alignment) * alignment
    tensors = tuple(GGUFTensor(name=n, shape=d, type=t, offset=o) for n, d, t, o in infos)
    _check_layout(r, tensors, header_bytes)
    return GGUFHeader(version=version, metadata=metadata, tensors=tensors, alignment=alignment,
                      header_bytes=header_bytes, file_bytes=file_bytes)  # fmt: skip


def _value(r: _Reader, kind: int, key: str) -> object:
    if kind in _SCALARS:
        return r.scalar(kind, repr(key))
    if kind == _STRING:
        return r.string(repr(key))
    if kind != _ARRAY:
        raise r.fail(f"metadata {key!r} has unknown value type {kind}")
    item = r.u32(f"element type of {key!r}")
    length = r.u64(f"length of {key!r}")
    if length > MAX_ARRAY_ELEMENTS:
        raise r.fail(f"array {key!r} announces {length:,} elements (limit {MAX_ARRAY_ELEMENTS:,})")
    keep = length <= KEEP_ARRAY_ELEMENTS
    if item in _SCALARS:
        size = _SCALARS[item][1]
        if not keep:
            r.skip(size * length, f"array {key!r}")  # never fetched: token scores and types
            return GGUFArray(type=item, length=length)
        return GGUFArray(type=item, length=length, values=tuple(r.scalar(item, repr(key)) for _ in range(length)))
    if item == _STRING:
        values = tuple(r.string(f"element of {key!r}", keep=keep) for _ in range(length))
        return GGUFArray(type=item, length=length, values=values if keep else None)
    raise r.fail(f"array {key!r} has element type {item} (nested arrays are not GGUF metadata)")


def _check_layout(r: _Reader, tensors: tuple[GGUFTensor, ...], header_bytes: int) -> None:
    """Tensors must lie inside the data section and not overlap (as gguf.cpp checks)."""
    end = 0
    for t in sorted(tensors, key=lambda t: t.offset):
        if t.offset < end:
            raise r.fail(f"tensor {t.name!r} at offset {t.offset:,} overlaps the previous tensor")
        end = t.offset + t.nbytes
    if r.file_bytes is not None and header_bytes + end > r.file_bytes:
        raise r.fail(f"tensor data needs {header_bytes + end:,} bytes, the file has {r.file_bytes:,}")


# --- from a header to a ModelSpec -----------------------------------------------------------------


def _int(meta: Mapping[str, object], key: str, default: int | None = None) -> int | None:
    value = meta.get(key, default)
    if isinstance(value, GGUFArray):  # per-layer values (e.g. head_count_kv per layer): the largest
        return max((v for v in value.values or () if isinstance(v, int)), default=default)
    if isinstance(value, bool) or not (value is None or isinstance(value, int)):
        raise errors.MalformedGGUFError(str(meta.get("general.name", "gguf")), f"metadata {key!r}={value!r} is not an integer")
    return value


def _role(name: str) -> str:
    if name.startswith("token_embd") or name.startswith("per_layer_token_embd"):
        return "embedding"
    if name.startswith("output."):
        return "lm_head"
    if "norm" in name:
        return "norm"
    if "ffn_gate_inp" in name or "exp_probs_b" in name:
        return "router"
    if "_exps" in name:
        return "experts"
    if ".attn_" in name:
        return "attention"
    if ".ffn_" in name:
        return "mlp"
    return "other"


#: GGUF block tensor -> the transformers linear name peft would target (gguf-py tensor_mapping.py).
_HF_LINEARS = {"attn_q": "q_proj", "attn_k": "k_proj", "attn_v": "v_proj", "attn_output": "o_proj",
               "attn_qkv": "qkv_proj", "ffn_gate": "gate_proj", "ffn_up": "up_proj", "ffn_down": "down_proj",
               "attn_q_a": "q_a_proj", "attn_q_b": "q_b_proj", "attn_kv_a_mqa": "kv_a_proj_with_mqa",
               "attn_kv_b": "kv_b_proj"}  # fmt: skip


def spec_from_gguf(headers: list[GGUFHeader], *, model_id: str) -> GGUFModelSpec:
    """The ModelSpec of a GGUF model (one header per split file)."""
    meta = headers[0].metadata
    tensors = tuple(t for h in headers for t in h.tensors)
    names = [t.name for t in tensors]
    if len(set(names)) != len(names):
        raise errors.MalformedGGUFError(model_id, "a tensor appears in two split files")
    arch_name = meta.get("general.architecture")
    if not isinstance(arch_name, str) or not arch_name:
        raise errors.MalformedGGUFError(model_id, "no general.architecture string in the metadata")
    by_role = dict.fromkeys(("embedding", "attention", "mlp", "experts", "router", "norm", "lm_head", "other"), 0)
    by_type: dict[str, int] = {}
    counted = [t for t in tensors if not t.name.startswith("rope_freqs")]  # a buffer, not a parameter
    for t in counted:
        by_role[_role(t.name)] += t.numel
        by_type[t.type] = by_type.get(t.type, 0) + t.nbytes
    total = sum(by_role.values())
    arch, notes = _architecture(meta, arch_name, tensors, model_id)
    active = total
    if arch is not None and arch.num_experts and arch.num_experts_per_tok:
        active = total - by_role["experts"] + by_role["experts"] * arch.num_experts_per_tok // arch.num_experts
    file_type = _int(meta, "general.file_type")
    ftype = GGUF_FILE_TYPES_BY_ID.get(file_type) if file_type is not None else None
    nbytes = sum(by_type.values())
    quant = QuantizationConfig(method="gguf", bits=8 * nbytes / max(1, total),
                               quant_type=ftype.name if ftype else max(by_type, key=by_type.get, default=None))
    stored = "bfloat16" if "BF16" in by_type else "float16" if "F16" in by_type else "float32" if ftype and ftype.name == "F32" else "bfloat16"
    return GGUFModelSpec(
        id=model_id, architecture=arch,
        parameters=ParameterCounts(total=total, by_role=by_role, active=active),
        stored_dtype=stored, checkpoint_bytes=nbytes, checkpoint_bytes_by_dtype=by_type, quantization=quant,
        provenance={"parameters": "header", "architecture": "header", "quantization": "header"},
        assumptions=tuple(notes), gguf_tensors=tensors,
    )  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class GGUFModelSpec(ModelSpec):
    """A ModelSpec read from GGUF headers: also every tensor's ggml type and size (llama.cpp's weights)."""

    gguf_tensors: tuple[GGUFTensor, ...] = field(default=(), repr=False, compare=False)


def _architecture(meta: Mapping[str, object], arch: str, tensors: tuple[GGUFTensor, ...],
                  model_id: str) -> tuple[Architecture | None, list[str]]:
    notes: list[str] = []
    fields = _Metadata(meta, arch, source=model_id)

    def get(key: str, default: int | None = None) -> int | None:
        # 0 is how converters write "absent" (a recurrent model's head counts); negatives and values
        # past the limits every source shares are typed errors.
        return fields.opt_int(key, default, minimum=0, maximum=MAX_LAYERS if key == "block_count" else MAX_INT)

    n_layer = get("block_count")
    n_embd = get("embedding_length")
    n_head = get("attention.head_count")
    if not n_layer or not n_embd or not n_head:
        notes.append(f"GGUF architecture {arch!r} lacks {arch}.block_count/embedding_length/attention.head_count: "
                     "parameter counts and weights only")
        return None, notes
    _check_against_tensors(fields, tensors, n_layer=n_layer, n_embd=n_embd)
    n_head_kv = get("attention.head_count_kv", n_head) or n_head
    if n_head_kv > n_head:
        raise fields.contradiction("attention.head_count_kv", n_head_kv, "attention.head_count", n_head)
    if not get("attention.key_length") and n_embd < n_head:
        raise fields.contradiction("attention.head_count", n_head, "embedding_length", n_embd,
                                   why="a head dimension of 0 (and no attention.key_length)")
    head_k = get("attention.key_length", n_embd // n_head) or n_embd // n_head
    head_v = get("attention.value_length", head_k) or head_k
    by_name = {t.name: t for t in tensors}
    embd = by_name.get("token_embd.weight")
    tokens = meta.get("tokenizer.ggml.tokens")
    vocab = get("vocab_size") or (embd.shape[1] if embd is not None and len(embd.shape) == 2 else None) or (
        tokens.length if isinstance(tokens, GGUFArray) else 0)
    n_ff = get("feed_forward_length", 0) or 0
    n_expert = get("expert_count", 0) or 0
    n_used = get("expert_used_count", 0) or 0
    n_ff_exp = get("expert_feed_forward_length", 0) or 0
    if n_expert and not n_ff_exp:
        exps = by_name.get("blk.0.ffn_down_exps.weight") or next(
            (t for t in tensors if t.name.endswith("ffn_down_exps.weight")), None)
        n_ff_exp = exps.shape[0] if exps is not None else n_ff
    n_shared = get("expert_shared_count", 0) or 0
    shexp = next((t for t in tensors if t.name.endswith("ffn_down_shexp.weight")), None)
    n_dense = get("leading_dense_block_count", 0) or 0
    moe_layers = tuple(sorted({t.layer for t in tensors if t.name.endswith("_exps.weight") and t.layer is not None}))
    window = get("attention.sliding_window")
    layer_types: tuple[str, ...] = ()
    if window:
        if arch == "gemma3":
            period = get("attention.sliding_window_pattern", 6) or 6  # 5 sliding : 1 full (transformers Gemma3)
            layer_types = tuple("full_attention" if (i + 1) % period == 0 else "sliding_attention" for i in range(n_layer))
        elif arch in ("gemma2", "gpt-oss", "cohere2"):
            layer_types = tuple("sliding_attention" if i % 2 == 0 else "full_attention" for i in range(n_layer))
        else:
            layer_types = ("sliding_attention",) * n_layer
    kv_lora = get("attention.kv_lora_rank")
    q_lora = get("attention.q_lora_rank")
    rope = get("rope.dimension_count")
    mla: dict[str, int | None] = {}
    if kv_lora:
        key_mla = get("attention.key_length_mla")
        value_mla = get("attention.value_length_mla")
        qk_head = key_mla or head_k
        v_head = value_mla or head_v
        if rope and rope > qk_head:
            raise fields.contradiction("rope.dimension_count", rope, "the key length", qk_head,
                                       why="the rotary part of a key cannot exceed the key")
        mla = {"kv_lora_rank": kv_lora, "q_lora_rank": q_lora or None, "qk_rope_head_dim": rope,
               "qk_nope_head_dim": qk_head - (rope or 0), "v_head_dim": v_head}
        head_k = qk_head
    linears = []
    for t in tensors:
        if t.layer != (n_dense if moe_layers else 0) or len(t.shape) < 2 or not t.name.endswith(".weight"):
            continue
        base = t.name.split(".")[2]
        count = t.shape[2] if len(t.shape) > 2 else 1
        leaf = _HF_LINEARS.get(base.removesuffix("_exps").removesuffix("_shexp"), base)
        linears.append(LinearShape(name=leaf, in_features=t.shape[0], out_features=t.shape[1], count=count,
                                   bias=f"blk.{t.layer}.{base}.bias" in by_name))  # fmt: skip
    tie = "output.weight" not in by_name
    architecture = Architecture(
        model_type=arch, family="gguf", num_layers=n_layer, hidden_size=n_embd, num_attention_heads=n_head,
        num_key_value_heads=n_head_kv, head_dim=head_k, intermediate_size=n_ff, vocab_size=vocab,
        tie_word_embeddings=tie, max_position_embeddings=get("context_length"),
        gated_mlp=any(t.name.endswith("ffn_gate.weight") or t.name.endswith("ffn_gate_exps.weight") for t in tensors),
        attention_bias=any(t.name.endswith("attn_q.bias") for t in tensors), layer_types=layer_types,
        sliding_window=window, num_experts=n_expert, num_experts_per_tok=n_used, moe_intermediate_size=n_ff_exp,
        num_shared_experts=n_shared, shared_expert_intermediate_size=(shexp.shape[0] if shexp is not None else 0),
        num_dense_layers=n_dense, moe_layers=moe_layers, linears=tuple(linears),
        v_head_dim=mla.get("v_head_dim") if mla else (head_v if head_v != head_k else None),
        q_lora_rank=mla.get("q_lora_rank"), kv_lora_rank=mla.get("kv_lora_rank"),
        qk_nope_head_dim=mla.get("qk_nope_head_dim"), qk_rope_head_dim=mla.get("qk_rope_head_dim"),
        notes=(f"from GGUF metadata ({arch}.*) and tensor shapes",),
    )  # fmt: skip
    return architecture, notes


class _Metadata(Fields):
    """An architecture's GGUF metadata (``{arch}.*``) read under the limits config.json is read under.

    Per-layer arrays (``head_count_kv`` per layer) read as their largest element; a too-long array
    (kept only as its length) as absent.
    """

    def __init__(self, meta: Mapping[str, object], arch: str, *, source: str):
        prefix = f"{arch}."
        view: dict[str, object] = {}
        for key, value in meta.items():
            if not key.startswith(prefix):
                continue
            if isinstance(value, GGUFArray):
                ints = [v for v in value.values or () if isinstance(v, int) and not isinstance(v, bool)]
                if not ints or len(ints) != len(value.values or ()):
                    continue  # not a per-layer count (a bool pattern, strings): not read as a number
                value = max(ints)
            view[key[len(prefix):]] = value
        super().__init__(view, source=source, prefix=prefix)

    def error(self, name: str, value: object, expected: str) -> errors.MalformedGGUFError:
        return errors.MalformedGGUFError(
            self.source, f"metadata {self.prefix}{name}={excerpt(value)}, expected {expected}: the file is corrupt or "
            "was written by a broken converter; re-convert it with llama.cpp")  # fmt: skip

    def contradiction(self, key: str, value: object, other: str, other_value: object, *,
                      why: str = "a contradiction") -> errors.MalformedGGUFError:
        return errors.MalformedGGUFError(
            self.source, f"metadata {self.prefix}{key}={excerpt(value)} contradicts {other}={excerpt(other_value)} "
            f"({why}): the file is corrupt or was written by a broken converter; re-convert it with llama.cpp")


def _check_against_tensors(fields: _Metadata, tensors: tuple[GGUFTensor, ...], *, n_layer: int, n_embd: int) -> None:
    """The metadata must describe the tensors it ships with: the block count and the embedding width.

    llama.cpp demands the same when it loads a file: it creates ``blk.{i}.*`` for every ``i`` below
    ``block_count`` and fails on a tensor it did not create (``llama-model.cpp`` ``load_tensors``,
    "wrong number of tensors").
    """
    layers = {t.layer for t in tensors if t.layer is not None}
    if layers and max(layers) + 1 != n_layer:
        raise fields.contradiction("block_count", n_layer, "the tensors", f"blk.0 to blk.{max(layers)}",
                                   why="blocks in the file")
    embd = next((t for t in tensors if t.name == "token_embd.weight"), None)
    if embd is not None and len(embd.shape) == 2 and embd.shape[0] != n_embd:
        raise fields.contradiction("embedding_length", n_embd, "token_embd.weight", list(embd.shape),
                                   why="ne0 of the token embedding is the embedding width")


# --- I/O: local files and Hub files -----------------------------------------------------------------


def split_names(filename: str) -> list[str]:
    """Every split file's name for a ``-0000N-of-0000M.gguf`` name (the name itself otherwise)."""
    m = _SPLIT.match(filename)
    if m is None:
        return [filename]
    count = int(m.group("count"))
    if not 1 <= count <= 9999:
        raise errors.MalformedGGUFError(filename, f"split count {count} out of range")
    return [f"{m.group('prefix')}-{i:05d}-of-{count:05d}.gguf" for i in range(1, count + 1)]


def read_local_gguf(path: Path) -> GGUFModelSpec:
    """Read a local ``.gguf`` file's header (every split's, for a split file)."""
    headers = []
    for name in split_names(path.name):
        file = path.with_name(name)
        if not file.is_file():
            raise errors.ModelNotFoundError(str(file), f"split file {str(file)!r} is missing (next to {path.name})")
        size = file.stat().st_size
        with file.open("rb") as handle:
            def fetch(offset: int, length: int, handle=handle) -> bytes:
                handle.seek(offset)
                return handle.read(length)

            headers.append(parse_gguf_header(fetch, source=str(file), file_bytes=size))
    return spec_from_gguf(headers, model_id=str(path))


#: ``org/repo:QUANT`` (llama.cpp -hf) and ``org/repo/file.gguf``.
_QUANT_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+):(?P<quant>[\w.-]+)$")
_FILE_REF = re.compile(r"^(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)/(?P<file>(?:[\w.-]+/)*[\w.-]+\.gguf)$", re.IGNORECASE)


def is_gguf_reference(text: str) -> bool:
    """Whether ``text`` names a GGUF on the Hub (``org/repo:QUANT`` or ``org/repo/file.gguf``)."""
    return bool(_QUANT_REF.match(text) or _FILE_REF.match(text))


def choose_file(files: list[str], quant: str, *, repo_id: str) -> str:
    """The repo's GGUF file for a quant tag, as llama.cpp's ``-hf org/repo:QUANT`` picks it.

    The tag matches case-insensitively as a whole ``[-._]``-separated token of the file name (before a
    split suffix); for a split file the first part is returned. Multimodal projectors are skipped.
    """
    tag = quant.lower()
    candidates = []
    for f in files:
        if not f.lower().endswith(".gguf") or "mmproj" in f.lower():
            continue
        stem = f.rsplit("/", 1)[-1]
        m = _SPLIT.match(stem)
        if m is not None and int(m.group("no")) != 1:
            continue
        base = (m.group("prefix") if m else stem.removesuffix(".gguf")).lower()
        if re.search(rf"(^|[-._]){re.escape(tag)}($|[-._])", base):
            candidates.append(f)
    if not candidates:
        quants = sorted({q for f in files if f.lower().endswith(".gguf") for q in _quant_tags(f)})
        raise errors.ModelNotFoundError(
            f"{repo_id}:{quant}", f"{repo_id!r} has no GGUF file tagged {quant!r}"
            + (f"; it has {', '.join(quants)}" if quants else "; it has no .gguf files"))  # fmt: skip
    return sorted(candidates, key=lambda f: (f.count("/"), len(f), f))[0]


def _quant_tags(filename: str) -> list[str]:
    stem = filename.rsplit("/", 1)[-1]
    m = _SPLIT.match(stem)
    base = m.group("prefix") if m else stem.removesuffix(".gguf")
    tags = []
    for token in re.split(r"[-.]", base):
        try:
            tags.append(normalize_gguf_type(token))
        except errors.UnknownNameError:
            continue
    return tags


def read_hub_gguf(reference: str, *, revision: str | None = None, token: str | bool | None = None) -> GGUFModelSpec:
    """Read a GGUF's header(s) from the Hub by range requests: ``org/repo:QUANT`` or ``org/repo/file.gguf``.

    Every request is retried by the Hub layer's rules and runs within the run's deadline; each answer
    must be the range asked for, and the file size its Content-Range declares bounds the header (tensors
    past the end of the file are refused, as for a local file).
    """
    from hf_gpu_estimator.sources.hub import _endpoint, _hub_errors, model_files, with_deadline

    endpoint = _endpoint()
    m = _QUANT_REF.match(reference)

    def read(repo_id: str, filename: str | None) -> tuple[str, list[GGUFHeader]]:
        if filename is None:
            files, _ = model_files(repo_id, revision=revision, token=token, endpoint=endpoint)
            filename = choose_file(list(files), m.group("quant"), repo_id=repo_id)
        folder, _, stem = filename.rpartition("/")
        headers = []
        for name in split_names(stem):
            path = f"{folder}/{name}" if folder else name
            reader = _RangeReader(repo_id, path, revision=revision, token=token, endpoint=endpoint)
            size = reader.prefetch()
            headers.append(parse_gguf_header(reader.fetch, source=f"{repo_id}/{path}", file_bytes=size))
        return filename, headers

    if m is not None:
        repo_id, named = m.group("repo"), None
    else:
        f = _FILE_REF.match(reference)
        if f is None:
            raise errors.ModelNotFoundError(reference, f"{reference!r} is not org/repo:QUANT or org/repo/file.gguf")
        repo_id, named = f.group("repo"), f.group("file")
    with _hub_errors(reference, revision=revision, endpoint=endpoint, offline=False):
        filename, headers = with_deadline(lambda: read(repo_id, named), source=reference)
    return spec_from_gguf(headers, model_id=f"{repo_id}/{filename}")


class _RangeReader:
    """``fetch(offset, length)`` over HTTP range requests (:func:`~hf_gpu_estimator.sources.hub.ranged_get`)."""

    def __init__(self, repo_id: str, filename: str, *, revision: str | None, token: str | bool | None, endpoint: str):
        from huggingface_hub import hf_hub_url

        self.url = hf_hub_url(repo_id, filename, revision=revision, endpoint=endpoint)
        self.repo_id = repo_id
        self.endpoint = endpoint
        self.token = token
        self.source = f"{repo_id}/{filename}"
        self.head = b""

    def prefetch(self) -> int | None:
        """Read the first window; returns the file size the answer declares (``None`` if it declares none)."""
        self.head, size = self._get(0, FIRST_READ_BYTES)
        return size

    def fetch(self, offset: int, length: int) -> bytes:
        if offset + length <= len(self.head):
            return self.head[offset : offset + length]
        return self._get(offset, length)[0]

    def _get(self, offset: int, length: int) -> tuple[bytes, int | None]:
        from hf_gpu_estimator.sources.hub import _retrying, ranged_get

        data, size, _ = _retrying(
            lambda: ranged_get(self.url, offset, offset + length - 1, token=self.token, source=self.source,
                               endpoint=self.endpoint), endpoint=self.endpoint, repo_id=self.repo_id)  # fmt: skip
        return data[:length], size
