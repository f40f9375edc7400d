"""config.json decoding, stored dtype and quantization_config parsing."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.errors import MalformedConfigError
from hf_gpu_estimator.sources.config import (
    config_from_json_text,
    config_to_dict,
    quantization_from_config,
    stored_dtype_from_config,
)
from hf_gpu_estimator.spec import QuantizationConfig


def test_json_text():
    assert config_from_json_text('{"model_type": "llama"}', source="x") == {"model_type": "llama"}
    with pytest.raises(MalformedConfigError, match="not valid JSON"):
        config_from_json_text("{nope", source="x")
    with pytest.raises(MalformedConfigError, match="JSON list"):
        config_from_json_text("[]", source="x")


def test_to_dict_duck_typing():
    class Cfg:
        def to_dict(self):
            return {"model_type": "gpt2"}

    assert config_to_dict(Cfg()) == {"model_type": "gpt2"}
    with pytest.raises(MalformedConfigError):
        config_to_dict(42)


@pytest.mark.parametrize(
    ("config", "expected"),
    [({"torch_dtype": "bfloat16"}, "bfloat16"), ({"dtype": "torch.float16"}, "float16"),
     ({"dtype": "auto", "torch_dtype": "float32"}, "float32"), ({}, None)],
)  # fmt: skip
def test_stored_dtype(config, expected):
    assert stored_dtype_from_config(config) == expected


def test_stored_dtype_rejects_unknown():
    with pytest.raises(MalformedConfigError, match="torch_dtype='float7'"):
        stored_dtype_from_config({"torch_dtype": "float7"})


@pytest.mark.parametrize(
    ("qc", "expected"),
    [
        ({"quant_method": "bitsandbytes", "load_in_4bit": True, "bnb_4bit_quant_type": "nf4",
          "bnb_4bit_use_double_quant": True, "bnb_4bit_compute_dtype": "bfloat16"},
         QuantizationConfig(method="bitsandbytes", bits=4, quant_type="nf4", double_quant=True, compute_dtype="bfloat16")),
        ({"quant_method": "bitsandbytes", "load_in_8bit": True, "llm_int8_skip_modules": ["lm_head"]},
         QuantizationConfig(method="bitsandbytes", bits=8, quant_type="int8", modules_not_converted=("lm_head",))),
        ({"quant_method": "gptq", "bits": 4, "group_size": 128},
         QuantizationConfig(method="gptq", bits=4, group_size=128)),
        ({"quant_method": "awq", "bits": 4, "group_size": 128, "version": "GEMM"},
         QuantizationConfig(method="awq", bits=4, group_size=128, quant_type="gemm")),
        ({"quant_method": "fp8", "weight_block_size": [128, 128]},
         QuantizationConfig(method="fp8", bits=8, quant_type="e4m3", group_size=128 * 128)),  # weights per scale
        ({"quant_method": "compressed-tensors",
          "config_groups": {"group_0": {"weights": {"num_bits": 4, "type": "int", "group_size": 128}}}},
         QuantizationConfig(method="compressed-tensors", bits=4, group_size=128, quant_type="int4")),
        ({"quant_method": "mxfp4"}, QuantizationConfig(method="mxfp4", bits=4, group_size=32, quant_type="mxfp4")),
    ],
    ids=["nf4", "int8", "gptq", "awq", "fp8", "compressed-tensors", "mxfp4"],
)  # fmt: skip
def test_quantization(qc, expected):
    assert quantization_from_config({"quantization_config": qc}) == expected


def test_quantization_absent_and_unknown():
    assert quantization_from_config({}) is None
    with pytest.raises(MalformedConfigError, match="'hqq' is not supported"):
        quantization_from_config({"quantization_config": {"quant_method": "hqq"}})
    with pytest.raises(MalformedConfigError, match="expected an integer from 1 to 16"):
        quantization_from_config({"quantization_config": {"quant_method": "gptq", "bits": "4"}})
