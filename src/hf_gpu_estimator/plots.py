"""Charts (the ``[plot]`` extra, matplotlib with the Agg backend): breakdown vs GPUs, sweeps, plan speed/cost.

Every function returns the matplotlib Figure when ``path`` is ``None`` and the saved path otherwise.
The numbers come from the estimator; nothing here computes memory.

>>> from hf_gpu_estimator import estimate
>>> from hf_gpu_estimator import plots
>>> fig = plots.memory_bar(estimate("meta-llama/Llama-2-7b-hf"), gpus=["RTX-4090"])  # doctest: +SKIP
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.constants import COMMON_GPUS, GiB
from hf_gpu_estimator.errors import InvalidArgumentError, MissingDependencyError
from hf_gpu_estimator.memory.terms import COMPONENTS

if TYPE_CHECKING:
    from hf_gpu_estimator.estimator import Estimate
    from hf_gpu_estimator.hardware import GPU

__all__ = ["memory_bar", "plan_chart", "sweep"]

#: One colour per memory component (colour-blind safe, Okabe-Ito), and the non-torch layers on top.
COLORS: Mapping[str, str] = {
    "weights": "#0072B2", "gradients": "#E69F00", "optimizer_states": "#CC79A7", "activations": "#009E73",
    "kv_cache": "#56B4E9", "transient": "#D55E00", "workspace": "#999999",
    "allocator": "#DDDDDD", "cuda_context": "#555555",
}  # fmt: skip
_GPU_LINE_COLORS = ("#D55E00", "#7B3294", "#1B7837", "#B2182B", "#2166AC")


def _pyplot() -> Any:
    """matplotlib.pyplot on the Agg backend (no display needed), or a one-line install hint."""
    try:
        import matplotlib
    except ImportError as e:
        raise MissingDependencyError("matplotlib", "plot", "plotting") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def _finish(fig: Any, path: str | os.PathLike[str] | None) -> Any:
    if path is None:
        return fig
    out = Path(path)
    if out.is_dir():
        _pyplot().close(fig)
        from hf_gpu_estimator.errors import InvalidArgumentError

        raise InvalidArgumentError("plot", str(path), "a file path (a folder was given), e.g. memory.png")
    if not out.suffix:  # matplotlib adds ".png" itself: the path returned (and reported) must be the file written
        out = out.with_name(out.name + ".png")
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=120, bbox_inches="tight")
    _pyplot().close(fig)
    return out


def _gpus(gpus: Sequence[str | GPU] | str | GPU | None) -> list[GPU]:
    from hf_gpu_estimator.hardware import get_gpu

    if gpus is None:
        return []
    if isinstance(gpus, str) or not isinstance(gpus, Sequence):
        gpus = [gpus]  # type: ignore[list-item]
    seen: dict[str, GPU] = {}
    for g in gpus:
        gpu = get_gpu(g)
        seen.setdefault(gpu.name, gpu)
    return list(seen.values())


def _layers(est_memory: Any) -> list[tuple[str, float]]:
    """(label, GiB) from the bottom up: the allocated components, then allocator slack and the CUDA context."""
    layers = [(name, est_memory.components.get(name, 0) / GiB) for name in COMPONENTS
              if est_memory.components.get(name, 0)]
    layers.append(("allocator", (est_memory.reserved_peak_bytes - est_memory.allocated_peak_bytes) / GiB))
    layers.append(("cuda_context", (est_memory.device_total_bytes - est_memory.reserved_peak_bytes) / GiB))
    return layers


def _gpu_lines(ax: Any, gpus: list[GPU], *, horizontal: bool = True) -> None:
    for n, gpu in enumerate(gpus):
        color = _GPU_LINE_COLORS[n % len(_GPU_LINE_COLORS)]
        y = gpu.usable_memory_bytes / GiB
        ax.axhline(y, color=color, linestyle="--", linewidth=1.5, label=f"{gpu.name} ({y:.1f} GiB)")


def memory_bar(est: Estimate, *, path: str | os.PathLike[str] | None = None,
               gpus: Sequence[str | GPU] | None = COMMON_GPUS) -> Any:
    """One stacked bar: the components at the peak, allocator slack and CUDA context up to the device
    total, with the allocated range and the device total's measured range as error bars and each
    GPU's usable memory as a dashed line."""
    plt = _pyplot()
    mem = est.memory
    targets = _gpus(gpus)
    fig, ax = plt.subplots(figsize=(6, 5.5))
    bottom = 0.0
    for name, value in _layers(mem):
        if value <= 0:
            continue
        ax.bar([0], [value], bottom=bottom, width=0.5, color=COLORS[name], edgecolor="white",
               label=f"{name.replace('_', ' ')}  {value:.2f} GiB")
        if value > 0.08 * mem.device_total_bytes / GiB:
            ax.text(0, bottom + value / 2, f"{name.replace('_', ' ')}\n{value:.2f} GiB", ha="center", va="center",
                    fontsize=8, color="white" if name not in ("allocator", "workspace") else "black")
        bottom += value
    low, high = mem.allocated_low_bytes / GiB, mem.allocated_high_bytes / GiB
    peak = mem.allocated_peak_bytes / GiB
    ax.errorbar([0.3], [peak], yerr=[[peak - low], [high - peak]], fmt="_", color="black", capsize=4,
                label=f"allocated {low:.1f}-{high:.1f} GiB")
    total_low, total_high = (b / GiB for b in est.device_total_range_bytes)
    ax.errorbar([-0.3], [bottom], yerr=[[bottom - total_low], [total_high - bottom]], fmt="_", color="#cf222e",
                capsize=4, label=f"device total, measured range {total_low:.1f}-{total_high:.1f} GiB (verdicts use the top)")
    ax.text(0, total_high, f"{bottom:.2f} GiB", ha="center", va="bottom", fontweight="bold")
    _gpu_lines(ax, targets)
    top = max([total_high] + [g.usable_memory_bytes / GiB for g in targets]) * 1.12
    ax.set_ylim(0, top)
    ax.set_xlim(-0.8, 0.8)
    ax.set_xticks([0])
    w = est.workload
    ax.set_xticklabels([f"{w.task}, batch {w.batch_size} x {w.seq_len}"])
    ax.set_ylabel("GiB per device")
    ax.set_title(f"{est.spec.id}\npeak during {mem.phase_at_peak}: {bottom:.2f} GiB on the device", fontsize=11)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], loc="upper left", bbox_to_anchor=(1.02, 1), fontsize=8, frameon=False)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)


def sweep(spec_or_model: Any, workload_kwargs: Mapping[str, Any] | None = None, *, over: str = "batch_size",
          values: Sequence[int] | None = None, gpu: str | GPU | None = "A100-80GB",
          path: str | os.PathLike[str] | None = None) -> Any:
    """Memory per device as ``over`` (``"batch_size"`` or ``"seq_len"``) grows, stacked by component,
    with the device total and ``gpu``'s out-of-memory line.

    Args:
        spec_or_model: a ModelSpec or anything :func:`~hf_gpu_estimator.inspect_model` takes.
        workload_kwargs: the other workload options (``make_workload`` keywords).
        over: the swept option.
        values: the points (default 1, 2, 4 ... 64 for the batch; 512 ... 32768 tokens for the sequence).
        gpu: the GPU whose usable memory is the out-of-memory line (``None``: no line).
        path: where to save a PNG; ``None`` returns the Figure.
    """
    from hf_gpu_estimator.memory import estimate_memory
    from hf_gpu_estimator.sources import inspect_model
    from hf_gpu_estimator.workload import make_workload

    if over not in ("batch_size", "seq_len"):
        raise InvalidArgumentError("over", over, "'batch_size' or 'seq_len'")
    if values is None:
        values = [1, 2, 4, 8, 16, 32, 64] if over == "batch_size" else [512, 1024, 2048, 4096, 8192, 16384, 32768]
    values = sorted({int(v) for v in values})
    if not values or values[0] < 1:
        raise InvalidArgumentError("values", values, "integers >= 1")
    spec = inspect_model(spec_or_model)
    base = dict(workload_kwargs or {})
    estimates = [estimate_memory(spec, make_workload(**{**base, over: v})) for v in values]
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 5))
    names = [n for n in COMPONENTS if any(e.components.get(n, 0) for e in estimates)]
    stacks = [[e.components.get(n, 0) / GiB for e in estimates] for n in names]
    ax.stackplot(values, *stacks, labels=[n.replace("_", " ") for n in names], colors=[COLORS[n] for n in names],
                 alpha=0.85)
    ax.plot(values, [e.device_total_bytes / GiB for e in estimates], color="black", marker="o", linewidth=2,
            label="device total (nvidia-smi)")
    targets = _gpus(gpu)
    _gpu_lines(ax, targets)
    if targets:
        from hf_gpu_estimator.planner.deployment import Deployment, fit

        # "fits" is the one fit's verdict (the high end of the measured range vs usable less the margin)
        works = [make_workload(**{**base, over: v}) for v in values]
        deployments = [Deployment(gpu=targets[0], tp=w.parallelism.tp, pp=w.parallelism.pp,
                                  num_gpus=w.parallelism.num_gpus) for w in works]
        verdicts = [fit(spec, w, d) for w, d in zip(works, deployments)]
        limit = verdicts[0].limit_bytes
        fitting = [v for v, verdict in zip(values, verdicts) if verdict.fits]
        if fitting:
            ax.axvline(fitting[-1], color="grey", linestyle=":", linewidth=1)
            ax.annotate(f"largest that fits: {fitting[-1]:,}", (fitting[-1], limit / GiB), xytext=(6, -14),
                        textcoords="offset points", fontsize=8, color="dimgrey")
    ax.set_xscale("log", base=2)
    ax.set_xticks(values)
    ax.set_xticklabels([f"{v:,}" for v in values])
    ax.set_xlabel("batch size (sequences per device)" if over == "batch_size" else "sequence length (tokens)")
    ax.set_ylabel("GiB per device")
    task = base.get("task", "inference")
    ax.set_title(f"{spec.id}: {task} memory vs {over.replace('_', ' ')}", fontsize=11)
    ax.legend(loc="upper left", fontsize=8, framealpha=0.9)
    ax.grid(alpha=0.3)
    return _finish(fig, path)


def plan_chart(result: Any, *, path: str | os.PathLike[str] | None = None, top: int = 10) -> Any:
    """Speed and cost of the planner's options, cheapest first.

    Args:
        result: a :class:`~hf_gpu_estimator.planner.CheapestServing` (bars: $ per million output
            tokens; dots: TPOT), a :class:`~hf_gpu_estimator.planner.CheapestTraining` (bars: total $;
            dots: hours), or a sequence of :class:`~hf_gpu_estimator.planner.Plan` for several GPUs
            (bars: $/hour; dots: decode or training tokens/s).
        path: where to save a PNG; ``None`` returns the Figure.
        top: options shown.
    """
    from hf_gpu_estimator.planner import CheapestServing, CheapestTraining, Plan

    if isinstance(result, CheapestServing):
        opts = result.options[:top]
        labels = [f"{o.num_gpus}x {o.gpu}" + (f" tp{o.tp}" if o.tp > 1 else "") for o in opts]
        bars = [o.usd_per_million_output_tokens for o in opts]
        dots = [o.tpot_seconds * 1e3 for o in opts]
        bar_label, dot_label = "$ per 1M output tokens", "TPOT (ms)"
        title = (f"Serving {result.request_rate_per_s:g} req/s ({result.input_tokens} in, "
                 f"{result.output_tokens} out): cheapest first")
    elif isinstance(result, CheapestTraining):
        opts = result.options[:top]
        labels = [f"{o.parallelization.num_gpus}x {o.gpu}" for o in opts]
        bars = [o.total_usd for o in opts]
        dots = [o.hours for o in opts]
        bar_label, dot_label = "total $", "hours"
        title = f"Training on {result.token_budget:.3g} tokens: cheapest first"
    elif isinstance(result, Sequence) and result and all(isinstance(p, Plan) for p in result):
        plans = [p for p in result if p.hourly_usd is not None and p.speed is not None][:top]
        if not plans:
            raise InvalidArgumentError("result", "plans", "plans with a price and a speed estimate")
        labels = [f"{p.workload.parallelism.num_gpus}x {p.gpu.name}" for p in plans]
        bars = [p.hourly_usd for p in plans]  # type: ignore[misc]
        dots = [getattr(p.speed, "decode_tokens_per_s", None) or getattr(p.speed, "tokens_per_s", 0.0) for p in plans]
        bar_label, dot_label = "$ per hour", "tokens/s"
        title = "Plans: cost and speed per GPU"
    else:
        raise InvalidArgumentError("result", type(result).__name__,
                                   "a CheapestServing, a CheapestTraining or a list of Plan")
    if not labels:
        raise InvalidArgumentError("result", "options", "at least one option to chart")
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(labels) + 2), 5))
    x = list(range(len(labels)))
    ax.bar(x, bars, color="#0072B2", label=bar_label)
    for xi, b in zip(x, bars):
        ax.text(xi, b, f"{b:,.2f}" if b < 100 else f"{b:,.0f}", ha="center", va="bottom", fontsize=8)
    ax.set_ylabel(bar_label)
    ax.set_xticks(x)
    ax.set_xticklabels(labels, rotation=30, ha="right", fontsize=8)
    ax2 = ax.twinx()
    ax2.plot(x, dots, color="#D55E00", marker="o", linestyle="none", label=dot_label)
    ax2.set_ylabel(dot_label, color="#D55E00")
    ax2.set_ylim(0, max(dots) * 1.25 if dots and max(dots) > 0 else 1)
    ax.set_ylim(0, max(bars) * 1.2 if max(bars) > 0 else 1)
    handles = ax.get_legend_handles_labels()[0] + ax2.get_legend_handles_labels()[0]
    ax.legend(handles, [bar_label, dot_label], loc="upper left", fontsize=8)
    ax.set_title(title, fontsize=11)
    ax.grid(axis="y", alpha=0.3)
    return _finish(fig, path)
