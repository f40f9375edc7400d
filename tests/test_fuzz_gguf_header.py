"""Fuzzing the GGUF header parser on hostile bytes.

Each input ends in a parsed header or a ``MalformedGGUFError`` (also a ``ValueError``) with a one-line
message, within a bounded time, and never asks its reader for more than the header caps allow: bad
magic or version, truncation anywhere, impossible counts, oversized strings and arrays, unknown value
and tensor types, misaligned or overlapping offsets, non-UTF-8 names, duplicate keys and tensors.
"""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gguf_writer import ARRAY, STRING, U32, gstr, header_bytes, kv, llama_metadata, llama_tensors
from hf_gpu_estimator import errors
from hf_gpu_estimator.sources.gguf import MAX_HEADER_BYTES, parse_gguf_header

CASE_BUDGET_S = 1.0
FUZZ = settings(max_examples=300, derandomize=True, deadline=None, suppress_health_check=[HealthCheck.too_slow])
TINY = dict(n_layer=2, n_embd=64, n_ff=128, n_head=4, n_head_kv=2, vocab=50)
VALID, VALID_SIZE = header_bytes(llama_metadata(**TINY), llama_tensors(**TINY))


def outcome(data: bytes, file_bytes: int | None = None):
    asked = [0]

    def fetch(offset: int, length: int) -> bytes:
        assert offset + length <= MAX_HEADER_BYTES + (16 << 20)
        asked[0] += length
        return data[offset : offset + length]

    start = time.monotonic()
    try:
        return parse_gguf_header(fetch, source="fuzz.gguf", file_bytes=file_bytes)
    except errors.MalformedGGUFError as e:
        message = str(e)
        assert message.startswith("fuzz.gguf: ") and "\n" not in message, repr(message)
        assert isinstance(e, ValueError)
        return e
    finally:
        assert time.monotonic() - start < CASE_BUDGET_S


def head(n_tensors: int, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, n_tensors, n_kv)


def tensor_info(name: bytes, dims: list[int], type_id: int, offset: int = 0) -> bytes:
    return gstr(name) + struct.pack("<I", len(dims)) + b"".join(struct.pack("<Q", d) for d in dims) + struct.pack("<IQ", type_id, offset)


HOSTILE = {
    "empty": b"",
    "three-bytes": b"GGU",
    "bad-magic": b"GGML" + VALID[4:],
    "version-1": head(0, 0, version=1),
    "version-big-endian": b"GGUF" + struct.pack(">IQQ", 3, 0, 0),
    "tensors-u64-max": head(2**64 - 1, 0),
    "kv-u64-max": head(0, 2**64 - 1),
    "key-length-u64-max": head(0, 1) + struct.pack("<Q", 2**64 - 1),
    "string-value-huge": head(0, 1) + gstr("k") + struct.pack("<IQ", STRING, 2**40),
    "array-huge": head(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, U32, 2**40),
    "array-of-strings-huge": head(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, STRING, 2**30),
    "nested-array": head(0, 1) + gstr("k") + struct.pack("<IIQ", ARRAY, ARRAY, 1),
    "unknown-value-type": head(0, 1) + gstr("k") + struct.pack("<I", 99),
    "bad-bool": head(0, 1) + gstr("k") + struct.pack("<IB", 7, 2),
    "non-utf8-key": head(0, 1) + gstr(b"\xff\xfe") + struct.pack("<II", U32, 1),
    "duplicate-key": head(0, 2) + kv("k", U32, 1) + kv("k", U32, 2),
    "alignment-zero": head(0, 1) + kv("general.alignment", U32, 0),
    "alignment-not-pow2": head(0, 1) + kv("general.alignment", U32, 48),
    "unknown-tensor-type": head(1, 0) + tensor_info(b"w", [32, 2], 31),
    "tensor-type-huge": head(1, 0) + tensor_info(b"w", [32, 2], 2**32 - 1),
    "zero-dims": head(1, 0) + tensor_info(b"w", [], 0),
    "five-dims": head(1, 0) + tensor_info(b"w", [1, 1, 1, 1, 1], 0),
    "dim-zero": head(1, 0) + tensor_info(b"w", [0, 4], 0),
    "dim-u64-max": head(1, 0) + tensor_info(b"w", [2**64 - 1], 0),
    "row-not-block-multiple": head(1, 0) + tensor_info(b"w", [33, 2], 12),
    "misaligned-offset": head(1, 0) + tensor_info(b"w", [32, 2], 0, offset=3),
    "overlap": head(2, 0) + tensor_info(b"a", [32], 0) + tensor_info(b"b", [32], 0, offset=64),
    "duplicate-tensor": head(2, 0) + tensor_info(b"a", [8], 0) + tensor_info(b"a", [8], 0, offset=32),
    "tensor-name-huge": head(1, 0) + struct.pack("<Q", 2**20) + b"x" * 64,
    "truncated-mid-tensors": VALID[: len(VALID) - 40],
}


@pytest.mark.parametrize("data", HOSTILE.values(), ids=list(HOSTILE))
def test_hostile_header_is_a_typed_one_line_error(data: bytes):
    assert isinstance(outcome(data), errors.MalformedGGUFError)


def test_valid_header_parses_and_tensors_must_fit_the_file():
    parsed = outcome(VALID, file_bytes=VALID_SIZE)
    assert not isinstance(parsed, Exception) and len(parsed.tensors) == len(llama_tensors(**TINY))
    assert isinstance(outcome(VALID, file_bytes=VALID_SIZE - 1), errors.MalformedGGUFError)


def test_long_tokenizer_arrays_are_walked_not_kept():
    meta = llama_metadata(**{**TINY, "vocab": 20_000})
    data, size = header_bytes(meta, llama_tensors(**{**TINY, "vocab": 20_000}))
    parsed = outcome(data, file_bytes=size)
    tokens = parsed.metadata["tokenizer.ggml.tokens"]
    assert tokens.length == 20_000 and tokens.values is None


@FUZZ
@given(cut=st.integers(min_value=0, max_value=len(VALID)))
def test_every_truncation_is_an_error(cut: int):
    result = outcome(VALID[:cut], file_bytes=cut)
    if cut < len(VALID.rstrip(b"\0")):
        assert isinstance(result, errors.MalformedGGUFError)


@FUZZ
@given(position=st.integers(min_value=0, max_value=len(VALID) - 1), byte=st.integers(0, 255),
       width=st.sampled_from([1, 4, 8]))
def test_corrupted_bytes_never_escape_the_typed_error(position: int, byte: int, width: int):
    data = bytearray(VALID)
    data[position : position + width] = bytes([byte]) * min(width, len(data) - position)
    outcome(bytes(data), file_bytes=VALID_SIZE)


@FUZZ
@given(st.binary(max_size=512))
def test_random_bytes_after_a_valid_prefix(tail: bytes):
    outcome(b"GGUF" + struct.pack("<I", 3) + tail)
