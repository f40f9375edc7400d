"""Bad input at every entry point, table-driven.

The Python API raises a typed ``InvalidArgumentError`` (or another ``EstimatorError``) whose
one-line message names the field, the value and what is accepted; the CLI exits 2 with one
line on stderr and no traceback; the integrations warn and let the run continue.
"""

from __future__ import annotations

import math

import pytest

from hf_gpu_estimator import errors
from hf_gpu_estimator.cli import main
from hf_gpu_estimator.estimator import estimate
from hf_gpu_estimator.sources import inspect_model
from hf_gpu_estimator.workload import make_workload

GPT2 = {"model_type": "gpt2", "n_layer": 2, "n_embd": 64, "n_head": 4, "vocab_size": 128, "n_positions": 64}

# (field, bad value, the words the message must hold besides the field)
WORKLOAD_CASES = [
    ("task", "train", ()), ("task", 1, ()),
    ("method", "LoRA-XL", ()), ("method", ["lora"], ()),
    ("batch_size", 0, (">= 1",)), ("batch_size", -3, (">= 1",)), ("batch_size", 1.5, ()), ("batch_size", "8", ()),
    ("batch_size", True, ()), ("batch_size", None, ()), ("batch_size", float("nan"), ()),
    ("seq_len", 0, (">= 1",)), ("seq_len", -1, ()), ("seq_len", "2048", ()), ("seq_len", 2.0, ()),
    ("new_tokens", -1, (">= 0",)), ("new_tokens", "5", ()),
    ("dtype", "int4", ("float16",)), ("dtype", 16, ()), ("dtype", "", ()),
    ("precision", "64-true", ()), ("precision", 16, ()),
    ("optimizer", "adamw9000", ()), ("optimizer", None, ()),
    ("gradient_checkpointing", "yes", ("True, False or 'unsloth'",)), ("gradient_checkpointing", 1, ()),
    ("gradient_accumulation_steps", 0, ()),
    ("attn_implementation", "flash3", ()),
    ("quantization", "int3", ()), ("quantization", 4, ()),
    ("kv_cache_dtype", "int2", ()),
    ("lora_rank", 0, ()), ("lora_rank", -8, ()), ("lora_alpha", 0, ()),
    ("lora_targets", "", ()), ("lora_targets", [1, 2], ()), ("lora_targets", ["q_proj", ""], ()),
    ("num_gpus", 0, ()), ("num_gpus", -2, ()), ("num_gpus", 2.0, ()),
    ("strategy", "zero4", ()), ("tp", 0, ()), ("pp", -1, ()),
    ("offload_optimizer", "no", ()), ("offload_params", 1, ()),
]  # fmt: skip
TRAINING_FIELDS = {"method", "precision", "optimizer", "gradient_checkpointing", "gradient_accumulation_steps",
                   "lora_rank", "lora_alpha", "lora_targets", "strategy", "offload_optimizer", "offload_params"}  # fmt: skip


def _base(field: str) -> dict:
    if field in TRAINING_FIELDS:
        base = {"task": "training", "method": "lora"}
        if field in ("strategy", "offload_optimizer", "offload_params"):
            base.update(num_gpus=2, strategy="zero3")
        return base
    return {}


def _check_message(e: BaseException, field: str, value: object) -> str:
    message = str(e)
    assert message and "\n" not in message, repr(message)
    name = field.split("_")[0]
    assert name in message, message
    if not (isinstance(value, float) and math.isnan(value)):
        assert repr(value)[:20] in message or str(value)[:20] in message, message
    return message


@pytest.mark.parametrize(("field", "value", "words"), WORKLOAD_CASES,
                         ids=[f"{f}={v!r}" for f, v, _ in WORKLOAD_CASES])  # fmt: skip
def test_make_workload_rejects(field, value, words):
    with pytest.raises(errors.InvalidArgumentError) as info:
        make_workload(**{**_base(field), field: value})
    message = _check_message(info.value, field, value)
    assert info.value.accepted
    for w in words:
        assert w in message, message


@pytest.mark.parametrize(("field", "value", "words"), WORKLOAD_CASES[:12],
                         ids=[f"{f}={v!r}" for f, v, _ in WORKLOAD_CASES[:12]])  # fmt: skip
def test_estimate_rejects_the_same(field, value, words):
    with pytest.raises(errors.InvalidArgumentError):
        estimate(GPT2, **{**_base(field), field: value})


CONFLICTS = [
    {"task": "inference", "method": "lora"},
    {"task": "training", "quantization": "nf4"},  # full training of quantized weights
    {"task": "training", "method": "qlora", "quantization": "int8"},
    {"task": "training", "strategy": "zero3"},  # one GPU
    {"task": "training", "num_gpus": 3, "tp": 2},
    {"num_gpus": 2, "strategy": "ddp"},  # inference
    {"task": "training", "num_gpus": 2, "strategy": "ddp", "offload_optimizer": True},
    {"num_gpus": 4, "tp": 2},  # inference tp*pp != gpus
]


@pytest.mark.parametrize("options", CONFLICTS, ids=[",".join(f"{k}={v}" for k, v in o.items()) for o in CONFLICTS])
def test_conflicting_options(options):
    with pytest.raises(errors.ConflictingOptionsError) as info:
        make_workload(**options)
    assert "\n" not in str(info.value) and ("--" in str(info.value) or "pass" in str(info.value))


API_CASES = [
    ("unknown-option", lambda: estimate(GPT2, batchsize=4), errors.UnknownNameError, "batchsize"),
    ("mode", lambda: estimate(GPT2, mode="fast"), errors.InvalidArgumentError, "mode"),
    ("gpu-unknown", lambda: estimate(GPT2, gpu="H9000"), errors.UnknownNameError, "H9000"),
    ("gpu-wrong-type", lambda: estimate(GPT2, gpu=80), errors.EstimatorError, "80"),
    ("model-int", lambda: inspect_model(42), errors.InvalidArgumentError, "model"),
    ("model-none", lambda: inspect_model(None), errors.InvalidArgumentError, "model"),
    ("model-list", lambda: estimate(["gpt2"]), errors.InvalidArgumentError, "model"),
    ("model-empty", lambda: inspect_model(""), errors.EstimatorError, ""),
    ("model-nul", lambda: inspect_model("org/na\0me"), errors.ModelNotFoundError, "org/na"),
    ("model-long", lambda: inspect_model("o/" + "x" * 5000), errors.ModelNotFoundError, "xxxx"),
    ("model-long-path", lambda: inspect_model("/" + "x" * 5000), errors.ModelNotFoundError, "xxxx"),
    ("model-bad-id", lambda: inspect_model("a/b/c/d"), errors.ModelNotFoundError, "a/b/c/d"),
    ("revision-for-path", lambda: inspect_model(".", revision="main"), errors.InvalidArgumentError, "revision"),
    ("config-empty", lambda: inspect_model({}), errors.MalformedConfigError, "model_type"),
    ("config-bad-to-dict", lambda: inspect_model(type("C", (), {"to_dict": lambda self: [1]})()),
     errors.MalformedConfigError, "to_dict"),
    ("config-bad-dtype", lambda: inspect_model({**GPT2, "torch_dtype": "float128"}), errors.MalformedConfigError,
     "float128"),
    ("config-bad-quant", lambda: inspect_model({**GPT2, "quantization_config": {"quant_method": "magic"}}),
     errors.MalformedConfigError, "magic"),
    ("config-quant-not-object", lambda: inspect_model({**GPT2, "quantization_config": [4]}),
     errors.MalformedConfigError, "quantization_config"),
    ("seq-len-over-limit", lambda: estimate(GPT2, seq_len=65), errors.ConflictingOptionsError, "64"),
    ("context-over-limit", lambda: estimate(GPT2, seq_len=32, new_tokens=33), errors.ConflictingOptionsError, "64"),
    ("config-quant-bits", lambda: inspect_model({**GPT2, "quantization_config": {"quant_method": "gptq", "bits": "4"}}),
     errors.MalformedConfigError, "bits"),
]  # fmt: skip


@pytest.mark.parametrize(("call", "error", "words"), [c[1:] for c in API_CASES], ids=[c[0] for c in API_CASES])
def test_api_entry_points(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert "\n" not in str(info.value) and words in str(info.value), str(info.value)


# est.fits() without a GPU answers over the judged GPUs (issue 21), so gpu=None is no longer an error
FITS_CASES = [({"gpu": "H9000"}, errors.UnknownNameError), ({"gpu": ""}, errors.InvalidArgumentError),
              ({"gpu": "A100-80GB", "margin": -0.1}, errors.InvalidArgumentError),
              ({"gpu": "A100-80GB", "margin": 0.9}, errors.InvalidArgumentError),
              ({"gpu": "A100-80GB", "margin": float("nan")}, errors.InvalidArgumentError),
              ({"gpu": "A100-80GB", "margin": "0.1"}, errors.InvalidArgumentError),
              ({"gpu": "A100-80GB", "margin": True}, errors.InvalidArgumentError)]  # fmt: skip


@pytest.mark.parametrize(("kwargs", "error"), FITS_CASES, ids=[repr(k) for k, _ in FITS_CASES])
def test_estimate_fits(kwargs, error):
    est = estimate(GPT2)
    gpu = kwargs.pop("gpu")
    with pytest.raises(error) as info:
        est.fits(gpu, **kwargs)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("method", ["max_batch_size", "max_seq_len", "min_gpus", "headroom_bytes"])
@pytest.mark.parametrize("gpu", [None, "H9000", 12])
def test_planner_methods_reject_bad_gpus(method, gpu):
    est = estimate(GPT2)
    with pytest.raises(errors.EstimatorError) as info:
        getattr(est, method)(gpu)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("margin", [-1, 0.7, float("nan"), "x"])
@pytest.mark.parametrize("method", ["max_batch_size", "max_seq_len", "min_gpus"])
def test_planner_methods_reject_bad_margins(method, margin):
    est = estimate(GPT2)
    with pytest.raises(errors.InvalidArgumentError) as info:
        getattr(est, method)("A100-80GB", margin=margin)
    assert "margin" in str(info.value)


def test_absurd_but_valid_sizes_do_not_crash():
    est = estimate({**GPT2, "n_positions": 2 * 10**9}, batch_size=10**12, seq_len=10**9, new_tokens=10**9)
    assert est.memory.device_total_bytes > 0 and not est.fits("A100-80GB")
    est.to_dict()
    str(est)


# --- the CLI ----------------------------------------------------------------------------------

M = "gpt2"  # a bundled catalog id: the CLI cases need no network
CLI_CASES = [
    ["estimate", M, "--batch-size", "0"], ["estimate", M, "--batch-size", "-1"], ["estimate", M, "--batch-size", "x"],
    ["estimate", M, "--batch-size", "1.5"], ["estimate", M, "--seq-len", "0"], ["estimate", M, "--seq-len", "1e3"],
    ["estimate", M, "--new-tokens", "-1"], ["estimate", M, "--task", "pretrain"], ["estimate", M, "--method", "dora"],
    ["estimate", M, "--dtype", "int4"], ["estimate", M, "--precision", "8-true", "--task", "training"],
    ["estimate", M, "--optimizer", "adam9", "--task", "training"], ["estimate", M, "--attn-implementation", "fa9"],
    ["estimate", M, "--quantization", "int3"], ["estimate", M, "--kv-cache-dtype", "int2"],
    ["estimate", M, "--lora-rank", "0", "--task", "training", "--method", "lora"],
    ["estimate", M, "--lora-alpha", "-4"], ["estimate", M, "--lora-targets", ",", "--task", "training", "--method", "lora"],
    ["estimate", M, "--num-gpus", "0"], ["estimate", M, "--tp", "0"], ["estimate", M, "--pp", "-2"],
    ["estimate", M, "--strategy", "zero9", "--task", "training", "--num-gpus", "2"],
    ["estimate", M, "--gradient-accumulation-steps", "0"], ["estimate", M, "--gpu", "H9000"],
    ["estimate", M, "--format", "yaml"], ["estimate", M, "--method", "lora", "--task", "inference"],
    ["estimate", M, "--seq-len", "2000"], ["estimate", M, "--task", "training", "--seq-len", "1025"],
    ["estimate", M, "--seq-len", "1000", "--new-tokens", "100"],
    ["estimate", M, "--gpu", "RTX-4090,H9000"], ["estimate", M, "--gpu", "RTX-4090,"],
    ["estimate", M, "--dtype", "float32,int4"], ["estimate", M, "--quantization", "none,int3"],
    ["estimate", M, "--dtype", ","], ["estimate", M, "--gpu", "A100"], ["estimate", M, "--gpu", ""],
    ["estimate", M, "--gpu", "RTX-4090", "--gpu", "H9000"], ["estimate", M, "--compare", "--seq-len", "5000"],
    ["estimate", M, "--task", "training", "--method", "qlora", "--dtype", "int8"],
    ["plan", M, "--gpu", "A100-80GB", "--seq-len", "5000"], ["plan", M, "--gpu", "A100"],
    ["measure", M, "--seq-len", "5000", "--device", "cpu"],
    ["preflight", "--accelerate-config", "x.yaml", M, "--gpu", "A100"],
    ["estimate", M, "--task", "training", "--quantization", "nf4"], ["estimate", M, "--strategy", "zero3", "--task", "training"],
    ["estimate", M, "--num-gpus", "3", "--tp", "2"], ["estimate", M, "--task", "training", "--offload-optimizer"],
    ["estimate", M, "--no-such-flag"], ["estimate"], ["frobnicate", M], [],
    ["inspect", M, "--format", "xml"], ["inspect", M, "--revision", "main", "--no-such"],
    ["gpus", "--vendor", "nvidiaa"], ["gpus", "--min-memory-gib", "-1"], ["gpus", "--min-memory-gib", "nan"],
    ["gpus", "--min-memory-gib", "inf"], ["gpus", "--min-memory-gib", "lots"],
    ["plan", M, "--gpu", "H9000"], ["plan", M, "--gpu", "A100-80GB", "--gpu-memory-utilization", "0"],
    ["plan", M, "--gpu", "A100-80GB", "--gpu-memory-utilization", "1.5"],
    ["plan", M, "--gpu", "A100-80GB", "--gpu-memory-utilization", "nan"],
    ["plan", M, "--gpu", "A100-80GB", "--max-model-len", "0"],
    ["plan", M, "--gpu", "L4", "--engine", "tgi"], ["plan", M, "--gpu", "L4", "--vllm-version", "0.5"],
    ["plan", M, "--gpu", "L4", "--engine", "sglang", "--mem-fraction-static", "0"],
    ["plan", M, "--gpu", "L4", "--engine", "sglang", "--gpu-memory-utilization", "0.8"],
    ["plan", M, "--gpu", "L4", "--ctx-size", "4096"], ["plan", M, "--gpu", "L4", "--tp", "5"],
    ["plan", M, "--gpu", "L4", "--engine", "llama.cpp", "-np", "0"], ["plan", M, "--gpu", "L4", "-ngl", "-2"],
    ["plan", M, "--gpu", "L4", "--max-model-len", "4096"], ["plan", M, "--cheapest", "--gpu", "H9000"],
    ["plan", M, "--cheapest", "--gpu", ","],
    ["plan", M, "--cheapest", "--request-rate", "-1", "--input-tokens", "8", "--output-tokens", "8"],
    ["plan", M, "--cheapest", "--request-rate", "inf", "--input-tokens", "8", "--output-tokens", "8"],
    ["plan", M, "--cheapest", "--request-rate", "1", "--input-tokens", "0", "--output-tokens", "8"],
    ["plan", M, "--cheapest", "--request-rate", "1", "--input-tokens", "8", "--output-tokens", "8", "--tpot-ms", "-5"],
    ["plan", M, "--cheapest", "--task", "training", "--method", "lora"],
    ["plan", M, "--cheapest", "--task", "training", "--method", "lora", "--token-budget", "nan"],
    ["plan", M, "--cheapest", "--task", "training", "--method", "lora", "--token-budget", "1e9", "--deadline-hours", "0"],
    ["preflight", M], ["preflight", "--accelerate-config", "x.yaml", M, "--device-memory-gib", "0"],
    ["preflight", "--accelerate-config", "x.yaml", M, "--device-memory-gib", "nan"],
    ["preflight", "--accelerate-config", "x.yaml", M, "--gpu", "A100-80GB", "--device-memory-gib", "8"],
]  # fmt: skip


@pytest.mark.parametrize("argv", CLI_CASES, ids=[" ".join(a) or "(nothing)" for a in CLI_CASES])
def test_cli_bad_arguments_exit_2_with_one_line(argv, capsys, offline):
    try:
        code = main(argv)
    except SystemExit as e:  # argparse
        code = e.code
    out, err = capsys.readouterr()
    assert code == 2, (code, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "Traceback" not in err, err
    assert out == ""


def test_cli_internal_errors_are_one_line_with_exit_1(capsys, monkeypatch):
    import hf_gpu_estimator.estimator as estimate_module

    monkeypatch.setattr(estimate_module, "estimate", lambda *a, **k: 1 / 0)
    assert main(["estimate", M]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "ZeroDivisionError" in err and "HFGE_DEBUG" in err


# --- the integrations: warn, never stop the run ------------------------------------------------

def test_integrations_warn_and_continue_on_bad_input(caplog):
    core = pytest.importorskip("hf_gpu_estimator.integrations._core")
    import logging

    caplog.set_level(logging.WARNING)
    for kwargs in ({"batch_size": 0}, {"optimizer": "adam9"}, {"task": "train"}, {"num_gpus": -1},
                   {"seq_len": 10**6}, {"task": "inference", "method": "lora"}):
        result = core.evaluate(inspect_model(GPT2), workload_kwargs=kwargs, gpu="A100-80GB")
        assert result.status == "failed" and result.error and "\n" not in str(result.error)
    for gpu in ("H9000", "A100", "H100"):  # unknown, ambiguous: warned, the run continues
        result = core.evaluate(inspect_model(GPT2), workload_kwargs={}, gpu=gpu)
        assert result.status == "failed" and "skipped" in result.message and gpu in result.message
    with pytest.warns(UserWarning, match="below 1 GiB"):
        core.validate_options(device_memory_bytes=24)
