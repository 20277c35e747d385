"""``python -m cleanup`` is the same as ``nclue-cleanup``."""

import sys

from .cli import main

sys.exit(main())
