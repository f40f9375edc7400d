"""Per-type adaptations of the built model and its steps, each with the transformers behaviour it answers."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from hf_gpu_estimator.runtime.dtypes import cast_floating_, torch_dtype


# Per-type adaptations: each acts only on the model types it names (the ``model_type`` of the config the
# built class runs on), with the reason; every other type takes the common path unchanged.

#: Types transformers builds with some weights in float32 whatever dtype is asked for: cast as
#: ``model.to(dtype)`` does (what Lightning's ``*-true`` precisions do to the module, and what a user
#: must do to run them in half precision). XLNet creates its attention weights with
#: ``torch.FloatTensor`` (modeling_xlnet.py ``XLNetRelativeAttention.__init__``), which ignores the
#: default dtype; ``from_pretrained(dtype=bfloat16)`` keeps them float32 too (the loader casts to the
#: built parameter's dtype), and the first einsum then fails on mixed bfloat16/float32 operands.
_CAST_TO_WEIGHT_DTYPE = ("xlnet",)

#: Types that run one language adapter per input and raise without one chosen ("Input language unknown.
#: Please call `XmodPreTrainedModel.set_default_language()`"): the config's first language is set. Every
#: adapter has the same shape, so the memory does not depend on which.
_DEFAULT_LANGUAGE_TYPES = ("xmod",)

#: Audio decoders whose token ids hold one row per codebook: ``input_ids`` [batch x num_codebooks, seq]
#: and ``labels`` [batch, seq, num_codebooks] (MusicgenForCausalLM.forward's documented shapes).
CODEBOOK_TYPES = ("musicgen_decoder", "musicgen_melody_decoder")


def model_type_of(model: Any) -> str:
    """The ``model_type`` of a built model's config ('' without one)."""
    return str(getattr(getattr(model, "config", None), "model_type", ""))


def adapt_built(model: Any, model_type: str, dtype_name: str) -> list[str]:
    """The per-type adaptations of a freshly built model (see above); returns what was done."""
    done: list[str] = []
    if model_type in _CAST_TO_WEIGHT_DTYPE:
        dtype = torch_dtype(dtype_name)
        if any(p.is_floating_point() and p.dtype != dtype for p in model.parameters()):
            cast_floating_(model, dtype)
            done.append(f"{model_type}: transformers builds some weights in float32 whatever the dtype; "
                        f"cast to {dtype_name} as model.to({dtype_name}) does")
    if model_type in _DEFAULT_LANGUAGE_TYPES and getattr(model.config, "default_language", None) is None:
        language = next(iter(model.config.languages))
        model.set_default_language(language)
        done.append(f"{model_type}: no default_language in the config: runs the {language} adapter "
                    "(set_default_language); every language adapter has the same shape")
    return done



#: Types whose ``generate`` feeds the whole sequence at every step, through the class's own
#: ``prepare_inputs_for_generation``, with why. Only these are stepped that way; every other type gets
#: the new token alone, as transformers' default ``prepare_inputs_for_generation`` slices it.
FULL_SEQUENCE_STEPS: Mapping[str, str] = {
    # XLMWithLMHeadModel.prepare_inputs_for_generation appends a mask token to the whole sequence and
    # XLMModel.forward drops the positions its cache holds ("do not recompute cached elements"): given
    # the new token alone it slices the input to a negative length.
    "xlm": "XLM's generate passes the whole sequence plus a mask token; its forward skips the cached part",
    # CpmAntForCausalLM.prepare_inputs_for_generation passes generate's full input_ids on ("forward slices off
    # the cached prefix itself, so it needs the full input_ids").
    "cpmant": "CPM-Ant's generate passes the whole sequence; its forward slices off the cached prefix",
}
