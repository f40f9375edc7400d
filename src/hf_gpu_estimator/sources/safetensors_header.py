"""Safetensors headers: bytes -> validated header dict -> TensorInfo tuple (pure, no I/O).

The format (https://huggingface.co/docs/safetensors/index#format): an 8-byte little-endian
unsigned length ``N``, then ``N`` bytes of UTF-8 JSON mapping tensor names to
``{"dtype", "shape", "data_offsets": [begin, end]}`` (offsets relative to the byte buffer that
follows the header), plus an optional ``"__metadata__"`` object of string -> string.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping

from hf_gpu_estimator.constants import MAX_INT
from hf_gpu_estimator.errors import MalformedHeaderError, excerpt
from hf_gpu_estimator.sources._json import JSONProblem, loads
from hf_gpu_estimator.spec import DTYPE_BYTES, TensorInfo

#: The safetensors crate refuses headers above 100 MB (``MAX_HEADER_SIZE`` in
#: safetensors/src/tensor.rs); huggingface_hub uses a stricter 25 MB for remote reads.
MAX_HEADER_BYTES = 100_000_000

#: Bytes of the little-endian u64 that precedes the header JSON.
LENGTH_PREFIX_BYTES = 8

METADATA_KEY = "__metadata__"

#: Dimensions a tensor may have: the safetensors crate has no limit, torch allows 64; real checkpoints use 1-5
#: (a conv3d weight). More is a corrupt header, and bounds the product of the dims with MAX_INT.
MAX_DIMS = 8

# Bits per element, so sub-byte dtypes (F4, F6) are checked exactly: the crate requires
# numel * bits to be a whole number of bytes (safetensors/src/tensor.rs, Dtype::bitsize).
_DTYPE_BITS = {name: int(round(nbytes * 8)) for name, nbytes in DTYPE_BYTES.items()}


def header_length(prefix: bytes, *, source: str) -> int:
    """Header JSON length read from the first 8 bytes of a safetensors file.

    Args:
        prefix: At least the first 8 bytes of the file.
        source: Where the bytes came from, for error messages.

    Raises:
        MalformedHeaderError: the prefix is short, the length is zero or above
            :data:`MAX_HEADER_BYTES`.
    """
    if len(prefix) < LENGTH_PREFIX_BYTES:
        raise MalformedHeaderError(
            source, f"file is {len(prefix)} bytes, shorter than the 8-byte header length; not a safetensors file"
        )
    (length,) = struct.unpack("<Q", prefix[:LENGTH_PREFIX_BYTES])
    if length < 2:
        raise MalformedHeaderError(source, f"header length is {length} bytes; not a safetensors file")
    if length > MAX_HEADER_BYTES:
        raise MalformedHeaderError(
            source,
            f"header length {length:,} bytes exceeds the format's limit of {MAX_HEADER_BYTES:,}; "
            "the file is corrupt or not a safetensors file",
        )
    return length


def parse_header_json(header_bytes: bytes, *, source: str) -> dict[str, object]:
    """Decode the header JSON into a dict (no validation of the entries).

    Raises:
        MalformedHeaderError: not UTF-8, not JSON (duplicate keys, NaN, nesting beyond the
            interpreter's recursion limit, integers beyond its digit limit included), or not a
            JSON object.
    """
    try:
        header = loads(header_bytes, strict=True)
    except JSONProblem as e:
        raise MalformedHeaderError(source, f"header is not valid UTF-8 JSON ({e}); the file is truncated or corrupt") from e
    if not isinstance(header, dict):
        raise MalformedHeaderError(source, f"header is a JSON {type(header).__name__}, expected an object")
    return header


def tensors_from_header(
    header: Mapping[str, object], *, source: str, body_bytes: int | None = None
) -> tuple[TensorInfo, ...]:
    """Validate a decoded header and return its tensors in file order.

    Checks what the safetensors crate checks before loading: known dtypes, shapes of
    non-negative ints, ``data_offsets`` that tile the body without gaps or overlaps, and a byte
    span equal to ``numel * dtype size``.

    Args:
        header: The decoded header JSON.
        source: Where it came from, for error messages.
        body_bytes: Size of the byte buffer after the header when known (file size - 8 - N);
            the last tensor must end exactly there.

    Raises:
        MalformedHeaderError: naming the tensor and the field that is wrong.
    """
    metadata = header.get(METADATA_KEY)
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in metadata.items())
    ):
        raise MalformedHeaderError(source, f"{METADATA_KEY!r} must be an object of string to string")
    entries: list[tuple[int, int, TensorInfo]] = []
    for name, entry in header.items():
        if name == METADATA_KEY:
            continue
        if not isinstance(entry, dict):
            raise MalformedHeaderError(source, f"tensor {excerpt(name)}: entry is {type(entry).__name__}, "
                                       "expected an object")
        if not name.isascii():
            try:  # a "\ud800" escape decodes to a lone surrogate, which serde_json (the crate) refuses
                name.encode("utf-8")
            except UnicodeEncodeError:
                raise MalformedHeaderError(source, f"tensor name {excerpt(name)} is not valid Unicode") from None
        dtype = entry.get("dtype")
        if not isinstance(dtype, str) or dtype not in _DTYPE_BITS:
            raise MalformedHeaderError(
                source, f"tensor {excerpt(name)}: unknown dtype {excerpt(dtype)}; expected one of "
                f"{', '.join(sorted(_DTYPE_BITS))}",
            )  # fmt: skip
        shape = entry.get("shape")
        if not isinstance(shape, list) or len(shape) > MAX_DIMS \
                or not all(_is_int(d) and 0 <= d <= MAX_INT for d in shape):  # fmt: skip
            raise MalformedHeaderError(source, f"tensor {excerpt(name)}: shape {excerpt(shape)} is not a list of at "
                                       f"most {MAX_DIMS} non-negative ints up to {MAX_INT:,}")  # fmt: skip
        offsets = entry.get("data_offsets")
        if not (isinstance(offsets, list) and len(offsets) == 2 and all(_is_int(o) and o >= 0 for o in offsets)):
            raise MalformedHeaderError(
                source, f"tensor {excerpt(name)}: data_offsets {excerpt(offsets)} is not a pair of non-negative ints"
            )
        begin, end = offsets
        if end < begin:
            raise MalformedHeaderError(source, f"tensor {excerpt(name)}: data_offsets {excerpt(offsets)} end before "
                                       "they begin")
        info = TensorInfo(name=name, dtype=dtype, shape=tuple(shape))
        bits = info.numel * _DTYPE_BITS[dtype]
        if bits % 8 or bits // 8 != end - begin:
            raise MalformedHeaderError(
                source,
                f"tensor {excerpt(name)}: data_offsets span {end - begin} bytes but shape {list(shape)} of {dtype} "
                f"needs {bits / 8:g}",
            )
        entries.append((begin, end, info))
    entries.sort(key=lambda e: (e[0], e[1]))
    position = 0
    for begin, end, info in entries:
        if begin != position:
            what = "overlaps the previous tensor" if begin < position else f"leaves a gap after byte {position}"
            raise MalformedHeaderError(source, f"tensor {excerpt(info.name)}: data_offsets start at {begin} and {what}")
        position = end
    if body_bytes is not None and position != body_bytes:
        raise MalformedHeaderError(
            source, f"tensors end at byte {position} of the body but the file holds {body_bytes} bytes after the header"
        )
    return tuple(info for _, _, info in entries)


def parse_safetensors_prefix(
    data: bytes, *, source: str, file_bytes: int | None = None
) -> tuple[dict[str, object], tuple[TensorInfo, ...]]:
    """Parse a file's first ``8 + N`` bytes (or more) into its header and tensors.

    Args:
        data: The start of the file, at least the length prefix and the whole header.
        source: Where the bytes came from, for error messages.
        file_bytes: Total file size when known, to check the offsets reach its end.

    Raises:
        MalformedHeaderError: truncated, oversized or invalid header.
    """
    length = header_length(data, source=source)
    if len(data) < LENGTH_PREFIX_BYTES + length:
        raise MalformedHeaderError(
            source,
            f"truncated: the header announces {length:,} bytes but only {len(data) - LENGTH_PREFIX_BYTES:,} follow",
        )
    header = parse_header_json(data[LENGTH_PREFIX_BYTES : LENGTH_PREFIX_BYTES + length], source=source)
    body = None if file_bytes is None else file_bytes - LENGTH_PREFIX_BYTES - length
    return header, tensors_from_header(header, source=source, body_bytes=body)


def build_header_bytes(tensors: list[tuple[str, str, tuple[int, ...]]], *, metadata: Mapping[str, str] | None = None) -> tuple[bytes, int]:
    """Serialize a header for ``(name, dtype, shape)`` tensors laid out back to back.

    Returns the 8-byte length prefix + JSON padded with spaces to a multiple of 8 (as the
    safetensors crate writes it), and the size of the body the offsets describe. Used by the
    fixture script and tests; the body itself is never needed to read a header.
    """
    header: dict[str, object] = {}
    if metadata is not None:
        header[METADATA_KEY] = dict(metadata)
    offset = 0
    for name, dtype, shape in tensors:
        bits = TensorInfo(name=name, dtype=dtype, shape=tuple(shape)).numel * _DTYPE_BITS[dtype]
        size = -(-bits // 8)
        header[name] = {"dtype": dtype, "shape": list(shape), "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw, offset


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)
