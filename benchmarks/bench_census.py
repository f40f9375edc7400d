"""Time ``hfge census``: the 320-model catalog offline, and analytic rows for generated repos read through the
loopback Hub, each against a sequential run (one worker).

Run from the repository root (no network, no GPU):

    PYTHONPATH=src .venv/bin/python benchmarks/bench_census.py [--repos 1000] [--workers 8] [--out FILE]

The Hub part generates ``--repos`` Llama-shaped repos (config.json + a header-only model.safetensors, 0.1 B to
70 B parameters, a pipeline tag, downloads and a creation date in ``_repo.json``), serves them with
``tests/hub_server.py`` in its own process, and runs ``hfge census --models hub:text-generation:N`` (the listing,
then config.json and the headers of every repo) with a cold Hugging Face cache each time, in a child process.
Goals: the catalog under 30 s; 1,000 repos under 2 min on 2 cores. Each run also reports its CPU seconds (the
census process and its pool, not the stand-in) and the load average, since wall time on a shared machine
measures the neighbours too.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
#: (hidden, intermediate, layers, heads, kv heads, vocab): Llama-family shapes from 0.1 B to 70 B.
SHAPES = ((768, 2048, 12, 12, 12, 32000), (2048, 5632, 22, 32, 4, 32000), (3072, 8192, 28, 24, 8, 128256),
          (4096, 11008, 32, 32, 32, 32000), (4096, 14336, 32, 32, 8, 128256), (5120, 13824, 40, 40, 40, 32000),
          (8192, 28672, 80, 64, 8, 128256))  # fmt: skip


def _header(hidden: int, inter: int, layers: int, heads: int, kv: int, vocab: int) -> bytes:
    """A header-only bf16 safetensors file of a Llama model of these dimensions (no tensor data)."""
    head_dim = hidden // heads
    shapes = [("model.embed_tokens.weight", [vocab, hidden])]
    for i in range(layers):
        p = f"model.layers.{i}."
        shapes += [(p + "self_attn.q_proj.weight", [hidden, hidden]), (p + "self_attn.k_proj.weight", [kv * head_dim, hidden]),
                   (p + "self_attn.v_proj.weight", [kv * head_dim, hidden]), (p + "self_attn.o_proj.weight", [hidden, hidden]),
                   (p + "mlp.gate_proj.weight", [inter, hidden]), (p + "mlp.up_proj.weight", [inter, hidden]),
                   (p + "mlp.down_proj.weight", [hidden, inter]), (p + "input_layernorm.weight", [hidden]),
                   (p + "post_attention_layernorm.weight", [hidden])]  # fmt: skip
    shapes += [("model.norm.weight", [hidden]), ("lm_head.weight", [vocab, hidden])]
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, shape in shapes:
        size = 2
        for d in shape:
            size *= d
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    body = json.dumps(header, separators=(",", ":")).encode()
    body += b" " * (-len(body) % 8)
    return struct.pack("<Q", len(body)) + body


def generate(root: Path, count: int, seed: int = 0) -> None:
    """``count`` repos ``bench/model-NNNN`` under ``root``."""
    rng = random.Random(seed)
    headers = {shape: _header(*shape) for shape in SHAPES}
    for n in range(count):
        hidden, inter, layers, heads, kv, vocab = shape = SHAPES[n % len(SHAPES)]
        repo = root / "bench" / f"model-{n:04d}"
        repo.mkdir(parents=True, exist_ok=True)
        config = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": hidden,
                  "intermediate_size": inter, "num_hidden_layers": layers, "num_attention_heads": heads,
                  "num_key_value_heads": kv, "vocab_size": vocab, "max_position_embeddings": 8192,
                  "tie_word_embeddings": False, "torch_dtype": "bfloat16", "rms_norm_eps": 1e-5}  # fmt: skip
        (repo / "config.json").write_text(json.dumps(config))
        (repo / "model.safetensors").write_bytes(headers[shape])
        year = 2022 + n % 4
        (repo / "_repo.json").write_text(json.dumps({
            "pipeline_tag": "text-generation", "downloads": rng.randrange(10**6), "likes": rng.randrange(10**4),
            "createdAt": f"{year}-{1 + n % 12:02d}-{1 + n % 28:02d}T00:00:00.000Z"}))  # fmt: skip


def _child(args: argparse.Namespace) -> None:
    """One timed census in this process (its own HF_HOME, so the Hugging Face cache is cold)."""
    from hf_gpu_estimator.census import run_census
    from hf_gpu_estimator.sources.census import model_refs

    start = time.perf_counter()
    refs = model_refs(args.models) if args.models != "catalog" else model_refs("catalog")
    census = run_census(refs, models=args.models, offline=args.models == "catalog", workers=args.workers,
                        processes=args.processes, progress=False)
    seconds = time.perf_counter() - start
    refused = sum(r.refused for r in census.rows)
    import resource

    # CPU of this process and its finished pool processes: the work itself, whatever else the machine runs.
    cpu = sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
              for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
    print(json.dumps({"models": len(census.model_ids), "rows": len(census.rows), "refused": refused,
                      "seconds": round(seconds, 2), "cpu_seconds": round(cpu, 2), "workers": args.workers,
                      "processes": args.processes, "load_average_1min": round(os.getloadavg()[0], 1)}))


def _run_child(models: str, workers: int, processes: int, env: dict[str, str]) -> dict[str, object]:
    with tempfile.TemporaryDirectory() as home:
        out = subprocess.run([sys.executable, __file__, "--child", "--models", models, "--workers", str(workers),
                              "--processes", str(processes)],
                             env={**env, "HF_HOME": home}, capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repos", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=8, help="threads per process (default 8)")
    parser.add_argument("--processes", type=int, default=2, help="processes (default 2: the goal's 2 cores)")
    parser.add_argument("--out", type=Path, help="append the results as one JSON line")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--models", default="catalog", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        _child(args)
        return 0
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "HF_HUB_DISABLE_TELEMETRY": "1"}
    results: dict[str, object] = {"cpus": os.cpu_count(), "date": time.strftime("%Y-%m-%d")}
    for processes in (args.processes, 1):
        key = f"catalog_processes_{processes}"
        results[key] = _run_child("catalog", 1, processes, {**env, "HF_HUB_OFFLINE": "1"})
        print(f"catalog, offline, {processes} process(es):", results[key], flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "hub"
        generate(root, args.repos)
        server = subprocess.Popen(
            [sys.executable, "-c", "import sys, threading; sys.path.insert(0, 'tests'); import hub_server; "
             f"h = hub_server.start(root=__import__('pathlib').Path({str(root)!r})); print(h.endpoint, flush=True); "
             "threading.Event().wait()"], cwd=ROOT, stdout=subprocess.PIPE, text=True)  # fmt: skip
        try:
            endpoint = server.stdout.readline().strip()  # type: ignore[union-attr]
            hub_env = {**env, "HF_ENDPOINT": endpoint}
            models = f"hub:text-generation:{args.repos}"
            for workers, processes in ((args.workers, args.processes), (1, 1)):
                key = f"hub_{args.repos}_workers_{workers}_processes_{processes}"
                results[key] = _run_child(models, workers, processes, hub_env)
                print(f"{args.repos} Hub repos, {workers} thread(s) x {processes} process(es):", results[key], flush=True)
        finally:
            server.terminate()
            server.wait()
    concurrent = results[f"hub_{args.repos}_workers_{args.workers}_processes_{args.processes}"]["seconds"]  # type: ignore[index]
    sequential = results[f"hub_{args.repos}_workers_1_processes_1"]["seconds"]  # type: ignore[index]
    results["hub_speedup"] = round(sequential / concurrent, 2)
    print(f"Hub: {args.workers} threads x {args.processes} processes {concurrent} s vs sequential {sequential} s: "
          f"x{results['hub_speedup']}")
    if args.out:
        with args.out.open("a", encoding="utf-8") as f:
            f.write(json.dumps(results) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
