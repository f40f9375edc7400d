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
