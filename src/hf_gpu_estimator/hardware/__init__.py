"""GPU catalog: datasheet facts per accelerator (with a source per entry) and name lookup.

Units and conventions (every entry, bundled or user-supplied, follows them):

* ``memory_bytes`` is the marketed capacity read as binary units, because GPU memory is
  built from power-of-two devices: an "80GB" HBM3 card is ``80 * 2**30`` bytes.
  ``usable_memory_bytes`` is the total the device reports to the framework
  (``torch.cuda.mem_get_info()[1]``, vLLM's ``total_gpu_memory``, CUDA's
  ``totalGlobalMem``), which is lower than the marketed figure (ECC, the driver's reserved
  region: an H100 80GB reports 79.19 GiB, nvidia-smi 81559 MiB); for Apple Silicon it is the
  GPU's default share of unified memory (Metal's ``recommendedMaxWorkingSetSize``). Fit
  verdicts and plans use it. ``usable_memory_source`` says where the figure was read; one
  that starts with ``"derived:"`` was computed from sourced entries of the same memory
  generation by the rule it states. A user entry may omit it: the value then equals
  ``memory_bytes`` and the source is ``None``.
* ``runtime`` is the software stack that owns the device (``cuda``, ``rocm``, ``metal``,
  ``xpu``, ``hpu``); ``context_bytes`` is the per-process memory that stack takes outside the
  framework's allocator, ``None`` for the estimator's CUDA default (Apple: 0, Metal has no
  CUDA context).
* Bandwidths are decimal bytes per second (1 TB/s = 1e12 B/s).
* ``peak_flops`` holds *dense* peak rates in FLOP/s (int8 in OP/s); datasheets that print
  2:4-sparsity figures are halved. Tensor-core fp16/bf16 figures are the fp32-accumulate
  rates, because PyTorch accumulates half-precision matmuls in fp32. ``None`` means the
  dtype is unsupported or the figure was not published.

Lookup is case-insensitive and ignores spaces, underscores and hyphens; vendor words
("NVIDIA", "GeForce", "Tesla", "AMD", "Instinct", "Intel", "Apple") are dropped, so the string
``torch.cuda.get_device_name()`` returns usually resolves. A partial name (``"4090"``,
``"H100 SXM"``) resolves when exactly one entry matches; otherwise it is ambiguous. A name that
states the memory but not the form factor (``"A100-80GB"``, ``"H100-80GB"``, ``"A100-40GB"``) names
the SXM part the clouds rent, and every result shows the full name it resolved to; a name with
neither (``"H100"``, ``"A100"``, ``"V100"``) asks:

>>> get_gpu("rtx 4090").name
'RTX-4090'
>>> get_gpu("NVIDIA H100 80GB HBM3").name
'H100-SXM-80GB'
>>> get_gpu("h100")
Traceback (most recent call last):
...
hf_gpu_estimator.errors.UnknownNameError: gpu 'h100' is ambiguous: H100-NVL-94GB, H100-PCIe-80GB, H100-SXM-80GB

User entries: :func:`load_gpus` reads a JSON (or YAML, when PyYAML is installed) file of the
same schema as the bundled ``gpus.json``; :func:`register_gpus` adds entries to the default
registry (an entry with a bundled entry's name replaces it); the environment variable
``HFGE_GPUS_FILE`` (one path, or several joined by ``os.pathsep``) is loaded into the
default registry automatically.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, fields
from importlib import resources
from pathlib import Path
from types import MappingProxyType
from typing import Any

from hf_gpu_estimator.errors import InvalidArgumentError, InvalidGPUEntryError, UnknownNameError

__all__ = [
    "ENV_GPUS_FILE",
    "FLOPS_DTYPES",
    "GPU",
    "RUNTIMES",
    "VENDORS",
    "get_gpu",
    "gpu_from_dict",
    "list_gpus",
    "load_gpus",
    "register_gpus",
    "reset_registry",
]

#: Environment variable naming extra catalog files (``os.pathsep``-separated).
ENV_GPUS_FILE = "HFGE_GPUS_FILE"
VENDORS: tuple[str, ...] = ("nvidia", "amd", "intel", "apple")
#: Dtypes every entry's ``peak_flops`` carries (``None`` where unsupported/unpublished).
FLOPS_DTYPES: tuple[str, ...] = ("fp32", "tf32", "fp16", "bf16", "fp8", "int8")
#: Further dtypes an entry may carry.
OPTIONAL_FLOPS_DTYPES: tuple[str, ...] = ("fp64", "fp4", "int4")
FORM_FACTORS: tuple[str, ...] = ("SXM", "PCIe", "OAM", "superchip", "consumer", "workstation", "unified")
#: Software stacks a device runs under (``cuda`` also for Jetson and DGX Spark).
RUNTIMES: tuple[str, ...] = ("cuda", "rocm", "metal", "xpu", "hpu")
_DEFAULT_RUNTIME = {"nvidia": "cuda", "amd": "rocm", "intel": "xpu", "apple": "metal"}
# The fastest dense rate any listed accelerator reaches is B200 fp4 (~9e15); 1e17 leaves
# room for future parts while catching a figure entered in the wrong unit.
_MAX_PLAUSIBLE_FLOPS = 1e17
_MAX_PLAUSIBLE_BANDWIDTH = 1e14
_MAX_PLAUSIBLE_MEMORY = 2**40
_DATE_RE = re.compile(r"^\d{4}-\d{2}(-\d{2})?$")
_URL_RE = re.compile(r"^https?://\S+$")
_VENDOR_WORDS = frozenset({"nvidia", "geforce", "tesla", "amd", "instinct", "intel", "apple"})
_SPLIT_RE = re.compile(r"[\s_\-/,()]+")


@dataclass(frozen=True, kw_only=True)
class GPU:
    """One accelerator's datasheet facts.

    Attributes:
        name: Canonical catalog name, e.g. ``"H100-SXM-80GB"``.
        vendor: One of ``nvidia``, ``amd``, ``intel``, ``apple``.
        aliases: Other names that resolve to this entry exactly (device names as the
            driver reports them, common shorthands).
        memory_bytes: Marketed memory capacity, binary units (80 GB -> ``80 * 2**30``).
        usable_memory_bytes: Total memory the driver reports (nvidia-smi), or for unified
            memory the GPU's default share; equals ``memory_bytes`` when not measured.
        usable_memory_source: Where ``usable_memory_bytes`` comes from (URL or a short
            description of the measurement); ``None`` when not measured.
        memory_bandwidth_bytes_per_s: Peak memory bandwidth.
        peak_flops: Dense peak FLOP/s per dtype (``fp32``, ``tf32``, ``fp16``, ``bf16``,
            ``fp8``, ``int8`` always present, ``None`` where unsupported or unpublished).
        interconnect: GPU-to-GPU link, e.g. ``"NVLink 4"`` or ``"PCIe 4.0 x16"``.
        interconnect_bandwidth_bytes_per_s: Per-GPU link bandwidth as the datasheet states
            it (the entry's notes say whether bidirectional).
        power_watts: Maximum board power / TDP.
        price_per_hour_usd: A typical on-demand cloud price for one GPU.
        price_source: URL of the price list.
        price_date: When the price was listed (``YYYY-MM`` or ``YYYY-MM-DD``).
        form_factor: ``SXM``, ``PCIe``, ``OAM``, ``superchip``, ``consumer``,
            ``workstation`` or ``unified``.
        unified_memory: Whether memory is shared with the CPU (Apple Silicon, DGX Spark,
            Jetson, Ryzen AI Max; GH200's LPDDR is *not* counted in ``memory_bytes``).
        runtime: ``cuda``, ``rocm``, ``metal``, ``xpu`` or ``hpu``; defaults from the vendor.
        context_bytes: Memory the runtime takes per process outside the framework's
            allocator; ``None`` means the estimator's CUDA-context default applies.
        source: Datasheet (or closest public spec page) URL.
        date: When the facts were read or published.
        notes: Caveats: figures not found, widely-cited figures not opened, conversions.
        mig_parent: For a MIG slice (a GPU instance of a Multi-Instance GPU), the catalog name of the
            full GPU it is cut from; ``None`` for a whole device.
    """

    name: str
    vendor: str
    aliases: tuple[str, ...] = ()
    memory_bytes: int
    usable_memory_bytes: int
    usable_memory_source: str | None = None
    memory_bandwidth_bytes_per_s: float
    peak_flops: Mapping[str, float | None] = field(hash=False)
    interconnect: str | None = None
    interconnect_bandwidth_bytes_per_s: float | None = None
    power_watts: float | None = None
    price_per_hour_usd: float | None = None
    price_source: str | None = None
    price_date: str | None = None
    form_factor: str | None = None
    unified_memory: bool = False
    runtime: str = ""
    context_bytes: int | None = None
    source: str
    date: str
    notes: str = ""
    mig_parent: str | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "aliases", tuple(self.aliases))
        flops = {dtype: None for dtype in FLOPS_DTYPES}
        flops.update(self.peak_flops)
        object.__setattr__(self, "peak_flops", MappingProxyType(flops))
        if not self.runtime and self.vendor in _DEFAULT_RUNTIME:
            object.__setattr__(self, "runtime", _DEFAULT_RUNTIME[self.vendor])
        _validate(self, source="<GPU>")

    @property
    def memory_gib(self) -> float:
        """Marketed memory in GiB (for display)."""
        return self.memory_bytes / 2**30

    @property
    def usable_memory_gib(self) -> float:
        """Driver-reported memory in GiB (for display)."""
        return self.usable_memory_bytes / 2**30

    @property
    def usable_memory_derived(self) -> bool:
        """Whether ``usable_memory_bytes`` was derived by rule rather than read off a device."""
        return (self.usable_memory_source or "").startswith("derived:")

    @property
    def supports_bf16(self) -> bool:
        """Whether the device has a bf16 matmul rate (T4, V100 and Apple GPUs do not publish one)."""
        return self.peak_flops.get("bf16") is not None

    @property
    def has_cuda_context(self) -> bool:
        """Whether a process on this device pays the estimator's CUDA-context default."""
        return self.context_bytes is None

    def flops(self, dtype: str) -> float | None:
        """Dense peak FLOP/s for a dtype name (``bf16``, ``bfloat16``, ``float32`` ...).

        Raises:
            UnknownNameError: ``dtype`` is not a known compute dtype.
        """
        key = _DTYPE_NAMES.get(dtype.lower(), dtype.lower())
        if key not in FLOPS_DTYPES and key not in OPTIONAL_FLOPS_DTYPES:
            raise UnknownNameError("dtype", dtype, FLOPS_DTYPES + OPTIONAL_FLOPS_DTYPES)
        return self.peak_flops.get(key)

    def to_dict(self) -> dict[str, Any]:
        """The entry as JSON-ready data, in the catalog file's schema."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "aliases":
                value = list(value)
            elif f.name == "peak_flops":
                value = dict(value)
            out[f.name] = value
        return out


_DTYPE_NAMES = {
    "float32": "fp32", "float": "fp32", "f32": "fp32", "tfloat32": "tf32",
    "float16": "fp16", "half": "fp16", "f16": "fp16", "bfloat16": "bf16",
    "float8": "fp8", "float8_e4m3fn": "fp8", "float8_e5m2": "fp8", "float64": "fp64", "double": "fp64",
}  # fmt: skip


# --------------------------------------------------------------------------- validation


def _fail(source: str, entry: str, field_name: str, problem: str) -> InvalidGPUEntryError:
    return InvalidGPUEntryError(source, entry, field_name, problem)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _validate(gpu: GPU, *, source: str) -> None:
    entry = gpu.name if isinstance(gpu.name, str) and gpu.name else "<unnamed>"
    if not isinstance(gpu.name, str) or not _tokens(gpu.name):
        raise _fail(source, entry, "name", "a non-empty string")
    if gpu.vendor not in VENDORS:
        raise _fail(source, entry, "vendor", f"one of {', '.join(VENDORS)}, got {gpu.vendor!r}")
    for alias in gpu.aliases:
        if not isinstance(alias, str) or not _tokens(alias):
            raise _fail(source, entry, "aliases", f"non-empty strings, got {alias!r}")
    for name in ("memory_bytes", "usable_memory_bytes"):
        value = getattr(gpu, name)
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= _MAX_PLAUSIBLE_MEMORY:
            raise _fail(source, entry, name, f"a positive integer number of bytes (<= 1 TiB), got {value!r}")
    if gpu.usable_memory_bytes > gpu.memory_bytes:
        raise _fail(source, entry, "usable_memory_bytes", "at most memory_bytes")
    bandwidth = gpu.memory_bandwidth_bytes_per_s
    if not _is_number(bandwidth) or not 1e9 <= bandwidth <= _MAX_PLAUSIBLE_BANDWIDTH:
        raise _fail(
            source, entry, "memory_bandwidth_bytes_per_s", f"bytes per second between 1e9 and 1e14, got {bandwidth!r}"
        )
    if not isinstance(gpu.peak_flops, Mapping):
        raise _fail(source, entry, "peak_flops", "a mapping of dtype to FLOP/s")
    for dtype, value in gpu.peak_flops.items():
        if dtype not in FLOPS_DTYPES and dtype not in OPTIONAL_FLOPS_DTYPES:
            known = ", ".join(FLOPS_DTYPES + OPTIONAL_FLOPS_DTYPES)
            raise _fail(source, entry, f"peak_flops.{dtype}", f"a known dtype ({known})")
        if value is not None and (not _is_number(value) or not 1e9 <= value <= _MAX_PLAUSIBLE_FLOPS):
            raise _fail(source, entry, f"peak_flops.{dtype}", f"dense FLOP/s between 1e9 and 1e17 or null, got {value!r}")
    for name in ("interconnect_bandwidth_bytes_per_s", "power_watts", "price_per_hour_usd"):
        value = getattr(gpu, name)
        if value is not None and (not _is_number(value) or value <= 0):
            raise _fail(source, entry, name, f"a positive number or null, got {value!r}")
    for name in ("interconnect", "usable_memory_source", "price_source", "form_factor"):
        value = getattr(gpu, name)
        if value is not None and (not isinstance(value, str) or not value):
            raise _fail(source, entry, name, f"a non-empty string or null, got {value!r}")
    if gpu.form_factor is not None and gpu.form_factor not in FORM_FACTORS:
        raise _fail(source, entry, "form_factor", f"one of {', '.join(FORM_FACTORS)} or null, got {gpu.form_factor!r}")
    if gpu.price_per_hour_usd is not None and (gpu.price_source is None or gpu.price_date is None):
        raise _fail(source, entry, "price_source", "a price needs price_source and price_date")
    if gpu.price_source is not None and not _URL_RE.match(gpu.price_source):
        raise _fail(source, entry, "price_source", f"an http(s) URL, got {gpu.price_source!r}")
    if gpu.price_date is not None and (not isinstance(gpu.price_date, str) or not _DATE_RE.match(gpu.price_date)):
        raise _fail(source, entry, "price_date", f"YYYY-MM or YYYY-MM-DD, got {gpu.price_date!r}")
    if gpu.runtime not in RUNTIMES:
        raise _fail(source, entry, "runtime", f"one of {', '.join(RUNTIMES)}, got {gpu.runtime!r}")
    context = gpu.context_bytes
    if context is not None and (not isinstance(context, int) or isinstance(context, bool) or not 0 <= context < 2**34):
        raise _fail(source, entry, "context_bytes", f"a non-negative integer number of bytes or null, got {context!r}")
    if not isinstance(gpu.unified_memory, bool):
        raise _fail(source, entry, "unified_memory", f"true or false, got {gpu.unified_memory!r}")
    if not isinstance(gpu.source, str) or not _URL_RE.match(gpu.source):
        raise _fail(source, entry, "source", f"an http(s) URL of the datasheet, got {gpu.source!r}")
    if not isinstance(gpu.date, str) or not _DATE_RE.match(gpu.date):
        raise _fail(source, entry, "date", f"YYYY-MM or YYYY-MM-DD, got {gpu.date!r}")
    if not isinstance(gpu.notes, str):
        raise _fail(source, entry, "notes", "a string")
    if gpu.mig_parent is not None and (not isinstance(gpu.mig_parent, str) or not gpu.mig_parent):
        raise _fail(source, entry, "mig_parent", f"a catalog GPU name or null, got {gpu.mig_parent!r}")


_FIELD_NAMES = frozenset(f.name for f in fields(GPU))
_REQUIRED_FIELDS = ("name", "vendor", "memory_bytes", "memory_bandwidth_bytes_per_s", "peak_flops", "source", "date")


def gpu_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> GPU:
    """Build a :class:`GPU` from one entry of the catalog schema.

    ``usable_memory_bytes`` may be omitted or null: it then equals ``memory_bytes`` and
    ``usable_memory_source`` is ``None``. Unknown keys are rejected (a typo would
    otherwise drop a fact silently).

    Args:
        data: One entry, keys as :class:`GPU`'s fields.
        source: Where the entry came from, for error messages.

    Raises:
        InvalidGPUEntryError: A field is missing, unknown or invalid.
    """
    if not isinstance(data, Mapping):
        raise _fail(source, "<entry>", "<entry>", f"an object, got {type(data).__name__}")
    entry = data.get("name") if isinstance(data.get("name"), str) else "<unnamed>"
    for key in data:
        if key not in _FIELD_NAMES:
            raise _fail(source, entry, str(key), f"not a GPU field (known: {', '.join(sorted(_FIELD_NAMES))})")
    for key in _REQUIRED_FIELDS:
        if data.get(key) is None:
            raise _fail(source, entry, key, "required")
    kwargs = dict(data)
    aliases = kwargs.get("aliases", ())
    if isinstance(aliases, str) or not isinstance(aliases, (list, tuple)):
        raise _fail(source, entry, "aliases", "a list of strings")
    kwargs["aliases"] = tuple(aliases)
    if not isinstance(kwargs["peak_flops"], Mapping):
        raise _fail(source, entry, "peak_flops", "an object mapping dtype to FLOP/s")
    if kwargs.get("usable_memory_bytes") is None:
        kwargs["usable_memory_bytes"] = kwargs["memory_bytes"]
        kwargs["usable_memory_source"] = None
    for key in ("memory_bytes", "usable_memory_bytes"):
        value = kwargs[key]
        # JSON writers may emit 85899345920.0; accept integral floats, reject fractions.
        if isinstance(value, float) and value.is_integer():
            kwargs[key] = int(value)
    for key in ("notes", "mig_parent"):
        if kwargs.get(key) is None:
            kwargs.pop(key, None)
    for key in ("unified_memory", "runtime"):
        if kwargs.get(key) is None:
            kwargs.pop(key, None)
    try:
        return GPU(**kwargs)
    except InvalidGPUEntryError as e:
        raise _fail(source, e.entry, e.field, e.accepted) from None
    except TypeError as e:  # a field of the wrong shape that the dataclass itself rejects
        raise _fail(source, entry, "<entry>", str(e)) from e


def load_gpus(path: str | os.PathLike[str]) -> tuple[GPU, ...]:
    """Read GPU entries from a JSON or YAML file of the catalog schema.

    The file holds either a list of entries or an object with a ``"gpus"`` list (the
    bundled file's shape). YAML (``.yaml``/``.yml``) needs PyYAML.

    Args:
        path: The file.

    Returns:
        The entries, in file order.

    Raises:
        InvalidGPUEntryError: The file is not readable or not of the schema, or an entry
            is invalid (the message names the file, entry and field).
        MissingDependencyError: A YAML file was given and PyYAML is not installed.
    """
    path = Path(path)
    source = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise _fail(source, "<file>", "<file>", f"cannot be read: {e.strerror or e}") from e
    if path.suffix.lower() in (".yaml", ".yml"):
        try:
            import yaml
        except ImportError as e:
            from hf_gpu_estimator.errors import MissingDependencyError

            raise MissingDependencyError("pyyaml", "all", "reading a YAML GPU file") from e
        try:
            data = yaml.safe_load(text)
        except yaml.YAMLError as e:
            raise _fail(source, "<file>", "<file>", f"not valid YAML: {e}") from e
    else:
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise _fail(source, "<file>", "<file>", f"not valid JSON: {e}") from e
    return _entries_from_data(data, source=source)


def _entries_from_data(data: Any, *, source: str) -> tuple[GPU, ...]:
    mig: Any = ()
    if isinstance(data, Mapping):
        if "gpus" not in data:
            raise _fail(source, "<file>", "gpus", "a list of GPU entries (or a top-level list)")
        mig = data.get("mig_profiles", ())
        data = data["gpus"]
    if not isinstance(data, list):
        raise _fail(source, "<file>", "gpus", "a list of GPU entries")
    gpus = tuple(gpu_from_dict(item, source=f"{source}[{i}]") for i, item in enumerate(data))
    gpus += _mig_slices(mig, {g.name: g for g in gpus}, source=f"{source}: mig_profiles")
    _check_unique(gpus, source=source)
    return gpus


#: A MIG GPU instance owns a number of the full GPU's eight memory slices (NVIDIA MIG user guide,
#: "Supported MIG Profiles": fractions of memory in eighths on A100, H100 and H200).
MIG_MEMORY_SLICES = 8


def _mig_slices(groups: Any, parents: Mapping[str, GPU], *, source: str) -> tuple[GPU, ...]:
    """The MIG slices of a catalog file's ``mig_profiles``: per full GPU, its profiles with the memory
    slices, SMs and reported GiB of each. Memory, bandwidth and peak rates are the full GPU's scaled by
    memory slices (bandwidth: each slice owns its share of the memory controllers) and by SMs (rates)."""
    if not isinstance(groups, (list, tuple)):
        raise _fail(source, "<file>", "mig_profiles", "a list of {parent, profiles} objects")
    out: list[GPU] = []
    for group in groups:
        parent = parents.get(group.get("parent")) if isinstance(group, Mapping) else None
        if parent is None:
            raise _fail(source, str(group.get("parent") if isinstance(group, Mapping) else group), "parent",
                        "the name of a GPU entry of the same file")
        total_sms = group.get("parent_sms")
        if not isinstance(total_sms, int) or total_sms < 1:
            raise _fail(source, parent.name, "parent_sms", "the full GPU's SM count")
        like = parents.get(group["reported_like"]) if group.get("reported_like") else None
        like_group = next((g for g in groups if g.get("parent") == group.get("reported_like")), None)
        for profile in group.get("profiles", ()):
            name = f"{parent.name}-MIG-{profile.get('profile')}"
            slices, sms = profile.get("memory_slices"), profile.get("sms")
            if not isinstance(slices, int) or not 1 <= slices <= MIG_MEMORY_SLICES:
                raise _fail(source, name, "memory_slices", f"1 to {MIG_MEMORY_SLICES}")
            if not isinstance(sms, int) or not 1 <= sms <= total_sms:
                raise _fail(source, name, "sms", f"1 to parent_sms ({total_sms})")
            if like is not None and like_group is not None:
                # Reported bytes derived from a sibling GPU's listing of the profile with the same slices.
                twin = next((p for p in like_group["profiles"] if p["profile"] == profile.get("like")), None)
                if twin is None:
                    raise _fail(source, name, "like", f"a profile of {like.name}")
                ratio = twin["reported_gib"] * 2**30 / like.usable_memory_bytes
                reported = round(parent.usable_memory_bytes * ratio)
                reported_source = group["reported_source"]
            else:
                reported = round(float(profile.get("reported_gib", 0)) * 2**30)
                reported_source = group["reported_source"] + (
                    f"; {profile['reported_note']}" if profile.get("reported_note") else "")
            fraction = sms / total_sms
            devices = group.get("device_names", ())
            suffixes = [profile["profile"]] + ([f"{profile['profile']}+me"] if profile.get("media_extensions") else [])
            out.append(gpu_from_dict({
                "name": name, "vendor": parent.vendor, "mig_parent": parent.name,
                "aliases": [f"{device} MIG {suffix}" for device in devices for suffix in suffixes],
                "memory_bytes": parent.memory_bytes * slices // MIG_MEMORY_SLICES,
                "usable_memory_bytes": reported, "usable_memory_source": reported_source,
                "memory_bandwidth_bytes_per_s": parent.memory_bandwidth_bytes_per_s * slices / MIG_MEMORY_SLICES,
                "peak_flops": {k: (None if v is None else v * fraction) for k, v in parent.peak_flops.items()},
                "form_factor": parent.form_factor, "runtime": parent.runtime, "context_bytes": parent.context_bytes,
                "source": group["source"], "date": group["date"],
                "notes": (f"MIG slice {profile['profile']} of the {parent.name}: {slices}/{MIG_MEMORY_SLICES} of its "
                          f"memory and {sms} of its {total_sms} SMs (MIG user guide; SM counts as nvidia-smi mig "
                          "-lgip lists them); bandwidth and peak rates are the full GPU's scaled by those fractions "
                          "(derived, not measured). No peer-to-peer or NVLink between MIG devices and one per "
                          "process: no tensor or pipeline parallelism across slices. Board power is the full "
                          "GPU's, shared (null here); no price."),
            }, source=source))
    return tuple(out)


# --------------------------------------------------------------------------- lookup


def _tokens(name: str) -> tuple[str, ...]:
    """Lower-case words of a name, vendor words dropped."""
    return tuple(t for t in _SPLIT_RE.split(name.lower()) if t and t not in _VENDOR_WORDS)


def _key(name: str) -> str:
    return "".join(_tokens(name))


def _words(name: str) -> frozenset[str]:
    """Tokens further split where letters turn into digits ("rtx4090" -> "rtx", "4090").

    Digits followed by letters stay together ("40s", "250x", "80gb"), so "L40" does not
    match "L40S" and "MI250" does not match "MI250X".
    """
    out: set[str] = set()
    for token in _tokens(name):
        out.update(w for w in re.split(r"(?<=[a-z])(?=\d)", token) if w)
    return frozenset(out)


def _check_unique(gpus: Iterable[GPU], *, source: str) -> None:
    owner: dict[str, str] = {}
    for gpu in gpus:
        for label in (gpu.name, *gpu.aliases):
            key = _key(label)
            if owner.setdefault(key, gpu.name) != gpu.name:
                raise _fail(source, gpu.name, "aliases", f"{label!r} already names {owner[key]!r}")


class _Registry:
    """Bundled entries, then ``HFGE_GPUS_FILE`` entries, then registered ones (later wins by name)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._registered: dict[str, GPU] = {}
        self._env_value: str | None = None
        self._gpus: tuple[GPU, ...] | None = None
        self._index: dict[str, GPU] = {}

    def reset(self) -> None:
        with self._lock:
            self._registered.clear()
            self._gpus = None

    def register(self, gpus: Iterable[GPU]) -> None:
        gpus = tuple(gpus)
        for gpu in gpus:
            if not isinstance(gpu, GPU):
                raise InvalidArgumentError("gpus", gpu, "GPU instances (see load_gpus for files)")
        with self._lock:
            candidate = dict(self._registered)
            candidate.update((g.name, g) for g in gpus)
            # Build first so that a conflicting alias leaves the registry unchanged.
            self._build(candidate, os.environ.get(ENV_GPUS_FILE))
            self._registered = candidate

    def gpus(self) -> tuple[GPU, ...]:
        env_value = os.environ.get(ENV_GPUS_FILE)
        with self._lock:
            if self._gpus is None or env_value != self._env_value:
                self._build(self._registered, env_value)
            assert self._gpus is not None
            return self._gpus

    def index(self) -> dict[str, GPU]:
        self.gpus()
        return self._index

    def _build(self, registered: Mapping[str, GPU], env_value: str | None) -> None:
        merged: dict[str, GPU] = {g.name: g for g in _bundled()}
        for path in (env_value or "").split(os.pathsep):
            if path.strip():
                merged.update((g.name, g) for g in load_gpus(path.strip()))
        merged.update(registered)
        gpus = tuple(merged.values())
        _check_unique(gpus, source="GPU registry")
        self._index = {_key(label): g for g in gpus for label in (g.name, *g.aliases)}
        self._gpus = gpus
        self._env_value = env_value


_BUNDLED: tuple[GPU, ...] | None = None


def _bundled() -> tuple[GPU, ...]:
    global _BUNDLED
    if _BUNDLED is None:
        text = resources.files(__name__).joinpath("gpus.json").read_text(encoding="utf-8")
        _BUNDLED = _entries_from_data(json.loads(text), source="hf_gpu_estimator/hardware/gpus.json")
    return _BUNDLED


_REGISTRY = _Registry()


def get_gpu(name: str | GPU) -> GPU:
    """Resolve a GPU by name, alias or unambiguous partial name.

    Args:
        name: e.g. ``"H100-SXM-80GB"``, ``"rtx 4090"``, ``"4090"``,
            ``"NVIDIA A100-SXM4-80GB"``. A :class:`GPU` is returned unchanged.

    Returns:
        The catalog entry.

    Raises:
        UnknownNameError: No entry matches (the message suggests close names), or several
            do (``ambiguous=True``; ``candidates`` lists them).
    """
    if isinstance(name, GPU):
        return name
    if not isinstance(name, str):
        raise InvalidArgumentError("gpu", name, "a GPU name (str)")
    gpus = _REGISTRY.gpus()
    found = _REGISTRY.index().get(_key(name))
    if found is not None:
        return found
    query = _words(name)
    if query:
        # A MIG slice answers a partial name only when the name says MIG ("h100 mig 3g.40gb").
        matches = [g for g in gpus if (g.mig_parent is None or "mig" in query)
                   and any(query <= _words(label) for label in (g.name, *g.aliases))]
        if len(matches) == 1:
            return matches[0]
        if matches:
            raise UnknownNameError("gpu", name, [g.name for g in matches], ambiguous=True)
    suggestions = _suggest(name)
    # ``candidates`` carries the close matches when there are any (compared without
    # case and separators, which difflib on the raw string would not do), else every name.
    raise UnknownNameError("gpu", name, suggestions or [g.name for g in gpus])


def _suggest(name: str) -> list[str]:
    import difflib

    from hf_gpu_estimator.constants import MAX_SUGGEST_CHARS

    if len(name) > MAX_SUGGEST_CHARS:  # no GPU name is that long; difflib is quadratic in it
        return []
    index = _REGISTRY.index()
    close = difflib.get_close_matches(_key(name), list(index), n=8, cutoff=0.6)
    out: list[str] = []
    for key in close:
        if index[key].name not in out:
            out.append(index[key].name)
    return out[:3]


def list_gpus(*, vendor: str | None = None, min_memory_bytes: int | None = None, mig: bool = False) -> tuple[GPU, ...]:
    """Catalog entries, optionally filtered, in catalog order.

    Args:
        vendor: Keep one vendor (``nvidia``, ``amd``, ``intel``, ``apple``; case-insensitive).
        min_memory_bytes: Keep entries whose ``usable_memory_bytes`` is at least this.
        mig: Include the MIG slices (``GPU.mig_parent`` set); searches over "every GPU" leave them out,
            since a slice is rented and placed as part of its full GPU.

    Raises:
        UnknownNameError: ``vendor`` is not a known vendor.
        InvalidArgumentError: ``min_memory_bytes`` is negative.
    """
    gpus = _REGISTRY.gpus()
    if not mig:
        gpus = tuple(g for g in gpus if g.mig_parent is None)
    if vendor is not None:
        if vendor.lower() not in VENDORS:
            raise UnknownNameError("vendor", vendor, VENDORS)
        gpus = tuple(g for g in gpus if g.vendor == vendor.lower())
    if min_memory_bytes is not None:
        if not isinstance(min_memory_bytes, int) or min_memory_bytes < 0:
            raise InvalidArgumentError("min_memory_bytes", min_memory_bytes, "a non-negative integer")
        gpus = tuple(g for g in gpus if g.usable_memory_bytes >= min_memory_bytes)
    return gpus


def register_gpus(gpus: Iterable[GPU] | str | os.PathLike[str]) -> None:
    """Add entries to the default registry, replacing any entry of the same name.

    Args:
        gpus: :class:`GPU` instances, or a path to a catalog file (read with
            :func:`load_gpus`).

    Raises:
        InvalidGPUEntryError: An alias already names a different entry, or the file is invalid.
        InvalidArgumentError: An item is not a :class:`GPU`.
    """
    if isinstance(gpus, (str, os.PathLike)):
        gpus = load_gpus(gpus)
    _REGISTRY.register(gpus)


def reset_registry() -> None:
    """Forget registered entries (``HFGE_GPUS_FILE`` is read again on next use)."""
    _REGISTRY.reset()
