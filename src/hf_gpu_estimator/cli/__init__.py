"""Command line ``hfge`` (alias ``hf-gpu-estimator``): one module per command, each registering its
parser and handler; this root only registers and dispatches. Rendering lives in :mod:`hf_gpu_estimator.report`."""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

from hf_gpu_estimator.cli import estimate, gpus, inspect_model, measure, plan, preflight, serve
from hf_gpu_estimator.cli._common import Parser
from hf_gpu_estimator.constants import DEBUG_ENV

#: The commands in the order ``hfge --help`` lists them.
COMMANDS = (estimate, inspect_model, plan, gpus, serve, preflight, measure)

EPILOG = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf                      # inference memory, fits on common GPUs
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --gpu RTX-4090
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB      # max batch, vLLM KV cache, speed, cost
  hfge gpus --min-memory-gib 40                               # the GPU catalog
  hfge serve                                                  # the web calculator (pip install 'hf-gpu-estimator[web]')

commands: estimate, inspect, gpus, plan, serve, preflight. 'hfge COMMAND --help' for more examples.
--format table (rich when installed), markdown, text or json on estimate/inspect/gpus/plan.
"""


def build_parser() -> argparse.ArgumentParser:
    from hf_gpu_estimator import __version__

    parser = Parser(prog="hfge", description="How much GPU an LLM job needs, before you launch it.",
                    formatter_class=argparse.RawDescriptionHelpFormatter,
                    epilog=EPILOG + f"\nSet {DEBUG_ENV}=1 for full tracebacks.")
    parser.add_argument("--version", action="version", version=f"hf-gpu-estimator {__version__}")
    subparsers = parser.add_subparsers(dest="command", required=True, parser_class=Parser)
    for command in COMMANDS:
        command.register(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hfge``; returns the exit status (0 ok, 1 error, 2 bad arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args))
    except KeyboardInterrupt:
        print("hfge: interrupted", file=sys.stderr)
        return 130
    except Exception as e:  # one line, never a traceback, unless asked
        from hf_gpu_estimator.errors import EstimatorError

        if os.environ.get(DEBUG_ENV):
            raise
        code = e.exit_code if isinstance(e, EstimatorError) else 1
        kind = "error" if isinstance(e, EstimatorError) else f"internal error ({type(e).__name__})"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"hfge: {kind}: {message} (set {DEBUG_ENV}=1 for details)", file=sys.stderr)
        return code
