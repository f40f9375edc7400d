"""A :class:`~hf_gpu_estimator.planner.Plan` (``hfge plan --gpu``) and a
:class:`~hf_gpu_estimator.planner.gpu_plan.CatalogPlan` (``hfge plan`` without ``--gpu``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.report.render import VERDICT_STYLES, Section, gib, gib_range

if TYPE_CHECKING:
    from hf_gpu_estimator.planner.gpu_plan import CatalogPlan, Plan
    from hf_gpu_estimator.workload import Workload


def plan_sections(p: Plan) -> list[Section]:
    """``hfge plan --gpu``: a :class:`~hf_gpu_estimator.planner.Plan` as fact/value rows."""
    v = p.verdict
    if v is not None:
        needs = (gib(v.needs_bytes) if v.needs_low_bytes == v.needs_high_bytes
                 else gib_range(v.needs_low_bytes, v.needs_high_bytes))
        basis = (f"{gib(v.limit_bytes)} usable ({v.margin:.0%} kept free)" if v.engine_starts is None
                 else f"{gib(v.limit_bytes)} the engine may use")
        fits_text = f"{v.verdict}: needs {needs} per device of {basis}"
    else:
        fits_text = f"{'yes' if p.fits else 'no'}: needs {gib_range(*_range(p.device_total_bytes, p.workload))} per device"
    on = p.deployment.describe() if p.deployment is not None else p.gpu.name
    rows: list[tuple[str, str]] = [
        ("gpu", f"{p.gpu.name} ({p.gpu.usable_memory_bytes / GiB:.1f} GiB usable)"),
        ("deployment", on),
        ("fits", fits_text),
    ]
    if p.serving is not None:
        s = p.serving
        name = {"vllm": "vLLM", "sglang": "SGLang", "llama.cpp": "llama.cpp", "transformers": "transformers"}.get(
            s.engine, s.engine)
        rows += [(f"{name} KV cache", f"{s.kv_cache_tokens:,} tokens ({s.kv_pool_bytes / GiB:.1f} GiB"
                                      + (f", {s.num_blocks:,} blocks of {s.block_size})" if s.block_size > 1 else ")")),
                 ("max batch size (concurrent seqs)", f"{p.max_batch_size} at max_model_len {s.max_model_len:,}"
                  + ("" if p.fits else f" ({name} would not start)")),
                 ("largest max_model_len", f"{s.largest_max_model_len:,}")]
    else:
        rows += [("max batch size", str(p.max_batch_size)), ("max seq len", str(p.max_seq_len))]
    rows.append(("min GPUs", p.min_gpus.description if p.min_gpus else "none tried fits"))
    from hf_gpu_estimator.perf import InferenceSpeed

    sp = p.speed
    if isinstance(sp, InferenceSpeed):
        rows += [("TTFT", f"{sp.ttft_seconds * 1e3:.1f} ms ({sp.prefill_bound}-bound)"),
                 ("TPOT", f"{sp.tpot_seconds * 1e3:.2f} ms ({sp.decode_bound}-bound)"),
                 ("decode", f"{sp.decode_tokens_per_s:,.0f} tokens/s at batch {sp.batch_size}")]
    elif sp is not None:
        rows += [("training", f"{sp.tokens_per_s:,.0f} tokens/s, {sp.step_seconds:.2f} s/step")]
    if p.hourly_usd is not None:
        cost = f"${p.hourly_usd:.2f}/h"
        if p.usd_per_million_output_tokens is not None:
            cost += f", ${p.usd_per_million_output_tokens:.2f} per 1M output tokens"
        rows.append(("cost", cost))
    launch = p.launch if p.fits else (p.min_gpus.verdict.launch if p.min_gpus and p.min_gpus.verdict else None)
    if launch is not None:
        rows.append(("launch" if p.fits else f"launch ({p.min_gpus.num_gpus} GPUs)", launch.command))
        extra = launch.extra
        for key in ("lightning", "training_arguments"):
            if key in extra:
                rows.append((key.replace("_", " "), ", ".join(f"{k}={v!r}" for k, v in extra[key].items())))
    styles = [("ok" if p.fits else "bad") if name == "fits" else None for name, _ in rows]
    return [Section(title=f"{p.gpu.name}: plan", rows=tuple(rows), row_styles=tuple(styles),
                    notes=tuple(f"note: {n}" for n in p.notes))]

def catalog_sections(result: CatalogPlan, *, verbose: bool = False) -> list[Section]:
    """``hfge plan MODEL`` without ``--gpu``: one row per GPU type, fewest GPUs and cheapest first; the
    types on which nothing tried fits in one closing line (``verbose``: each with its reason)."""
    rows, styles = [], []
    left_out = [r for r in result.rows if r.min_gpus is None]
    for r in result.rows:
        if r.min_gpus is None:
            continue
        m = r.min_gpus
        split = m.description.split(", ", 1)[1] if ", " in m.description else m.description
        rows.append((r.gpu.name, f"{r.gpu.usable_memory_bytes / GiB:.0f} GiB", r.verdict.verdict, str(m.num_gpus),
                     split, "-" if r.hourly_usd is None else f"${r.hourly_usd:.2f}"))
        styles.append(VERDICT_STYLES[r.verdict.verdict])
    what = (f"{result.engine} at max_model_len {result.max_model_len:,}" if result.engine and result.max_model_len
            else "as the framework runs it")
    notes = [f"verdict on 1 GPU; 'gpus': the fewest on which it starts and fits ({what}); "
             "hfge plan MODEL --gpu NAME for the launch command"]
    if left_out:
        notes.append(f"{len(left_out)} GPU types fit at none of the splits tried"
                     + ("" if verbose else "; --verbose lists them"))
        if verbose:
            notes += [f"  {r.gpu.name}: {r.reason}" for r in left_out]
    return [Section(title="Every GPU type: fewest GPUs first, then cheapest",
                    header=("gpu", "memory", "on 1 GPU", "gpus", "split", "$/hour"), rows=tuple(rows),
                    row_styles=tuple(styles), notes=tuple(notes))]

def _range(total_bytes: int, workload: Workload) -> tuple[int, int]:
    from hf_gpu_estimator.verdict import uncertainty_for

    u = uncertainty_for(workload)
    return u.low_bytes(total_bytes), u.high_bytes(total_bytes)
