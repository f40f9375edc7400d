"""``hfge gpus``: the GPU catalog."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import add_command, add_format_arg, emit, finite_float, print_sections

EPILOG = """examples:
  hfge gpus
  hfge gpus --vendor amd --min-memory-gib 64
  hfge gpus --mig"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "gpus", run, help="the GPU catalog", epilog=EPILOG)
    p.add_argument("--vendor", help="nvidia, amd, intel or apple")
    p.add_argument("--min-memory-gib", type=finite_float(0, inclusive=True),
                   help="only GPUs with at least this much usable memory")
    p.add_argument("--mig", action="store_true", help="include the MIG slices of A100, H100 and H200 (by profile)")
    add_format_arg(p)


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.constants import GiB
    from hf_gpu_estimator.hardware import list_gpus
    from hf_gpu_estimator.report import gpu_sections

    min_bytes = int(args.min_memory_gib * GiB) if args.min_memory_gib is not None else None
    gpus = list_gpus(vendor=args.vendor, min_memory_bytes=min_bytes, mig=args.mig)
    if args.format == "json":
        emit([g.to_dict() for g in gpus], "json")
    else:
        print_sections(gpu_sections(gpus), args.format)
    return 0
