"""``python -m cortexgnn``: the same command line as ``cortexgnn``."""

import sys

from .train.cli import main

sys.exit(main())
