"""What training and serving agree on: manifests, seeded streams, codecs, metrics. numpy only (plus opencv for image codecs)."""
