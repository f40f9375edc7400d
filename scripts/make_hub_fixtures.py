"""Regenerate tests/data/hub/: tiny Hub repos of config.json + header-only safetensors files.

Each model is built by transformers on the meta device; its state dict's names, shapes and
dtypes become a safetensors header whose data offsets describe a body that is not written
(only the 8-byte length and the header JSON are). The loopback Hub stand-in
(tests/hub_server.py) reports the full virtual size and serves range requests inside the
header, which is all a header reader asks for.

Run: .venv/bin/python scripts/make_hub_fixtures.py   (needs torch + transformers)
"""

from __future__ import annotations

import json
import shutil
import struct
import sys
from pathlib import Path

import torch
import transformers

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from checkpoint_layouts import awq, bnb4, fp8_channel, gptq, mxfp4  # noqa: E402

from hf_gpu_estimator.sources.safetensors_header import build_header_bytes
from hf_gpu_estimator.spec import TORCH_TO_SAFETENSORS

ROOT = Path(__file__).resolve().parent.parent / "tests" / "data" / "hub"
ORG = "hfge-test"

TINY_LLAMA = {
    "model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 256,
    "max_position_embeddings": 128, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
}  # fmt: skip
TINY_QWEN2 = {
    "model_type": "qwen2", "architectures": ["Qwen2ForCausalLM"], "hidden_size": 64, "intermediate_size": 160,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 320,
    "max_position_embeddings": 128, "tie_word_embeddings": True, "dtype": "bfloat16",
}  # fmt: skip
TINY_GPT2 = {
    "model_type": "gpt2", "architectures": ["GPT2LMHeadModel"], "n_embd": 64, "n_layer": 2, "n_head": 4,
    "vocab_size": 256, "n_positions": 64, "torch_dtype": "float32", "bos_token_id": 0, "eos_token_id": 0,
}  # fmt: skip

TINY_GPT_OSS = {
    "model_type": "gpt_oss", "architectures": ["GptOssForCausalLM"], "hidden_size": 64, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
    "num_local_experts": 4, "num_experts_per_tok": 2, "experts_per_token": 2, "vocab_size": 256,
    "layer_types": ["sliding_attention", "full_attention"], "sliding_window": 8, "max_position_embeddings": 128,
    "attention_bias": True, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    "quantization_config": {"quant_method": "mxfp4", "modules_to_not_convert": [
        "model.layers.*.self_attn", "model.layers.*.mlp.router", "model.embed_tokens", "lm_head"]},
}  # fmt: skip

Tensors = list[tuple[str, str, tuple[int, ...]]]


def meta_state(config: dict, dtype: torch.dtype) -> Tensors:
    """(name, safetensors dtype, shape) of the model transformers builds from ``config``."""
    cfg = transformers.AutoConfig.for_model(**{k: v for k, v in config.items() if k != "quantization_config"})
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(cfg, dtype=dtype)
    return [(n, TORCH_TO_SAFETENSORS[str(t.dtype).removeprefix("torch.")], tuple(t.shape))
            for n, t in model.state_dict().items()]  # fmt: skip


def write_safetensors(path: Path, tensors: Tensors) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    data, _ = build_header_bytes(tensors, metadata={"format": "pt"})
    path.write_bytes(data)  # header only: the body is virtual


def write_repo(name: str, config: dict | None, files: dict[str, Tensors] | None = None, *,
               sharded: bool = False, repo: dict | None = None) -> Path:  # fmt: skip
    folder = ROOT / ORG / name
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    if config is not None:
        (folder / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    for filename, tensors in (files or {}).items():
        write_safetensors(folder / filename, tensors)
    if sharded and files:
        total = sum(build_header_bytes(t)[1] for t in files.values())
        weight_map = {n: f for f, ts in files.items() for n, _, _ in ts}
        (folder / "model.safetensors.index.json").write_text(
            json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map}, indent=2) + "\n"
        )
    if repo:
        (folder / "_repo.json").write_text(json.dumps(repo, indent=2) + "\n")
    return folder


def shard(tensors: Tensors, n: int) -> dict[str, Tensors]:
    out: dict[str, Tensors] = {f"model-{i + 1:05d}-of-{n:05d}.safetensors": [] for i in range(n)}
    names = list(out)
    for i, t in enumerate(tensors):
        out[names[i * n // len(tensors)]].append(t)
    return out


def _varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte, value = value & 0x7F, value >> 7
        out.append(byte | (0x80 if value else 0))
        if not value:
            return bytes(out)


def sentencepiece_model(pieces: int) -> bytes:
    """A sentencepiece ``tokenizer.model`` with ``pieces`` entries, in protobuf wire format.

    sentencepiece_model.proto: ``ModelProto { repeated SentencePiece pieces = 1; TrainerSpec
    trainer_spec = 2; ... }``, ``SentencePiece { string piece = 1; float score = 2; Type type = 3; }``.
    """
    out = bytearray()
    for i in range(pieces):
        text = f"<{i}>".encode()
        piece = b"\x0a" + _varint(len(text)) + text + b"\x15" + struct.pack("<f", -float(i)) + b"\x18\x01"
        out += b"\x0a" + _varint(len(piece)) + piece
    trainer = b"\x18" + _varint(pieces)  # TrainerSpec.vocab_size (field 3, varint)
    return bytes(out + b"\x12" + _varint(len(trainer)) + trainer)


#: Meta's params.json for a tiny Llama-2-style model (keys as github.com/meta-llama/llama ModelArgs).
TINY_META_PARAMS = {"dim": 64, "multiple_of": 32, "n_heads": 4, "n_kv_heads": 2, "n_layers": 2, "norm_eps": 1e-05,
                    "vocab_size": -1}  # fmt: skip
#: Llama-2-13B's params.json as Meta publishes it (https://huggingface.co/meta-llama/Llama-2-13b/blob/main/params.json).
LLAMA2_13B_PARAMS = {"dim": 5120, "multiple_of": 256, "n_heads": 40, "n_layers": 40, "norm_eps": 1e-05, "vocab_size": -1}


def write_meta_repo(name: str, params: dict, *, folder: str = "", pth_bytes: tuple[int, ...], tokenizer_pieces: int | None,
                    org: str = ORG, repo: dict | None = None) -> Path:  # fmt: skip
    """Meta's layout: params.json, consolidated.NN.pth stubs (their size declared in _repo.json), tokenizer.model."""
    root = ROOT / org / name
    shutil.rmtree(root, ignore_errors=True)
    where = root / folder
    where.mkdir(parents=True)
    (where / "params.json").write_text(json.dumps(params) + "\n")
    sizes = {}
    for i, size in enumerate(pth_bytes):
        (where / f"consolidated.{i:02d}.pth").write_bytes(b"")
        sizes[f"{folder}consolidated.{i:02d}.pth"] = size
    if tokenizer_pieces is not None:
        (where / "tokenizer.model").write_bytes(sentencepiece_model(tokenizer_pieces))
    (root / "_repo.json").write_text(json.dumps({**(repo or {}), "sizes": sizes}, indent=2) + "\n")
    return root


def main() -> None:
    shutil.rmtree(ROOT, ignore_errors=True)
    llama = meta_state(TINY_LLAMA, torch.bfloat16)
    # Llama-2 era checkpoints stored the rotary inv_freq buffer of every layer.
    inv_freq = [(f"model.layers.{i}.self_attn.rotary_emb.inv_freq", "F32", (8,)) for i in range(2)]
    write_repo("tiny-llama", TINY_LLAMA, {"model.safetensors": llama + inv_freq},
               repo={"revisions": {"v1.0": "1111111111111111111111111111111111111111"}})  # fmt: skip
    write_repo("gated-llama", TINY_LLAMA, {"model.safetensors": llama}, repo={"gated": True})

    qwen = meta_state(TINY_QWEN2, torch.bfloat16)
    if not any(n == "lm_head.weight" for n, _, _ in qwen):
        raise SystemExit("expected the tied lm_head.weight in the qwen2 state dict")
    write_repo("tiny-qwen2-sharded", TINY_QWEN2, shard(qwen, 3), sharded=True)

    gpt2 = [(n.removeprefix("transformer."), d, s) for n, d, s in meta_state(TINY_GPT2, torch.float32)
            if n != "lm_head.weight" and not n.endswith((".attn.bias", ".attn.masked_bias"))]  # fmt: skip
    for i in range(TINY_GPT2["n_layer"]):  # modeling_gpt2 registered these as persistent buffers
        gpt2 += [(f"h.{i}.attn.bias", "F32", (1, 1, 64, 64)), (f"h.{i}.attn.masked_bias", "F32", ())]
    write_repo("tiny-gpt2", TINY_GPT2, {"model.safetensors": gpt2})

    gptq_config = {**TINY_LLAMA, "torch_dtype": "float16", "quantization_config": {
        "quant_method": "gptq", "bits": 4, "group_size": 32, "desc_act": False, "sym": True}}  # fmt: skip
    write_repo("tiny-llama-gptq", gptq_config, {"model.safetensors": gptq(llama, 4, 32)})

    bnb_config = {**TINY_LLAMA, "quantization_config": {
        "quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
        "bnb_4bit_compute_dtype": "bfloat16", "bnb_4bit_use_double_quant": False}}  # fmt: skip
    write_repo("tiny-llama-bnb4", bnb_config, {"model.safetensors": bnb4(llama)})

    awq_config = {**TINY_LLAMA, "torch_dtype": "float16", "quantization_config": {
        "quant_method": "awq", "bits": 4, "group_size": 32, "version": "gemm", "zero_point": True}}  # fmt: skip
    write_repo("tiny-llama-awq", awq_config, {"model.safetensors": awq(llama, 4, 32)})

    # compressed-tensors FP8, per-channel weights (RedHatAI/neuralmagic "-FP8" checkpoints' config shape).
    fp8_config = {**TINY_LLAMA, "quantization_config": {
        "quant_method": "compressed-tensors", "format": "float-quantized", "ignore": ["lm_head"],
        "config_groups": {"group_0": {"targets": ["Linear"], "input_activations": {
            "num_bits": 8, "type": "float", "strategy": "token", "dynamic": True, "symmetric": True},
            "weights": {"num_bits": 8, "type": "float", "strategy": "channel", "dynamic": False,
                        "symmetric": True}}}}}  # fmt: skip
    write_repo("tiny-llama-fp8", fp8_config, {"model.safetensors": fp8_channel(llama)})

    # gpt-oss with MXFP4 experts (config fields and quantization_config as openai/gpt-oss-20b's).
    oss = meta_state(TINY_GPT_OSS, torch.bfloat16)
    write_repo("tiny-gpt-oss-mxfp4", TINY_GPT_OSS, {"model.safetensors": mxfp4(oss)})

    write_repo("config-only", TINY_LLAMA)
    bad = write_repo("bad-config", None)
    (bad / "config.json").write_text('{"model_type": "llama", "hidden_size": 64,\n')
    oversized = write_repo("bad-header", TINY_LLAMA)
    (oversized / "model.safetensors").write_bytes(struct.pack("<Q", 200_000_000) + b'{"a":')
    truncated = write_repo("truncated-header", TINY_LLAMA)
    (truncated / "model.safetensors").write_bytes(struct.pack("<Q", 5000) + b'{"model.embed_tokens.weight": {"dty')

    # Meta's original layout; sizes: 2 bytes (bf16) per parameter (131,392 and 149,312 parameters).
    write_meta_repo("tiny-llama-meta", TINY_META_PARAMS, pth_bytes=(2 * 131_392,), tokenizer_pieces=256)
    write_meta_repo("gated-llama-meta", TINY_META_PARAMS, pth_bytes=(2 * 131_392,), tokenizer_pieces=256,
                    repo={"gated": True})  # fmt: skip
    write_meta_repo("tiny-llama3-original", {**TINY_META_PARAMS, "vocab_size": 300, "ffn_dim_multiplier": 1.3,
                                             "rope_theta": 500000.0}, folder="original/",
                    pth_bytes=(2 * 149_312,), tokenizer_pieces=None)  # fmt: skip
    # The real Llama-2-13b params.json, gated as on the Hub; shard sizes derived (2 bytes x 13,015,864,320
    # parameters, halved over two model-parallel files), not the Hub's own figures.
    write_meta_repo("Llama-2-13b", LLAMA2_13B_PARAMS, org="meta-llama", pth_bytes=(13_015_864_320, 13_015_864_320),
                    tokenizer_pieces=None, repo={"gated": True})  # fmt: skip

    big = {**TINY_LLAMA, "num_hidden_layers": 8}
    write_repo("sharded-30", big, shard(meta_state(big, torch.bfloat16), 30), sharded=True)
    print(f"wrote {sum(1 for _ in ROOT.rglob('*') if _.is_file())} files under {ROOT}")


if __name__ == "__main__":
    main()
