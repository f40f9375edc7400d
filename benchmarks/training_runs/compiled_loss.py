"""What torchtune's compiled loss keeps and allocates: the trace behind memory/recipe.py's compiled loss terms.

    .venv/bin/python benchmarks/training_runs/compiled_loss.py     # about a minute on two CPU cores

torchtune v0.5.0 with ``compile: True`` compiles each decoder layer and, on its own, the loss
(``torchtune/training/_compile.py``: ``compile_loss``); the output head stays eager. For
``CEWithChunkedOutputLoss`` only ``compute_cross_entropy`` is compiled: one chunk's 16-bit logits upcast
with ``.float()`` and ``F.cross_entropy(..., reduction="sum")``; any other loss is compiled whole, on the
fp32 logits of ``TransformerDecoder.forward`` (``self.output(h).float()``). Both are rebuilt here at a
small size and compiled with inductor on the CPU; the printout lists, for each generated graph, the
tensors the forward returns for backward and every buffer a graph allocates, with the vocabulary-wide
ones marked. Traced with torch 2.13 (CPU inductor): the forward saves its input and two fp32 values
per token (row max, log-sum-exp) and allocates nothing vocabulary-wide; the backward allocates one
gradient of the input's shape and dtype. AOTAutograd's partitioner, which picks what is saved, is the
same on every device; the published runs used CUDA inductor (torch 2.5), whose kernels are not traced
here.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch._inductor.utils import run_and_get_code

TOKENS, VOCAB, HIDDEN, CHUNKS = 1024, 4096, 64, 8
BUFFER = re.compile(r"(buf\d+) = empty_strided_\w+\(\(([^)]*)\), \([^)]*\), (torch\.\w+)\)")
INPUTS = re.compile(r"^ +(.*) = args$", re.M)
RETURNS = re.compile(r"return \((.*)\)")


def chunk_cross_entropy(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """One chunk of torchtune's chunked loss: upcast, then summed cross-entropy (ignore index -100)."""
    return F.cross_entropy(logits.float(), labels, ignore_index=-100, reduction="sum")


def report(title: str, codes: list[str]) -> None:
    print(f"## {title}")
    for i, code in enumerate(codes):
        body = code[code.index("def call(self, args)"):]
        body = body[:body.index("\nrunner = ")] if "\nrunner = " in body else body
        graph = "forward" if i == 0 else "backward"
        print(f"{graph}: inputs {INPUTS.search(body).group(1)}")
        for name, shape, dtype in BUFFER.findall(body):
            dims = [int(d) for d in shape.replace(" ", "").split(",") if d]
            wide = " <- vocabulary-wide" if VOCAB in dims else ""
            print(f"  allocates {name} {tuple(dims)} {dtype}{wide}")
        print(f"  returns {RETURNS.search(body).group(1)}")


def main() -> None:
    torch.manual_seed(0)
    h = torch.randn(TOKENS, HIDDEN, dtype=torch.bfloat16)
    head = torch.randn(VOCAB, HIDDEN, dtype=torch.bfloat16, requires_grad=True)
    labels = torch.randint(0, VOCAB, (TOKENS,))

    compiled_chunk = torch.compile(chunk_cross_entropy, backend="inductor")

    def chunked_step() -> None:
        chunks = [c @ head.t() for c in h.chunk(CHUNKS)]  # 16-bit logits per chunk, as the head returns them
        loss = sum(compiled_chunk(c, t) for c, t in zip(chunks, labels.chunk(CHUNKS), strict=True))
        del chunks
        loss.backward()

    _, codes = run_and_get_code(chunked_step)
    report(f"chunked: {CHUNKS} chunks of {TOKENS // CHUNKS} tokens, bf16 logits, vocab {VOCAB}", codes)

    compiled_ce = torch.compile(torch.nn.CrossEntropyLoss(), backend="inductor")

    def whole_step() -> None:
        logits = (h @ head.t()).float()  # the eager head's upcast
        loss = compiled_ce(logits, labels)
        del logits
        loss.backward()

    _, codes = run_and_get_code(whole_step)
    report(f"whole loss: {TOKENS} tokens, fp32 logits, vocab {VOCAB}", codes)
    print(f"torch {torch.__version__}")


if __name__ == "__main__":
    main()
