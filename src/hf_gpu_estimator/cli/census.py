"""``hfge census``: the GPU demand of a model set × a job grid, written as a dataset with its card and plots."""

from __future__ import annotations

import argparse
from typing import Any

from hf_gpu_estimator.cli._common import add_command, message, positive_int

EPILOG = """examples:
  hfge census --models catalog --output census/                   # the 320 catalog models, offline
  hfge census --models hub:text-generation:1000 --sort likes --output top1000/
  hfge census --models ids.txt --jobs inference:ctx=8192:quant=fp8,qlora:ctx=4096 --gpus RTX-4090,H100-SXM-80GB --output out/
  hfge census --models catalog --output census/ --push-to-hub my-org/gpu-census
  hfge census --models ids.txt --jobs inference:ctx=4096:mode=exact --backend ray --output traced/

jobs: KIND[:key=value]..., KIND one of inference, lora, qlora, full; keys ctx (prompt + generated tokens, or
the training sequence), new (generated tokens, default 256), batch, quant (fp8, nf4, awq-4bit, gguf:Q4_K_M ...),
dtype, gc (gradient checkpointing, 1/0), engine, mode (analytic, or exact: traces transformers' code, seconds
of CPU a row, needs torch; with --backend ray each model is a Ray task). Default: inference:ctx=4096 in the
checkpoint dtype, fp8 and gguf:Q4_K_M; lora, qlora and full at ctx=2048.

An interrupted census resumes: rows already computed for the same grid are kept in OUTPUT/.census-cache.jsonl.
Parquet is written when pyarrow is installed (pip install 'hf-gpu-estimator[census]'), CSV always."""


def register(subparsers: Any) -> None:
    p = add_command(subparsers, "census", run, help="GPU demand of many models: a dataset, its card and plots",
                    epilog=EPILOG)
    p.add_argument("--models", required=True, metavar="catalog|FILE|hub:PIPELINE_TAG:N",
                   help="the bundled catalog (offline), a file of ids (one a line), or the Hub's top N for a tag")
    p.add_argument("--sort", choices=("downloads", "likes", "trending"), default="downloads",
                   help="order of the Hub's listing for hub:TAG:N (default downloads)")
    p.add_argument("--jobs", action="append", metavar="JOB[,JOB...]", help="the job grid (see below); repeatable")
    p.add_argument("--gpus", action="append", metavar="NAME[,NAME...]",
                   help="catalog GPUs to count and price (default RTX-4090, L40S, A100-80GB-SXM, H100-SXM-80GB, "
                        "H200-SXM-141GB, B200-180GB)")
    p.add_argument("--output", required=True, metavar="DIR", help="folder for census.csv/.parquet, README.md, plots/")
    p.add_argument("--workers", type=positive_int, help="concurrent model reads per process (default 8; 1 for the catalog)")
    p.add_argument("--processes", type=positive_int,
                   help="processes sharing the arithmetic (default: up to 4 of the CPUs from 64 models, else 1)")
    p.add_argument("--backend", choices=("local", "ray"), default="local",
                   help="local (this machine's processes, default) or ray: one Ray task per model, at RAY_ADDRESS "
                        "or a local Ray instance (pip install 'hf-gpu-estimator[ray]'); for exact-mode jobs")
    p.add_argument("--no-plots", action="store_true", help="write the data and card only")
    p.add_argument("--push-to-hub", metavar="ORG/NAME", help="upload the folder to this Hub dataset repo")
    p.add_argument("--private", action="store_true", help="create the Hub dataset repo private")
    p.add_argument("--token", help="Hub token (default: HF_TOKEN or the saved login)")


def run(args: argparse.Namespace) -> int:
    from hf_gpu_estimator.census import push_to_hub, run_census, write_dataset
    from hf_gpu_estimator.census_report import summary_line
    from hf_gpu_estimator.cli._common import resolve_gpus
    from hf_gpu_estimator.planner.census import DEFAULT_GPUS, parse_jobs
    from hf_gpu_estimator.sources.census import model_refs

    jobs = parse_jobs(",".join(args.jobs) if args.jobs else None)
    gpus = tuple(g.name for g in resolve_gpus(args.gpus)) if args.gpus else DEFAULT_GPUS
    refs = model_refs(args.models, sort=args.sort, token=args.token)
    census = run_census(refs, jobs, gpus=gpus, models=args.models, offline=args.models == "catalog",
                        token=args.token, workers=args.workers, processes=args.processes,
                        cache_dir=args.output, backend=args.backend)
    import importlib.util

    from hf_gpu_estimator.census import parquet_available

    write_dataset(census, args.output, plots=not args.no_plots)
    if not parquet_available():
        message("census.csv only: Parquet needs pyarrow (pip install 'hf-gpu-estimator[census]')")
    if not args.no_plots and importlib.util.find_spec("matplotlib") is None:
        message("no plots: they need matplotlib (pip install 'hf-gpu-estimator[plot]')")
    print(summary_line(census, args.output))
    if args.push_to_hub:
        url = push_to_hub(args.output, args.push_to_hub, token=args.token, private=args.private)
        message(f"uploaded to {url}")
    return 0
