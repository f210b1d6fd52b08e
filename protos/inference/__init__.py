"""KServe v2 / Open Inference Protocol messages and service (generated; see ``seedlock.protos.generate``)."""
