"""``python -m tests.conformance``."""

import sys

from .cli import main

sys.exit(main())
