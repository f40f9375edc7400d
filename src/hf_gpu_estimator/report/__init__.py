"""Rendering: results as tables (plain text, markdown, HTML, rich) and JSON; data on stdout, never
arithmetic here.

:mod:`~hf_gpu_estimator.report.render` is the ground floor (units, :class:`Section`, the formats);
each other module turns one result type into Sections. The names below are the package's API.
"""

from __future__ import annotations

from hf_gpu_estimator.constants import COMMON_GPUS
from hf_gpu_estimator.report.cheapest import serving_sections, training_sections
from hf_gpu_estimator.report.estimate import (
    compare_sections,
    estimate_sections,
    grid_sections,
    render_table,
    verdict_line,
    workload_line,
)
from hf_gpu_estimator.report.evals import eval_list_sections, eval_ranking_section, eval_sections
from hf_gpu_estimator.report.fleet import fleet_sections
from hf_gpu_estimator.report.gpus import gpu_label, gpu_sections
from hf_gpu_estimator.report.measure import measure_sections
from hf_gpu_estimator.report.plan import catalog_sections, plan_sections
from hf_gpu_estimator.report.render import (
    TEXT_FORMATS,
    VERDICT_STYLES,
    Section,
    gib,
    gib_range,
    percent,
    print_sections,
    render_sections,
    rich_available,
    signed_gib,
    size,
    size_or_dash,
)
from hf_gpu_estimator.report.spec import render_spec, spec_sections, spec_to_dict

__all__ = [
    "COMMON_GPUS", "TEXT_FORMATS", "VERDICT_STYLES", "Section", "catalog_sections", "compare_sections", "estimate_sections", "eval_list_sections", "eval_ranking_section", "eval_sections",
    "fleet_sections", "gib", "gib_range", "gpu_label", "gpu_sections", "grid_sections", "measure_sections",
    "percent", "plan_sections", "print_sections", "render_sections", "render_spec", "render_table",
    "rich_available", "serving_sections", "signed_gib", "size", "size_or_dash", "spec_sections", "spec_to_dict",
    "training_sections", "verdict_line", "workload_line",
]
