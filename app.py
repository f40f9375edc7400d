"""hf-gpu-estimator's web calculator as a Hugging Face Space (Gradio SDK) or a local app.

Space: put this file at the root with a ``requirements.txt`` holding ``hf-gpu-estimator[web]``.
Local: ``python app.py`` or ``hfge serve``.
"""

from hf_gpu_estimator.web import build_app

demo = build_app()

if __name__ == "__main__":
    demo.launch()
