"""``hfge inspect``: exact parameter counts and layer shapes (the module is not named ``inspect``,
which would shadow the standard library)."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import add_command, add_format_arg, add_model_args, emit, print_sections, read_spec

EPILOG = """examples:
  hfge inspect meta-llama/Llama-2-13b-hf
  hfge inspect ./my-model --format json"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "inspect", run, help="parameters and layer shapes of a model", epilog=EPILOG)
    add_model_args(p)
    add_format_arg(p)


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.report import spec_sections, spec_to_dict

    spec = read_spec(args)
    if args.format == "json":
        emit(spec_to_dict(spec), "json")
    else:
        print_sections(spec_sections(spec), args.format)
    return 0
