"""The gRPC inference server. Never imports torch."""
