"""Live torch modules, configs and ModelSpecs as sources."""

from __future__ import annotations

import subprocess
import sys

import pytest

from hf_gpu_estimator import errors
from hf_gpu_estimator.sources import inspect_model

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

LLAMA = dict(model_type="llama", hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
             num_key_value_heads=2, vocab_size=256, tie_word_embeddings=True)  # fmt: skip


def test_live_transformers_model_on_meta():
    config = transformers.AutoConfig.for_model(**LLAMA)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    spec = inspect_model(model)
    assert spec.parameters.total == sum(p.numel() for p in model.parameters())  # tied: once
    assert spec.provenance["parameters"] == "module" and spec.stored_dtype == "bfloat16"
    assert spec.architecture is not None and spec.architecture.tie_word_embeddings
    assert spec.parameters.by_role["embedding"] == 256 * 64 and "lm_head" not in spec.parameters.by_role


def test_live_model_counts_the_modules_from_pretrained_keeps_in_float32():
    # The same count as from the Hub headers (sources.headers.kept_fp32_counts over the parameter names):
    # DeepseekV3PreTrainedModel._keep_in_fp32_modules_strict holds the router weights, here one layer's 4 x 64.
    config = transformers.AutoConfig.for_model(
        model_type="deepseek_v3", hidden_size=64, intermediate_size=128, moe_intermediate_size=32,
        num_hidden_layers=1, num_attention_heads=4, num_key_value_heads=4, vocab_size=100, n_routed_experts=4,
        num_experts_per_tok=2, first_k_dense_replace=0, q_lora_rank=None, kv_lora_rank=16, qk_nope_head_dim=8,
        qk_rope_head_dim=8, v_head_dim=16)
    with torch.device("meta"):
        model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    assert inspect_model(model).parameters.kept_fp32 == {"bfloat16": 4 * 64, "float16": 4 * 64}


def test_plain_module():
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.LayerNorm(3))
    spec = inspect_model(model)
    assert spec.parameters.total == 4 * 3 + 3 + 6 and spec.architecture is None
    assert spec.checkpoint_bytes == 21 * 4 and spec.id == "Sequential"


def test_config_dict_and_pretrained_config_agree():
    from_dict = inspect_model(LLAMA)
    from_config = inspect_model(transformers.AutoConfig.for_model(**LLAMA))
    assert from_dict.parameters == from_config.parameters
    assert from_dict.provenance["parameters"] == "config"


def test_model_spec_is_returned_as_is():
    spec = inspect_model(LLAMA)
    assert inspect_model(spec) is spec


def test_unsupported_config_and_bad_source():
    with pytest.raises(errors.UnsupportedArchitectureError):
        inspect_model({"model_type": "no-such-model"})
    with pytest.raises(errors.InvalidArgumentError, match="a Hub id, a path"):
        inspect_model(3.5)


def test_import_is_free_of_torch_and_network():
    code = "import sys, hf_gpu_estimator.sources; print('torch' in sys.modules, 'huggingface_hub' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
