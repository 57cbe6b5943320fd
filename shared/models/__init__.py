"""Models: ONNX inspection, local file cache, sessions, inference and text embedding."""
