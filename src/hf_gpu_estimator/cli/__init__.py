"""Command line ``hfge`` (alias ``hf-gpu-estimator``): one module per command, each registering its
parser and handler; this root only registers and dispatches. Rendering lives in :mod:`hf_gpu_estimator.report`."""

from __future__ import annotations

import argparse
import os
import sys
import warnings
from collections.abc import Sequence
from typing import Any

from hf_gpu_estimator.cli import census, estimate, gpus, inspect_model, measure, plan, preflight, serve
from hf_gpu_estimator.cli._common import Parser
from hf_gpu_estimator.constants import DEBUG_ENV

#: The commands in the order ``hfge --help`` lists them.
COMMANDS = (estimate, inspect_model, plan, gpus, measure, preflight, serve, census)

EPILOG = """examples:
  hfge estimate meta-llama/Llama-2-7b-hf                      # inference memory, fits on common GPUs
  hfge estimate mistralai/Mistral-7B-v0.1 --task training --method qlora --gpu RTX-4090
  hfge plan meta-llama/Llama-3.1-8B --gpu H100-SXM-80GB      # max batch, vLLM KV cache, speed, cost
  hfge gpus --min-memory-gib 40                               # the GPU catalog
  hfge measure Qwen/Qwen2.5-0.5B --batch-size 8               # run it on this GPU: measured vs estimated
  hfge preflight --accelerate-config cfg.yaml MODEL           # check an accelerate launch before it starts
  hfge serve                                                  # the web calculator (pip install 'hf-gpu-estimator[web]')
  hfge census --models catalog --output census/               # GPU demand of every catalog model: a dataset

'hfge COMMAND --help' for each command's flags and examples.
--format table (rich when installed), markdown, text or json on estimate/inspect/gpus/plan/measure.
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


def _show_warning(message: Warning | str, category: type[Warning], filename: str, lineno: int,
                  file: Any = None, line: str | None = None) -> None:
    """Our warnings as one line on stderr ("hfge: warning: ..."); other libraries' as Python prints them."""
    from hf_gpu_estimator.errors import IgnoredOptionWarning

    if issubclass(category, IgnoredOptionWarning) or filename.startswith(_PACKAGE_DIR):
        print(f"hfge: warning: {message}", file=sys.stderr)
    else:
        sys.stderr.write(warnings.formatwarning(message, category, filename, lineno, line))


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``hfge``; returns the exit status (0 ok, 1 error, 2 bad arguments, 130 interrupted)."""
    args = build_parser().parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("default")
            # Unclosed sockets and files of the libraries we run (Gradio's server, httpx) are their
            # developers' diagnostics, not the user's (Python hides them by default; "default" above shows them).
            warnings.filterwarnings("ignore", category=ResourceWarning)
            warnings.showwarning = _show_warning
            return int(args.func(args))
    except KeyboardInterrupt:
        print("hfge: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as e:  # an optional dependency this command needs
        from hf_gpu_estimator.constants import EXTRAS

        package = (e.name or "").split(".")[0]
        if package not in EXTRAS or os.environ.get(DEBUG_ENV):
            raise
        print(f"hfge: error: 'hfge {args.command}' needs {package!r}: pip install 'hf-gpu-estimator[{EXTRAS[package]}]'",
              file=sys.stderr)
        return 1
    except Exception as e:  # one line, never a traceback, unless asked
        from hf_gpu_estimator.errors import EstimatorError

        if os.environ.get(DEBUG_ENV):
            raise
        code = e.exit_code if isinstance(e, EstimatorError) else 1
        kind = "error" if isinstance(e, EstimatorError) else f"internal error ({type(e).__name__})"
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"hfge: {kind}: {message} (set {DEBUG_ENV}=1 for details)", file=sys.stderr)
        return code
