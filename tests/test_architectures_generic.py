"""The generic family's record of transformers (generic_data.json) matches the installed transformers."""

from __future__ import annotations

from pathlib import Path

import pytest

from hf_gpu_estimator.architectures import SUPPORTED_MODEL_TYPES, generic


LOCK = Path(__file__).resolve().parents[1] / "requirements" / "test.lock"


def _locked(package: str) -> str:
    for line in LOCK.read_text().splitlines():
        if line.lower().startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in {LOCK}")


def test_record_is_from_the_locked_transformers() -> None:
    assert generic.transformers_version() == _locked("transformers"), (
        "generic_data.json was recorded from another transformers than requirements/test.lock pins: "
        "run scripts/refresh_transformers.py")


def test_record_is_from_the_installed_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    if transformers.__version__ != _locked("transformers"):
        pytest.skip(f"transformers {transformers.__version__} is installed, not the locked "
                    f"{_locked('transformers')}: scripts/test.sh installs the lock")
    assert generic.transformers_version() == transformers.__version__, (
        "generic_data.json was recorded from another transformers: run scripts/refresh_transformers.py")


#: A complete llama-style config under a model type no transformers release records.
UNRECORDED = {"model_type": "brand_new_lm", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
              "num_key_value_heads": 2, "intermediate_size": 128, "vocab_size": 256, "hidden_act": "silu",
              "max_position_embeddings": 512}


@pytest.mark.parametrize("recorded", ["5.25.0", "9.0.0"])
def test_a_type_the_record_does_not_know_is_estimated_generically(recorded: str,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """A user whose transformers is newer (or older) than the record gets an estimate, not a failure: the
    standard fields are read with no recorded defaults, and one assumption line names the recorded version."""
    from hf_gpu_estimator import estimate

    data = dict(generic._data())
    monkeypatch.setattr(generic, "_data", lambda: {**data, "transformers": recorded})
    est = estimate(UNRECORDED)
    assert est.spec.architecture.derivation == "generic"
    assert est.spec.parameters.total > 0 and est.memory.allocated_peak_bytes > 0
    lines = [a for a in est.assumptions if "not among the model types recorded" in str(a)]
    assert len(lines) == 1 and f"transformers {recorded}" in str(lines[0])


def test_an_unrecorded_type_without_standard_fields_is_unsupported() -> None:
    from hf_gpu_estimator.architectures import parameter_counts
    from hf_gpu_estimator.errors import UnsupportedArchitectureError

    with pytest.raises(UnsupportedArchitectureError, match="no standard field") as info:
        parameter_counts({"model_type": "brand_new_lm", "hidden_size": 64})
    assert "\n" not in str(info.value)


def test_record_covers_every_causal_lm_type() -> None:
    pytest.importorskip("transformers")
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    missing = set(MODEL_FOR_CAUSAL_LM_MAPPING_NAMES) - generic.known_model_types()
    assert not missing


def test_family_modules_cover_types_transformers_knows() -> None:
    # A family module for a type transformers does not implement would never be reachable by --exact.
    assert not set(SUPPORTED_MODEL_TYPES) - generic.known_model_types()


@pytest.mark.parametrize("config", [
    {"model_type": "prophetnet", "hidden_size": 64, "num_decoder_layers": 2, "num_encoder_layers": 2,
     "num_decoder_attention_heads": 4, "num_encoder_attention_heads": 4, "decoder_ffn_dim": 128,
     "encoder_ffn_dim": 128, "vocab_size": 256, "max_position_embeddings": 64},
    {"model_type": "bart", "d_model": 64, "decoder_layers": 2, "encoder_layers": 2, "decoder_attention_heads": 4,
     "encoder_attention_heads": 4, "decoder_ffn_dim": 128, "encoder_ffn_dim": 128, "vocab_size": 256,
     "max_position_embeddings": 64},
], ids=["prophetnet", "bart"])
def test_unused_cross_attention_equals_the_parameters_without_gradient(config: dict) -> None:
    """A *ForCausalLM decoder of an encoder-decoder family never runs its cross-attention: exactly those
    parameters keep ``grad is None`` after a training step's backward (real tensors, CPU), and the header
    rule (sources/headers.off_text_path) finds them."""
    torch = pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from hf_gpu_estimator.runtime.build import instantiate, make_config, model_class
    from hf_gpu_estimator.sources.headers import off_text_path

    cfg = make_config(config)
    model = instantiate(model_class(cfg), cfg)
    ids = torch.randint(0, 256, (1, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    without_grad = sum(p.numel() for p in model.parameters() if p.grad is None)
    assert without_grad > 0
    assert off_text_path((n, p.numel()) for n, p in model.named_parameters()) == {"cross_attention": without_grad}


def test_eager_sinks_fp32_scores_and_fp32_routers_are_recorded_from_the_modeling_files() -> None:
    """scripts/build_generic_data.py reads them from each eager_attention_forward and router: flint computes fp32
    scores with a sink column on every layer, minicpm5_moe routes in fp32; mimo_v2_flash's sinks sit on its
    sliding layers only (not recorded); llama has none of them."""
    from hf_gpu_estimator.architectures import architecture_from_config

    assert generic.eager_sinks("flint") == (True, True) and generic.eager_sinks("gpt_oss") == (True, False)
    assert generic.eager_sinks("mimo_v2_flash") == (False, False) == generic.eager_sinks("llama")
    assert generic.fp32_router("minicpm5_moe") and not generic.fp32_router("qwen3_moe")
    flint = architecture_from_config({"model_type": "flint", "num_hidden_layers": 2})
    assert flint.fp32_scores and all(layer.mixer.sinks for layer in flint.layers)
    moe = architecture_from_config({"model_type": "minicpm5_moe", "num_hidden_layers": 2})
    assert all(layer.ffn.fp32_routing for layer in moe.layers if layer.ffn.kind == "moe")


def test_record_matches_the_modeling_files() -> None:
    """The recorded eager_sinks, fp32_scores and fp32_router keys are what the installed transformers' modeling
    files say (scripts/build_generic_data.py)."""
    transformers = pytest.importorskip("transformers")
    if transformers.__version__ != generic.transformers_version():
        pytest.skip("the record is of another transformers")
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
    import build_generic_data

    for model_type in ("flint", "gpt_oss", "mimo_v2_flash", "minicpm5_moe", "qwen3_moe"):
        cls = getattr(transformers, transformers.models.auto.modeling_auto.MODEL_FOR_CAUSAL_LM_MAPPING_NAMES[model_type])
        assert build_generic_data.eager_sinks(cls) == generic.eager_sinks(model_type), model_type
        assert build_generic_data.fp32_router(cls) == generic.fp32_router(model_type), model_type
