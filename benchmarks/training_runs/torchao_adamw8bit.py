"""What torchao's 8-bit AdamW allocates while it steps one parameter: the trace behind ``adamw-8bit-torchao``.

    PYTHONPATH=<a folder holding torchao 0.7.0> .venv/bin/python benchmarks/training_runs/torchao_adamw8bit.py

torchao 0.7.0 ``prototype.low_bit_optim.AdamW8bit`` (the 8-bit AdamW of torchtune's memory-optimization docs
at v0.5.0) keeps both states as uint8 codes with an fp32 scale per 256 elements and steps each parameter
with ``torch.compile(single_param_adam, fullgraph=True)``. This steps one bf16 parameter twice (the first
step creates the states) and prints the buffers the compiled step allocates. Traced with torch 2.13 (CPU
inductor): two fp32 buffers of the parameter's size, the dequantized ``exp_avg`` and ``exp_avg_sq``, that
is 8 bytes per element of the parameter being stepped. The published runs used CUDA inductor (torch 2.5),
whose kernels are not traced here. torchao is not a dependency of this project: install it elsewhere.
"""

from __future__ import annotations

import re

import torch
from torch._inductor.utils import run_and_get_code

ROWS, COLS = 1024, 512
BUFFER = re.compile(r"(buf\d+) = empty_strided_\w+\(\(([^)]*)\), \([^)]*\), (torch\.\w+)\)")
ITEMSIZE = {"torch.float32": 4, "torch.bfloat16": 2, "torch.float16": 2, "torch.uint8": 1, "torch.int64": 8}


def main() -> None:
    from torchao.prototype.low_bit_optim import AdamW8bit

    torch.manual_seed(0)
    param = torch.nn.Parameter(torch.randn(ROWS, COLS, dtype=torch.bfloat16))
    optimizer = AdamW8bit([param], lr=1e-4)
    param.grad = torch.randn_like(param)
    optimizer.step()  # creates the 8-bit states
    param.grad = torch.randn_like(param)
    _, codes = run_and_get_code(optimizer.step)
    total = 0
    for code in codes:
        for name, shape, dtype in BUFFER.findall(code):
            numel = 1
            for d in (int(x) for x in shape.replace(" ", "").split(",") if x):
                numel *= d
            total += numel * ITEMSIZE.get(dtype, 0)
            print(f"allocates {name} ({shape}) {dtype}")
    print(f"parameter {ROWS}x{COLS} bf16: the step allocates {total:,} B = {total / param.numel():.3f} B per element")
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
