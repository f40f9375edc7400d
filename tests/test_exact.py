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

from hf_gpu_estimator import errors as errors_mod  # noqa: E402
from hf_gpu_estimator.errors import TraceError  # noqa: E402
from hf_gpu_estimator.estimator import estimate  # noqa: E402
from hf_gpu_estimator.exact import exact_memory  # noqa: E402
from hf_gpu_estimator.memory import estimate_memory  # noqa: E402
from hf_gpu_estimator.memory.terms import COMPONENTS  # noqa: E402
from hf_gpu_estimator.sources import inspect_model  # noqa: E402
from hf_gpu_estimator.runtime.trace import trace_workload  # noqa: E402
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

    from hf_gpu_estimator.runtime.dtypes import cast_floating_

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
        "from hf_gpu_estimator.runtime.trace import trace_workload\n"
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


# --- every architecture transformers implements: inspecting never vetoes exact mode.

#: RWKV: a recurrent model transformers implements and the analytic side has no family for
#: (its own decoding state instead of a DynamicCache).
TINY_RWKV = {"model_type": "rwkv", "hidden_size": 64, "attention_hidden_size": 64, "intermediate_size": 128,
             "num_hidden_layers": 2, "vocab_size": 512, "context_length": 256, "torch_dtype": "bfloat16"}


def _no_family(config: dict) -> errors_mod.UnsupportedArchitectureError:
    return errors_mod.UnsupportedArchitectureError(config["model_type"], ["llama"], config=config)


def test_exact_traces_a_type_without_analytic_family() -> None:
    from hf_gpu_estimator.runtime.build import build_meta_model
    from hf_gpu_estimator.exact import spec_for_unsupported

    spec = spec_for_unsupported(_no_family(dict(TINY_RWKV)), "tiny-rwkv")
    model = build_meta_model(TINY_RWKV)
    assert spec.parameters.total == sum(p.numel() for p in model.parameters())
    assert spec.config["model_type"] == "rwkv"  # the architecture is what the built module's config gives
    assert any("no analytic family" in a for a in spec.assumptions)
    work = make_workload(task="inference", batch_size=1, seq_len=16, new_tokens=4)
    memory, notes = exact_memory(spec, work, analytic=estimate_memory(spec, work))
    assert memory.allocated_peak_bytes == sum(memory.components.values())
    assert memory.components["weights"] >= spec.parameters.total * 2  # bf16, each tensor rounded to 512 bytes
    assert memory.components["kv_cache"] > 0  # RWKV's recurrent state, returned by the model itself


def test_estimate_exact_falls_back_when_inspection_has_no_family(monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_gpu_estimator.sources as sources

    def unsupported(model: object, **_: object) -> object:
        raise _no_family(dict(TINY))

    monkeypatch.setattr(sources, "inspect_model", unsupported)
    with pytest.raises(errors_mod.UnsupportedArchitectureError):
        estimate(dict(TINY))  # analytic mode still says it has no family
    est = estimate(dict(TINY), mode="exact", task="inference", batch_size=1, seq_len=16, new_tokens=2)
    assert est.spec.parameters.total == inspect_model(dict(TINY)).parameters.total
    assert est.mode == "exact" and est.memory.allocated_peak_bytes > est.memory.components["weights"]


def test_unknown_model_type_says_what_is_supported(tmp_path: Path) -> None:
    config = {"model_type": "not_a_transformers_type", "hidden_size": 64}
    with pytest.raises(errors_mod.UnknownModelTypeError, match="--exact needs a transformers") as info:
        estimate(dict(config), mode="exact")
    assert "analytic estimate covers every model type" in str(info.value) and "llama" in str(info.value)
    assert isinstance(info.value, LookupError) and isinstance(info.value, TraceError)
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    run = subprocess.run([sys.executable, "-m", "hf_gpu_estimator", "estimate", str(folder), "--exact"],
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 1
    lines = [line for line in run.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "not_a_transformers_type" in lines[0] and "--exact needs" in lines[0]


def test_model_class_takes_multimodal_wrappers_and_never_foreign_classes() -> None:
    import transformers

    from hf_gpu_estimator.runtime.build import build_meta_model, make_config, model_class

    # qwen2_5_vl has no *ForCausalLM: its *ForConditionalGeneration generates text.
    cfg = make_config({"model_type": "qwen2_5_vl"})
    assert model_class(cfg).__name__ == "Qwen2_5_VLForConditionalGeneration"
    # architectures[0] is used only when transformers defines it for this config type.
    cfg = make_config({**TINY, "architectures": ["Qwen2ForCausalLM"]})
    assert model_class(cfg) is transformers.LlamaForCausalLM
    cfg = make_config({**TINY, "architectures": ["MyRemoteCodeForCausalLM"], "auto_map": {"x": "y"}})
    assert model_class(cfg) is transformers.LlamaForCausalLM
    model = build_meta_model(TINY)
    assert next(model.parameters()).device.type == "meta"


def test_exact_traces_a_config_the_analytic_model_rejects(monkeypatch: pytest.MonkeyPatch) -> None:
    import hf_gpu_estimator.architectures as architectures

    def reject(config: dict) -> object:
        raise errors_mod.MalformedConfigError("config.json", "field 'x' is None", field="x")

    monkeypatch.setattr(architectures, "architecture_from_config", reject)
    with pytest.raises(errors_mod.MalformedConfigError):
        estimate(dict(TINY))
    est = estimate(dict(TINY), mode="exact", task="inference", batch_size=1, seq_len=16, new_tokens=2)
    assert est.spec.architecture is None and est.memory.allocated_peak_bytes > 0
    assert any("analytic model rejects" in a for a in est.assumptions)
    # A config transformers cannot build either keeps the analytic error.
    with pytest.raises(errors_mod.MalformedConfigError):
        estimate({**TINY, "hidden_size": 63}, mode="exact")


# Per-type adaptations of the runner (runtime/quirks.py: _CAST_TO_WEIGHT_DTYPE, CODEBOOK_TYPES, FULL_SEQUENCE_STEPS): tiny
# configs that failed before them, traced for both workloads.
_ADAPTED = {
    "xlnet": {"model_type": "xlnet", "d_model": 64, "n_layer": 2, "n_head": 4, "d_inner": 96, "vocab_size": 211},
    "cpmant": {"model_type": "cpmant", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
               "dim_head": 16, "dim_ff": 96, "vocab_size": 211, "prompt_length": 4},
    "musicgen": {"model_type": "musicgen", "decoder": {"model_type": "musicgen_decoder", "hidden_size": 64,
                                                       "ffn_dim": 96, "num_hidden_layers": 2,
                                                       "num_attention_heads": 4, "vocab_size": 211,
                                                       "num_codebooks": 3}},
}


@pytest.mark.parametrize("model_type", sorted(_ADAPTED))
def test_runner_adapts_types_that_need_it(model_type: str) -> None:
    config = _ADAPTED[model_type]
    inference = trace_workload(dict(config), make_workload(task="inference", batch_size=2, seq_len=16, new_tokens=4,
                                                           dtype="bfloat16"))
    assert inference.peak_bytes > 0 and inference.kv_cache_bytes
    training = trace_workload(dict(config), make_workload(task="training", batch_size=2, seq_len=16,
                                                          precision="bf16-true"))
    assert training.peak_bytes > training.parameters * 2  # bf16 weights, then gradients and states
    if model_type == "xlnet":  # its float32-built attention weights are cast, and say so
        assert any("cast to bfloat16" in f for f in inference.fallbacks)


def test_pytorch_internal_warnings_are_not_shown() -> None:
    """ModTracker's "Module is None. Skipping PRE_BW hook" and the like say nothing about the model."""
    import warnings

    from hf_gpu_estimator.runtime import trace

    work = make_workload(task="training", batch_size=2, seq_len=16, precision="bf16-true")
    with warnings.catch_warnings(record=True) as raw:
        warnings.simplefilter("always")
        trace.trace_once(dict(_ADAPTED["xlnet"]), work, init="skip", use_cache=False, real_values=False)
    assert any("torch" in w.filename for w in raw)  # PyTorch does warn inside the tracer ...
    with warnings.catch_warnings(record=True) as shown:
        warnings.simplefilter("always")
        trace_workload(dict(_ADAPTED["xlnet"]), work, use_cache=False)
    assert [str(w.message) for w in shown if "torch" in w.filename or "transformers" in w.filename] == []  # ... unseen


@pytest.mark.parametrize("recipe", [
    {"precision": "bf16-true", "quantized_saves_input": True},
    {"precision": "bf16-true", "lora_dropout": 0.1},
    {"precision": "bf16-mixed", "kbit_fp32_casts": True},
], ids=["bnb-keeps-input", "lora-dropout", "kbit-casts"])
def test_exact_traces_the_qlora_recipe(recipe) -> None:
    """Exact mode runs the recipe on its bf16 stand-in of the 4-bit base (bitsandbytes' MatMul4Bit autograd,
    peft's dropout and k-bit casts): the trace grows with the recipe, and the analytic terms follow it
    (within 6 % of the traced peak on this config; reference: the trace)."""
    big = {**TINY, "hidden_size": 256, "intermediate_size": 512}
    work = dict(task="training", batch_size=2, seq_len=256, method="qlora", **recipe)
    plain = dict(work, quantized_saves_input=False, lora_dropout=0.0, kbit_fp32_casts=False)
    exact = estimate(dict(big), mode="exact", **work).memory.allocated_peak_bytes
    assert exact > estimate(dict(big), mode="exact", **plain).memory.allocated_peak_bytes
    analytic = estimate(dict(big), **work).memory.allocated_peak_bytes
    assert abs(analytic / exact - 1) < 0.06


@pytest.mark.slow
@pytest.mark.parametrize(("method", "precision"), [("lora", "bf16-true"), ("full", "bf16-mixed")])
def test_reentrant_checkpointing_matches_the_trace(method: str, precision: str) -> None:
    # The reentrant variant's extra is one layer output held through the layer's backward: the traced step-1
    # backward peaks differ by exactly what the analytic model adds. (After step 1 the tracker keeps the nested
    # recompute's tensors tracked, an artefact exact mode names in its fallbacks.)
    config = dict(TINY, hidden_size=256, intermediate_size=512, num_hidden_layers=4, vocab_size=256)
    spec = inspect_model(dict(config))
    peaks, analytic = {}, {}
    for reentrant in (False, True):
        work = make_workload(task="training", method=method, batch_size=2, seq_len=512, precision=precision,
                             gradient_checkpointing=True, use_reentrant=reentrant)
        traced = trace_workload(dict(config), work, use_cache=False)
        peaks[reentrant] = traced.phase_peaks["backward@1"]
        moments = estimate_memory(spec, work).moments
        analytic[reentrant] = {m.phase: m.total_bytes for m in moments}["backward (top layer)"]
        if reentrant:
            assert any("reentrant" in f for f in traced.fallbacks)
    assert peaks[True] - peaks[False] == analytic[True] - analytic[False] > 0


@pytest.mark.slow
@pytest.mark.parametrize(("method", "precision"), [("full", "bf16-true"), ("lora", "bf16-mixed")])
def test_classification_head_matches_the_trace(method: str, precision: str) -> None:
    # AutoModelForSequenceClassification traced on fake tensors: what the classification head saves against the
    # LM head (a 32k vocabulary) is what the analytic model says, within 1 % of the causal-LM trace.
    config = dict(TINY, hidden_size=256, intermediate_size=512, num_hidden_layers=4, vocab_size=32000)
    spec = inspect_model(dict(config))
    traced, analytic = {}, {}
    for head in ("causal-lm", "classification"):
        work = make_workload(task="training", method=method, batch_size=2, seq_len=512, precision=precision,
                             head=head, num_labels=3 if head == "classification" else None)
        result = trace_workload(dict(config), work, use_cache=False)
        traced[head] = result.peak_bytes
        est = estimate_memory(spec, work)
        analytic[head] = est.allocated_peak_bytes - est.components["workspace"]
    saved_traced = traced["causal-lm"] - traced["classification"]
    saved_analytic = analytic["causal-lm"] - analytic["classification"]
    assert saved_analytic == pytest.approx(saved_traced, rel=0.01)
    assert analytic["classification"] == pytest.approx(traced["classification"], rel=0.02)
    est = estimate(dict(config), mode="exact", task="training", method=method, batch_size=2, seq_len=512,
                   precision=precision, head="classification", num_labels=3)
    assert est.memory.allocated_peak_bytes < analytic["causal-lm"]


@pytest.mark.parametrize("precision", ["bf16-true", "bf16-mixed", "32-true"])
def test_loss_on_16_bit_logits_matches_exact_mode(precision: str) -> None:
    """BartForCausalLM.forward calls nn.CrossEntropyLoss() on the head's output as it is (no fp32 upcast): with a
    vocabulary that dominates, the step peaks at the loss's backward, estimated as traced (Architecture.loss_upcast;
    under autocast nll_loss's fp32 copy, runtime/trace/cuda.py)."""
    config = {"model_type": "bart", "d_model": 64, "decoder_layers": 2, "encoder_layers": 2,
              "decoder_attention_heads": 4, "encoder_attention_heads": 4, "decoder_ffn_dim": 128,
              "encoder_ffn_dim": 128, "vocab_size": 32000, "max_position_embeddings": 1024}
    work = make_workload(task="training", batch_size=2, seq_len=512, precision=precision)
    traced = trace_workload(config, work)
    m = estimate_memory(inspect_model(config), work, detail=False)
    assert traced.phase_at_peak.startswith("backward")
    assert m.allocated_peak_bytes - m.components["workspace"] == pytest.approx(traced.peak_bytes, rel=0.02)
