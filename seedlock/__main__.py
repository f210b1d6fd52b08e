import sys

from seedlock.serve.startup import command_of, exit_while_starting

# First, before the CLI and its layers are imported: a SIGTERM while
# `seedlock serve` starts exits 0 instead of killing the process (-15).
if command_of(sys.argv[1:]) == "serve":
    exit_while_starting()

from seedlock.cli import main  # noqa: E402 - after the signal handler, on purpose

sys.exit(main())
