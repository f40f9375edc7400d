"""Gemma3 multimodal wrapper (text model + SigLIP vision tower + projector)."""

from __future__ import annotations

from hf_gpu_estimator.architectures._fields import Fields, Head, Tally
from hf_gpu_estimator.architectures._registry import Family
from hf_gpu_estimator.architectures.blocks import siglip_vision, vit_tower, with_vision
from hf_gpu_estimator.architectures.families.llama_like import analyze_llama_like
from hf_gpu_estimator.spec import Architecture


def analyze_gemma3(f: Fields, model_type: str, head: Head) -> tuple[Architecture, Tally]:
    text = f.sub("text_config")
    arch, t = analyze_llama_like(text, "gemma3_text", "base")
    vision = f.sub("vision_config")
    vision_hidden = vision.integer("hidden_size", 768)
    tower = siglip_vision(vision)
    # modeling_gemma3.py Gemma3MultiModalProjector: a (vision_hidden x text_hidden) matrix + RMSNorm.
    projector = vision_hidden * arch.hidden_size + vision_hidden
    # Gemma3ForConditionalGeneration ties lm_head by the top-level tie_word_embeddings (default True).
    tie = f.boolean("tie_word_embeddings", True)
    if head == "conditional" and not tie:
        t.add("lm_head", arch.vocab_size * arch.hidden_size)
    # configuration_gemma3.py: mm_tokens_per_image (default 256) soft tokens per image, whatever its size.
    tokens = f.integer("mm_tokens_per_image", 256)
    arch = with_vision(
        arch, t, model_type=model_type, tower=tower, projector=projector, tokens=tokens, tie_word_embeddings=tie,
        vision=vit_tower(vision, projector="gemma3", patch=16, class_token=False),
        tower_note=(f"counts include the SigLIP vision tower ({tower:,} parameters) and the multimodal "
                    f"projector ({projector:,}) under role 'other'; the dimensions are the language model's"),
        notes=(f"tokens_per_image={tokens} (mm_tokens_per_image); the processor adds start/end-of-image markers",))
    return arch, t


FAMILIES = {
    "gemma3": Family(
        analyze=analyze_gemma3, default_class="Gemma3ForConditionalGeneration",
        classes={"Gemma3ForConditionalGeneration": "conditional", "Gemma3Model": "base"}, module=__name__,
    ),
}
