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
