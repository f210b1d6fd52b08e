"""``seedlock.v1`` task services (generated; see ``seedlock.protos.generate``)."""
