"""ONNX (and TensorRT) export, custom-op definitions, parity checks and model-repository writing."""
