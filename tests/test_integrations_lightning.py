"""MemoryPreflight (Lightning) and the framework-free preflight core, on CPU with a tiny Llama."""

from __future__ import annotations

import importlib.util
import logging
import os
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("lightning")
pytest.importorskip("transformers")

import lightning as L  # noqa: E402
from torch.utils.data import DataLoader  # noqa: E402

from hf_gpu_estimator.errors import InvalidArgumentError, PreflightError  # noqa: E402
from hf_gpu_estimator.integrations import preflight_check  # noqa: E402
from hf_gpu_estimator.integrations._core import describe_model, peek_dataloader  # noqa: E402
from hf_gpu_estimator.integrations.lightning import MemoryPreflight, workload_from_trainer  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "integrations" / "lightning" / "train_tiny_llama.py"
LOGGER = "hf_gpu_estimator.integrations.lightning"
SMALL = 300 * 2**20  # below the CUDA context alone: never fits
LARGE = 80 * 2**30


def _load_script():
    spec = importlib.util.spec_from_file_location("lightning_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e = _load_script()


def _fit(callback: MemoryPreflight, *, max_steps: int = 2, batch_size: int = 4, seq_len: int = 32):
    model = e2e.TinyLlama()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=max_steps, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, callbacks=[callback])
    trainer.fit(model, DataLoader(e2e.RandomTokens(n=16, seq_len=seq_len), batch_size=batch_size))
    return model


def _ours(caplog: pytest.LogCaptureFixture, level: int = logging.WARNING) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name.startswith("hf_gpu_estimator") and r.levelno >= level]


def test_warns_when_the_run_does_not_fit(caplog: pytest.LogCaptureFixture) -> None:
    callback = MemoryPreflight(device_memory_bytes=SMALL)
    model = _fit(callback)
    warnings = _ours(caplog)
    assert len(warnings) == 1 and "will likely run out of GPU memory" in warnings[0].getMessage()
    assert "batch 4 x 32 tokens" in warnings[0].getMessage()
    assert callback.result.status == "exceeds" and callback.result.shortfall_bytes > 0
    assert model.optimizer_steps == 2  # warn only: the run goes on


def test_one_info_line_when_it_fits(caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    import lightning.pytorch.utilities as utilities

    said: list[str] = []
    monkeypatch.setattr(utilities, "rank_zero_info", lambda message, *a, **k: said.append(message))
    callback = MemoryPreflight(device_memory_bytes=LARGE)
    _fit(callback)
    assert _ours(caplog) == []
    assert callback.result.status == "fits"
    (line,) = said
    assert line.startswith("hf-gpu-estimator: fits: needs ") and "\n" not in line
    assert len(repr(callback.result)) < 300 and repr(callback.result) == str(callback.result)


@pytest.mark.parametrize("kwargs", [{"gpu": "H9000"}, {"gpu": "A100"}], ids=str)
def test_bad_device_arguments_warn_and_the_run_continues(caplog: pytest.LogCaptureFixture, kwargs: dict) -> None:
    callback = MemoryPreflight(**kwargs)
    model = _fit(callback)
    (warning,) = _ours(caplog)
    assert "memory preflight skipped" in warning.getMessage() and model.optimizer_steps == 2


def test_raise_stops_before_the_first_step() -> None:
    model = e2e.TinyLlama()
    trainer = L.Trainer(accelerator="cpu", devices=1, max_steps=2, logger=False, enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False,
                        callbacks=[MemoryPreflight(gpu=None, device_memory_bytes=SMALL, on_exceed="raise")])
    with pytest.raises(PreflightError) as info:
        trainer.fit(model, DataLoader(e2e.RandomTokens(n=16, seq_len=32), batch_size=4))
    assert isinstance(info.value, MemoryError)
    assert info.value.required_bytes > info.value.available_bytes == SMALL
    assert model.optimizer_steps == 0


def test_failing_estimator_does_not_stop_the_run(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    import hf_gpu_estimator.estimator

    def broken(*args, **kwargs):
        raise RuntimeError("estimator exploded")

    monkeypatch.setattr(hf_gpu_estimator.estimator, "estimate", broken)
    callback = MemoryPreflight(device_memory_bytes=SMALL, on_exceed="raise")
    model = _fit(callback)
    assert model.optimizer_steps == 2
    assert callback.result.status == "failed" and "estimator exploded" in callback.result.error
    assert any("estimator exploded" in r.getMessage() for r in _ours(caplog))


def test_no_device_is_skipped_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    callback = MemoryPreflight()
    _fit(callback, max_steps=1)
    assert callback.result.status == "skipped"


def test_arguments_are_validated() -> None:
    with pytest.raises(InvalidArgumentError, match="on_exceed"):
        MemoryPreflight(on_exceed="explode")
    with pytest.raises(InvalidArgumentError, match="not both"):
        MemoryPreflight(gpu="A100-80GB", device_memory_bytes=1 << 30)
    with pytest.raises(InvalidArgumentError, match="input_shape"):
        MemoryPreflight(input_shape=(4,))
    with pytest.raises(InvalidArgumentError, match="gpu"):
        MemoryPreflight(gpu=80)  # not a name at all


def test_batch_shape_sources_in_documented_order() -> None:
    import torch

    loader = DataLoader(e2e.RandomTokens(n=8, seq_len=48), batch_size=3)
    assert peek_dataloader(loader) == (3, 48)
    explicit = MemoryPreflight(input_shape=(2, 16), sample_batch={"input_ids": torch.zeros(5, 7)}, batch_size=9)
    trainer = SimpleNamespace(train_dataloader=loader)
    assert explicit._shape(trainer) == (2, 16)
    sample = MemoryPreflight(sample_batch={"input_ids": torch.zeros(5, 7)})
    assert sample._shape(trainer) == (5, 7)
    partial = MemoryPreflight(seq_len=100)
    assert partial._shape(trainer) == (3, 100)


def test_reads_precision_strategy_devices_accumulation_and_optimizer() -> None:
    import torch

    model = e2e.TinyLlama(gradient_checkpointing=True)
    facts = describe_model(model)
    assert facts.options["gradient_checkpointing"] is True
    trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp", precision="bf16-mixed", accumulate_grad_batches=4,
                        logger=False)
    kwargs, _ = workload_from_trainer(trainer, facts)
    assert "optimizer" not in kwargs  # none configured yet: the estimator's default (AdamW)
    assert (kwargs["precision"], kwargs["num_gpus"], kwargs["strategy"], kwargs["gradient_accumulation_steps"]) == \
        ("bf16-mixed", 2, "ddp", 4)

    class DeepSpeedStrategy:  # the real one needs deepspeed installed; the callback reads .config
        config = {"zero_optimization": {"stage": 3, "offload_optimizer": {"device": "cpu"}}}

    fake = SimpleNamespace(precision="16-mixed", accumulate_grad_batches=1, num_devices=4, num_nodes=2,
                           strategy=DeepSpeedStrategy(),
                           optimizers=[torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)])
    kwargs, _ = workload_from_trainer(fake, facts)
    assert (kwargs["num_gpus"], kwargs["strategy"], kwargs["offload_optimizer"], kwargs["optimizer"]) == \
        (8, "zero3", True, "sgd-momentum")

    from lightning.pytorch.strategies import FSDPStrategy

    fsdp = SimpleNamespace(precision="bf16-true", accumulate_grad_batches=1, num_devices=8, num_nodes=1, optimizers=[],
                           strategy=FSDPStrategy(sharding_strategy="SHARD_GRAD_OP", cpu_offload=True))
    kwargs, _ = workload_from_trainer(fsdp, facts)
    assert (kwargs["strategy"], kwargs["offload_optimizer"], kwargs["offload_params"]) == ("fsdp-grad-op", True, True)


def test_peft_model_is_estimated_as_lora() -> None:
    peft = pytest.importorskip("peft")
    model = e2e.TinyLlama()
    model.model = peft.get_peft_model(model.model, peft.LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "k_proj"]))
    facts = describe_model(model)
    assert facts.options["method"] == "lora"
    assert (facts.options["lora_rank"], facts.options["lora_alpha"], facts.options["lora_targets"]) == \
        (4, 8, ("k_proj", "q_proj"))
    assert facts.trainable_parameters < facts.total_parameters / 10
    result = preflight_check(facts.source, workload_kwargs={"task": "training", **facts.options}, device_memory_bytes=LARGE)
    # adapters as peft counts them: r * (in + out) per targeted linear
    assert result.estimate.trainable_parameters == facts.trainable_parameters


def test_suggestions_are_present_and_verified() -> None:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.sources.catalog import lookup

    spec = lookup("meta-llama/Llama-2-7b-hf")
    work = {"task": "training", "batch_size": 4, "seq_len": 1024, "num_gpus": 4, "strategy": "ddp"}
    result = preflight_check(spec, workload_kwargs=work, gpu="A100-80GB")
    assert result.status == "exceeds" and result.suggestions
    keys = {s.key for s in result.suggestions}
    assert {"method", "strategy", "num_gpus"} <= keys
    for s in result.suggestions:
        again = estimate(spec, **{**work, **s.options}).memory.device_total_bytes
        assert again == s.device_total_bytes <= result.budget_bytes, s
        assert s.title in result.message
    assert f"{result.shortfall_bytes / 2**30:.2f} GiB short" in result.message


def test_batch_size_suggestion_keeps_the_effective_batch() -> None:
    from hf_gpu_estimator.estimator import estimate
    from hf_gpu_estimator.sources.catalog import lookup

    spec = lookup("meta-llama/Llama-2-7b-hf")
    work = {"task": "training", "method": "lora", "batch_size": 16, "seq_len": 2048, "gradient_checkpointing": True,
            "gradient_accumulation_steps": 2}
    big = estimate(spec, **work).memory.device_total_bytes
    small = estimate(spec, **{**work, "batch_size": 2}).memory.device_total_bytes
    result = preflight_check(spec, workload_kwargs=work, device_memory_bytes=int((big + small) / 2 / 0.95))
    (batch,) = [s for s in result.suggestions if s.key == "batch_size"]
    b, steps = batch.options["batch_size"], batch.options["gradient_accumulation_steps"]
    assert 2 <= b < 16 and b * steps == 16 * 2  # the effective batch exactly (issue 21), not 3 x 11 = 33
    too_big = estimate(spec, **{**work, "batch_size": 2 * b})  # the next divisor of 32
    assert too_big.device_total_range_bytes[1] > result.budget_bytes  # the largest whose high end fits


def test_ddp_two_processes_warn_once() -> None:
    env = {**os.environ, "GLOO_SOCKET_IFNAME": "lo", "PYTHONWARNINGS": "ignore"}
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--accelerator", "cpu", "--devices", "2", "--strategy", "ddp",
         "--device-memory-bytes", str(SMALL), "--max-steps", "2"],
        capture_output=True, text=True, timeout=180, env=env, cwd=str(ROOT),
    )
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out[-3000:]
    assert out.count("will likely run out of GPU memory") == 1, out[-3000:]
    assert "2 devices, ddp" in out
    assert "optimizer steps: 2" in out


def test_device_memory_below_a_gib_is_warned_about_at_construction() -> None:
    with pytest.warns(UserWarning, match="below 1 GiB"):
        MemoryPreflight(device_memory_bytes=24)


def test_reads_the_checkpointing_variant_and_a_classification_head() -> None:
    import torch
    import transformers

    config = transformers.LlamaConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                                      num_key_value_heads=2, vocab_size=256, num_labels=5)
    with torch.device("meta"):
        model = transformers.LlamaForSequenceClassification(config)
    enable = getattr(model, "activation_checkpointing_enable", None) or model.gradient_checkpointing_enable
    enable({"use_reentrant": True})
    facts = describe_model(model)
    assert facts.options["gradient_checkpointing"] is True and facts.options["use_reentrant"] is True
    assert (facts.options["head"], facts.options["num_labels"]) == ("classification", 5)


def test_deepspeed_bucket_sizes_are_read() -> None:
    from hf_gpu_estimator.integrations._core import deepspeed_options

    options, notes = deepspeed_options({"zero_optimization": {"stage": 3, "reduce_bucket_size": 2e8,
                                                              "stage3_prefetch_bucket_size": "auto"}}, num_gpus=4)
    assert options["reduce_bucket_size"] == 200_000_000 and "prefetch_bucket_size" not in options
    assert any("stage3_prefetch_bucket_size='auto'" in n for n in notes)
