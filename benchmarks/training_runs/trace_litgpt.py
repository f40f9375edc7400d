"""Trace LitGPT's own model and fine-tuning step on fake tensors with the runtime tracker (no GPU, no weights).

LitGPT is not a dependency: point ``--src`` at a LitGPT source tree of the commit a published table was made
with, e.g. ``git -C litgpt archive 43c44323 litgpt | tar -x -C /tmp/litgpt-43c44323`` (``lit_gpt`` for the 2023
package, with ``--old``). Two modes:

    # bytes per token one decoder block saves for backward (a saved-tensors pack hook, CUDA dropout/SDPA choice)
    python benchmarks/training_runs/trace_litgpt.py layer --src /tmp/litgpt-43c44323 --model tiny-llama-1.1b \\
        --targets qkvpmh --r 32
    # two training steps as ``fit`` runs them (the name ``logits`` rebound only after the next forward)
    python benchmarks/training_runs/trace_litgpt.py step --src /tmp/litgpt-43c44323 --model Llama-2-7b-hf \\
        --batch 2 --seq 512 --method qlora --targets qv --r 32

QLoRA runs a stand-in of bitsandbytes 0.41/0.42 ``MatMul4Bit`` behind Fabric's ``BitsandbytesPrecision``: the
packed uint8 weight and fp32 absmax are the parameters, ``forward`` dequantizes to the fp16 ``QuantState.dtype``
(Lightning quantizes ``weight.to(torch.half)``), casts to the input's dtype, and keeps ``ctx.tensors = (A, B)``
as a plain attribute; ``backward`` dequantizes again. ``--targets`` letters: q k v (the fused qkv parts),
p (attention projection), m (MLP), h (head). LoRA runs torch AdamW; QLoRA's paged optimizer keeps its states
outside torch's allocator and is left out.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from typing import Any


def _args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("mode", choices=("layer", "step"))
    p.add_argument("--src", required=True, help="a LitGPT source tree (holding litgpt/ or, with --old, lit_gpt/)")
    p.add_argument("--old", action="store_true", help="the 2023 lit_gpt package (LoRA config keys r, to_query ...)")
    p.add_argument("--model", required=True, help="a LitGPT config name, e.g. tiny-llama-1.1b, phi-1_5")
    p.add_argument("--batch", type=int, default=1)
    p.add_argument("--seq", type=int, default=512)
    p.add_argument("--method", choices=("lora", "qlora"), default="lora")
    p.add_argument("--targets", default="qv")
    p.add_argument("--r", type=int, default=8)
    p.add_argument("--alpha", type=int, default=16)
    p.add_argument("--dropout", type=float, default=0.05)
    return p.parse_args(argv)


def _config(a: argparse.Namespace) -> Any:
    t = a.targets
    if a.old:
        from lit_gpt.lora import Config

        return Config.from_name(a.model, r=a.r, alpha=a.alpha, dropout=a.dropout, to_query="q" in t,
                                to_key="k" in t, to_value="v" in t, to_projection="p" in t, to_mlp="m" in t,
                                to_head="h" in t)
    from litgpt.lora import Config

    return Config.from_name(a.model, lora_r=a.r, lora_alpha=a.alpha, lora_dropout=a.dropout, lora_query="q" in t,
                            lora_key="k" in t, lora_value="v" in t, lora_projection="p" in t, lora_mlp="m" in t,
                            lora_head="h" in t)


def _quantize(model: Any) -> None:
    """Every ``nn.Linear`` (LoRA bases and the head) becomes a bitsandbytes-0.42 4-bit layer stand-in."""
    import torch

    class MatMul4Bit(torch.autograd.Function):
        @staticmethod
        def forward(ctx: Any, A: Any, B: Any, shape: tuple[int, int]) -> Any:
            weight = torch.empty(shape, dtype=torch.float16, device=A.device)  # dequantize_4bit -> fp16
            out = torch.nn.functional.linear(A, weight.to(A.dtype))
            ctx.shape, ctx.tensors = shape, (A, B)  # an attribute, not save_for_backward
            return out

        @staticmethod
        def backward(ctx: Any, grad: Any) -> Any:
            weight = torch.empty(ctx.shape, dtype=torch.float16, device=grad.device)
            return torch.matmul(grad, weight.to(grad.dtype)), None, None

    for module in list(model.modules()):
        if type(module) is torch.nn.Linear:
            out_f, in_f = module.weight.shape
            n = out_f * in_f
            module.weight = torch.nn.Parameter(torch.empty(((n + 1) // 2, 1), dtype=torch.uint8),
                                               requires_grad=False)
            module.register_buffer("absmax", torch.empty(n // 64, dtype=torch.float32))
            module.forward = (lambda m, shape: lambda x: MatMul4Bit.apply(x, m.weight, shape))(module, (out_f, in_f))


def main(argv: list[str] | None = None) -> int:
    a = _args(argv)
    sys.path.insert(0, a.src)
    import torch
    from torch._subclasses.fake_tensor import FakeTensorMode

    from hf_gpu_estimator.runtime.trace.cuda import CudaSemantics
    from hf_gpu_estimator.runtime.trace.tracker import (
        TraceHooks,
        Tracker,
        grad_hooks_on_reachable_tensors,
        round_all_devices,
    )

    if a.old:
        from lit_gpt.lora import GPT, mark_only_lora_as_trainable
    else:
        from litgpt.lora import GPT, mark_only_lora_as_trainable
    cfg = _config(a)
    if a.mode == "layer":
        cfg.n_layer = 2
    torch.set_default_dtype(torch.bfloat16)  # Fabric's bf16-true / BitsandbytesPrecision dtype context
    fake = FakeTensorMode()
    with fake:
        model = GPT(cfg)
        model.max_seq_length = a.seq  # fit(): the rope cache rebuilt for the run's length
        mark_only_lora_as_trainable(model)
        if a.method == "qlora":
            _quantize(model)
    vocab = cfg.padded_vocab_size

    if a.mode == "layer":
        owned = {p.untyped_storage()._cdata for p in [*model.parameters(), *model.buffers()]}
        seen: dict[int, tuple[str, tuple[int, ...], str, int]] = {}
        inside = [False]
        block = model.transformer.h[1]
        block.register_forward_pre_hook(lambda *_: inside.__setitem__(0, True))
        block.register_forward_hook(lambda *_: inside.__setitem__(0, False))

        def pack(x: Any) -> Any:
            storage = x.untyped_storage()
            if inside[0] and storage._cdata not in owned:
                producer = type(x.grad_fn).__name__ if x.grad_fn is not None else "-"
                seen.setdefault(storage._cdata, (producer, tuple(x.shape), str(x.dtype), storage.nbytes()))
            return x

        with fake, CudaSemantics(), torch.autograd.graph.saved_tensors_hooks(pack, lambda x: x):
            model(torch.randint(0, vocab, (1, a.seq)), lm_head_chunk_size=128)
        rows = [{"made_by": n, "shape": s, "dtype": d, "bytes_per_token": b / a.seq} for n, s, d, b in seen.values()]
        print(json.dumps({"bytes_per_token": sum(r["bytes_per_token"] for r in rows), "saved": rows}, indent=1))
        return 0

    tracker, semantics = Tracker("cpu"), CudaSemantics()
    hooks = TraceHooks(tracker)
    trainable = [p for p in model.parameters() if p.requires_grad]
    with contextlib.ExitStack() as stack:
        stack.enter_context(round_all_devices())
        stack.enter_context(grad_hooks_on_reachable_tensors())
        stack.enter_context(fake)
        tracker.track_external(model)
        optimizer = torch.optim.AdamW(trainable, lr=1e-4) if a.method == "lora" else None
        if optimizer is not None:
            tracker.track_external(optimizer)
        stack.enter_context(semantics)
        stack.enter_context(tracker)
        logits = loss = None  # fit(): both names stay bound until the next step rebinds them
        for step in range(2):
            ids = torch.randint(0, vocab, (a.batch, a.seq))
            targets = torch.randint(0, vocab, (a.batch, a.seq))
            with hooks.phase(f"forward {step}"):
                logits = model(ids, lm_head_chunk_size=128)
                logits[-1] = logits[-1][..., :-1, :]
                shifted = targets[..., 1:]
                # litgpt.utils.chunked_cross_entropy (its max(1, n) division needs a value: divided by n here)
                chunks = [c.reshape(-1, c.size(-1)) for c in logits]
                losses = [torch.nn.functional.cross_entropy(c, t.reshape(-1), ignore_index=-100, reduction="none")
                          for c, t in zip(chunks, shifted.split(logits[0].size(1), dim=1))]
                loss = torch.cat(losses).sum() / (shifted != -100).sum()
                del chunks, losses
            with hooks.phase(f"backward {step}"):
                loss.backward()
            if optimizer is not None:
                with hooks.phase(f"step {step}"):
                    optimizer.step()
                    optimizer.zero_grad()
            else:
                for p in trainable:
                    p.grad = None
    assert hooks.best is not None
    peak, phase, module, breakdown = hooks.best
    print(json.dumps({"peak_bytes": peak, "phase_at_peak": phase, "module_at_peak": module,
                      "breakdown": breakdown, "phase_peaks": hooks.phase_peaks}, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
