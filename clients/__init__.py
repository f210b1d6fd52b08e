"""Client library and CLI commands. Never imports torch."""
