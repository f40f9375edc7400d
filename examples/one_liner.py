"""The one-liner: how much memory does Llama-2-7B need to generate 256 tokens from a 1024-token prompt?

Run: python examples/one_liner.py   (works offline: the model is in the bundled catalog)
"""

from hf_gpu_estimator import estimate

est = estimate("meta-llama/Llama-2-7b-hf", batch_size=1, seq_len=1024, new_tokens=256)
print(est)  # the breakdown per component, the peak moment, the totals
print()
for gpu in ("RTX-4090", "A100-80GB", "H100-SXM-80GB"):
    verdict = "fits" if est.fits(gpu) else "does not fit"
    print(f"{gpu:>14}: {verdict}, up to batch {est.max_batch_size(gpu)} at this length")
