"""Benchmark the inspector: requests and bytes for a 30-shard repo, and cold-start time.

Run from the repo root:

    .venv/bin/python benchmarks/bench_inspect.py [--runs 5]

(a) Through the loopback Hub stand-in (tests/hub_server.py), inspect ``hfge-test/sharded-30``
    (30 shards + index) on a cold cache and count what the server sent:
    - default branch (the Hub's batched ``safetensors-metadata`` endpoint): requests must be
      <= shards + 3 and bytes <= 1.01 x (headers + config + index), i.e. no tensor data;
    - pinned commit (range reads: 8-byte length, then exactly the header, per shard): bytes
      must be within 1 % of headers + config + index; requests are 2 per shard + 3.
    huggingface_hub's once-a-day agent-registry fetch (/api/agent-harnesses) is listed apart.
(b) Cold start, in fresh processes, medians of ``--runs``: ``hfge inspect`` on a cached model,
    ``python -c "import torch"``, and building the model on the meta device as
    ``accelerate estimate-memory`` does (transformers AutoConfig + init_empty_weights +
    AutoModelForCausalLM.from_config). Ratios are printed; all come from the same run.

Exits 1 when a budget in (a) is violated.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

import hub_server  # noqa: E402

REPO = "hfge-test/sharded-30"
REPO_DIR = hub_server.DATA / REPO


def expected_bytes() -> tuple[int, int, int, int]:
    shards = sorted(REPO_DIR.glob("model-*.safetensors"))
    headers = sum(p.stat().st_size for p in shards)  # fixtures hold exactly length prefix + header
    config = (REPO_DIR / "config.json").stat().st_size
    index = (REPO_DIR / "model.safetensors.index.json").stat().st_size
    return len(shards), headers, config, index


def measure_requests(hub: hub_server.HubStandIn, *, revision: str | None) -> tuple[int, int, int, int]:
    from hf_gpu_estimator.sources import inspect_model

    home = tempfile.mkdtemp(prefix="hfge-bench-")
    try:
        _point_hub_at(hub.endpoint, home)
        hub.reset()
        inspect_model(REPO, revision=revision)
        ours = [r for r in hub.requests if "/api/agent-harnesses" not in r.path]
        extra = [r for r in hub.requests if "/api/agent-harnesses" in r.path]
        return len(ours), sum(r.body_bytes for r in ours), len(extra), sum(r.body_bytes for r in extra)
    finally:
        shutil.rmtree(home, ignore_errors=True)


def _point_hub_at(endpoint: str, home: str) -> None:
    from huggingface_hub import constants

    os.environ.update(HF_ENDPOINT=endpoint, HF_HOME=home)
    os.environ.pop("HF_TOKEN", None)
    constants.ENDPOINT = endpoint
    constants.HUGGINGFACE_CO_URL_TEMPLATE = endpoint + "/{repo_id}/resolve/{revision}/{filename}"
    constants.HF_HOME, constants.HF_HUB_CACHE = home, os.path.join(home, "hub")


def timed(cmd: list[str], env: dict[str, str], runs: int) -> float:
    samples = []
    for _ in range(runs):
        start = time.perf_counter()
        subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        samples.append(time.perf_counter() - start)
    return statistics.median(samples)


def cold_start(hub: hub_server.HubStandIn, runs: int) -> None:
    home = tempfile.mkdtemp(prefix="hfge-bench-")
    env = {**os.environ, "HF_ENDPOINT": hub.endpoint, "HF_HOME": home, "HF_HUB_DISABLE_TELEMETRY": "1"}
    env.pop("HF_TOKEN", None)
    py = sys.executable
    warm = [py, "-c", f"from hf_gpu_estimator.sources import inspect_model; inspect_model({REPO!r})"]
    subprocess.run(warm, env=env, check=True)  # fills the hub cache and the header cache
    try:
        import hf_gpu_estimator.cli  # noqa: F401

        hfge = [py, "-m", "hf_gpu_estimator", "inspect", REPO]
        label = "hfge inspect (cached)"
        subprocess.run(hfge, env=env, check=True, stdout=subprocess.DEVNULL)
    except (ImportError, subprocess.CalledProcessError):
        hfge, label = warm, "inspect_model (cached; CLI unavailable)"
    meta = [py, "-c", (
        "from accelerate import init_empty_weights\n"
        "from transformers import AutoConfig, AutoModelForCausalLM\n"
        f"cfg = AutoConfig.from_pretrained({str(REPO_DIR)!r})\n"
        "with init_empty_weights():\n    AutoModelForCausalLM.from_config(cfg)\n")]  # fmt: skip
    t_hfge = timed(hfge, env, runs)
    t_torch = timed([py, "-c", "import torch"], env, runs)
    t_meta = timed(meta, env, runs)
    print(f"\n(b) cold start, median of {runs} fresh processes")
    print(f"  {label:<42} {t_hfge * 1e3:8.0f} ms")
    torch_label = 'python -c "import torch"'
    print(f"  {torch_label:<42} {t_torch * 1e3:8.0f} ms   hfge/torch = {t_hfge / t_torch:.2f}")
    print(f"  {'meta-device model (accelerate-style)':<42} {t_meta * 1e3:8.0f} ms   hfge/meta  = {t_hfge / t_meta:.2f}")
    shutil.rmtree(home, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    hub = hub_server.start()
    ok = True
    try:
        shards, headers, config, index = expected_bytes()
        floor = headers + config + index
        print(f"(a) {REPO}: {shards} shards; headers {headers:,} B + config {config:,} B + index {index:,} B = {floor:,} B")
        for label, revision in (("default branch (batched metadata)", None),
                                ("pinned commit (range reads)", hub_server.commit_of(REPO))):  # fmt: skip
            n, sent, extra_n, extra_b = measure_requests(hub, revision=revision)
            print(f"  {label:<36} requests {n:3d}   bytes {sent:8,}  ({(sent - floor) / floor:+.2%} vs floor)"
                  f"   [+{extra_n} agent-registry request(s), {extra_b} B]")  # fmt: skip
            if revision is None:
                good = n <= shards + 3 and sent <= floor * 1.01
                budget = f"requests <= {shards + 3}, bytes <= {floor * 1.01:,.0f}"
            else:
                good = n <= 2 * shards + 3 and abs(sent - floor) <= floor * 0.01
                budget = f"requests <= {2 * shards + 3}, bytes within 1% of {floor:,}"
            print(f"  {'':<36} budget: {budget} -> {'OK' if good else 'VIOLATED'}")
            ok &= good
        cold_start(hub, args.runs)
    finally:
        hub.stop()
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
