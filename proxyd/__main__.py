"""`python -m proxyd` is the `proxyd` command."""

import sys

from proxyd.cli import main

sys.exit(main())
