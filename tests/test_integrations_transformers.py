"""transformers ``MemoryPreflightCallback`` and ``check_fits``, on CPU with a tiny Llama."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("transformers")

import torch  # noqa: E402

from hf_gpu_estimator.errors import InvalidArgumentError, PreflightError  # noqa: E402
from hf_gpu_estimator.integrations.transformers import (  # noqa: E402
    MemoryPreflightCallback,
    check_fits,
    workload_from_training_args,
)

SCRIPT = Path(__file__).resolve().parents[1] / "integrations" / "transformers" / "train_tiny_llama.py"
SMALL = 300 * 2**20
LARGE = 80 * 2**30
GiB = 2**30
LLAMA_7B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
            "torch_dtype": "float16", "rms_norm_eps": 1e-5, "tie_word_embeddings": False}


def _load_script():
    spec = importlib.util.spec_from_file_location("transformers_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e = _load_script()


@pytest.fixture(autouse=True)
def reset_steps():
    e2e.StepCounter.steps = 0


@pytest.fixture(autouse=True)
def transformers_records(caplog: pytest.LogCaptureFixture):
    """transformers' logger does not propagate to the root: hand caplog's handler to ours."""
    from hf_gpu_estimator.integrations.transformers import log

    log.addHandler(caplog.handler)
    yield
    log.removeHandler(caplog.handler)


def _ours(caplog: pytest.LogCaptureFixture) -> list[str]:
    records = {id(r): r for r in caplog.records}.values()  # once, whether or not transformers propagates
    return [r.getMessage() for r in records if r.name == "transformers.hf_gpu_estimator" and r.levelno >= logging.WARNING]


def _trainer(tmp_path: Path, callback: MemoryPreflightCallback, *, max_steps: int = 2, **args):
    from transformers import LlamaConfig, LlamaForCausalLM, Trainer, TrainingArguments

    model = LlamaForCausalLM(LlamaConfig(**e2e.TINY_LLAMA))
    optimizer = e2e.StepCounter(model.parameters(), lr=1e-3)
    training_args = TrainingArguments(output_dir=str(tmp_path), per_device_train_batch_size=4, max_steps=max_steps,
                                      use_cpu=True, report_to=[], save_strategy="no", logging_strategy="no",
                                      disable_tqdm=True, **args)
    return Trainer(model=model, args=training_args, train_dataset=e2e.RandomTokens(n=16, seq_len=32),
                   optimizers=(optimizer, None), callbacks=[callback])


def test_warns_and_trains(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callback = MemoryPreflightCallback(device_memory_bytes=SMALL)
    _trainer(tmp_path, callback, gradient_accumulation_steps=2).train()
    (message,) = _ours(caplog)
    assert "will likely run out of GPU memory" in message and "batch 4 x 32 tokens" in message
    assert callback.result.estimate.workload.gradient_accumulation_steps == 2
    assert callback.result.estimate.workload.optimizer.name == "adamw"  # StepCounter subclasses AdamW
    assert e2e.StepCounter.steps == 2


def test_one_summary_line_when_it_fits(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    callback = MemoryPreflightCallback(device_memory_bytes=LARGE)
    _trainer(tmp_path, callback, max_steps=1).train()
    (line,) = _ours(caplog)
    assert callback.result.status == "fits" and line.startswith("hf-gpu-estimator: fits: needs ") and "\n" not in line
    assert len(repr(callback.result)) < 300


@pytest.mark.parametrize("kwargs", [{"gpu": "H9000"}, {"gpu": "A100"}], ids=str)
def test_bad_device_arguments_warn_and_training_continues(tmp_path: Path, caplog: pytest.LogCaptureFixture,
                                                          kwargs: dict) -> None:
    callback = MemoryPreflightCallback(**kwargs)
    _trainer(tmp_path, callback, max_steps=1).train()
    (line,) = _ours(caplog)
    assert "memory preflight skipped" in line and callback.result.status == "failed"
    assert e2e.StepCounter.steps == 1


def test_raise_stops_before_the_first_step(tmp_path: Path) -> None:
    trainer = _trainer(tmp_path, MemoryPreflightCallback(device_memory_bytes=SMALL, on_exceed="raise"))
    with pytest.raises(PreflightError):
        trainer.train()
    assert e2e.StepCounter.steps == 0


def test_failing_estimator_does_not_stop_training(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                  caplog: pytest.LogCaptureFixture) -> None:
    import hf_gpu_estimator.estimator

    def broken(*args, **kwargs):
        raise RuntimeError("estimator exploded")

    monkeypatch.setattr(hf_gpu_estimator.estimator, "estimate", broken)
    _trainer(tmp_path, MemoryPreflightCallback(device_memory_bytes=SMALL, on_exceed="raise")).train()
    assert e2e.StepCounter.steps == 2
    assert any("estimator exploded" in m for m in _ours(caplog))


def test_end_to_end_script(capsys: pytest.CaptureFixture[str]) -> None:
    assert e2e.main(["--device-memory-bytes", str(LARGE), "--max-steps", "2"]) == 2
    assert "fits on the GPUs" in capsys.readouterr().out


def test_training_arguments_mapping(tmp_path: Path) -> None:
    ds = tmp_path / "ds.json"
    ds.write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"}}}))
    args = SimpleNamespace(per_device_train_batch_size=2, gradient_accumulation_steps=8, bf16=True, fp16=False,
                           optim="adamw_bnb_8bit", world_size=4, deepspeed=str(ds), fsdp=None)
    kwargs, _ = workload_from_training_args(args)
    assert (kwargs["precision"], kwargs["optimizer"], kwargs["strategy"], kwargs["offload_params"],
            kwargs["num_gpus"], kwargs["batch_size"], kwargs["gradient_accumulation_steps"]) == \
        ("bf16-mixed", "adamw_bnb_8bit", "zero3", True, 4, 2, 8)
    fsdp = SimpleNamespace(per_device_train_batch_size=1, gradient_accumulation_steps=1, bf16=False, fp16=True,
                           optim="adafactor", world_size=8, deepspeed=None, fsdp=True,
                           fsdp_config={"reshard_after_forward": False, "cpu_offload": True})
    kwargs, _ = workload_from_training_args(fsdp)
    assert (kwargs["precision"], kwargs["strategy"], kwargs["offload_optimizer"]) == ("16-mixed", "fsdp-grad-op", True)
    words = SimpleNamespace(**{**vars(fsdp), "fsdp": ["hybrid_shard", "auto_wrap"], "fsdp_config": {}})
    assert workload_from_training_args(words)[0]["strategy"] == "fsdp-hybrid"
    with pytest.raises(InvalidArgumentError):
        MemoryPreflightCallback(seq_len=0)


def test_check_fits_places_layers_greedily(monkeypatch: pytest.MonkeyPatch) -> None:
    # The CPU share of device_map="auto" defaults to the host's available memory: pin it, so the
    # result does not depend on what else the machine runs.
    import psutil

    monkeypatch.setattr(psutil, "virtual_memory", lambda: type("VM", (), {"available": 64 * GiB})())
    plan = check_fits(LLAMA_7B, device_map="sequential", dtype="bfloat16", max_memory={0: "6GiB", 1: "10GiB"})
    assert plan.fits and set(plan.bytes_by_device) == {0, 1}
    assert plan.bytes_by_device[0] <= 6 * GiB and plan.bytes_by_device[0] > 5 * GiB  # filled before the next
    assert plan.device_map["model.embed_tokens"] == 0 and plan.device_map["lm_head"] == 1
    layers = [plan.device_map[f"model.layers.{i}"] for i in range(32)]
    assert layers == sorted(layers)  # in order, never back to an earlier device
    assert abs(plan.weights_bytes - 6_738_415_616 * 2) < 2**20

    balanced = check_fits(LLAMA_7B, device_map="auto", dtype="bfloat16", gpu="A100-80GB", num_devices=2)
    assert balanced.fits and abs(balanced.bytes_by_device[0] - balanced.bytes_by_device[1]) < 2 * GiB

    too_small = check_fits(LLAMA_7B, device_map="auto", dtype="float16", device_memory_bytes=8 * GiB,
                           max_memory=None)
    assert not too_small.fits and too_small.loads and too_small.offloaded_bytes > 0  # CPU offload
    nf4 = check_fits(LLAMA_7B, device_map="auto", quantization_config={"load_in_4bit": True,
                                                                     "bnb_4bit_quant_type": "nf4"},
                     device_memory_bytes=8 * GiB)
    assert nf4.fits and nf4.quantization == "nf4" and nf4.weights_bytes < 4 * GiB
    one = check_fits(LLAMA_7B, gpu="RTX-4090")  # device_map=None: the whole model on cuda:0
    assert one.fits and one.dtype == "float16" and "cuda:0" in str(one)
    assert not check_fits(LLAMA_7B, dtype="float32", gpu="RTX-4090").fits
    explicit = check_fits(LLAMA_7B, device_map={"model.embed_tokens": 0, "model.layers": 0, "model.norm": 1,
                                                "lm_head": "cpu"}, max_memory={0: "16GiB", 1: "1GiB"})
    assert explicit.device_map["lm_head"] == "cpu" and explicit.device_map["model.layers.31"] == 0


def test_check_fits_reads_a_saved_checkpoint(tmp_path: Path) -> None:
    from transformers import LlamaConfig, LlamaForCausalLM

    model = LlamaForCausalLM(LlamaConfig(**e2e.TINY_LLAMA))
    model.save_pretrained(tmp_path)
    plan = check_fits(str(tmp_path), device_map="sequential", dtype="float32", max_memory={0: 200_000, 1: 10**7})
    expected = sum(p.numel() * 4 for p in model.parameters())
    assert plan.weights_bytes == expected
    assert list(plan.device_map)[:2] == ["model.embed_tokens", "model.layers.0"]
    assert plan.device_map["model.embed_tokens"] == 0 and plan.device_map["lm_head"] == 1
