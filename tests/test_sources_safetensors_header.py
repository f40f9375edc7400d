"""Parser tests on safetensors header bytes built inline."""

from __future__ import annotations

import json
import struct

import pytest

from hf_gpu_estimator.errors import MalformedHeaderError
from hf_gpu_estimator.sources.safetensors_header import (
    MAX_HEADER_BYTES,
    build_header_bytes,
    header_length,
    parse_safetensors_prefix,
    tensors_from_header,
)
from hf_gpu_estimator.spec import TensorInfo


def raw(header: object, *, pad: bool = True) -> bytes:
    body = json.dumps(header).encode()
    if pad:
        body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def entry(dtype: str, shape: list, begin: int, end: int) -> dict:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_parses_tensors_in_offset_order_and_skips_metadata():
    data = raw({
        "__metadata__": {"format": "pt"},
        "b": entry("F32", [2], 8, 16),
        "a": entry("BF16", [2, 2], 0, 8),
        "empty": entry("F16", [0, 4], 16, 16),
    })  # fmt: skip
    header, tensors = parse_safetensors_prefix(data, source="t", file_bytes=len(data) + 16)
    assert [t.name for t in tensors] == ["a", "b", "empty"]
    assert tensors[0] == TensorInfo(name="a", dtype="BF16", shape=(2, 2))
    assert header["__metadata__"] == {"format": "pt"}


def test_sub_byte_dtype_spans():
    tensors = tensors_from_header({"w": entry("F4", [4, 4], 0, 8)}, source="t", body_bytes=8)
    assert tensors[0].nbytes == 8


def test_round_trip_with_builder():
    data, body = build_header_bytes([("x", "F32", (3, 5)), ("y", "I8", (7,))], metadata={"format": "pt"})
    assert len(data) % 8 == 0
    _, tensors = parse_safetensors_prefix(data, source="t", file_bytes=len(data) + body)
    assert [(t.name, t.shape) for t in tensors] == [("x", (3, 5)), ("y", (7,))]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x01\x02", "shorter than the 8-byte"),
        (struct.pack("<Q", MAX_HEADER_BYTES + 1) + b"{}", "exceeds the format's limit"),
        (struct.pack("<Q", 0), "header length is 0"),
        (struct.pack("<Q", 100) + b'{"a": 1}', "truncated"),
        (raw([1, 2], pad=False), "expected an object"),
        (struct.pack("<Q", 4) + b"\xff\xfe{}", "not valid UTF-8 JSON"),
        (raw({"a": entry("F33", [1], 0, 4)}), "unknown dtype"),
        (raw({"a": entry("F32", [-1], 0, 4)}), "non-negative ints"),
        (raw({"a": entry("F32", [1.5], 0, 4)}), "non-negative ints"),
        (raw({"a": entry("F32", [True], 0, 4)}), "non-negative ints"),
        (raw({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0]}}), "pair of non-negative ints"),
        (raw({"a": entry("F32", [1], 4, 0)}), "end before they begin"),
        (raw({"a": entry("F32", [2], 0, 4)}), "needs 8"),
        (raw({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 2, 6)}), "overlaps"),
        (raw({"a": entry("F32", [1], 0, 4), "b": entry("F32", [1], 8, 12)}), "leaves a gap"),
        (raw({"a": entry("F32", [1], 4, 8)}), "leaves a gap after byte 0"),
        (raw({"__metadata__": {"format": 1}}), "string to string"),
        (raw({"a": [1]}), "expected an object"),
    ],
    ids=lambda v: v if isinstance(v, str) else None,
)
def test_rejects_malformed(data: bytes, message: str):
    with pytest.raises(MalformedHeaderError, match=message):
        parse_safetensors_prefix(data, source="file.safetensors")


def test_body_size_must_match_file():
    data = raw({"a": entry("F32", [1], 0, 4)})
    with pytest.raises(MalformedHeaderError, match="tensors end at byte 4"):
        parse_safetensors_prefix(data, source="t", file_bytes=len(data) + 10)


def test_header_length_reads_little_endian():
    assert header_length(struct.pack("<Q", 1234) + b"rest", source="t") == 1234


def test_error_names_the_source():
    with pytest.raises(MalformedHeaderError, match=r"^org/name/model.safetensors: "):
        header_length(b"", source="org/name/model.safetensors")
