"""The generic family's record of transformers (generic_data.json) matches the installed transformers."""

from __future__ import annotations

import pytest

from hf_gpu_estimator.architectures import SUPPORTED_MODEL_TYPES, generic


def test_record_is_from_the_installed_transformers() -> None:
    transformers = pytest.importorskip("transformers")
    assert generic.transformers_version() == transformers.__version__, (
        "generic_data.json was recorded from another transformers: run scripts/build_generic_data.py")


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
    from hf_gpu_estimator._runner import instantiate, make_config, model_class
    from hf_gpu_estimator.sources.headers import off_text_path

    cfg = make_config(config)
    model = instantiate(model_class(cfg), cfg)
    ids = torch.randint(0, 256, (1, 16))
    model(input_ids=ids, labels=ids).loss.backward()
    without_grad = sum(p.numel() for p in model.parameters() if p.grad is None)
    assert without_grad > 0
    assert off_text_path((n, p.numel()) for n, p in model.named_parameters()) == {"cross_attention": without_grad}
