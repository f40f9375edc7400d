"""Cost of the integrations: Lightning ``fit`` with and without ``MemoryPreflight``, and the estimator on a 7B spec.

Run (CPU is fine; on a GPU machine pass --accelerator gpu):

    .venv/bin/python benchmarks/bench_integrations.py [--repeats 5] [--max-steps 5] [--accelerator cpu]

Prints one JSON object: median seconds of ``Trainer.fit`` on the tiny Llama of
``integrations/lightning/train_tiny_llama.py`` without and with the callback (and the overhead),
the median time of one preflight (estimate + suggestions) for the catalog's
``meta-llama/Llama-2-7b-hf`` spec, and of one bare ``estimate``.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import statistics
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _tiny():
    spec = importlib.util.spec_from_file_location("lightning_e2e", ROOT / "integrations" / "lightning" / "train_tiny_llama.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fit_seconds(e2e, *, callback, max_steps: int, accelerator: str) -> float:
    import lightning as L
    from torch.utils.data import DataLoader

    model = e2e.TinyLlama()
    trainer = L.Trainer(accelerator=accelerator, devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback] if callback else [])
    loader = DataLoader(e2e.RandomTokens(n=64, seq_len=64), batch_size=8)
    start = time.perf_counter()
    trainer.fit(model, loader)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--max-steps", type=int, default=5)
    parser.add_argument("--accelerator", default="cpu")
    args = parser.parse_args()
    logging.disable(logging.WARNING)  # the callbacks' messages are not what is measured

    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.integrations import preflight_check
    from hf_gpu_estimator.integrations.lightning import MemoryPreflight
    from hf_gpu_estimator.sources.catalog import lookup

    e2e = _tiny()
    _fit_seconds(e2e, callback=None, max_steps=1, accelerator=args.accelerator)  # warm-up (imports, kernels)
    without, with_cb = [], []
    for _ in range(args.repeats):  # interleaved, so drift hits both alike
        without.append(_fit_seconds(e2e, callback=None, max_steps=args.max_steps, accelerator=args.accelerator))
        with_cb.append(_fit_seconds(e2e, callback=MemoryPreflight(device_memory_bytes=300 * 2**20),
                                    max_steps=args.max_steps, accelerator=args.accelerator))

    spec = lookup("meta-llama/Llama-2-7b-hf")
    work = {"task": "training", "batch_size": 8, "seq_len": 2048, "num_gpus": 8, "strategy": "ddp"}
    est_times, pre_times = [], []
    for _ in range(max(args.repeats, 20)):
        t = time.perf_counter()
        estimate(spec, **work)
        est_times.append(time.perf_counter() - t)
        t = time.perf_counter()
        result = preflight_check(spec, workload_kwargs=work, gpu="A100-80GB")
        pre_times.append(time.perf_counter() - t)
    print(json.dumps({
        "fit_seconds_without_callback": round(statistics.median(without), 4),
        "fit_seconds_with_callback": round(statistics.median(with_cb), 4),
        "callback_overhead_seconds": round(statistics.median(with_cb) - statistics.median(without), 4),
        "estimate_7b_seconds": round(statistics.median(est_times), 5),
        "preflight_7b_seconds": round(statistics.median(pre_times), 5),
        "preflight_7b_suggestions": len(result.suggestions),
        "repeats": args.repeats, "max_steps": args.max_steps, "accelerator": args.accelerator,
    }, indent=2))


if __name__ == "__main__":
    main()
