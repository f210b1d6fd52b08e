"""Server defaults, in a module of their own so ``seedlock serve --help`` stays
quick (no onnxruntime import)."""

DEFAULT_PORT = 8001  # Triton's gRPC port, so v2 clients find us where they look
DEFAULT_HTTP_PORT = 8000  # Triton's HTTP/REST port
DEFAULT_METRICS_PORT = 8002  # Triton's metrics port
DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
DEFAULT_MAX_QUEUE = 128  # requests waiting per model version before RESOURCE_EXHAUSTED
DEFAULT_GRACE_S = 30.0
