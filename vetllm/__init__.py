"""VetLLM Studio: fine-tune language models to code livestock clinical notes as SNOMED-CT.

The package is layered so that the pure-Python core (data, catalogue, coverage, post-processing,
metrics, analysis) never imports torch or gradio; only `vetllm.engine` builds and runs models and
only `vetllm.ui` builds the Gradio app.
"""

__version__ = "0.1.0"
