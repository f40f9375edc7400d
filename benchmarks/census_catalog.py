"""Regenerate the catalog census: the dataset the web app's census tab shows, and docs/census.md with its plots.

Run from the repository root (offline, no GPU needed):

    PYTHONPATH=src .venv/bin/python benchmarks/census_catalog.py

It runs ``hfge census --models catalog`` with the default grid, writes the rows to
``src/hf_gpu_estimator/data/census_catalog.csv``, the page to ``docs/census.md`` and the plots to
``docs/images/census-*.png``. ``tests/test_census.py`` fails when the page, the data and the estimator disagree.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "src" / "hf_gpu_estimator" / "data" / "census_catalog.csv"
PAGE = ROOT / "docs" / "census.md"
IMAGES = ROOT / "docs" / "images"
COMMAND = "PYTHONPATH=src .venv/bin/python benchmarks/census_catalog.py"


def page_for(rows: object) -> str:
    """docs/census.md for ``rows`` (the test regenerates it the same way)."""
    from hf_gpu_estimator.census_plots import PLOTS
    from hf_gpu_estimator.census_report import docs_page

    gpus = gpus_of(DATA)
    images = [f"images/{name}" for name, _ in PLOTS if (IMAGES / name).exists()]
    return docs_page(rows, gpus=gpus, images=images, command=COMMAND)  # type: ignore[arg-type]


def gpus_of(path: Path) -> list[str]:
    with path.open(encoding="utf-8", newline="") as f:
        header = next(csv.reader(f))
    return [c.removeprefix("min_gpus_") for c in header if c.startswith("min_gpus_")]


def main() -> int:
    from hf_gpu_estimator.census import DATA_STEM, read_rows, run_census, write_dataset
    from hf_gpu_estimator.census_plots import PLOTS
    from hf_gpu_estimator.census_report import summary_line
    from hf_gpu_estimator.sources.census import model_refs

    census = run_census(model_refs("catalog"), models="catalog", offline=True, progress=sys.stderr.isatty())
    tmp = DATA.parent / ".census-tmp"
    write_dataset(census, tmp, parquet=False, plots=False)
    (tmp / f"{DATA_STEM}.csv").replace(DATA)
    for leftover in tmp.iterdir():
        leftover.unlink()
    tmp.rmdir()
    rows = read_rows(DATA)
    for name, draw in PLOTS:
        target = IMAGES / name
        if draw(rows, path=target) is None:
            target.unlink(missing_ok=True)
    PAGE.write_text(page_for(rows), encoding="utf-8")
    print(summary_line(census, str(DATA.relative_to(ROOT))))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
