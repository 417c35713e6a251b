"""``python -m engine``: the engine command line."""

from .cli import main

raise SystemExit(main())
