"""`python -m stimctl`: the same entry point as the `stimctl` console script."""

from __future__ import annotations

import sys

from stimctl.cli import main

if __name__ == "__main__":
    sys.exit(main())
