"""Render the bundled GPU catalog as a Markdown table (docs/gpus.md).

Usage: python scripts/render_gpu_table.py > docs/gpus.md
"""

from __future__ import annotations

from hf_gpu_estimator.hardware import GPU, list_gpus

_HEADER = ("| name | vendor | runtime | nominal GiB | reported GiB | bandwidth GB/s | fp32 | tf32 | fp16 | bf16 | fp8 "
           "| int8 | power W | $/h | price date |")


def _tflops(value: float | None) -> str:
    return "—" if value is None else f"{value / 1e12:,.1f}"


def render() -> str:
    lines = [
        "# GPU catalog",
        "",
        "Generated from `src/hf_gpu_estimator/hardware/gpus.json` by `scripts/render_gpu_table.py`; do not edit by hand.",
        "Memory in GiB: *nominal* is the marketed GB read as GiB; *reported* is the total the device reports to torch/vLLM",
        "(Apple: Metal's default GPU share of unified memory), which verdicts and plans use. † marks a figure derived from",
        "sourced entries of the same memory generation by the rule in the entry's `usable_memory_source`.",
        "Peak rates are dense TFLOP/s (int8 in TOP/s), fp16/bf16/fp8 with fp32 accumulate. — means unsupported or not published.",
        "Each entry's source URL, date and caveats are in the JSON file.",
        "",
        _HEADER,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_row(gpu) for gpu in list_gpus()]
    lines += ["", "Prices are on-demand $ per GPU-hour from the entry's `price_source` on `price_date`.", ""]
    slices = [gpu for gpu in list_gpus(mig=True) if gpu.mig_parent]
    lines += [
        "## MIG slices",
        "",
        "GPU instances of a Multi-Instance GPU, by the profile names of NVIDIA's MIG user guide (`--gpu",
        "'H100 MIG 3g.40gb'`, or the device name torch reports inside the instance). *Nominal* is the profile's",
        "share of the full GPU's memory slices, *reported* the memory `nvidia-smi mig -lgip` lists for the profile;",
        "bandwidth and peak rates are the full GPU's scaled by memory slices and SMs (derived). A slice runs one",
        "process with no peer-to-peer link: no tensor or pipeline parallelism across slices. Searches over every",
        "GPU (`plan` without `--gpu`, cheapest, fleet) leave slices out.",
        "",
        _HEADER,
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    lines += [_row(gpu) for gpu in slices]
    lines += [""]
    return "\n".join(lines)


def _row(gpu: GPU) -> str:
    usable = f"{gpu.usable_memory_gib:,.2f}" + ("†" if gpu.usable_memory_derived else "")
    flops = gpu.peak_flops
    return (
        f"| {gpu.name} | {gpu.vendor} | {gpu.runtime} | {gpu.memory_gib:,.0f} | {usable} "
        f"| {gpu.memory_bandwidth_bytes_per_s / 1e9:,.0f} | {_tflops(flops['fp32'])} | {_tflops(flops['tf32'])} "
        f"| {_tflops(flops['fp16'])} | {_tflops(flops['bf16'])} | {_tflops(flops['fp8'])} | {_tflops(flops['int8'])} "
        f"| {'—' if gpu.power_watts is None else f'{gpu.power_watts:,.0f}'} "
        f"| {'—' if gpu.price_per_hour_usd is None else f'{gpu.price_per_hour_usd:.2f}'} | {gpu.price_date or '—'} |"
    )


if __name__ == "__main__":
    print(render(), end="")
