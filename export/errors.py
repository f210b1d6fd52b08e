"""The export layer's error, in a module of its own so that torch-free parts
(TensorRT engines, backend comparison) can raise it without importing torch."""


class ExportError(RuntimeError):
    """The model could not be exported, or the export failed its checks."""
