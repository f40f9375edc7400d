"""End to end: a tiny Llama trained with accelerate, checked by ``preflight`` before ``accelerator.prepare``.

Runs on CPU in seconds (CI runs it):

    python integrations/accelerate/train_tiny_llama.py --device-memory-bytes 300000000
    python integrations/accelerate/train_tiny_llama.py --gpu RTX-4090 --on-exceed raise
    accelerate launch --num_processes 2 --cpu integrations/accelerate/train_tiny_llama.py --device-memory-bytes 300000000
"""

from __future__ import annotations

import argparse
import logging

import torch
from accelerate import Accelerator
from torch.utils.data import DataLoader, Dataset
from transformers import LlamaConfig, LlamaForCausalLM

from hf_gpu_estimator.integrations.accelerate import preflight

TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 256}


class RandomTokens(Dataset):
    def __init__(self, n: int = 64, seq_len: int = 64):
        self.n, self.seq_len = n, seq_len

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, TINY_LLAMA["vocab_size"], (self.seq_len,), generator=g)}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu")
    parser.add_argument("--device-memory-bytes", type=int)
    parser.add_argument("--on-exceed", default="warn", choices=("warn", "raise"))
    parser.add_argument("--mixed-precision", default="no")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    accelerator = Accelerator(mixed_precision=args.mixed_precision, gradient_accumulation_steps=1)
    model = LlamaForCausalLM(LlamaConfig(**TINY_LLAMA))
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    loader = DataLoader(RandomTokens(seq_len=args.seq_len), batch_size=args.batch_size)

    # Before prepare: the model is whole and nothing has run yet.
    preflight(accelerator, model, optimizer, batch_size=args.batch_size, seq_len=args.seq_len,
              gpu=args.gpu, device_memory_bytes=args.device_memory_bytes, on_exceed=args.on_exceed)

    model, optimizer, loader = accelerator.prepare(model, optimizer, loader)
    steps = 0
    model.train()
    for batch in loader:
        with accelerator.accumulate(model):
            loss = model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss
            accelerator.backward(loss)
            optimizer.step()
            optimizer.zero_grad()
        steps += 1
        if steps >= args.max_steps:
            break
    accelerator.print(f"optimizer steps: {steps}")
    return steps


if __name__ == "__main__":
    main()
