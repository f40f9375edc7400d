"""Fine-tune a 7B model on a 24 GB card: full training does not fit, QLoRA with checkpointing does.

Shows the suggestions the CLI prints (each re-estimated), then the largest batch that fits with QLoRA.
Run: python examples/qlora_7b_on_24gb.py   (offline; add --plot out.png for the chart, needs [plot])
"""

import sys

from hf_gpu_estimator import estimate
from hf_gpu_estimator.report import gib
from hf_gpu_estimator.suggest import suggest

GPU = "RTX-4090"
workload = dict(task="training", batch_size=4, seq_len=2048)

full = estimate("mistralai/Mistral-7B-v0.1", gpu=GPU, **workload)
print(f"full fine-tuning: {gib(full.memory.device_total_bytes)} per device; fits {GPU}: {full.fits()}")
for tip in suggest(full):
    print(f"  try {tip.title:<35} {tip.flags:<45} -> {gib(tip.device_total_bytes)}")

qlora = estimate("mistralai/Mistral-7B-v0.1", gpu=GPU, method="qlora", gradient_checkpointing=True, **workload)
print(f"\nQLoRA + checkpointing: {gib(qlora.memory.device_total_bytes)}; fits {GPU}: {qlora.fits()}; "
      f"largest batch: {qlora.max_batch_size()}; trainable parameters: {qlora.trainable_parameters:,}")
if not qlora.fits():
    raise SystemExit("QLoRA with gradient checkpointing should fit a 24 GB card")

if "--plot" in sys.argv:
    print("chart:", qlora.plot(sys.argv[sys.argv.index("--plot") + 1], gpus=[GPU]))
