"""Serve Llama-3.1-8B: what one H100 holds (vLLM KV cache, speed, $), and the cheapest GPUs for 5 req/s.

Run: python examples/serving_plan_with_cost.py   (offline: catalog model, catalog GPUs and prices)
"""

from hf_gpu_estimator import planner
from hf_gpu_estimator.hardware import get_gpu
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.workload import make_workload

spec = inspect_model("meta-llama/Llama-3.1-8B")
work = make_workload(seq_len=1024, new_tokens=256)

p = planner.plan(spec, work, get_gpu("H100-SXM-80GB"), max_model_len=8192)
print(f"one {p.gpu.name}: vLLM KV cache {p.serving.kv_cache_tokens:,} tokens, "
      f"{p.serving.max_concurrent_sequences} sequences of 8192 tokens at once; "
      f"TPOT {p.speed.tpot_seconds * 1e3:.1f} ms; ${p.hourly_usd:.2f}/hour")

best = planner.cheapest_serving(spec, work, request_rate_per_s=5, input_tokens=1024, output_tokens=256, tpot_ms=50)
print("\ncheapest ways to serve 5 requests/s (1024 in, 256 out, TPOT <= 50 ms):")
for o in best.options[:5]:
    print(f"  {o.num_gpus} x {o.gpu:<16} batch {o.batch_size:>4}  TPOT {o.tpot_seconds * 1e3:5.1f} ms  "
          f"${o.hourly_usd:6.2f}/h  ${o.usd_per_million_output_tokens:.3f} per 1M output tokens")
