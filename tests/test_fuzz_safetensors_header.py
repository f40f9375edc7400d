"""Fuzzing the safetensors header parser and the local reader on hostile bytes.

Each input ends in a valid tensor list or a ``MalformedHeaderError`` with a one-line message,
within a bounded time: lengths past the file or the 100 MB cap, non-JSON, JSON that is not an
object, duplicate keys, bad shapes and offsets, unknown dtypes, deep or huge JSON, integer
overflow, non-UTF-8.
"""

from __future__ import annotations

import json
import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.sources.local import read_safetensors_header
from hf_gpu_estimator.sources.safetensors_header import (
    MAX_HEADER_BYTES,
    build_header_bytes,
    parse_safetensors_prefix,
)
from hf_gpu_estimator.spec import DTYPE_BYTES

CASE_BUDGET_S = 1.0
FUZZ = settings(max_examples=400, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def with_length(body: bytes, length: int | None = None) -> bytes:
    return struct.pack("<Q", len(body) if length is None else length) + body


def outcome(data: bytes, file_bytes: int | None = None):
    """Parse; return the tensors or the typed error, asserting the contract on the way."""
    start = time.monotonic()
    try:
        _, tensors = parse_safetensors_prefix(data, source="fuzz.safetensors", file_bytes=file_bytes)
    except errors.MalformedHeaderError as e:
        message = str(e)
        assert message.startswith("fuzz.safetensors: ") and "\n" not in message, repr(message)
        return e
    finally:
        assert time.monotonic() - start < CASE_BUDGET_S
    position = 0  # what the parser promises: tensors tile the body in file order
    for t in tensors:
        assert t.dtype in DTYPE_BYTES and all(isinstance(d, int) and d >= 0 for d in t.shape)
        position += t.nbytes
    return tensors


# --- table of hand-written hostile headers ------------------------------------------------------

T = {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}
HOSTILE = {
    "empty": b"",
    "seven-bytes": b"\x01" * 7,
    "length-zero": with_length(b"", 0),
    "length-past-file": with_length(b"{}", 1000),
    "length-over-cap": with_length(b"{}", MAX_HEADER_BYTES + 1),
    "length-u64-max": with_length(b"{}", 2**64 - 1),
    "not-json": with_length(b"<html></html>"),
    "array": with_length(b"[1,2,3]"),
    "string": with_length(b'"x"'),
    "null": with_length(b"null"),
    "non-utf8": with_length(b'{"\xff\xfe": 1}'),
    "utf16": with_length(json.dumps({"a": T}).encode("utf-16")),
    "lone-surrogate-name": with_length(b'{"\\ud800": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}'),
    "duplicate-tensor": with_length(b'{"a": ' + json.dumps(T).encode() + b', "a": ' + json.dumps(T).encode() + b"}"),
    "duplicate-field": with_length(b'{"a": {"dtype": "F32", "dtype": "F16", "shape": [2], "data_offsets": [0, 8]}}'),
    "deep-array": with_length(b"[" * 200_000),
    "deep-object": with_length(b'{"a":' * 200_000),
    "deep-in-metadata": with_length(b'{"__metadata__": ' + b"[" * 100_000 + b"}"),
    "huge-int-shape": with_length(b'{"a": {"dtype": "F32", "shape": [' + b"9" * 5000 + b'], "data_offsets": [0, 4]}}'),
    "huge-int-offset": with_length(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, ' + b"9" * 5000 + b"]}}"),
    "nan-shape": with_length(b'{"a": {"dtype": "F32", "shape": [NaN], "data_offsets": [0, 4]}}'),
    "infinity-offset": with_length(b'{"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, Infinity]}}'),
    "float-shape": with_length(json.dumps({"a": {**T, "shape": [2.0]}}).encode()),
    "bool-shape": with_length(json.dumps({"a": {**T, "shape": [True, True]}}).encode()),
    "negative-shape": with_length(json.dumps({"a": {**T, "shape": [-2]}}).encode()),
    "string-shape": with_length(json.dumps({"a": {**T, "shape": "2"}}).encode()),
    "negative-offset": with_length(json.dumps({"a": {**T, "data_offsets": [-8, 0]}}).encode()),
    "reversed-offsets": with_length(json.dumps({"a": {**T, "data_offsets": [8, 0]}}).encode()),
    "three-offsets": with_length(json.dumps({"a": {**T, "data_offsets": [0, 8, 16]}}).encode()),
    "offsets-not-list": with_length(json.dumps({"a": {**T, "data_offsets": {"0": 8}}}).encode()),
    "overlap": with_length(json.dumps({"a": T, "b": {**T, "data_offsets": [4, 12]}}).encode()),
    "gap": with_length(json.dumps({"a": T, "b": {**T, "data_offsets": [16, 24]}}).encode()),
    "span-mismatch": with_length(json.dumps({"a": {**T, "shape": [3]}}).encode()),
    "unknown-dtype": with_length(json.dumps({"a": {**T, "dtype": "F128"}}).encode()),
    "dtype-not-string": with_length(json.dumps({"a": {**T, "dtype": 4}}).encode()),
    "entry-not-object": with_length(json.dumps({"a": [1, 2]}).encode()),
    "metadata-not-strings": with_length(json.dumps({"__metadata__": {"a": 1}, "b": T}).encode()),
    "huge-shape-product": with_length(json.dumps({"a": {**T, "shape": [2**62, 2**62, 2**62]}}).encode()),
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=HOSTILE.keys())
def test_hostile_header_is_a_typed_error(data):
    assert isinstance(outcome(data), errors.MalformedHeaderError)


def test_out_of_order_offsets_are_fine_when_they_tile():
    data = with_length(json.dumps({"b": {**T, "data_offsets": [8, 16]}, "a": T}).encode())
    assert [t.name for t in outcome(data, file_bytes=len(data) + 16)] == ["a", "b"]


def test_body_shorter_than_offsets():
    header, body = build_header_bytes([("a", "F32", (4,))])
    assert isinstance(outcome(header, file_bytes=len(header) + body - 1), errors.MalformedHeaderError)


def test_large_valid_header_is_parsed_in_bounded_time():
    header, body = build_header_bytes([(f"layers.{i}.weight", "BF16", (64, 64)) for i in range(50_000)])
    assert len(header) > 3_000_000
    start = time.monotonic()
    _, tensors = parse_safetensors_prefix(header, source="big", file_bytes=len(header) + body)
    # 0.3 s on an idle core; the bound only catches a hang or a quadratic parse (minutes), since a shared CI
    # machine can stall a test for seconds: speed belongs in benchmarks/ (bench_inspect.py times inspection).
    assert len(tensors) == 50_000 and time.monotonic() - start < 30


# --- generated inputs ---------------------------------------------------------------------------

_ints = st.one_of(st.integers(min_value=-3, max_value=64), st.integers(min_value=-(2**70), max_value=2**70))
_dim = st.one_of(_ints, st.floats(allow_nan=True), st.booleans(), st.none(), st.text(max_size=3))
_dtype = st.one_of(st.sampled_from(sorted(DTYPE_BYTES)), st.text(max_size=5), st.integers(), st.none())
_entry = st.fixed_dictionaries(
    {},
    optional={"dtype": _dtype, "shape": st.one_of(st.lists(_dim, max_size=4), _dim),
              "data_offsets": st.one_of(st.lists(_ints, max_size=3), _dim)},
)  # fmt: skip
_header = st.dictionaries(st.one_of(st.text(max_size=6), st.just("__metadata__")),
                          st.one_of(_entry, st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2),
                                    st.integers(), st.lists(st.integers(), max_size=2)),
                          max_size=5)  # fmt: skip


@FUZZ
@given(_header, st.one_of(st.none(), st.integers(min_value=0, max_value=1 << 40)))
def test_generated_headers(header, body_bytes):
    text = json.dumps(header, allow_nan=True).encode()
    data = with_length(text)
    outcome(data, file_bytes=None if body_bytes is None else len(data) + body_bytes)


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(raw):
    outcome(raw)


@FUZZ
@given(st.binary(max_size=120), st.integers(min_value=0, max_value=2**64 - 1))
def test_random_bytes_with_any_length(raw, length):
    outcome(with_length(raw, length), file_bytes=8 + len(raw))


@FUZZ
@given(st.data())
def test_mutated_valid_headers(data):
    """A real header with one byte flipped, truncated, or with bytes inserted."""
    header, body = build_header_bytes([("model.embed_tokens.weight", "BF16", (32, 8)),
                                       ("model.layers.0.mlp.up_proj.weight", "F32", (8, 16)),
                                       ("lm_head.weight", "I8", (32, 8))], metadata={"format": "pt"})  # fmt: skip
    buf = bytearray(header)
    kind = data.draw(st.sampled_from(["flip", "truncate", "insert"]))
    at = data.draw(st.integers(min_value=0, max_value=len(buf) - 1))
    if kind == "flip":
        buf[at] ^= data.draw(st.integers(min_value=1, max_value=255))
    elif kind == "truncate":
        del buf[at:]
    else:
        buf[at:at] = data.draw(st.binary(min_size=1, max_size=8))
    outcome(bytes(buf), file_bytes=len(header) + body)


# --- through the local reader and inspect_model -------------------------------------------------

@pytest.mark.parametrize("name", ["length-past-file", "deep-array", "huge-int-shape", "duplicate-tensor", "non-utf8",
                                  "overlap", "length-over-cap"])  # fmt: skip
def test_hostile_file_through_inspect_model(tmp_path, name):
    path = tmp_path / "model.safetensors"
    path.write_bytes(HOSTILE[name])
    for source in (path, tmp_path):
        with pytest.raises(errors.MalformedHeaderError) as info:
            inspect_model(source)
        assert "\n" not in str(info.value)
    with pytest.raises(errors.MalformedHeaderError):
        read_safetensors_header(path)


def test_a_fifo_named_safetensors_never_blocks(tmp_path):
    import os

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2", "n_layer": 1}')
    os.mkfifo(folder / "weights.safetensors")
    start = time.monotonic()
    spec = inspect_model(folder)  # the FIFO is skipped, counts come from config.json
    assert spec.provenance["parameters"] == "config" and time.monotonic() - start < 5


def test_unreadable_files_are_a_typed_error(tmp_path, monkeypatch):
    from pathlib import Path

    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text('{"model_type": "gpt2"}')
    real_open = Path.open

    def denied(self, *args, **kwargs):  # as chmod 0 would, also when the tests run as root
        if self.name == "config.json":
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)

    monkeypatch.setattr(Path, "open", denied)
    with pytest.raises(errors.SourceError, match="cannot read .*Permission denied") as info:
        inspect_model(folder)
    assert "\n" not in str(info.value)


def test_sharded_index_escaping_the_folder(tmp_path):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "model.safetensors.index.json").write_text(json.dumps({"weight_map": {"a": "../outside.safetensors"}}))
    with pytest.raises(errors.MalformedHeaderError, match="escapes"):
        inspect_model(folder)
    (folder / "model.safetensors.index.json").write_bytes(b"[" * 100_000)
    with pytest.raises(errors.MalformedHeaderError, match="not valid JSON"):
        inspect_model(folder)
