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
        "Memory in GiB: *nominal* is the marketed GB read as GiB; *reported* is the total the device reports to torch/vLLM",
        "(Apple: Metal's default GPU share of unified memory), which verdicts and plans use. † marks a figure derived from",
        "sourced entries of the same memory generation by the rule in the entry's `usable_memory_source`.",
        "Peak rates are dense TFLOP/s (int8 in TOP/s), fp16/bf16/fp8 with fp32 accumulate. — means unsupported or not published.",
        "Each entry's source URL, date and caveats are in the JSON file.",
        "",
        "| name | vendor | runtime | nominal GiB | reported GiB | bandwidth GB/s | fp32 | tf32 | fp16 | bf16 | fp8 | int8 | power W | $/h | price date |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for gpu in list_gpus():
        usable = f"{gpu.usable_memory_gib:,.2f}" + ("†" if gpu.usable_memory_derived else "")
        flops = gpu.peak_flops
        lines.append(
            f"| {gpu.name} | {gpu.vendor} | {gpu.runtime} | {gpu.memory_gib:,.0f} | {usable} "
            f"| {gpu.memory_bandwidth_bytes_per_s / 1e9:,.0f} | {_tflops(flops['fp32'])} | {_tflops(flops['tf32'])} "
            f"| {_tflops(flops['fp16'])} | {_tflops(flops['bf16'])} | {_tflops(flops['fp8'])} | {_tflops(flops['int8'])} "
            f"| {'—' if gpu.power_watts is None else f'{gpu.power_watts:,.0f}'} "
            f"| {'—' if gpu.price_per_hour_usd is None else f'{gpu.price_per_hour_usd:.2f}'} | {gpu.price_date or '—'} |"
        )
    lines += ["", "Prices are on-demand $ per GPU-hour from the entry's `price_source` on `price_date`.", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(render(), end="")
