"""seedlock's own protocol packages."""
