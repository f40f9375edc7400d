"""End to end: a tiny Llama trained by Lightning's Trainer with the MemoryPreflight callback.

Runs on CPU in seconds (CI runs it); on a GPU machine it also logs predicted vs measured peak:

    python integrations/lightning/train_tiny_llama.py                        # check against the local GPU (CPU: skipped)
    python integrations/lightning/train_tiny_llama.py --gpu RTX-4090
    python integrations/lightning/train_tiny_llama.py --device-memory-bytes 300000000 --on-exceed raise
    python integrations/lightning/train_tiny_llama.py --devices 2 --strategy ddp --device-memory-bytes 300000000
"""

from __future__ import annotations

import argparse
import logging

import lightning as L
import torch
from torch.utils.data import DataLoader, Dataset
from transformers import LlamaConfig, LlamaForCausalLM

from hf_gpu_estimator.integrations.lightning import MemoryPreflight

TINY_LLAMA = {"hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "vocab_size": 256, "max_position_embeddings": 256}


class RandomTokens(Dataset):
    """Map-style dataset of random token ids: the callback reads the sequence length from item 0."""

    def __init__(self, n: int = 64, seq_len: int = 64):
        self.n, self.seq_len = n, seq_len

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(i)
        return {"input_ids": torch.randint(0, TINY_LLAMA["vocab_size"], (self.seq_len,), generator=g)}


class TinyLlama(L.LightningModule):
    def __init__(self, gradient_checkpointing: bool = False, **config: int):
        super().__init__()
        self.model = LlamaForCausalLM(LlamaConfig(**{**TINY_LLAMA, **config}))
        if gradient_checkpointing:
            # transformers 5 renamed gradient_checkpointing_enable (kept as a deprecated alias)
            getattr(self.model, "activation_checkpointing_enable", self.model.gradient_checkpointing_enable)()
        self.optimizer_steps = 0

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        return self.model(input_ids=batch["input_ids"], labels=batch["input_ids"]).loss

    def optimizer_step(self, *args, **kwargs):
        self.optimizer_steps += 1
        return super().optimizer_step(*args, **kwargs)

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW(self.parameters(), lr=1e-3)


def main(argv: list[str] | None = None) -> TinyLlama:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--gpu", help="GPU catalog name to check against")
    parser.add_argument("--device-memory-bytes", type=int)
    parser.add_argument("--on-exceed", default="warn", choices=("warn", "raise"))
    parser.add_argument("--devices", type=int, default=1)
    parser.add_argument("--strategy", default="auto")
    parser.add_argument("--accelerator", default="auto")
    parser.add_argument("--precision", default="32-true")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--seq-len", type=int, default=64)
    parser.add_argument("--max-steps", type=int, default=3)
    parser.add_argument("--hidden-size", type=int, default=TINY_LLAMA["hidden_size"], help="scale the model up on a GPU")
    parser.add_argument("--num-layers", type=int, default=TINY_LLAMA["num_hidden_layers"])
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    model = TinyLlama(hidden_size=args.hidden_size, intermediate_size=2 * args.hidden_size,
                      num_hidden_layers=args.num_layers)
    trainer = L.Trainer(
        accelerator=args.accelerator, devices=args.devices, strategy=args.strategy, precision=args.precision,
        max_steps=args.max_steps, logger=False, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False,
        callbacks=[MemoryPreflight(gpu=args.gpu, device_memory_bytes=args.device_memory_bytes,
                                   on_exceed=args.on_exceed)],
    )
    trainer.fit(model, DataLoader(RandomTokens(seq_len=args.seq_len), batch_size=args.batch_size))
    if trainer.is_global_zero:
        print(f"optimizer steps: {model.optimizer_steps}")
    return model


if __name__ == "__main__":
    main()
