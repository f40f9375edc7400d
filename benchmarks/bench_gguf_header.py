"""Benchmark GGUF header reads: requests and bytes against the header size.

Run from the repo root:

    .venv/bin/python benchmarks/bench_gguf_header.py

Through the loopback Hub stand-in (tests/hub_server.py, range requests, files reported at their full
size), inspect ``org/repo:Q4_K_M`` for Llama-shaped GGUF files whose tokenizer makes the header grow
(32 k, 128 k and 256 k tokens with merges), and a 3-way split file. Budget per file: the bytes sent may
exceed the header by at most one range request (the last window, at most 16 MiB), never tensor data
beyond that; requests are 1 (model info) + per file ceil(log2(header / 1 MiB)) + 1 windows.

Exits 1 when a budget is violated.
"""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "src"))

import hub_server  # noqa: E402
from gguf_writer import ARRAY, STRING, header_bytes, llama_metadata, llama_tensors, write_repo  # noqa: E402

DIMS = dict(n_layer=32, n_embd=4096, n_ff=14336, n_head=32, n_head_kv=8)
MAX_WINDOW = 16 << 20


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        cases = []
        for vocab in (32_000, 128_256, 256_000):
            dims = {**DIMS, "vocab": vocab}
            merges = [("tokenizer.ggml.merges", ARRAY, (STRING, [f"m{i} m{i + 1}" for i in range(2 * vocab)]))]
            head, size = header_bytes(llama_metadata(**dims, file_type=15, extra=merges),
                                      llama_tensors(**dims, types={"weight": "Q4_K"}))  # fmt: skip
            repo = f"bench/v{vocab}-GGUF"
            write_repo(root, repo, {"m-Q4_K_M.gguf": (head, size)})
            cases.append((f"{repo}:Q4_K_M", [len(head)], size))
        dims = {**DIMS, "vocab": 128_256}
        tensors = llama_tensors(**dims, types={"weight": "Q4_K"})
        third = len(tensors) // 3
        parts = [tensors[:third], tensors[third : 2 * third], tensors[2 * third :]]
        files = {}
        for i, part in enumerate(parts, start=1):
            meta = llama_metadata(**dims, file_type=15) if i == 1 else [("split.no", 2, i - 1)]
            files[f"s-Q4_K_M-0000{i}-of-00003.gguf"] = header_bytes(meta + [("split.count", 2, 3)], part)
        write_repo(root, "bench/split-GGUF", files)
        cases.append(("bench/split-GGUF:Q4_K_M", [len(h) for h, _ in files.values()], sum(s for _, s in files.values())))

        hub = hub_server.start(root=root)
        os.environ["HF_ENDPOINT"] = hub.endpoint
        os.environ["HF_HOME"] = str(root / "home")
        os.environ["HF_HUB_DISABLE_TELEMETRY"] = "1"
        from hf_gpu_estimator.sources import inspect_model

        failed = False
        print(f"{'model':32s} {'header MiB':>10s} {'file GiB':>9s} {'requests':>8s} {'sent MiB':>9s} {'sent/header':>11s}")
        for name, headers, size in cases:
            hub.reset()
            inspect_model(name)
            sent = hub.bytes_served
            ranged = [r for r in hub.requests if r.range]
            budget = sum(headers) + len(headers) * MAX_WINDOW
            ok = sent <= budget and all(r.status == 206 for r in ranged)
            failed |= not ok
            print(f"{name:32s} {sum(headers) / 2**20:10.2f} {size / 2**30:9.2f} {hub.request_count:8d} "
                  f"{sent / 2**20:9.2f} {sent / sum(headers):11.2f}{'' if ok else '  OVER BUDGET'}")  # fmt: skip
        hub.stop()
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
