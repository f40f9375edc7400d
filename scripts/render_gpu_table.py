"""Render the bundled GPU catalog as a Markdown table (docs/gpus.md).

Usage: python scripts/render_gpu_table.py > docs/gpus.md
"""

from __future__ import annotations

from hf_gpu_estimator.hardware import list_gpus


def _tflops(value: float | None) -> str:
    return "—" if value is None else f"{value / 1e12:,.1f}"


def render() -> str:
    lines = [
        "# GPU catalog",
        "",
        "Generated from `src/hf_gpu_estimator/hardware/gpus.json` by `scripts/render_gpu_table.py`; do not edit by hand.",
        "Memory in GiB (marketed GB read as GiB; *usable* is what the driver reports, or Apple's default GPU share).",
        "Peak rates are dense TFLOP/s (int8 in TOP/s), fp16/bf16/fp8 with fp32 accumulate. — means unsupported or not published.",
        "Each entry's source URL, date and caveats are in the JSON file.",
        "",
        "| name | vendor | memory GiB | usable GiB | bandwidth GB/s | fp32 | tf32 | fp16 | bf16 | fp8 | int8 | power W | $/h |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for gpu in list_gpus():
        usable = f"{gpu.usable_memory_gib:,.1f}" + ("" if gpu.usable_memory_source else "*")
        flops = gpu.peak_flops
        lines.append(
            f"| {gpu.name} | {gpu.vendor} | {gpu.memory_gib:,.0f} | {usable} "
            f"| {gpu.memory_bandwidth_bytes_per_s / 1e9:,.0f} | {_tflops(flops['fp32'])} | {_tflops(flops['tf32'])} "
            f"| {_tflops(flops['fp16'])} | {_tflops(flops['bf16'])} | {_tflops(flops['fp8'])} | {_tflops(flops['int8'])} "
            f"| {'—' if gpu.power_watts is None else f'{gpu.power_watts:,.0f}'} "
            f"| {'—' if gpu.price_per_hour_usd is None else f'{gpu.price_per_hour_usd:.2f}'} |"
        )
    lines += ["", "\\* not measured: equals the marketed capacity.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
