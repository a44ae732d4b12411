"""``python tests/conformance/run.py --scenarios DIR``: the runner as a script."""

import sys
from pathlib import Path

if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from conformance.cli import main

    sys.exit(main())
