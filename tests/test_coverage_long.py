"""The long-context matrix: every causal-LM type of transformers at the workloads people run, analytic against
committed exact-mode traces.

Reference: ``tests/data/coverage_long.json`` (``benchmarks/matrix/long_context.py``: the real transformers model
on fake tensors with CUDA semantics, each type at the coverage matrix's cut default config, at batch 4 x 2048
prompt tokens with eager and sdpa attention, and batch 2 x 2048 bf16-mixed training with and without gradient
checkpointing). Tolerance: the analytic allocated peak (without the cuBLAS workspace) within
``long_context.TOLERANCE`` (10 %) of the traced peak for at least ``MIN_WITHIN`` of the compared types per
workload, the median |error| at most ``MAX_MEDIAN``; every type outside is named in ``KNOWN_GAPS`` with why.
Only the analytic side is computed here (no torch).
"""

from __future__ import annotations

import pytest

from matrix import long_context

pytestmark = pytest.mark.skipif(not long_context.DATA_PATH.exists(), reason="no long-context traces recorded")


@pytest.fixture(scope="module")
def cells() -> list[long_context.Cell]:
    return long_context.compare()


def test_figures_per_workload(cells: list[long_context.Cell], capsys: pytest.CaptureFixture[str]) -> None:
    lines = []
    failures = []
    for s in long_context.summarize(cells):
        if not s.compared:
            continue
        lines.append(f"long context {s.workload}: {s.within}/{s.compared} within ±{long_context.TOLERANCE:.0%} "
                     f"({s.share:.1%}), median |error| {s.median_abs_error:.1%}; not compared {s.not_compared}")
        if s.share < long_context.MIN_WITHIN[s.workload] or s.median_abs_error > long_context.MAX_MEDIAN[s.workload]:
            failures.append(lines[-1])
    with capsys.disabled():
        print("\n" + "\n".join(lines))
    assert not failures, "\n".join(failures)


def test_every_miss_is_named(cells: list[long_context.Cell]) -> None:
    """A type outside tolerance on a workload is listed in KNOWN_GAPS with why (its error is in the doc)."""
    unnamed = sorted({f"{c.model_type} ({c.workload} {c.error:+.1%})" for c in cells
                      if c.error is not None and not c.within and c.model_type not in long_context.KNOWN_GAPS})
    assert not unnamed, f"outside ±{long_context.TOLERANCE:.0%} without a reason in KNOWN_GAPS: {unnamed}"


def test_known_gaps_still_miss(cells: list[long_context.Cell]) -> None:
    missing = {c.model_type for c in cells if c.error is not None and not c.within}
    fixed = sorted(set(long_context.KNOWN_GAPS) - missing)
    assert not fixed, f"now within tolerance on every workload: remove from KNOWN_GAPS: {fixed}"


def test_doc_is_current(cells: list[long_context.Cell]) -> None:
    assert long_context.DOC_PATH.read_text() == long_context.build_markdown(cells), (
        "docs/coverage-long.md is stale: run PYTHONPATH=src python benchmarks/matrix/long_context.py --render")
