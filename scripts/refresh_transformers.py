"""Bring the project to the installed transformers: re-record, re-trace what went stale, regenerate, report.

    bash scripts/lock.sh && bash scripts/test.sh --co -q >/dev/null     # lock and install the new releases
    PYTHONPATH=src nice -n 10 .venv/bin/python scripts/refresh_transformers.py

Steps, each an existing command run as a subprocess so an interrupted refresh resumes where it stopped:

1. ``scripts/build_generic_data.py``: the generic family's record (attribute maps, defaults, buffers) of every
   model type the installed transformers implements.
2. ``benchmarks/coverage_traces.py``: re-traces only the coverage entries that are stale (other torch or
   transformers version, another cut config) and traces the new causal-LM types.
3. ``benchmarks/coverage_headers.py``: the checkpoint headers of every traced type.
4. ``benchmarks/coverage_report.py``: docs/coverage.md.

Then it prints what changed: model types added and removed, and every type whose status or error moved past
its tolerance (``compare.TOLERANCE``) between the old and the new matrix. Exit status 1 when a type that was
within tolerance no longer is.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERIC = ROOT / "src/hf_gpu_estimator/architectures/generic_data.json"


def _run(*args: str) -> None:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    print("$", " ".join(args), flush=True)
    subprocess.run([sys.executable, *args], cwd=ROOT, env=env, check=True)


def _statuses() -> dict[str, tuple[str, dict[str, float]]]:
    """model_type -> (status, errors per workload) of the recorded matrix, as the current code compares it
    (staleness ignored: before the refresh every entry is stale against the newly installed transformers)."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from matrix import compare
    from hf_gpu_estimator.architectures import generic

    compare.load_headers.cache_clear()
    generic._data.cache_clear()  # the record was rewritten by a subprocess
    return {r.model_type: (r.status, r.errors) for r in compare.rows(compare.load_data())}


def _fmt(errors: dict[str, float]) -> str:
    return ", ".join(f"{w} {e:+.1%}" for w, e in sorted(errors.items())) or "-"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skip-traces", action="store_true", help="re-record and compare only (no tracing)")
    args = parser.parse_args(argv)
    start = time.monotonic()
    import transformers

    old_types = set(json.loads(GENERIC.read_text())["model_types"])
    before = _statuses()
    _run("scripts/build_generic_data.py")
    new_types = set(json.loads(GENERIC.read_text())["model_types"])
    if not args.skip_traces:
        _run("benchmarks/coverage_traces.py")
        _run("benchmarks/coverage_headers.py")  # every type (seconds): headers follow the traced cut configs
    _run("benchmarks/coverage_report.py")
    after = _statuses()

    print(f"\ntransformers {transformers.__version__}: {len(new_types)} model types recorded "
          f"(+{len(new_types - old_types)} / -{len(old_types - new_types)})")
    for t in sorted(new_types - old_types):
        print(f"  new type      {t}")
    for t in sorted(old_types - new_types):
        print(f"  removed type  {t}")
    regressions = 0
    for t in sorted(set(before) | set(after)):
        was, now = before.get(t, ("absent", {})), after.get(t, ("absent", {}))
        if was[0] == now[0]:
            continue
        regressions += was[0] == "within"
        print(f"  {t:<28} {was[0]} ({_fmt(was[1])}) -> {now[0]} ({_fmt(now[1])})")
    within = sum(1 for s, _ in after.values() if s == "within")
    print(f"{within}/{len(after)} coverage types within tolerance; {regressions} fell out of it; "
          f"{time.monotonic() - start:.0f} s")
    return 1 if regressions else 0


if __name__ == "__main__":
    sys.exit(main())
