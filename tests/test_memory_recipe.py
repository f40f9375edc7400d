"""The training recipe's memory terms (memory/recipe.py) and the framework profiles (frameworks.py)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from hf_gpu_estimator.errors import ConflictingOptionsError, InvalidArgumentError, UnknownNameError
from hf_gpu_estimator.frameworks import FRAMEWORKS, framework_profile
from hf_gpu_estimator.memory.model import estimate_memory
from hf_gpu_estimator.sources.catalog import lookup
from hf_gpu_estimator.workload import make_workload

ROOT = Path(__file__).resolve().parent.parent
LLAMA = "meta-llama/Llama-2-7b-hf"  # hidden 4096, intermediate 11008, 32 layers, vocab 32000


@pytest.fixture(scope="module")
def llama():
    return lookup(LLAMA)


def train(**options):
    base = {"task": "training", "batch_size": 2, "seq_len": 512, "precision": "bf16-true"}
    return make_workload(**{**base, **options})


@pytest.mark.parametrize("name", sorted(FRAMEWORKS), ids=str)
def test_every_profile_names_its_source_and_release(name):
    profile = framework_profile(name)
    assert profile.source.startswith("https://") and profile.release
    work = train(method="qlora", framework=name)
    assert work.framework == name and work.loss == profile.loss
    assert work.quantized_saves_input is profile.quantized_saves_input


def test_framework_defaults_yield_to_explicit_options():
    work = train(method="qlora", framework="litgpt", loss="hf", lora_dropout=0.0, quantized_saves_input=False)
    assert (work.loss, work.lora_dropout, work.quantized_saves_input) == ("hf", 0.0, False)
    assert make_workload(task="training", framework="Transformers").framework == "hf"


@pytest.mark.parametrize(("options", "error"), [
    ({"framework": "deepspeed-chat"}, UnknownNameError),
    ({"lora_dropout": 1.5}, InvalidArgumentError),
    ({"loss": "fused"}, UnknownNameError),
    ({"optimizer_in_backward": True, "gradient_accumulation_steps": 4}, ConflictingOptionsError),
], ids=["framework", "dropout", "loss", "optimizer-in-backward"])
def test_bad_recipe_options_name_the_field(options, error):
    with pytest.raises(error) as info:
        train(method="lora", **options)
    assert next(iter(options)) in str(info.value)


def test_quantized_inputs_kept_per_stream(llama):
    """bitsandbytes < 0.43.2 keeps each 4-bit matmul's input: per layer, the streams that no LoRA adapter
    already saves (q/v adapters save the attention input): o_proj's (4096), the MLP's (4096) and
    down_proj's (11008), 2 bytes each, for every token of every layer (no checkpointing)."""
    plain = estimate_memory(llama, train(method="qlora"))
    kept = estimate_memory(llama, train(method="qlora", quantized_saves_input=True))
    expected = 2 * 512 * 32 * 2 * (4096 + 4096 + 11008)
    assert kept.components["activations"] - plain.components["activations"] == expected


def test_lora_dropout_saves_masks_and_dropped_copies(llama):
    """Without autocast each adapted module saves a dropped copy and a bool mask of its input (q and v:
    2 x 4096 x 3 bytes) in place of the input the adapters shared (4096 x 2 bytes)."""
    plain = estimate_memory(llama, train(method="lora"))
    dropped = estimate_memory(llama, train(method="lora", lora_dropout=0.05))
    expected = 2 * 512 * 32 * (2 * 4096 * 3 - 4096 * 2)
    assert dropped.components["activations"] - plain.components["activations"] == expected


def test_lora_on_lm_head_trains_the_head_adapter(llama):
    plain = estimate_memory(llama, train(method="lora", lora_rank=8))
    head = estimate_memory(llama, train(method="lora", lora_rank=8, lora_on_lm_head=True))
    params = 8 * (4096 + 32000)
    plain_grads, head_grads = (next(t.bytes for t in e.terms if t.name == "gradients") for e in (plain, head))
    assert head_grads - plain_grads == params * 2


def test_double_quant_off_stores_fp32_absmax(llama):
    dq = estimate_memory(llama, train(method="qlora"))
    single = estimate_memory(llama, train(method="qlora", double_quant=False))
    quantized = 6_476_005_376  # linear weights of the decoder layers
    extra = quantized * ((4 + 32 / 64) - (4 + 8 / 64 + 32 / (64 * 256))) / 8
    assert single.components["weights"] - dq.components["weights"] == pytest.approx(extra, abs=2)


def test_kbit_casts_make_the_unquantized_parameters_fp32(llama):
    plain = estimate_memory(llama, train(method="qlora"))
    cast = estimate_memory(llama, train(method="qlora", kbit_fp32_casts=True))
    rest = 262_410_240  # embeddings, head and norms
    assert cast.components["weights"] - plain.components["weights"] == rest * 2


def test_paged_optimizer_states_are_outside_the_allocator(llama):
    est = estimate_memory(llama, train(method="full", optimizer="paged-adamw-8bit"))
    assert est.components["optimizer_states"] == 0
    assert any("unified" in a for a in est.assumptions)


def test_optimizer_in_backward_keeps_one_layer_of_gradients(llama):
    full = estimate_memory(llama, train(method="full", optimizer="adamw-8bit"))
    fused = estimate_memory(llama, train(method="full", optimizer="adamw-8bit", optimizer_in_backward=True))
    assert fused.components["gradients"] < full.components["gradients"] / 10
    assert fused.allocated_peak_bytes < full.allocated_peak_bytes


def test_chunked_loss_has_no_fp32_logits(llama):
    hf = estimate_memory(llama, train(method="lora", seq_len=2048))
    chunked = estimate_memory(llama, train(method="lora", seq_len=2048, loss="chunked"))
    assert chunked.allocated_peak_bytes < hf.allocated_peak_bytes


def test_torchtune_compiled_loss_keeps_no_vocabulary_wide_fp32(llama):
    """torchtune compile=True compiles the loss on its own: the fused cross-entropy saves its input and two fp32
    values per token and allocates only the input-shaped gradient in backward (benchmarks/training_runs/
    compiled_loss.py, inductor on the CPU)."""
    from hf_gpu_estimator.memory.recipe import COMPILED_CE_ROW_BYTES, loss_terms

    arch, V, row = llama.architecture, 32000, COMPILED_CE_ROW_BYTES
    chunked = train(method="lora", seq_len=2048, framework="torchtune", torch_compile=True)
    assert chunked.loss == "chunked-fp32"
    assert loss_terms(arch, chunked) == (2 * V + row, 2 * V + row, 2 * V * (1 + 1 / 8) + row)
    whole = train(method="lora", seq_len=2048, framework="torchtune", loss="hf", torch_compile=True)
    assert loss_terms(arch, whole) == (4 * V + row, 2 * V + 4 * V + row, 8 * V + row)
    # The full-finetune recipe drops compile_loss's return value: a whole loss stays eager there.
    full = train(method="full", seq_len=2048, framework="torchtune", loss="hf", torch_compile=True)
    assert loss_terms(arch, full) == loss_terms(arch, train(method="full", seq_len=2048))
    # So does lora_finetune_distributed (more than one GPU).
    ddp = train(method="lora", seq_len=2048, framework="torchtune", loss="hf", torch_compile=True, num_gpus=2)
    assert loss_terms(arch, ddp) == loss_terms(arch, train(method="lora", seq_len=2048, num_gpus=2))
    eager = train(method="lora", seq_len=2048, framework="torchtune", loss="hf")
    hf_compiled = train(method="lora", seq_len=2048, loss="hf", torch_compile=True)
    assert loss_terms(arch, hf_compiled) == loss_terms(arch, eager) == loss_terms(arch, train(method="lora", seq_len=2048))


def _chunked_head_backward_peak(trainable_head: bool, vocab: int, hidden: int, tokens: int, chunks: int) -> int:
    """Peak bytes under torch's MemTracker of torchtune's chunked tied head and compiled chunked loss,
    the loss standing in with what the inductor trace shows: it saves the chunk and two fp32 values per token, and
    its backward allocates one chunk-shaped 16-bit gradient. Real CPU tensors: the autograd engine sums gradients in
    place only for plain tensors (torch/csrc/autograd/input_buffer.cpp ``can_accumulate_inplace``), not fake ones."""
    import torch
    import torch.nn.functional as F
    from torch.distributed._tools.mem_tracker import MemTracker

    class CompiledChunkLoss(torch.autograd.Function):
        @staticmethod
        def forward(ctx, logits):
            rows = logits.new_empty((logits.shape[0], 2), dtype=torch.float32)
            ctx.save_for_backward(logits, rows)
            return logits.new_zeros((), dtype=torch.float32)

        @staticmethod
        def backward(ctx, grad):
            logits, _ = ctx.saved_tensors
            return torch.empty_like(logits)

    embedding = torch.nn.Embedding(vocab, hidden, dtype=torch.bfloat16)
    embedding.weight.requires_grad_(trainable_head)
    h = torch.zeros(tokens, hidden, dtype=torch.bfloat16, requires_grad=True)
    tracker = MemTracker()
    tracker.track_external(embedding)
    with tracker:
        logits = [F.linear(chunk, embedding.weight) for chunk in h.chunk(chunks)]  # chunked_output, TiedLinear
        loss = sum(CompiledChunkLoss.apply(chunk) for chunk in logits)
        del logits
        loss.backward()
    peak = tracker.get_tracker_snapshot("peak")
    return max(snap["Total"] for snap in peak.values())


@pytest.mark.parametrize("trainable_head", [False, True], ids=["frozen-head", "trained-head"])
@pytest.mark.parametrize("T", [128, 512, 2048], ids=["chunk-1/12-head", "chunk-1/3-head", "chunk-4/3-head"])
def test_torchtune_chunked_head_backward_matches_the_trace(trainable_head, T):
    """The loss backward of torchtune's chunked head: every chunk (or its gradient) and one more chunk; with a trained
    head, each chunk's head backward adds a whole weight gradient to the sum: 3 x (weight gradient - one chunk) more,
    none once a chunk outgrows the weight (memory/model.py). Llama 3.2 3B's ratio of chunk to head (tokens / 8 /
    hidden = 1/3) at a sixteenth of its size, and a smaller and a larger chunk."""
    V, H, chunks = 8016, 192, 8
    traced = _chunked_head_backward_peak(trainable_head, V, H, T, chunks)
    weight, chunk = V * H * 2, T * 2 * V / chunks
    analytic = weight + chunks * chunk + chunk + T * H * 2 + (3 * max(0, weight - chunk) if trainable_head else 0)
    assert abs(traced - analytic) / analytic < 0.01, (traced, analytic)


def test_activation_offloading_keeps_one_layer_input_on_the_device(llama):
    """torchtune OffloadActivations keeps the last 5 saved tensors on the device; with checkpointing that is the
    final norm's and at most one layer input; the embedding output goes with layer 0's."""
    work = dict(method="lora", seq_len=2048, gradient_checkpointing=True, framework="torchtune")
    kept = estimate_memory(llama, train(**work))
    offloaded = estimate_memory(llama, train(**work, activation_offloading=True))
    layer_input = 2 * 2048 * 4096 * 2  # batch x tokens x hidden x bf16
    assert offloaded.components["activations"] == layer_input
    assert kept.components["activations"] == (32 + 1) * layer_input


def test_activation_offloading_without_checkpointing_is_refused():
    """torchtune raises when enable_activation_offloading is set without enable_activation_checkpointing."""
    from hf_gpu_estimator.errors import ConflictingOptionsError

    with pytest.raises(ConflictingOptionsError, match="gradient-checkpointing"):
        train(method="lora", framework="torchtune", activation_offloading=True)


@pytest.mark.parametrize(("compile_", "traced"), [(False, 152_168), (True, 98_664)], ids=["eager", "compiled"])
def test_torchtune_layer_saves_what_its_trace_shows(compile_, traced):
    """torchtune's own llama3_2 layer at Llama 3.2 3B's shapes, full finetune on packed positions: the bytes per token
    benchmarks/training_runs/torchtune_layer.py printed (torch 2.13, CPU inductor)."""
    from hf_gpu_estimator.memory.recipe import own_layer_saved

    arch = lookup("meta-llama/Llama-3.2-3B").architecture
    work = train(method="full", framework="torchtune", torch_compile=compile_)
    assert own_layer_saved(arch, work) == traced
    assert own_layer_saved(arch, train(method="full", torch_compile=compile_)) is None  # the hf stack: transformers
    assert own_layer_saved(arch, train(method="full", framework="torchtune", gradient_checkpointing=True)) is None


def test_default_framework_estimate_is_unchanged(llama):
    """The hf profile adds nothing: the trace-checked model is what the default runs."""
    work = train(method="qlora", gradient_checkpointing=True)
    assert work.framework == "hf" and work.loss == "hf" and not work.quantized_saves_input
    assert not work.kbit_fp32_casts and work.lora_dropout == 0.0


def test_published_runs_benchmark_runs_every_row():
    sys.path.insert(0, str(ROOT / "benchmarks" / "training_runs"))
    try:
        import run as bench
    finally:
        sys.path.pop(0)
    runs = bench.load_runs()
    assert len(runs) >= 30
    for run in runs:
        assert run["source"].startswith("https://") and run["quote"]
        assert run["measured"]["metric"] in bench.METRICS and run["measured"]["unit"] in bench.UNITS
    results = [bench.evaluate(run) for run in runs]
    assert not [r["id"] for r in results if r["unmodelled"]], "every published setting has a model"
    summary = {row["group"]: row for row in bench.summarize(results)}
    assert summary["all"]["runs"] == len(runs)


def test_published_runs_command_prints_a_summary():
    out = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "training_runs" / "run.py"), "--json"],
                         capture_output=True, text=True, check=True, timeout=120)
    payload = json.loads(out.stdout)
    assert payload["summary"][0]["group"] == "all"


def test_the_whole_run_starts_at_load(llama):
    """A QLoRA base quantized at load and cast by the k-bit recipe: the load is a moment of the run, and the
    peak (and the first step) never sit below it."""
    est = estimate_memory(llama, train(method="qlora", batch_size=1, seq_len=16, kbit_fp32_casts=True))
    load = est.moments[0]
    assert load.phase == "load" and load.components["transient"] == 32000 * 4096 * 2
    assert est.allocated_peak_bytes >= load.total_bytes and est.first_step_allocated_bytes >= load.total_bytes


def test_zero3_offload_on_one_gpu_keeps_the_gathered_units(llama):
    """DeepSpeed ZeRO-3 with parameters and optimizer offloaded runs on one GPU: the GPU holds the gathered
    layers and the root unit, one reduce bucket of gradients at most, and no optimizer state."""
    work = train(method="full", precision="bf16-mixed", gradient_checkpointing=True, strategy="zero3", num_gpus=1,
                 offload_optimizer=True, offload_params=True)
    est = estimate_memory(llama, work)
    gathered = next(t.bytes for t in est.terms if t.name == "FSDP all-gathered units")
    assert est.components["optimizer_states"] == 0 and 0 < gathered <= est.components["weights"]
    assert est.components["gradients"] <= 5e8 * 4
    assert est.host_offload_bytes > 6_738_415_616 * 8  # fp32 Adam states (and the gradients) on the host
    with pytest.raises(ConflictingOptionsError, match="offload"):
        train(method="full", strategy="zero3", num_gpus=1)


def test_reentrant_checkpointing_holds_the_recomputed_layer_output(llama):
    # torch.utils.checkpoint(use_reentrant=True) keeps the recomputed layer's output through the layer's backward:
    # one T x hidden tensor in the residual stream's dtype (the trace check is in tests/test_exact.py).
    off = estimate_memory(llama, train(method="lora", gradient_checkpointing=True, use_reentrant=False))
    on = estimate_memory(llama, train(method="lora", gradient_checkpointing=True, use_reentrant=True))
    top = {m.phase: m.total_bytes for m in on.moments}["backward (top layer)"]
    assert top - {m.phase: m.total_bytes for m in off.moments}["backward (top layer)"] == 2 * 512 * 4096 * 2
    # Without checkpointing the variant does not apply.
    assert estimate_memory(llama, train(method="lora", use_reentrant=True)).allocated_peak_bytes == \
        estimate_memory(llama, train(method="lora")).allocated_peak_bytes


@pytest.mark.parametrize(("framework", "reentrant"), [("hf", False), ("trl", True), ("axolotl", True),
                                                      ("llama-factory", True), ("torchtune", False)])
def test_checkpointing_variant_follows_the_framework(framework, reentrant):
    assert train(method="lora", framework=framework).use_reentrant is reentrant
    assert train(method="lora", framework=framework, use_reentrant=not reentrant).use_reentrant is not reentrant


def test_classification_head_replaces_the_vocabulary_head(llama):
    # AutoModelForSequenceClassification: a score linear of hidden x num_labels in place of lm_head (vocab x
    # hidden), logits of num_labels per token; the trace check is in tests/test_exact.py.
    lm = estimate_memory(llama, train(method="full", gradient_checkpointing=True))
    cls = estimate_memory(llama, train(method="full", gradient_checkpointing=True, head="classification",
                                       num_labels=3))
    head_delta = (32000 - 3) * 4096
    assert lm.components["weights"] - cls.components["weights"] == head_delta * 2
    assert lm.components["optimizer_states"] - cls.components["optimizer_states"] == head_delta * 2 * 2
    assert lm.allocated_peak_bytes > cls.allocated_peak_bytes
    # No vocabulary logits: the head's per-token transient is num_labels wide.
    logits = [next(t for t in e.terms if t.name == "logits + fp32 loss") for e in (lm, cls)]
    assert "(6 B logits/loss" in logits[1].formula and logits[1].bytes < logits[0].bytes / 10


@pytest.mark.parametrize(("options", "error"), [
    (dict(num_labels=3), ConflictingOptionsError),
    (dict(head="classification", num_labels=0), InvalidArgumentError),
    (dict(head="regression"), UnknownNameError),
], ids=["labels-without-head", "zero-labels", "unknown-head"])
def test_bad_head_options_name_the_field(options, error):
    with pytest.raises(error):
        train(method="full", **options)


def test_classification_head_is_a_training_estimate(llama):
    with pytest.raises(ConflictingOptionsError, match="head"):
        estimate_memory(llama, make_workload(task="inference", head="classification"))


def test_zero2_reduce_bucket_is_held_during_backward(llama):
    # DeepSpeedZeroOptimizer.backward: ipg_buffer = torch.empty(reduce_bucket_size, dtype=bf16) (stage_1_and_2.py).
    base = dict(method="full", num_gpus=4, strategy="zero2", gradient_checkpointing=True)
    plain = estimate_memory(llama, train(**base))
    sized = estimate_memory(llama, train(**base, reduce_bucket_size=200_000_000, allgather_bucket_size=10**8))
    before = {m.phase: m.total_bytes for m in plain.moments}
    for m in sized.moments:
        assert m.total_bytes - before[m.phase] == (2 * 200_000_000 if m.phase.startswith("backward") else 0), m.phase
    assert any(t.name.startswith("DeepSpeed allgather") and t.bytes == 0 for t in sized.terms)


def test_zero3_bucket_and_prefetch(llama):
    base = dict(method="full", num_gpus=4, strategy="zero3", gradient_checkpointing=True)
    plain = {m.phase: m.total_bytes for m in estimate_memory(llama, train(**base)).moments}
    sized = estimate_memory(llama, train(**base, reduce_bucket_size=10**8, prefetch_bucket_size=5 * 10**7))
    for m in sized.moments:
        prefetch = 0 if m.phase in ("optimizer step", "load") else 2 * 5 * 10**7
        assert m.total_bytes - plain[m.phase] == (0 if m.phase == "load" else 2 * 10**8 + prefetch), m.phase


def test_bucket_sizes_need_a_zero_strategy():
    with pytest.raises(ConflictingOptionsError, match="reduce_bucket_size"):
        train(method="full", num_gpus=2, strategy="fsdp", reduce_bucket_size=10**8)


def test_fp16_grad_scaler_adds_no_per_parameter_buffer(llama):
    # GradScaler unscales in place and keeps 0-dim tensors only (torch/amp/grad_scaler.py): 16-mixed costs what
    # bf16-mixed costs.
    fp16 = estimate_memory(llama, train(method="full", precision="16-mixed", gradient_checkpointing=True))
    bf16 = estimate_memory(llama, train(method="full", precision="bf16-mixed", gradient_checkpointing=True))
    assert fp16.allocated_peak_bytes == bf16.allocated_peak_bytes
    assert any("GradScaler" in a for a in fp16.assumptions)


def test_eager_module_loading_takes_the_published_context(llama):
    from hf_gpu_estimator.memory import overhead

    lazy = estimate_memory(llama, train(method="lora"))
    eager = estimate_memory(llama, train(method="lora", cuda_module_loading="eager"))
    assert eager.allocated_peak_bytes == lazy.allocated_peak_bytes
    assert eager.device_total_bytes - lazy.device_total_bytes == \
        overhead.CUDA_CONTEXT_EAGER_BYTES - overhead.CUDA_CONTEXT_BYTES
    assert any("eager module loading" in a for a in eager.assumptions)


@pytest.mark.parametrize("options", [
    {"task": "training", "batch_size": 8, "seq_len": 2048},
    {"task": "training", "head": "classification", "num_labels": 5, "seq_len": 512},
    {"task": "inference", "seq_len": 1024, "new_tokens": 16},
], ids=["causal-lm", "classification", "inference"])
def test_normalized_workload_rebuilds_itself(options: dict) -> None:
    """Suggestions and the planner rebuild a workload from its to_dict() (with changes over it): every
    normalized field must be one make_workload takes back (a causal-LM's num_labels was refused)."""
    w = make_workload(**options)
    assert make_workload(**w.to_dict()) == w


@pytest.mark.parametrize("loss", ["hf-fp32-logits", "hf-shifted-copy"], ids=str)
def test_an_older_transformers_loss_kind_leaves_a_class_without_the_upcast_alone(loss):
    """The two older-transformers kinds describe the upcasting ForCausalLMLoss / LlamaForCausalLM paths;
    BartForCausalLM.forward calls nn.CrossEntropyLoss() on its 16-bit logits itself (transformers 4.46.0 and
    5.25), so its loss terms stay those of :func:`activations.loss_bytes`."""
    from hf_gpu_estimator.architectures import architecture_from_config
    from hf_gpu_estimator.memory.activations import loss_bytes
    from hf_gpu_estimator.memory.recipe import loss_terms

    bart = architecture_from_config({"model_type": "bart", "d_model": 64, "decoder_layers": 2, "encoder_layers": 2,
                                     "decoder_attention_heads": 4, "encoder_attention_heads": 4, "vocab_size": 5000})
    work = train(precision="bf16-mixed", loss=loss)
    assert not bart.loss_upcast
    assert loss_terms(bart, work) == loss_bytes(bart, train(precision="bf16-mixed"))
    llama = architecture_from_config({"model_type": "llama", "vocab_size": 5000})
    assert loss_terms(llama, work) != loss_bytes(llama, train(precision="bf16-mixed"))
