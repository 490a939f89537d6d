"""``python -m crashsight.runner TARGET [ARGS...]``: see `crashsight.runner.bootstrap`."""

from __future__ import annotations

from .bootstrap import main

if __name__ == "__main__":
    main()
