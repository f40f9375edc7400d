"""GGUF: header parsing, naming (local, org/repo:QUANT, org/repo/file.gguf, splits) through the loopback
Hub, llama-quantize's per-tensor mixes against published sizes, and llama.cpp's buffers against its logs."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import hub_server
from gguf_writer import header_bytes, llama_metadata, llama_tensors, write_repo
from hf_gpu_estimator import errors, estimate
from hf_gpu_estimator.memory.llamacpp import llamacpp_memory
from hf_gpu_estimator.quantization import GGUFTensor, MixModel, gguf_tensor_types, normalize_quantization
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.sources.gguf import choose_file, parse_gguf_header, spec_from_gguf

MiB = 1 << 20
TINY = dict(n_layer=4, n_embd=256, n_ff=512, n_head=8, n_head_kv=2, vocab=1000)


def parse(data: bytes, source: str = "t.gguf", file_bytes: int | None = None):
    return parse_gguf_header(lambda o, n: data[o : o + n], source=source, file_bytes=file_bytes)


def mixed(ftype: str, tensors, model: MixModel):
    types = gguf_tensor_types(ftype, [(n, d) for n, d, _ in tensors], model)
    return [(n, d, t) for (n, d, _), t in zip(tensors, types)]


def gguf_spec(ftype: str, *, tied: bool = False, **dims):
    """A GGUF ModelSpec of the given shape, typed as llama-quantize ``ftype`` would write it."""
    tensors = llama_tensors(**dims, tied=tied)
    model = MixModel(arch="llama", n_layer=dims["n_layer"], n_head=dims["n_head"], n_head_kv=dims["n_head_kv"])
    head, _ = header_bytes(llama_metadata(**dims, tokens=False), mixed(ftype, tensors, model))
    return spec_from_gguf([parse(head)], model_id="test"), mixed(ftype, tensors, model)


# --- parsing and naming ---------------------------------------------------------------------------


def test_local_gguf_counts_and_architecture(tmp_path: Path):
    tensors = llama_tensors(**TINY, types={"attn_v.weight": "Q6_K", "weight": "Q4_K"})
    head, size = header_bytes(llama_metadata(**TINY, file_type=15), tensors)
    path = tmp_path / "tiny-Q4_K_M.gguf"
    path.write_bytes(head)
    os.truncate(path, size)
    spec = inspect_model(path)
    assert spec.parameters.total == sum(GGUFTensor(name=n, shape=d, type=t).numel for n, d, t in tensors)
    assert spec.quantization.method == "gguf" and spec.quantization.quant_type == "Q4_K_M"
    a = spec.architecture
    assert (a.num_layers, a.hidden_size, a.num_key_value_heads, a.head_dim, a.vocab_size) == (4, 256, 2, 32, 1000)
    assert spec.checkpoint_bytes == sum(GGUFTensor(name=n, shape=d, type=t).nbytes for n, d, t in tensors)
    assert {lin.name for lin in a.linears} == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_local_split_files_are_summed(tmp_path: Path):
    tensors = llama_tensors(**TINY)
    half = len(tensors) // 2
    for i, part in enumerate((tensors[:half], tensors[half:]), start=1):
        meta = llama_metadata(**TINY, tokens=False) if i == 1 else [("split.no", 2, i - 1)]
        head, size = header_bytes(meta + [("split.count", 2, 2)], part)
        path = tmp_path / f"m-0000{i}-of-00002.gguf"
        path.write_bytes(head)
        os.truncate(path, size)
    spec = inspect_model(tmp_path / "m-00001-of-00002.gguf")
    assert spec.parameters.total == sum(GGUFTensor(name=n, shape=d, type=t).numel for n, d, t in tensors)
    os.remove(tmp_path / "m-00002-of-00002.gguf")
    with pytest.raises(errors.ModelNotFoundError, match="split file"):
        inspect_model(tmp_path / "m-00001-of-00002.gguf")


@pytest.mark.parametrize(("quant", "expected"), [
    ("Q4_K_M", "m-Q4_K_M.gguf"), ("q4_k_m", "m-Q4_K_M.gguf"), ("Q8_0", "big/m-Q8_0-00001-of-00002.gguf"),
    ("IQ2_XXS", "m.IQ2_XXS.gguf"),
], ids=lambda v: str(v))  # fmt: skip
def test_choose_file_by_quant_tag(quant: str, expected: str):
    files = ["m-Q4_K_M.gguf", "m-Q4_K_S.gguf", "big/m-Q8_0-00001-of-00002.gguf", "big/m-Q8_0-00002-of-00002.gguf",
             "m.IQ2_XXS.gguf", "mmproj-Q8_0.gguf", "README.md"]  # fmt: skip
    assert choose_file(files, quant, repo_id="o/r") == expected


def test_choose_file_names_the_quants_it_has():
    with pytest.raises(errors.ModelNotFoundError, match="Q4_K_M, Q8_0"):
        choose_file(["m-Q4_K_M.gguf", "m-Q8_0.gguf"], "Q5_K_M", repo_id="o/r")


@pytest.fixture
def gguf_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, isolated_hf_home: Path):
    """A loopback Hub serving header-only GGUF repos written for the test."""
    from conftest import _patch_hub_constants

    root = tmp_path / "hub"
    tensors = llama_tensors(**TINY, types={"weight": "Q4_K"})
    write_repo(root, "hfge-gguf/tiny-GGUF", {
        "tiny-Q4_K_M.gguf": header_bytes(llama_metadata(**TINY, file_type=15), tensors),
        "tiny-Q8_0.gguf": header_bytes(llama_metadata(**TINY, file_type=7), llama_tensors(**TINY, types={"weight": "Q8_0"})),
    })  # fmt: skip
    half = len(tensors) // 2
    write_repo(root, "hfge-gguf/split-GGUF", {
        "s-Q4_K_M-00001-of-00002.gguf": header_bytes(llama_metadata(**TINY) + [("split.count", 2, 2)], tensors[:half]),
        "s-Q4_K_M-00002-of-00002.gguf": header_bytes([("split.no", 2, 1), ("split.count", 2, 2)], tensors[half:]),
    })  # fmt: skip
    hub = hub_server.start(root=root)
    monkeypatch.setenv("HF_ENDPOINT", hub.endpoint)
    _patch_hub_constants(monkeypatch, home=isolated_hf_home, endpoint=hub.endpoint, offline=False)
    yield hub
    hub.stop()


@pytest.mark.parametrize("name", ["hfge-gguf/tiny-GGUF:Q4_K_M", "hfge-gguf/tiny-GGUF:q4_k_m",
                                  "hfge-gguf/tiny-GGUF/tiny-Q4_K_M.gguf", "hfge-gguf/split-GGUF:Q4_K_M"])
def test_hub_gguf_by_quant_tag_and_file(gguf_hub, name: str):
    spec = inspect_model(name)
    assert spec.parameters.total == sum(GGUFTensor(name=n, shape=d, type=t).numel for n, d, t in llama_tensors(**TINY))
    ranged = [r for r in gguf_hub.requests if r.range]
    assert ranged and all(r.status == 206 for r in ranged)


def test_hub_gguf_unknown_quant_and_missing_repo(gguf_hub):
    with pytest.raises(errors.ModelNotFoundError, match="Q4_K_M, Q8_0"):
        inspect_model("hfge-gguf/tiny-GGUF:Q2_K")
    with pytest.raises(errors.ModelNotFoundError):
        inspect_model("hfge-gguf/none-GGUF:Q4_K_M")


def test_estimate_of_a_hub_gguf_uses_llamacpp(gguf_hub):
    est = estimate("hfge-gguf/tiny-GGUF:Q8_0", seq_len=1000, new_tokens=24, gpu_layers=2, cache_type_k="q8_0")
    assert est.memory.phase_at_peak == "llama.cpp buffers"
    assert est.memory.host_offload_bytes > 0  # token_embd and two layers stay on the host
    # head size 32: ggml-cuda has no flash-attention kernel, -fa auto turns it off, and llama.cpp refuses a
    # quantized V cache without it ("V cache quantization requires flash_attn"), in estimate as in plan
    with pytest.raises(errors.ConflictingOptionsError, match="cache_type_v"):
        estimate("hfge-gguf/tiny-GGUF:Q8_0", seq_len=1000, new_tokens=24, kv_cache_dtype="q8_0")
    with pytest.raises(errors.ConflictingOptionsError):
        estimate("hfge-gguf/tiny-GGUF:Q8_0", task="training", method="lora")


# --- llama-quantize mixes against published sizes ----------------------------------------------------

#: ggml-org/llama.cpp tools/quantize/README.md, "meta-llama/Llama-3.1-8B": size (GiB) per quant type.
LLAMA31_8B_GIB = {
    "IQ1_S": 1.87, "IQ1_M": 2.01, "IQ2_XXS": 2.23, "IQ2_XS": 2.42, "IQ2_S": 2.56, "IQ2_M": 2.74, "IQ3_XXS": 3.04,
    "IQ3_XS": 3.27, "IQ3_S": 3.42, "IQ3_M": 3.52, "IQ4_XS": 4.17, "IQ4_NL": 4.38, "Q2_K_S": 2.78, "Q2_K": 2.95,
    "Q3_K_S": 3.41, "Q3_K_L": 4.02, "Q4_K_S": 4.36, "Q4_K_M": 4.58, "Q5_K_S": 5.21, "Q5_K_M": 5.33, "Q6_K": 6.14,
    "Q8_0": 7.95, "F16": 14.96,
}  # fmt: skip
LLAMA3_8B = dict(n_layer=32, n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8, vocab=128256)


@pytest.mark.parametrize(("ftype", "gib"), LLAMA31_8B_GIB.items(), ids=list(LLAMA31_8B_GIB))
def test_scheme_size_matches_llamacpp_table(ftype: str, gib: float):
    # Tolerance 1 % (the issue asks 2 %; every type lands within 0.2 %).
    spec, _ = gguf_spec(ftype, **LLAMA3_8B)
    assert spec.checkpoint_bytes / 2**30 == pytest.approx(gib, rel=0.01)


def test_q4_k_m_tensor_types_match_a_real_file():
    # llama-3-Korean-Bllossom-8B-Q4_K_M.gguf (Llama-3-8B shapes, mradermacher): "type f32: 65 tensors,
    # type q4_K: 193 tensors, type q6_K: 33 tensors" (github.com/developer0hye/llama-3-korean-bllossom-8b-q4-docker).
    _, tensors = gguf_spec("Q4_K_M", **LLAMA3_8B)
    counts: dict[str, int] = {}
    for _, _, t in tensors:
        counts[t] = counts.get(t, 0) + 1
    assert counts == {"F32": 65, "Q4_K": 193, "Q6_K": 33}


#: bartowski/<model>-GGUF file sizes in bytes (header included), as tabulated in ShelbyJenkins/llm_client's GGUF
#: presets: fused-QKV (phi3 attn_qkv) checkpoints, whose mix follows llama-quant.cpp's own attn_qkv branch.
PHI3_FILE_BYTES = {
    "microsoft/Phi-3-medium-4k-instruct": {"Q2_K": 5143000448, "Q3_K_M": 6923411328, "Q4_K_M": 8566821248,
                                           "Q5_K_M": 10074190208, "Q6_K": 11453817728},
    "microsoft/Phi-3-mini-4k-instruct": {"Q2_K": 1416203264, "Q3_K_M": 1955475968, "Q4_K_M": 2393231360,
                                         "Q5_K_M": 2815275008, "Q6_K": 3135852032},
}  # fmt: skip


@pytest.mark.parametrize("model", list(PHI3_FILE_BYTES))
def test_fused_qkv_mixes_match_published_files(model: str):
    """attn_qkv keeps Q2_K under Q2_K and takes Q5_K under Q4_K_M, Q6_K under Q5_K_M (the attn_v rule put
    Q2_K 6.5-7.2 % over and Q5_K_M 1-2 % under); the files' headers are the remaining < 0.1 %."""
    from hf_gpu_estimator.quantization import gguf_scheme_bytes

    spec = lookup(model)
    for ftype, size in PHI3_FILE_BYTES[model].items():
        assert gguf_scheme_bytes(spec, ftype)[0] == pytest.approx(size, rel=0.001), ftype


#: Published gpt-oss GGUF sizes, every one with the experts kept MXFP4: llama-bench's model size (GiB, tensor data)
#: of ggml-org/gpt-oss-120b-GGUF (MXFP4_MOE) and unsloth's gpt-oss-120b-F16.gguf (community.frame.work/t/73280/26);
#: unsloth/gpt-oss-120b-GGUF per quant (ailocalcheck.com/model/unsloth/gpt-oss-120b-GGUF, labelled GB, in GiB: its
#: F16 60.88 is llama-bench's 60.87 GiB); bartowski/openai_gpt-oss-20b-GGUF README (llama.cpp b6096, GB).
GPT_OSS_GIB = {"openai/gpt-oss-120b": {"MXFP4_MOE": 59.02, "F16": 60.87, "Q2_K": 58.27, "Q4_K_M": 58.46,
                                       "Q6_K": 58.94}}
GPT_OSS_GB = {"openai/gpt-oss-20b": {"MXFP4_MOE": 12.1, "Q6_K": 12.04}}


def test_gpt_oss_quants_keep_the_mxfp4_experts():
    """Published gpt-oss files keep the MXFP4 experts under every ftype (llama-quantize's own rule would
    requantize them: Q4_K_M 15.8 GB for gpt-oss-20b, its experts Q5_0/Q8_0 by the block-size fallback)."""
    from hf_gpu_estimator.quantization import gguf_scheme_bytes

    for model, sizes in GPT_OSS_GIB.items():
        for ftype, gib in sizes.items():
            assert gguf_scheme_bytes(lookup(model), ftype)[0] / 2**30 == pytest.approx(gib, rel=0.001), ftype
    for model, sizes in GPT_OSS_GB.items():
        for ftype, gb in sizes.items():
            assert gguf_scheme_bytes(lookup(model), ftype)[0] / 1e9 == pytest.approx(gb, rel=0.005), ftype
    # The sweep's own file, huggingface.co/unsloth/gpt-oss-20b-GGUF/resolve/main/gpt-oss-20b-Q4_K_M.gguf:
    # 11,624,759,488 bytes (header and tokenizer included); requantized experts would make it 15.8 GB.
    total, by_type = gguf_scheme_bytes(lookup("openai/gpt-oss-20b"), "Q4_K_M")
    assert total == pytest.approx(11_624_759_488, rel=0.002)
    assert by_type["MXFP4"] == 72 * 2880 * 2880 * 32 * 17 // 32  # 24 layers x gate/up/down, 134.4 MiB each


@pytest.mark.parametrize("text", ["gguf:iq3_M", "gguf:iq2_m", "gguf:fp16", "gguf:Q4_K", "gguf:bf16", "GGUF:tq1_0"])
def test_every_llamacpp_type_name_is_accepted(text: str):
    assert normalize_quantization(text).startswith("gguf:")


def test_scheme_estimate_on_a_transformers_model_matches_the_table():
    est = estimate("meta-llama/Llama-3.1-8B", quantization="gguf:Q3_K_L", seq_len=512, new_tokens=0)
    host_and_gpu = est.memory.components["weights"] + est.memory.host_offload_bytes
    assert host_and_gpu / 2**30 == pytest.approx(LLAMA31_8B_GIB["Q3_K_L"], rel=0.02)


# --- llama.cpp buffers against its logs ---------------------------------------------------------------


def test_llama3_8b_q4_k_m_buffers_match_llamacpp_log():
    # developer0hye/llama-3-korean-bllossom-8b-q4-docker README (llama.cpp via llama-cpp-python, -ngl 33,
    # n_ctx 512, flash_attn 0): "CPU buffer size = 281.81 MiB", "CUDA0 buffer size = 4403.49 MiB",
    # "KV self size = 64.00 MiB", "CUDA0 compute buffer size = 258.50 MiB". Tolerance 0.1 %.
    spec, _ = gguf_spec("Q4_K_M", **LLAMA3_8B)
    m = llamacpp_memory(spec, n_ctx=512, flash_attention=False)
    assert m.weights_host / MiB == pytest.approx(281.81, rel=1e-3)
    assert m.weights_gpu / MiB == pytest.approx(4403.49, rel=1e-3)
    assert m.kv / MiB == 64.0
    assert m.compute_buffer / MiB == pytest.approx(258.50, rel=1e-3)


def test_trilm_f16_buffers_match_llamacpp_log():
    # mozilla-ai/llamafile PR #552 (TriLM 3.9B, n_ctx 512, flash_attn 0, 31/31 layers): "CPU buffer size =
    # 297.00 MiB", "KV self size = 180.00 MiB", "CUDA0 compute buffer size = 105.00 MiB". Tolerance 0.1 %.
    spec, _ = gguf_spec("F16", n_layer=30, n_embd=3072, n_ff=8192, n_head=24, n_head_kv=24, vocab=50688)
    m = llamacpp_memory(spec, n_ctx=512, flash_attention=False)
    assert m.weights_host / MiB == pytest.approx(297.00, rel=1e-3)
    assert m.kv / MiB == 180.0
    assert m.compute_buffer / MiB == pytest.approx(105.00, rel=1e-3)


def test_qwen25_3b_tied_buffers_match_llamacpp_log():
    # SciSharp/LLamaSharp issue #1099 (Qwen2.5-3B shapes: 36 layers, 2 KV heads, vocab 151936, tied):
    # "KV self size = 144.00 MiB" (n_ctx 4096), "CUDA0 compute buffer size = 300.75 MiB". Tolerance 0.1 %.
    dims = dict(n_layer=36, n_embd=2048, n_ff=11008, n_head=16, n_head_kv=2, vocab=151936)
    spec, _ = gguf_spec("Q4_K_M", tied=True, **dims)
    m = llamacpp_memory(spec, n_ctx=4096)
    assert m.kv / MiB == 144.0
    assert m.compute_buffer / MiB == pytest.approx(300.75, rel=1e-3)
    # Tied: the output layer reads token_embd again, a copy on the GPU.
    embd = next(t for t in spec.gguf_tensors if t.name == "token_embd.weight")
    assert m.weights_host == embd.nbytes
    assert m.weights_gpu == spec.checkpoint_bytes


def test_qwen3_14b_q8_0_at_ngl_0_matches_llamacpp_log():
    # ROCm/ROCm issue #5104 (llama.cpp build 5898 cbc68be5, Qwen3-14B-Q8_0.gguf, "offloaded 0/41 layers to GPU",
    # n_ctx 4096, n_ubatch 512, flash_attn 0): "CPU_Mapped model buffer size = 14965.61 MiB", "CPU KV buffer
    # size = 640.00 MiB", "ROCm0 compute buffer size = 1094.99 MiB": with every layer in host memory the GPU still
    # runs the products (op offload) and stages output.weight (788.25 MiB) beside the 512 logits rows that
    # release reserved. Tolerance 0.1 %.
    from hf_gpu_estimator.sources.catalog import lookup

    m = llamacpp_memory(lookup("Qwen/Qwen3-14B"), n_ctx=4096, n_gpu_layers=0, quantization="gguf:Q8_0",
                        flash_attention=False)
    assert m.weights_gpu == 0 and m.kv_gpu == 0
    assert m.weights_host / MiB == pytest.approx(14965.61, rel=1e-3)
    assert m.kv_host / MiB == 640.0
    assert m.compute_buffer / MiB == pytest.approx(1094.99, rel=1e-3)


def test_gpu_layers_and_kv_types():
    spec, _ = gguf_spec("Q4_K_M", **LLAMA3_8B)
    full = llamacpp_memory(spec, n_ctx=8192)
    assert full.kv == 1024 * MiB  # 8192 x 32 layers x 2 x 1024 x 2 B
    assert llamacpp_memory(spec, n_ctx=8192, kv_type="q8_0").kv == 1024 * MiB * 34 // 64
    assert llamacpp_memory(spec, n_ctx=8192, kv_type="q4_0").kv == 1024 * MiB * 18 // 64
    none = llamacpp_memory(spec, n_ctx=8192, n_gpu_layers=0)
    assert none.weights_gpu == 0 and none.kv_gpu == 0
    # -ngl 0 still runs a 512-token micro-batch's products on the GPU, staging the host matrices (op offload);
    # under 32 tokens nothing is offloaded
    assert none.compute_buffer > 0
    assert llamacpp_memory(spec, n_ctx=8192, n_gpu_layers=0, n_ubatch=16).compute_buffer == 0
    assert none.weights_host == spec.checkpoint_bytes
    half = llamacpp_memory(spec, n_ctx=8192, n_gpu_layers=16)
    assert (half.kv_gpu, half.kv_host) == (15 * 32 * MiB, 17 * 32 * MiB)  # the output layer counts as one of 16
    assert 0 < half.weights_gpu < full.weights_gpu
    # -ngl 32 of 33: the output layer is on the GPU, block 0 is not.
    top = llamacpp_memory(spec, n_ctx=8192, n_gpu_layers=32)
    assert top.kv_gpu == 31 * 32 * MiB
    with pytest.raises(errors.InvalidArgumentError):
        llamacpp_memory(spec, n_ctx=8192, kv_type="q3_k")


def test_moe_and_sliding_window_architectures():
    from gguf_writer import U32

    dims = dict(n_layer=4, n_embd=256, n_ff=128, n_head=8, n_head_kv=2, vocab=1000)
    moe = [("llama.expert_count", U32, 8), ("llama.expert_used_count", U32, 2)]
    head, _ = header_bytes(llama_metadata(**dims, tokens=False, extra=moe), llama_tensors(**dims, n_expert=8))
    spec = spec_from_gguf([parse(head)], model_id="moe")
    a = spec.architecture
    assert (a.num_experts, a.num_experts_per_tok, a.moe_intermediate_size, a.moe_layers) == (8, 2, 128, (0, 1, 2, 3))
    assert spec.parameters.by_role["experts"] == 4 * 3 * 256 * 128 * 8
    assert spec.parameters.active < spec.parameters.total
    swa = [("gemma3.attention.sliding_window", U32, 512)]
    head, _ = header_bytes(llama_metadata("gemma3", **{**dims, "n_layer": 6}, tokens=False, extra=swa),
                           llama_tensors(**{**dims, "n_layer": 6}))
    g = spec_from_gguf([parse(head)], model_id="g3")
    assert g.architecture.sliding_layers == 5
    m = llamacpp_memory(g, n_ctx=8192)
    per_cell = 2 * 64 * 2  # K + V rows of 2 KV heads x head_dim 32, f16
    assert m.kv == (8192 + 5 * 1024) * per_cell  # sliding layers keep pad(512 + 512, 256) cells
