"""The back ends that run a model: one module each (transformers, onnxruntime-genai and its
continuous batcher, an OpenAI-compatible server). Which exist, with their precisions and
options, is demo/backend_registry.py's registry."""
