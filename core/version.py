"""seedlock's version, for the layers to report (ServerMetadata, manifests)
without importing the application package."""

VERSION = "0.1.0"
