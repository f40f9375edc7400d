"""accelerate ``preflight`` and accelerate config files (``hfge preflight``), on CPU with a tiny Llama."""

from __future__ import annotations

import importlib.util
import json
import logging
from pathlib import Path
from types import SimpleNamespace

import pytest

pytest.importorskip("accelerate")
pytest.importorskip("transformers")

import torch  # noqa: E402
from accelerate.state import AcceleratorState, GradientState  # noqa: E402

from hf_gpu_estimator.cli import main as cli  # noqa: E402
from hf_gpu_estimator.errors import InvalidArgumentError, PreflightError  # noqa: E402
from hf_gpu_estimator.integrations.accelerate import (  # noqa: E402
    preflight,
    workload_from_accelerate_config,
    workload_from_accelerator,
)

SCRIPT = Path(__file__).resolve().parents[1] / "integrations" / "accelerate" / "train_tiny_llama.py"
SMALL = 300 * 2**20
LARGE = 80 * 2**30
LLAMA_7B = {"model_type": "llama", "architectures": ["LlamaForCausalLM"], "hidden_size": 4096,
            "intermediate_size": 11008, "num_hidden_layers": 32, "num_attention_heads": 32,
            "num_key_value_heads": 32, "vocab_size": 32000, "max_position_embeddings": 4096,
            "torch_dtype": "float16", "rms_norm_eps": 1e-5, "tie_word_embeddings": False}


def _load_script():
    spec = importlib.util.spec_from_file_location("accelerate_e2e", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


e2e = _load_script()


@pytest.fixture(autouse=True)
def fresh_accelerate_state():
    """Accelerator state is a process-wide singleton: each test builds its own."""
    AcceleratorState._reset_state(True)
    GradientState._reset_state()
    yield
    AcceleratorState._reset_state(True)
    GradientState._reset_state()


@pytest.fixture
def adamw_steps(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    calls: list[int] = []
    original = torch.optim.AdamW.step

    def counted(self, *args, **kwargs):
        calls.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.AdamW, "step", counted)
    return calls


def _ours(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("hf_gpu_estimator") and r.levelno >= logging.WARNING]


def test_warns_and_trains(caplog: pytest.LogCaptureFixture, adamw_steps: list[int]) -> None:
    assert e2e.main(["--device-memory-bytes", str(SMALL), "--max-steps", "2"]) == 2
    (message,) = _ours(caplog)
    assert "will likely run out of GPU memory" in message and "batch 8 x 64 tokens, 32-true, adamw" in message
    assert len(adamw_steps) == 2


def test_silent_when_it_fits(caplog: pytest.LogCaptureFixture) -> None:
    assert e2e.main(["--device-memory-bytes", str(LARGE), "--max-steps", "1"]) == 1
    assert _ours(caplog) == []


def test_raise_stops_before_the_first_step(adamw_steps: list[int]) -> None:
    with pytest.raises(PreflightError):
        e2e.main(["--device-memory-bytes", str(SMALL), "--on-exceed", "raise"])
    assert adamw_steps == []


def test_failing_estimator_does_not_stop_the_run(monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                                                 adamw_steps: list[int]) -> None:
    import hf_gpu_estimator.estimator

    def broken(*args, **kwargs):
        raise RuntimeError("estimator exploded")

    monkeypatch.setattr(hf_gpu_estimator.estimator, "estimate", broken)
    assert e2e.main(["--device-memory-bytes", str(SMALL), "--on-exceed", "raise", "--max-steps", "2"]) == 2
    assert any("estimator exploded" in m for m in _ours(caplog))
    assert len(adamw_steps) == 2


def test_result_and_suggestions() -> None:
    from accelerate import Accelerator
    from transformers import LlamaConfig, LlamaForCausalLM

    accelerator = Accelerator(cpu=True, mixed_precision="bf16", gradient_accumulation_steps=2)
    model = LlamaForCausalLM(LlamaConfig(**e2e.TINY_LLAMA))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    result = preflight(accelerator, model, optimizer, batch_size=64, seq_len=256, device_memory_bytes=LARGE)
    assert result.status == "fits"
    w = result.estimate.workload
    assert (w.precision.name, w.optimizer.name, w.gradient_accumulation_steps, w.batch_size) == ("bf16-mixed", "sgd", 2, 64)
    with pytest.raises(InvalidArgumentError):
        preflight(accelerator, model, batch_size=0, seq_len=16, device_memory_bytes=LARGE)


def test_state_mapping_deepspeed_and_fsdp() -> None:
    ds_plugin = SimpleNamespace(deepspeed_config={"zero_optimization": {"stage": "auto"}}, zero_stage=3,
                                offload_optimizer_device="cpu", offload_param_device="none")
    acc = SimpleNamespace(gradient_accumulation_steps=4, state=SimpleNamespace(
        mixed_precision="fp16", distributed_type="DEEPSPEED", num_processes=8, deepspeed_plugin=ds_plugin))
    kwargs, _ = workload_from_accelerator(acc)
    assert (kwargs["precision"], kwargs["strategy"], kwargs["num_gpus"], kwargs.get("offload_optimizer"),
            kwargs.get("offload_params"), kwargs["gradient_accumulation_steps"]) == ("16-mixed", "zero3", 8, True, None, 4)

    fsdp2 = SimpleNamespace(fsdp_version=2, reshard_after_forward=False, cpu_offload=False)
    acc = SimpleNamespace(gradient_accumulation_steps=1, state=SimpleNamespace(
        mixed_precision="no", distributed_type="FSDP", num_processes=4, fsdp_plugin=fsdp2))
    kwargs, _ = workload_from_accelerator(acc, trainable_dtype="bfloat16")
    assert (kwargs["precision"], kwargs["strategy"]) == ("bf16-true", "fsdp-grad-op")

    from torch.distributed.fsdp import CPUOffload, ShardingStrategy

    fsdp1 = SimpleNamespace(fsdp_version=1, reshard_after_forward=ShardingStrategy.HYBRID_SHARD,
                            cpu_offload=CPUOffload(offload_params=True))
    acc.state.fsdp_plugin = fsdp1
    kwargs, _ = workload_from_accelerator(acc)
    assert (kwargs["strategy"], kwargs["offload_params"], kwargs["offload_optimizer"]) == ("fsdp-hybrid", True, True)


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "accelerate.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_accelerate_config_files(tmp_path: Path) -> None:
    ds = _write(tmp_path, "distributed_type: DEEPSPEED\nmixed_precision: bf16\nnum_machines: 2\nnum_processes: 16\n"
                          "deepspeed_config:\n  zero_stage: 2\n  offload_optimizer_device: cpu\n"
                          "  gradient_accumulation_steps: 8\n")
    kwargs, _ = workload_from_accelerate_config(ds)
    assert kwargs == {"task": "training", "precision": "bf16-mixed", "gradient_accumulation_steps": 8, "num_gpus": 16,
                      "strategy": "zero2", "offload_optimizer": True}
    (tmp_path / "ds.json").write_text(json.dumps({"zero_optimization": {"stage": 3, "offload_param": {"device": "cpu"},
                                                                       "offload_optimizer": {"device": "cpu"}}}))
    ds_file = _write(tmp_path, "distributed_type: DEEPSPEED\nnum_processes: 4\ndeepspeed_config:\n"
                               "  deepspeed_config_file: ds.json\n")
    kwargs, _ = workload_from_accelerate_config(ds_file)
    assert (kwargs["strategy"], kwargs["offload_params"], kwargs["precision"]) == ("zero3", True, "32-true")
    fsdp = _write(tmp_path, "distributed_type: FSDP\nmixed_precision: bf16\nnum_processes: 8\nfsdp_config:\n"
                            "  fsdp_sharding_strategy: SHARD_GRAD_OP\n  fsdp_activation_checkpointing: true\n")
    kwargs, _ = workload_from_accelerate_config(fsdp)
    assert (kwargs["strategy"], kwargs["gradient_checkpointing"]) == ("fsdp-grad-op", True)
    single = _write(tmp_path, "distributed_type: 'NO'\nmixed_precision: fp16\nnum_processes: 1\n")
    assert workload_from_accelerate_config(single)[0] == {"task": "training", "precision": "16-mixed", "num_gpus": 1}


def test_cli_preflight(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    model = tmp_path / "llama7b"
    model.mkdir()
    (model / "config.json").write_text(json.dumps(LLAMA_7B))
    config = _write(tmp_path, "distributed_type: DEEPSPEED\nmixed_precision: bf16\nnum_processes: 8\n"
                              "deepspeed_config:\n  zero_stage: 3\n")
    code = cli(["preflight", "--accelerate-config", str(config), str(model), "--batch-size", "8", "--seq-len", "4096",
                "--gpu", "A100-40GB"])
    out = capsys.readouterr().out
    assert code == 1 and "will likely run out of GPU memory" in out and "8 devices, zero3" in out
    assert "each of these fits" in out
    code = cli(["preflight", "--accelerate-config", str(config), str(model), "--batch-size", "1", "--seq-len", "1024",
                "--gradient-checkpointing", "--device-memory-gib", "80", "--format", "json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["fits"] is True
    assert (data["workload"]["strategy"], data["workload"]["num_gpus"], data["workload"]["gradient_checkpointing"]) == \
        ("zero3", 8, True)
    # an explicit flag wins over the config file
    code = cli(["preflight", "--accelerate-config", str(config), str(model), "--num-gpus", "2", "--device-memory-gib",
                "80", "--format", "json"])
    assert json.loads(capsys.readouterr().out)["workload"]["num_gpus"] == 2
    # a missing file named on the command line is a bad argument, as for plan --fleet (exit 2)
    assert cli(["preflight", "--accelerate-config", str(tmp_path / "missing.yaml"), str(model), "--gpu", "A100-80GB"]) == 2
