"""Fit verdicts: the device-total range a workload may really reach, against a GPU's usable memory.

The analytic device total (what nvidia-smi shows) has a measured error that depends mostly on the
attention path and the task: eager attention's large score tensors and activation checkpointing's
recomputation fragment PyTorch's caching allocator, so ``max_memory_reserved`` (and nvidia-smi)
can sit far above the allocated peak. :data:`UNCERTAINTY` holds, per path, the worst under- and
over-estimate of the device total measured on real GPUs; the range is
``[total / (1 + over), total / (1 + under)]`` (error = estimate / measured - 1, so a -32.0 % error
means the device really used ``total / 0.680``).

A verdict compares the *high end* of that range with the usable memory less the margin:
``"fits"`` when the high end is within it, ``"does not fit"`` when even the low end is over it,
``"tight"`` when the range straddles it. Headroom is measured on the same basis (limit - high end).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from hf_gpu_estimator.constants import DEFAULT_MARGIN
from hf_gpu_estimator.errors import InvalidArgumentError

if TYPE_CHECKING:
    from hf_gpu_estimator.planner.deployment import Deployment, Launch
    from hf_gpu_estimator.planner.engines import ServingCapacity
    from hf_gpu_estimator.workload import Workload

VerdictName = Literal["fits", "tight", "does not fit", "would not start"]
VERDICTS: tuple[str, ...] = ("fits", "tight", "does not fit", "would not start")

#: Where :data:`UNCERTAINTY` comes from; ``tests/test_verdict.py`` recomputes every figure from
#: these files and fails when they disagree.
SOURCE = ("docs/accuracy.md, section 2 (nvidia-smi total, estimate / measured - 1): the runs in "
          "benchmarks/results/h200-2026-11-26*.json[l], NVIDIA H200, torch 2.11, transformers 5.17")


class Assumption(str):
    """One assumption of a result: a ``key`` that names what it is about (replaced by key, never
    found by matching text) and the ``text`` shown to the user.

    It is the text itself (a ``str``), so every list of assumptions stays a list of strings for
    printing and for ``--format json``; :func:`replace_keyed` swaps lines by key.

    >>> a = Assumption("device total = reserved + CUDA context 500 MiB", key=CONTEXT_KEY)
    >>> a.key, a == a.text
    ('overhead.context', True)
    """

    __slots__ = ("key",)
    key: str

    def __new__(cls, text: str, *, key: str) -> Assumption:
        self = super().__new__(cls, text)
        self.key = key
        return self

    @property
    def text(self) -> str:
        return str.__str__(self)

    def __str__(self) -> str:
        return self.text

    def __repr__(self) -> str:
        return f"Assumption(key={self.key!r}, text={self.text!r})"

    def __getnewargs_ex__(self) -> tuple[tuple[str], dict[str, str]]:
        return (self.text,), {"key": self.key}


#: Keys of the overhead lines that a device's calibration or runtime replaces.
RATIO_KEY = "overhead.reserved_ratio"
CONTEXT_KEY = "overhead.context"


def key_of(assumption: str) -> str | None:
    """The key of ``assumption`` (``None`` for a plain line)."""
    return assumption.key if isinstance(assumption, Assumption) else None


def replace_keyed(assumptions: Iterable[str], *new: Assumption, drop: Iterable[str] = ()) -> tuple[str, ...]:
    """``assumptions`` without the lines keyed like ``new`` (or in ``drop``), then ``new``."""
    keys = {a.key for a in new} | set(drop)
    return (*(a for a in assumptions if key_of(a) not in keys), *new)


@dataclass(frozen=True, kw_only=True)
class Uncertainty:
    """The measured error band of the device total on one attention path and task.

    ``under`` is the worst under-estimate (estimate / measured - 1, <= 0) and ``over`` the worst
    over-estimate (>= 0) among ``runs`` measured runs; ``worst_run`` names the run behind ``under``.
    """

    key: str
    under: float
    over: float
    runs: int
    worst_run: str

    def high_bytes(self, total_bytes: int) -> int:
        """The most the device may really use when the estimate is ``total_bytes``."""
        return math.ceil(total_bytes / (1 + self.under))

    def low_bytes(self, total_bytes: int) -> int:
        """The least the device may really use when the estimate is ``total_bytes``."""
        return math.floor(total_bytes / (1 + self.over))


def _u(key: str, under: float, over: float, runs: int, worst_run: str) -> Uncertainty:
    return Uncertainty(key=key, under=under, over=over, runs=runs, worst_run=worst_run)


#: Per attention path ("eager", or "sdpa" for the fused kernels: sdpa and flash_attention_2) and
#: task (inference; training, with or without activation checkpointing). Source: :data:`SOURCE`.
UNCERTAINTY: Mapping[str, Uncertainty] = {
    u.key: u for u in (
        _u("inference/sdpa", -0.0771, 0.0948, 16, "gemma-2-2b/inf-b1-s2048"),
        _u("inference/eager", -0.3203, 0.0592, 2, "tinyllama-1.1b/inf-eager-b4-s4096"),
        _u("training/sdpa", -0.1217, 0.0517, 22, "h200-2026-11-26-measure-qwen2.5-0.5b-lora-bf16true-b2-s512"),
        _u("training/sdpa/checkpointing", -0.1939, 0.0381, 9, "gemma-2-2b/train-bf16true-b2-s2048-gc"),
        _u("training/eager", -0.0899, 0.0606, 3, "gemma-2-2b/train-bf16true-b1-s1024-eager"),
        # Not measured: the wider of training/eager and training/sdpa/checkpointing on each side.
        _u("training/eager/checkpointing", -0.1939, 0.0606, 0, "none measured (training/sdpa/checkpointing's)"),
    )
}  # fmt: skip


def uncertainty_key(workload: Workload) -> str:
    """The :data:`UNCERTAINTY` entry that applies to ``workload``."""
    path = "eager" if workload.attn_implementation == "eager" else "sdpa"
    if not workload.is_training:
        return f"inference/{path}"
    return f"training/{path}" + ("/checkpointing" if workload.gradient_checkpointing else "")


def uncertainty_for(workload: Workload) -> Uncertainty:
    return UNCERTAINTY[uncertainty_key(workload)]


def _check_margin(margin: object) -> float:
    if not isinstance(margin, (int, float)) or isinstance(margin, bool) or not 0 <= margin < 0.5:
        raise InvalidArgumentError("margin", margin, "a number from 0 to 0.5")
    return float(margin)


@dataclass(frozen=True, kw_only=True)
class Verdict:
    """Does one workload fit one device? Bytes per device.

    The answer of :func:`hf_gpu_estimator.planner.deployment.fit`: without a serving engine, the
    measured range of the device total against the usable memory less the margin; with one
    (``engine_starts`` set), the engine's own start-up sizing decides, and ``problem`` says why it
    would not start. ``deployment``, ``workload`` (as it runs on this GPU), ``serving`` and ``launch``
    are filled by ``fit``.
    """

    name: str
    usable_bytes: int
    needs_bytes: int
    needs_low_bytes: int
    needs_high_bytes: int
    margin: float
    basis: str
    engine_starts: bool | None = None
    problem: str | None = None
    deployment: Deployment | None = field(default=None, repr=False, compare=False)
    workload: Workload | None = field(default=None, repr=False, compare=False)
    serving: ServingCapacity | None = field(default=None, repr=False, compare=False)
    launch: Launch | None = field(default=None, repr=False, compare=False)
    assumptions: tuple[Assumption, ...] = field(default=(), repr=False, compare=False)

    def __repr__(self) -> str:
        """``Verdict('fits', RTX-4090: needs 17.20-18.04 GiB of 22.80 GiB (24.00 GiB less 5%), headroom +4.76 GiB)``:
        the needs against the limit the headroom is computed from."""
        gib = 1 << 30
        why = f", {self.problem}" if self.problem else ""
        return (f"Verdict({self.verdict!r}, {self.name}: needs {self.needs_low_bytes / gib:.2f}-"
                f"{self.needs_high_bytes / gib:.2f} GiB of {self.limit_bytes / gib:.2f} GiB "
                f"({self.usable_bytes / gib:.2f} GiB less {self.margin:.0%}), "
                f"headroom {self.headroom_bytes / gib:+.2f} GiB{why})")

    @property
    def limit_bytes(self) -> int:
        """The usable memory less the margin: what the high end is compared with."""
        return int(self.usable_bytes * (1 - self.margin))

    @property
    def headroom_bytes(self) -> int:
        """Memory left at the high end, margin included (negative: missing)."""
        return self.limit_bytes - self.needs_high_bytes

    @property
    def verdict(self) -> VerdictName:
        if self.engine_starts is not None:  # the engine's own sizing decides (a point estimate)
            return "fits" if self.engine_starts else "would not start"
        if self.needs_high_bytes <= self.limit_bytes:
            return "fits"
        if self.needs_low_bytes > self.limit_bytes:
            return "does not fit"
        return "tight"

    @property
    def fits(self) -> bool:
        return self.verdict == "fits"

    def to_dict(self) -> dict[str, object]:
        """The ``gpus`` entries of ``estimate --format json``."""
        out: dict[str, object] = {"name": self.name, "usable_bytes": self.usable_bytes, "needs_bytes": self.needs_bytes,
                "needs_low_bytes": self.needs_low_bytes, "needs_high_bytes": self.needs_high_bytes,
                "limit_bytes": self.limit_bytes, "margin": self.margin, "headroom_bytes": self.headroom_bytes,
                "verdict": self.verdict, "basis": self.basis}
        if self.problem is not None:
            out["problem"] = self.problem
        if self.deployment is not None:
            out["deployment"] = self.deployment.to_dict()
        if self.launch is not None:
            out["launch"] = self.launch.command
            out["launch_args"] = self.launch.to_dict()
        if self.assumptions:
            out["assumptions"] = [a.text for a in self.assumptions]
        return out


def judge(total_bytes: int, workload: Workload, usable_bytes: int, *, name: str,
          margin: float = DEFAULT_MARGIN) -> Verdict:
    """The verdict for an estimated device total ``total_bytes`` on a device with ``usable_bytes``.

    >>> from hf_gpu_estimator.workload import make_workload
    >>> v = judge(20 << 30, make_workload(), 24 << 30, name="RTX-4090")
    >>> v.verdict, round(v.needs_high_bytes / (1 << 30), 2), round(v.headroom_bytes / (1 << 30), 2)
    ('fits', 21.62, 1.18)
    """
    u = uncertainty_for(workload)
    return Verdict(name=name, usable_bytes=int(usable_bytes), needs_bytes=int(total_bytes),
                   needs_low_bytes=u.low_bytes(total_bytes), needs_high_bytes=u.high_bytes(total_bytes),
                   margin=_check_margin(margin),
                   basis=f"{u.key}: measured device-total error {u.under:+.1%} to {u.over:+.1%} "
                         f"over {u.runs} runs (docs/accuracy.md)")
