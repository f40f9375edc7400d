"""GPUs: the label used in every table and ``hfge gpus``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.report.render import Section

if TYPE_CHECKING:
    from hf_gpu_estimator.hardware import GPU


def gpu_label(gpu: GPU) -> str:
    """``RTX-4090 (24 GB)``: the name and the marketed memory as the vendor writes it.

    Vendors write "24 GB" for 24 GiB of HBM/GDDR (the catalog stores ``memory_bytes`` in binary
    units), so the marketed figure is ``memory_bytes / 2**30`` labelled GB.
    """
    return f"{gpu.name} ({gpu.memory_bytes / GiB:.0f} GB)"

def gpu_sections(gpus: Sequence[GPU]) -> list[Section]:
    """``hfge gpus``: one row per catalog entry."""
    rows = []
    for g in gpus:
        bf16 = g.peak_flops.get("bf16")
        price = f"${g.price_per_hour_usd:.2f}/h" if g.price_per_hour_usd else "-"
        rows.append((g.name, g.vendor, f"{g.usable_memory_bytes / GiB:.1f} GiB",
                     f"{g.memory_bandwidth_bytes_per_s / 1e12:.2f} TB/s",
                     f"{bf16 / 1e12:.0f} TFLOP/s" if bf16 else "-", price))
    return [Section(header=("gpu", "vendor", "memory", "bandwidth", "bf16 dense", "price"), rows=tuple(rows))]
