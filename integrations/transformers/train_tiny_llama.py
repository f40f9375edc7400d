"""End to end: ``check_fits`` before loading, then a tiny Llama trained by the transformers Trainer
with ``MemoryPreflightCallback``. Runs on CPU in seconds (CI runs it):

    python integrations/transformers/train_tiny_llama.py --device-memory-bytes 300000000
    python integrations/transformers/train_tiny_llama.py --gpu RTX-4090 --on-exceed raise
"""

from __future__ import annotations

import argparse
import logging
import tempfile

import torch
from torch.utils.data import Dataset
from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

from hf_gpu_estimator.integrations.transformers import MemoryPreflightCallback, check_fits

TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 256}


class RandomTokens(Dataset):
    def __init__(self, n: int = 64, seq_len: int = 64):
        self.n, self.seq_len = n, seq_len

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        ids = torch.randint(0, TINY_LLAMA["vocab_size"], (self.seq_len,), generator=g)
        return {"input_ids": ids, "labels": ids.clone()}


class StepCounter(torch.optim.AdamW):
    steps = 0

    def step(self, *args, **kwargs):
        type(self).steps += 1
        return super().step(*args, **kwargs)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu")
    parser.add_argument("--device-memory-bytes", type=int)
    parser.add_argument("--on-exceed", default="warn", choices=("warn", "raise"))
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=3)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    with tempfile.TemporaryDirectory() as folder:
        LlamaForCausalLM(LlamaConfig(**TINY_LLAMA)).save_pretrained(folder)
        # Before from_pretrained: where would each layer land?
        plan = check_fits(folder, device_map="auto", dtype="float32", gpu=args.gpu,
                          device_memory_bytes=args.device_memory_bytes)
        print(plan)
        model = LlamaForCausalLM.from_pretrained(folder, dtype=torch.float32)
        optimizer = StepCounter(model.parameters(), lr=1e-3)
        training_args = TrainingArguments(output_dir=folder, per_device_train_batch_size=args.batch_size,
                                          max_steps=args.max_steps, use_cpu=True, report_to=[], save_strategy="no",
                                          logging_strategy="no", disable_tqdm=True)
        trainer = Trainer(model=model, args=training_args, train_dataset=RandomTokens(seq_len=args.seq_len),
                          optimizers=(optimizer, None),
                          callbacks=[MemoryPreflightCallback(gpu=args.gpu, device_memory_bytes=args.device_memory_bytes,
                                                             on_exceed=args.on_exceed)])
        trainer.train()
    print(f"optimizer steps: {StepCounter.steps}")
    return StepCounter.steps


if __name__ == "__main__":
    main()
