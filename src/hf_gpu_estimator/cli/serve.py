"""``hfge serve``: the web calculator (Gradio)."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import add_command, positive_int

EPILOG = """examples:
  hfge serve
  hfge serve --port 7861 --host 0.0.0.0

needs the [web] extra: pip install 'hf-gpu-estimator[web]'"""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "serve", run, help="the web calculator (Gradio; works offline on the bundled catalog)",
                    epilog=EPILOG)
    p.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=positive_int, default=7860, help="port (default 7860)")


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.web import serve

    serve(host=args.host, port=args.port)
    return 0
