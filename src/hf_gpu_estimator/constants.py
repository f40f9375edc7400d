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

#: Set to any value to let the CLI print full tracebacks instead of one line.
DEBUG_ENV = "HFGE_DEBUG"

#: Hours in a month for $/month figures: 8,760 hours a year / 12, the convention cloud price sheets use.
HOURS_PER_MONTH = 730
