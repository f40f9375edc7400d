"""A :class:`~hf_gpu_estimator.spec.ModelSpec` (``hfge inspect``) as a table and as JSON."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from hf_gpu_estimator.report.render import Section, gib, plain_table

if TYPE_CHECKING:
    from hf_gpu_estimator.spec import Architecture, ModelSpec


def render_spec(spec: ModelSpec) -> str:
    text = plain_table(_spec_rows(spec))
    if spec.assumptions:
        text += "\n\nnotes:\n" + "\n".join(f"  - {a}" for a in spec.assumptions)
    return text

def _spec_rows(spec: ModelSpec) -> list[tuple[str, str]]:
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
            ("model type", arch.model_type + (" (generic family)" if arch.derivation == "generic" else "")),
            ("layers", str(arch.num_layers) + _layer_mix(arch)),
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
    return rows

def _layer_mix(arch: Architecture) -> str:
    """' (30 linear + 10 full attention)' for a model whose layers differ; empty for a uniform one."""
    counts: dict[str, int] = {}
    for layer, n in arch.layer_groups:
        kinds = "+".join(m.kind for m in layer.mixers)
        counts[kinds] = counts.get(kinds, 0) + n
    if len(counts) < 2:
        return ""
    return " (" + " + ".join(f"{n} {kind}" for kind, n in counts.items()) + ")"

def spec_sections(spec: ModelSpec) -> list[Section]:
    """``hfge inspect`` as one section (the rows of :func:`render_spec`)."""
    rows = _spec_rows(spec)
    notes = tuple(f"note: {a}" for a in spec.assumptions)
    return [Section(title=spec.id, header=("fact", "value"), rows=tuple(rows), notes=notes)]

def spec_to_dict(spec: ModelSpec) -> dict[str, Any]:
    """``hfge inspect --format json``: ``parameters`` at the top level."""
    import dataclasses

    arch = dataclasses.asdict(spec.architecture) if spec.architecture is not None else None
    return {
        "id": spec.id,
        "parameters": spec.parameters.total,
        "active_parameters": spec.parameters.active,
        "parameters_by_role": dict(spec.parameters.by_role),
        # Per requested dtype, the parameters from_pretrained keeps in float32 (they add to the weights' bytes).
        "parameters_kept_fp32": dict(spec.parameters.kept_fp32),
        "stored_dtype": spec.stored_dtype,
        "checkpoint_bytes": spec.checkpoint_bytes,
        "checkpoint_bytes_by_dtype": dict(spec.checkpoint_bytes_by_dtype),
        "quantization": dataclasses.asdict(spec.quantization) if spec.quantization else None,
        "architecture": arch,
        "provenance": dict(spec.provenance),
        "revision": spec.revision,
        "source": spec.source_url,
        "assumptions": list(spec.assumptions),
    }
