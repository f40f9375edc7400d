"""Units, defaults and environment variables, each defined once (imported, never re-typed)."""

from __future__ import annotations

#: Binary units: torch's allocator statistics and nvidia-smi count in powers of two.
KiB = 1 << 10
MiB = 1 << 20
GiB = 1 << 30

#: Share of a GPU's memory kept free by ``fits`` and the planner by default: allocator growth
#: between steps and other processes. The estimate's own uncertainty is added on top of it
#: (see ``estimator.Estimate.verdict``).
DEFAULT_MARGIN = 0.05

#: GPUs an estimate is checked against when none is asked: a 24 GB consumer card, the two datacenter classics.
COMMON_GPUS: tuple[str, ...] = ("RTX-4090", "A100-80GB", "H100-SXM-80GB")

#: The extra of pyproject.toml that installs each optional package (the import name as the key):
#: a missing one ends the CLI with one line naming it.
EXTRAS: dict[str, str] = {
    "torch": "torch", "transformers": "torch", "peft": "peft", "accelerate": "accelerate",
    "lightning": "lightning", "rich": "rich", "matplotlib": "plot", "gradio": "web", "pyarrow": "census", "ray": "ray",
}  # fmt: skip

#: Set to any value to let the CLI print full tracebacks instead of one line.
DEBUG_ENV = "HFGE_DEBUG"

#: Hours in a month for $/month figures: 8,760 hours a year / 12, the convention cloud price sheets use.
HOURS_PER_MONTH = 730

#: Exact mode's real-values fallback (a data-dependent operator) keeps a real CPU copy of every
#: tensor: refuse it when the weights (with gradients and optimizer states for full training) pass
#: this, so a trace does not exhaust the host's memory. 8 GiB leaves room beside the traced process
#: on a 16-32 GB workstation or CI runner; longcat_flash's default config cut to 2 layers (54.4 B
#: parameters, 101 GiB of bf16 copies) is refused, a 2-layer jetmoe (0.8 B, 1.4 GiB) is not.
REAL_VALUES_MAX_BYTES = 8 * GiB

# --- Limits on what a source may claim (config.json, GGUF metadata, params.json, quantization_config,
# safetensors headers): one set of rules for every source, so a hostile or corrupt file is a typed error
# rather than an OverflowError, a multi-GB per-layer tuple or a silently absurd estimate.

#: The largest count or dimension any source may state: far above any real model (vocabularies ~2**18,
#: hidden sizes ~2**15, experts ~2**10), far below what overflows a float or exhausts memory when multiplied.
MAX_INT = 1 << 40
#: The largest layer count (real models: ~100; one tuple entry per layer is kept).
MAX_LAYERS = 100_000
#: Quantization widths a quantization_config may state: GPTQ/AWQ/compressed-tensors use 2, 3, 4 or 8
#: bits; 16 is the widest a "quantized" weight can be and still be smaller than its float.
MAX_QUANT_BITS = 16
#: Characters of a hostile value an error message quotes (a 30 MB string is never echoed whole).
MAX_EXCERPT_CHARS = 120

# --- The Hub: a deadline for the whole run, and bodies read with a cap.

#: Seconds every request of one inspection together may take against the Hub (retries, slow bytes and
#: stalls included); past it the run ends in one line (HubConnectionError). Per request timeouts alone
#: let a server that sends one byte every few seconds hold a run forever. Override with this variable.
HUB_DEADLINE_ENV = "HFGE_HUB_DEADLINE_S"
HUB_DEADLINE_S = 30.0
#: How many characters of a model id "did you mean" compares: difflib's ratio is quadratic in the
#: length, and the longest Hub id is 96 characters (huggingface_hub validate_repo_id).
MAX_SUGGEST_CHARS = 128


def hub_deadline_s() -> float:
    """The whole-run Hub deadline in seconds: ``HFGE_HUB_DEADLINE_S``, else :data:`HUB_DEADLINE_S`.

    Raises:
        InvalidArgumentError: the variable is set but not a positive number.
    """
    import math
    import os

    raw = os.environ.get(HUB_DEADLINE_ENV)
    if not raw:
        return HUB_DEADLINE_S
    try:
        value = float(raw)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or value <= 0:
        from hf_gpu_estimator.errors import InvalidArgumentError

        raise InvalidArgumentError(HUB_DEADLINE_ENV, raw, "a positive number of seconds")
    return value

#: llama.cpp's ``-ctk`` / ``-ctv`` cache types (common/arg.cpp ``kv_cache_types``), as the CLI offers them.
LLAMACPP_CACHE_TYPES = ("f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "iq4_nl", "q5_0", "q5_1")
