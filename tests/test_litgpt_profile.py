"""The litgpt / lit-gpt framework profiles: LitGPT's own model code, the previous micro-batch its loop holds, and
Lightning's fp16 4-bit state (memory/recipe.py ``own_model_layer_saved``, ``previous_output_bytes``,
``dequantized_bytes``)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

from hf_gpu_estimator.memory.model import estimate_memory
from hf_gpu_estimator.memory.recipe import dequantized_bytes, own_model_layer_saved, previous_output_bytes
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

ROOT = Path(__file__).resolve().parent.parent
LLAMA = "meta-llama/Llama-2-7b-hf"  # MHA: 32 heads of 128, hidden 4096, intermediate 11008, vocab 32000


@pytest.fixture(scope="module")
def llama():
    return lookup(LLAMA)


def train(**options):
    base = {"task": "training", "batch_size": 2, "seq_len": 512, "precision": "bf16-true", "framework": "litgpt"}
    return make_workload(**{**base, **options})


def test_fused_qkv_lora_on_query_and_value(llama):
    """LitGPT, LoRA on q and v of Llama-2 (multi-head): SDPA's v is a view of the fused qkv output, so its q and
    k parts stay (2 x 4096 x 2 B); LoRAQKVLinear drops the shared input once where peft drops it per projection
    (one mask + copy less: 4096 x 3 B); zero_pad's index_copy saves the q and v deltas (2 x 4096 x 2 B)."""
    work = train(method="lora", lora_targets=["q_proj", "v_proj"], lora_dropout=0.05)
    assert own_model_layer_saved(llama.architecture, work) == 2 * 2 * 4096 - 4096 * 3 + 2 * (4096 + 4096)
    assert own_model_layer_saved(llama.architecture, train(method="lora", framework="hf")) == 0


def test_grouped_query_keys_and_values_are_expanded():
    """TinyLlama (32 query heads, 4 kv heads of 64): LitGPT expands k and v to every query head and copies them;
    full training has no LoRA terms."""
    tiny = lookup("TinyLlama/TinyLlama_v1.1")
    assert own_model_layer_saved(tiny.architecture, train(method="full")) == 2 * 2 * (32 - 4) * 64


def test_expanded_keys_and_values_not_counted_twice_where_transformers_repeats_them():
    """Mistral-7B-v0.1 (32 query heads, 8 kv heads of 128, a 4096-token window): from 4096 tokens transformers
    hands SDPA a sliding mask and repeats k and v itself (memory/activations.py), so LitGPT's copies add nothing."""
    mistral = lookup("mistralai/Mistral-7B-v0.1").architecture
    assert own_model_layer_saved(mistral, train(method="full", seq_len=1024)) == 2 * 2 * (32 - 8) * 128
    assert own_model_layer_saved(mistral, train(method="full", seq_len=4096)) == 0


#: Bytes per token one decoder layer saves for backward in LitGPT's own code, traced on fake tensors (a pack
#: hook on torch.autograd.graph.saved_tensors_hooks over one block, CUDA's dropout mask and SDPA kernel choice,
#: bf16, 256 tokens) from litgpt/model.py + litgpt/lora.py at 43c44323 (f247be87 for Phi-3; lit_gpt at 8641822
#: for phi-1.5) with each published run's LoRA settings. The rank-r LoRA intermediates and zero_pad's int64 index
#: are in the trace, not in the estimate.
TRACED_LAYER_BYTES = {
    "litgpt-tiny-llama-lora-a10g": 108_616,
    "litgpt-gemma-2b-lora-a10g": 206_008,
    "litgpt-llama-2-7b-lora-a10g": 177_160,
    "litgpt-mistral-7b-lora-a10g": 174_504,
    "litgpt-llama-3-8b-lora-a10g": 174_504,
    "litgpt-phi-2-lora-a10g": 110_308,
    "litgpt-phi-3-lora-a10g": 172_280,
    "litgpt-rt-phi-1.5-none-mb1-a100": 59_684,
}


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(ROOT / "benchmarks" / "training_runs"))
    try:
        import run
    finally:
        sys.path.pop(0)
    return run


@pytest.mark.parametrize("run_id", sorted(TRACED_LAYER_BYTES), ids=str)
def test_decoder_layer_matches_the_litgpt_trace(bench, run_id):
    from hf_gpu_estimator import estimate

    run = next(r for r in bench.load_runs() if r["id"] == run_id)
    accepted = bench.accepted_options()
    options = {k: v for k, v in run["settings"].items() if k in accepted}
    est = estimate(run["model"], task="training", framework=run.get("profile", run["framework"]), **options)
    formula = next(t.formula for t in est.memory.terms if t.name.startswith("decoder layers"))
    per_layer = float(re.search(r"x ([\d,]+) B/token", formula).group(1).replace(",", ""))
    assert per_layer == pytest.approx(TRACED_LAYER_BYTES[run_id], rel=0.01)


def test_previous_micro_batch_held_through_the_next_forward(llama):
    """LitGPT fit: the old logits (2 B x vocab per token) and, with bitsandbytes 0.42's MatMul4Bit, every 4-bit
    layer's input of the old step (the four streams its linears read, none of them saved by an adapter when LoRA
    drops its input: attention and MLP inputs, attention output 4096 each, MLP product 11008, x 2 B, 32 layers) and
    the head's input."""
    from hf_gpu_estimator.memory.recipe import recipe_layer_saved

    arch = llama.architecture
    lora = train(method="lora")
    assert previous_output_bytes(arch, lora, 0.0) == 2 * 32000
    qlora = train(method="qlora")
    quantized = 32 * recipe_layer_saved(arch, qlora).quantized_inputs
    assert quantized == 32 * 2 * (3 * 4096 + 11008)
    assert previous_output_bytes(arch, qlora, quantized) == 2 * 32000 + quantized + 2 * 4096
    assert previous_output_bytes(arch, train(method="qlora", framework="lit-gpt"), quantized) == 0
    est = estimate_memory(llama, qlora)
    held = next(m for m in est.moments if m.phase.startswith("forward (head"))
    assert held.components["activations"] > next(m for m in est.moments
                                                 if m.phase == "forward (loss)").components["activations"]


def test_fp16_quant_state_dequantizes_the_head_twice(llama):
    """Lightning quantizes from fp16: the head (32000 x 4096) is dequantized to fp16 and cast to bf16."""
    arch = llama.architecture
    assert dequantized_bytes(arch, train(method="qlora"), head=True) == 32000 * 4096 * (2 + 2)
    assert dequantized_bytes(arch, train(method="qlora", precision="16-true"), head=True) == 32000 * 4096 * 2
    assert dequantized_bytes(arch, train(method="qlora", framework="hf"), head=True) == 0
    assert dequantized_bytes(arch, train(method="lora"), head=True) == 0


def test_litgpt_published_runs_within_ten_percent(bench):
    results = [bench.evaluate(run) for run in bench.load_runs() if run["framework"] == "litgpt"]
    assert len(results) >= 35
    assert not [(r["id"], round(r["error"], 3)) for r in results if abs(r["error"]) > 0.10]


def test_eager_attention_says_the_own_model_is_not_itemized():
    """Gemma-2 runs eager (softcapping): LitGPT's own attention there is not itemized, and the estimate says so."""
    from hf_gpu_estimator import estimate

    gemma2 = lookup("google/gemma-2-2b")
    said = [a for a in estimate(gemma2, task="training", method="qlora", framework="litgpt").assumptions
            if "own model with eager attention" in str(a)]
    assert said
    assert not [a for a in estimate(gemma2, task="training", method="qlora").assumptions
                if "own model with eager attention" in str(a)]


def test_previous_output_of_a_classification_head_is_its_labels(llama):
    """A classification head outputs num_labels values per token, not the vocabulary."""
    arch = llama.architecture
    assert previous_output_bytes(arch, train(method="lora", head="classification", num_labels=3), 0.0) == 2 * 3
