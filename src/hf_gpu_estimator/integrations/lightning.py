"""Lightning: ``MemoryPreflight``, a callback that warns (or raises) before the first step if the run will not fit.

Usage::

    from hf_gpu_estimator.integrations.lightning import MemoryPreflight

    trainer = L.Trainer(precision="bf16-mixed", callbacks=[MemoryPreflight(gpu="RTX-4090")])
    trainer.fit(model, train_dataloaders=loader)
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import lightning.pytorch as pl
from lightning.pytorch.callbacks import Callback
from typing_extensions import override

from hf_gpu_estimator.constants import GiB
from hf_gpu_estimator.errors import InvalidArgumentError
from hf_gpu_estimator.integrations._core import (
    DEFAULT_MARGIN,
    ModelFacts,
    PreflightResult,
    deepspeed_options,
    describe_model,
    enforce,
    evaluate,
    fsdp_options,
    optimizer_name,
    peek_dataloader,
    shape_of_batch,
    validate_options,
)

__all__ = ["MemoryPreflight", "workload_from_trainer"]

log = logging.getLogger("hf_gpu_estimator.integrations.lightning")

#: How to apply each suggestion in a Lightning script.
LIGHTNING_HINTS: Mapping[str, str] = {
    "batch_size": "DataLoader(batch_size={batch_size}), Trainer(accumulate_grad_batches={gradient_accumulation_steps})",
    "gradient_checkpointing": "model.gradient_checkpointing_enable() on the transformers model",
    "precision": "Trainer(precision='{precision}')",
    "method": "peft.get_peft_model(model, LoraConfig(...)) (QLoRA: from_pretrained(quantization_config="
              "BitsAndBytesConfig(load_in_4bit=True)) first)",
    "optimizer": "bitsandbytes.optim.AdamW8bit in configure_optimizers",
    "strategy": "Trainer(strategy='fsdp') or Trainer(strategy='deepspeed_stage_3')",
    "offload": "Trainer(strategy='deepspeed_stage_3_offload')",
    "num_gpus": "Trainer(devices=..., num_nodes=...) for {num_gpus} devices, strategy='fsdp'",
}  # fmt: skip


class MemoryPreflight(Callback):
    """Estimate the run's GPU memory before the first step; warn, or raise PreflightError, if it will not fit.

    The estimate is computed once, on global rank zero, in ``on_train_start`` (after the fit loop
    has loaded the train dataloader, before the first batch is fetched); the verdict is broadcast
    so that with ``on_exceed="raise"`` every rank stops together. One line on rank zero: "fits" or
    "skipped" through Lightning's ``rank_zero_info``; "tight", "does not fit" (with the changes that
    would fit) and failures as a warning on the ``hf_gpu_estimator.integrations.lightning`` logger.
    A failing estimate, an unknown ``gpu`` or a ``device_memory_bytes`` below 1 GiB warn and the
    run continues.

    What it reads: the LightningModule's parameters (trainable vs frozen; a peft model's rank and
    target modules; a bitsandbytes 4-bit base), ``trainer.precision``, the strategy (DDP, FSDP
    sharding and CPU offload, DeepSpeed ZeRO stage and offload), ``num_devices * num_nodes``,
    ``accumulate_grad_batches``, gradient checkpointing on the model, the optimizer of
    ``configure_optimizers``, and the batch shape.

    The batch shape comes from, in this order: ``input_shape=(batch_size, seq_len)``;
    ``sample_batch`` (one batch as the dataloader yields it); ``batch_size=``/``seq_len=``; the train
    dataloader's ``batch_size`` and its dataset's first item (map-style datasets only; the
    dataloader is never iterated). Missing values fall back to the other sources.

    On CUDA, after the first optimizer step, the prediction is compared with
    ``torch.cuda.max_memory_allocated()`` and the difference logged (skipped on CPU).

    Args:
        gpu: a GPU catalog name to compare with (e.g. ``"A100-80GB"``).
        device_memory_bytes: the device's memory in bytes (instead of ``gpu``).
            With neither, the CUDA device's total memory; on a machine without CUDA the check is
            skipped with an info message.
        on_exceed: ``"warn"`` (default) or ``"raise"``.
        input_shape: ``(batch_size, seq_len)`` per device.
        sample_batch: one batch as the dataloader yields it.
        batch_size, seq_len: per-device batch size and tokens per sequence.
        margin: share of the device kept free (default 5 %).
        compare_after_first_step: log predicted vs measured peak after the first step on CUDA.

    Attributes:
        result: the :class:`PreflightResult` (on rank zero; other ranks hold the verdict only).
    """

    def __init__(self, *, gpu: Any = None, device_memory_bytes: int | None = None, on_exceed: str = "warn",
                 input_shape: tuple[int, int] | None = None, sample_batch: Any = None, batch_size: int | None = None,
                 seq_len: int | None = None, margin: float = DEFAULT_MARGIN, compare_after_first_step: bool = True):
        validate_options(gpu=gpu, device_memory_bytes=device_memory_bytes, on_exceed=on_exceed, margin=margin)
        if input_shape is not None and (
            not isinstance(input_shape, (tuple, list)) or len(input_shape) != 2
            or not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in input_shape)
        ):
            raise InvalidArgumentError("input_shape", input_shape, "(batch_size, seq_len), two integers >= 1")
        for name, value in (("batch_size", batch_size), ("seq_len", seq_len)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise InvalidArgumentError(name, value, "an integer >= 1")
        self.gpu = gpu
        self.device_memory_bytes = device_memory_bytes
        self.on_exceed = on_exceed
        self.input_shape = tuple(input_shape) if input_shape is not None else None
        self.sample_batch = sample_batch
        self.batch_size = batch_size
        self.seq_len = seq_len
        self.margin = margin
        self.compare_after_first_step = compare_after_first_step
        self.result: PreflightResult | None = None
        self._facts: ModelFacts | None = None
        self._compared = False

    @override
    def setup(self, trainer: pl.Trainer, pl_module: pl.LightningModule, stage: str) -> None:
        if stage != "fit" or not trainer.is_global_zero:
            return
        # Read the model now, before FSDP/DeepSpeed shard it in strategy.setup (the parameters
        # seen later are shards). A model built in configure_model has no parameters yet: read later.
        try:
            if any(True for _ in pl_module.parameters()):
                self._facts = describe_model(pl_module)
        except Exception as e:  # never stop the run: on_train_start retries and reports
            log.debug("reading the model in setup failed: %s", e)

    @override
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        verdict: tuple[str, str, int | None, int | None] | None = None
        if trainer.is_global_zero:
            try:
                self.result = self._evaluate(trainer, pl_module)
            except Exception as e:  # the estimator failing never stops a run
                self.result = PreflightResult(status="failed", error=f"{type(e).__name__}: {e}",
                                              message=f"hf-gpu-estimator: memory preflight failed ({type(e).__name__}: "
                                                      f"{e}); the run continues")
            r = self.result
            verdict = (r.status, r.message, r.required_bytes, r.available_bytes)
        if trainer.world_size > 1:
            verdict = trainer.strategy.broadcast(verdict, src=0)
        if verdict is None:  # rank zero always sets it; nothing to act on otherwise
            return
        status, message, required, available = verdict
        from lightning.pytorch.utilities import rank_zero_info

        enforce(status, message, on_exceed=self.on_exceed, log=log, emit=trainer.is_global_zero,
                required_bytes=required, available_bytes=available, say=rank_zero_info)

    @override
    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._compared or trainer.global_step < 1:
            return
        self._compared = True
        if not self.compare_after_first_step or not trainer.is_global_zero or pl_module.device.type != "cuda":
            return
        est = self.result.estimate if self.result is not None else None
        if est is None:
            return
        import torch

        measured = torch.cuda.max_memory_allocated(pl_module.device)
        # Compare like with like: the first step has no optimizer state before its optimizer.step().
        predicted = est.memory.first_step_allocated_bytes or est.memory.allocated_peak_bytes
        log.info("hf-gpu-estimator: after the first optimizer step: torch.cuda.max_memory_allocated %.2f GiB, "
                 "predicted for step 1 %.2f GiB (%+.1f %%); steady state from step 2: %.2f GiB",
                 measured / GiB, predicted / GiB,
                 100 * (predicted - measured) / measured if measured else 0.0, est.memory.allocated_peak_bytes / GiB)

    def _evaluate(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> PreflightResult:
        facts = self._facts or describe_model(pl_module)
        kwargs, notes = workload_from_trainer(trainer, facts)
        batch, seq = self._shape(trainer)
        missing = [n for n, v in (("batch size", batch), ("sequence length", seq)) if v is None]
        if missing:
            return PreflightResult(status="failed", workload_kwargs=kwargs,
                                   message=f"hf-gpu-estimator: memory preflight skipped: could not read the "
                                           f"{' and '.join(missing)} from the train dataloader; pass "
                                           f"MemoryPreflight(input_shape=(batch_size, seq_len))")
        kwargs.update(batch_size=batch, seq_len=seq)
        return evaluate(facts.source, workload_kwargs=kwargs, gpu=self.gpu, device_memory_bytes=self.device_memory_bytes,
                        margin=self.margin, hints=LIGHTNING_HINTS, notes=tuple(notes))

    def _shape(self, trainer: pl.Trainer) -> tuple[int | None, int | None]:
        if self.input_shape is not None:
            return self.input_shape[0], self.input_shape[1]
        batch, seq = shape_of_batch(self.sample_batch) if self.sample_batch is not None else (None, None)
        batch = batch or self.batch_size
        seq = seq or self.seq_len
        if batch is None or seq is None:
            loader_batch, loader_seq = peek_dataloader(trainer.train_dataloader)
            batch = batch or loader_batch
            seq = seq or loader_seq
        return batch, seq


def workload_from_trainer(trainer: pl.Trainer, facts: ModelFacts) -> tuple[dict[str, Any], list[str]]:
    """Workload keywords (all but the batch shape) from a Trainer and the model's facts, and notes."""
    notes = list(facts.notes)
    kwargs: dict[str, Any] = {"task": "training", **facts.options}
    kwargs["precision"] = str(trainer.precision)
    accumulation = trainer.accumulate_grad_batches
    if isinstance(accumulation, int) and accumulation >= 1:
        kwargs["gradient_accumulation_steps"] = accumulation
    devices = max(1, int(trainer.num_devices) * int(trainer.num_nodes))
    strategy = trainer.strategy
    name = type(strategy).__name__
    if name == "FSDPStrategy":
        offload = bool(getattr(getattr(strategy, "cpu_offload", None), "offload_params", False))
        options, more = fsdp_options(strategy.sharding_strategy, offload=offload, num_gpus=devices)
    elif name == "DeepSpeedStrategy":
        options, more = deepspeed_options(getattr(strategy, "config", None), num_gpus=devices)
    else:
        options, more = {"num_gpus": devices}, []
        if devices > 1:
            options["strategy"] = "ddp"
            if "DDP" not in name:
                more.append(f"strategy {name} is estimated as DDP (every device holds the whole model)")
    kwargs.update(options)
    notes.extend(more)
    if trainer.optimizers:
        opt, note = optimizer_name(trainer.optimizers[0])
        if opt is not None:
            kwargs["optimizer"] = opt
        if note:
            notes.append(note)
    return kwargs, notes
