"""What one torchtune decoder layer saves for backward, eager and compiled: the trace behind ``own_layer_saved``.

    PYTHONPATH=<a folder holding torchtune 0.5.0 and torchao 0.7.0> \\
        .venv/bin/python benchmarks/training_runs/torchtune_layer.py [HIDDEN HEADS KV_HEADS INTERMEDIATE SEQ]

Builds torchtune v0.5.0's ``llama3_2`` decoder (one layer, bf16, every weight trainable as in a full finetune),
runs the layer on packed positions (``input_pos``, as a packed dataset gives) and prints the bytes per token it
saves for backward, tensor by tensor: eager through ``saved_tensors_hooks`` (one count per storage, weights
left out), and compiled per layer as ``training.compile_model`` does (``layer.compile()``, inductor) from the
inputs of the generated backward graph (weights and incoming gradients left out). Defaults: Llama 3.2 3B's
layer (3072, 24 heads, 8 kv heads, 8192) at two sequences of 100 tokens. Traced with torch 2.13 on the CPU,
where attention runs the CPU flash kernel; the published runs used CUDA (torch 2.5, flex attention for packed
batches), whose kernels are not traced here. torchtune imports the Hugging Face ``datasets`` package at import
time; where it is missing an empty stand-in module is installed (no dataset is used).
"""

from __future__ import annotations

import re
import sys
import types

import torch
from torch._inductor.utils import run_and_get_code

ARGS = re.compile(r"(\w+) = rand_strided\(\(([^)]*)\), \([^)]*\), device='\w+', dtype=(torch\.\w+)\)")


def _import_builder():
    try:
        import datasets  # noqa: F401
    except ImportError:
        stand_in = types.ModuleType("datasets")
        stand_in.load_dataset = None
        stand_in.Dataset = object
        sys.modules["datasets"] = stand_in
    from torchtune.models.llama3_2._component_builders import llama3_2

    return llama3_2


def eager_saved(layer: torch.nn.Module, x: torch.Tensor, pos: torch.Tensor) -> dict[int, tuple[int, tuple, torch.dtype]]:
    saved: dict[int, tuple[int, tuple, torch.dtype]] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        storage = t.untyped_storage()
        saved[storage.data_ptr()] = (storage.nbytes(), tuple(t.shape), t.dtype)
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = layer(x, input_pos=pos)
    weights = {t.untyped_storage().data_ptr() for t in [*layer.parameters(), *layer.buffers()]}
    out.sum().backward()
    return {k: v for k, v in saved.items() if k not in weights}


def compiled_saved(layer: torch.nn.Module, x: torch.Tensor, pos: torch.Tensor) -> dict[str, tuple[int, tuple, str]]:
    layer.compile(backend="inductor")

    def step() -> None:
        layer(x, input_pos=pos).sum().backward()

    _, codes = run_and_get_code(step)
    backward = next(code for code in codes if "tangents_1" in code)
    weight_shapes = {tuple(p.shape) for p in layer.parameters()}
    saved: dict[str, tuple[int, tuple, str]] = {}
    for name, shape, dtype in ARGS.findall(backward[backward.index("def get_args"):]):
        dims = tuple(int(d) for d in shape.replace(" ", "").split(",") if d)
        if name.startswith("tangents") or dims in weight_shapes:
            continue
        numel = 1
        for d in dims:
            numel *= d
        saved[name] = (numel * getattr(torch, dtype.split(".")[1]).itemsize, dims, dtype)
    return saved


def main(argv: list[str]) -> None:
    hidden, heads, kv_heads, intermediate, seq = (int(a) for a in argv) if argv else (3072, 24, 8, 8192, 100)
    batch = 2
    tokens = batch * seq
    llama3_2 = _import_builder()
    torch.manual_seed(0)
    model = llama3_2(vocab_size=1000, num_layers=1, num_heads=heads, num_kv_heads=kv_heads, embed_dim=hidden,
                     max_seq_len=4096, intermediate_dim=intermediate).to(torch.bfloat16)
    layer = model.layers[0]
    pos = torch.arange(seq).repeat(batch, 1)
    x = torch.randn(batch, seq, hidden, dtype=torch.bfloat16)
    for label, saved in (("eager", eager_saved(layer, x.clone().requires_grad_(True), pos)),
                         ("compiled", compiled_saved(layer, x.clone().requires_grad_(True), pos))):
        print(f"{label}: {sum(v[0] for v in saved.values()) / tokens:,.1f} B/token")
        for nbytes, shape, dtype in sorted(saved.values(), key=lambda v: -v[0]):
            print(f"  {nbytes / tokens:10.1f} B/token {shape} {dtype}")
    print(f"hidden {hidden}, heads {heads}, kv heads {kv_heads}, intermediate {intermediate}, {batch} x {seq} tokens, "
          f"torch {torch.__version__}")


if __name__ == "__main__":
    main(sys.argv[1:])
