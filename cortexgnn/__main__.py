"""``python -m cortexgnn``: the same command line as ``cortexgnn``."""

import sys

from .cli import main

sys.exit(main())
