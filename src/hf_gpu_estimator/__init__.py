"""hf-gpu-estimator: how much GPU an LLM job needs, before you launch it."""
