"""Write docs/coverage.md from the committed coverage traces and the current analytic model.

    PYTHONPATH=src python benchmarks/coverage_report.py

Fast (no tracing): re-run it whenever the analytic model or the traces change;
``tests/test_coverage.py`` fails while the page is stale. Types whose traces are stale (other
torch/transformers versions, or a changed cut config) are re-traced by
``benchmarks/coverage_traces.py``, never trusted.
"""

from __future__ import annotations

import sys

from matrix import render


def main() -> int:
    table, summary = render.current_table()
    render.DOC_PATH.write_text(render.build_markdown(table, summary))
    print(f"{summary.within}/{summary.types} within tolerance ({summary.coverage:.1%}); traced {summary.traced}, "
          f"estimated {summary.estimated}, exact counts {summary.exact_counts}: wrote {render.DOC_PATH}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
