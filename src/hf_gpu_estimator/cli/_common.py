"""What every command shares: the one-line-error parser, argument types, model arguments, output."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
from collections.abc import Callable
from typing import Any

from hf_gpu_estimator.errors import excerpt

FORMATS = ("table", "json", "markdown", "text")
FORMAT_HELP = ("table (default; colour with rich when installed), json (the stable contract), "
               "markdown (for issues and model cards), text (plain columns)")


class Parser(argparse.ArgumentParser):
    """argparse that prints one line (and exits 2) on bad arguments."""

    def error(self, message: str) -> None:  # type: ignore[override]
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def add_command(subparsers: Any, name: str, func: Callable[[argparse.Namespace], int], **kwargs: Any) -> Parser:
    """A subcommand parser whose epilog keeps its line breaks, dispatching to ``func``."""
    parser: Parser = subparsers.add_parser(name, formatter_class=argparse.RawDescriptionHelpFormatter, **kwargs)
    parser.set_defaults(func=func)
    return parser


def int_at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: an integer >= ``minimum``, one-line error otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            value = None
        if value is None or value < minimum:
            raise argparse.ArgumentTypeError(f"expected an integer >= {minimum}, got {text!r}")
        return value

    return parse


positive_int = int_at_least(1)
non_negative_int = int_at_least(0)


def token_count(text: str) -> int:
    """A token count as engines and papers write it: ``32768``, ``32k`` (x 1024), ``1m`` (x 1024^2)."""
    value = text.strip().lower().replace("_", "")
    scale = {"k": 1 << 10, "m": 1 << 20}.get(value[-1:], 1)
    try:
        number = int(value[:-1] if scale > 1 else value)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"expected a token count >= 1 (4096, 32k), got {text!r}")
    return number * scale


#: The largest number a float flag takes: a flag times GiB (or a price times hours) must stay a finite float
#: and an int (``int(1e308 * GiB)`` overflows to inf); far above any memory size, rate or price.
MAX_FLAG_NUMBER = 1e15


def finite_float(minimum: float, *, inclusive: bool) -> Callable[[str], float]:
    """An argparse type: a finite number >= (or >) ``minimum`` and at most :data:`MAX_FLAG_NUMBER`; nan,
    inf and 1e308 are refused here, since ``int(x * GiB)`` on them raises outside the one-line error path."""
    bound = f"{'>=' if inclusive else '>'} {minimum:g}"

    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number {bound}, got {excerpt(text)}") from None
        if not math.isfinite(value) or value < minimum or (value == minimum and not inclusive) \
                or value > MAX_FLAG_NUMBER:  # fmt: skip
            raise argparse.ArgumentTypeError(f"expected a finite number {bound} and <= {MAX_FLAG_NUMBER:g}, "
                                             f"got {excerpt(text)}")
        return value

    return parse


def add_model_args(p: argparse.ArgumentParser, *, optional: bool = False) -> None:
    p.add_argument("model", nargs="?" if optional else None,
                   help="Hub id (org/name), local folder, .safetensors file or config.json")
    p.add_argument("--revision", help="Hub branch, tag or commit")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")


def add_format_arg(p: argparse.ArgumentParser, choices: tuple[str, ...] = FORMATS) -> None:
    p.add_argument("--format", choices=choices, default="table", help=FORMAT_HELP if choices == FORMATS else None)


def reading(model: str) -> Any:
    """A spinner on stderr while the model's config and shard headers are read (a terminal with rich only)."""
    import contextlib

    from hf_gpu_estimator.report import rich_available

    if not sys.stderr.isatty() or not rich_available() or os.path.exists(model):
        return contextlib.nullcontext()
    from rich.console import Console

    return Console(stderr=True).status(f"reading {model} (config.json and safetensors headers) ...")


def read_spec(args: argparse.Namespace) -> Any:
    """The ModelSpec of ``args.model`` (with ``--revision``/``--token``), a spinner while it is read.

    With ``--exact``, a model type without an analytic family is traced anyway (exact.inspect_for_exact).
    """
    from hf_gpu_estimator.sources import inspect_model

    inspect = inspect_model
    if getattr(args, "exact", False):
        from hf_gpu_estimator.exact import inspect_for_exact as inspect
    with reading(args.model):
        return inspect(args.model, revision=args.revision, token=args.token)


def print_sections(sections: Any, fmt: str) -> None:
    from hf_gpu_estimator.report import print_sections as render

    render(sections, fmt, file=sys.stdout)


def emit(payload: Any, fmt: str) -> None:
    """Data on stdout: JSON, or the text as it is."""
    if fmt == "json":
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
    else:
        sys.stdout.write(str(payload) + "\n")


def message(text: str) -> None:
    """A message for the user on stderr (data stays on stdout)."""
    print(f"hfge: {text}", file=sys.stderr)


def split_list(field: str, value: str) -> tuple[str, ...]:
    """``"a,b"`` as ``("a", "b")``; an empty item is a bad argument naming ``field``."""
    from hf_gpu_estimator.errors import InvalidArgumentError

    items = tuple(item.strip() for item in value.split(","))
    if not all(items):
        raise InvalidArgumentError(field, value, "names separated by commas, none empty")
    return items


def add_gpu_arg(p: argparse.ArgumentParser, help: str) -> None:
    p.add_argument("--gpu", action="append", metavar="NAME[,NAME...]",
                   help=help + "; comma-separated or repeated for several")


def resolve_gpus(values: list[str] | None) -> tuple[Any, ...]:
    """``--gpu`` values (repeated, comma-separated) as catalog entries, in order, without repeats."""
    from hf_gpu_estimator.hardware import get_gpu

    gpus: dict[str, Any] = {}
    for value in values or ():
        for name in split_list("gpu", value):
            gpu = get_gpu(name)
            gpus.setdefault(gpu.name, gpu)
    return tuple(gpus.values())


def add_device_args(p: argparse.ArgumentParser) -> None:
    """``--free-memory`` (a shared GPU) and ``--device-memory-gib`` (a card not in the catalog)."""
    group = p.add_argument_group("device")
    group.add_argument("--free-memory", type=finite_float(0, inclusive=False), metavar="GiB",
                       help="memory free on the device (nvidia-smi, a shared GPU): verdicts are judged against it")
    group.add_argument("--device-memory-gib", type=finite_float(0, inclusive=False), metavar="GiB",
                       help="the device's memory, for a card not in the catalog (with --gpu: that card's other "
                            "facts, with this memory)")


def free_memory_arg(args: argparse.Namespace) -> int | None:
    """``--free-memory`` in bytes (``None`` when not given)."""
    value = getattr(args, "free_memory", None)
    return None if value is None else int(value * (1 << 30))


def device_gpus(args: argparse.Namespace) -> tuple[Any, ...]:
    """``--gpu`` as catalog entries, each with ``--device-memory-gib`` when given (alone: one device
    known by its memory)."""
    gpus = resolve_gpus(args.gpu if isinstance(args.gpu, list) or args.gpu is None else [args.gpu])
    memory = getattr(args, "device_memory_gib", None)
    if memory is None:
        return gpus
    from hf_gpu_estimator.planner.deployment import device_gpu

    return tuple(device_gpu(memory, g) for g in gpus) or (device_gpu(memory),)
