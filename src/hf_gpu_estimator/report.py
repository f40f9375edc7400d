"""Rendering: estimates and specs as plain-text tables (data on stdout, never arithmetic here)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_gpu_estimator.memory.terms import COMPONENTS

if TYPE_CHECKING:
    from hf_gpu_estimator.estimate import Estimate
    from hf_gpu_estimator.spec import ModelSpec

GiB = 1 << 30


def gib(nbytes: float) -> str:
    """Bytes as GiB with two decimals (binary units, as torch and nvidia-smi count)."""
    return f"{nbytes / GiB:,.2f} GiB"


def _table(rows: list[tuple[str, ...]], *, header: tuple[str, ...] | None = None) -> str:
    all_rows = ([header] if header else []) + rows
    widths = [max(len(r[i]) for r in all_rows) for i in range(len(all_rows[0]))]
    lines = []
    for n, row in enumerate(all_rows):
        cells = [row[0].ljust(widths[0])] + [cell.rjust(w) for cell, w in zip(row[1:], widths[1:])]
        lines.append("  ".join(cells).rstrip())
        if header and n == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_table(est: Estimate) -> str:
    spec, work, mem = est.spec, est.workload, est.memory
    head = [
        f"{spec.id}  ({spec.parameters.total:,} parameters, {spec.stored_dtype})",
        _workload_line(est),
        "",
    ]
    rows = [(name.replace("_", " "), gib(mem.components.get(name, 0))) for name in COMPONENTS
            if mem.components.get(name, 0)]
    rows.append(("allocated peak", gib(mem.allocated_peak_bytes)))
    rows.append(("  range", f"{gib(mem.allocated_low_bytes)} - {gib(mem.allocated_high_bytes)}"))
    rows.append(("reserved peak", gib(mem.reserved_peak_bytes)))
    rows.append(("device total (nvidia-smi)", gib(mem.device_total_bytes)))
    body = _table(rows, header=(f"per device, peak at {mem.phase_at_peak}", "memory"))
    tail = []
    if est.gpu is not None:
        verdict = "fits" if est.fits() else "does NOT fit"
        tail.append(f"\n{est.gpu.name} ({gib(est.gpu.usable_memory_bytes)} usable): {verdict}, "
                    f"headroom {gib(est.headroom_bytes())}")
    return "\n".join(head) + body + "\n".join(tail)


def _workload_line(est: Estimate) -> str:
    w = est.workload
    if w.is_training:
        parts = [f"training ({w.method})", f"batch {w.batch_size} x {w.seq_len} tokens", w.precision.name,
                 w.optimizer.name]
        if w.gradient_checkpointing:
            parts.append("gradient checkpointing")
    else:
        parts = ["inference", f"batch {w.batch_size}", f"{w.seq_len} prompt + {w.new_tokens} new tokens",
                 w.dtype or est.spec.stored_dtype]
    parts.append(w.attn_implementation)
    if w.quantization != "none":
        parts.append(w.quantization)
    p = w.parallelism
    if p.num_gpus > 1:
        parts.append(f"{p.num_gpus} GPUs ({p.strategy}, tp={p.tp}, pp={p.pp})")
    return ", ".join(parts)


def render_spec(spec: ModelSpec) -> str:
    arch = spec.architecture
    rows = [
        ("id", spec.id),
        ("parameters", f"{spec.parameters.total:,}"),
    ]
    if spec.parameters.active != spec.parameters.total:
        rows.append(("active per token", f"{spec.parameters.active:,}"))
    for role, n in spec.parameters.by_role.items():
        if n:
            rows.append((f"  {role}", f"{n:,}"))
    rows.append(("stored dtype", spec.stored_dtype))
    if spec.checkpoint_bytes is not None:
        rows.append(("checkpoint", gib(spec.checkpoint_bytes)))
    if spec.quantization is not None:
        q = spec.quantization
        rows.append(("quantization", f"{q.method} {q.bits:g}-bit" + (f", group {q.group_size}" if q.group_size else "")))
    if arch is not None:
        rows += [
            ("model type", arch.model_type),
            ("layers", str(arch.num_layers)),
            ("hidden / intermediate", f"{arch.hidden_size} / {arch.intermediate_size}"),
            ("heads / kv heads / head dim", f"{arch.num_attention_heads} / {arch.num_key_value_heads} / {arch.head_dim}"),
            ("vocab", f"{arch.vocab_size:,}" + (" (tied)" if arch.tie_word_embeddings else "")),
        ]
        if arch.is_moe:
            rows.append(("experts", f"{arch.num_experts} ({arch.num_experts_per_tok} active)"))
        if arch.sliding_layers:
            rows.append(("sliding-window layers", f"{arch.sliding_layers} (window {arch.sliding_window})"))
        if arch.is_mla:
            rows.append(("MLA ranks (q / kv)", f"{arch.q_lora_rank} / {arch.kv_lora_rank}"))
    rows.append(("facts from", ", ".join(f"{k}: {v}" for k, v in spec.provenance.items())))
    text = _table([(a, b) for a, b in rows])
    if spec.assumptions:
        text += "\n\nnotes:\n" + "\n".join(f"  - {a}" for a in spec.assumptions)
    return text
