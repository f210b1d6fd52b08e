import sys

from seedlock.cli import main

sys.exit(main())
