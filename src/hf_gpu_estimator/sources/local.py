"""Local sources: a model folder (config.json + safetensors, single or sharded) or one .safetensors file."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources._json import JSONProblem, loads
from hf_gpu_estimator.sources.config import MAX_CONFIG_BYTES, config_from_json_text
from hf_gpu_estimator.sources.safetensors_header import (
    LENGTH_PREFIX_BYTES,
    header_length,
    parse_header_json,
    tensors_from_header,
)
from hf_gpu_estimator.spec import TensorInfo

CONFIG_FILE = "config.json"
SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"


@dataclass(frozen=True, kw_only=True)
class LocalCheckpoint:
    """What a folder or file holds: config.json and header tensors, either may be absent."""

    path: Path
    config: dict[str, object] | None
    tensors: tuple[TensorInfo, ...] | None
    notes: tuple[str, ...] = ()


def read_safetensors_header(path: str | os.PathLike[str]) -> tuple[TensorInfo, ...]:
    """The tensors of one .safetensors file, reading only its 8-byte length and header.

    Raises:
        MalformedHeaderError: truncated, oversized or invalid header.
    """
    path = Path(path)
    source = str(path)
    file_bytes = path.stat().st_size
    with path.open("rb") as f:
        length = header_length(f.read(LENGTH_PREFIX_BYTES), source=source)
        if file_bytes < LENGTH_PREFIX_BYTES + length:
            raise errors.MalformedHeaderError(
                source, f"truncated: the header announces {length:,} bytes but the file is {file_bytes:,} bytes"
            )
        raw = f.read(length)
    header = parse_header_json(raw, source=source)
    return tensors_from_header(header, source=source, body_bytes=file_bytes - LENGTH_PREFIX_BYTES - length)


def read_local(path: str | os.PathLike[str]) -> LocalCheckpoint:
    """Read a model folder, a config.json file (no weights), or a single .safetensors file (no config: architecture unknown).

    Raises:
        ModelNotFoundError: the path holds neither config.json nor safetensors weights.
        MalformedConfigError, MalformedHeaderError: unreadable config.json, index or header.
        SourceError: a file cannot be read (permissions, I/O error).
    """
    path = Path(path)
    try:
        return _read_local(path)
    except OSError as e:
        where = e.filename or path
        raise errors.SourceError(
            f"cannot read {where}: {e.strerror or type(e).__name__}; check that it exists and is readable"
        ) from e


def _read_small(path: Path, limit: int) -> bytes:
    """A JSON file's bytes, refusing one too large to be what its name says (bounded memory)."""
    size = path.stat().st_size
    if size > limit:
        problem = f"{size:,} bytes, over the {limit:,} a {path.name} can plausibly be; the file is corrupt"
        if path.name == CONFIG_FILE or path.suffix == ".json" and "index" not in path.name:
            raise errors.MalformedConfigError(str(path), f"{path}: {problem}")
        raise errors.MalformedHeaderError(str(path), problem)
    with path.open("rb") as f:
        return f.read(limit + 1)


def _read_local(path: Path) -> LocalCheckpoint:
    if path.is_file():
        if path.suffix == ".json":  # a config.json on its own: the architecture, no weights to count
            config = config_from_json_text(_read_small(path, MAX_CONFIG_BYTES), source=str(path))
            return LocalCheckpoint(path=path, config=config, tensors=None,
                                   notes=(f"{path.name} alone: counts from the config, no weights read",))
        if path.suffix != ".safetensors":
            raise errors.ModelNotFoundError(
                str(path), f"{path} is a file but not .safetensors or config.json; point at a model folder, a .safetensors "
                "file or a config.json"
            )
        return LocalCheckpoint(path=path, config=None, tensors=read_safetensors_header(path),
                               notes=(f"single file {path.name}: no config.json, counts from its header only",))  # fmt: skip
    config = None
    config_path = path / CONFIG_FILE
    if config_path.is_file():
        config = config_from_json_text(_read_small(config_path, MAX_CONFIG_BYTES), source=str(config_path))
    tensors: tuple[TensorInfo, ...] | None = None
    notes: list[str] = []
    if (path / INDEX_FILE).is_file():
        tensors = _read_sharded(path)
    elif (path / SINGLE_FILE).is_file():
        tensors = read_safetensors_header(path / SINGLE_FILE)
    else:
        # Regular files only: a FIFO named *.safetensors would block the read forever.
        others = sorted(p.name for p in path.glob("*.safetensors") if p.is_file())
        if len(others) == 1:
            tensors = read_safetensors_header(path / others[0])
        elif config is not None:
            notes.append(f"{path} has no {SINGLE_FILE} or {INDEX_FILE}: counts from config.json")
    if config is None and tensors is None:
        raise errors.ModelNotFoundError(
            str(path), f"{path} holds neither {CONFIG_FILE} nor safetensors weights; point at a transformers model folder"
        )
    return LocalCheckpoint(path=path, config=config, tensors=tensors, notes=tuple(notes))


def _read_sharded(folder: Path) -> tuple[TensorInfo, ...]:
    index_path = folder / INDEX_FILE
    source = str(index_path)
    try:
        index = loads(_read_small(index_path, MAX_CONFIG_BYTES))
    except JSONProblem as e:
        raise errors.MalformedHeaderError(source, f"index is not valid JSON ({e})") from e
    weight_map = index.get("weight_map") if isinstance(index, dict) else None
    if not isinstance(weight_map, dict) or not all(isinstance(v, str) for v in weight_map.values()):
        raise errors.MalformedHeaderError(source, "index has no weight_map object of tensor name -> shard file")
    tensors: list[TensorInfo] = []
    seen: set[str] = set()
    root = folder.resolve()
    for shard in sorted(set(weight_map.values())):
        shard_path = (folder / shard).resolve()
        if root not in shard_path.parents:
            raise errors.MalformedHeaderError(source, f"shard path {shard!r} escapes {folder}")
        if not shard_path.is_file():
            raise errors.MalformedHeaderError(source, f"shard {shard!r} listed in the index is missing from {folder}")
        for t in read_safetensors_header(shard_path):
            if t.name in seen:
                raise errors.MalformedHeaderError(str(shard_path), f"tensor {t.name!r} appears in two shards")
            seen.add(t.name)
            tensors.append(t)
    return tuple(tensors)
