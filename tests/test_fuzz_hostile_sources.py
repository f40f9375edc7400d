"""Structured fuzzing of every source under the one set of limits (constants.MAX_INT, MAX_LAYERS):
GGUF metadata, safetensors header entries, params.json, quantization_config, fleet files and the
web form's inputs, each drawn from generators of hostile values (negative, zero, huge, NaN, wrong
types, non-ASCII digits, aliases, deep nesting).

Each case ends in an answer whose every count and dimension is positive and bounded (and whose
estimate is finite and non-negative), or in a typed one-line ``EstimatorError``; within a time and
an RSS bound (``bounds.bounded``). The totals print at the end (``-s``) for the closing figures.
"""

from __future__ import annotations

import json
import math
import struct

import pytest
from bounds import TALLY, bounded
from gguf_writer import ARRAY, I32, I64, STRING, U32, U64, header_bytes, llama_metadata, llama_tensors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_gpu_estimator import errors
from hf_gpu_estimator.constants import MAX_INT, MAX_LAYERS
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.sources.config import quantization_from_config
from hf_gpu_estimator.sources.fleet import parse_fleet
from hf_gpu_estimator.sources.gguf import parse_gguf_header, spec_from_gguf
from hf_gpu_estimator.sources.headers import build_spec
from hf_gpu_estimator.sources.meta import llama_config
from hf_gpu_estimator.sources.safetensors_header import tensors_from_header

FUZZ = settings(max_examples=60, derandomize=True, deadline=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])  # fmt: skip
TINY = dict(n_layer=2, n_embd=64, n_ff=128, n_head=4, n_head_kv=2, vocab=50)
SECONDS = 3.0

#: Integers that break arithmetic or memory when trusted, as GGUF stores them (signed 64-bit, unsigned 64-bit).
HOSTILE_INTS = st.one_of(st.sampled_from([0, 1, -1, -(2**63), 2**63 - 1, 10**9, MAX_INT + 1, MAX_LAYERS + 1, 1000]),
                         st.integers(-(2**63), 2**63 - 1))  # fmt: skip
#: JSON values of every type, and numbers that break arithmetic.
HOSTILE_JSON = st.one_of(
    st.sampled_from(["x", "", [1], [], {"a": 1}, 1.5, True, False, -1, 0, 10**40, None, float("nan"), float("inf"),
                     -(2**63), 2**64, "F32", ["F32"], "9" * 200]),
    st.integers(), st.floats(), st.text(max_size=20),
)  # fmt: skip


def _check_spec(spec) -> None:
    """An answer: every count positive and bounded, and an estimate that is finite and non-negative."""
    assert 0 <= spec.parameters.total
    arch = spec.architecture
    if arch is not None:
        assert 1 <= arch.num_layers <= MAX_LAYERS
        for value in (arch.hidden_size, arch.num_attention_heads, arch.num_key_value_heads, arch.head_dim):
            assert 1 <= value <= MAX_INT, value
        assert arch.vocab_size >= 0 and arch.intermediate_size >= 0
        assert (arch.max_position_embeddings or 1) >= 1
    est = estimate(spec, seq_len=64, new_tokens=8)
    for name, value in est.memory.components.items():
        assert isinstance(value, int) and value >= 0, (name, value)
    assert 0 < est.memory.device_total_bytes < 1 << 62


def _gguf_case(metadata, tensors):
    head, size = header_bytes(metadata, tensors)

    def run():
        header = parse_gguf_header(lambda o, n: head[o : o + n], source="fuzz.gguf", file_bytes=size)
        spec = spec_from_gguf([header], model_id="fuzz.gguf")
        _check_spec(spec)
        return spec

    return bounded(run, seconds=SECONDS)


GGUF_KEYS = ("block_count", "embedding_length", "attention.head_count", "attention.head_count_kv",
             "attention.key_length", "attention.value_length", "vocab_size", "context_length", "feed_forward_length",
             "attention.sliding_window", "expert_count", "expert_used_count", "rope.dimension_count",
             "attention.kv_lora_rank")  # fmt: skip


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(GGUF_KEYS), st.tuples(st.sampled_from([U32, I32, U64, I64, ARRAY]),
                                                                        HOSTILE_INTS), min_size=1, max_size=4))
def test_gguf_metadata_values(overrides):
    meta = [m for m in llama_metadata(**TINY) if m[0].removeprefix("llama.") not in overrides]
    for key, (kind, value) in overrides.items():
        if kind == ARRAY:
            meta.append((f"llama.{key}", ARRAY, (I64, [max(-(2**63), min(value, 2**63 - 1))] * 3)))
            continue
        lo, hi = {U32: (0, 2**32 - 1), I32: (-(2**31), 2**31 - 1), U64: (0, 2**64 - 1), I64: (-(2**63), 2**63 - 1)}[kind]
        meta.append((f"llama.{key}", kind, min(max(value, lo), hi)))
    _gguf_case(meta, llama_tensors(**TINY))


@pytest.mark.parametrize("key,value", [("block_count", 10**9), ("embedding_length", -(2**63)), ("attention.head_count", 1000),
                                       ("attention.head_count_kv", -4), ("vocab_size", -5), ("context_length", -1),
                                       ("attention.key_length", -8)])  # fmt: skip
def test_gguf_reported_values_are_typed_errors(key, value):
    meta = [m for m in llama_metadata(**TINY) if m[0] != f"llama.{key}"] + [(f"llama.{key}", I64, value)]
    e = _gguf_case(meta, llama_tensors(**TINY))
    assert isinstance(e, errors.MalformedGGUFError) and f"llama.{key}" in str(e), e


def test_gguf_block_count_with_a_sliding_window_is_bounded():
    meta = llama_metadata(**TINY) + [("llama.attention.sliding_window", U32, 4096)]
    meta = [m for m in meta if m[0] != "llama.block_count"] + [("llama.block_count", U64, 10**9)]
    assert isinstance(_gguf_case(meta, llama_tensors(**TINY)), errors.MalformedGGUFError)


@FUZZ
@given(digit=st.sampled_from(["²", "٣", "১", "Ⅻ", "0x1", "-1", " 1", "1_0"]))
def test_gguf_tensor_names_with_other_digits(digit):
    tensors = llama_tensors(**TINY) + [(f"blk.{digit}.attn_q.weight", (64, 64), "F16")]
    e = _gguf_case(llama_metadata(**TINY), tensors)
    assert not isinstance(e, errors.EstimatorError) or isinstance(e, errors.MalformedGGUFError), e


def test_gguf_big_endian_hint():
    e = bounded(lambda: parse_gguf_header(lambda o, n: (b"GGUF" + struct.pack(">IQQ", 3, 0, 0))[o : o + n],
                                          source="be.gguf"), seconds=1)  # fmt: skip
    assert isinstance(e, errors.MalformedGGUFError) and "big-endian" in str(e), e


@FUZZ
@given(field=st.sampled_from(["dtype", "shape", "data_offsets"]), value=HOSTILE_JSON,
       name=st.one_of(st.just("w"), st.text(min_size=1, max_size=30)))
def test_safetensors_entry_values(field, value, name):
    entry = {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16], field: value}
    result = bounded(lambda: tensors_from_header({name: entry}, source="fuzz.safetensors", body_bytes=None),
                     seconds=SECONDS)  # fmt: skip
    assert not isinstance(result, errors.EstimatorError) or isinstance(result, errors.MalformedHeaderError), result


LLAMA = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 50, "torch_dtype": "float16"}  # fmt: skip


def _llama_tensors(kv_heads: int = 2):
    from hf_gpu_estimator.spec import TensorInfo

    out = [TensorInfo(name="model.embed_tokens.weight", dtype="F16", shape=(50, 64)),
           TensorInfo(name="lm_head.weight", dtype="F16", shape=(50, 64)),
           TensorInfo(name="model.norm.weight", dtype="F16", shape=(64,))]  # fmt: skip
    for i in range(2):
        p = f"model.layers.{i}."
        out += [TensorInfo(name=p + n, dtype="F16", shape=s) for n, s in (
            ("self_attn.q_proj.weight", (64, 64)), ("self_attn.k_proj.weight", (kv_heads * 16, 64)),
            ("self_attn.v_proj.weight", (kv_heads * 16, 64)), ("self_attn.o_proj.weight", (64, 64)),
            ("mlp.gate_proj.weight", (128, 64)), ("mlp.up_proj.weight", (128, 64)), ("mlp.down_proj.weight", (64, 128)),
            ("input_layernorm.weight", (64,)), ("post_attention_layernorm.weight", (64,)))]
    return tuple(out)


def test_config_kv_heads_contradicting_the_header():
    e = bounded(lambda: build_spec(model_id="m", config={**LLAMA, "num_key_value_heads": 4}, tensors=_llama_tensors(2)),
                seconds=SECONDS)  # fmt: skip
    assert isinstance(e, errors.ConfigHeaderMismatchError) and "num_key_value_heads=4" in str(e) and "2" in str(e), e
    assert not isinstance(build_spec(model_id="m", config=LLAMA, tensors=_llama_tensors(2)), errors.EstimatorError)


def test_full_config_over_an_empty_header():
    e = bounded(lambda: build_spec(model_id="m", config=LLAMA, tensors=()), seconds=SECONDS)
    assert isinstance(e, errors.MalformedHeaderError) and "no tensors" in str(e) and "llama" in str(e), e


def test_a_huge_string_field_is_quoted_short():
    e = bounded(lambda: build_spec(model_id="m", config={**LLAMA, "hidden_size": "9" * (30 << 20)}, tensors=None),
                seconds=SECONDS, rss_mib=300)  # fmt: skip
    assert isinstance(e, errors.MalformedConfigError) and len(str(e)) < 1000, len(str(e))


PARAMS = {"dim": 64, "n_layers": 2, "n_heads": 4, "n_kv_heads": 2, "multiple_of": 32, "norm_eps": 1e-5,
          "rope_theta": 10000.0, "ffn_dim_multiplier": 1.3}  # fmt: skip


@FUZZ
@given(overrides=st.dictionaries(st.sampled_from(sorted(PARAMS)), HOSTILE_JSON, min_size=1, max_size=3))
def test_params_json_values(overrides):
    def run():
        config, _ = llama_config({**PARAMS, **overrides}, vocab_size=50, source="params.json")
        spec = build_spec(model_id="meta", config=config, tensors=None)
        _check_spec(spec)
        return spec

    result = bounded(run, seconds=SECONDS)
    assert not isinstance(result, errors.EstimatorError) or isinstance(result, errors.MalformedConfigError), result


@FUZZ
@given(method=st.sampled_from(["gptq", "awq", "compressed-tensors", "fp8"]),
       field=st.sampled_from(["bits", "group_size", "w_bit", "q_group_size", "num_bits", "weight_block_size"]),
       value=st.one_of(HOSTILE_JSON, st.sampled_from([0, -4, -5, 10**6, 3, 8, -1, [128, 128], [0, 5], [10**20, 2]])))
def test_quantization_config_values(method, field, value):
    qc: dict = {"quant_method": method, field: value}
    if method == "compressed-tensors":
        qc = {"quant_method": method, "config_groups": {"g": {"weights": {field: value}}}}

    def run():
        q = quantization_from_config({"quantization_config": qc})
        assert q is not None and 1 <= q.bits <= 16 and (q.group_size is None or 1 <= q.group_size <= MAX_INT ** 2)
        spec = build_spec(model_id="q", config={**LLAMA, "quantization_config": qc}, tensors=None)
        _check_spec(spec)
        return q

    result = bounded(run, seconds=SECONDS)
    assert not isinstance(result, errors.EstimatorError) or isinstance(result, errors.MalformedConfigError), result


def _alias_bomb(levels: int, width: int) -> str:
    lines = ["a0: &a0 [x" + ",x" * (width - 1) + "]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [" + ",".join([f"*a{i - 1}"] * width) + "]")
    return "\n".join(lines) + f"\nmodels: [*a{levels - 1}]\n"


FLEET_TEXTS = st.one_of(
    st.builds(_alias_bomb, st.integers(2, 12), st.integers(2, 12)),
    st.integers(1, 20_000).map(lambda n: "[" * n),
    st.integers(1, 200_000).map(lambda n: '{"models": ' + "[" * n + "]" * n + "}"),
    st.integers(4000, 6000).map(lambda n: "models: [{model: gpt2, request_rate: " + "9" * n + "}]"),
    st.integers(4000, 6000).map(lambda n: '{"models": [{"model": "gpt2", "request_rate": ' + "9" * n + "}]}"),
    st.text(max_size=200),
    st.sampled_from(["models: [{model: gpt2}]", "!!python/object/apply:os.system ['true']", "{", "models:\n  - *x",
                     "a: &a b\nmodels: [*a]", "\ufeffmodels: []", "models: " + "x" * (2 << 20)]),
)  # fmt: skip


@FUZZ
@given(text=FLEET_TEXTS)
def test_fleet_texts(text):
    result = bounded(lambda: parse_fleet(text), seconds=SECONDS, rss_mib=150)
    if isinstance(result, errors.EstimatorError):
        assert isinstance(result, errors.InvalidArgumentError) and len(str(result)) < 1000, result


def test_fleet_file_not_utf8(tmp_path):
    from hf_gpu_estimator.sources.fleet import read_fleet_file

    path = tmp_path / "fleet.yaml"
    path.write_bytes(b"models: [\xff\xfe]")
    e = bounded(lambda: read_fleet_file(path), seconds=1)
    assert isinstance(e, errors.InvalidArgumentError) and "UTF-8" in str(e), e


WEB_NUMBERS = st.one_of(st.sampled_from([None, math.inf, -math.inf, math.nan, 0, -3, 2.7, 1e308, True, "4", 1, 2]),
                        st.floats(), st.integers(-10, 10**20))  # fmt: skip


@settings(max_examples=40, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(field=st.sampled_from(["batch_size", "seq_len", "new_tokens", "num_gpus"]), value=WEB_NUMBERS,
       model=st.sampled_from(["gpt2", None, "", "x" * 10_000, "Qwen/Qwen2.5-0.5B"]))
def test_web_inputs(field, value, model, tmp_path_factory):
    from hf_gpu_estimator.web import DEFAULTS, calculate

    values = {**DEFAULTS, "model": model, "read_hub": False, field: value}
    values.pop("precision")
    names = ("model", "task", "method", "batch_size", "seq_len", "new_tokens", "dtype", "optimizer",
             "gradient_checkpointing", "quantization", "gpu", "num_gpus", "read_hub")
    args = {k: values.get(k, DEFAULTS.get(k)) for k in names}
    result = bounded(lambda: calculate(precision=DEFAULTS["precision"], plot_dir=str(tmp_path_factory.mktemp("p")),
                                       **args), seconds=SECONDS * 3)  # fmt: skip
    assert not isinstance(result, errors.EstimatorError), result
    if result.estimate is None:
        assert result.summary.startswith("**Error:**") and len(result.summary) < 1000, result.summary[:200]
    else:
        assert isinstance(value, (int, float)) and not isinstance(value, bool) and value == int(value)


@pytest.mark.parametrize("value", [0, -3, 2.7])
def test_web_num_gpus_is_never_changed_silently(value):
    from hf_gpu_estimator.web import DEFAULTS, calculate

    args = {**DEFAULTS, "model": "gpt2", "num_gpus": value}
    result = calculate(**args)
    assert result.estimate is None and "num_gpus" in result.summary, result.summary


def test_web_charts_do_not_pile_up():
    import os

    from hf_gpu_estimator import web

    for _ in range(3 * web._PlotFiles.keep):
        path = web._PLOTS.new()
        open(path, "wb").close()  # what est.plot writes
    assert len(os.listdir(os.path.dirname(path))) == web._PlotFiles.keep


def test_figures():
    print(f"\nhostile sources: {TALLY.line()}; errors by type {json.dumps(TALLY.by_error)}")
