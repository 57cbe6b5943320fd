"""Models: ONNX inspection, local file cache, sessions, inference and text embedding.

Kept import-light on purpose (cold start): import the submodule you need, e.g.
``from shared.models.inference import InferenceService``; onnx and onnxruntime are only
imported inside the functions that use them.
"""
