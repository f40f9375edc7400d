"""Exact mode as an estimate (exact.py): the MemoryEstimate contract, fallbacks, errors, --compare."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import weakref
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("transformers")

from hf_gpu_estimator.errors import TraceError  # noqa: E402
from hf_gpu_estimator.estimator import estimate  # noqa: E402
from hf_gpu_estimator.exact import exact_memory  # noqa: E402
from hf_gpu_estimator.memory import estimate_memory  # noqa: E402
from hf_gpu_estimator.memory.terms import COMPONENTS  # noqa: E402
from hf_gpu_estimator.sources import inspect_model  # noqa: E402
from hf_gpu_estimator.trace import trace_workload  # noqa: E402
from hf_gpu_estimator.workload import make_workload  # noqa: E402

TINY = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 512, "max_position_embeddings": 1024,
        "torch_dtype": "bfloat16"}
TRAIN = dict(task="training", batch_size=2, seq_len=64, precision="bf16-true")


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "tiny-llama"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(TINY))
    return folder


@pytest.mark.parametrize("workload", [dict(task="inference", batch_size=2, seq_len=64, new_tokens=8), TRAIN],
                         ids=["inference", "training"])
def test_exact_follows_the_contract(workload: dict) -> None:
    est = estimate(dict(TINY), mode="exact", **workload)
    m = est.memory
    traced = trace_workload(dict(TINY), make_workload(**workload))
    assert est.mode == "exact"
    assert set(m.components) == set(COMPONENTS)
    assert sum(m.components.values()) == m.allocated_peak_bytes
    # allocated = traced peak + the analytic cuBLAS workspace (fake tensors cannot see it).
    analytic = estimate_memory(est.spec, est.workload)
    assert m.components["workspace"] == analytic.components["workspace"] > 0
    assert m.allocated_peak_bytes == traced.peak_bytes + m.components["workspace"]
    assert m.phase_at_peak == traced.phase_at_peak
    assert m.reserved_peak_bytes >= m.allocated_peak_bytes
    assert m.device_total_bytes == m.reserved_peak_bytes + m.cuda_context_bytes
    text = "\n".join(est.assumptions)
    assert "cuBLAS workspace" in text and "top memory holders" in text and "peak in phase" in text
    json.dumps(est.to_dict())


def test_training_components_map_from_the_trace() -> None:
    m = estimate(dict(TINY), mode="exact", **TRAIN).memory
    traced = trace_workload(dict(TINY), make_workload(**TRAIN))
    b = traced.breakdown_at_peak
    assert m.components["weights"] == b.get("params", 0) + b.get("buffers", 0)
    assert m.components["optimizer_states"] == b.get("optimizer", 0)
    assert m.components["activations"] == b.get("activations", 0)


def test_inference_splits_the_kv_cache_out_of_activations() -> None:
    m = estimate(dict(TINY), mode="exact", task="inference", batch_size=4, seq_len=16, new_tokens=256).memory
    assert m.phase_at_peak == "decode"
    assert m.components["kv_cache"] > 0


def test_qlora_takes_the_analytic_4bit_weights() -> None:
    est = estimate(dict(TINY), mode="exact", **{**TRAIN, "precision": "bf16-mixed"}, method="qlora")
    analytic = estimate(dict(TINY), **{**TRAIN, "precision": "bf16-mixed"}, method="qlora")
    assert est.memory.components["weights"] == analytic.memory.components["weights"]
    assert any("nf4 weights from the analytic model" in a for a in est.assumptions)


@pytest.mark.parametrize("optimizer", ["adamw-8bit", "lion"])
def test_unsupported_optimizer_adds_the_analytic_states(optimizer: str) -> None:
    est = estimate(dict(TINY), mode="exact", **TRAIN, optimizer=optimizer)
    analytic = estimate(dict(TINY), **TRAIN, optimizer=optimizer)
    assert est.memory.components["optimizer_states"] == analytic.memory.components["optimizer_states"] > 0
    assert any("traced with SGD" in a and optimizer in a for a in est.assumptions)


def test_spec_without_config_says_use_analytic() -> None:
    spec = dataclasses.replace(inspect_model(dict(TINY)), config={})
    work = make_workload()
    with pytest.raises(TraceError, match="config.json.*analytic mode"):
        exact_memory(spec, work, analytic=estimate_memory(spec, work))


def test_unknown_architecture_says_use_analytic() -> None:
    spec = inspect_model(dict(TINY))
    spec = dataclasses.replace(spec, config={**TINY, "model_type": "not-a-transformers-model"})
    work = make_workload()
    with pytest.raises(TraceError, match="analytic mode"):
        exact_memory(spec, work, analytic=estimate_memory(spec, work))


def test_too_large_or_sharded_is_refused() -> None:
    spec = inspect_model(dict(TINY))
    work = make_workload()
    with pytest.raises(TraceError, match="parameters.*analytic mode"):
        exact_memory(spec, work, analytic=estimate_memory(spec, work), max_parameters=1000)
    sharded = make_workload(task="training", num_gpus=2, strategy="zero3")
    with pytest.raises(TraceError, match="one device"):
        exact_memory(spec, sharded, analytic=estimate_memory(spec, sharded))


def test_cli_compare_json_and_table(model_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from hf_gpu_estimator.cli import main

    args = ["estimate", str(model_dir), "--task", "training", "--batch-size", "2", "--seq-len", "64"]
    assert main([*args, "--compare", "--format", "json"]) == 0
    out = json.loads(capsys.readouterr().out)
    total = out["difference"]["allocated_peak_bytes"]
    assert total["analytic_bytes"] == out["analytic"]["allocated_peak_bytes"]
    assert total["exact_bytes"] == out["exact"]["allocated_peak_bytes"]
    assert total["difference_bytes"] == total["analytic_bytes"] - total["exact_bytes"]
    assert "workspace" in out["difference"]["components"]
    assert main([*args, "--compare", "--format", "text"]) == 0
    text = capsys.readouterr().out
    assert "analytic vs exact" in text and "allocated peak" in text and "difference" in text
    assert main([*args, "--exact", "--format", "json"]) == 0
    assert json.loads(capsys.readouterr().out)["mode"] == "exact"


# --- LoRA with a *-true precision: the adapters are cast without Module._apply's tensor swap.

def test_cast_floating_does_not_swap_fake_parameters() -> None:
    from torch._subclasses.fake_tensor import FakeTensorMode

    from hf_gpu_estimator._runner import cast_floating_

    with FakeTensorMode():
        model = torch.nn.Sequential(torch.nn.Linear(4, 4), torch.nn.Linear(4, 4))
        model[1].weight = model[0].weight  # tied
        held = weakref.ref(model[0].bias)  # a weakref makes swap_tensors refuse: what .to() trips on
        with pytest.raises(RuntimeError, match="Couldn't swap"):
            model.to(torch.bfloat16)
        cast_floating_(model, torch.bfloat16)
        assert {p.dtype for p in model.parameters()} == {torch.bfloat16}
        assert model[1].weight is model[0].weight
        del held


def test_lora_true_precision_traces_in_a_fresh_process() -> None:
    # The failure showed on the first trace of a process (on CUDA builds always): run one alone.
    code = (
        "from hf_gpu_estimator.trace import trace_workload\n"
        "from hf_gpu_estimator.workload import make_workload\n"
        f"cfg = {TINY!r}\n"
        "r = trace_workload(cfg, make_workload(task='training', method='lora', precision='bf16-true',"
        " batch_size=1, seq_len=32, lora_rank=4))\n"
        "print(r.trainable_parameters, r.optimizer_state_bytes, r.weight_dtype)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    trainable, states, dtype = done.stdout.split()[-3:]
    assert dtype == "bfloat16" and int(trainable) > 0
    # bf16 adapters: AdamW's two states take 2 x 2 bytes per trainable parameter (512-byte blocks).
    assert int(trainable) * 4 <= int(states) < int(trainable) * 4 + 2 * 512 * 64
