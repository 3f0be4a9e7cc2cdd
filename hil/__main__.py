"""`python -m hil`: the same as `python -m hil.bench` (every performance figure in one report)."""

from __future__ import annotations

from hil.bench import main

raise SystemExit(main())
