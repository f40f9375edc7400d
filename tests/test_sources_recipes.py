"""Training config files as input (sources/recipes.py): each format's keys to the estimator's options."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from hf_gpu_estimator.errors import MalformedConfigError
from hf_gpu_estimator.sources.recipes import merge_recipes, parse_recipe, read_recipe
from hf_gpu_estimator.workload import make_workload

DATA = Path(__file__).resolve().parent / "data" / "recipes"

CASES = {
    "axolotl-qlora.yml": ("axolotl", "mistralai/Mistral-7B-v0.1", {
        "method": "qlora", "batch_size": 2, "seq_len": 2048, "lora_rank": 32, "lora_dropout": 0.05,
        "lora_targets": ("all-linear",), "gradient_checkpointing": True, "optimizer": "paged-adamw",
        "attn_implementation": "flash_attention_2", "precision": "bf16-mixed", "framework": "axolotl"}),
    "llama-factory-lora.yaml": ("llama-factory", "meta-llama/Meta-Llama-3-8B-Instruct", {
        "method": "qlora", "batch_size": 1, "seq_len": 1024, "lora_rank": 8, "lora_targets": ("all-linear",),
        "gradient_checkpointing": True, "gradient_accumulation_steps": 8}),
    "torchtune-3B-qlora.yaml": ("torchtune", "meta-llama/Llama-3.2-3B", {
        "method": "qlora", "batch_size": 2, "seq_len": 4096, "lora_rank": 64, "double_quant": True,
        "lora_targets": ("q_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"), "loss": "chunked-fp32",
        "activation_offloading": True, "torch_compile": True, "precision": "bf16-true"}),
    "litgpt-qlora.yaml": ("litgpt", "meta-llama/Llama-2-7b-hf", {
        "method": "qlora", "batch_size": 2, "seq_len": 512, "lora_rank": 32, "lora_targets": ("q_proj", "v_proj"),
        "double_quant": False, "precision": "bf16-true", "optimizer": "paged-adamw", "gradient_accumulation_steps": 4}),
    "trl-sft-qlora.json": ("trl", "Qwen/Qwen2.5-7B", {
        "method": "qlora", "batch_size": 4, "seq_len": 2048, "lora_rank": 16, "optimizer": "paged-adamw-8bit",
        "lora_targets": ("q_proj", "k_proj", "v_proj", "o_proj")}),
    "accelerate-fsdp.yaml": ("accelerate", None, {
        "num_gpus": 2, "strategy": "fsdp", "offload_params": True, "precision": "bf16-mixed"}),
    "deepspeed-zero2-buckets.json": ("deepspeed", None, {
        "strategy": "zero2", "reduce_bucket_size": 200_000_000, "allgather_bucket_size": 200_000_000,
        "batch_size": 4}),
    "trl-sft-reentrant.json": ("trl", "Qwen/Qwen2.5-0.5B", {
        "method": "full", "gradient_checkpointing": True, "use_reentrant": False, "seq_len": 1024}),
    "axolotl-classifier.yml": ("axolotl", "meta-llama/Llama-3.2-1B", {
        "head": "classification", "num_labels": 4, "seq_len": 512, "gradient_checkpointing": True}),
    "deepspeed-zero3-offload.json": ("deepspeed", None, {
        "strategy": "zero3", "offload_optimizer": True, "offload_params": True}),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(CASES), ids=str)
def test_config_file_sets_the_workload(name):
    kind, model, expected = CASES[name]
    recipe = read_recipe(DATA / name)
    assert (recipe.kind, recipe.model) == (kind, model)
    assert {k: recipe.options.get(k) for k in expected} == expected
    if recipe.model is not None:
        make_workload(**recipe.options)  # every option is one make_workload takes


def test_keys_nothing_reads_are_reported():
    recipe = read_recipe(DATA / "trl-sft-qlora.json")
    assert recipe.unknown == ("frobnicate_layers",)
    assert "learning_rate" in recipe.no_effect
    assert all(not read_recipe(DATA / name).unknown for name in CASES if name != "trl-sft-qlora.json")


def test_files_of_one_run_merge_in_order():
    merged = merge_recipes([read_recipe(DATA / "trl-sft-qlora.json"),
                            read_recipe(DATA / "deepspeed-zero3-offload.json")])
    assert merged.model == "Qwen/Qwen2.5-7B" and merged.kind == "trl+deepspeed"
    assert merged.options["strategy"] == "zero3" and merged.options["lora_rank"] == 16


@pytest.mark.parametrize("data", [[1, 2], {"learning_rate": 1e-4}], ids=["not-a-mapping", "no-format"])
def test_unreadable_config_names_the_file(data):
    with pytest.raises(MalformedConfigError, match="run.yaml"):
        parse_recipe(data, name="run.yaml")


def test_cli_estimate_reads_a_config(tmp_path, capsys):
    from hf_gpu_estimator.cli import main

    assert main(["estimate", "--config", str(DATA / "litgpt-qlora.yaml"), "--batch-size", "3", "--format", "json"]) == 0
    out, err = capsys.readouterr()
    payload = json.loads(out)
    assert payload["model"]["id"] == "meta-llama/Llama-2-7b-hf"
    assert payload["workload"]["framework"] == "litgpt" and payload["workload"]["batch_size"] == 3  # the flag wins
    assert "LitGPT LoRA switches" in err


def test_cli_config_without_a_model_is_a_bad_argument(capsys):
    from hf_gpu_estimator.cli import main

    assert main(["estimate", "--config", str(DATA / "deepspeed-zero3-offload.json")]) == 2
    assert "names no model" in capsys.readouterr().err
