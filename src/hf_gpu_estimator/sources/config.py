"""config.json as plain data: decoding, the stored dtype and the quantization_config.

config.json is only ever read as JSON: no ``trust_remote_code``, no repo code imported.
"""

from __future__ import annotations

from collections.abc import Mapping

from hf_gpu_estimator.constants import MAX_INT, MAX_QUANT_BITS
from hf_gpu_estimator.errors import MalformedConfigError, excerpt
from hf_gpu_estimator.sources._json import JSONProblem, loads
from hf_gpu_estimator.spec import TORCH_TO_SAFETENSORS, QuantizationConfig

#: config.json files are kilobytes; the largest on the Hub (long id2label maps) are a few MB.
#: Anything bigger is not a config, and decoding it would cost memory unbounded.
MAX_CONFIG_BYTES = 64 << 20


def config_from_json_text(text: str | bytes, *, source: str) -> dict[str, object]:
    """Decode config.json text into a dict.

    Raises:
        MalformedConfigError: not JSON, or not a JSON object.
    """
    try:
        config = loads(text, max_bytes=MAX_CONFIG_BYTES)
    except JSONProblem as e:
        raise MalformedConfigError(
            source, f"{source}: config.json is not valid JSON ({e}); re-download or fix the file"
        ) from e
    if not isinstance(config, dict):
        raise MalformedConfigError(
            source, f"{source}: config.json holds a JSON {type(config).__name__}, expected an object"
        )
    return config


def config_to_dict(config: object, *, source: str = "config") -> dict[str, object]:
    """A plain dict from a dict or anything with ``to_dict()`` (``transformers.PretrainedConfig``).

    Raises:
        MalformedConfigError: ``to_dict()`` does not return a mapping, or the argument is neither.
    """
    if isinstance(config, Mapping):
        return dict(config)
    to_dict = getattr(config, "to_dict", None)
    if callable(to_dict):
        result = to_dict()
        if isinstance(result, Mapping):
            return dict(result)
        raise MalformedConfigError(source, f"{type(config).__name__}.to_dict() returned {type(result).__name__}, not a dict")
    raise MalformedConfigError(source, f"expected a config dict or PretrainedConfig, got {type(config).__name__}")


def stored_dtype_from_config(config: Mapping[str, object], *, source: str = "config") -> str | None:
    """The checkpoint dtype config.json declares (``dtype``, or the older ``torch_dtype``), torch name.

    Returns ``None`` when absent or ``"auto"``.

    Raises:
        MalformedConfigError: a dtype name torch does not have.
    """
    for key in ("dtype", "torch_dtype"):  # transformers >= 4.56 writes "dtype"
        value = config.get(key)
        if value is None or value == "auto":
            continue
        name = str(value).removeprefix("torch.")
        if name not in TORCH_TO_SAFETENSORS:
            raise MalformedConfigError(
                source,
                f"{source}: config.json {key}={excerpt(value)} is not a dtype; expected one of "
                f"{', '.join(TORCH_TO_SAFETENSORS)}",
                field=key,
            )
        return name
    return None


def quantization_from_config(config: Mapping[str, object], *, source: str = "config") -> QuantizationConfig | None:
    """Parse ``quantization_config`` (as transformers' quantizers write it) into a QuantizationConfig.

    Raises:
        MalformedConfigError: an unknown ``quant_method`` or a field of the wrong type.
    """
    qc = config.get("quantization_config")
    if qc is None:
        return None
    if not isinstance(qc, Mapping):
        raise MalformedConfigError(source, f"{source}: quantization_config must be an object", field="quantization_config")
    method = str(qc.get("quant_method", "")).lower().replace("_", "-")
    skip = qc.get("modules_to_not_convert") or qc.get("llm_int8_skip_modules") or qc.get("ignore") or ()
    if isinstance(skip, str):
        skip = (skip,)
    common = {"modules_not_converted": tuple(str(s) for s in skip)}
    # Field names: transformers/utils/quantization_config.py (BitsAndBytesConfig, GPTQConfig, AwqConfig,
    # FineGrainedFP8Config, CompressedTensorsConfig, Mxfp4Config).
    if method == "bitsandbytes" or (not method and (qc.get("load_in_4bit") or qc.get("load_in_8bit"))):
        if qc.get("load_in_4bit"):
            return QuantizationConfig(
                method="bitsandbytes", bits=4, quant_type=str(qc.get("bnb_4bit_quant_type", "fp4")),
                double_quant=bool(qc.get("bnb_4bit_use_double_quant", False)),
                compute_dtype=_dtype_name(qc.get("bnb_4bit_compute_dtype")), **common,
            )  # fmt: skip
        if qc.get("load_in_8bit"):
            return QuantizationConfig(method="bitsandbytes", bits=8, quant_type="int8", **common)
        raise MalformedConfigError(
            source, f"{source}: bitsandbytes quantization_config sets neither load_in_4bit nor load_in_8bit",
            field="quantization_config",
        )  # fmt: skip
    if method in ("gptq", "awq"):
        bits = _int_field(qc, ("bits", "w_bit"), default=4, source=source, maximum=MAX_QUANT_BITS)
        group = _int_field(qc, ("group_size", "q_group_size"), default=128, source=source, minimum=-1)
        if group == 0 or group < -1:
            raise _bad_field(source, "group_size", group, f"-1 (one group per row) or an integer from 1 to {MAX_INT:,}")
        version = qc.get("version") or qc.get("checkpoint_format")
        return QuantizationConfig(
            method=method, bits=bits, group_size=None if group == -1 else group,
            quant_type=str(version).lower() if version else None, **common,
        )  # fmt: skip
    if method == "fp8":
        # FineGrainedFP8Config: one float32 scale (weight_scale_inv) per weight_block_size block;
        # group_size is the number of weights per scale, as the catalog stores it.
        block = qc.get("weight_block_size")
        if block is not None and not (isinstance(block, list) and len(block) == 2 and all(
                isinstance(b, int) and not isinstance(b, bool) and 0 < b <= MAX_INT for b in block)):  # fmt: skip
            raise _bad_field(source, "weight_block_size", block, f"a pair of integers from 1 to {MAX_INT:,}")
        group = block[0] * block[1] if block is not None else None
        return QuantizationConfig(method="fp8", bits=8, quant_type="e4m3", group_size=group, **common)
    if method == "mxfp4":
        # OCP MX: 32 fp4 values share one 8-bit scale -> 4 + 8/32 bits.
        return QuantizationConfig(method="mxfp4", bits=4, group_size=32, quant_type="mxfp4", **common)
    if method == "compressed-tensors":
        return _compressed_tensors(qc, source=source, common=common)
    raise MalformedConfigError(
        source,
        f"{source}: quantization_config.quant_method {excerpt(qc.get('quant_method'))} is not supported; supported: "
        "bitsandbytes, gptq, awq, fp8, mxfp4, compressed-tensors (pass --quantization to override)",
        field="quantization_config.quant_method",
    )


def _compressed_tensors(qc: Mapping[str, object], *, source: str, common: dict) -> QuantizationConfig:
    groups = qc.get("config_groups") or {}
    weights = None
    if isinstance(groups, Mapping):
        for group in groups.values():
            if isinstance(group, Mapping) and isinstance(group.get("weights"), Mapping):
                weights = group["weights"]
                break
    if weights is None:
        raise MalformedConfigError(
            source, f"{source}: compressed-tensors quantization_config has no config_groups[*].weights",
            field="quantization_config.config_groups",
        )  # fmt: skip
    bits = _int_field(weights, ("num_bits",), default=8, source=source, maximum=MAX_QUANT_BITS)
    # compressed-tensors QuantizationArgs: type "int" or "float"; strategy tensor/channel/group/block.
    kind = str(weights.get("type", "int")).lower()
    group = weights.get("group_size")
    if group is not None and (isinstance(group, bool) or not isinstance(group, int)
                              or not (group == -1 or 0 < group <= MAX_INT)):  # fmt: skip
        raise _bad_field(source, "group_size", group, f"null, -1 or an integer from 1 to {MAX_INT:,}")
    return QuantizationConfig(
        method="compressed-tensors", bits=bits,
        group_size=group if group is not None and group > 0 else None,
        quant_type=f"{kind}{bits}", **common,
    )  # fmt: skip


def _int_field(mapping: Mapping[str, object], keys: tuple[str, ...], *, default: int, source: str, minimum: int = 1,
               maximum: int = MAX_INT) -> int:  # fmt: skip
    """An integer of quantization_config from ``minimum`` to ``maximum`` (the limits every source shares)."""
    for key in keys:
        if key in mapping and mapping[key] is not None:
            value = mapping[key]
            if isinstance(value, bool) or not isinstance(value, int) or not minimum <= value <= maximum:
                raise _bad_field(source, key, value, f"an integer from {minimum} to {maximum:,}")
            return value
    return default


def _bad_field(source: str, key: str, value: object, expected: str) -> MalformedConfigError:
    return MalformedConfigError(
        source, f"{source}: quantization_config.{key}={excerpt(value)}, expected {expected}",
        field=f"quantization_config.{key}",
    )


def _dtype_name(value: object) -> str | None:
    return None if value is None else str(value).removeprefix("torch.")
