"""A small GGUF writer for tests: header bytes (metadata + tensor infos) in the layout of
ggml-org/llama.cpp ggml/src/gguf.cpp, and model-shaped tensor lists (names as convert_hf_to_gguf.py
writes them). Tensor data is never written: fixtures are header-only, their full size is known.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path

from hf_gpu_estimator.quantization import GGUF_TYPES, GGUFTensor

U8, I8, U16, I16, U32, I32, F32, BOOL, STRING, ARRAY, U64, I64, F64 = range(13)
_FMT = {U8: "<B", I8: "<b", U16: "<H", I16: "<h", U32: "<I", I32: "<i", F32: "<f", BOOL: "<?", U64: "<Q",
        I64: "<q", F64: "<d"}  # fmt: skip


def gstr(text: str | bytes) -> bytes:
    raw = text.encode() if isinstance(text, str) else text
    return struct.pack("<Q", len(raw)) + raw


def value(kind: int, v: object) -> bytes:
    if kind == STRING:
        return gstr(v)  # type: ignore[arg-type]
    if kind == ARRAY:
        item, items = v  # type: ignore[misc]
        return struct.pack("<IQ", item, len(items)) + b"".join(value(item, x) for x in items)
    return struct.pack(_FMT[kind], v)


def kv(key: str, kind: int, v: object) -> bytes:
    return gstr(key) + struct.pack("<I", kind) + value(kind, v)


def header_bytes(metadata: list[tuple[str, int, object]], tensors: list[tuple[str, tuple[int, ...], str]], *,
                 alignment: int = 32, version: int = 3) -> tuple[bytes, int]:
    """(header bytes padded to the alignment, full file size) for ``tensors`` laid out back to back."""
    out = [b"GGUF", struct.pack("<IQQ", version, len(tensors), len(metadata))]
    out += [kv(k, t, v) for k, t, v in metadata]
    offset = 0
    for name, dims, kind in tensors:
        out.append(gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims)
                   + struct.pack("<IQ", GGUF_TYPES[kind].id, offset))  # fmt: skip
        nbytes = GGUFTensor(name=name, shape=dims, type=kind).nbytes
        offset += -(-nbytes // alignment) * alignment
    head = b"".join(out)
    head += b"\0" * (-len(head) % alignment)
    return head, len(head) + offset


def llama_tensors(*, n_layer: int, n_embd: int, n_ff: int, n_head: int, n_head_kv: int, vocab: int,
                  types: dict[str, str] | None = None, tied: bool = False, n_expert: int = 0,
                  bias: bool = False) -> list[tuple[str, tuple[int, ...], str]]:
    """A llama-style tensor list (ggml dims: row length first); ``types`` maps a name suffix to its type."""
    types = types or {}
    head_dim = n_embd // n_head

    def kind(name: str, default: str = "F16") -> str:
        return next((t for suffix, t in types.items() if name.endswith(suffix)), default)

    out = [("token_embd.weight", (n_embd, vocab), kind("token_embd.weight")),
           ("output_norm.weight", (n_embd,), "F32")]
    if not tied:
        out.append(("output.weight", (n_embd, vocab), kind("output.weight")))
    for i in range(n_layer):
        p = f"blk.{i}."
        out += [(p + "attn_norm.weight", (n_embd,), "F32"), (p + "ffn_norm.weight", (n_embd,), "F32"),
                (p + "attn_q.weight", (n_embd, n_head * head_dim), kind("attn_q.weight")),
                (p + "attn_k.weight", (n_embd, n_head_kv * head_dim), kind("attn_k.weight")),
                (p + "attn_v.weight", (n_embd, n_head_kv * head_dim), kind("attn_v.weight")),
                (p + "attn_output.weight", (n_head * head_dim, n_embd), kind("attn_output.weight"))]  # fmt: skip
        if bias:
            out += [(p + "attn_q.bias", (n_head * head_dim,), "F32"), (p + "attn_k.bias", (n_head_kv * head_dim,), "F32"),
                    (p + "attn_v.bias", (n_head_kv * head_dim,), "F32")]  # fmt: skip
        if n_expert:
            out += [(p + "ffn_gate_inp.weight", (n_embd, n_expert), "F32"),
                    (p + "ffn_gate_exps.weight", (n_embd, n_ff, n_expert), kind("ffn_gate_exps.weight")),
                    (p + "ffn_up_exps.weight", (n_embd, n_ff, n_expert), kind("ffn_up_exps.weight")),
                    (p + "ffn_down_exps.weight", (n_ff, n_embd, n_expert), kind("ffn_down_exps.weight"))]  # fmt: skip
        else:
            out += [(p + "ffn_gate.weight", (n_embd, n_ff), kind("ffn_gate.weight")),
                    (p + "ffn_up.weight", (n_embd, n_ff), kind("ffn_up.weight")),
                    (p + "ffn_down.weight", (n_ff, n_embd), kind("ffn_down.weight"))]  # fmt: skip
    return out


def llama_metadata(arch: str = "llama", *, n_layer: int, n_embd: int, n_ff: int, n_head: int, n_head_kv: int,
                   vocab: int, context: int = 4096, file_type: int = 1, tokens: bool = True,
                   extra: list[tuple[str, int, object]] = ()) -> list[tuple[str, int, object]]:  # type: ignore[assignment]
    meta = [("general.architecture", STRING, arch), ("general.name", STRING, f"test {arch}"),
            (f"{arch}.block_count", U32, n_layer), (f"{arch}.context_length", U32, context),
            (f"{arch}.embedding_length", U32, n_embd), (f"{arch}.feed_forward_length", U32, n_ff),
            (f"{arch}.attention.head_count", U32, n_head), (f"{arch}.attention.head_count_kv", U32, n_head_kv),
            (f"{arch}.attention.layer_norm_rms_epsilon", F32, 1e-5), ("general.file_type", U32, file_type)]  # fmt: skip
    meta += list(extra)
    if tokens:
        meta += [("tokenizer.ggml.model", STRING, "gpt2"),
                 ("tokenizer.ggml.tokens", ARRAY, (STRING, [f"tok{i}" for i in range(vocab)])),
                 ("tokenizer.ggml.scores", ARRAY, (F32, [0.0] * vocab)),
                 ("tokenizer.ggml.token_type", ARRAY, (I32, [1] * vocab))]  # fmt: skip
    return meta


def write_repo(root: Path, repo_id: str, files: dict[str, tuple[bytes, int]]) -> Path:
    """Write header-only GGUF files into a loopback-Hub repo folder, with their full sizes in _repo.json."""
    folder = root / repo_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, (head, _) in files.items():
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(head)
    (folder / "_repo.json").write_text(json.dumps({"sizes": {n.rsplit("/", 1)[-1]: size for n, (_, size) in files.items()}}))
    return folder
