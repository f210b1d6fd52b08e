"""seedlock: train, export and serve seed-locked deep-learning models.

The code lives in one folder per layer (see DESIGN.md):
``seedlock.core`` (numpy contracts shared by training and serving),
``seedlock.train`` (PyTorch models and training loops),
``seedlock.export`` (ONNX / TensorRT export and verification),
``seedlock.serve`` (the gRPC server, torch-free) and
``seedlock.clients`` (client library and CLI commands, torch-free).
The modules of this folder are the application (CLI dispatch, demo, benches);
no layer imports them.
"""

from seedlock.core.version import VERSION as __version__

__all__ = ["__version__"]
